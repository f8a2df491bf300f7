"""lossopt.problems: the MGH catalogue against the paper, the ML problems against independent
solvers, the registry's errors, and a few solves by lossopt itself.

Independent references: the values and minimisers published by More, Garbow & Hillstrom
(1981) (tables below, typed from the paper, not from lossopt), values at the starting points
worked by hand from the paper's definitions, scipy's MINPACK Levenberg-Marquardt, scipy's
BFGS on numpy re-implementations, and scikit-learn's estimators. Float64 (conftest).
"""

from __future__ import annotations

import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize as so

import lossopt
from lossopt import problems
from lossopt.solvers import LBFGS, Newton, Status

MGH = problems.names("mgh")
ML = problems.names("ml")

# --- The paper's published minima that are not zero: six significant digits, truncated (the
# "..." in "8.21487...e-3"). Case -> (kwargs, published value).
PUBLISHED = {
    "jennrich_sampson": ({}, 124.362),
    "bard": ({}, 8.21487e-3),
    "gaussian": ({}, 1.12793e-8),
    "meyer": ({}, 87.9458),
    "kowalik_osborne": ({}, 3.07505e-4),
    "brown_dennis": ({}, 85822.2),
    "osborne_1": ({}, 5.46489e-5),
    "osborne_2": ({}, 4.01377e-2),
    "watson-6": ({"n": 6}, 2.28767e-3),
    "watson-9": ({"n": 9}, 1.39976e-6),
    "watson-12": ({"n": 12}, 4.72238e-10),
    "penalty_1-4": ({"n": 4}, 2.24997e-5),
    "penalty_1-10": ({"n": 10}, 7.08765e-5),
    "penalty_2-4": ({"n": 4}, 9.37629e-6),
    "penalty_2-10": ({"n": 10}, 2.93660e-4),
    "chebyquad-8": ({"n": 8}, 3.51687e-3),
    "chebyquad-10": ({"n": 10}, 6.50395e-3),
}

# --- Minimisers the paper gives in closed form: (name, kwargs, x, f there).
M_OF = {"linear_full_rank": 10, "linear_rank_1": 10, "linear_rank_1_zero": 10}
MINIMISERS = [
    ("rosenbrock", {}, [1, 1], 0.0),
    ("freudenstein_roth", {}, [5, 4], 0.0),
    ("brown_badly_scaled", {}, [1e6, 2e-6], 0.0),
    ("beale", {}, [3, 0.5], 0.0),
    ("helical_valley", {}, [1, 0, 0], 0.0),
    ("gulf", {}, [50, 25, 1.5], 0.0),
    ("box_3d", {}, [1, 10, 1], 0.0),
    ("box_3d", {}, [10, 1, -1], 0.0),
    ("box_3d", {}, [2, 2, 0], 0.0),
    ("powell_singular", {}, [0, 0, 0, 0], 0.0),
    ("wood", {}, [1, 1, 1, 1], 0.0),
    ("biggs_exp6", {}, [1, 10, 1, 5, 4, 3], 0.0),
    ("extended_rosenbrock", {"n": 10}, [1] * 10, 0.0),
    ("extended_powell", {"n": 8}, [0] * 8, 0.0),
    ("variably_dimensioned", {"n": 10}, [1] * 10, 0.0),
    ("trigonometric", {"n": 10}, [0] * 10, 0.0),
    ("brown_almost_linear", {"n": 10}, [1] * 10, 0.0),
    ("brown_almost_linear", {"n": 10}, [0] * 9 + [11], 1.0),  # the paper's other minimum
    ("linear_full_rank", {"n": 5, "m": 10}, [-1] * 5, 10 - 5),
    # any x with sum_j j x_j = 3/(2m+1): x = (3/21, 0, ...); f = m(m-1)/(2(2m+1)) = 90/42
    ("linear_rank_1", {"n": 5, "m": 10}, [3 / 21, 0, 0, 0, 0], 90 / 42),
    # any x with sum_{j=2}^{n-1} j x_j = 3/(2m-3): x2 = 3/34; f = (m^2+3m-6)/(2(2m-3)) = 124/34
    ("linear_rank_1_zero", {"n": 5, "m": 10}, [7, 3 / 34, 0, 0, -5], 124 / 34),
]

# --- Number of residuals m as the paper defines it (default dimensions).
RESIDUALS_M = {
    "rosenbrock": 2, "freudenstein_roth": 2, "powell_badly_scaled": 2, "brown_badly_scaled": 3,
    "beale": 3, "jennrich_sampson": 10, "helical_valley": 3, "bard": 15, "gaussian": 15,
    "meyer": 16, "gulf": 99, "box_3d": 10, "powell_singular": 4, "wood": 6,
    "kowalik_osborne": 11, "brown_dennis": 20, "osborne_1": 33, "biggs_exp6": 13,
    "osborne_2": 65, "watson": 31, "extended_rosenbrock": 10, "extended_powell": 8,
    "penalty_1": 5, "penalty_2": 8, "variably_dimensioned": 12, "trigonometric": 10,
    "brown_almost_linear": 10, "discrete_boundary_value": 10, "discrete_integral_equation": 10,
    "broyden_tridiagonal": 10, "broyden_banded": 10, "linear_full_rank": 10,
    "linear_rank_1": 10, "linear_rank_1_zero": 10, "chebyquad": 8,
}

# --- f(x0) worked by hand from the paper's definitions (the paper does not tabulate f(x0)).
E = math.exp(-1.0)
F_AT_X0 = [
    ("rosenbrock", {}, 24.2),  # (10 (1 - 1.44))^2 + 2.2^2
    ("freudenstein_roth", {}, 400.5),  # 19.5^2 + 4.5^2
    ("powell_badly_scaled", {}, 1.0 + (E - 1e-4) ** 2),
    ("brown_badly_scaled", {}, (1 - 1e6) ** 2 + (1 - 2e-6) ** 2 + 1.0),
    ("beale", {}, 1.5**2 + 2.25**2 + 2.625**2),
    ("helical_valley", {}, 2500.0),  # theta = 1/2: r1 = -50
    ("powell_singular", {}, 215.0),  # 49 + 5 + 1 + 160
    ("wood", {}, 19192.0),  # 10000 + 16 + 9000 + 16 + 160 + 0
    ("watson", {"n": 6}, 30.0),  # 29 residuals of -1, r30 = 0, r31 = -1
    ("extended_rosenbrock", {"n": 10}, 5 * 24.2),
    ("extended_powell", {"n": 8}, 2 * 215.0),
    ("penalty_1", {"n": 4}, 1e-5 * 14 + 29.75**2),
    ("variably_dimensioned", {"n": 10}, 3.85 + 38.5**2 + 38.5**4),
    ("brown_almost_linear", {"n": 10}, 9 * 5.5**2 + (0.5**10 - 1) ** 2),
    ("broyden_tridiagonal", {"n": 10}, 8 * 1.0 + 2.0**2 + 3.0**2),  # interior -1, ends -2, -3
    ("broyden_banded", {"n": 10}, 10 * 36.0),  # -7 + 1 - 0 per residual
    ("linear_full_rank", {"n": 5, "m": 10}, 5 * 1.0 + 5 * 4.0),
    ("linear_rank_1", {"n": 5, "m": 10}, sum((15 * i - 1) ** 2 for i in range(1, 11))),
    ("linear_rank_1_zero", {"n": 5, "m": 10}, 2 + sum((9 * k - 1) ** 2 for k in range(1, 9))),
]


def truncation_interval(published: float) -> tuple[float, float]:
    """The values whose first six significant digits, truncated, are ``published``."""
    ulp = 10.0 ** (math.floor(math.log10(published)) - 5)
    return published, published + ulp


def paper_text(published: float) -> str:
    """How the paper prints a value: ``8.21487...e-3``, ``124.362...``."""
    if 1 <= published < 1e6:
        return f"{published:.6g}..."
    exponent = math.floor(math.log10(published))
    return f"{published / 10.0**exponent:.5f}...e{exponent}"


def lm_solve(p, x0=None):
    """scipy's MINPACK Levenberg-Marquardt on p.residuals, jitted, to 1e-15 tolerances (the
    value at the solution jitted too: eagerly every operation compiles on its own)."""
    r = jax.jit(p.residuals)
    jac = jax.jit(jax.jacfwd(p.residuals))
    sol = so.least_squares(
        lambda x: np.asarray(r(x, *p.args)), p.x0 if x0 is None else np.asarray(x0, float),
        jac=lambda x: np.asarray(jac(x, *p.args)), method="lm",
        xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=20000,
    )
    return sol.x, float(jax.jit(p.fun)(sol.x, *p.args))


# ------------------------------------------------------------------------------------------
# MGH against the paper
# ------------------------------------------------------------------------------------------


def test_catalogue_holds_all_35_mgh_problems_and_the_ml_problems():
    assert len(MGH) == 35
    assert set(MGH) == set(RESIDUALS_M)
    assert ML == ["huber_outliers", "logistic_breast_cancer", "poisson_synthetic"]
    numbers = sorted(int(problems.get(n).source.split("problem ")[1].split(":")[0]) for n in MGH)
    assert numbers == list(range(1, 36))


@pytest.mark.parametrize("case", sorted(PUBLISHED))
def test_published_minimum_is_reproduced(case):
    kwargs, published = PUBLISHED[case]
    p = problems.get(case.split("-")[0], **kwargs)
    low, high = truncation_interval(published)
    _, f_lm = lm_solve(p)
    # MGH truncate to six digits: the minimum these residuals reach must lie in
    # [published, published + one unit of the sixth digit); 1e-12 relative slack below for
    # the LM solve's own accuracy.
    assert low * (1 - 1e-12) <= f_lm < high, (f_lm, published)
    assert low <= p.f_star < high
    # f_star's extra digits: the LM solve here reaches it to 1e-9 relative (its stopping
    # accuracy; Meyer, the worst conditioned, agrees to ~1e-12).
    assert f_lm == pytest.approx(p.f_star, rel=1e-9, abs=0)
    assert f"f* = {paper_text(published)}" in p.source  # cites the paper's value


@pytest.mark.parametrize(("name", "kwargs", "x", "f"), MINIMISERS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(MINIMISERS)])
def test_documented_minimiser_gives_the_documented_value(name, kwargs, x, f):
    p = problems.get(name, **kwargs)
    value = float(jax.jit(p.fun)(np.asarray(x, float), *p.args))  # one compile, not one per op
    # Exact arithmetic gives f; 1e-12 covers float64 rounding of residuals of size <= 1e3
    # (Gulf's powers, Biggs' exponentials, 3/21 not exact).
    assert value == pytest.approx(f, rel=1e-12, abs=1e-12)
    if p.x_star is not None:
        assert p.f_star == pytest.approx(value, rel=1e-12, abs=1e-12)
    if f == 0.0 or name.startswith("linear"):
        assert p.f_star == pytest.approx(f, rel=1e-14, abs=0)


UNIQUE_MINIMISERS = {  # the paper's minimiser, where it is the only one
    "rosenbrock": [1, 1], "freudenstein_roth": [5, 4], "brown_badly_scaled": [1e6, 2e-6],
    "beale": [3, 0.5], "helical_valley": [1, 0, 0], "gulf": [50, 25, 1.5],
    "powell_singular": [0] * 4, "wood": [1] * 4, "extended_rosenbrock": [1] * 10,
    "extended_powell": [0] * 8, "variably_dimensioned": [1] * 10, "linear_full_rank": [-1] * 5,
}


@pytest.mark.parametrize("name", MGH)
def test_x_star_is_given_exactly_where_the_minimiser_is_unique_and_known(name):
    p = problems.get(name)
    if name in UNIQUE_MINIMISERS:
        np.testing.assert_array_equal(p.x_star, np.asarray(UNIQUE_MINIMISERS[name], float))
        assert float(jax.jit(p.fun)(p.x_star, *p.args)) == pytest.approx(p.f_star, abs=1e-20)
    else:
        assert p.x_star is None


def test_powell_badly_scaled_minimiser_from_the_paper():
    # f = 0 where x1 x2 = 1e-4 and exp(-x1) + exp(-x2) = 1.0001: solve for x1 by bisection.
    p = problems.get("powell_badly_scaled")
    x1 = so.brentq(lambda a: math.exp(-a) + math.exp(-1e-4 / a) - 1.0001, 1e-6, 1e-4, xtol=1e-20)
    x = np.array([x1, 1e-4 / x1])
    assert x[0] == pytest.approx(1.098e-5, rel=1e-3) and x[1] == pytest.approx(9.106, rel=1e-3)
    assert float(p.fun(x, *p.args)) < 1e-24  # residuals ~1e-13 from rounding x1 x2 1e4


def test_freudenstein_roth_local_minimum_from_the_paper():
    # MGH: f = 48.9842... at (11.41..., -0.8968...): LM from the standard start stops there.
    p = problems.get("freudenstein_roth")
    x, f = lm_solve(p)
    low, high = truncation_interval(48.9842)
    assert low <= f < high
    assert x == pytest.approx([11.41, -0.8968], abs=1e-2)  # the paper's digits


@pytest.mark.parametrize(("name", "kwargs"), [
    ("discrete_boundary_value", {}), ("discrete_integral_equation", {}),
    ("broyden_tridiagonal", {}), ("broyden_banded", {}), ("chebyquad", {"n": 7}),
])
def test_zero_residual_problems_without_closed_form_reach_zero(name, kwargs):
    p = problems.get(name, **kwargs)
    assert p.f_star == 0.0 and "zero_residual" in p.tags
    _, f = lm_solve(p)
    assert f < 1e-20  # a root: residuals at rounding level (~1e-16 each)


@pytest.mark.parametrize(("name", "kwargs", "expected"), F_AT_X0,
                         ids=[c[0] for c in F_AT_X0])
def test_value_at_the_standard_start(name, kwargs, expected):
    p = problems.get(name, **kwargs)
    # Hand values are exact up to float64 rounding of sums of terms <= 1e12 (Brown badly
    # scaled): 1e-13 relative.
    assert float(jax.jit(p.fun)(p.x0, *p.args)) == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("name", MGH)
def test_fun_is_sum_of_squared_residuals_and_gradient_finite_at_x0(name):
    p = problems.get(name)
    r = p.residuals(p.x0, *p.args)
    assert r.shape == (RESIDUALS_M[name],)
    assert p.n == p.x0.size and p.x0.dtype == np.float64
    # The documented convention, bit for bit (same operations, no factor 1/2). Eager on
    # purpose: under jit XLA fuses the residuals into the squares (FMA), a last-bit change.
    assert float(p.fun(p.x0, *p.args)) == float(jnp.sum(jnp.square(r)))
    g = jax.jit(jax.grad(p.fun))(p.x0, *p.args)  # jitted: one compile, not one per operation
    assert g.shape == p.x0.shape and np.all(np.isfinite(np.asarray(g)))
    assert set(p.tags) >= {"mgh", "least_squares"}
    assert p.source.startswith("More, Garbow & Hillstrom (1981), problem ")


def test_float32_evaluation_and_jit_agree():
    # Computed in the dtype of the parameters; jit and no-jit agree.
    for name in ("meyer", "watson", "chebyquad", "broyden_banded"):
        p = problems.get(name)
        x32 = p.x0.astype(np.float32)
        args32 = tuple(a.astype(np.float32) for a in p.args)
        v32 = p.fun(x32, *args32)
        assert v32.dtype == jnp.float32
        # float32 rounding of O(1e9) (Meyer at x0) to O(1) values: 1e-5 relative.
        assert float(v32) == pytest.approx(float(p.fun(p.x0, *p.args)), rel=1e-5)
        # XLA may fuse differently under jit: 1e-13 relative in float64.
        assert float(jax.jit(p.fun)(p.x0, *p.args)) == pytest.approx(
            float(p.fun(p.x0, *p.args)), rel=1e-13)


# ------------------------------------------------------------------------------------------
# lossopt's own solvers on a few problems
# ------------------------------------------------------------------------------------------


def test_newton_solves_rosenbrock_and_wood():
    for name in ("rosenbrock", "wood"):
        p = problems.get(name)
        res = lossopt.minimize(p.fun, p.x0, Newton(), args=p.args, max_iters=200, gtol=1e-10)
        assert Status(int(res.status)) is Status.CONVERGED
        # Near a nondegenerate zero-residual minimiser f ~ |g|^2 / lambda_min: below 1e-18.
        assert float(res.value) - p.f_star < 1e-18
        np.testing.assert_allclose(res.params, p.x_star, atol=1e-8)  # |x - x*| ~ |g| / lambda


def test_lbfgs_solves_bard_and_kowalik_osborne_to_the_published_value():
    for name in ("bard", "kowalik_osborne"):
        p = problems.get(name)
        res = lossopt.minimize(p.fun, p.x0, LBFGS(), args=p.args, max_iters=500, gtol=1e-9)
        assert Status(int(res.status)) in (Status.CONVERGED, Status.LINE_SEARCH_FAILED)
        # A gradient of 1e-9 leaves f within ~|g|^2 / lambda_min of f*; 1e-8 relative is met
        # with margin on both (a value-based search stops near the rounding floor of f).
        assert float(res.value) == pytest.approx(p.f_star, rel=1e-8)


# ------------------------------------------------------------------------------------------
# ML problems against independent solvers
# ------------------------------------------------------------------------------------------


def test_logistic_breast_cancer_matches_scikit_learn():
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    p = problems.get("logistic_breast_cancer")
    X, y, lam = p.args
    raw = load_breast_cancer()
    np.testing.assert_allclose(X, (raw.data - raw.data.mean(0)) / raw.data.std(0), rtol=1e-12)
    np.testing.assert_array_equal(y, raw.target)
    assert float(lam) == 1e-2 and p.n == 31
    assert float(p.fun(p.x0, *p.args)) == pytest.approx(math.log(2.0), rel=1e-14)
    # scikit-learn minimises C sum(logloss) + ||w||^2 / 2 (intercept unpenalised by lbfgs),
    # the same problem times C n when C = 1 / (lam n).
    clf = LogisticRegression(C=1.0 / (float(lam) * len(y)), tol=1e-12, max_iter=10_000)
    clf.fit(X, y)
    theirs = {"w": clf.coef_[0], "b": np.float64(clf.intercept_[0])}
    f_theirs = float(p.fun(theirs, *p.args))
    # f* is the minimum: scikit-learn's point is not below it (1e-15: rounding), and its
    # lbfgs stops with a gradient ~1e-8, so f within ~|g|^2 / lambda_min ~ 1e-12 of f*.
    assert p.f_star <= f_theirs + 1e-15
    assert f_theirs == pytest.approx(p.f_star, rel=1e-10)
    np.testing.assert_allclose(p.x_star["w"], theirs["w"], atol=1e-5)  # |dx| ~ |g| / lambda


def test_poisson_synthetic_matches_scikit_learn():
    from sklearn.linear_model import PoissonRegressor

    p = problems.get("poisson_synthetic")
    X, y, lam = p.args
    # The data are what the docstring says: re-drawn here from the same seed.
    rng = np.random.default_rng(0)
    X_again = rng.normal(size=(500, 5)) / np.sqrt(5)
    y_again = rng.poisson(np.exp(X_again @ np.array([0.8, -0.6, 0.4, 0.2, -0.4]) + 1.0))
    np.testing.assert_array_equal(X, X_again)
    np.testing.assert_array_equal(y, y_again)
    # scikit-learn: mean deviance / 2 + alpha ||w||^2 / 2 = our objective + a constant in y.
    reg = PoissonRegressor(alpha=float(lam), tol=1e-12, max_iter=10_000,
                           solver="newton-cholesky").fit(X, y)
    theirs = {"w": reg.coef_, "b": np.float64(reg.intercept_)}
    f_theirs = float(p.fun(theirs, *p.args))
    assert p.f_star <= f_theirs + 1e-15  # rounding of an O(1) value
    assert f_theirs == pytest.approx(p.f_star, rel=1e-12, abs=1e-14)  # both Newton, converged
    np.testing.assert_allclose(p.x_star["w"], theirs["w"], atol=1e-7)


def test_huber_outliers_matches_scipy_bfgs_on_a_numpy_objective():
    p = problems.get("huber_outliers")
    X, y, lam = p.args
    assert np.sum(np.abs(X @ p.x_star["w"] + p.x_star["b"] - y) > 1.0) == 20  # the outliers

    def f_and_g(theta):  # written independently of lossopt, in numpy
        w, b = theta[:-1], theta[-1]
        r = X @ w + b - y
        small = np.abs(r) <= 1.0
        value = np.mean(np.where(small, 0.5 * r**2, np.abs(r) - 0.5)) + 0.5 * lam * w @ w
        psi = np.clip(r, -1.0, 1.0) / len(y)
        return value, np.concatenate([X.T @ psi + lam * w, [psi.sum()]])

    sol = so.minimize(f_and_g, np.zeros(6), jac=True, method="BFGS",
                      options={"gtol": 1e-12, "maxiter": 10_000})
    # scipy's BFGS ends within ~1e-10 in the gradient (on a C1 objective it may stop with a
    # precision-loss warning there): f within ~1e-14 relative; 1e-12 for margin.
    assert sol.fun == pytest.approx(p.f_star, rel=1e-12)
    assert p.f_star <= sol.fun + 1e-15
    np.testing.assert_allclose(sol.x[:-1], p.x_star["w"], atol=1e-6)
    np.testing.assert_allclose(sol.x[-1], p.x_star["b"], atol=1e-6)


@pytest.mark.parametrize("name", ML)
def test_ml_problem_contract(name):
    p = problems.get(name)
    assert p.residuals is None and "ml" in p.tags and "convex" in p.tags
    assert set(p.x0) == {"w", "b"} and p.n == p.x0["w"].size + 1
    grad = jax.jit(jax.grad(p.fun))  # one compile for both points, not one per operation
    g = grad(p.x0, *p.args)
    assert all(np.all(np.isfinite(np.asarray(v))) for v in jax.tree.leaves(g))
    # At x_star the gradient is at the reference solve's tolerance (1e-12 max-abs).
    g_star = grad(p.x_star, *p.args)
    assert max(float(np.max(np.abs(np.asarray(v)))) for v in jax.tree.leaves(g_star)) <= 1e-12
    assert "Newton" in p.source and "float64" in p.source


def test_missing_scikit_learn_raises_a_clear_import_error(monkeypatch):
    from lossopt._problems import _ml

    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import now fails
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        _ml.breast_cancer_standardized()


# ------------------------------------------------------------------------------------------
# Registry
# ------------------------------------------------------------------------------------------


def test_get_is_cached_and_defaults_are_normalised():
    assert problems.get("watson") is problems.get("watson", n=6)
    assert problems.get("watson", n=9).n == 9


def test_names_and_catalog():
    assert problems.names() == sorted(MGH + ML)
    assert "rosenbrock" in problems.names("zero_residual")
    assert "bard" not in problems.names("zero_residual")
    entries = {e.name: e for e in problems.catalog()}
    assert set(entries) == set(problems.names())
    assert entries["watson"].parameters == {"n": 6}
    assert entries["linear_full_rank"].parameters == {"n": 5, "m": 10}
    assert entries["bard"].summary.startswith("Bard (MGH 8)")
    for name in MGH:  # a problem's tags are the ones it is registered (and filtered) under
        assert entries[name].tags == problems.get(name).tags
    assert [e.name for e in problems.catalog("ml")] == ML


def test_errors_name_the_argument_the_expected_and_the_received():
    with pytest.raises(KeyError, match=r"`name`.*'rosenbrok'.*Known problems: bard, beale"):
        problems.get("rosenbrok")
    with pytest.raises(TypeError, match=r"unknown argument\(s\) \['n'\]; accepted: none"):
        problems.get("rosenbrock", n=3)
    with pytest.raises(ValueError, match=r"`n` of problem 'extended_rosenbrock' must be an even"
                                         r" int >= 2; got 3"):
        problems.get("extended_rosenbrock", n=3)
    with pytest.raises(ValueError, match=r"`n` .*'watson' must be one of \[6, 9, 12\].*got 7"):
        problems.get("watson", n=7)
    with pytest.raises(ValueError, match=r"`m` .*'linear_full_rank' must be an int >= n = 5; "
                                         r"got 3"):
        problems.get("linear_full_rank", m=3)
    with pytest.raises(TypeError, match=r"`n` of problem 'watson' must be an int; got 6.0"):
        problems.get("watson", n=6.0)
    with pytest.raises(ValueError, match=r"`tag` must be one of \[.*'mgh'.*\]; got 'nope'"):
        problems.names("nope")


def test_problem_is_frozen():
    p = problems.get("rosenbrock")
    with pytest.raises(AttributeError):
        p.f_star = 1.0
