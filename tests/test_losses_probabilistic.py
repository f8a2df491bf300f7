"""Probabilistic losses (nll, gaussian_nll, poisson_nll): float64 references, scipy likelihoods,
optax parity, derivatives, tiny variances and saturated inputs, bad inputs, reductions, jit/vmap."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import central_difference
from scipy import stats
from scipy.special import gammaln

from lossopt import losses
from lossopt.losses import _probabilistic

N, K = 6, 4
IGNORE = -100
CW = np.array([0.5, 2.0, 1.0, 3.0])

# --------------------------------------------------------------------------------------------
# Independent float64 references: (per-example values, per-example normaliser).
# --------------------------------------------------------------------------------------------


def ref_nll(logp, labels, class_weights=None, ignore_index=None):
    """torch.nn.NLLLoss, one example at a time (classes on the last axis)."""
    values, norms = np.zeros(len(labels)), np.zeros(len(labels))
    for i, y in enumerate(labels):
        if ignore_index is not None and y == ignore_index:
            continue
        w = 1.0 if class_weights is None else class_weights[y]
        values[i], norms[i] = -w * logp[i, y], w
    return values, norms


def ref_gaussian(mu, y, variance, full=False, eps=1e-6):
    v = np.maximum(np.broadcast_to(variance, np.shape(mu)), eps)
    out = 0.5 * (np.log(v) + (y - mu) ** 2 / v)
    if full:
        out = out + 0.5 * np.log(2 * np.pi)
    return out, np.ones_like(out)


def ref_poisson(x, c, full=False):
    out = np.exp(x) - c * x
    if full:
        with np.errstate(divide="ignore", invalid="ignore"):
            stirling = c * np.log(c) - c + 0.5 * np.log(2 * np.pi * c)
        out = out + np.where(c > 1, stirling, 0.0)
    return out, np.ones_like(out)


@dataclass(frozen=True)
class Case:
    id: str
    name: str
    draw: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]
    ref: Callable[..., tuple[np.ndarray, np.ndarray]]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def loss(self, **extra):
        return lambda a, b: getattr(losses, self.name)(a, b, **self.kwargs, **extra)


def _logp(rng):
    p = rng.uniform(0.05, 1.0, size=(N, K))
    return np.log(p / p.sum(-1, keepdims=True))


def _ids_with_ignored(rng):
    y = rng.integers(0, K, size=N)
    y[[1, 4]] = IGNORE
    return y


VAR = np.random.default_rng(100).uniform(0.3, 2.0, size=N)
VAR_CLAMPED = np.array([1e-9, 0.0, 1e-6, 0.5, 2.0, 1e-30])  # four at or below eps = 1e-6

CASES = [
    Case("nll", "nll", lambda r: (_logp(r), r.integers(0, K, size=N)), ref_nll),
    Case(
        "nll-cw-ignore",
        "nll",
        lambda r: (_logp(r), _ids_with_ignored(r)),
        ref_nll,
        {"class_weights": CW, "ignore_index": IGNORE},
    ),
    Case(
        "gauss",
        "gaussian_nll",
        lambda r: (r.normal(size=N), r.normal(size=N)),
        ref_gaussian,
        {"variance": VAR},
    ),
    Case(
        "gauss-full-scalar",
        "gaussian_nll",
        lambda r: (r.normal(size=N), r.normal(size=N)),
        ref_gaussian,
        {"variance": 0.7, "full": True},
    ),
    Case(
        "gauss-clamped",
        "gaussian_nll",
        lambda r: (r.normal(size=N) * 1e-3, r.normal(size=N) * 1e-3),
        ref_gaussian,
        {"variance": VAR_CLAMPED, "eps": 1e-6},
    ),
    Case(
        "poisson",
        "poisson_nll",
        lambda r: (r.normal(size=N), r.poisson(3.0, size=N).astype(float)),
        ref_poisson,
    ),
    Case(
        "poisson-full",
        "poisson_nll",
        # Counts 0, 1 (no Stirling term) and above, plus a non-integer count.
        lambda r: (r.normal(size=N), np.array([0.0, 1.0, 2.0, 5.0, 12.0, 3.5])),
        ref_poisson,
        {"full": True},
    ),
]
CASE_IDS = [c.id for c in CASES]


def _draw(case, seed):
    return case.draw(np.random.default_rng(seed))


def _reference(case, first, labels):
    return case.ref(first, labels, **case.kwargs)


def _mean(values, norms, weights=None):
    w = np.ones_like(values) if weights is None else weights
    return np.sum(w * values) / np.sum(w * norms)


def test_every_probabilistic_loss_has_a_case():
    # This module's public losses (other modules may register probabilistic losses of their own).
    public = set(_probabilistic.__all__)
    assert {c.name for c in CASES} == public
    assert all(losses.info(name).task == "probabilistic" for name in public)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_reference_reductions_weights_and_jit(case):
    """One compiled evaluation per case: every reduction, per-example weights, all-zero weights
    (value 0 and a finite gradient) against the float64 reference; then eager vs jit."""
    first, labels = _draw(case, seed=1)
    values, norms = _reference(case, first, labels)
    w = np.random.default_rng(12).uniform(0.0, 2.0, size=values.shape)
    w[0] = 0.0

    @jax.jit
    def run(a, b, w):
        zero = jnp.zeros_like(w)
        return (
            case.loss(reduction="none")(a, b),
            case.loss(reduction="sum")(a, b),
            case.loss()(a, b),
            case.loss(weights=w)(a, b),
            jax.value_and_grad(lambda x: case.loss(weights=zero)(x, b))(a),
        )

    a, b = jnp.asarray(first), jnp.asarray(labels)
    none, total, mean, weighted, (zero_value, zero_grad) = run(a, b, jnp.asarray(w))
    # Same float64 formulas, different arrangement: round-off relative to terms of size ~10
    # (the clamped Gaussian has terms ~1e6, still a relative comparison).
    tol = dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(none, values, **tol)
    np.testing.assert_allclose(total, values.sum(), **tol)
    np.testing.assert_allclose(mean, _mean(values, norms), **tol)
    np.testing.assert_allclose(weighted, _mean(values, norms, w), **tol)
    assert float(zero_value) == 0.0
    assert np.all(np.isfinite(np.asarray(zero_grad)))
    # Eager and compiled agree; XLA may reorder float64 sums: a few ulps.
    np.testing.assert_allclose(case.loss()(a, b), mean, rtol=1e-13)


# --------------------------------------------------------------------------------------------
# Likelihoods from scipy, PyTorch semantics by hand, optax parity
# --------------------------------------------------------------------------------------------


def test_gaussian_full_is_the_exact_negative_log_density():
    rng = np.random.default_rng(2)
    mu, y, var = rng.normal(size=N), rng.normal(size=N), rng.uniform(0.1, 3.0, size=N)
    got = jax.jit(
        lambda m, t, v: losses.gaussian_nll(m, t, variance=v, full=True, reduction="none")
    )(mu, y, var)
    # scipy's normal log-density, independent code: float64 round-off.
    np.testing.assert_allclose(got, -stats.norm.logpdf(y, mu, np.sqrt(var)), rtol=1e-12)


def test_poisson_plus_log_factorial_is_the_exact_negative_log_pmf():
    rng = np.random.default_rng(3)
    x, c = rng.normal(size=N), rng.poisson(4.0, size=N).astype(float)
    got = jax.jit(lambda a, b: losses.poisson_nll(a, b, reduction="none"))(x, c)
    # l + log(c!) = -log Poisson(c; e^x) (scipy's pmf, independent code): float64 round-off.
    np.testing.assert_allclose(
        np.asarray(got) + gammaln(c + 1), -stats.poisson.logpmf(c, np.exp(x)), rtol=1e-12
    )


def test_poisson_full_stirling_term_approximates_log_factorial():
    c = np.array([2.0, 5.0, 20.0, 100.0])
    x = np.zeros_like(c)
    full = jax.jit(lambda a, b: losses.poisson_nll(a, b, full=True, reduction="none"))(x, c)
    part = jax.jit(lambda a, b: losses.poisson_nll(a, b, reduction="none"))(x, c)
    # Stirling's error log(c!) - stirling(c) lies in (1/(12c+1), 1/(12c)) (Robbins, 1955).
    err = gammaln(c + 1) - (np.asarray(full) - np.asarray(part))
    assert np.all(err > 1 / (12 * c + 1) - 1e-12) and np.all(err < 1 / (12 * c) + 1e-12)


def test_nll_pytorch_weighted_mean_by_hand():
    # torch.nn.NLLLoss(weight=[3, 1, 1], ignore_index=-100):
    # (3 * -log .5 + 1 * -log .8) / (3 + 1); the ignored row counts in neither sum.
    lp = jnp.log(jnp.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8], [0.2, 0.2, 0.6]]))
    got = jax.jit(lambda: losses.nll(  # one compile; inputs closed over, so checked eagerly
        lp, jnp.array([0, 2, -100]), class_weights=jnp.array([3.0, 1.0, 1.0]), ignore_index=-100
    ))()
    expected = (3 * -np.log(0.5) - np.log(0.8)) / 4
    assert float(got) == pytest.approx(expected, rel=1e-14)  # closed form, a few ulps


@pytest.mark.parametrize(
    "kwargs", [{}, {"class_weights": CW, "ignore_index": IGNORE}], ids=["plain", "cw-ignore"]
)
def test_nll_of_log_softmax_is_softmax_cross_entropy_and_optax(kwargs):
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.normal(size=(N, K)) * 2)
    y = jnp.asarray(_ids_with_ignored(rng) if kwargs else rng.integers(0, K, size=N))

    @jax.jit
    def run(x, y):
        return (
            losses.nll(jax.nn.log_softmax(x), y, **kwargs, reduction="none"),
            losses.softmax_cross_entropy(x, y, **kwargs, reduction="none"),
            optax.losses.softmax_cross_entropy_with_integer_labels(x, jnp.where(y < 0, 0, y)),
        )

    nll, ce, ox = run(x, y)
    # Same per-example quantity three ways (log_softmax gathered vs one-hot sums): round-off.
    np.testing.assert_allclose(nll, ce, rtol=1e-12, atol=1e-12)
    if not kwargs:
        np.testing.assert_allclose(nll, ox, rtol=1e-12, atol=1e-12)


def test_nll_class_axis_matches_moving_the_axis():
    rng = np.random.default_rng(5)
    lp = np.log(rng.dirichlet(np.ones(K), size=(3, 2)))  # (3, 2, K)
    y = rng.integers(0, K, size=(3, 2))
    torch_layout = np.moveaxis(lp, -1, 1)  # (N, C, d) as PyTorch
    got = jax.jit(lambda a, b: losses.nll(a, b, axis=1, reduction="none"))(torch_layout, y)
    expected = -np.take_along_axis(lp, y[..., None], -1)[..., 0]
    np.testing.assert_allclose(got, expected, rtol=1e-15)  # a gather: exact


# --------------------------------------------------------------------------------------------
# Derivatives against central finite differences of the numpy references (float64)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [c for c in CASES if c.id != "gauss-clamped"], ids=lambda c: c.id)
def test_gradient_and_hessian_match_finite_differences(case):
    first, labels = _draw(case, seed=6)
    ref = lambda x: _mean(*_reference(case, x, labels))
    loss = case.loss()
    b = jnp.asarray(labels)
    grad = jax.jit(lambda a: jax.grad(loss)(a, b))
    hess = jax.jit(lambda a: jax.hessian(loss)(a, b))
    # h = 1e-6: truncation ~h^2 |f'''| and round-off ~eps |f| / h, both ~1e-10 here.
    fd_grad = central_difference(ref, first, step=1e-6)
    np.testing.assert_allclose(grad(first), fd_grad, rtol=1e-6, atol=1e-8)
    h = np.asarray(hess(jnp.asarray(first))).reshape(first.size, first.size)
    # Differences of the gradient with h = 1e-5: truncation ~1e-10, round-off ~1e-11 / 1e-5.
    fd_hess = central_difference(grad, first, step=1e-5).reshape(h.shape)
    np.testing.assert_allclose(h, fd_hess, rtol=1e-5, atol=1e-7)


def test_gaussian_gradient_in_the_variance_matches_finite_differences():
    rng = np.random.default_rng(7)
    mu, y = rng.normal(size=N), rng.normal(size=N)
    var = rng.uniform(0.3, 2.0, size=N)
    f = lambda v: losses.gaussian_nll(jnp.asarray(mu), jnp.asarray(y), variance=v)
    ref = lambda v: ref_gaussian(mu, y, v)[0].mean()
    g = jax.jit(jax.grad(f))(jnp.asarray(var))
    # Away from the clamp: the true derivative 0.5 (1/v - r^2/v^2) / N; FD error ~1e-10.
    np.testing.assert_allclose(g, central_difference(ref, var, step=1e-6), rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------------------------
# Tiny variances, saturated log-probabilities, large log-rates (float32 and float64)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_finite_value_gradient_hessian_at_extremes(dtype):
    lp = jnp.asarray([[0.0, -jnp.inf, -jnp.inf], [-1e4, 0.0, -1e4], [-1e4, -1e4, 0.0]], dtype)
    ids = jnp.asarray([0, 0, 2])
    mu = jnp.asarray([0.0, 1e4, -3.0, 0.5], dtype)
    y = jnp.asarray([0.0, 0.0, -3.0, 1.0], dtype)
    var = jnp.asarray([0.0, 1e-30, 1e-6, 1e-40], dtype)
    x = jnp.asarray([-1e4, 0.0, 20.0, -80.0], dtype)
    c = jnp.asarray([3.0, 0.0, 7.0, 1.0], dtype)

    def vgh(f, a):
        return f(a), jax.grad(f)(a), jax.hessian(f)(a)

    @jax.jit
    def run(lp, mu, var, x):
        return {
            "nll": vgh(lambda a: losses.nll(a, ids, reduction="sum"), lp),
            "gaussian/mean": vgh(lambda a: losses.gaussian_nll(a, y, variance=var), mu),
            "gaussian/variance": vgh(lambda v: losses.gaussian_nll(mu, y, variance=v), var),
            "gaussian/full": vgh(lambda a: losses.gaussian_nll(a, y, variance=var, full=True), mu),
            "poisson": vgh(lambda a: losses.poisson_nll(a, c, full=True), x),
        }

    for where, (value, g, h) in run(lp, mu, var, x).items():
        assert value.dtype == dtype and g.dtype == dtype, where
        assert np.isfinite(value), where
        assert np.all(np.isfinite(g)), where
        assert np.all(np.isfinite(h)), where


def test_nll_ignores_minus_infinity_in_other_classes():
    lp = jnp.log(jnp.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]))
    value, g = jax.jit(jax.value_and_grad(lambda a: losses.nll(a, jnp.array([0, 1]))))(lp)
    assert float(value) == pytest.approx(np.log(2) / 2, rel=1e-14)  # (0 + log 2) / 2
    np.testing.assert_array_equal(g, [[-0.5, 0.0, 0.0], [0.0, -0.5, 0.0]])


def test_gaussian_clamp_is_straight_through_below_eps():
    eps, r = 1e-3, 0.1
    f = lambda v: losses.gaussian_nll(jnp.zeros(1), jnp.full(1, r), variance=v, eps=eps)
    value, g = jax.jit(jax.value_and_grad(f))(jnp.asarray([1e-5]))
    # Value at the clamp v = eps; derivative evaluated at eps, passed through (PyTorch's
    # no-grad clamp): 0.5 (1/eps - r^2/eps^2) = 0.5 (1e3 - 1e4), not 0. Exact up to round-off.
    assert float(value) == pytest.approx(0.5 * (np.log(eps) + r * r / eps), rel=1e-14)
    assert float(g[0]) == pytest.approx(0.5 * (1 / eps - r * r / eps**2), rel=1e-12)


def test_poisson_overflows_honestly_rather_than_clamping():
    x = jnp.asarray([100.0], jnp.float32)  # e^100 exceeds float32's max (3.4e38)
    value = jax.jit(lambda a: losses.poisson_nll(a, jnp.ones(1, jnp.float32)))(x)
    assert np.isinf(float(value))  # documented: no silent clamp; a solver sees NONFINITE


# --------------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------------

LP = jnp.log(jnp.full((3, K), 1.0 / K))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: losses.nll(LP, jnp.zeros(3)), TypeError, "labels.*integer class ids"),
        (
            lambda: losses.nll(LP, jnp.full((3, K), 0.25)),
            TypeError,
            "labels.*integer class ids.*softmax_cross_entropy",
        ),
        (lambda: losses.nll(LP, jnp.zeros(4, int)), ValueError, r"labels.*\(3,\).*\(4,\)"),
        (lambda: losses.nll(LP, jnp.array([0, K, 1])), ValueError, r"class ids in \[0, 4\)"),
        (
            lambda: losses.nll(LP, jnp.zeros(3, int), class_weights=jnp.ones(2)),
            ValueError,
            r"class_weights.*\(4,\).*\(2,\)",
        ),
        (lambda: losses.nll(LP, jnp.zeros(3, int), ignore_index="x"), TypeError, "ignore_index"),
        (lambda: losses.nll(LP, jnp.zeros(3, int), axis=-3), ValueError, "axis"),
        (
            lambda: losses.nll(LP, jnp.zeros(3, int), reduction="batchmean"),
            ValueError,
            r"reduction.*'batchmean'",
        ),
        (
            lambda: losses.gaussian_nll(jnp.zeros(3), jnp.zeros(4), variance=1.0),
            ValueError,
            r"mean.*targets.*\(3,\).*\(4,\)",
        ),
        (
            lambda: losses.gaussian_nll(jnp.zeros(3), jnp.zeros(3), variance=jnp.ones(2)),
            ValueError,
            r"mean.*variance.*\(3,\).*\(2,\)",
        ),
        (
            lambda: losses.gaussian_nll(jnp.zeros(3), jnp.zeros(3), variance=jnp.ones((3, 1))),
            ValueError,
            "variance",
        ),
        (
            lambda: losses.gaussian_nll(
                jnp.zeros(2), jnp.zeros(2), variance=jnp.array([1.0, -1.0])
            ),
            ValueError,
            "variance.*>= 0",
        ),
        (
            lambda: losses.gaussian_nll(jnp.zeros(2), jnp.zeros(2), variance=1.0, eps=0.0),
            ValueError,
            "eps.*> 0",
        ),
        (
            lambda: losses.gaussian_nll(jnp.zeros(2), jnp.zeros(2), variance=1.0, full=1),
            TypeError,
            "full.*bool",
        ),
        (lambda: losses.gaussian_nll(jnp.zeros(2), jnp.zeros(2)), TypeError, "variance"),
        (
            lambda: losses.poisson_nll(jnp.zeros(2), jnp.zeros(3)),
            ValueError,
            r"log_rate.*counts.*\(2,\).*\(3,\)",
        ),
        (lambda: losses.poisson_nll(jnp.zeros(2), jnp.zeros(2), full="yes"), TypeError, "full"),
        (
            lambda: losses.poisson_nll(jnp.zeros(2), jnp.zeros(2), weights=jnp.ones(3)),
            ValueError,
            "weights",
        ),
    ],
)
def test_bad_inputs_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------------------------------
# JAX contract: vmap over a traced variance (heteroscedastic sweep) and over batches
# --------------------------------------------------------------------------------------------


def test_vmap_over_variances_and_batches():
    rng = np.random.default_rng(8)
    mu, y = rng.normal(size=N), rng.normal(size=N)
    variances = np.array([0.5, 1.0, 2.0])
    sweep = jax.jit(jax.vmap(lambda v: losses.gaussian_nll(mu, y, variance=v)))(variances)
    for i, v in enumerate(variances):
        # float64 reference: round-off only.
        np.testing.assert_allclose(sweep[i], ref_gaussian(mu, y, v)[0].mean(), rtol=1e-13)
    lp = np.stack([_logp(rng) for _ in range(3)])
    ids = rng.integers(0, K, size=(3, N))
    batched = jax.jit(jax.vmap(lambda a, b: losses.nll(a, b)))(lp, ids)
    for i in range(3):
        np.testing.assert_allclose(batched[i], _mean(*ref_nll(lp[i], ids[i])), rtol=1e-13)
