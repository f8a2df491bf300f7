"""Derivatives of a solve: implicit differentiation at the solution, or through the iterations.

:func:`lossopt.minimize` runs a ``lax.while_loop``, which JAX can differentiate forward but not
in reverse. ``minimize(..., differentiate=...)`` chooses how ``jax.grad``, ``jax.jacrev``,
``jax.jvp`` (and ``jax.vmap`` of them) see the solution as a function of ``args``:

- :class:`Implicit` (``"implicit"``, the default): the implicit function theorem at the
  solution. The solve is wrapped in a ``jax.custom_jvp`` whose tangent rule solves one linear
  system with the Hessian at ``x*`` inside ``lax.custom_linear_solve``; reverse mode comes from
  JAX transposing that rule, so the forward loop is never differentiated (no memory per
  iteration, any solver).
- :class:`Unroll` (``"unroll"``): reverse mode through the iterations themselves -- a
  ``lax.scan`` over ``max_iters`` steps in which finished iterations are frozen -- for what the
  implicit form does not cover (nonsmooth objectives, early-stopped solves, derivatives with
  respect to the starting point or a learning rate).

A call that nobody differentiates compiles the program it compiled before: with concrete
``args`` (a plain call) ``minimize`` calls the loop directly, and under an outer ``jax.jit`` the
``custom_jvp`` wrapper lowers to the loop's own operations (tested on the lowered HLO).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree

from lossopt._collector import collector_paused
from lossopt._validation import check_choice, describe, did_you_mean
from lossopt.solvers import _loop
from lossopt.solvers._loop import Loop
from lossopt.solvers._protocol import Objective
from lossopt.solvers._result import Result, Status
from lossopt.solvers._spec import LoopInputs, LoopSpec

__all__ = ["DENSE_MAX_PARAMS", "Implicit", "Unroll", "check_differentiate", "solve"]

#: ``linear_solver="auto"`` forms the Hessian (``n x n``, ``n`` the number of parameters) up
#: to this many parameters and uses CG with Hessian-vector products above. Forming ``H`` costs
#: ``n`` Hessian-vector products, CG about one per iteration: on a 5000 x 200 logistic
#: regression one hypergradient took 0.12 s with Cholesky and 0.03 s with CG
#: (``experiments/benchmarks/bench_hypergradient.py``); at 50 parameters they tie, and the
#: dense factorisation then also certifies positive definiteness exactly.
DENSE_MAX_PARAMS = 100

_LINEAR_SOLVERS = ("auto", "cholesky", "lu", "cg")
_REQUIRE = ("converged", "gtol", "none")
_MODES = ("implicit", "unroll")


@dataclasses.dataclass(frozen=True)
class Implicit:
    """Differentiate a solution by the implicit function theorem (``differentiate=``'s default).

    At a minimiser ``x*(theta)`` of ``f(x, theta)`` (``theta``: everything passed in ``args``)
    the gradient vanishes, ``F(x*, theta) = grad_x f(x*, theta) = 0``; if the Hessian
    ``H = grad_xx f(x*, theta)`` is nonsingular, ``x*`` is locally a differentiable function of
    ``theta`` with (``d_theta`` the partial derivative in ``theta``)
    ``dx*/dtheta = -H^{-1} d_theta grad_x f(x*, theta)`` and
    ``d f(x*(theta), theta) / dtheta = d_theta f(x*, theta)``
    (the second is the envelope theorem: ``grad_x f = 0`` removes the ``dx*/dtheta`` term).
    A tangent ``dtheta`` costs one Jacobian-vector product of ``grad_x f`` in ``theta`` and one
    solve with ``H``; a cotangent (``jax.grad``) one solve with ``H`` (symmetric, so its own
    transpose) and one vector-Jacobian product. The solve runs inside
    ``lax.custom_linear_solve``, so ``jax.jvp``, ``jax.grad``, ``jax.jacfwd``, ``jax.jacrev``
    and ``jax.vmap`` of them all work, under ``jax.jit`` too.

    **When it is valid.** At a converged, nondegenerate minimum: ``grad_x f(x*) ~ 0`` and ``H``
    positive definite there, and ``f`` twice differentiable near ``x*``. Everything else gives
    NaN, never a number that looks right:

    - the solve did not converge (``require``): the status says why (``MAX_ITERS``,
      ``NONFINITE``, ``LINE_SEARCH_FAILED``, ...);
    - ``H`` is not positive definite (a saddle point, a degenerate minimum such as that of
      ``x^4``, a rank-deficient least-squares problem without regularisation) or too
      ill-conditioned to solve in the parameters' precision (``cholesky``: its estimated
      reciprocal condition number ``(min diag L / max diag L)^2`` below ``n * eps``;
      ``cg``: negative or zero curvature met along the directions CG explores -- so CG may
      also solve an indefinite system exactly, giving the derivative of the stationary
      point --, or the residual tolerance not reached within ``cg_max_iters``). A NaN
      derivative of a converged solve therefore means this case.

    Derivatives with respect to ``init_params``, the solver's hyperparameters and the
    tolerances are zero (the solution does not depend on them; a proximal penalty's
    strengths excepted, below), as are those of the
    diagnostic fields ``grad_norm`` and ``trace``; integer fields (``iterations``, ``status``,
    counts) carry none. ``best_params``/``best_value`` get the tangents of ``params``/
    ``value`` when they are the same point, else NaN. The derivative is that of the exact
    minimiser, evaluated at the returned one, so its error is of the order of the
    solution's (``gtol``): solve tightly when the derivative matters.

    **Proximal solvers** (``ProximalGradient``: ``f + g`` with a nonsmooth penalty ``g``,
    whose solution is not a zero of ``grad_x f``): the solution is differentiated as the fixed
    point of ``T(x) = prox_{t g}(x - t grad_x f(x))``, ``(I - d_x T) dx* = d_theta T
    dtheta``, with ``theta`` the ``args`` *and* the penalty's leaves (an L1 strength); a dense
    LU (``linear_solver="cg"`` raises: the system is not symmetric), NaN when it is singular.
    For the L1 penalty this is the classical ``dw_S = -H_SS^{-1} (d_theta grad_S f +
    sign(w_S) dlam)`` on the support ``S`` and 0 off it, valid where the support is stable
    (no coordinate exactly at the threshold). ``value`` (``F = f + g``) follows the envelope
    theorem.

    Not covered (raise ``NotImplementedError`` when differentiated): stochastic solves
    (``key``/``batch_size``, whose result is not the minimiser of one fixed objective) and
    other solvers with a ``measure`` hook but no ``prox``. Nonsmooth objectives (hinge, MAE)
    have no Hessian at a kink: use :class:`Unroll`.

    Args:
        linear_solver: how to solve with ``H`` (static). ``"cholesky"``: forms ``H``
            (``jax.hessian``) and factors it once per solve; ``"lu"``: the same with an LU
            factorisation (no positive-definiteness check: for a stationary point that is not
            a minimum, where the implicit function theorem still holds); ``"cg"``: conjugate
            gradients with Hessian-vector products (``H`` is never formed; each product costs
            about one gradient). ``"auto"`` (default): the solver's own choice when it has a
            ``linear_solver`` of ``"cholesky"`` or ``"cg"`` (``Newton``), else ``"cholesky"``
            up to :data:`DENSE_MAX_PARAMS` parameters and ``"cg"`` above.
        require: which statuses give a derivative (static): ``"converged"`` (default) any of
            ``CONVERGED``, ``CONVERGED_FTOL``, ``CONVERGED_XTOL``; ``"gtol"`` only
            ``CONVERGED`` (the gradient rule, which certifies first-order optimality);
            ``"none"`` every status -- the implicit formula at whatever point the solve
            returned, an approximation whose error grows with that point's gradient.
        cg_tol: CG's relative residual tolerance ``||H d - b|| <= cg_tol ||b||``; ``None``
            (default) is ``10 eps^0.75`` of the parameters' dtype (about ``2e-11`` in
            float64, ``6e-5`` in float32).
        cg_max_iters: CG iteration cap; ``None`` (default) is ``2 n``.

    Raises:
        ValueError: an unknown ``linear_solver`` or ``require``, or a ``cg_tol`` or
            ``cg_max_iters`` that is not positive.

    Example:
        Ridge regression, ``w*(lam) = (X^T X + lam I)^{-1} X^T y``, differentiated in ``lam``:

        >>> import jax, jax.numpy as jnp
        >>> import lossopt
        >>> from lossopt.solvers import Implicit, Newton
        >>> X = jnp.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
        >>> y = jnp.array([1.0, 2.0, 2.0])
        >>> def ridge(w, X, y, lam):
        ...     return 0.5 * jnp.sum((X @ w - y) ** 2) + 0.5 * lam * jnp.sum(w ** 2)
        >>> def w_star(lam):
        ...     return lossopt.minimize(ridge, jnp.zeros(2), Newton(), args=(X, y, lam),
        ...                             differentiate=Implicit(linear_solver="cg")).params
        >>> A = X.T @ X + 0.5 * jnp.eye(2)   # closed form: dw/dlam = -A^{-1} w*
        >>> bool(jnp.allclose(jax.jacobian(w_star)(0.5), -jnp.linalg.solve(A, w_star(0.5)),
        ...                   atol=1e-5))
        True

    References:
        Krantz, S. G. and Parks, H. R. (2013). *The Implicit Function Theorem*. Birkhauser.
        Blondel, M. et al. (2022). Efficient and modular implicit differentiation. NeurIPS.
    """

    linear_solver: str = "auto"
    require: str = "converged"
    cg_tol: float | None = None
    cg_max_iters: int | None = None

    def __post_init__(self) -> None:
        check_choice(self.linear_solver, "linear_solver", _LINEAR_SOLVERS)
        check_choice(self.require, "require", _REQUIRE)
        if self.cg_tol is not None and not (
            isinstance(self.cg_tol, (int, float)) and not isinstance(self.cg_tol, bool)
            and 0 < self.cg_tol < 1
        ):
            raise ValueError(f"`cg_tol` must be None or a number in (0, 1); got {self.cg_tol!r}")
        if self.cg_max_iters is not None and (
            not isinstance(self.cg_max_iters, int) or isinstance(self.cg_max_iters, bool)
            or self.cg_max_iters < 1
        ):
            raise ValueError(
                f"`cg_max_iters` must be None or an int >= 1; got {self.cg_max_iters!r}"
            )


@dataclasses.dataclass(frozen=True)
class Unroll:
    """Differentiate a solve through its iterations (reverse mode through every step).

    The solve runs as a ``lax.scan`` over ``max_iters`` steps of the same loop body as
    :func:`lossopt.minimize`'s ``lax.while_loop``, each step after the run has stopped
    skipped by a ``lax.cond`` (finished iterations are frozen), so the forward result is the
    one ``minimize`` returns. ``jax.grad`` then differentiates exactly the iterations that ran:
    the derivative of *what was computed*, whether or not it converged -- with respect to
    ``args``, ``init_params`` and the solver's numeric hyperparameters (a learning rate).

    Use it where :class:`Implicit` does not apply: nonsmooth objectives, solves stopped early
    on purpose, or derivatives with respect to the start or the step size. Its costs: reverse
    mode stores the loop state of every one of the ``max_iters`` steps (memory grows with
    ``max_iters``), and the compiled program is a scan, not the default while loop. The
    unrolled derivative converges to the implicit one as the iterates converge (linearly, at
    the solver's rate).

    Only solvers whose step has no inner ``lax.while_loop`` can be unrolled in reverse mode
    (JAX cannot transpose one): ``GradientDescent`` without a line search, ``Subgradient``,
    ``Optax``. Newton, L-BFGS and every Armijo line search loop inside their step; for them
    ``differentiate="unroll"`` raises ``NotImplementedError`` when traced with tracer inputs
    (``differentiate="implicit"`` is the method for a converged solve). The trace and the
    integer fields carry no derivative.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import lossopt
        >>> from lossopt.solvers import GradientDescent
        >>> f = lambda w, c: 0.5 * jnp.sum((w - c) ** 2)  # gradient step: w <- w - lr (w - c)
        >>> def after_3_steps(lr):
        ...     return lossopt.minimize(f, jnp.zeros(1), GradientDescent(lr), args=(1.0,),
        ...                             max_iters=3, gtol=0.0, differentiate="unroll").params[0]
        >>> float(after_3_steps(0.5))  # 1 - (1 - lr)**3
        0.875
        >>> float(jax.grad(after_3_steps)(0.5))  # 3 (1 - lr)**2
        0.75
    """


def check_differentiate(value: Any) -> Implicit | Unroll:
    """Validate ``minimize``'s ``differentiate=``: a mode name or an options object."""
    if isinstance(value, (Implicit, Unroll)):
        return value
    if isinstance(value, str):
        if value == "implicit":
            return Implicit()
        if value == "unroll":
            return Unroll()
        raise ValueError(
            f"`differentiate` must be one of {list(_MODES)} or an Implicit(...)/Unroll() "
            f"object; got {value!r}{did_you_mean(value, _MODES)}"
        )
    raise TypeError(
        f"`differentiate` must be one of {list(_MODES)} or an Implicit(...)/Unroll() object; "
        f"got {describe(value)}"
    )


def _has_tracer(tree: Any) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(tree))


def solve(mode: str, spec: LoopSpec, solver: Any, inputs: LoopInputs,
          how: Implicit | Unroll) -> Result:
    """``minimize``'s solve, differentiable as ``how`` says.

    ``spec`` and ``inputs`` are ``_driver._prepare``'s split of the arguments (static and
    traced). Without tracers there is nothing to differentiate, and the loop is called as it
    always was.
    """
    if not _has_tracer((solver, inputs)):  # nothing can be differentiated
        return _loop.solve(mode, spec, solver, inputs)
    with collector_paused():  # the loop is traced into the caller's program here
        if isinstance(how, Unroll):
            return _unrolled(spec, solver, inputs)
        layout = _Layout((solver, inputs))
        return _implicit_solve(mode, spec, how, layout, layout.dynamic_leaves)


# --- implicit differentiation ----------------------------------------------------------------


class _Layout:
    """The solver and the traced :class:`LoopInputs`, split into the leaves that are tracers
    (the ``custom_jvp``'s inputs) and the concrete rest (held here, passed to the loop as they
    always were: an unused concrete leaf, such as a hyperparameter the solver does not read,
    then adds nothing to the lowered program, as under a plain ``jax.jit``)."""

    def __init__(self, tree: Any):
        leaves, self.treedef = jax.tree.flatten(tree)
        self.is_dynamic = tuple(isinstance(x, jax.core.Tracer) for x in leaves)
        self.fixed = tuple(None if d else x for x, d in zip(leaves, self.is_dynamic,
                                                           strict=True))
        self.dynamic_leaves = tuple(x for x, d in zip(leaves, self.is_dynamic, strict=True)
                                    if d)

    @classmethod
    def from_parts(cls, treedef: Any, is_dynamic: tuple[bool, ...],
                   fixed: tuple[Any, ...]) -> _Layout:
        layout = object.__new__(cls)
        layout.treedef, layout.is_dynamic, layout.fixed = treedef, is_dynamic, fixed
        return layout

    def fixed_are_arrays(self) -> bool:
        """Every concrete leaf is an array or a number (so it can be a ``jax.jit`` argument)."""
        return all(x is None or isinstance(x, (jax.Array, np.ndarray, np.generic, int, float,
                                                complex, bool)) for x in self.fixed)

    def build(self, dynamic: tuple[Any, ...]) -> tuple[Any, LoopInputs]:
        """``(solver, inputs)`` with the tracer leaves taken from ``dynamic``."""
        it = iter(dynamic)
        leaves = [next(it) if d else x for x, d in zip(self.fixed, self.is_dynamic,
                                                       strict=True)]
        return jax.tree.unflatten(self.treedef, leaves)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2, 3))
def _implicit_solve(mode, spec, how, layout, dynamic):
    solver, inputs = layout.build(dynamic)
    return _loop.solve(mode, spec, solver, inputs)


@_implicit_solve.defjvp
def _implicit_solve_jvp(mode, spec, how, layout, primals, tangents):
    (dynamic,), (dynamic_dot,) = primals, tangents
    solver, _ = layout.build(dynamic)
    fun = spec.fun
    if spec.stochastic:
        raise NotImplementedError(
            "differentiate='implicit' needs the minimiser of one fixed objective, but this "
            "solve is stochastic (key or batch_size): its result is not the solution of "
            "grad f(x, args) = 0. Use differentiate='unroll' to differentiate the iterations "
            "that ran, or solve the full, deterministic objective."
        )
    composite = getattr(solver, "measure", None) is not None
    if composite and not _has_prox(solver):
        raise NotImplementedError(
            "differentiate='implicit' differentiates the condition grad f(x, args) = 0, but "
            f"{type(solver).__name__} minimises a composite objective (it reports its own "
            "measure) without a proximal operator whose fixed point lossopt could "
            "differentiate instead. Use differentiate='unroll' (with a step that has no inner "
            "lax.while_loop), or write the penalty into fun if it is smooth."
        )
    result = _implicit_solve(mode, spec, how, layout, dynamic)
    if layout.fixed_are_arrays():
        # One compiled program for the tangent algebra (Hessian, factorisation, products):
        # called eagerly (jax.grad outside jax.jit) it would otherwise dispatch, and compile,
        # every operation on its own; under an outer jit it is inlined.
        params_dot, value_dot, solved = _tangents_jit(
            composite, fun, how, layout.treedef, layout.is_dynamic, result.params,
            layout.fixed, dynamic, dynamic_dot)
    else:
        params_dot, value_dot, solved = _tangents(
            composite, fun, how, layout, result.params, dynamic, dynamic_dot)
    # Only primal quantities decide validity, and an invalid tangent is scaled by NaN rather
    # than replaced by it: the rule must stay linear in the tangents for reverse mode (a
    # `where(ok, t, nan)` would transpose to a silent zero).
    accepted = _accepted(result.status, how.require)
    params_dot = _scale_by(_nan_unless(accepted & solved), params_dot)
    # The envelope theorem needs no Hessian: the value's derivative holds at any minimum.
    value_dot = _scale_by(_nan_unless(accepted), value_dot)
    return result, _result_tangent(result, params_dot, value_dot)


def _tangents(composite, fun, how, layout, params, dynamic, dynamic_dot):
    solver, _ = layout.build(dynamic)
    rule = _prox_tangents if composite else _solution_tangents
    return rule(fun, params, layout.build, dynamic, dynamic_dot, how, solver)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def _tangents_jit(composite, fun, how, treedef, is_dynamic, params, fixed, dynamic,
                  dynamic_dot):
    layout = _Layout.from_parts(treedef, is_dynamic, fixed)
    return _tangents(composite, fun, how, layout, params, dynamic, dynamic_dot)


def _nan_unless(ok: jax.Array) -> jax.Array:
    return jnp.where(ok, 1.0, jnp.nan)


def _scale_by(factor: jax.Array, tree: Any) -> Any:
    return jax.tree.map(lambda t: t * factor.astype(t.dtype), tree)


def _accepted(status: jax.Array, require: str) -> jax.Array:
    if require == "none":
        return jnp.asarray(True)
    if require == "gtol":
        return status == int(Status.CONVERGED)
    return status <= int(Status.CONVERGED_XTOL)


def _solution_tangents(fun, params, build, dynamic, dynamic_dot, how: Implicit, solver):
    """``(dx*, df*, solved)`` at the solution ``params`` for the tangent ``dynamic_dot`` of the
    inputs ``dynamic``; ``build(dynamic)`` gives ``(solver, inputs)``, of which only ``fun``'s
    ``args`` enter ``f`` (the other tangents drop out)."""
    flat, unravel = ravel_pytree(params)
    n = flat.shape[0]
    dtype = flat.dtype

    def args_of(dyn):
        return build(dyn)[1].args

    args = args_of(dynamic)

    def value_and_flat_grad(dyn):
        value, grad = jax.value_and_grad(Objective(fun, args_of(dyn)).value)(params)
        return value, ravel_pytree(grad)[0].astype(dtype)

    # One forward pass gives the envelope term d_theta f and the right-hand side
    # d_theta grad_x f, both linear in the tangents.
    _, (value_dot, rhs) = jax.jvp(value_and_flat_grad, (dynamic,), (dynamic_dot,))

    def flat_grad(v):
        return ravel_pytree(jax.grad(Objective(fun, args).value)(unravel(v)))[0].astype(dtype)

    kind = _linear_solver(how.linear_solver, solver, n)
    if kind == "cg":
        _, hvp = jax.linearize(flat_grad, flat)
        tol = how.cg_tol if how.cg_tol is not None else 10 * float(jnp.finfo(dtype).eps) ** 0.75
        max_iters = 2 * n if how.cg_max_iters is None else how.cg_max_iters
        matvec = hvp

        def linear_solve(mv, b):
            # A failed CG (see _cg) gives NaN: the solve is opaque to JAX (custom_linear_solve
            # transposes by calling it again on the cotangent), so the test stays out of the
            # tangent computation, which must remain linear.
            x, ok = _cg(mv, b, tol, max_iters)
            return jnp.where(ok, x, jnp.nan)

        ok = jnp.asarray(True)
    else:
        hess = jax.jacfwd(flat_grad)(flat)
        hess = 0.5 * (hess + hess.T)  # exact symmetry (autodiff rounding differs by side)

        def matvec(v):
            return hess @ v

        if kind == "cholesky":
            chol = jnp.linalg.cholesky(hess)
            diag = jnp.abs(jnp.diagonal(chol))
            rcond = (jnp.min(diag) / jnp.max(diag)) ** 2
            ok = rcond > n * jnp.finfo(dtype).eps  # NaN (not positive definite) fails too

            def linear_solve(mv, b):
                return jax.scipy.linalg.cho_solve((chol, True), b)
        else:
            lu = jax.scipy.linalg.lu_factor(hess)
            ok = jnp.all(jnp.isfinite(lu[0]))

            def linear_solve(mv, b):
                return jax.scipy.linalg.lu_solve(lu, b)

    flat_dot = lax.custom_linear_solve(matvec, -rhs, linear_solve, symmetric=True)
    return unravel(flat_dot), value_dot, ok


def _has_prox(solver: Any) -> bool:
    return callable(getattr(getattr(solver, "prox", None), "prox", None))


def _prox_tangents(fun, params, build, dynamic, dynamic_dot, how: Implicit, solver):
    """The tangents of a proximal-gradient solution, from its fixed point.

    ``x* = T(x*)`` with ``T(x) = prox_{t g}(x - t grad f(x))`` for every step ``t > 0``, so
    ``(I - d_x T) dx* = d_theta T dtheta``, with ``theta`` the ``args`` of ``f`` and the
    penalty's own leaves (its strengths). The system is not symmetric: a dense LU of
    ``I - d_x T`` (formed by ``jax.jacfwd``), transposed for reverse mode. ``d_x T`` is
    ``D (I - t H)`` with ``D`` the prox's Jacobian (for L1, 1 on the support and 0 off it),
    so ``I - d_x T`` is invertible exactly when ``H`` restricted to the support is; the
    solution does not depend on ``t`` (the step's learning rate is used).
    """
    if how.linear_solver == "cg":
        raise NotImplementedError(
            "a proximal solution's fixed-point system is not symmetric, so CG does not apply; "
            "use Implicit(linear_solver='auto') (a dense LU)"
        )
    flat, unravel = ravel_pytree(params)
    n = flat.shape[0]
    dtype = flat.dtype

    def fixed_point_map(v, dyn):
        solver_, inputs_ = build(dyn)
        x = unravel(v)
        grad = jax.grad(Objective(fun, inputs_.args).value)(x)
        t = jnp.asarray(solver_.learning_rate, dtype)
        moved = jax.tree.map(lambda a, b: (a - t * b).astype(a.dtype), x, grad)
        return ravel_pytree(solver_.prox.prox(moved, t))[0].astype(dtype)

    def composite_value(dyn):
        solver_, inputs_ = build(dyn)
        return (Objective(fun, inputs_.args).value(params)
                + solver_.prox.value(params).astype(dtype))

    _, rhs = jax.jvp(lambda dyn: fixed_point_map(flat, dyn), (dynamic,), (dynamic_dot,))
    _, value_dot = jax.jvp(composite_value, (dynamic,), (dynamic_dot,))
    system = jnp.eye(n, dtype=dtype) - jax.jacfwd(lambda v: fixed_point_map(v, dynamic))(flat)
    lu = jax.scipy.linalg.lu_factor(system)
    diag = jnp.abs(jnp.diagonal(lu[0]))
    solved = jnp.min(diag) > n * jnp.finfo(dtype).eps * jnp.max(diag)  # NaN fails too
    flat_dot = lax.custom_linear_solve(
        lambda v: system @ v, rhs,
        solve=lambda mv, b: jax.scipy.linalg.lu_solve(lu, b),
        transpose_solve=lambda mv, b: jax.scipy.linalg.lu_solve(lu, b, trans=1),
    )
    return unravel(flat_dot), value_dot, solved


def _linear_solver(choice: str, solver: Any, n: int) -> str:
    if choice != "auto":
        return choice
    own = getattr(solver, "linear_solver", None)
    if own in ("cholesky", "cg"):
        return own
    return "cholesky" if n <= DENSE_MAX_PARAMS else "cg"


def _cg(matvec, b, tol: float, max_iters: int):
    """Conjugate gradients for ``H x = b``; ``ok`` unless curvature ``p.Hp <= 0`` was met or the
    relative residual stayed above ``tol`` (``H`` not positive definite or too ill-posed)."""
    bnorm = jnp.linalg.norm(b)
    target = tol * bnorm
    zero = jnp.zeros_like(b)
    start = (zero, b, b, jnp.vdot(b, b), jnp.asarray(0, jnp.int32), bnorm <= target,
             jnp.asarray(False))

    def cond(s):
        _, _, _, _, i, done, bad = s
        return ~done & ~bad & (i < max_iters)

    def body(s):
        x, r, p, rr, i, _, _ = s
        hp = matvec(p)
        curvature = jnp.vdot(p, hp)
        bad = ~(curvature > 0)  # zero, negative or NaN: not positive definite
        alpha = rr / jnp.where(bad, 1.0, curvature)
        x = x + alpha * p
        r = r - alpha * hp
        rr_new = jnp.vdot(r, r)
        p = r + (rr_new / rr) * p
        return x, r, p, rr_new, i + 1, jnp.sqrt(rr_new) <= target, bad

    x, _, _, _, _, done, bad = lax.while_loop(cond, body, start)
    return x, done & ~bad


def _zero_tangent(x: Any) -> Any:
    dtype = jnp.result_type(x)
    if jnp.issubdtype(dtype, jnp.inexact):
        return jnp.zeros(jnp.shape(x), dtype)
    return np.zeros(jnp.shape(x), jax.dtypes.float0)


def _result_tangent(result: Result, params_dot: Any, value_dot: jax.Array) -> Result:
    """The tangent of a whole :class:`Result`: the solution's, zeros for diagnostics."""
    zeros = jax.tree.map(_zero_tangent, result)
    same_point = jnp.all(jnp.stack([
        jnp.all(a == b) for a, b in zip(jax.tree.leaves(result.best_params),
                                        jax.tree.leaves(result.params), strict=True)
    ]))
    best_dot = _scale_by(_nan_unless(same_point), params_dot)
    best_value_dot = _scale_by(_nan_unless(same_point), value_dot)
    return dataclasses.replace(zeros, params=params_dot, value=value_dot,
                               best_params=best_dot, best_value=best_value_dot)


# --- unrolled differentiation ----------------------------------------------------------------


def _unrolled_entry(spec: LoopSpec, solver: Any, inputs: LoopInputs) -> Result:
    loop = Loop(spec, solver, inputs)
    carry = loop.initial(inputs.init_params)
    _check_unrollable(loop, carry, solver)

    def step(c, _):
        return lax.cond(c.done, lambda c: c, loop.body, c), None

    final, _ = lax.scan(step, carry, None, length=spec.max_iters)
    result = loop.finish(final)
    return dataclasses.replace(result, trace=lax.stop_gradient(result.trace))


_unrolled = jax.jit(_unrolled_entry, static_argnums=(0,))  # the spec


def _check_unrollable(loop: Loop, carry: Any, solver: Any) -> None:
    jaxpr = jax.make_jaxpr(loop.body)(carry)
    if _contains_while(jaxpr.jaxpr):
        raise NotImplementedError(
            f"differentiate='unroll' differentiates every step in reverse mode, but a step of "
            f"{type(solver).__name__} runs a lax.while_loop (a line search, a Hessian shift "
            "or a CG loop), which JAX cannot reverse-differentiate. Use a solver without one "
            "(GradientDescent with line_search=None, Subgradient, Optax), or "
            "differentiate='implicit' for a converged solve."
        )


def _contains_while(jaxpr: Any) -> bool:
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "while":
            return True
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            if _contains_while(sub):
                return True
    return False
