"""Known-answer tests for lossopt.minimize and its solvers, and the JAX contract.

Every reference is computed independently of lossopt in float64: a closed-form minimiser
(numpy.linalg.solve), numpy.linalg.lstsq, scikit-learn's LogisticRegression and a
linear-programming solution of L1/pinball regression (scipy.optimize.linprog). Compilation is
cached on (objective, solver static fields, max_iters, record_every), so the tests reuse a few
module-level objectives and the same max_iters to keep the suite fast.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.optimize import linprog
from sklearn.linear_model import LogisticRegression

import lossopt
from lossopt.solvers import GradientDescent, Newton, Optax, Status, Subgradient

MAX_ITERS = 2000  # one value everywhere: compiled loops are shared between tests
# Value-based line searches cannot certify gradients below ~sqrt(eps |f*| lambda_max), about
# 6e-8 on the quadratic below; 1e-7 is reachable by every solver in float64.
GTOL = 1e-7

# ---------------------------------------------------------------------------- objectives


def quadratic(w, A, b):
    return 0.5 * w @ A @ w - b @ w


def rosenbrock(p):
    return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2


def least_squares(w, X, y):
    return lossopt.losses.mse(X @ w, y)


def logistic(params, X, y, lam):
    z = X @ params["w"] + params["b"]
    # mean binary cross-entropy on logits, written with softplus: log(1 + e^z) - y z
    return jnp.mean(jax.nn.softplus(z) - y * z) + lossopt.regularizers.l2(params["w"], lam)


def pinball(w, X, y, tau):
    return lossopt.losses.quantile(X @ w, y, tau=tau)


# The reference evaluation of the pinball objective at a returned point: one compiled program
# for every case (op by op it compiled a dozen primitives).
pinball_value = jax.jit(pinball)


def mae(w, X, y):
    return lossopt.losses.mae(X @ w, y)


def quartic(y):
    return jnp.sum(y**4 - y**2)


def saddle(p):
    # f(x, y) = x^2 - y^2 + y^4: a saddle at 0, minima at (0, +-1/sqrt(2)).
    return p[0] ** 2 - p[1] ** 2 + p[1] ** 4


# ---------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def quad_problem():
    rng = np.random.default_rng(0)
    M = rng.normal(size=(6, 6))
    A = M @ M.T + 0.5 * np.eye(6)  # SPD, condition number ~ 1e2
    b = rng.normal(size=6)
    return jnp.asarray(A), jnp.asarray(b), np.linalg.solve(A, b)


@pytest.fixture(scope="module")
def lsq_problem():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(100, 5))  # the seed experiment's shape: compiled loops are shared
    y = X @ rng.normal(size=5) + 0.3 * rng.normal(size=100)
    w_ref = np.linalg.lstsq(X, y, rcond=None)[0]
    return jnp.asarray(X), jnp.asarray(y), w_ref


@pytest.fixture(scope="module")
def logistic_problem():
    rng = np.random.default_rng(2)
    n, d, C = 300, 4, 0.5
    X = rng.normal(size=(n, d))
    p = 1.0 / (1.0 + np.exp(-(X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.3)))
    y = (rng.uniform(size=n) < p).astype(np.float64)
    # scikit-learn minimises 0.5 ||w||^2 + C * sum(logloss) with an unpenalised intercept;
    # dividing by C n gives mean(logloss) + ||w||^2 / (2 C n), i.e. l2 strength 1 / (2 C n).
    ref = LogisticRegression(C=C, tol=1e-12, max_iter=10_000, solver="newton-cholesky").fit(X, y)
    lam = 1.0 / (2.0 * C * n)
    return jnp.asarray(X), jnp.asarray(y), lam, ref.coef_.ravel(), float(ref.intercept_[0])


def _lp_quantile_regression(X, y, tau):
    """min_w mean(pinball_tau(y - X w)) as an LP: X w + u - v = y, u, v >= 0."""
    n, d = X.shape
    c = np.concatenate([np.zeros(d), tau * np.ones(n), (1 - tau) * np.ones(n)]) / n
    A_eq = np.hstack([X, np.eye(n), -np.eye(n)])
    bounds = [(None, None)] * d + [(0, None)] * (2 * n)
    sol = linprog(c, A_eq=A_eq, b_eq=y, bounds=bounds, method="highs")
    assert sol.status == 0
    return sol.x[:d], sol.fun


@pytest.fixture(scope="module")
def robust_problem():
    rng = np.random.default_rng(3)
    n, d = 150, 3
    X = rng.normal(size=(n, d))
    X[:, 0] = 1.0
    y = X @ np.array([0.5, 2.0, -1.0]) + rng.standard_t(2, size=n)  # heavy-tailed noise
    return X, y


# ---------------------------------------------------------------------------- known answers

SMOOTH_SOLVERS = {
    "gd": GradientDescent(learning_rate=0.05),
    "gd_momentum": GradientDescent(learning_rate=0.02, momentum=0.8),
    "gd_nesterov": GradientDescent(learning_rate=0.02, momentum=0.8, nesterov=True),
    "gd_armijo": GradientDescent(learning_rate=1.0, line_search="armijo"),
    "newton": Newton(),
    "newton_cg": Newton(linear_solver="cg"),
    "adam": Optax(optax.adam(0.05)),
    "lbfgs": Optax(optax.lbfgs()),
}


@pytest.mark.parametrize("name", list(SMOOTH_SOLVERS))
def test_quadratic_closed_form(name, quad_problem):
    A, b, w_star = quad_problem
    res = lossopt.minimize(
        quadratic, jnp.zeros(6), SMOOTH_SOLVERS[name], args=(A, b), max_iters=MAX_ITERS,
        gtol=GTOL,
    )
    assert res.status == Status.CONVERGED, res.message
    # |g| <= 1e-7 and the smallest eigenvalue of A (0.6) bound the error by 1.7e-7.
    np.testing.assert_allclose(res.params, w_star, atol=2e-7)
    np.testing.assert_allclose(res.value, quadratic(jnp.asarray(w_star), A, b), rtol=1e-12)


@pytest.mark.parametrize("name", ["gd_armijo", "newton", "newton_cg", "lbfgs"])
def test_rosenbrock(name):
    solver = SMOOTH_SOLVERS[name]
    if name == "gd_armijo":  # plain descent needs tens of thousands of steps on the valley
        solver = GradientDescent(learning_rate=1e-3, momentum=0.9, line_search="armijo")
    res = lossopt.minimize(rosenbrock, jnp.array([-1.2, 1.0]), solver, max_iters=20_000, gtol=1e-8)
    assert res.status == Status.CONVERGED, res.message
    # Hessian at (1, 1) has eigenvalues ~0.4 and ~1002: |g| <= 1e-8 puts x within ~3e-8.
    np.testing.assert_allclose(res.params, [1.0, 1.0], atol=1e-6)


@pytest.mark.parametrize("name", ["gd", "newton"])
def test_least_squares_matches_lstsq(name, lsq_problem):
    X, y, w_ref = lsq_problem
    res = lossopt.minimize(
        least_squares, jnp.zeros(5), SMOOTH_SOLVERS[name], args=(X, y), max_iters=MAX_ITERS,
        gtol=GTOL,
    )
    assert res.status == Status.CONVERGED, res.message
    # The Hessian 2 X^T X / n has eigenvalues >= ~1.4 here, so |g| <= 1e-7 bounds the error by
    # ~1e-7 per coordinate (times sqrt(5) in norm).
    np.testing.assert_allclose(res.params, w_ref, atol=3e-7)


@pytest.mark.parametrize("name", ["newton", "newton_cg", "lbfgs"])
def test_l2_logistic_regression_matches_sklearn(name, logistic_problem):
    X, y, lam, coef, intercept = logistic_problem
    p0 = {"w": jnp.zeros(4), "b": jnp.zeros(())}
    res = lossopt.minimize(
        logistic, p0, SMOOTH_SOLVERS[name], args=(X, y, lam), max_iters=MAX_ITERS, gtol=GTOL
    )
    assert res.status == Status.CONVERGED, res.message
    assert set(res.params) == {"w", "b"} and res.params["b"].shape == ()
    # Both stop at |g| <= 1e-7 (scikit-learn at tol 1e-12) on a strongly convex problem whose
    # Hessian's smallest eigenvalue is ~0.03 here: parameters agree to ~3e-6.
    np.testing.assert_allclose(res.params["w"], coef, atol=5e-6)
    np.testing.assert_allclose(res.params["b"], intercept, atol=5e-6)


@pytest.mark.parametrize(
    ("tau", "solver"),
    [
        (0.5, Subgradient(step_size=0.05, schedule="polyak")),
        (0.8, Subgradient(step_size=0.05, schedule="polyak")),
        (0.8, Subgradient(step_size=0.1, schedule="inverse_sqrt")),
    ],
)
def test_pinball_regression_matches_linear_program(tau, solver, robust_problem):
    X, y = robust_problem
    w_lp, f_lp = _lp_quantile_regression(X, y, tau)
    res = lossopt.minimize(
        pinball, jnp.zeros(3), solver, args=(jnp.asarray(X), jnp.asarray(y), tau),
        max_iters=5000, gtol=0.0,
    )
    assert res.status == Status.MAX_ITERS  # the subgradient method runs its budget
    # The best value converges at O(1/sqrt(k)) for 1/sqrt(k) steps (~5e-3 at 5000 steps here)
    # and much faster for Polyak's rule; the value gap bounds are those rates with 2x margin.
    gap = float(res.best_value) - f_lp
    assert -1e-12 <= gap <= (1e-4 if solver.schedule == "polyak" else 1e-2)
    if solver.schedule == "polyak":
        # The LP minimiser is a vertex where the loss grows linearly (by >= ~0.01 per unit
        # here), so a value gap <= 1e-4 keeps the parameters within ~0.01; 0.03 is the margin.
        np.testing.assert_allclose(res.best_params, w_lp, atol=0.03)
    # best_* is the best iterate seen, consistent with the trace and the objective.
    assert float(res.best_value) == pytest.approx(np.nanmin(res.trace.to_numpy()["loss"]))
    assert float(res.best_value) == pytest.approx(float(pinball_value(res.best_params, X, y, tau)))


def test_polyak_with_known_optimum_reaches_the_lp_vertex(robust_problem):
    X, y = robust_problem
    w_lp, f_lp = _lp_quantile_regression(X, y, 0.5)
    res = lossopt.minimize(
        pinball, jnp.zeros(3), Subgradient(schedule="polyak", f_star=f_lp),
        args=(jnp.asarray(X), jnp.asarray(y), 0.5), max_iters=5000, gtol=0.0,
    )
    # With the exact f*, Polyak's step converges linearly on this sharp problem: to 1e-8.
    np.testing.assert_allclose(res.best_params, w_lp, atol=1e-8)


def test_seed_experiment_recovers_true_w():
    # The seed document's experiment: X 100x5, true_w, Gaussian noise of scale 0.5.
    rng = np.random.default_rng(42)
    true_w = np.array([1.5, -2.0, 0.5, 3.0, -1.0])
    X = rng.normal(size=(100, 5))
    y = X @ true_w + 0.5 * rng.normal(size=100)
    w_ols = np.linalg.lstsq(X, y, rcond=None)[0]
    args = (jnp.asarray(X), jnp.asarray(y))
    gd = lossopt.minimize(least_squares, jnp.zeros(5), SMOOTH_SOLVERS["gd"], args=args,
                          max_iters=MAX_ITERS, gtol=GTOL)
    newton = lossopt.minimize(least_squares, jnp.zeros(5), Newton(), args=args,
                              max_iters=MAX_ITERS)
    l1 = lossopt.minimize(mae, jnp.zeros(5), Subgradient(step_size=0.05, schedule="polyak"),
                          args=args, max_iters=MAX_ITERS, gtol=0.0)
    assert gd.status == Status.CONVERGED and newton.status == Status.CONVERGED
    assert int(newton.iterations) == 1  # a quadratic: one full Newton step
    np.testing.assert_allclose(gd.params, w_ols, atol=3e-7)  # |g| <= 1e-7, see lstsq test
    np.testing.assert_allclose(newton.params, w_ols, atol=1e-10)
    # The OLS standard error is ~0.5 / sqrt(100) = 0.05 per coefficient: 0.2 is 4 of them.
    np.testing.assert_allclose(gd.params, true_w, atol=0.2)
    # LAD is less efficient than OLS under Gaussian noise (~1.25x the standard error).
    np.testing.assert_allclose(l1.best_params, true_w, atol=0.25)


# ---------------------------------------------------------------------------- Newton safeguards


@pytest.mark.parametrize("linear_solver", ["cholesky", "cg"])
def test_newton_escapes_a_maximum_on_the_quartic(linear_solver):
    res = lossopt.minimize(quartic, jnp.array([0.1, 0.2]), Newton(linear_solver=linear_solver))
    assert res.status == Status.CONVERGED, res.message
    # Hessian 12 y^2 - 2 is negative at the start: an unsafeguarded Newton step goes to 0.
    # The minimisers are +-1/sqrt(2); gtol 1e-6 / curvature 4 puts y within ~2.5e-7.
    np.testing.assert_allclose(np.abs(res.params), 1 / np.sqrt(2), atol=1e-6)
    losses = res.trace.to_numpy()["loss"]
    assert np.all(np.diff(losses) < 0)  # it descends at every step


@pytest.mark.parametrize("linear_solver", ["cholesky", "cg"])
def test_newton_leaves_a_saddle(linear_solver):
    res = lossopt.minimize(saddle, jnp.array([0.5, 1e-3]), Newton(linear_solver=linear_solver))
    assert res.status == Status.CONVERGED, res.message
    np.testing.assert_allclose(res.params[0], 0.0, atol=1e-6)
    np.testing.assert_allclose(abs(res.params[1]), 1 / np.sqrt(2), atol=1e-6)


def test_newton_evaluation_counts(lsq_problem):
    X, y, _ = lsq_problem
    res = lossopt.minimize(least_squares, jnp.zeros(5), Newton(), args=(X, y),
                           max_iters=MAX_ITERS)
    # initial point + one accepted full step per iteration; one Hessian per iteration
    assert int(res.num_hess_evals) == int(res.iterations) == 1
    assert int(res.num_fun_evals) == int(res.num_grad_evals) == 2
    cg = lossopt.minimize(least_squares, jnp.zeros(5), Newton(linear_solver="cg"), args=(X, y),
                          max_iters=MAX_ITERS)
    assert int(cg.num_hess_evals) == 0
    assert 1 <= int(cg.num_hvp_evals) <= 5 * int(cg.iterations)  # at most n CG steps each


# ---------------------------------------------------------------------------- JAX contract


def test_jit_and_no_jit_agree(lsq_problem):
    X, y, _ = lsq_problem
    solver = SMOOTH_SOLVERS["gd"]
    kwargs = dict(max_iters=MAX_ITERS, gtol=GTOL)
    eager = lossopt.minimize(least_squares, jnp.zeros(5), solver, args=(X, y), **kwargs)
    jitted = jax.jit(
        lambda X, y: lossopt.minimize(least_squares, jnp.zeros(5), solver, args=(X, y), **kwargs)
    )(X, y)
    assert int(jitted.iterations) == int(eager.iterations)
    # the same float64 operations, possibly fused differently by XLA: a few ulps
    np.testing.assert_allclose(jitted.params, eager.params, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(jitted.trace.to_numpy()["loss"], eager.trace.to_numpy()["loss"],
                               rtol=1e-12)
    with jax.disable_jit():  # the loop as plain Python, op by op (slow: a few iterations)
        python = lossopt.minimize(least_squares, jnp.zeros(5), solver, args=(X, y), max_iters=3)
    assert int(python.iterations) == 3 and python.status == Status.MAX_ITERS
    np.testing.assert_allclose(python.trace.to_numpy()["loss"],
                               eager.trace.to_numpy()["loss"][:4], rtol=1e-12)


def test_new_data_of_the_same_shape_does_not_recompile():
    def mse(w, X, y):
        return jnp.mean((X @ w - y) ** 2)

    chex.clear_trace_counter()
    # One compiled GradientDescent loop traces the objective twice (measured: the first
    # evaluation and the loop body); any retrace would trace it again, over this budget.
    counted = chex.assert_max_traces(mse, n=2)
    rng = np.random.default_rng(4)
    data = [(jnp.asarray(rng.normal(size=(40, 3))), jnp.asarray(rng.normal(size=40)))
            for _ in range(3)]
    solver = GradientDescent(learning_rate=0.1)
    lossopt.minimize(counted, jnp.zeros(3), solver, args=data[0], max_iters=100)
    lossopt.minimize(counted, jnp.zeros(3), solver, args=data[1], max_iters=100)
    # new learning rate and tolerance values are traced too: still no retrace
    lossopt.minimize(counted, jnp.ones(3), GradientDescent(learning_rate=0.3), args=data[2],
                     max_iters=100, gtol=1e-3)
    with pytest.raises(AssertionError, match="traced > 2 times"):
        # max_iters sizes the trace: a static option, so this call traces again
        lossopt.minimize(counted, jnp.zeros(3), solver, args=data[0], max_iters=101)


def test_vmapped_learning_rates_stop_independently(lsq_problem):
    X, y, _ = lsq_problem
    lrs = jnp.array([0.01, 0.05, 0.2, 2.0])  # slow, medium, fast, divergent
    batched = jax.vmap(
        lambda lr: lossopt.minimize(least_squares, jnp.zeros(5), GradientDescent(lr),
                                    args=(X, y), max_iters=MAX_ITERS)
    )(lrs)
    statuses = [Status(int(s)) for s in batched.status]
    assert statuses[1:3] == [Status.CONVERGED, Status.CONVERGED]
    assert statuses[3] == Status.NONFINITE
    iterations = [int(i) for i in batched.iterations]
    assert len(set(iterations)) == 4  # each lane has its own count
    for i, lr in enumerate(lrs.tolist()):
        single = lossopt.minimize(least_squares, jnp.zeros(5), GradientDescent(lr), args=(X, y),
                                  max_iters=MAX_ITERS)
        lane = batched.lane(i)
        assert int(lane.iterations) == int(single.iterations)
        assert int(lane.status) == int(single.status)
        assert int(lane.num_fun_evals) == int(single.num_fun_evals)
        # batched matmuls round differently from matvecs: 1e-9 relative over 2000 steps
        np.testing.assert_allclose(lane.params, single.params, rtol=1e-9, atol=1e-12)
        trace = np.asarray(lane.trace.loss)
        n = int(lane.iterations) + 1
        assert np.all(np.isfinite(trace[:n])) and np.all(np.isnan(trace[n:]))  # frozen lane


def test_sweep_forms_agree(lsq_problem):
    X, y, _ = lsq_problem
    lrs = jnp.array([0.02, 0.1, 0.3])
    kwargs = dict(args=(X, y), max_iters=MAX_ITERS)
    a = lossopt.sweep(least_squares, jnp.zeros(5), GradientDescent, {"learning_rate": lrs},
                      **kwargs)
    b = lossopt.sweep(least_squares, jnp.zeros(5), lambda lr: GradientDescent(lr), lrs, **kwargs)
    c = lossopt.sweep(least_squares, jnp.zeros(5), GradientDescent(0.5, momentum=0.0),
                      {"learning_rate": lrs}, **kwargs)
    for other in (b, c):
        np.testing.assert_array_equal(other.iterations, a.iterations)
        np.testing.assert_allclose(other.params, a.params, rtol=1e-12)
    assert a.params.shape == (3, 5) and a.trace.loss.shape == (3, MAX_ITERS + 1)
    assert isinstance(a.message, list) and len(a.message) == 3


def test_vmap_over_starting_points_with_newton():
    starts = jnp.array([[0.1, 0.2], [-0.3, 0.05], [2.0, -1.5]])
    res = jax.vmap(lambda p0: lossopt.minimize(quartic, p0, Newton()))(starts)
    assert np.all(np.asarray(res.status) == Status.CONVERGED)
    np.testing.assert_allclose(np.abs(res.params), 1 / np.sqrt(2), atol=1e-6)  # see quartic
    # signs follow the start, since each lane descends from its own point
    np.testing.assert_array_equal(np.sign(res.params), np.sign(starts))


def test_float32_params_solve_in_float32(lsq_problem):
    X, y, w_ref = lsq_problem
    X32, y32 = X.astype(jnp.float32), y.astype(jnp.float32)
    for solver in (SMOOTH_SOLVERS["gd"], Newton()):
        res = lossopt.minimize(least_squares, jnp.zeros(5, jnp.float32), solver,
                               args=(X32, y32), max_iters=MAX_ITERS, gtol=1e-4)
        assert res.params.dtype == jnp.float32 and res.trace.loss.dtype == jnp.float32
        assert res.status == Status.CONVERGED, res.message
        # float32 data and gtol 1e-4 over curvature >= 1.4: error ~1e-4
        np.testing.assert_allclose(res.params, w_ref, atol=3e-4)
