"""lossopt.minimize_least_squares, GaussNewton and LevenbergMarquardt: known answers against
scipy.optimize.least_squares and numpy.linalg.lstsq, convergence rates, statuses, the JAX
contract (pytrees, vmap over the damping in one compilation, compile reuse) and bad input.

References are independent of lossopt: scipy's MINPACK Levenberg-Marquardt (method="lm",
Fortran, float64, tight tolerances), numpy's SVD least squares, and closed-form minimisers.
Every test runs in float64 (conftest). lossopt minimises F = 1/2 ||r||^2 (scipy's ``cost``),
so its values are compared with ``2 * value`` against lossopt.problems' ``sum(r**2)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import least_squares

import lossopt
from lossopt import problems
from lossopt.solvers import GaussNewton, LevenbergMarquardt, Newton, Status

MAX_ITERS = 300  # one value for most runs: max_iters is static, so shared values share loops


def scipy_lm(residuals, x0, args=()):
    """scipy's MINPACK LM in float64 with tolerances at rounding level: the reference."""
    jitted = jax.jit(residuals)  # one small compile instead of thousands of eager dispatches

    def fun(x):
        return np.asarray(jitted(jnp.asarray(x), *args), dtype=np.float64)

    out = least_squares(fun, np.asarray(x0, np.float64), method="lm", xtol=1e-15, ftol=1e-15,
                        gtol=1e-15, max_nfev=100_000)
    return out.x, float(np.sum(out.fun**2))


# --- LM against scipy on MGH residual problems -----------------------------------------------

# (name, gtol, minimiser tolerance or None when the minimiser is not unique). gtol is what a
# value-based acceptance test (a trial is accepted only if F measurably decreases) can
# certify: about sqrt(eps * F* * lambda_max(J^T J)), which for Freudenstein-Roth
# (F* ~ 24, lambda_max ~ 1e5 at its local minimum) is ~1e-6 and for Meyer (F* ~ 44,
# lambda_max ~ 1e9) ~1e-3; zero-residual and small problems reach 1e-10.
MGH_CASES = [
    ("rosenbrock", 1e-10, 1e-8),  # zero residual, J nonsingular: x* = (1, 1) to ~sqrt(F)
    ("freudenstein_roth", 1e-5, 1e-6),  # the local minimum 48.98425... at (11.41, -0.8968)
    ("powell_singular", 1e-10, 1e-2),  # J singular at x* = 0: quartic terms, |x|~F^(1/4)
    ("bard", 1e-10, 1e-6),  # nonzero residual 8.2149e-3, isolated minimiser
    ("box_3d", 1e-10, None),  # zero residual on a line of minimisers: value only
    ("meyer", 1e-2, 1e-6),  # badly scaled (x* ~ (0.0056, 6181, 345)); relative tolerance
]


@pytest.mark.parametrize("name,gtol,xtol", MGH_CASES, ids=[c[0] for c in MGH_CASES])
def test_lm_reaches_scipy_on_mgh(name, gtol, xtol):
    p = problems.get(name)
    x_ref, f_ref = scipy_lm(p.residuals, p.x0, p.args)
    res = lossopt.minimize_least_squares(p.residuals, jnp.asarray(p.x0), LevenbergMarquardt(),
                                         args=p.args, max_iters=MAX_ITERS, gtol=gtol)
    assert res.status == Status.CONVERGED, (res.status, res.grad_norm)
    # Values: scipy's optimum to 1e-8 relative (both solve to rounding; the minima are
    # well separated from other stationary values), or 1e-12 absolute for zero residuals.
    assert abs(2 * float(res.value) - f_ref) <= 1e-8 * f_ref + 1e-12
    if xtol is not None:
        scale = np.maximum(np.abs(x_ref), 1.0)
        np.testing.assert_array_less(np.abs(np.asarray(res.params) - x_ref) / scale, xtol)
    # Monotone and honest counts: one residual per trial, trials >= iterations.
    loss = res.trace["loss"]
    assert np.all(np.diff(loss) < 0)
    assert res.num_fun_evals >= res.iterations + 1
    assert res.num_grad_evals == res.iterations + 2  # start (driver + init), one per step


def test_freudenstein_roth_local_minimum_is_papers_other_one():
    # MGH list two minima: f = 0 at (5, 4) and the local 48.9842... at (11.41, -0.8968).
    # From the standard start LM (like scipy) stops at the local one; check it is that one.
    p = problems.get("freudenstein_roth")
    res = lossopt.minimize_least_squares(p.residuals, jnp.asarray(p.x0), LevenbergMarquardt(),
                                         args=p.args, max_iters=MAX_ITERS, gtol=1e-5)
    np.testing.assert_allclose(2 * float(res.value), 48.9842536792, rtol=1e-9)
    np.testing.assert_allclose(res.params, [11.4127789, -0.896805253], rtol=1e-6)


# --- Gauss-Newton ----------------------------------------------------------------------------

T = np.linspace(0.0, 2.0, 15)
P_TRUE = np.array([2.0, -1.5, 0.5])


def exp_fit(p, t, y):
    return p[0] * jnp.exp(p[1] * t) + p[2] - y


def test_gauss_newton_converges_quadratically_on_zero_residual():
    # Exact data: r(p*) = 0 with J of full column rank, so GN is locally quadratic:
    # e_{k+1} <= C e_k^2. The error is recorded every iteration by a metric.
    y = P_TRUE[0] * np.exp(P_TRUE[1] * T) + P_TRUE[2]
    res = lossopt.minimize_least_squares(
        exp_fit, jnp.array([1.5, -1.0, 0.0]), GaussNewton(), args=(T, y),
        max_iters=MAX_ITERS, gtol=1e-12,
        metrics={"err": lambda p: jnp.linalg.norm(p - P_TRUE)},
    )
    assert res.status == Status.CONVERGED
    assert res.iterations <= 8  # "few"
    err = res.trace["err"]
    np.testing.assert_allclose(res.params, P_TRUE, atol=1e-12)
    # The last errors above rounding level: each ratio e_{k+1} / e_k^2 stays bounded (C ~ 1
    # here; 10 leaves room) while e_{k+1} / e_k collapses (superlinear, then quadratic).
    tail = err[err > 1e-13]
    tail = tail[-4:]
    assert len(tail) >= 3
    quad = tail[1:] / tail[:-1] ** 2
    assert np.all(quad < 10.0), quad
    lin = tail[1:] / tail[:-1]
    assert lin[-1] < 1e-2, lin


@pytest.fixture(scope="module")
def linear_problem():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(20, 4))
    b = rng.normal(size=20)
    return A, b, np.linalg.lstsq(A, b, rcond=None)[0]


def linear_residuals(x, A, b):
    return A @ x - b


@pytest.mark.parametrize("solver,max_steps", [
    (GaussNewton(), 1),  # the GN step solves a linear problem exactly
    (LevenbergMarquardt(damping=1e-10), 2),  # a damping this small is one GN step to ~1e-10
])
def test_linear_least_squares_matches_lstsq(linear_problem, solver, max_steps):
    A, b, x_ref = linear_problem
    res = lossopt.minimize_least_squares(linear_residuals, jnp.zeros(4), solver, args=(A, b),
                                         max_iters=MAX_ITERS, gtol=1e-10)
    assert res.status == Status.CONVERGED
    assert 1 <= res.iterations <= max_steps
    # lstsq's solution to rounding: cond(A) is ~3, so 1e-10 is 10^5 eps of headroom.
    np.testing.assert_allclose(res.params, x_ref, atol=1e-10)
    np.testing.assert_allclose(2 * float(res.value), np.sum((A @ x_ref - b) ** 2), rtol=1e-12)


def test_gauss_newton_rank_deficient_takes_minimum_norm_step(linear_problem):
    # Rank-2 A (columns 2, 3 copy columns 0, 1): J^T J is singular, and lstsq's minimum-norm
    # GN step solves the problem in one iteration with numpy's minimum-norm answer. Same
    # residual function and shapes as above: the compiled loop is shared.
    A, b, _ = linear_problem
    A = np.concatenate([A[:, :2], A[:, :2]], axis=1)
    x_ref = np.linalg.lstsq(A, b, rcond=None)[0]  # minimum-norm (SVD)
    res = lossopt.minimize_least_squares(linear_residuals, jnp.zeros(4), GaussNewton(),
                                         args=(A, b), max_iters=MAX_ITERS, gtol=1e-10)
    assert res.status == Status.CONVERGED and res.iterations == 1
    np.testing.assert_allclose(res.params, x_ref, atol=1e-10)


# --- matrix-free and scaled variants ---------------------------------------------------------


@pytest.mark.parametrize("solver", [
    LevenbergMarquardt(linear_solver="cg"),
    GaussNewton(linear_solver="cg"),
    LevenbergMarquardt(scale=True, jacobian="reverse"),
], ids=["lm-cg", "gn-cg", "lm-scaled-reverse"])
def test_variants_reach_scipy(solver):
    # Extended Rosenbrock (n = 10): zero residual, J nonsingular, x* = 1.
    p = problems.get("extended_rosenbrock", n=10)
    x_ref, _ = scipy_lm(p.residuals, p.x0, p.args)
    res = lossopt.minimize_least_squares(p.residuals, jnp.asarray(p.x0), solver, args=p.args,
                                         max_iters=MAX_ITERS, gtol=1e-9)
    assert res.status == Status.CONVERGED
    np.testing.assert_allclose(res.params, x_ref, atol=1e-8)  # |x - x*| ~ |g| / sigma_min
    assert np.all(np.diff(res.trace["loss"]) < 0)  # all three are monotone
    if solver.linear_solver == "cg":  # matrix-free: products, never a Jacobian or Hessian
        assert res.num_hvp_evals > 0 and res.num_hess_evals == 0


# --- pytrees, statuses, the JAX contract -----------------------------------------------------


def test_pytree_params_and_residuals():
    # params {"amp": (), "rest": (2,)} and residuals {"fit": (15,), "prior": (1,)}; the
    # reference flattens both by hand for scipy.
    y = 2.0 * np.exp(-1.5 * T) + 0.5 + 0.01 * np.random.default_rng(1).normal(size=T.size)

    def tree_residuals(p, t, y):
        fit = p["amp"] * jnp.exp(p["rest"][0] * t) + p["rest"][1] - y
        return {"fit": fit, "prior": 0.1 * (p["amp"] - 2.0)[None]}

    def flat_residuals(x, t, y):
        fit = x[0] * jnp.exp(x[1] * t) + x[2] - y
        return jnp.concatenate([fit, 0.1 * (x[0] - 2.0)[None]])

    x_ref, f_ref = scipy_lm(flat_residuals, [1.0, -1.0, 0.0], (T, y))
    p0 = {"amp": jnp.array(1.0), "rest": jnp.array([-1.0, 0.0])}
    res = lossopt.minimize_least_squares(tree_residuals, p0, LevenbergMarquardt(), args=(T, y),
                                         max_iters=MAX_ITERS, gtol=1e-10)
    assert res.status == Status.CONVERGED
    assert set(res.params) == {"amp", "rest"} and res.params["rest"].shape == (2,)
    # Nonzero-residual optimum, well conditioned, gtol 1e-10: scipy's minimiser to 1e-8.
    np.testing.assert_allclose([res.params["amp"], *res.params["rest"]], x_ref, atol=1e-8)
    np.testing.assert_allclose(2 * float(res.value), f_ref, rtol=1e-10)


def failing(x, a, b):
    # a=1, b=0: r = x, finite everywhere, but its derivative is NaN for x < 0.5 (sqrt'(0) * 0),
    # so the step from 1 to the zero at 0 lands where J^T r is NaN.
    # a=0, b=1: r = exp(-x), whose infimum 0 is at +infinity: every step decreases F and
    # |J^T r| = exp(-2x) stays above 1e-300 for 300 iterations.
    return a * (x + 0.0 * jnp.sqrt(jnp.maximum(x - 0.5, 0.0))) + b * jnp.exp(-x)


@pytest.mark.parametrize("solver", [LevenbergMarquardt(), GaussNewton()], ids=["lm", "gn"])
def test_failure_statuses(solver):
    # NONFINITE: the last finite iterate (the start) is returned with its value.
    res = lossopt.minimize_least_squares(failing, jnp.array([1.0]), solver, args=(1.0, 0.0),
                                         max_iters=MAX_ITERS, gtol=1e-300)
    assert res.status == Status.NONFINITE
    assert res.iterations == 0
    np.testing.assert_array_equal(res.params, [1.0])
    assert float(res.value) == 0.5
    # MAX_ITERS: the same compiled loop (new data only), every iterate finite and decreasing.
    res = lossopt.minimize_least_squares(failing, jnp.array([1.0]), solver, args=(0.0, 1.0),
                                         max_iters=MAX_ITERS, gtol=1e-300)
    assert res.status == Status.MAX_ITERS and res.iterations == MAX_ITERS
    loss = res.trace["loss"]
    assert np.all(np.isfinite(loss)) and np.all(np.diff(loss) < 0)
    # ... and Newton, another solver, reports the same statuses on the same problem.
    assert lossopt.minimize_least_squares(failing, jnp.array([1.0]), Newton(),
                                          args=(1.0, 0.0)).status == Status.NONFINITE


T2 = np.linspace(0.0, 2.0, 12)
TRACES: list[int] = []


def make_residuals():
    # A new function object each call, same code and no closure: equal compile keys.
    def residuals(p, t, y):
        TRACES.append(1)
        return p[0] * jnp.exp(p[1] * t) - y

    return residuals


@pytest.fixture(scope="module")
def exp_data():
    return 3.0 * np.exp(-0.5 * T2), 1.0 * np.exp(-2.0 * T2)


def test_recreated_residual_function_reuses_compiled_loop(exp_data):
    y1, y2 = exp_data
    first = lossopt.minimize_least_squares(make_residuals(), jnp.array([1.0, 0.0]),
                                           LevenbergMarquardt(), args=(T2, y1), max_iters=50)
    n_traces = len(TRACES)
    assert n_traces > 0
    second = lossopt.minimize_least_squares(make_residuals(), jnp.array([1.0, 0.0]),
                                            LevenbergMarquardt(), args=(T2, y2), max_iters=50)
    assert len(TRACES) == n_traces  # no retrace: the compiled loop was reused
    # Exact data: the generating parameters to ~gtol / sigma_min.
    np.testing.assert_allclose(first.params, [3.0, -0.5], atol=1e-7)
    np.testing.assert_allclose(second.params, [1.0, -2.0], atol=1e-7)


def test_sweep_over_damping_one_compile(exp_data):
    # lossopt.sweep over LM's damping on the least-squares objective: one compiled program
    # for every lane; a second sweep (new dampings, a re-created residual function) traces
    # nothing new.
    y1, _ = exp_data
    taus = jnp.array([1e-6, 1e-3, 1.0, 1e3])

    def run(taus):
        return lossopt.sweep(lossopt.solvers.least_squares_objective(make_residuals()),
                             jnp.array([1.0, 0.0]), LevenbergMarquardt(), {"damping": taus},
                             args=(T2, y1), max_iters=50)

    out = run(taus)
    n_traces = len(TRACES)
    out2 = run(taus * 3.0)
    assert len(TRACES) == n_traces
    for batch in (out, out2):
        assert np.all(np.asarray(batch.status) == Status.CONVERGED)
        np.testing.assert_allclose(batch.params, np.tile([3.0, -0.5], (4, 1)), atol=1e-7)
    assert len(set(np.asarray(out.iterations).tolist())) > 1  # the damping matters
    # The lane with the default damping equals the unbatched run (the one compiled above).
    single = lossopt.minimize_least_squares(make_residuals(), jnp.array([1.0, 0.0]),
                                            LevenbergMarquardt(), args=(T2, y1), max_iters=50)
    assert int(out.iterations[1]) == single.iterations
    np.testing.assert_allclose(out.params[1], single.params, rtol=1e-12)


def test_float32_under_jit():
    # float32 parameters keep their dtype through the Jacobian and the Cholesky, inside an
    # outer jax.jit. Bard's optimum to float32 accuracy: F* ~ 4e-3, eps32 ~ 1.2e-7, so 1e-5
    # relative on the value; the minimiser only to |dx| <~ gtol / lambda_min(J^T J), about
    # 1e-4 / 0.06 here (the valley is flat), hence 5e-3 relative.
    p = problems.get("bard")
    x_ref, f_ref = scipy_lm(p.residuals, p.x0, p.args)
    args32 = tuple(jnp.asarray(a, jnp.float32) for a in p.args)

    @jax.jit
    def solve(x0):
        return lossopt.minimize_least_squares(p.residuals, x0, LevenbergMarquardt(),
                                              args=args32, max_iters=MAX_ITERS, gtol=1e-4)

    res = solve(jnp.asarray(p.x0, jnp.float32))
    assert res.params.dtype == jnp.float32 and res.value.dtype == jnp.float32
    assert int(res.status) == Status.CONVERGED
    np.testing.assert_allclose(2 * float(res.value), f_ref, rtol=1e-5)
    np.testing.assert_allclose(res.params, x_ref, rtol=5e-3)


def test_objective_is_half_sum_of_squares():
    # The documented convention: F = 1/2 sum(r^2), half of lossopt.problems' Problem.fun.
    p = problems.get("rosenbrock")
    x0 = jnp.asarray(p.x0)
    f0 = lossopt.solvers.least_squares_objective(p.residuals)(x0, *p.args)
    assert float(f0) == pytest.approx(0.5 * float(p.fun(x0, *p.args)), rel=1e-15)
    assert float(f0) == pytest.approx(0.5 * 24.2, rel=1e-15)  # MGH: f(x0) = 24.2


def test_solver_protocol():
    # Frozen pytree dataclasses: numeric hyperparameters are leaves, choices are static (part
    # of the treedef, so they key the compilation); monotone as documented.
    import dataclasses

    from lossopt.solvers import Solver

    lm = LevenbergMarquardt(damping=0.5, scale=True)
    gn = GaussNewton(line_search=None)
    for solver in (lm, gn, GaussNewton()):
        assert isinstance(solver, Solver)
        with pytest.raises(dataclasses.FrozenInstanceError):
            solver.jacobian = "reverse"
    assert jax.tree.leaves(lm) == [0.5]
    assert jax.tree.leaves(gn) == []
    # The line search's numeric parameters are GN's leaves.
    assert jax.tree.leaves(GaussNewton()) == jax.tree.leaves(lossopt.solvers.Armijo())
    assert (jax.tree.structure(lm) != jax.tree.structure(LevenbergMarquardt(damping=0.5))
            )  # scale is static
    assert lm.monotone and GaussNewton().monotone and not gn.monotone


# --- bad input -------------------------------------------------------------------------------


def test_scalar_residual_raises():
    with pytest.raises(ValueError, match=r"residual vector r .* got a scalar.*lossopt.minimize"):
        lossopt.minimize_least_squares(lambda x: jnp.sum(x**2), jnp.zeros(2))


@pytest.mark.parametrize("bad", [
    lambda x: jnp.array([1, 2]),  # integer
    lambda x: x.astype(jnp.complex128),  # complex
    lambda x: "residuals",  # not an array
], ids=["int", "complex", "str"])
def test_non_floating_residual_raises(bad):
    with pytest.raises(TypeError, match=r"residual_fun.*real floating array"):
        lossopt.minimize_least_squares(bad, jnp.zeros(2))


@pytest.mark.parametrize("damping", [-1.0, 0.0, float("nan")])
def test_bad_damping_raises(damping):
    with pytest.raises(ValueError, match=r"`damping` must be a finite number > 0; got"):
        LevenbergMarquardt(damping=damping)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="`linear_solver` must be one of"):
        LevenbergMarquardt(linear_solver="qr")
    with pytest.raises(ValueError, match="`jacobian` must be one of"):
        GaussNewton(jacobian="central")
    with pytest.raises(ValueError, match="scale=True"):
        LevenbergMarquardt(scale=True, linear_solver="cg")
    with pytest.raises(TypeError, match="`scale` must be a bool"):
        LevenbergMarquardt(scale=1)
    with pytest.raises(ValueError, match="`max_rejections` must be an int >= 1"):
        LevenbergMarquardt(max_rejections=0)
    with pytest.raises(TypeError, match="`residual_fun` must be callable"):
        lossopt.minimize_least_squares(3.0, jnp.zeros(2))
    with pytest.raises(TypeError, match="takes no `key`"):
        lossopt.minimize_least_squares(lambda x: x, jnp.zeros(2), key=jax.random.key(0))


def test_least_squares_solver_on_plain_objective_raises():
    with pytest.raises(TypeError, match=r"needs the residuals.*minimize_least_squares"):
        lossopt.minimize(lambda x: jnp.sum(x**2), jnp.zeros(2), LevenbergMarquardt())


# --- the guide's examples --------------------------------------------------------------------


@pytest.mark.slow(10)
def test_docs_page_python_blocks_run(tmp_path, monkeypatch):
    # docs/least_squares.md is not in mkdocs.yml's nav (tests/test_docs.py runs those): its
    # ```python blocks run here, top to bottom in one namespace.
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "least_squares.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "docs_least_squares"}
    for block in blocks:
        exec(compile(block, str(page), "exec"), namespace)  # our own docs
    assert namespace["res"].status.converged
    np.testing.assert_allclose(2 * float(namespace["res"].value), namespace["p"].f_star,
                               rtol=1e-6)  # Bard at the default gtol 1e-6
