"""Nonlinear least squares: the residual-form entry point and what the solvers share.

:func:`minimize_least_squares` minimises ``F(x) = 1/2 ||r(x)||^2`` (scipy's ``cost``) for a
residual function ``r(params, *args)`` by wrapping ``r`` in an objective
(:func:`least_squares_objective`) that :func:`lossopt.minimize` drives like any other, and that
:class:`~lossopt.solvers.GaussNewton` and :class:`~lossopt.solvers.LevenbergMarquardt`
recognise: they read the residual function back from it and build Jacobians or
Jacobian-vector products of ``r`` instead of Hessians of ``F``. ``lossopt.problems`` states its
least-squares objectives without the factor 1/2 (``Problem.fun == sum(residuals^2)``,
MGH's convention), so a ``Result.value`` from here is half of ``Problem.fun`` at the same
point (``2 * result.value`` compares with ``Problem.f_star``).

The helpers below (flattened residuals and Jacobians, conjugate gradients on the normal
equations, the residual-only backtracking search) are the pieces both solvers use.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

from lossopt._functions import Function
from lossopt._pytree import PyTree
from lossopt._validation import check_choice, describe
from lossopt.solvers._protocol import Objective, Solver
from lossopt.solvers._result import Result

__all__ = ["least_squares_objective", "minimize_least_squares"]

JACOBIAN_MODES = ("auto", "forward", "reverse")


# --- the objective ---------------------------------------------------------------------------


def _flat_residuals(residual_fun: Callable[..., Any], params: Any, args: tuple[Any, ...]):
    """``r(params, *args)`` raveled into one vector in the parameters' dtype, validated."""
    out = residual_fun(params, *args)
    leaves = jax.tree.leaves(out)
    name = getattr(residual_fun, "__name__", type(residual_fun).__name__)
    bad = [leaf for leaf in leaves
           if not (hasattr(leaf, "dtype") and hasattr(leaf, "shape"))
           or not jnp.issubdtype(leaf.dtype, jnp.floating)]
    if not leaves or bad:
        got = describe(bad[0]) if bad else describe(out)
        raise TypeError(
            f"`residual_fun` ({name}) must return the residuals r as a real floating array "
            f"(or a pytree of them); got {got}"
        )
    if len(leaves) == 1 and leaves[0].ndim == 0:
        raise ValueError(
            f"`residual_fun` ({name}) must return the residual vector r (an array with at "
            "least one axis, or a pytree of them), whose squares are summed; got a scalar. "
            "To minimise a scalar objective use lossopt.minimize; for a single residual "
            "return shape (1,)."
        )
    if sum(leaf.size for leaf in leaves) == 0:
        raise ValueError(f"`residual_fun` ({name}) returned no residuals (size 0)")
    dtype = ravel_pytree(params)[0].dtype
    return ravel_pytree(out)[0].astype(dtype)


def _half_sum_of_squares(residual_fun: Callable[..., Any], params: Any, *args: Any):
    r = _flat_residuals(residual_fun, params, args)
    return 0.5 * jnp.vdot(r, r)


def least_squares_objective(residual_fun: Callable[..., Any]) -> Callable[..., Any]:
    """The objective ``F(params, *args) = 1/2 ||r(params, *args)||^2`` of a residual function.

    :class:`~lossopt.solvers.GaussNewton` and :class:`~lossopt.solvers.LevenbergMarquardt`
    recognise this objective and read ``residual_fun`` back from it; every other solver sees
    a scalar objective. Use it to call :func:`lossopt.sweep` on residuals, or
    :func:`lossopt.minimize` directly; :func:`minimize_least_squares` does the latter for you.
    The objective is compared for compile reuse by what ``residual_fun`` computes (its code
    and the values it reads), so a re-created identical residual function reuses the loop.

    Args:
        residual_fun: ``residual_fun(params, *args) -> r``, a real floating array with at
            least one axis or a pytree of them (all raveled into one vector).

    Returns:
        ``F(params, *args) -> scalar``, computed in the parameters' dtype.

    Raises:
        TypeError: ``residual_fun`` is not callable. (A wrong residual -- a scalar, an
            integer or complex array -- raises when the objective is first called.)

    Example:
        >>> import jax.numpy as jnp
        >>> from lossopt.solvers import least_squares_objective
        >>> f = least_squares_objective(lambda x, y: x - y)
        >>> float(f(jnp.array([1.0, 2.0]), jnp.array([0.0, 0.0])))  # (1 + 4) / 2
        2.5
    """
    if not callable(residual_fun):
        raise TypeError(
            "`residual_fun` must be callable as residual_fun(params, *args) -> residuals; got "
            f"{describe(residual_fun)}"
        )
    while isinstance(residual_fun, Function):
        residual_fun = residual_fun.fun
    # A partial of a module-level function: lossopt's compile keys walk its bound argument by
    # value (lossopt._functions), so identical residual functions give equal objectives.
    return functools.partial(_half_sum_of_squares, residual_fun)


def residual_function(objective: Objective, solver: str) -> Callable[[jax.Array], jax.Array]:
    """``x_flat -> r_flat`` and the unravel map, read back from a least-squares objective."""
    fun = objective.fun
    while isinstance(fun, Function):
        fun = fun.fun
    if not (isinstance(fun, functools.partial) and fun.func is _half_sum_of_squares):
        name = getattr(fun, "__name__", type(fun).__name__)
        raise TypeError(
            f"{solver} needs the residuals r, not only the objective: call "
            "lossopt.minimize_least_squares(residual_fun, init_params, "
            f"solver={solver}(...)) (or minimize(least_squares_objective(residual_fun), ...)); "
            f"got the objective {name}"
        )
    residual_fun = fun.args[0]
    args = objective.args
    return residual_fun, args


def flat_problem(objective: Objective, params: Any, solver: str):
    """``(x, unravel, res)`` with ``res(x_flat) -> r_flat`` for the objective's residuals."""
    residual_fun, args = residual_function(objective, solver)
    x, unravel = ravel_pytree(params)

    def res(v):
        return _flat_residuals(residual_fun, unravel(v), args)

    return x, unravel, res


def jacobian(res: Callable[[jax.Array], jax.Array], x: jax.Array, m: int, mode: str):
    """``(r(x), J(x))``: forward mode (``n`` JVPs) when ``m >= n``, else reverse (``m`` VJPs)."""
    forward = mode == "forward" or (mode == "auto" and m >= x.shape[0])
    jac = jax.jacfwd if forward else jax.jacrev
    def both(v):
        r = res(v)
        return r, r  # the residuals once, as the output and as the auxiliary value

    jmat, r = jac(both, has_aux=True)(x)
    return r, jmat


def num_residuals(res: Callable[[jax.Array], jax.Array], x: jax.Array) -> int:
    """``m``, from the residuals' shape (traced abstractly: no evaluation)."""
    return jax.eval_shape(res, x).shape[0]


def check_jacobian_mode(mode: Any) -> None:
    check_choice(mode, "jacobian", JACOBIAN_MODES)


def check_static_int(value: Any, name: str, allow_none: bool = False) -> None:
    if allow_none and value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be an int >= 1{' or None' if allow_none else ''}; "
                         f"got {value!r}")


# --- linear algebra on the normal equations -------------------------------------------------


def normal_cg(matvec: Callable[[jax.Array], jax.Array], b: jax.Array, max_iters: int):
    """Conjugate gradients on ``A z = b`` for positive semidefinite ``A`` (matrix-free).

    Starts at 0, stops at relative residual ``min(0.5, sqrt(||b||)) ||b||`` (a superlinear
    forcing sequence), on non-positive curvature ``p^T A p <= 0`` (a singular direction: the
    current iterate is kept), or after ``max_iters`` products. Returns ``(z, products)``.
    """
    bnorm = jnp.linalg.norm(b)
    tol = jnp.minimum(0.5, jnp.sqrt(bnorm)) * bnorm
    zero = jnp.zeros_like(b)
    start = (zero, b, b, jnp.vdot(b, b), jnp.asarray(0, jnp.int32), ~(bnorm > 0))

    def cond(s):
        return ~s[5] & (s[4] < max_iters)

    def body(s):
        z, resid, p, rr, i, _ = s
        ap = matvec(p)
        curvature = jnp.vdot(p, ap)
        stop = ~(curvature > 0)  # NaN stops too
        alpha = rr / jnp.where(stop, 1.0, curvature)
        z_new = jnp.where(stop, z, z + alpha * p)
        r_new = jnp.where(stop, resid, resid - alpha * ap)
        rr_new = jnp.vdot(r_new, r_new)
        p_new = r_new + (rr_new / jnp.where(rr > 0, rr, 1.0)) * p
        return (z_new, r_new, jnp.where(stop, p, p_new), rr_new, i + 1,
                stop | (jnp.sqrt(rr_new) <= tol))

    z, _, _, _, products, _ = lax.while_loop(cond, body, start)
    return z, products


def linear_operators(res: Callable[[jax.Array], jax.Array], x: jax.Array):
    """``(r(x), v -> J v, u -> J^T u)`` from one linearisation of ``r`` at ``x``."""
    r, jvp = jax.linearize(res, x)
    transpose = jax.linear_transpose(jvp, x)
    return r, jvp, lambda u: transpose(u)[0]


# --- the residual-only backtracking search ---------------------------------------------------


def backtrack(res, x, d, value, slope, c1, shrink, max_steps: int):
    """Armijo backtracking on ``F = 1/2 ||r||^2`` along ``d``, evaluating residuals only.

    Tries ``t = 1, shrink, shrink^2, ...`` and accepts the first ``t`` with
    ``F(x + t d) <= F(x) + c1 t slope`` and ``F(x + t d) < F(x)`` (a NaN fails both). Returns
    ``(x_t, ok, trials)``.
    """
    dtype = x.dtype

    def cond(s):
        return ~s[2] & (s[3] < max_steps)

    def body(s):
        t, _, _, k = s
        t = jnp.where(k == 0, jnp.ones((), dtype), (t * shrink).astype(dtype))
        r = res(x + t * d)
        v = 0.5 * jnp.vdot(r, r)
        ok = (slope < 0) & (v <= value + c1 * t * slope) & (v < value)
        return t, x + t * d, ok, k + 1

    start = (jnp.ones((), dtype), x, jnp.asarray(False), jnp.asarray(0, jnp.int32))
    _, xt, ok, trials = lax.while_loop(cond, body, start)
    return xt, ok, trials


# --- the entry point -------------------------------------------------------------------------


def minimize_least_squares(
    residual_fun: Callable[..., Any],
    init_params: PyTree,
    solver: Solver | None = None,
    *,
    args: tuple[Any, ...] = (),
    **options: Any,
) -> Result:
    """Minimise ``F(x) = 1/2 ||r(x, *args)||^2`` in :func:`lossopt.minimize`'s compiled loop.

    The objective is ``F = 1/2 sum_i r_i(x)^2`` (scipy's ``cost``; its gradient is
    ``J^T r``), so ``Result.value`` is half of the sum of squares: multiply by 2 to compare
    with ``lossopt.problems``' ``Problem.fun`` and ``f_star`` (``sum(residuals^2)``, MGH's
    convention). This is :func:`lossopt.minimize` on :func:`least_squares_objective`
    ``(residual_fun)``: the same :class:`~lossopt.Result`, :class:`~lossopt.Trace`,
    statuses, stopping rules (``gtol`` tests ``max_i |(J^T r)_i|``), compile policy and
    compile reuse (a re-created identical ``residual_fun`` reuses the compiled loop).

    Args:
        residual_fun: ``residual_fun(params, *args) -> r``, a real floating array with at
            least one axis (or a pytree of them), JAX-traceable.
        init_params: the starting point, any pytree of floating arrays.
        solver: :class:`~lossopt.solvers.LevenbergMarquardt` (``None``: its defaults),
            :class:`~lossopt.solvers.GaussNewton`, or any other lossopt solver, which then
            minimises ``F`` as a scalar objective.
        args: extra positional arguments of ``residual_fun`` (the data); a tuple.
        **options: every keyword option of :func:`lossopt.minimize` (``max_iters``,
            ``gtol``, ``ftol``, ``xtol``, ``metrics``, ``record_every``, ``compile``,
            ``progress``, checkpoints, ...). Gauss-Newton and Levenberg-Marquardt keep the
            Jacobian of the current iterate in their state, so they take no ``key`` or
            ``batch_size`` (stochastic residuals).

    Returns:
        A :class:`~lossopt.Result` for ``F``.

    Raises:
        TypeError: ``residual_fun`` not callable, ``key``/``batch_size`` with Gauss-Newton or
            Levenberg-Marquardt, or (while tracing) residuals that are not real floating
            arrays; and whatever :func:`lossopt.minimize` raises.
        ValueError: residuals that are a scalar or empty; and :func:`lossopt.minimize`'s.

    Example:
        >>> import jax.numpy as jnp
        >>> import lossopt
        >>> t = jnp.linspace(0.0, 1.0, 20)
        >>> y = 2.0 * jnp.exp(-1.5 * t)
        >>> def residuals(p, t, y):  # y = a exp(b t)
        ...     return p[0] * jnp.exp(p[1] * t) - y
        >>> res = lossopt.minimize_least_squares(residuals, jnp.array([1.0, 0.0]), args=(t, y))
        >>> print(jnp.round(res.params, 6), res.status.name)
        [ 2.  -1.5] CONVERGED
    """
    # Imported here: the solver modules import this one.
    from lossopt.solvers._driver import minimize
    from lossopt.solvers._least_squares_solvers import GaussNewton, LevenbergMarquardt

    if solver is None:
        solver = LevenbergMarquardt()
    if isinstance(solver, (GaussNewton, LevenbergMarquardt)):
        for name in ("key", "batch_size"):
            if options.get(name) is not None:
                raise TypeError(
                    f"{type(solver).__name__} keeps the Jacobian of the current iterate in its "
                    f"state, so it takes no `{name}` (stochastic residuals); use another solver "
                    "(GradientDescent, Optax) for minibatch or noisy least squares"
                )
    return minimize(least_squares_objective(residual_fun), init_params, solver, args=args,
                    **options)
