"""A loss called on concrete arrays runs as one compiled program (lossopt/losses/_eager.py),
with every check of an uncompiled call: the same values, the same errors, call after call."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax._src import monitoring

from lossopt import losses
from lossopt.losses._eager import MAX_OPTION_SETS, compiled_eager

# Fresh compiled wrappers of the public losses' functions, so that what other tests compiled
# in this worker (up to MAX_OPTION_SETS option sets per loss) does not change what is counted.
huber = compiled_eager(losses.huber.__wrapped__)
bce = compiled_eager(losses.sigmoid_binary_cross_entropy.__wrapped__)
kl_divergence = compiled_eager(losses.kl_divergence.__wrapped__)
softmax_cross_entropy = compiled_eager(losses.softmax_cross_entropy.__wrapped__)
poisson_nll = compiled_eager(losses.poisson_nll.__wrapped__)

RNG = np.random.default_rng(20261202)
# Shapes of this file's own (no other test compiles a loss for 37 or 41 entries).
P = RNG.normal(size=37)
Y = RNG.normal(size=37)
LOGITS = RNG.normal(size=(41, 3))
IDS = RNG.integers(0, 3, size=41)


class _Compiles:
    def __init__(self):
        self.count = 0

    def __call__(self, event, duration, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            self.count += 1


@pytest.fixture
def compiles():
    counter = _Compiles()
    monitoring.register_event_duration_secs_listener(counter)
    yield counter
    monitoring.unregister_event_duration_listener(counter)


def _np_huber(p, y, delta):
    r = np.abs(p - y)
    return np.mean(np.where(r <= delta, 0.5 * r ** 2, delta * (r - 0.5 * delta)))


def test_an_eager_call_compiles_one_program_and_equals_the_closed_form(compiles):
    got = huber(P, Y, delta=0.7)
    assert compiles.count == 1  # uncompiled, op by op: eight one-operation programs
    np.testing.assert_allclose(float(got), _np_huber(P, Y, 0.7), rtol=1e-13)
    # The same shapes and options again: nothing is compiled; other options: one program.
    np.testing.assert_allclose(float(huber(P + 1, Y, delta=0.7)), _np_huber(P + 1, Y, 0.7),
                               rtol=1e-13)
    assert compiles.count == 1
    np.testing.assert_allclose(float(huber(P, Y, delta=2.0)), _np_huber(P, Y, 2.0), rtol=1e-13)
    assert compiles.count == 2
    # The uncompiled function gives the same value (the same operations, to rounding).
    np.testing.assert_allclose(float(losses.huber.__wrapped__(P, Y, delta=0.7)), float(got),
                               rtol=1e-14)
    # Every registered loss is wrapped so: mse on a shape of this file's own, one program.
    before = compiles.count
    assert float(losses.mse(P, Y)) == pytest.approx(np.mean((P - Y) ** 2), rel=1e-13)
    assert compiles.count - before == 1


def test_value_checks_run_on_every_call_with_the_uncompiled_message():
    labels = (Y > 0).astype(float)
    bce(P, labels)  # compiled, and cached for these shapes
    bad = labels.copy()
    bad[5] = 1.5
    with pytest.raises(ValueError) as compiled:
        bce(P, bad)
    with pytest.raises(ValueError) as uncompiled:
        losses.sigmoid_binary_cross_entropy.__wrapped__(P, bad)
    assert str(compiled.value) == str(uncompiled.value)
    assert "labels[5] = 1.5" in str(compiled.value)
    assert bce._compiled.checks and not bce._compiled.uncompiled  # the compiled path ran
    # Probabilities that do not sum to 1, after a valid call of the same shapes.
    probs = np.full((41, 3), 1 / 3)
    kl_divergence(probs, probs)
    with pytest.raises(ValueError, match="sum to 1"):
        kl_divergence(probs * 1.1, probs)
    # Integer class ids out of range, after a valid call.
    softmax_cross_entropy(LOGITS, IDS)
    with pytest.raises(ValueError, match="labels"):
        softmax_cross_entropy(LOGITS, np.where(np.arange(41) == 7, 3, IDS))


def test_options_are_told_apart_by_type_and_bad_options_raise_after_good_ones():
    rates, counts = np.abs(P) + 0.1, np.round(np.abs(Y) * 3)
    poisson_nll(rates, counts, log_input=False)  # False compiled...
    with pytest.raises(TypeError, match="log_input"):  # ...but 0 is not a bool
        poisson_nll(rates, counts, log_input=0)
    with pytest.raises(ValueError, match="eps"):
        poisson_nll(rates, counts, log_input=False, eps=-1.0)
    with pytest.raises(ValueError, match="same shape"):
        poisson_nll(rates, counts[:-1], log_input=False)


def test_inside_a_users_transformation_the_loss_is_traced_as_written():
    labels = (Y > 0).astype(float)
    bad = labels.copy()
    bad[0] = -1.0

    # Inside jit even closed-over arrays are traced: the values are not known, so not checked
    # (as without compiled eager calls); the program is the uncompiled function's.
    inside = jax.jit(lambda: losses.sigmoid_binary_cross_entropy(jnp.asarray(P), bad))()
    written = jax.jit(lambda: losses.sigmoid_binary_cross_entropy.__wrapped__(
        jnp.asarray(P), bad))()
    assert float(inside) == float(written)
    # Traced arguments: the loss as written, under jit and grad.
    value = jax.jit(losses.sigmoid_binary_cross_entropy)(P, labels)
    grad = jax.grad(losses.sigmoid_binary_cross_entropy)(P, labels)
    sig = 1 / (1 + np.exp(-P))
    np.testing.assert_allclose(float(value), np.mean(np.logaddexp(0, P) - labels * P),
                               rtol=1e-13)
    np.testing.assert_allclose(grad, (sig - labels) / len(P), rtol=1e-12)


def test_lists_and_python_numbers_run_uncompiled(compiles, monkeypatch):
    assert float(losses.mse([1.0, 2.0], [1.0, 4.0])) == 2.0
    assert float(losses.mse(3.0, 1.0)) == 4.0
    # LOSSOPT_EAGER_JIT=0: operation by operation, as written.
    monkeypatch.setenv("LOSSOPT_EAGER_JIT", "0")
    before = compiles.count
    np.testing.assert_allclose(float(losses.huber(P[:29], Y[:29], delta=0.3)),
                               _np_huber(P[:29], Y[:29], 0.3), rtol=1e-13)
    assert compiles.count - before > 1


def test_a_loop_over_option_values_compiles_a_bounded_number_of_programs(compiles):
    fresh = compiled_eager(losses.huber.__wrapped__)
    x, t = P[:31], Y[:31]
    # A float option passed as an array is an input: one program serves every value.
    for delta in (0.3, 0.7, 1.1):
        np.testing.assert_allclose(float(fresh(x, t, delta=np.asarray(delta))),
                                   _np_huber(x, t, delta), rtol=1e-13)
    assert compiles.count == 1
    # As Python numbers, each value is an option set of its own, up to the cap; the calls
    # beyond it run op by op, with the same values.
    for i in range(MAX_OPTION_SETS + 8):
        delta = 0.1 + 0.05 * i
        np.testing.assert_allclose(float(fresh(x, t, delta=delta)), _np_huber(x, t, delta),
                                   rtol=1e-13)
    assert len(fresh._compiled.jits) == MAX_OPTION_SETS


# A shape of this section's own: 43 entries.
P43, Y43 = RNG.normal(size=43), RNG.normal(size=43)


def test_eager_grad_hessian_and_vmap_run_the_loss_as_one_compiled_call(compiles):
    fresh = compiled_eager(losses.huber.__wrapped__)
    delta, n = 0.7, P43.size
    r = P43 - Y43
    grad = jax.grad(fresh)(P43, Y43, delta=delta)  # no jit around it: JAX's eager autodiff
    np.testing.assert_allclose(grad, np.clip(r, -delta, delta) / n, rtol=1e-13)
    # The loss's program, its linearisation and its transpose: three programs, where the loss
    # as written compiles each of its operations forward and backward (22 for Huber).
    assert compiles.count <= 4
    before = compiles.count
    np.testing.assert_allclose(jax.grad(fresh)(P43 + 1, Y43, delta=delta),
                               np.clip(r + 1, -delta, delta) / n, rtol=1e-13)
    assert compiles.count == before  # the same shapes again: served compiled
    hess = jax.hessian(fresh)(P43, Y43, delta=delta)
    np.testing.assert_allclose(hess, np.diag((np.abs(r) <= delta) / n), atol=1e-15)
    rows = np.stack([P43, P43 - 1])
    before = compiles.count
    batched = jax.vmap(lambda x: fresh(x, Y43, delta=delta))(rows)
    np.testing.assert_allclose(batched, [_np_huber(x, Y43, delta) for x in rows], rtol=1e-13)
    assert compiles.count - before == 1  # the batched loss, one program
    assert len(fresh._compiled.jits) == 1 and not fresh._compiled.uncompiled


def test_under_eager_transformations_the_known_inputs_are_still_checked():
    labels = (Y43 > 0).astype(float)
    bad = labels.copy()
    bad[3] = 1.5
    with pytest.raises(ValueError) as written:
        losses.sigmoid_binary_cross_entropy.__wrapped__(P43, bad)
    # The labels are not differentiated: their values are known, and checked under grad,
    # jacfwd, hessian and an unbatched vmap argument, with the uncompiled call's message.
    for transform in (jax.grad, jax.jacfwd, jax.hessian):
        bce(P43, labels)
        with pytest.raises(ValueError) as compiled:
            transform(bce)(P43, bad)
        assert str(compiled.value) == str(written.value)
    with pytest.raises(ValueError, match=r"labels\[3\] = 1.5"):
        jax.vmap(bce, in_axes=(0, None))(np.stack([P43, P43]), bad)
    # A differentiated (traced) argument's values are unknown to the loss, as without
    # compiled calls: not checked; the gradient is that of the formula, KL(t || p) =
    # mean_i sum_c t (log t - log p): d/dt = (log t - log p + 1) / n.
    probs = np.full((43, 3), 1 / 3)
    scaled = jax.grad(kl_divergence, argnums=1)(probs, probs * 1.1)
    np.testing.assert_allclose(scaled, np.full((43, 3), (np.log(1.1) + 1) / 43), rtol=1e-12)
    with pytest.raises(ValueError, match="sum to 1"):
        kl_divergence(probs, probs * 1.1)  # the same values, concrete: checked


def test_under_jit_around_grad_the_loss_is_still_traced_as_written():
    fresh = compiled_eager(losses.huber.__wrapped__)
    grad = jax.jit(jax.grad(fresh))(P43, Y43)
    np.testing.assert_allclose(grad, np.clip(P43 - Y43, -1.0, 1.0) / P43.size, rtol=1e-13)
    assert not fresh._compiled.jits  # a staged trace: the loss is part of the caller's program


def test_nested_and_forward_transformations_equal_the_loss_as_written():
    # The wrapper must not change what any transformation computes: the loss as written
    # (`__wrapped__`, op by op) is the reference, on shapes of this test's own.
    rng = np.random.default_rng(7)
    logits, ids = rng.normal(size=(11, 4)), rng.integers(0, 4, size=11)
    p, labels = rng.normal(size=11), (rng.random(11) > 0.5).astype(float)
    ce = compiled_eager(losses.softmax_cross_entropy.__wrapped__)
    fresh_bce = compiled_eager(losses.sigmoid_binary_cross_entropy.__wrapped__)
    written_ce = losses.softmax_cross_entropy.__wrapped__
    written_bce = losses.sigmoid_binary_cross_entropy.__wrapped__
    cases = [
        # vmap over integer labels, batched with the logits
        (jax.vmap(ce), jax.vmap(written_ce), (np.stack([logits, -logits]), np.stack([ids, 3 - ids]))),
        # forward mode with a tangent for the labels too
        (lambda a, b: jax.jvp(fresh_bce, (a, b), (np.ones(11), np.ones(11))),
         lambda a, b: jax.jvp(written_bce, (a, b), (np.ones(11), np.ones(11))), (p, labels)),
        # a gradient of a gradient, and a Jacobian of per-example values
        (jax.grad(lambda a, b: jnp.sum(jax.grad(fresh_bce)(a, b) ** 2)),
         jax.grad(lambda a, b: jnp.sum(jax.grad(written_bce)(a, b) ** 2)), (p, labels)),
        (jax.jacrev(lambda a, b: ce(a, b, reduction="none")),
         jax.jacrev(lambda a, b: written_ce(a, b, reduction="none")), (logits, ids)),
    ]
    for got, want, args in cases:
        for g, w in zip(jax.tree.leaves(got(*args)), jax.tree.leaves(want(*args)), strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15)
    assert ce._compiled.jits and fresh_bce._compiled.jits  # the compiled path ran
    assert not ce._compiled.uncompiled and not fresh_bce._compiled.uncompiled
