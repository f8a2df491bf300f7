"""Differentiating through lossopt.minimize: implicit (default) and unrolled derivatives.

References are independent of the code under test: closed-form derivatives of the ridge
solution computed with numpy, central finite differences of re-solved problems, and the
unrolled derivative (plain reverse mode through the iterations) against the implicit one.
Float64 throughout (conftest).
"""

from __future__ import annotations

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lossopt
from lossopt._functions import Function
from lossopt.solvers import (
    GradientDescent,
    Implicit,
    LevenbergMarquardt,
    Newton,
    ProximalGradient,
    Status,
    Subgradient,
    _loop,
)
from lossopt.solvers._spec import LoopInputs, LoopSpec

RNG = np.random.default_rng(20261201)
N, P = 12, 3
X_RIDGE = RNG.normal(size=(N, P))
Y_RIDGE = RNG.normal(size=N)
LAM = 0.7


def ridge(w, X, y, lam):
    return 0.5 * jnp.sum((X @ w - y) ** 2) + 0.5 * lam * jnp.sum(w**2)


def ridge_closed_form(X, y, lam):
    """w*, dw*/dlam, dw*/dy (p x n) and dw*/dX (p x n x p) from A w* = X^T y, A = X^T X + lam I.

    Differentiating A w = X^T y: dA w + A dw = dX^T y with dA = dX^T X + X^T dX + dlam I, so
    dw = A^{-1} (dX^T r - X^T dX w - dlam w) with r = y - X w.
    """
    X, y = np.asarray(X), np.asarray(y)
    A_inv = np.linalg.inv(X.T @ X + lam * np.eye(X.shape[1]))
    w = A_inv @ X.T @ y
    r = y - X @ w
    d_lam = -A_inv @ w
    d_y = A_inv @ X.T
    d_X = np.einsum("kj,i->kij", A_inv, r) - np.einsum("ki,j->kij", A_inv @ X.T, w)
    return w, d_lam, d_y, d_X


def solve_ridge(how):
    # Newton solves a quadratic in one full step, to rounding: the implicit derivative is then
    # the closed form's, to rounding too.
    def w_star(X, y, lam):
        return lossopt.minimize(ridge, jnp.zeros(P), Newton(line_search=None),
                                args=(X, y, lam), gtol=1e-12, differentiate=how).params
    return w_star


LINEAR_SOLVERS = ["cholesky", "lu", "cg"]


@pytest.fixture(scope="module")
def ridge_jacobians(across_workers):
    # One compiled program per linear solver (reverse and forward mode together), computed
    # once per session and shared by the parametrised cases: the first pytest-xdist worker
    # that needs them stores the arrays (exactly, in an .npz), another one loads them instead
    # of tracing and lowering the three programs again (~3 s).
    with across_workers("implicit-ridge-jacobians") as folder:
        path = folder / "jacobians.npz"
        if not path.exists():
            arrays = {}
            for name in LINEAR_SOLVERS:
                w_star = solve_ridge(Implicit(linear_solver=name))
                both = jax.jit(lambda X, y, lam, w_star=w_star: (
                    jax.jacrev(w_star, argnums=(0, 1, 2))(X, y, lam),
                    jax.jacfwd(w_star, argnums=(0, 1, 2))(X, y, lam),
                ))
                rev, fwd = both(X_RIDGE, Y_RIDGE, LAM)
                for mode, jacobians in (("rev", rev), ("fwd", fwd)):
                    for i, jacobian in enumerate(jacobians):  # d_X, d_y, d_lam
                        arrays[f"{name}-{mode}-{i}"] = np.asarray(jacobian)
            partial = folder / "jacobians.partial.npz"
            np.savez(partial, **arrays)
            partial.rename(path)
        with np.load(path) as data:
            return {name: {mode: tuple(data[f"{name}-{mode}-{i}"] for i in range(3))
                           for mode in ("rev", "fwd")}
                    for name in LINEAR_SOLVERS}


@pytest.mark.parametrize("mode", ["rev", "fwd"])
@pytest.mark.parametrize("linear_solver", LINEAR_SOLVERS)
def test_ridge_derivatives_match_closed_form(ridge_jacobians, linear_solver, mode):
    d_X, d_y, d_lam = ridge_jacobians[linear_solver][mode]
    _, ref_lam, ref_y, ref_X = ridge_closed_form(X_RIDGE, Y_RIDGE, LAM)
    # The closed form and the implicit solve both invert a 3 x 3 matrix of condition ~10 in
    # float64: they agree to ~1e-14; 1e-8 is the brief's bar with ample room (CG stops at a
    # relative residual of 2e-11).
    np.testing.assert_allclose(d_lam, ref_lam, rtol=0, atol=1e-8)
    np.testing.assert_allclose(d_y, ref_y, rtol=0, atol=1e-8)
    np.testing.assert_allclose(d_X, ref_X, rtol=0, atol=1e-8)


# --- logistic regression: hypergradient of a validation loss --------------------------------

N_TRAIN, N_VAL, D = 40, 30, 4
X_TR = RNG.normal(size=(N_TRAIN, D))
W_TRUE = np.array([1.5, -2.0, 0.5, 0.0])
Y_TR = (RNG.uniform(size=N_TRAIN) < 1 / (1 + np.exp(-X_TR @ W_TRUE - 0.3))).astype(float)
X_VA = RNG.normal(size=(N_VAL, D))
Y_VA = (RNG.uniform(size=N_VAL) < 1 / (1 + np.exp(-X_VA @ W_TRUE - 0.3))).astype(float)
LAMS = np.array([0.02, 0.3, 0.05, 1.0])  # per-feature L2 strengths


def logistic(params, X, y, lam):
    # params is a pytree (weights and an unpenalised intercept): the implicit rule ravels it.
    z = X @ params["w"] + params["b"]
    return jnp.mean(jax.nn.softplus(z) - y * z) + 0.5 * jnp.sum(lam * params["w"] ** 2)


P0 = {"w": jnp.zeros(D), "b": jnp.zeros(())}


def train(lam, X=X_TR, solver=None, how="implicit", **kw):
    # Full Newton steps (no line search, which cannot certify gradients near 1e-12: its
    # Armijo test then compares values equal to rounding) converge quadratically from 0 here.
    solver = Newton(line_search=None) if solver is None else solver
    kw.setdefault("gtol", 1e-12)
    return lossopt.minimize(logistic, P0, solver, args=(X, Y_TR, lam), differentiate=how, **kw)


def validation_loss(lam, **kw):
    return logistic(train(lam, **kw).params, X_VA, Y_VA, 0.0)


@pytest.fixture(scope="module")
def val_loss():
    return jax.jit(validation_loss), jax.jit(jax.grad(validation_loss))


def test_logistic_hypergradient_matches_finite_differences(val_loss):
    # Per-feature strengths, and the scalar strength s (lam = s * LAMS, so d/ds is the
    # gradient dotted with LAMS). Central differences of re-solved problems, each solve to
    # gtol 1e-12, with relative steps h_i = 1e-4 lam_i: truncation ~1e-8 relative, solve noise
    # ~1e-15 / h below 1e-9.
    value, grad = val_loss
    g = np.asarray(grad(LAMS))
    fd = []
    for i in range(D):
        e = np.zeros(D)
        e[i] = 1e-4 * LAMS[i]
        fd.append((value(LAMS + e) - value(LAMS - e)) / (2 * e[i]))
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-10)
    h = 1e-4
    fd_scalar = (value(LAMS * (1 + h)) - value(LAMS * (1 - h))) / (2 * h)
    np.testing.assert_allclose(g @ LAMS, fd_scalar, rtol=1e-6)


def test_value_derivative_is_the_envelope():
    # d/dlam min_w f(w, lam) = d_lam f(w*, lam) = 0.5 w*^2 (per feature), and d/dX the
    # partial derivative of f at w*: the latter against central differences of re-solves.
    def opt_value(lam, X):
        return train(lam, X).value

    @jax.jit
    def run(lam, X):
        return train(lam, X).params, jax.grad(opt_value, argnums=(0, 1))(lam, X)

    params, (g_lam, g_X) = run(LAMS, X_TR)
    np.testing.assert_allclose(g_lam, 0.5 * np.asarray(params["w"]) ** 2, rtol=1e-10)
    h = 1e-5
    E = np.zeros_like(X_TR)
    E[3, 1] = h
    value = jax.jit(opt_value)
    fd = (value(LAMS, X_TR + E) - value(LAMS, X_TR - E)) / (2 * h)
    np.testing.assert_allclose(g_X[3, 1], fd, rtol=1e-6)  # O(h^2) truncation


def test_jvp_and_jacrev_agree():
    # d w*(X) / dX: a (D x N_TRAIN x D) Jacobian by reverse mode, forward mode, and one jvp
    # along a seeded random direction, in one compiled program.
    def w_star(X):
        return train(0.1, X).params["w"]

    V = np.random.default_rng(1).normal(size=X_TR.shape)
    J_rev, J_fwd, (_, tangent) = jax.jit(lambda X, V: (
        jax.jacrev(w_star)(X), jax.jacfwd(w_star)(X), jax.jvp(w_star, (X,), (V,))
    ))(X_TR, V)
    # Same linear algebra in two orders: agreement to rounding (~1e-15 here).
    np.testing.assert_allclose(J_rev, J_fwd, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(tangent, np.einsum("kij,ij->k", J_rev, V), rtol=1e-10,
                               atol=1e-13)


def test_unrolled_and_implicit_agree_on_a_well_conditioned_problem():
    # Gradient descent with a fixed step on a strongly convex logistic regression (lam = 1:
    # condition ~3): after 300 steps the iterate's error is ~1e-14 and the unrolled
    # derivative, which converges at the same linear rate, matches the implicit one.
    gd = GradientDescent(learning_rate=1.0)
    lam = jnp.full(D, 1.0)

    @jax.jit
    def grads(lam):
        def g(how, max_iters):
            return jax.grad(validation_loss)(lam, solver=gd, how=how, max_iters=max_iters)
        return g("implicit", 300), g("unroll", 300), g("unroll", 3)

    g_imp, g_unr, g_short = grads(lam)
    assert np.all(np.isfinite(g_imp))
    np.testing.assert_allclose(g_unr, g_imp, rtol=1e-8, atol=1e-12)
    # ... and the unrolled one is the derivative of the iterations that ran: after 3 steps it
    # is finite (a non-converged solve is fine to unroll) and far from the implicit one.
    assert np.all(np.isfinite(g_short))
    assert np.max(np.abs(g_short - g_imp)) > 1e-3


def test_unroll_forward_result_is_the_while_loop_result():
    # Under jit (tracers reach the unrolled scan) the result equals minimize's while loop bit
    # for bit: the same body, with finished iterations frozen.
    @jax.jit
    def both(lam):
        def run(how):
            return train(lam, solver=GradientDescent(1.0), how=how, max_iters=300, gtol=1e-6)
        return run("unroll"), run("implicit")

    a, b = both(0.1)
    assert int(a.status) == int(b.status) == Status.CONVERGED
    assert int(a.iterations) == int(b.iterations) > 1
    np.testing.assert_array_equal(a.params["w"], b.params["w"])
    np.testing.assert_array_equal(a.trace.loss, b.trace.loss)


def test_unroll_differentiates_learning_rate_and_start():
    # f = 0.5 (w - c)^2: k gradient steps give w_k = c + (1 - lr)^k (w_0 - c).
    f = lambda w, c: 0.5 * jnp.sum((w - c) ** 2)

    def w_k(lr, w0):
        return lossopt.minimize(f, w0, GradientDescent(lr), args=(2.0,), max_iters=4,
                                gtol=0.0, differentiate="unroll").params[0]

    lr, w0 = 0.3, jnp.array([0.5])
    d_lr, d_w0 = jax.grad(w_k, argnums=(0, 1))(lr, w0)
    np.testing.assert_allclose(d_lr, -4 * (1 - lr) ** 3 * (0.5 - 2.0), rtol=1e-12)
    np.testing.assert_allclose(d_w0, [(1 - lr) ** 4], rtol=1e-12)


def test_unroll_nonsmooth_objective():
    # The subgradient method on |w - c| (no Hessian: the implicit form does not apply):
    # with a constant step the iterate w_k = w_0 + k * step moves toward c while w_k < c, so
    # dw_k/dc = 0 and dw_k/dw_0 = 1 -- the derivative of what ran.
    f = lambda w, c: jnp.sum(jnp.abs(w - c))

    def w_k(c, w0):
        return lossopt.minimize(f, w0, Subgradient(step_size=0.1, schedule="constant"),
                                args=(c,), max_iters=5, gtol=0.0,
                                differentiate="unroll").params[0]

    d_c, d_w0 = jax.grad(w_k, argnums=(0, 1))(3.0, jnp.array([0.0]))
    np.testing.assert_allclose([d_c, d_w0[0]], [0.0, 1.0], atol=1e-12)


def half_mse(w, X, y):
    return 0.5 * jnp.mean((X @ w - y) ** 2)


def test_lasso_derivatives_from_the_proximal_fixed_point():
    # FISTA's solution of (1/2n)||Xw - y||^2 + lam ||w||_1 satisfies, on its support S,
    # G w_S = X_S^T y / n - lam sign(w_S) with G = X_S^T X_S / n, and w = 0 off it: so
    # dw_S/dlam = -G^{-1} sign(w_S), dw_S/dy = G^{-1} X_S^T / n, zero off the support, and
    # d F*/d lam = ||w*||_1 (envelope). The strength lives in the solver's penalty (a pytree
    # leaf), y in args: the fixed-point rule differentiates both.
    X = X_RIDGE
    y = X @ np.array([2.0, 0.0, -1.0]) + 0.1 * Y_RIDGE

    def solve(lam, y):
        solver = ProximalGradient(learning_rate=1.0, prox=lossopt.prox.l1(lam),
                                  restart="gradient", line_search="backtracking")
        return lossopt.minimize(half_mse, jnp.zeros(P), solver, args=(X, y), gtol=1e-10)

    @jax.jit
    def run(lam, y):
        return (solve(lam, y),
                jax.jacrev(lambda lam, y: solve(lam, y).params, argnums=(0, 1))(lam, y),
                jax.grad(lambda lam: solve(lam, y).value)(lam))

    res, (d_lam, d_y), d_value = run(0.3, y)
    assert int(res.status) == Status.CONVERGED
    w = np.asarray(res.params)
    support = w != 0
    assert 0 < support.sum() < P  # a sparse solution: the test exercises both parts
    G = X[:, support].T @ X[:, support] / N
    ref_lam = np.zeros(P)
    ref_lam[support] = -np.linalg.solve(G, np.sign(w[support]))
    ref_y = np.zeros((P, N))
    ref_y[support] = np.linalg.solve(G, X[:, support].T / N)
    # A 2 x 2 solve either way, the support found exactly (soft-thresholding gives exact
    # zeros): agreement to rounding, 1e-8 with room.
    np.testing.assert_allclose(d_lam, ref_lam, rtol=0, atol=1e-8)
    np.testing.assert_allclose(d_y, ref_y, rtol=0, atol=1e-8)
    np.testing.assert_allclose(d_value, np.abs(w).sum(), rtol=1e-8)


def test_least_squares_fit_derivative_matches_closed_form():
    # An exponential fit r_i = a exp(-b t_i) - y_i by Levenberg-Marquardt
    # (minimize_least_squares). At the solution, d grad/d y = -J^T, so dp*/dy = H^{-1} J^T with
    # the full Hessian H = J^T J + sum_i r_i hess(r_i) (a nonzero-residual fit: Gauss-Newton's
    # J^T J alone is 0.4% off here). Reference: numpy closed forms of J and hess(r_i) at
    # scipy.optimize.least_squares' solution (MINPACK LM), an independent solver.
    from scipy.optimize import least_squares

    t = np.linspace(0.0, 3.0, 20)
    y = 2.0 * np.exp(-0.7 * t) + 0.05 * np.sin(7.0 * t)

    def residuals(p, t, y):
        return p[0] * jnp.exp(-p[1] * t) - y

    def fit(y):
        return lossopt.minimize_least_squares(residuals, jnp.array([1.0, 0.1]),
                                              LevenbergMarquardt(), args=(t, y), gtol=1e-9)

    res, J_implicit = jax.jit(lambda y: (fit(y), jax.jacrev(lambda y: fit(y).params)(y)))(y)
    assert int(res.status) == Status.CONVERGED

    a, b = least_squares(lambda p: p[0] * np.exp(-p[1] * t) - y, [1.0, 0.1], method="lm",
                         xtol=1e-15, ftol=1e-15, gtol=1e-15).x
    e = np.exp(-b * t)
    r = a * e - y
    J = np.stack([e, -a * t * e], axis=1)
    H = J.T @ J + np.array([[0.0, -np.sum(r * t * e)],
                            [-np.sum(r * t * e), np.sum(r * a * t**2 * e)]])
    reference = np.linalg.solve(H, J.T)
    # Both solutions agree to ~1e-10 (gtol 1e-9 on a condition-~30 Hessian); the derivative
    # inherits that error: 1e-7 with room.
    np.testing.assert_allclose(res.params, [a, b], rtol=1e-8)
    np.testing.assert_allclose(J_implicit, reference, rtol=0, atol=1e-7)


# --- honesty: no silent wrong derivative -----------------------------------------------------


def test_non_converged_solve_gives_nan():
    lam = jnp.full(D, 0.1)
    gd = GradientDescent(0.1)

    @jax.jit
    def run(lam):
        def result(lam):
            return train(lam, solver=gd, max_iters=3)
        return (result(lam).status,
                jax.grad(lambda lam: jnp.sum(result(lam).params["w"]))(lam),
                jax.grad(lambda lam: result(lam).value)(lam),
                jax.jvp(lambda lam: result(lam).params["w"], (lam,), (jnp.ones(D),))[1])

    status, grad_params, grad_value, tangent = run(lam)
    assert int(status) == Status.MAX_ITERS
    assert np.all(np.isnan(grad_params)) and np.all(np.isnan(grad_value))
    assert np.all(np.isnan(tangent))


def test_require_levels():
    # An ftol stop is "converged" (default) but not a gradient certificate (require="gtol");
    # require="none" takes the implicit formula wherever the solve stopped.
    gd = GradientDescent(0.5)

    @jax.jit
    def run(lam):
        def d_value(how):
            return jax.grad(lambda lam: train(lam, solver=gd, how=how, gtol=0.0,
                                              ftol=1e-4).value)(lam)
        status = train(lam, solver=gd, gtol=0.0, ftol=1e-4).status
        return (status, d_value("implicit"), d_value(Implicit(require="gtol")),
                d_value(Implicit(require="none")))

    status, default, gtol_only, anything = run(0.1)
    assert int(status) == Status.CONVERGED_FTOL
    assert np.isfinite(default) and np.isnan(gtol_only) and np.isfinite(anything)


@pytest.mark.parametrize("linear_solver", LINEAR_SOLVERS)
def test_saddle_point_gives_nan_params_but_a_value_derivative(linear_solver):
    # f = (w0 - c0)^2 - (w1 - c1)^2 started at its saddle c: the solve "converges" at once
    # (zero gradient) but the Hessian diag(2, -2) is indefinite, so x* is no minimum: Cholesky
    # refuses (NaN). LU solves the stationarity condition (its documented purpose) and returns
    # dx*/dc = I. CG detects negative curvature only along the directions it explores: each
    # entry is NaN or the stationary point's derivative, never another number. The envelope
    # derivative d f/dc = 0 needs no Hessian.
    def saddle(w, c):
        return (w[0] - c[0]) ** 2 - (w[1] - c[1]) ** 2

    def res(c):
        return lossopt.minimize(saddle, c, GradientDescent(0.1), args=(c,),
                                differentiate=Implicit(linear_solver=linear_solver))

    c = jnp.array([1.0, 2.0])
    status, J, g = jax.jit(lambda c: (res(c).status, jax.jacrev(lambda c: res(c).params)(c),
                                      jax.grad(lambda c: res(c).value)(c)))(c)
    assert int(status) == Status.CONVERGED
    if linear_solver == "lu":
        np.testing.assert_allclose(J, np.eye(2), atol=1e-12)
    elif linear_solver == "cholesky":
        assert np.all(np.isnan(J))
    else:
        J = np.asarray(J)
        assert np.any(np.isnan(J))
        np.testing.assert_allclose(J[~np.isnan(J)], np.eye(2)[~np.isnan(J)], atol=1e-12)
    np.testing.assert_allclose(g, [0.0, 0.0], atol=1e-12)


def test_singular_hessian_gives_nan():
    # Least squares with a duplicated column and no regulariser: X^T X is singular, the
    # minimiser is not unique and has no derivative.
    X = np.concatenate([X_RIDGE[:, :2], X_RIDGE[:, :1]], axis=1)

    def w_star(y):
        return lossopt.minimize(ridge, jnp.zeros(P), Newton(), args=(X, y, 0.0),
                                gtol=1e-10).params

    assert np.all(np.isnan(jax.jit(jax.jacrev(w_star))(Y_RIDGE)))


def test_integer_fields_and_trace_carry_no_derivative():
    # Newton with its line search is monotone: best_params is params, and shares its tangent
    # (a non-monotone solve's best_params gets NaN unless it is the final point).
    def run(lam):
        return train(lam, solver=Newton(), gtol=1e-8)

    _, tangent = jax.jit(lambda lam: jax.jvp(run, (lam,), (1.0,)))(0.1)
    for name in ("iterations", "status", "num_fun_evals", "num_grad_evals"):
        assert getattr(tangent, name).dtype == jax.dtypes.float0, name
    assert tangent.trace.count.dtype == jax.dtypes.float0
    np.testing.assert_array_equal(tangent.trace.loss, 0.0)
    np.testing.assert_array_equal(tangent.grad_norm, 0.0)
    np.testing.assert_array_equal(tangent.best_params["w"], tangent.params["w"])
    assert np.all(np.isfinite(tangent.params["w"])) and np.any(tangent.params["w"] != 0)


# --- the JAX contract ------------------------------------------------------------------------


def test_grad_under_jit_and_vmap():
    # A batch of ridge strengths, each lane its own solve; against the closed form per lane.
    def w_sum(lam):
        return jnp.sum(solve_ridge("implicit")(X_RIDGE, Y_RIDGE, lam))

    lams = jnp.array([0.1, 0.7, 3.0])
    got = jax.jit(jax.vmap(jax.grad(w_sum)))(lams)
    want = [np.sum(ridge_closed_form(X_RIDGE, Y_RIDGE, float(lam))[1]) for lam in lams]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-8)  # as the closed-form test
    # vmap over data too (a batch of targets): the gradient with respect to each y.
    ys = jnp.stack([Y_RIDGE, 2 * Y_RIDGE])
    g = jax.jit(jax.vmap(jax.grad(lambda y: jnp.sum(solve_ridge("implicit")(X_RIDGE, y, LAM)))))(ys)
    ref = ridge_closed_form(X_RIDGE, Y_RIDGE, LAM)[2].sum(axis=0)  # linear in y
    np.testing.assert_allclose(g, np.stack([ref, ref]), rtol=0, atol=1e-8)


def _module_text(lowered) -> str:
    # The outer function's name is the module's name: drop it.
    return re.sub(r"module @\S+", "module", lowered.as_text(), count=1)


def test_not_differentiated_call_compiles_the_same_program():
    # Under an outer jit (tracers reach minimize, so the custom_jvp wrapper is in play) the
    # lowered program is the loop's own, as minimize compiled it before implicit
    # differentiation existed: lossopt.solvers._loop.solve on minimize's prepared arguments.
    solver = Newton()

    def solve(X, y, lam):
        return lossopt.minimize(ridge, jnp.zeros(P), solver, args=(X, y, lam))

    def reference(X, y, lam):
        spec = LoopSpec(fun=Function(ridge), metrics=(), max_iters=1000, record_every=1,
                        rules_enabled=(True, False, False))
        inputs = LoopInputs(init_params=jnp.zeros(P), args=(X, y, lam), metric_args=(),
                            gtol=1e-6, ftol=0.0, xtol=0.0, key=None)
        return _loop.solve.optimized(spec, solver, inputs)

    new = _module_text(jax.jit(solve).lower(X_RIDGE, Y_RIDGE, LAM))
    old = _module_text(jax.jit(reference).lower(X_RIDGE, Y_RIDGE, LAM))
    assert new == old
    # "unroll" is the same program too until tracers reach it: a concrete call runs the loop.
    a = lossopt.minimize(ridge, jnp.zeros(P), solver, args=(X_RIDGE, Y_RIDGE, LAM),
                         differentiate="unroll")
    b = lossopt.minimize(ridge, jnp.zeros(P), solver, args=(X_RIDGE, Y_RIDGE, LAM))
    np.testing.assert_array_equal(a.params, b.params)


# --- errors ----------------------------------------------------------------------------------


def test_bad_options_are_named():
    with pytest.raises(ValueError, match=r"`differentiate`.*'implicitt'.*did you mean"):
        lossopt.minimize(ridge, jnp.zeros(P), Newton(), args=(X_RIDGE, Y_RIDGE, LAM),
                         differentiate="implicitt")
    with pytest.raises(TypeError, match=r"`differentiate`.*got bool True"):
        lossopt.minimize(ridge, jnp.zeros(P), Newton(), args=(X_RIDGE, Y_RIDGE, LAM),
                         differentiate=True)
    with pytest.raises(ValueError, match="linear_solver"):
        Implicit(linear_solver="qr")
    with pytest.raises(ValueError, match="require"):
        Implicit(require="always")
    with pytest.raises(ValueError, match="cg_tol"):
        Implicit(cg_tol=0.0)
    with pytest.raises(ValueError, match="cg_max_iters"):
        Implicit(cg_max_iters=0)
    with pytest.raises(TypeError, match="sweep does not take `differentiate`"):
        lossopt.sweep(ridge, jnp.zeros(P), GradientDescent, jnp.array([0.1, 0.2]),
                      args=(X_RIDGE, Y_RIDGE, LAM), differentiate="unroll")


def test_unsupported_cases_raise_when_differentiated():
    def unrolled_newton(lam):
        return lossopt.minimize(ridge, jnp.zeros(P), Newton(), args=(X_RIDGE, Y_RIDGE, lam),
                                differentiate="unroll").params

    with pytest.raises(NotImplementedError, match=r"Newton runs a lax\.while_loop"):
        jax.grad(lambda lam: jnp.sum(unrolled_newton(lam)))(LAM)

    def noisy(w, X, y, lam, key):
        return ridge(w, X, y, lam) + 0.01 * jnp.sum(jax.random.normal(key, w.shape) * w)

    def stochastic(lam):
        return lossopt.minimize(noisy, jnp.zeros(P), GradientDescent(0.01),
                                args=(X_RIDGE, Y_RIDGE, lam), key=jax.random.key(0),
                                max_iters=5).params

    with pytest.raises(NotImplementedError, match="stochastic"):
        jax.grad(lambda lam: jnp.sum(stochastic(lam)))(LAM)

    # A proximal solution's fixed-point system is not symmetric: no CG.
    lasso = ProximalGradient(learning_rate=1.0, prox=lossopt.prox.l1(0.1))

    def sparse(lam):
        return lossopt.minimize(ridge, jnp.zeros(P), lasso, args=(X_RIDGE, Y_RIDGE, lam),
                                max_iters=5, differentiate=Implicit(linear_solver="cg")).params

    with pytest.raises(NotImplementedError, match="not symmetric"):
        jax.grad(lambda lam: jnp.sum(sparse(lam)))(LAM)


DOCS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "differentiating.md"


@pytest.mark.slow(20)
def test_docs_page_examples_run():
    # docs/differentiating.md's ```python blocks, top to bottom in one namespace (the site's
    # test runs only the pages its nav lists; this page tests its own examples).
    blocks = re.findall(r"```python\n(.*?)```", DOCS_PAGE.read_text(), flags=re.S)
    assert len(blocks) >= 4
    namespace: dict = {"__name__": "docs_differentiating"}
    for block in blocks:
        exec(compile(block, str(DOCS_PAGE), "exec"), namespace)  # our own docs
    # The page's claims, checked on what its blocks computed.
    np.testing.assert_allclose(jax.jacrev(namespace["w_star"])(0.3),
                               -np.linalg.solve(np.asarray(namespace["A"]),
                                                namespace["w_star"](0.3)), rtol=1e-8)
    np.testing.assert_allclose(namespace["d_lr"], -4 * 0.7**3 * (0.5 - 2.0), rtol=1e-12)
