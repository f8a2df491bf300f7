"""Fuzz tests (hypothesis) for the classes of loss defects found by fuzzing, one class a section.

1. weights: negative, NaN or infinite concrete weights raise, for every registered loss;
2. value ranges: probabilities outside [0, 1] (or not summing to 1 where a distribution is
   expected), out-of-range targets, and counts < 0 raise, naming the argument and the first
   offending entry; traced inputs are not checked (and still work under jit and grad);
3. NaN in, NaN out: a NaN anywhere in the first argument of EVERY registered loss gives a NaN
   loss (under jit, where no value check runs; eagerly a range-checked argument raises);
4. empty batches: "mean" raises naming the axis; "sum" is 0 and "none" is empty;
5. masked (-inf) logits of wrong classes: class-id cross-entropy and focal losses gather the
   target entry and agree with float64 references with and without jit;
6. CTC with empty targets: the all-blank path probability, as in PyTorch;
7. boolean options accept only True / False, for every registered loss with a bool option.

Every hypothesis test is derandomized with a small example budget; numpy draws are seeded.
"""

from __future__ import annotations

import functools
import itertools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import RECIPES
from helpers import as_jax as _as_jax
from hypothesis import given, settings
from hypothesis import strategies as st

from lossopt import losses
from lossopt.losses._numerics import mul_log, positive_part

# Small budgets keep the file near 20 s on one core (most of the time is XLA compiling).
FUZZ = settings(max_examples=8, deadline=None, derandomize=True)
FEW = settings(max_examples=4, deadline=None, derandomize=True)
SWEEP = settings(max_examples=3, deadline=None, derandomize=True)  # per registered loss

REDUCING = [e for e in losses.catalog() if RECIPES[e.name].reduce]


def _inputs(name, seed=0):
    first, rest, kwargs = RECIPES[name].draw(np.random.default_rng(seed), None)
    return _as_jax(first), _as_jax(rest), _as_jax(kwargs)


# --------------------------------------------------------------------------------------------
# 1. Weights
# --------------------------------------------------------------------------------------------


@functools.cache
def _per_example_shape(name):
    first, rest, kwargs = _inputs(name)
    fn = losses.info(name).fn
    return jax.eval_shape(lambda: fn(first, *rest, **kwargs, reduction="none")).shape


@pytest.mark.parametrize("entry", REDUCING, ids=lambda e: e.name)
@given(data=st.data())
@SWEEP
def test_negative_or_nan_weights_raise_for_every_loss(entry, data):
    first, rest, kwargs = _inputs(entry.name)
    shape = _per_example_shape(entry.name)
    w = np.ones(shape)
    flat = data.draw(st.integers(0, max(w.size - 1, 0)), label="index")
    bad = data.draw(
        st.one_of(st.floats(max_value=-1e-12, allow_infinity=False), st.just(np.nan),
                  st.just(np.inf)),
        label="bad weight",
    )
    w.flat[flat] = bad
    index = np.unravel_index(flat, shape) if shape else ()
    expected = re.escape(f"weights[{', '.join(map(str, index))}] = {float(bad)!r}")
    # Concrete weights are checked when the loss is traced: under eval_shape (trace only, no
    # compile) exactly as eagerly, and as when closed over inside a jitted function.
    wj = jnp.asarray(w)  # created outside the trace: a concrete array, not a tracer
    with pytest.raises(ValueError, match=r"`weights` must hold finite weights >= 0.*" + expected):
        jax.eval_shape(lambda: entry.fn(first, *rest, **kwargs, weights=wj))


def test_the_reported_negative_weight_case_raises():
    # Before: 0.0 = (1 * 9 - 1 * 1 ... ) / 0 -> the all-zero-weights rule; a loss became a gain.
    with pytest.raises(ValueError, match=r"weights\[1\] = -1.0"):
        losses.mse(jnp.array([0.0, 0.0]), jnp.array([3.0, 1.0]), weights=jnp.array([1.0, -1.0]))


@given(w=st.lists(st.floats(0, 10), min_size=4, max_size=4).filter(lambda v: sum(v) > 0))
@FUZZ
def test_valid_weights_give_the_weighted_mean(w):
    p, t = np.array([0.5, -1.0, 2.0, 3.0]), np.array([0.0, 1.0, 2.5, -1.0])
    ref = np.sum(np.array(w) * (p - t) ** 2) / np.sum(w)  # float64 numpy reference
    got = losses.mse(jnp.asarray(p), jnp.asarray(t), weights=jnp.asarray(w))
    np.testing.assert_allclose(float(got), ref, rtol=1e-12)


def test_traced_weights_are_not_checked_and_still_work():
    p, t = jnp.array([0.0, 0.0]), jnp.array([3.0, 1.0])
    f = jax.jit(lambda w: losses.mse(p, t, weights=w))
    # Under jit the values are unknown at trace time: no check, the formula is applied as is.
    assert float(f(jnp.array([1.0, -1.0]))) == 0.0
    g = jax.grad(lambda w: losses.mse(p, t, weights=w))(jnp.array([1.0, 3.0]))
    # d/dw_i (sum w l / sum w) = (l_i - mean) / sum w, l = (9, 1), mean = 3.
    np.testing.assert_allclose(np.asarray(g), [(9 - 3) / 4, (1 - 3) / 4], rtol=1e-12)


# --------------------------------------------------------------------------------------------
# 2. Value ranges of probabilities, targets and counts
# --------------------------------------------------------------------------------------------

P2 = np.array([[0.2, 0.8], [0.6, 0.4]])
SEG_P, SEG_T = np.array([[0.9, 0.1, 0.5]]), np.array([[1.0, 0.0, 1.0]])


def _probability_cases():
    """(loss name, argument name, call(value) -> loss, valid value) for each checked argument."""
    ids = jnp.array([1, 0])
    return [
        ("binary_cross_entropy", "probs",
         lambda v: losses.binary_cross_entropy(v, jnp.array([1.0, 0.0])), np.array([0.3, 0.9])),
        ("binary_cross_entropy", "labels",
         lambda v: losses.binary_cross_entropy(jnp.array([0.3, 0.9]), v), np.array([1.0, 0.0])),
        ("categorical_cross_entropy", "probs",
         lambda v: losses.categorical_cross_entropy(v, ids), P2),
        ("categorical_cross_entropy", "labels",
         lambda v: losses.categorical_cross_entropy(jnp.asarray(P2), v), P2[::-1]),
        ("softmax_cross_entropy", "labels",
         lambda v: losses.softmax_cross_entropy(jnp.zeros((2, 2)), v), P2),
        ("softmax_focal", "labels", lambda v: losses.softmax_focal(jnp.zeros((2, 2)), v), P2),
        ("kl_divergence", "probs", lambda v: losses.kl_divergence(v, jnp.asarray(P2)), P2),
        ("kl_divergence", "targets", lambda v: losses.kl_divergence(jnp.asarray(P2), v), P2),
        ("kl_divergence_with_logits", "targets",
         lambda v: losses.kl_divergence_with_logits(jnp.zeros((2, 2)), v), P2),
        *[
            (name, arg, call, valid)
            for name in ("dice", "tversky", "focal_tversky")
            for arg, call, valid in (
                ("probs", functools.partial(
                    lambda f, v: f(v, jnp.asarray(SEG_T)), getattr(losses, name)), SEG_P),
                ("targets", functools.partial(
                    lambda f, v: f(jnp.asarray(SEG_P), v), getattr(losses, name)), SEG_T),
            )
        ],
    ]


PROBABILITY_CASES = _probability_cases()


@pytest.mark.parametrize("case", PROBABILITY_CASES, ids=lambda c: f"{c[0]}-{c[1]}")
@given(data=st.data())
@FUZZ
def test_out_of_range_probabilities_raise_naming_the_entry(case, data):
    _, arg, call, valid = case
    value = valid.copy()
    flat = data.draw(st.integers(0, value.size - 1), label="index")
    bad = data.draw(
        st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1 + 1e-9), st.just(np.nan)),
        label="bad value",
    )
    value.flat[flat] = bad
    index = ", ".join(map(str, np.unravel_index(flat, value.shape)))
    pattern = rf"`{arg}` must hold .*\[0, 1\]; got {re.escape(f'{arg}[{index}] = {float(bad)!r}')}"
    with pytest.raises(ValueError, match=pattern):
        call(jnp.asarray(value))
    # Under jit nothing is checked (documented): the call traces and returns a value.
    assert jax.jit(call)(jnp.asarray(value)).shape == ()


@pytest.mark.parametrize(
    "case", [c for c in PROBABILITY_CASES if c[0] in ("categorical_cross_entropy", "kl_divergence",
                                                       "kl_divergence_with_logits")
             and c[1] != "labels"],
    ids=lambda c: f"{c[0]}-{c[1]}",
)
@given(scale=st.floats(0.5, 0.999) | st.floats(1.001, 1.2), row=st.integers(0, 1))
@FUZZ
def test_distributions_must_sum_to_one(case, scale, row):
    _, arg, call, valid = case
    value = valid.copy()
    value[row] *= scale  # still in [0, 1], but the row sums to `scale`
    with pytest.raises(ValueError, match=rf"`{arg}` must hold distributions that sum to 1.*"
                                         rf"{re.escape(repr(float(value[row].sum())))} at index "
                                         rf"\({row},\)"):
        call(jnp.asarray(value))


@given(seed=st.integers(0, 2**16))
@FUZZ
def test_normalised_distributions_pass_within_the_stated_tolerance(seed):
    # Rounding of p / p.sum() in float32 (about sqrt(K) * 6e-8) is far inside sqrt(eps) = 3.5e-4.
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.0, 1.0, size=(3, 50)).astype(np.float32)
    p = p / p.sum(-1, keepdims=True)
    ids = rng.integers(0, 50, size=3)
    got = losses.categorical_cross_entropy(jnp.asarray(p), jnp.asarray(ids))
    ref = -np.mean(np.log(p.astype(np.float64)[np.arange(3), ids]))
    np.testing.assert_allclose(float(got), ref, rtol=1e-5)  # float32 log


def test_the_reported_out_of_range_cases_raise():
    with pytest.raises(ValueError, match=r"`probs`.*probs\[0\] = 1.5"):
        losses.binary_cross_entropy(jnp.array([1.5, -0.3]), jnp.array([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"`targets`.*targets\[0, 0\] = -0.5"):
        losses.kl_divergence(jnp.array([[0.5, 0.5]]), jnp.array([[-0.5, 1.5]]))
    with pytest.raises(ValueError, match=r"`targets`.*targets\[0, 0\] = 2.0"):
        losses.dice(jnp.array([[0.5, 0.5]]), jnp.array([[2.0, -1.0]]))
    with pytest.raises(ValueError, match=r"`counts` must hold counts >= 0; got counts\[0\] = -2.0"):
        losses.poisson_nll(jnp.array([0.0]), jnp.array([-2.0]))
    with pytest.raises(ValueError, match=r"`log_probs`.*<= 0; got log_probs\[0, 1\] = 0.5"):
        losses.nll(jnp.array([[-1.0, 0.5]]), jnp.array([0]))


@given(c=st.floats(max_value=-1e-9, allow_infinity=False) | st.just(np.nan), at=st.integers(0, 2))
@FUZZ
def test_negative_counts_raise(c, at):
    counts = np.array([0.0, 2.0, 5.0])
    counts[at] = c
    with pytest.raises(ValueError, match=re.escape(f"counts[{at}] = {float(c)!r}")):
        losses.poisson_nll(jnp.zeros(3), jnp.asarray(counts))


def test_traced_probabilities_work_under_jit_and_grad():
    p, ids = jnp.array([[0.2, 0.8], [0.6, 0.4]]), jnp.array([1, 0])
    f = lambda q: losses.categorical_cross_entropy(q, ids)
    np.testing.assert_allclose(float(jax.jit(f)(p)), -(np.log(0.8) + np.log(0.6)) / 2, rtol=1e-12)
    g = jax.grad(f)(p)  # d/dp_y (-log p_y / 2) = -1 / (2 p_y)
    np.testing.assert_allclose(np.asarray(g), [[0, -1 / 1.6], [-1 / 1.2, 0]], rtol=1e-12)
    g = jax.jit(jax.grad(lambda q: losses.binary_cross_entropy(q, jnp.array([1.0]))))(
        jnp.array([0.25])
    )
    np.testing.assert_allclose(np.asarray(g), [-4.0], rtol=1e-12)


# --------------------------------------------------------------------------------------------
# 3. NaN in, NaN out, for every registered loss
# --------------------------------------------------------------------------------------------

# Losses whose first argument is range-checked eagerly: a concrete NaN there raises instead.
RANGE_CHECKED_FIRST = {
    "binary_cross_entropy": "probs",
    "categorical_cross_entropy": "probs",
    "kl_divergence": "probs",
    "dice": "probs",
    "tversky": "probs",
    "focal_tversky": "probs",
    "nll": "log_probs",
    "binary_focal": "probs",
    "categorical_focal": "probs",
    "poisson": "rates",
}


@functools.cache
def _jitted(name):
    entry = losses.info(name)
    return jax.jit(lambda first, rest, kwargs: entry.fn(first, *rest, **kwargs))


def _with_nan(first, flat):
    leaves, tree = jax.tree.flatten(first)
    x = np.array(leaves[0], dtype=np.float64)
    x.flat[flat % x.size] = np.nan
    return jax.tree.unflatten(tree, [jnp.asarray(x), *leaves[1:]])


@pytest.mark.parametrize("name", losses.names())
@given(flat=st.integers(0, 10**6))
@SWEEP
def test_nan_in_the_first_argument_gives_a_nan_loss(name, flat):
    first, rest, kwargs = _inputs(name)
    first = _with_nan(first, flat)
    # Under jit no value check runs: the NaN must reach the value.
    assert np.isnan(float(_jitted(name)(first, rest, kwargs))), name
    if name in RANGE_CHECKED_FIRST:
        with pytest.raises(ValueError, match=rf"`{RANGE_CHECKED_FIRST[name]}` must hold.*= nan"):
            losses.info(name).fn(first, *rest, **kwargs)
    else:
        assert np.isnan(float(losses.info(name).fn(first, *rest, **kwargs))), name


@pytest.mark.parametrize(
    "call",
    [
        lambda x: losses.quantile(x, jnp.array([1.0]), tau=0.3),
        lambda x: losses.hinge(x, jnp.array([1.0])),
        lambda x: losses.squared_hinge(x, jnp.array([1.0])),
        lambda x: losses.margin_ranking(x, jnp.array([0.0]), jnp.array([1.0])),
        lambda x: losses.epsilon_insensitive(x, jnp.array([1.0])),
        lambda x: losses.tukey(x, jnp.array([1.0])),
    ],
    ids=["quantile", "hinge", "squared_hinge", "margin_ranking", "epsilon_insensitive", "tukey"],
)
def test_reported_nan_cases_give_nan_value_and_gradient(call):
    # Before: 0.0 (3.658 for Tukey) with gradient 0, i.e. a perfect fit.
    value, grad = jax.jit(jax.value_and_grad(call))(jnp.array([np.nan]))  # one compile
    assert np.isnan(float(value)) and np.isnan(float(grad[0]))


_PP = jax.jit(lambda x: (positive_part(x), jax.grad(positive_part)(x),
                         jax.hessian(positive_part)(x)))


@given(m=st.floats(-1e6, 1e6) | st.just(0.0))
@FUZZ
def test_positive_part_keeps_the_minimum_norm_subgradient(m):
    value, grad, hess = map(float, _PP(jnp.asarray(m)))
    assert value == max(m, 0.0)
    assert grad == (1.0 if m > 0 else 0.0)  # the minimum-norm subgradient 0 at the kink
    assert hess == 0.0


@given(c=st.sampled_from([0.0, 0.5, 1.0]), lp=st.sampled_from([-np.inf, -2.0, np.nan]))
@FUZZ
def test_mul_log_drops_zero_coefficients_only(c, lp):
    got = float(mul_log(jnp.asarray(c), jnp.asarray(lp)))
    if c == 0:
        assert got == 0.0
    else:
        assert (np.isnan(got) and np.isnan(lp)) or got == c * lp


# --------------------------------------------------------------------------------------------
# 4. Empty batches
# --------------------------------------------------------------------------------------------

ELEMENTWISE = [e.name for e in losses.catalog() if e.task == "regression"]


@pytest.mark.parametrize("name", ELEMENTWISE)
@given(shape=st.sampled_from([(0,), (2, 0)]))
@settings(max_examples=2, deadline=None, derandomize=True)
def test_mean_of_an_empty_batch_raises_naming_the_axis(name, shape):
    fn = losses.info(name).fn
    x = jnp.zeros(shape)
    axis = shape.index(0)
    what = "batch axis 0" if axis == 0 else f"axis {axis}"
    with pytest.raises(ValueError, match=re.escape(f"shape {shape}: {what} has size 0")):
        fn(x, x)
    assert float(fn(x, x, reduction="sum")) == 0.0
    assert fn(x, x, reduction="none").shape == shape


def test_empty_batch_raises_for_class_weighted_and_reported_cases():
    with pytest.raises(ValueError, match="batch axis 0 has size 0"):
        losses.mse(jnp.zeros(0), jnp.zeros(0))
    with pytest.raises(ValueError, match="batch axis 0 has size 0"):
        losses.softmax_cross_entropy(jnp.zeros((0, 3)), jnp.zeros(0, int),
                                     class_weights=jnp.ones(3))


# --------------------------------------------------------------------------------------------
# 5. Masked (-inf) logits of wrong classes
# --------------------------------------------------------------------------------------------


def _np_log_softmax(x):
    m = np.max(x, -1, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), -1, keepdims=True))


@functools.cache
def _jit_none(name):
    return jax.jit(functools.partial(losses.info(name).fn, reduction="none"))


@given(seed=st.integers(0, 2**16), gamma=st.sampled_from([0.0, 0.5, 2.0]))
@FEW
def test_masked_wrong_class_logits_give_the_reference_value(seed, gamma):
    rng = np.random.default_rng(seed)
    n, k = 3, 4
    x = rng.normal(size=(n, k)) * 2
    y = rng.integers(0, k, size=n)
    masked = (rng.uniform(size=(n, k)) < 0.5) & (np.arange(k)[None, :] != y[:, None])
    x[masked] = -np.inf
    logp = _np_log_softmax(x)[np.arange(n), y]  # finite: the target is never masked
    ref_ce = -logp
    ref_focal = -((1 - np.exp(logp)) ** gamma) * logp
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    for name, ref, kw in (("softmax_cross_entropy", ref_ce, {}),
                          ("softmax_focal", ref_focal, {"gamma": gamma})):
        eager = losses.info(name).fn(xj, yj, **kw, reduction="none")
        jitted = _jit_none(name)(xj, yj, **kw)  # gamma traced
        np.testing.assert_allclose(np.asarray(eager), ref, rtol=1e-10, err_msg=name)
        np.testing.assert_allclose(np.asarray(jitted), ref, rtol=1e-10, err_msg=name)
    # One-hot float labels take the soft path: 0 * -inf must be 0 there too. (One jitted
    # program, inputs closed over so that the eager value checks still run.)
    soft, g = jax.jit(lambda: (
        losses.softmax_cross_entropy(xj, jnp.asarray(np.eye(k)[y]), reduction="none"),
        jax.grad(lambda a: losses.softmax_cross_entropy(a, yj, reduction="sum"))(xj)))()
    np.testing.assert_allclose(np.asarray(soft), ref_ce, rtol=1e-10)
    p = np.exp(_np_log_softmax(x))
    np.testing.assert_allclose(np.asarray(g), p - np.eye(k)[y], atol=1e-12)  # softmax - onehot


def test_reported_masked_logit_case():
    lg = jnp.array([[0.0, -jnp.inf, 1.0]])
    ref = math.log(1 + math.e)  # -log softmax_0 over the two unmasked classes
    # One jitted program, inputs closed over (the eager value checks still run).
    ce, focal = jax.jit(lambda: (losses.softmax_cross_entropy(lg, jnp.array([0])),
                                 losses.softmax_focal(lg, jnp.array([0]))))()
    assert math.isclose(float(ce), ref)
    p0 = 1 / (1 + math.e)
    assert math.isclose(float(focal), (1 - p0) ** 2 * ref)


# --------------------------------------------------------------------------------------------
# 6. CTC with empty targets
# --------------------------------------------------------------------------------------------


def _np_ctc_brute(log_probs, label, blank):
    """-log sum over every frame-level path that collapses to ``label`` (float64 numpy)."""
    total = 0.0
    for path in itertools.product(range(log_probs.shape[-1]), repeat=log_probs.shape[0]):
        merged = [k for i, k in enumerate(path) if i == 0 or k != path[i - 1]]
        if [k for k in merged if k != blank] == list(label):
            total += np.exp(sum(log_probs[t, k] for t, k in enumerate(path)))
    return -np.log(total)


@given(seed=st.integers(0, 2**16), padded=st.integers(0, 3), blank=st.integers(0, 2),
       width=st.sampled_from([0, 2]))
@FEW
def test_ctc_empty_target_is_minus_log_of_the_all_blank_path(seed, padded, blank, width):
    rng = np.random.default_rng(seed)
    frames, k = 3, 3
    logits = rng.normal(size=(2, frames, k)) * 2
    frame_pad = np.zeros((2, frames))
    frame_pad[1, frames - padded :] = 1  # sequence 1: `padded` trailing frames (3: all)
    labels = np.zeros((2, width), int)  # width 0: labels of shape (B, 0)
    label_pad = np.ones((2, width))  # width 2: every label position padded
    got = losses.ctc(jnp.asarray(logits), jnp.asarray(frame_pad), jnp.asarray(labels),
                     jnp.asarray(label_pad), blank_id=blank, reduction="none")
    logp = _np_log_softmax(logits)
    # PyTorch's semantics for target length 0: -log prod_t p_t(blank) over the unpadded frames.
    ref = [-logp[b, frame_pad[b] == 0, blank].sum() for b in range(2)]
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-10)
    assert math.isclose(ref[0], _np_ctc_brute(logp[0], [], blank), rel_tol=1e-10)


def test_ctc_empty_target_gradient_is_softmax_minus_blank():
    rng = np.random.default_rng(3)
    logits, frame_pad = rng.normal(size=(2, 3, 3)), np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    g = jax.jit(jax.grad(lambda x: losses.ctc(x, jnp.asarray(frame_pad), jnp.zeros((2, 0), int),
                                              jnp.zeros((2, 0)), blank_id=1, reduction="sum")))(
        jnp.asarray(logits))
    # d/dx_t (-log p_t(blank)) = softmax(x_t) - e_blank on every unpadded frame, 0 on padding.
    expected = (np.exp(_np_log_softmax(logits)) - np.eye(3)[1]) * (frame_pad == 0)[..., None]
    np.testing.assert_allclose(np.asarray(g), expected, atol=1e-12)


def test_ctc_mixed_batch_with_an_empty_target_matches_brute_force():
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(2, 3, 3))
    labels, label_pad = np.array([[1, 2], [0, 0]]), np.array([[0.0, 0.0], [1.0, 1.0]])
    got = losses.ctc(jnp.asarray(logits), jnp.zeros((2, 3)), jnp.asarray(labels),
                     jnp.asarray(label_pad), reduction="none")
    logp = _np_log_softmax(logits)
    ref = [_np_ctc_brute(logp[0], [1, 2], 0), _np_ctc_brute(logp[1], [], 0)]
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-10)
    # Hand computation for uniform logits: 3 frames of p(blank) = 1/3 -> 3 log 3.
    uniform = losses.ctc(jnp.zeros((1, 3, 3)), jnp.zeros((1, 3)), jnp.zeros((1, 0), int),
                         jnp.zeros((1, 0)))
    assert math.isclose(float(uniform), 3 * math.log(3), rel_tol=1e-12)


# --------------------------------------------------------------------------------------------
# 7. Boolean options
# --------------------------------------------------------------------------------------------

BOOL_OPTIONS = [
    (e.name, opt) for e in losses.catalog() for opt, default in e.hyperparameters.items()
    if isinstance(default, bool)
]


def test_bool_options_are_found():
    # The introspection below must see every bool option (guards against an empty table).
    assert {("triplet", "swap"), ("ctc", "zero_infinity"), ("gaussian_nll", "full"),
            ("poisson_nll", "full")} <= set(BOOL_OPTIONS)


# Options that change what an argument holds: the recipe draws inputs for the default, these
# convert them for the other setting.
DOMAIN_OPTIONS = {
    ("poisson_nll", "log_input"): lambda first, rest: (jnp.exp(first), rest),  # rates
    ("kl_divergence", "log_predictions"): lambda first, rest: (jnp.log(first), rest),
    ("kl_divergence", "log_target"): lambda first, rest: (first, (jnp.log(rest[0]),)),
}


@pytest.mark.parametrize("case", BOOL_OPTIONS, ids=lambda c: f"{c[0]}-{c[1]}")
@given(value=st.one_of(st.text(max_size=3), st.integers(), st.floats(allow_nan=False),
                       st.none(), st.just([True]), st.just(np.array(True))))
@FUZZ
def test_bool_options_reject_non_bools(case, value):
    name, option = case
    first, rest, kwargs = _inputs(name)
    fn = losses.info(name).fn
    with pytest.raises(TypeError, match=rf"`{option}` must be a bool \(True or False\)"):
        fn(first, *rest, **kwargs, **{option: value})
    default = losses.info(name).hyperparameters[option]
    for ok in (True, False, np.bool_(True)):
        convert = DOMAIN_OPTIONS.get(case) if bool(ok) != default else None
        f, r = convert(first, rest) if convert else (first, rest)
        assert np.ndim(fn(f, *r, **kwargs, **{option: ok})) == 0


def test_reported_swap_case():
    a, p, n = jnp.zeros((1, 2)), jnp.zeros((1, 2)), jnp.ones((1, 2))
    with pytest.raises(TypeError, match=r"`swap` must be a bool.*'no'"):
        losses.triplet(a, p, n, swap="no")
