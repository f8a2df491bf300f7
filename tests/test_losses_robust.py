"""Robust losses: float64 references, rho/psi/IRLS-weight table, Barron's family and its limits,
the adaptive NLL's partition function, learning alpha, edge-case derivatives, bad inputs."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import third_party
from scipy import integrate, special

from lossopt import losses
from lossopt.losses import robust

# Independent float64 references, from the formulas in the issue / papers (z = r / c).


def _barron_ref(r, alpha, scale):
    z2 = (np.asarray(r) / scale) ** 2
    if alpha == 2:
        return 0.5 * z2
    if alpha == 0:
        return np.log(0.5 * z2 + 1)
    if alpha == -np.inf:
        return 1 - np.exp(-0.5 * z2)
    b = abs(alpha - 2)
    return b / alpha * ((z2 / b + 1) ** (alpha / 2) - 1)


def _tukey_ref(r, c):
    z = r / c
    return np.where(np.abs(z) <= 1, c**2 / 6 * (1 - (1 - z**2) ** 3), c**2 / 6)


# name -> (rho, psi = rho', hyperparameters): psi differentiated by hand.
REFERENCES = {
    "tukey": (
        _tukey_ref,
        lambda r, c: np.where(np.abs(r) <= c, r * (1 - (r / c) ** 2) ** 2, 0.0),
        {"c": 1.3},
    ),
    "cauchy": (
        lambda r, c: c**2 / 2 * np.log(1 + (r / c) ** 2),
        lambda r, c: r / (1 + (r / c) ** 2),
        {"c": 0.7},
    ),
    "geman_mcclure": (
        lambda r, c: 2 * (r / c) ** 2 / ((r / c) ** 2 + 4),
        lambda r, c: 16 * r / c**2 / ((r / c) ** 2 + 4) ** 2,
        {"c": 0.8},
    ),
    "welsch": (
        lambda r, c: 1 - np.exp(-((r / c) ** 2) / 2),
        lambda r, c: r / c**2 * np.exp(-((r / c) ** 2) / 2),
        {"c": 1.5},
    ),
    "barron": (
        lambda r, alpha, c: _barron_ref(r, alpha, c),
        lambda r, alpha, c: r / c**2 * ((r / c) ** 2 / abs(alpha - 2) + 1)
        ** (alpha / 2 - 1),
        {"alpha": 0.6, "c": 1.4},
    ),
}
NAMES = sorted(REFERENCES)


def _data(seed=0, shape=(6, 3)):
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape) * 2.0, rng.normal(size=shape) * 2.0


def test_registered_with_properties():
    for name in NAMES:
        entry = losses.info(name)
        assert (entry.task, entry.input_kind) == ("regression", "values")
        # Redescending or bounded-influence penalties, all C2, none convex for every setting.
        assert (entry.convex, entry.smooth, entry.robust) == (False, True, True), name
    nll = losses.info("barron_nll")
    assert (nll.task, nll.probabilistic, nll.hyperparameters) == (
        "probabilistic",
        True,
        {"alpha": 1.0, "c": 1.0},
    )


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_float64_reference(name, reduction):
    rho_ref, _, hyper = REFERENCES[name]
    p, t = _data()
    expected = rho_ref(p - t, **hyper)
    expected = {"mean": expected.mean(), "sum": expected.sum(), "none": expected}[reduction]
    got = losses.get(name, **hyper)(jnp.asarray(p), jnp.asarray(t), reduction=reduction)
    # Different float64 formulas (Barron's reference is the raw power form, whose "- 1"
    # cancels up to ~1e-13 relative at the smallest residuals here).
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("name", NAMES)
def test_psi_and_weight_match_hand_derivatives_and_autodiff(name):
    rho_ref, psi_ref, hyper = REFERENCES[name]
    penalty = robust.PENALTIES[name]
    rho = lambda x: penalty.rho(x, **hyper)

    @jax.jit
    def evaluate(r):
        return (rho(r), penalty.psi(r, **hyper), penalty.weight(r, **hyper),
                jax.vmap(jax.grad(rho))(r), jax.grad(jax.grad(rho))(jnp.zeros((), r.dtype)))

    r = np.concatenate([np.linspace(-4.0, 4.0, 33), [1e-9, -1e-12]])  # r[16] = 0
    value, psi, weight, autodiff, second = map(np.asarray, evaluate(jnp.asarray(r)))
    # Closed forms vs hand derivative vs autodiff of rho: same quantity, float64 round-off.
    np.testing.assert_allclose(value, rho_ref(r, **hyper), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(psi, psi_ref(r, **hyper), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(autodiff, psi, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(weight * r, psi, rtol=1e-12, atol=1e-15)
    # The IRLS weight at r = 0 is the limit psi(r)/r = rho''(0).
    np.testing.assert_allclose(weight[16], second, rtol=1e-12)


def _closed_forms():
    z = np.array([0.0, 0.3, 1.0, 2.5, 10.0])
    return z, {
        2.0: 0.5 * z**2,
        1.0: np.sqrt(z**2 + 1) - 1,
        0.0: np.log(0.5 * z**2 + 1),
        -2.0: 2 * z**2 / (z**2 + 4),
        -np.inf: 1 - np.exp(-0.5 * z**2),
    }


@pytest.mark.parametrize("alpha", [2.0, 1.0, 0.0, -2.0, -np.inf])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_barron_special_cases_equal_closed_forms(alpha, dtype):
    z, closed = _closed_forms()
    scale = 0.5
    r = jnp.asarray(z * scale, dtype)
    got = losses.barron(r, jnp.zeros_like(r), alpha=alpha, c=scale, reduction="none")
    assert got.dtype == dtype
    # float64: identical closed forms up to round-off; float32: a few ulps of ~50.
    tol = 1e-13 if dtype == jnp.float64 else 1e-6
    np.testing.assert_allclose(np.asarray(got, np.float64), closed[alpha], rtol=tol, atol=tol)


def test_members_of_barrons_family_at_the_same_scale():
    p, t = map(jnp.asarray, _data(seed=4))
    c = 0.9
    pairs = [
        (losses.geman_mcclure(p, t, c=c, reduction="none"),
         losses.barron(p, t, alpha=-2.0, c=c, reduction="none")),
        (losses.welsch(p, t, c=c, reduction="none"),
         losses.barron(p, t, alpha=-jnp.inf, c=c, reduction="none")),
        (losses.cauchy(p, t, c=c, reduction="none"),
         c**2 / 2 * losses.barron(p, t, alpha=0.0, c=c / math.sqrt(2), reduction="none")),
    ]
    for a, b in pairs:
        # Same function through two code paths: float64 round-off.
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


_barron_rho = jax.jit(lambda z, a: robust.barron.rho(z, alpha=a))


@jax.jit
def _barron_derivatives(r, alpha, scale):
    """Gradient and Hessian of sum(rho) with respect to r, alpha and scale together."""
    f = lambda r, a, s: jnp.sum(robust.barron.rho(r, alpha=a, c=s))
    argnums = (0, 1, 2)
    return jax.grad(f, argnums)(r, alpha, scale), jax.hessian(f, argnums)(r, alpha, scale)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_barron_is_continuous_and_differentiable_near_its_limits(dtype):
    eps = float(jnp.finfo(dtype).eps)
    z = jnp.asarray([0.0, 0.5, 3.0, 100.0], dtype)
    zz = np.asarray(z, np.float64) ** 2
    rho = lambda a: np.asarray(_barron_rho(z, jnp.asarray(a, dtype)), np.float64)
    # alpha -> 2: rho = z^2/2 - (b z^2/4)(log(z^2/b) - 1) + O(b^2) with b = |alpha - 2|,
    # plus ~50 eps relative round-off (exp of arguments up to log(z^2/b) ~ 50).
    for b in (8 * eps, 1e-4):
        bound = b * zz / 4 * (np.log(np.maximum(zz, 1e-300) / b) + 2) + 50 * eps * zz
        assert np.all(np.abs(rho(2 - b) - zz / 2) <= bound), (b, rho(2 - b) - zz / 2)
        assert np.all(np.abs(rho(2 + b) - zz / 2) <= bound), b
    # alpha -> 0: drho/dalpha = -L/2 + L^2/4 + z^2/(2(2 + z^2)), L = log(1 + z^2/2).
    log_term = np.log1p(zz / 2)
    slope = -log_term / 2 + log_term**2 / 4 + zz / (2 * (2 + zz))
    for a in (eps, 1e-5):
        for sign in (1, -1):
            # First-order Taylor: remainder O(a^2 L^3); round-off ~100 eps relative.
            np.testing.assert_allclose(rho(sign * a), log_term + sign * a * slope,
                                       rtol=200 * eps, atol=a * a * 10 * (1 + log_term.max() ** 3))
    # alpha -> -inf: Welsch (the O(1/|alpha|) correction is ~1e-8 z^4 here).
    np.testing.assert_allclose(rho(-1e8), -np.expm1(-zz / 2), rtol=1e-6, atol=1e-7)
    # Every derivative finite at every special value, at r = 0 too.
    for a in (-np.inf, -1e6, -2.0, 0.0, eps, 1.0, 2.0 - 8 * eps, 2.0, 2.0 + 8 * eps, 4.0):
        grads, hessians = _barron_derivatives(z[:3], jnp.asarray(a, dtype), jnp.asarray(1.3, dtype))
        for leaf in jax.tree_util.tree_leaves((grads, hessians)):
            assert np.all(np.isfinite(np.asarray(leaf))), a


def test_barron_alpha_derivative_matches_finite_differences():
    r = jnp.asarray([0.2, 1.0, 4.0])
    slope = jax.jit(jax.grad(lambda a: jnp.sum(robust.barron.rho(r, alpha=a, c=0.8))))
    for a in (-5.0, -2.0, 1e-4, 0.5, 1.0, 1.5, 3.0):
        h = 1e-5
        fd = (_barron_ref(np.asarray(r), a + h, 0.8).sum() - _barron_ref(np.asarray(r), a - h, 0.8)
              .sum()) / (2 * h)
        # Central difference of the numpy reference: truncation h^2 f''' ~1e-9, round-off
        # eps/h ~1e-11 (times the 1/alpha cancellation of the raw formula near 0: ~1e-7).
        np.testing.assert_allclose(float(slope(a)), fd, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------------
# Partition function and adaptive NLL
# ------------------------------------------------------------------------------------------


def _log_z_quad(alpha):
    f = lambda x: math.exp(-float(_barron_ref(x, alpha, 1.0)))
    inner, _ = integrate.quad(f, 0, 1, epsabs=0, epsrel=1e-13, limit=200)
    outer, _ = integrate.quad(f, 1, np.inf, epsabs=0, epsrel=1e-13, limit=200)
    return math.log(2 * (inner + outer))


def test_log_partition_closed_forms():
    closed = {
        0.0: math.log(math.pi * math.sqrt(2)),
        1.0: math.log(2 * math.e * special.k1(1.0)),
        2.0: 0.5 * math.log(2 * math.pi),
    }
    for alpha, expected in closed.items():
        # Spline through float64 quadrature values: ~1e-10 interpolation error (module doc).
        assert float(robust.barron_log_partition(alpha)) == pytest.approx(expected, abs=1e-9)


def test_log_partition_and_its_derivative_match_adaptive_quadrature():
    alphas = [0.02, 0.77, 1.31, 1.999]
    got = jax.vmap(robust.barron_log_partition)(jnp.asarray(alphas))
    grads = jax.vmap(jax.grad(robust.barron_log_partition))(jnp.asarray(alphas))
    for a, value, slope in zip(alphas, np.asarray(got), np.asarray(grads), strict=True):
        # scipy's adaptive quadrature (rel. 1e-13) vs the spline (interpolation ~1e-10).
        assert value == pytest.approx(_log_z_quad(a), abs=1e-9)
        h = 1e-4 * min(a, 2 - a)
        fd = (_log_z_quad(a + h) - _log_z_quad(a - h)) / (2 * h)
        # Spline derivative error ~h_knot^3 |f''''| ~1e-7; the difference quotient's own
        # truncation (h^2 f''') and round-off (1e-13/h) stay below 1e-6.
        assert slope == pytest.approx(fd, rel=1e-5, abs=1e-5)


def test_nll_is_a_normalised_density():
    nll = jax.jit(lambda x, a, s: losses.barron_nll(x, jnp.zeros_like(x), alpha=a, c=s,
                                                     reduction="sum"))
    for alpha, scale in [(0.0, 0.7), (0.8, 1.7), (2.0, 1.0)]:
        density = lambda x, a=alpha, s=scale: math.exp(-float(nll(jnp.asarray([x]), a, s)))
        mass = sum(integrate.quad(density, lo, hi, limit=400)[0]
                   for lo, hi in [(-np.inf, -1), (-1, 1), (1, np.inf)])
        # quad's default tolerance 1.5e-8 plus the 1e-9 error in log Z.
        assert mass == pytest.approx(1.0, abs=1e-7), (alpha, scale)


def test_nll_rejects_alpha_outside_0_2_and_gives_nan_when_traced():
    x = jnp.ones(3)
    with pytest.raises(ValueError, match="alpha"):
        losses.barron_nll(x, x, alpha=-0.5)
    with pytest.raises(ValueError, match="alpha"):
        losses.barron_nll(x, x, alpha=2.5)
    traced = jax.jit(lambda a: losses.barron_nll(x, jnp.zeros(3), alpha=a))
    assert np.isnan(float(traced(2.5))) and np.isfinite(float(traced(1.0)))


@jax.jit
def _fit_alpha(residuals, theta0):
    """Maximum likelihood (alpha, scale) by optax's L-BFGS, alpha = 2 sigmoid(theta) in (0, 2).

    (Adam also moves alpha down, but crawls along the curved alpha-scale valley: Cauchy data
    want scale ~8 at alpha = 1 and ~0.7 at alpha = 0.)
    """

    def objective(params):
        return losses.barron_nll(residuals, jnp.zeros_like(residuals),
                                 alpha=2 * jax.nn.sigmoid(params[0]), c=jnp.exp(params[1]))

    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)
    params = jnp.stack([theta0, jnp.log(jnp.median(jnp.abs(residuals)))])  # robust init scale

    def step(carry, _):
        params, state = carry
        value, grad = value_and_grad(params, state=state)
        updates, state = opt.update(grad, state, params, value=value, grad=grad,
                                    value_fn=objective)
        return (optax.apply_updates(params, updates), state), None

    with third_party():  # optax.lbfgs mixes int32 counts with int64 (strict promotion refuses)
        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=60)
    return 2 * jax.nn.sigmoid(params[0]), jnp.exp(params[1])


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        # Cauchy residuals are Barron's alpha = 0 (scale gamma / sqrt 2): the fit runs to 0.
        ("cauchy", lambda alpha: alpha < 0.2),
        # Student-t with 3 degrees of freedom: heavier than Gaussian, lighter than Cauchy.
        ("student3", lambda alpha: 0.3 < alpha < 1.5),
        # Control: Gaussian residuals keep alpha near 2 (2000 draws: the MLE is ~1.9).
        ("gaussian", lambda alpha: alpha > 1.7),
    ],
)
def test_learning_alpha_on_heavy_tailed_data_moves_it_below_2(kind, check):
    rng = np.random.default_rng(2024)
    draw = {
        "cauchy": lambda: rng.standard_cauchy(2000),
        "student3": lambda: rng.standard_t(3, 2000),
        "gaussian": lambda: rng.normal(size=2000),
    }[kind]
    theta0 = jnp.asarray(math.log(1.98 / 0.02))  # start at alpha = 1.98: nearly Gaussian
    alpha, scale = _fit_alpha(jnp.asarray(draw()), theta0)
    assert np.isfinite(float(scale)) and check(float(alpha)), (kind, float(alpha))


# ------------------------------------------------------------------------------------------
# Edge cases, IRLS, contract
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_finite_value_gradient_hessian_at_zero_residual_and_at_c(name, dtype):
    _, _, hyper = REFERENCES[name]
    c = hyper.get("c", hyper.get("scale"))
    p = jnp.asarray([0.0, c, -c, 1e4], dtype)
    loss = lambda x: losses.get(name, **hyper)(x, jnp.zeros_like(x), reduction="sum")
    results = jax.jit(lambda x: (loss(x), jax.grad(loss)(x), jax.hessian(loss)(x)))(p)
    for value in results:
        assert value.dtype == dtype and np.all(np.isfinite(np.asarray(value))), name
    # Every member has curvature rho''(0) = 1 (classical) or 1/c^2 (scaled units).
    scaled = 1.0 if name in ("tukey", "cauchy") else 1 / c**2
    assert float(results[2][0, 0]) == pytest.approx(scaled, rel=1e-5)  # float32 ulps


def test_tukey_is_c2_at_the_cutoff():
    c = 1.3
    second = jax.jit(jax.grad(jax.grad(lambda r: robust.tukey.rho(r, c=c))))
    for r in (c - 1e-7, c, c + 1e-7):
        # rho''(r) = (1 - z^2)(1 - 5 z^2) -> 0 at z = 1: continuous up to O(1e-7 / c).
        assert abs(float(second(r))) < 1e-6


def test_irls_solves_the_m_estimation_normal_equations():
    rng = np.random.default_rng(7)
    x = np.column_stack([np.ones(60), rng.normal(size=60)])
    beta_true = np.array([1.0, -2.0])
    y = x @ beta_true + 0.1 * rng.normal(size=60)
    y[:6] += rng.uniform(20, 40, size=6)  # 10% gross outliers
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    for _ in range(50):
        w = np.asarray(robust.welsch.weight(jnp.asarray(y - x @ beta), c=0.5))
        beta = np.linalg.solve(x.T @ (w[:, None] * x), x.T @ (w * y))
    psi = np.asarray(robust.welsch.psi(jnp.asarray(y - x @ beta), c=0.5))
    # The IRLS fixed point solves sum_i psi(r_i) x_i = 0 (to the iteration's contraction).
    np.testing.assert_allclose(x.T @ psi, 0.0, atol=1e-8)
    # ...and ignores the outliers: within a few noise standard errors of the truth.
    np.testing.assert_allclose(beta, beta_true, atol=0.1)


def test_array_hyperparameters_broadcast_over_trailing_axes_and_vmap():
    p, t = map(jnp.asarray, _data(seed=5, shape=(5, 3)))
    alpha = jnp.asarray([-1.0, 0.5, 1.7])
    per_column = jax.jit(lambda p, t, a: losses.barron(p, t, alpha=a, c=2.0, reduction="none"))
    got = per_column(p, t, alpha)
    for j in range(3):
        col = per_column(p[:, j], t[:, j], alpha[j])
        np.testing.assert_allclose(got[:, j], col, rtol=1e-14)  # same arithmetic
    mean_loss = jax.jit(lambda a: losses.barron(p, t, alpha=a))
    swept = jax.vmap(mean_loss)(alpha)
    np.testing.assert_allclose(swept, [mean_loss(a) for a in alpha], rtol=1e-13)  # batched
    jitted = jax.jit(lambda p, t: losses.tukey(p, t, c=1.0))
    np.testing.assert_allclose(jitted(p, t), losses.tukey(p, t, c=1.0), rtol=1e-14)
    weighted = losses.cauchy(p, t, weights=jnp.asarray([1.0, 0.0, 2.0, 0.0, 1.0]))
    per_row = np.asarray(losses.cauchy(p, t, reduction="none"))
    expected = (per_row[0].sum() + 2 * per_row[2].sum() + per_row[4].sum()) / 12
    np.testing.assert_allclose(weighted, expected, rtol=1e-13)  # sum(w l)/sum(w), w per row


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: losses.tukey(jnp.ones(3), jnp.ones(3), c=0.0), ValueError, "`c`"),
        (lambda: losses.cauchy(jnp.ones(3), jnp.ones(2)), ValueError, "same shape"),
        (lambda: losses.barron(jnp.ones(3), jnp.ones(3), alpha=jnp.inf), ValueError, "alpha"),
        (lambda: losses.barron(jnp.ones(3), jnp.ones(3), alpha=jnp.nan), ValueError, "alpha"),
        (lambda: losses.barron(jnp.ones(3), jnp.ones(3), c=-1.0), ValueError, "`c`"),
        (lambda: losses.barron(jnp.ones((2, 3)), jnp.ones((2, 3)), alpha=jnp.ones(2)),
         ValueError, "broadcast"),
        (lambda: robust.tukey.rho(jnp.ones(3), alpha=1.0), TypeError, "unknown hyperparameter"),
        (lambda: losses.welsch(jnp.ones(3), jnp.ones(3), reduction="avg"), ValueError, "reduct"),
        (lambda: losses.welsch(jnp.ones(2, jnp.complex128), jnp.ones(2)), TypeError, "predictions"),
    ],
)
def test_invalid_inputs_raise_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
