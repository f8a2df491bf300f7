"""Classification losses: seed examples, float64 references, optax/sklearn parity, derivatives,
saturated inputs, subgradients at kinks, label handling, bad inputs, reductions, jit/vmap."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import central_difference, central_difference_hessian
from scipy.special import rel_entr
from sklearn.metrics import hinge_loss as sk_hinge_loss
from sklearn.metrics import log_loss as sk_log_loss

from lossopt import losses
from lossopt.losses import _classification

N, K = 5, 4  # examples, classes
IGNORE = -100

# --------------------------------------------------------------------------------------------
# Independent float64 references (numpy, written from the textbook / PyTorch definitions).
# Each returns (per-example values, per-example normaliser): "mean" is sum(values)/sum(norm).
# --------------------------------------------------------------------------------------------


def np_log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def np_log_softmax(x, axis=-1):
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def ones_norm(values):
    return values, np.ones_like(values)


def ref_bce(p, y):
    return ones_norm(-(y * np.log(p) + (1 - y) * np.log(1 - p)))


def ref_sigmoid_bce(x, y, pos_weight=None, label_smoothing=0.0):
    y = (1 - label_smoothing) * y + label_smoothing / 2
    pw = 1.0 if pos_weight is None else np.asarray(pos_weight)
    return ones_norm(-(pw * y * np_log_sigmoid(x) + (1 - y) * np_log_sigmoid(-x)))


def ref_cross_entropy(logp, labels, label_smoothing=0.0, class_weights=None, ignore_index=None):
    """PyTorch CrossEntropyLoss semantics, one example at a time (classes on the last axis)."""
    n, k = logp.shape
    w = np.ones(k) if class_weights is None else np.asarray(class_weights, dtype=float)
    values, norms = np.zeros(n), np.zeros(n)
    for i in range(n):
        if labels.ndim == 1:  # class ids
            if ignore_index is not None and labels[i] == ignore_index:
                continue  # contributes to neither sum
            t = np.eye(k)[labels[i]]
        else:
            t = labels[i]
        smoothed = (1 - label_smoothing) * t + label_smoothing / k
        values[i] = -np.sum(w * smoothed * logp[i])
        # torch: sum_i w[y_i] for ids; lossopt's documented extension for soft labels.
        norms[i] = 1.0 if class_weights is None else np.sum(w * t)
    return values, norms


def ref_softmax_ce(x, labels, **kw):
    return ref_cross_entropy(np_log_softmax(x), labels, **kw)


def ref_categorical_ce(p, labels, **kw):
    return ref_cross_entropy(np.log(p), labels, **kw)


def ref_hinge(s, y):
    return ones_norm(np.maximum(0.0, 1 - y * s))


def ref_squared_hinge(s, y):
    return ones_norm(np.maximum(0.0, 1 - y * s) ** 2)


def ref_multiclass_hinge(s, y):
    out = np.empty(len(y))
    for i, yi in enumerate(y):
        others = np.delete(s[i], yi)
        out[i] = max(0.0, 1 + others.max() - s[i, yi])
    return ones_norm(out)


def ref_sigmoid_focal(x, y, gamma=2.0, alpha=None):
    p = 1 / (1 + np.exp(-x))
    ce = -(y * np_log_sigmoid(x) + (1 - y) * np_log_sigmoid(-x))
    p_t = p * y + (1 - p) * (1 - y)
    out = ce * (1 - p_t) ** gamma
    if alpha is not None:
        out = (alpha * y + (1 - alpha) * (1 - y)) * out
    return ones_norm(out)


def ref_softmax_focal(x, labels, gamma=2.0, alpha=None):
    logp = np_log_softmax(x)
    p = np.exp(logp)
    t = np.eye(x.shape[-1])[labels] if labels.ndim == 1 else labels
    a = np.ones(x.shape[-1]) if alpha is None else np.broadcast_to(alpha, (x.shape[-1],))
    return ones_norm(-np.sum(a * t * (1 - p) ** gamma * logp, axis=-1))


def ref_kl(p, t):
    return ones_norm(rel_entr(t, p).sum(-1))


def ref_kl_logits(x, t):
    return ones_norm(rel_entr(t, np.exp(np_log_softmax(x))).sum(-1))


# --------------------------------------------------------------------------------------------
# Seeded data
# --------------------------------------------------------------------------------------------


def probs01(rng, shape=(N,)):
    return rng.uniform(0.05, 0.95, size=shape)


def labels01(rng, shape=(N,)):
    return rng.integers(0, 2, size=shape).astype(np.float64)


def simplex(rng, shape=(N, K)):
    p = rng.uniform(0.05, 1.0, size=shape)
    return p / p.sum(-1, keepdims=True)


def ids(rng, n=N, k=K):
    return rng.integers(0, k, size=n)


def ids_with_ignored(rng):
    y = ids(rng)
    y[[1, 3]] = IGNORE
    return y


def signs(rng, shape=(N,)):
    return 2.0 * labels01(rng, shape) - 1.0


def away_from_margin(rng, y):
    """Scores with |1 - y s| >= 0.2: finite differences never straddle the hinge's kink."""
    m = rng.uniform(0.2, 2.0, size=y.shape) * np.where(rng.random(y.shape) < 0.5, -1, 1)
    return y * (1 - m)


@dataclass(frozen=True)
class Case:
    id: str
    name: str
    draw: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]
    ref: Callable[..., tuple[np.ndarray, np.ndarray]]
    kwargs: dict[str, Any] = field(default_factory=dict)
    smooth: bool = True  # (at the drawn points) for the finite-difference Hessian

    def loss(self, **extra):
        return lambda a, b: getattr(losses, self.name)(a, b, **self.kwargs, **extra)

    def reference(self, first, labels):
        kw = {k: np.asarray(v) if hasattr(v, "shape") else v for k, v in self.kwargs.items()}
        return self.ref(first, labels, **kw)


def _mc_hinge_draw(rng):
    # Keep every margin at least 0.2 from the kink and runner-ups 0.2 apart (no ties).
    y = ids(rng)
    s = np.tile(np.arange(K, dtype=float) * 0.4, (N, 1))
    for i in range(N):
        rng.shuffle(s[i])
    s += rng.choice([-1.5, 0.3, 2.0], size=(N, 1)) * np.eye(K)[y]
    return s, y


CW = np.array([0.5, 2.0, 1.0, 3.0])
PW = np.array([0.5, 2.0, 1.0, 3.0])
ALPHA_K = np.array([0.25, 1.0, 0.5, 2.0])

CASES = [
    Case("bce", "binary_cross_entropy", lambda r: (probs01(r), labels01(r)), ref_bce),
    Case("bce-soft", "binary_cross_entropy", lambda r: (probs01(r), r.uniform(size=N)), ref_bce),
    Case(
        "sbce",
        "sigmoid_binary_cross_entropy",
        lambda r: (3 * r.normal(size=N), labels01(r)),
        ref_sigmoid_bce,
    ),
    Case(
        "sbce-pw-ls",
        "sigmoid_binary_cross_entropy",
        lambda r: (3 * r.normal(size=(3, K)), labels01(r, (3, K))),
        ref_sigmoid_bce,
        {"pos_weight": PW, "label_smoothing": 0.2},
    ),
    Case(
        "cce-ids", "categorical_cross_entropy", lambda r: (simplex(r), ids(r)), ref_categorical_ce
    ),
    Case(
        "cce-soft-ls-cw",
        "categorical_cross_entropy",
        lambda r: (simplex(r), simplex(r)),
        ref_categorical_ce,
        {"label_smoothing": 0.1, "class_weights": CW},
    ),
    Case(
        "cce-ignore",
        "categorical_cross_entropy",
        lambda r: (simplex(r), ids_with_ignored(r)),
        ref_categorical_ce,
        {"ignore_index": IGNORE},
    ),
    Case(
        "sce-ids",
        "softmax_cross_entropy",
        lambda r: (2 * r.normal(size=(N, K)), ids(r)),
        ref_softmax_ce,
    ),
    Case(
        "sce-soft",
        "softmax_cross_entropy",
        lambda r: (2 * r.normal(size=(N, K)), simplex(r)),
        ref_softmax_ce,
    ),
    Case(
        "sce-ls",
        "softmax_cross_entropy",
        lambda r: (2 * r.normal(size=(N, K)), ids(r)),
        ref_softmax_ce,
        {"label_smoothing": 0.3},
    ),
    Case(
        "sce-cw",
        "softmax_cross_entropy",
        lambda r: (2 * r.normal(size=(N, K)), ids(r)),
        ref_softmax_ce,
        {"class_weights": CW},
    ),
    Case(
        "sce-cw-soft",
        "softmax_cross_entropy",
        lambda r: (2 * r.normal(size=(N, K)), simplex(r)),
        ref_softmax_ce,
        {"class_weights": CW},
    ),
    Case(
        "sce-ignore-cw-ls",
        "softmax_cross_entropy",
        lambda r: (2 * r.normal(size=(N, K)), ids_with_ignored(r)),
        ref_softmax_ce,
        {"class_weights": CW, "ignore_index": IGNORE, "label_smoothing": 0.2},
    ),
    Case(
        "hinge",
        "hinge",
        lambda r: (lambda y: (away_from_margin(r, y), y))(signs(r)),
        ref_hinge,
        smooth=False,
    ),
    Case(
        "sq-hinge",
        "squared_hinge",
        lambda r: (lambda y: (away_from_margin(r, y), y))(signs(r)),
        ref_squared_hinge,
        smooth=False,
    ),
    Case("mc-hinge", "multiclass_hinge", _mc_hinge_draw, ref_multiclass_hinge, smooth=False),
    Case(
        "sfocal",
        "sigmoid_focal",
        lambda r: (3 * r.normal(size=N), labels01(r)),
        ref_sigmoid_focal,
    ),
    Case(
        "sfocal-a-g05-soft",
        "sigmoid_focal",
        lambda r: (3 * r.normal(size=N), r.uniform(size=N)),
        ref_sigmoid_focal,
        {"alpha": 0.25, "gamma": 0.5},
    ),
    Case(
        "sfocal-g0",
        "sigmoid_focal",
        lambda r: (3 * r.normal(size=N), labels01(r)),
        ref_sigmoid_focal,
        {"gamma": 0.0, "alpha": 0.75},
    ),
    Case(
        "mfocal",
        "softmax_focal",
        lambda r: (2 * r.normal(size=(N, K)), ids(r)),
        ref_softmax_focal,
    ),
    Case(
        "mfocal-alpha-g15-soft",
        "softmax_focal",
        lambda r: (2 * r.normal(size=(N, K)), simplex(r)),
        ref_softmax_focal,
        {"alpha": ALPHA_K, "gamma": 1.5},
    ),
    Case("kl", "kl_divergence", lambda r: (simplex(r), simplex(r)), ref_kl),
    Case(
        "kl-logits",
        "kl_divergence_with_logits",
        lambda r: (2 * r.normal(size=(N, K)), simplex(r)),
        ref_kl_logits,
    ),
]
CASE_IDS = [c.id for c in CASES]


def J(fn, *args, **kwargs):
    """Call ``fn(*args, **kwargs)`` under ``jax.jit``: one compilation instead of op-by-op eager
    dispatch (keeps this file fast on a shared 2-core machine). Eager behaviour has its own tests
    (bad inputs, ``test_jit_and_eager_agree``)."""
    return jax.jit(lambda *a: fn(*a, **kwargs))(*args)


def _compiled(case: Case):
    """Everything the per-case tests need from ``case``'s loss, in ONE compiled function shared
    by those tests (the drawn arrays have the same shapes for every seed, so no retrace)."""
    return _compiled_by_id(case.id)


@functools.cache
def _compiled_by_id(case_id: str):
    case = CASES[CASE_IDS.index(case_id)]
    mean_loss = case.loss()

    def run(a, b, w):
        zero = jnp.zeros_like(w)
        return (
            case.loss(reduction="none")(a, b),
            case.loss(reduction="sum")(a, b),
            mean_loss(a, b),
            case.loss(weights=w)(a, b),
            case.loss(weights=w, reduction="none")(a, b),
            jax.value_and_grad(lambda x: case.loss(weights=zero)(x, b))(a),
            jax.grad(mean_loss)(a, b),
            jax.hessian(mean_loss)(a, b),
        )

    # chex counts traces per function name and source: a name per case gives each case its own
    # budget of one trace, shared by all the tests that use it (a retrace fails loudly).
    run.__name__ = f"run_{case_id}"
    return jax.jit(chex.assert_max_traces(run, n=1))


def _draw(case: Case, seed: int = 0):
    return case.draw(np.random.default_rng(seed))


def _mean(values, norms, weights=None):
    w = np.ones_like(values) if weights is None else weights
    return np.sum(w * values) / np.sum(w * norms)


def test_every_classification_loss_has_a_case():
    # This module's public losses (other modules may register classification losses of their own).
    public = set(_classification.__all__)
    assert {c.name for c in CASES} == public
    assert all(losses.info(name).task == "classification" for name in public)


# --------------------------------------------------------------------------------------------
# Known answers
# --------------------------------------------------------------------------------------------


def test_seed_document_bce_example():
    y_true = np.array([1, 0, 1, 1])
    y_pred = np.array([0.9, 0.1, 0.8, 0.4])
    # The seed's numpy formula (its 1e-15 clip does not bind here).
    expected = -np.mean(y_true * np.log(y_pred) + (1 - y_true) * np.log(1 - y_pred))
    got = losses.binary_cross_entropy(jnp.asarray(y_pred), jnp.asarray(y_true))
    # Same float64 formula two ways: a few ulps.
    assert float(got) == pytest.approx(expected, rel=1e-14)
    assert round(float(got), 4) == 0.3375  # the seed's printed precision


def test_seed_document_cce_example():
    y_true = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    y_pred = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5]])
    # The seed divides the total by n = y_true.shape[0]: our mean over examples.
    expected = -np.sum(y_true * np.log(y_pred)) / y_true.shape[0]
    # One jitted program, inputs closed over (the eager value checks still run).
    one_hot, from_ids = jax.jit(lambda: (
        losses.categorical_cross_entropy(jnp.asarray(y_pred), jnp.asarray(y_true, float)),
        losses.categorical_cross_entropy(jnp.asarray(y_pred), jnp.asarray([0, 1, 2]))))()
    assert float(one_hot) == pytest.approx(expected, rel=1e-14)  # a few ulps
    assert float(from_ids) == pytest.approx(expected, rel=1e-14)
    assert round(expected, 4) == 0.4243  # -(ln .7 + ln .8 + ln .5) / 3, by hand


def test_pytorch_weighted_mean_with_ignore_index_by_hand():
    # torch.nn.CrossEntropyLoss(weight=[3, 1, 1], ignore_index=-100) on these logits gives
    # (3 * log(1 + 2 e^-2) + 1 * log 3) / (3 + 1): the ignored row counts in neither sum.
    logits = jnp.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [5.0, -1.0, 0.0]])
    got = jax.jit(lambda: losses.softmax_cross_entropy(  # one compile; inputs closed over
        logits,
        jnp.array([0, 2, -100]),
        class_weights=jnp.array([3.0, 1.0, 1.0]),
        ignore_index=-100,
    ))()
    expected = (3 * np.log1p(2 * np.exp(-2.0)) + np.log(3.0)) / 4
    assert float(got) == pytest.approx(expected, rel=1e-14)  # closed form, a few ulps


def test_all_ignored_gives_zero_and_finite_gradient():
    logits = jnp.ones((3, K))
    f = lambda x: losses.softmax_cross_entropy(x, jnp.full(3, IGNORE), ignore_index=IGNORE)
    value, g = J(jax.value_and_grad(f), logits)
    assert float(value) == 0.0
    assert np.all(np.asarray(g) == 0.0)


# --------------------------------------------------------------------------------------------
# Float64 references, every option
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_reference_reductions_weights_and_jit(case):
    """One compiled evaluation per case: every reduction, per-example weights, all-zero weights
    (value 0 and a finite gradient) against the float64 reference; then eager vs jit."""
    first, labels = _draw(case, seed=1)
    values, norms = case.reference(first, labels)
    w = np.random.default_rng(12).uniform(0.0, 2.0, size=values.shape)
    w[0] = 0.0
    a, b = jnp.asarray(first), jnp.asarray(labels)
    out = _compiled(case)(a, b, jnp.asarray(w))
    none, total, mean, weighted, weighted_none = out[:5]
    zero_value, zero_grad = out[5]
    # Same float64 math in a different arrangement (log_softmax vs explicit loops): round-off
    # of a few ulps of terms of size ~10.
    tol = dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(none, values, **tol)
    np.testing.assert_allclose(total, values.sum(), **tol)
    np.testing.assert_allclose(mean, _mean(values, norms), **tol)
    # mean = sum(w * l) / sum(w * norm); "none" returns w * l.
    np.testing.assert_allclose(weighted, _mean(values, norms, w), **tol)
    np.testing.assert_allclose(weighted_none, w * values, **tol)
    assert float(zero_value) == 0.0
    assert np.all(np.isfinite(np.asarray(zero_grad)))
    # Eager (validation on concrete values included) and compiled agree; XLA may reorder the
    # float64 sums: a few ulps.
    np.testing.assert_allclose(case.loss()(a, b), mean, rtol=1e-13)


def test_one_hot_labels_equal_class_ids_with_every_option():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(N, K)), ids(rng)
    kw = {"label_smoothing": 0.15, "class_weights": jnp.asarray(CW)}
    for name in ("softmax_cross_entropy", "categorical_cross_entropy"):
        first = jnp.asarray(x if name.startswith("softmax") else simplex(rng))
        fn = getattr(losses, name)
        # One jitted program, inputs closed over (the eager value checks still run).
        a, b = jax.jit(lambda fn=fn, first=first: (
            fn(first, jnp.asarray(y), **kw), fn(first, jnp.asarray(np.eye(K)[y]), **kw)))()
        assert float(a) == pytest.approx(float(b), rel=1e-14), name  # same terms, same order


def test_class_axis_argument_matches_moving_the_axis():
    # PyTorch layout (N, C, d): class axis 1.
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, K, 2))
    y = rng.integers(0, K, size=(3, 2))
    got = J(losses.softmax_cross_entropy, jnp.asarray(x), jnp.asarray(y), axis=1, reduction="none")
    values, _ = ref_softmax_ce(np.moveaxis(x, 1, -1).reshape(-1, K), y.reshape(-1))
    np.testing.assert_allclose(got, values.reshape(3, 2), rtol=1e-12)  # float64 round-off
    soft = np.moveaxis(np.eye(K)[y], -1, 1)
    got_soft = J(
        losses.categorical_cross_entropy,
        jax.nn.softmax(jnp.asarray(x), axis=1),
        jnp.asarray(soft),
        axis=1,
        reduction="none",
    )
    np.testing.assert_allclose(got_soft, values.reshape(3, 2), rtol=1e-12)


def test_sklearn_parity():
    rng = np.random.default_rng(6)
    p, y = probs01(rng), np.array([0, 1, 1, 0, 1])
    # sklearn's log_loss clips at the dtype's eps; far from binding for p in [0.05, 0.95].
    assert float(J(losses.binary_cross_entropy, jnp.asarray(p), jnp.asarray(y))) == pytest.approx(
        sk_log_loss(y, p), rel=1e-12
    )
    q, yk = simplex(rng), np.array([0, 1, 2, 3, 1])
    assert float(J(losses.categorical_cross_entropy, jnp.asarray(q), jnp.asarray(yk))) == (
        pytest.approx(sk_log_loss(yk, q, labels=range(K)), rel=1e-12)
    )
    s = rng.normal(size=N) * 2
    ys = 2.0 * y - 1.0
    assert float(J(losses.hinge, jnp.asarray(s), jnp.asarray(ys))) == pytest.approx(
        sk_hinge_loss(ys, s), rel=1e-12
    )
    sm, ym = _mc_hinge_draw(rng)
    assert float(J(losses.multiclass_hinge, jnp.asarray(sm), jnp.asarray(ym))) == pytest.approx(
        sk_hinge_loss(ym, sm, labels=np.arange(K)), rel=1e-12
    )


# --------------------------------------------------------------------------------------------
# optax parity (optax returns per-example values: compare with reduction="none")
# --------------------------------------------------------------------------------------------

OPTAX = [
    ("sbce", lambda x, y: optax.losses.sigmoid_binary_cross_entropy(x, y)),
    ("sce-ids", lambda x, y: optax.losses.softmax_cross_entropy_with_integer_labels(x, y)),
    ("sce-soft", lambda x, y: optax.losses.softmax_cross_entropy(x, y)),
    (
        "sce-ls",
        lambda x, y: optax.losses.softmax_cross_entropy(
            x, optax.losses.smooth_labels(jax.nn.one_hot(y, K, dtype=x.dtype), 0.3)
        ),
    ),
    ("hinge", lambda s, y: optax.losses.hinge_loss(s, y)),
    ("mc-hinge", lambda s, y: optax.losses.multiclass_hinge_loss(s, y)),
    ("sfocal", lambda x, y: optax.losses.sigmoid_focal_loss(x, y)),
    (
        "sfocal-a-g05-soft",
        lambda x, y: optax.losses.sigmoid_focal_loss(x, y, alpha=0.25, gamma=0.5),
    ),
    # optax takes log-predictions; our kl_divergence takes probabilities.
    ("kl", lambda p, t: optax.losses.kl_divergence(jnp.log(p), t)),
    ("kl-logits", lambda x, t: optax.losses.kl_divergence(jax.nn.log_softmax(x), t)),
    (
        "mfocal",
        lambda x, y: (
            optax.losses.softmax_cross_entropy_with_integer_labels(x, y)
            * (1 - jnp.exp(-optax.losses.softmax_cross_entropy_with_integer_labels(x, y))) ** 2
        ),
    ),
]


@pytest.mark.parametrize(("case_id", "optax_fn"), OPTAX, ids=[o[0] for o in OPTAX])
def test_optax_parity(case_id, optax_fn):
    case = CASES[CASE_IDS.index(case_id)]
    first, labels = map(jnp.asarray, _draw(case, seed=7))
    got, expected = J(
        lambda a, b: (case.loss(reduction="none")(a, b), optax_fn(a, b)), first, labels
    )
    # Both float64, equivalent formulas (optax's focal weight uses logsumexp): round-off only.
    np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Derivatives against central finite differences of the numpy references (float64)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_gradient_and_hessian_match_finite_differences(case):
    first, labels = _draw(case, seed=8)
    ref = lambda x: _mean(*case.reference(x, labels))
    w = jnp.ones(case.reference(first, labels)[0].shape)
    *_, g, hess = _compiled(case)(jnp.asarray(first), jnp.asarray(labels), w)
    # Drawn points are >= 0.05 from the probability bounds and >= 0.2 from every hinge kink,
    # so h = 1e-6 gives truncation ~h^2 |f'''| ~ 1e-10 and round-off ~eps |f| / h ~ 1e-10.
    np.testing.assert_allclose(g, central_difference(ref, first, step=1e-6),
                               rtol=1e-6, atol=1e-8)
    hess = np.asarray(hess).reshape(first.size, first.size)
    # Second differences with h = 1e-4: truncation ~h^2 |f''''| ~ 1e-7 (|f''''| up to ~1e3 for
    # probabilities near 0.05), round-off ~eps |f| / h^2 ~ 1e-8.
    np.testing.assert_allclose(hess, central_difference_hessian(ref, first, step=1e-4),
                               rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------------
# Saturated inputs: +-1e4 logits, probabilities exactly 0 and 1, zero targets (float32 and 64)
# --------------------------------------------------------------------------------------------

BIG = 1e4
SAT_X = np.array([BIG, -BIG, BIG, -BIG, 0.0, 3.0])
SAT_Y = np.array([1.0, 1.0, 0.0, 0.0, 1.0, 0.3])
SAT_XK = np.array([[BIG, -BIG, 0.0, 5.0], [-BIG, -BIG, -BIG, BIG], [0.0, BIG, BIG, -BIG]])
SAT_IDS = np.array([1, 3, 0])
SAT_SOFT = np.array([[0.0, 1.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0]])
SAT_P = np.array([0.0, 1.0, 0.0, 1.0, 0.5])
SAT_PY = np.array([1.0, 1.0, 0.0, 0.0, 0.0])
SAT_PK = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.25, 0.25]])
SAT_TK = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.5, 0.0, 0.5]])

SATURATED = [
    ("sigmoid_binary_cross_entropy", SAT_X, SAT_Y, {}),
    ("sigmoid_binary_cross_entropy", SAT_X, SAT_Y, {"pos_weight": 3.0, "label_smoothing": 0.1}),
    ("sigmoid_focal", SAT_X, SAT_Y, {}),
    ("sigmoid_focal", SAT_X, SAT_Y, {"gamma": 0.5, "alpha": 0.25}),
    ("hinge", SAT_X, 2 * (SAT_Y > 0.5) - 1.0, {}),
    ("squared_hinge", SAT_X, 2 * (SAT_Y > 0.5) - 1.0, {}),
    ("softmax_cross_entropy", SAT_XK, SAT_IDS, {}),
    ("softmax_cross_entropy", SAT_XK, SAT_SOFT, {"label_smoothing": 0.1, "class_weights": CW}),
    ("softmax_focal", SAT_XK, SAT_IDS, {}),
    ("softmax_focal", SAT_XK, SAT_SOFT, {"gamma": 0.5}),
    ("multiclass_hinge", SAT_XK, SAT_IDS, {}),
    ("kl_divergence_with_logits", SAT_XK, SAT_SOFT, {}),
    ("binary_cross_entropy", SAT_P, SAT_PY, {}),
    ("categorical_cross_entropy", SAT_PK, SAT_IDS, {}),
    ("categorical_cross_entropy", SAT_PK, SAT_TK, {"label_smoothing": 0.1}),
    ("kl_divergence", SAT_PK, SAT_TK, {}),
]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_finite_value_gradient_hessian_when_saturated(dtype):
    # All entries of SATURATED in one compiled function per dtype (one compilation, not 16).
    def value_grad_hess(name, labels, kwargs):
        lab = jnp.asarray(labels, dtype=dtype) if labels.dtype.kind == "f" else jnp.asarray(labels)
        f = lambda x: getattr(losses, name)(x, lab, **kwargs, reduction="sum")
        return lambda x: (f(x), jax.grad(f)(x), jax.hessian(f)(x))

    fns = [value_grad_hess(name, labels, kwargs) for name, _, labels, kwargs in SATURATED]
    firsts = [jnp.asarray(first, dtype=dtype) for _, first, _, _ in SATURATED]
    results = jax.jit(lambda xs: [fn(x) for fn, x in zip(fns, xs, strict=True)])(firsts)
    for (name, _, _, kwargs), (value, g, h) in zip(SATURATED, results, strict=True):
        where = f"{name} {kwargs}"
        assert value.dtype == dtype and g.dtype == dtype and h.dtype == dtype, where
        assert np.isfinite(value), where
        assert np.all(np.isfinite(g)), where
        assert np.all(np.isfinite(h)), where


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_saturated_values_are_exact(dtype):
    x = jnp.asarray(SAT_X, dtype=dtype)
    y = jnp.asarray(SAT_Y, dtype=dtype)
    xk = jnp.asarray(SAT_XK, dtype=dtype)
    sbce, focal, ce, mfocal = J(
        lambda x, y, xk, ids: (
            losses.sigmoid_binary_cross_entropy(x, y, reduction="none"),
            losses.sigmoid_focal(x, y, reduction="none"),
            losses.softmax_cross_entropy(xk, ids, reduction="none"),
            losses.softmax_focal(xk, ids, reduction="none"),
        ),
        x,
        y,
        xk,
        jnp.asarray(SAT_IDS),
    )
    # Confidently wrong: -log sigmoid(-1e4) = 1e4 (representable exactly in float32);
    # confidently right: 0. The focal factor is 1 when wrong and 0 when right.
    np.testing.assert_allclose(sbce[:4], [0.0, BIG, BIG, 0.0], rtol=1e-7, atol=0)
    np.testing.assert_allclose(focal[:4], [0.0, BIG, BIG, 0.0], rtol=1e-7, atol=0)
    # Row 0: class 1 at -1e4 against a max of 1e4: 2e4 (+ e^-1e4 terms that underflow).
    # rtol 2e-7: two float32 ulps at 1e4 (the float64 results are exact to round-off).
    np.testing.assert_allclose(ce, [2 * BIG, 0.0, BIG + np.log(2.0)], rtol=2e-7, atol=0)
    np.testing.assert_allclose(mfocal, [2 * BIG, 0.0, BIG + np.log(2.0)], rtol=2e-7, atol=0)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_probabilities_at_zero_use_the_documented_clamp_and_do_not_stall(dtype):
    eps = float(jnp.finfo(dtype).eps)
    p = jnp.asarray([0.0, 1.0, 1.0], dtype=dtype)
    y = jnp.asarray([1.0, 0.0, 1.0], dtype=dtype)
    q = jnp.asarray([[1.0, 0.0]], dtype=dtype)
    t = jnp.asarray([[0.0, 1.0]], dtype=dtype)

    @jax.jit
    def run(p, q):
        bce = lambda p_: losses.binary_cross_entropy(p_, y, reduction="sum")
        cce = lambda q_: losses.categorical_cross_entropy(q_, jnp.asarray([1]), reduction="sum")
        kl = lambda q_: losses.kl_divergence(q_, t)
        values = losses.binary_cross_entropy(p, y, reduction="none")
        return values, jax.grad(bce)(p), jax.grad(cce)(q), jax.grad(kl)(q)

    values, g, g_cce, g_kl = run(p, q)
    # -log(max(p, eps)) with eps the machine epsilon: 15.94 in float32, 36.04 in float64.
    np.testing.assert_allclose(values, [-np.log(eps), -np.log(eps), 0.0], rtol=1e-6)
    # d/dp of -log(max(p, eps)) passed through as -1/eps (a plain clip would give 0 here).
    np.testing.assert_allclose(g[:2], [-1 / eps, 1 / eps], rtol=1e-6)
    np.testing.assert_allclose(g_cce, [[0.0, -1 / eps]], rtol=1e-6)
    np.testing.assert_allclose(g_kl, [[0.0, -1 / eps]], rtol=1e-6)


def test_kl_with_zero_targets_is_exact_and_differentiable_in_targets():
    p = jnp.asarray([[0.2, 0.3, 0.5]])
    t = jnp.asarray([[0.0, 0.4, 0.6]])
    expected = 0.4 * np.log(0.4 / 0.3) + 0.6 * np.log(0.6 / 0.5)  # 0 log 0 = 0, by hand
    value, gt, gx = J(
        lambda p, t: (
            losses.kl_divergence(p, t),
            jax.grad(lambda t_: losses.kl_divergence(p, t_))(t),
            jax.grad(lambda x: losses.kl_divergence_with_logits(x, t))(jnp.log(p)),
        ),
        p,
        t,
    )
    assert float(value) == pytest.approx(expected, rel=1e-14)
    assert np.all(np.isfinite(gt))
    np.testing.assert_allclose(gx, np.asarray(p) - np.asarray(t), rtol=1e-12)  # softmax - t


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.id in ("sce-ids", "bce", "mfocal")], ids=lambda c: c.id
)
def test_float32_matches_float64_reference(case):
    first, labels = _draw(case, seed=9)
    values, norms = case.reference(first, labels)
    lab = jnp.asarray(labels, jnp.float32) if labels.dtype.kind == "f" else jnp.asarray(labels)
    got = J(case.loss(), jnp.asarray(first, jnp.float32), lab)
    assert got.dtype == jnp.float32
    # float32 round-off (eps 1.2e-7) accumulated over a handful of operations.
    assert float(got) == pytest.approx(_mean(values, norms), rel=1e-5)


# --------------------------------------------------------------------------------------------
# Minimum-norm subgradients at the kinks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "scores", "labels", "expected"),
    [
        ("hinge", [1.0, -1.0], [1.0, -1.0], [0.0, 0.0]),  # exactly at the margin y s = 1
        ("squared_hinge", [1.0, -1.0], [1.0, -1.0], [0.0, 0.0]),
        ("hinge", [0.5, 2.0], [1.0, -1.0], [-1.0, 1.0]),  # violated: -y
        ("multiclass_hinge", [[2.0, 1.0, 0.0]], [0], [[0.0, 0.0, 0.0]]),  # margin exactly 1
        # Violated with two tied runner-ups: the +1 is shared equally (minimum norm).
        ("multiclass_hinge", [[0.0, 0.5, 0.5]], [0], [[-1.0, 0.5, 0.5]]),
    ],
)
def test_minimum_norm_subgradient_at_kinks(name, scores, labels, expected):
    fn = getattr(losses, name)
    lab = jnp.asarray(labels) if name == "multiclass_hinge" else jnp.asarray(labels, float)
    g = J(jax.grad(lambda s: fn(s, lab, reduction="sum")), jnp.asarray(scores))
    np.testing.assert_array_equal(g, expected)


# --------------------------------------------------------------------------------------------
# Labels and bad inputs
# --------------------------------------------------------------------------------------------

X = jnp.zeros((3, K))
P = jnp.full((3, K), 1.0 / K)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: losses.binary_cross_entropy(jnp.full(3, 0.5), jnp.ones(4)),
            ValueError,
            r"probs.*labels.*\(3,\).*\(4,\)",
        ),
        (
            lambda: losses.sigmoid_binary_cross_entropy(jnp.zeros((3, 1)), jnp.ones(3)),
            ValueError,
            "same shape",
        ),
        (
            lambda: losses.sigmoid_binary_cross_entropy(jnp.zeros(3), jnp.array([0.0, 2.0, 1.0])),
            ValueError,
            r"labels.*\[0, 1\].*2\.0",
        ),
        (
            lambda: losses.sigmoid_binary_cross_entropy(
                jnp.zeros(3), jnp.ones(3), label_smoothing=1.5
            ),
            ValueError,
            r"label_smoothing.*\[0.0, 1.0\].*1.5",
        ),
        (
            lambda: losses.sigmoid_binary_cross_entropy(
                jnp.zeros((2, K)), jnp.ones((2, K)), pos_weight=jnp.ones(3)
            ),
            ValueError,
            r"pos_weight.*\(2, 4\).*\(3,\)",
        ),
        (
            lambda: losses.sigmoid_binary_cross_entropy(jnp.zeros(3), jnp.ones(3), pos_weight=-1.0),
            ValueError,
            "pos_weight.*>= 0",
        ),
        (
            lambda: losses.binary_cross_entropy(jnp.full(3, 0.5), jnp.ones(3), eps=0.0),
            ValueError,
            "eps",
        ),
        # Class ids vs one-hot: decided by dtype and shape.
        (
            lambda: losses.softmax_cross_entropy(X, jnp.zeros(3)),
            TypeError,
            "labels.*integer class ids.*float",
        ),
        (
            lambda: losses.softmax_cross_entropy(X, jnp.zeros((3, K), int)),
            ValueError,
            "integer `labels`.*one-hot.*astype\\(float\\)",
        ),
        (
            lambda: losses.softmax_cross_entropy(X, jnp.zeros(4, int)),
            ValueError,
            r"labels.*\(3,\).*\(3, 4\).*\(4,\)",
        ),
        (
            lambda: losses.softmax_cross_entropy(X, jnp.array([0, 4, 1])),
            ValueError,
            r"class ids in \[0, 4\).*4",
        ),
        (
            lambda: losses.softmax_cross_entropy(X, jnp.array([0, -1, 1])),
            ValueError,
            r"class ids in \[0, 4\).*-1",
        ),
        (
            lambda: losses.categorical_cross_entropy(P, jnp.array([0, 5, 1]), ignore_index=2),
            ValueError,
            r"class ids in \[0, 4\) or ignore_index=2.*5",
        ),
        (
            lambda: losses.softmax_cross_entropy(X, jnp.array([0, 1, 2]), label_smoothing=-0.1),
            ValueError,
            "label_smoothing",
        ),
        (
            lambda: losses.softmax_cross_entropy(
                X, jnp.array([0, 1, 2]), class_weights=jnp.ones(3)
            ),
            ValueError,
            r"class_weights.*\(4,\).*\(3,\)",
        ),
        (
            lambda: losses.softmax_cross_entropy(
                X, jnp.array([0, 1, 2]), class_weights=-jnp.ones(K)
            ),
            ValueError,
            "class_weights.*>= 0",
        ),
        (
            lambda: losses.softmax_cross_entropy(X, P, ignore_index=-100),
            ValueError,
            "ignore_index.*class ids only",
        ),
        (
            lambda: losses.softmax_cross_entropy(X, jnp.array([0, 1, 2]), ignore_index=1.5),
            TypeError,
            "ignore_index.*int",
        ),
        (
            lambda: losses.softmax_cross_entropy(X, jnp.array([0, 1, 2]), axis=2),
            ValueError,
            "axis.*ndim 2.*2",
        ),
        (
            lambda: losses.softmax_cross_entropy(X, jnp.array([0, 1, 2]), reduction="avg"),
            ValueError,
            r"reduction.*'mean'.*'avg'",
        ),
        (
            lambda: losses.softmax_cross_entropy(X, jnp.array([0, 1, 2]), weights=jnp.ones(4)),
            ValueError,
            "weights",
        ),
        (
            lambda: losses.hinge(jnp.zeros(3), jnp.array([0.0, 1.0, 1.0])),
            ValueError,
            r"labels.*\{-1, \+1\}.*0\.0",
        ),
        (lambda: losses.hinge(jnp.zeros(3), jnp.ones(2)), ValueError, "scores.*labels"),
        (
            lambda: losses.multiclass_hinge(jnp.zeros((3, 1)), jnp.zeros(3, int)),
            ValueError,
            "K >= 2",
        ),
        (lambda: losses.multiclass_hinge(X, P), TypeError, "integer class ids"),
        (
            lambda: losses.sigmoid_focal(jnp.zeros(3), jnp.ones(3), gamma=-1.0),
            ValueError,
            "gamma.*>= 0.*-1.0",
        ),
        (
            lambda: losses.sigmoid_focal(jnp.zeros(3), jnp.ones(3), alpha=1.5),
            ValueError,
            r"alpha.*\[0.0, 1.0\].*1.5",
        ),
        (
            lambda: losses.softmax_focal(X, jnp.array([0, 1, 2]), alpha=jnp.ones(3)),
            ValueError,
            r"alpha.*scalar or shape \(4,\)",
        ),
        (lambda: losses.softmax_focal(X, jnp.array([0, 1, 2]), gamma=-0.5), ValueError, "gamma"),
        (lambda: losses.kl_divergence(P, jnp.ones((3, 3)) / 3), ValueError, "probs.*targets"),
        (
            lambda: losses.kl_divergence(jnp.array(0.5), jnp.array(0.5)),
            ValueError,
            "distribution axis",
        ),
        (
            lambda: losses.kl_divergence_with_logits(X, np.array([["a"] * K] * 3)),
            TypeError,
            "targets",
        ),
    ],
)
def test_bad_inputs_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_ignore_index_may_lie_outside_the_class_range():
    got = losses.categorical_cross_entropy(P, jnp.array([0, 5, 1]), ignore_index=5)
    assert float(got) == pytest.approx(np.log(K), rel=1e-14)  # uniform probs: -log(1/K)


def test_out_of_range_ids_under_jit_give_nan_not_a_silent_zero():
    f = jax.jit(lambda x, y: losses.softmax_cross_entropy(x, y, reduction="none"))
    out = np.asarray(f(X, jnp.array([0, 7, 1])))
    assert np.isnan(out[1]) and np.all(np.isfinite(out[[0, 2]]))
    g = jax.jit(lambda s, y: losses.multiclass_hinge(s, y))
    assert np.isnan(float(g(X, jnp.array([0, -3, 1]))))


def test_bool_one_hot_labels_are_accepted():
    y = np.array([0, 2, 3])
    got = losses.softmax_cross_entropy(X, jnp.asarray(np.eye(K, dtype=bool)[y]))
    assert float(got) == pytest.approx(np.log(K), rel=1e-14)  # zero logits: log K


# --------------------------------------------------------------------------------------------
# JAX contract: jit vs eager, no recompilation, vmap, traced hyperparameters
# --------------------------------------------------------------------------------------------


def test_second_call_does_not_retrace():
    traces = []

    def f(x, y):
        traces.append(None)
        return losses.softmax_cross_entropy(x, y, label_smoothing=0.1)

    jf = jax.jit(f)
    rng = np.random.default_rng(13)
    for _ in range(3):
        jf(jnp.asarray(rng.normal(size=(N, K))), jnp.asarray(ids(rng)))
    assert len(traces) == 1


def test_vmap_over_batches_and_traced_hyperparameters():
    rng = np.random.default_rng(14)
    # Slices taken in numpy (the same values): eager jnp indexing compiles one program each.
    x_np, y_np = rng.normal(size=(3, N, K)), rng.integers(0, K, size=(3, N))
    x, y = jnp.asarray(x_np), jnp.asarray(y_np)
    z_np, yb_np = x_np[0, :, 0], (y_np[0] > 1).astype(x_np.dtype)
    z, yb = jnp.asarray(z_np), jnp.asarray(yb_np)
    gammas = jnp.array([0.0, 1.0, 2.0])

    @jax.jit
    def run(x, y, gammas):
        batched = jax.vmap(lambda a, b: losses.softmax_focal(a, b, gamma=1.0))(x, y)
        sweep = jax.vmap(lambda g: losses.sigmoid_focal(z, yb, gamma=g))(gammas)
        return batched, sweep

    batched, sweep = run(x, y, gammas)
    for i, g in enumerate([0.0, 1.0, 2.0]):
        # float64 references: round-off only.
        lane = ref_softmax_focal(x_np[i], y_np[i], gamma=1.0)[0].mean()
        np.testing.assert_allclose(batched[i], lane, rtol=1e-12)
        ref = ref_sigmoid_focal(z_np, yb_np, gamma=g)[0].mean()
        np.testing.assert_allclose(sweep[i], ref, rtol=1e-12)
