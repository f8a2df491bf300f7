"""Gauss-Newton and Levenberg-Marquardt for ``F(x) = 1/2 ||r(x)||^2``.

Both read the residual function back from :func:`~lossopt.solvers.least_squares_objective`
(see :func:`lossopt.minimize_least_squares`) and work on the flattened parameters ``x``
(``n`` entries) and residuals ``r`` (``m`` entries). Shared conventions:

- **Jacobian** (``linear_solver`` other than ``"cg"``): ``J = dr/dx`` is formed by
  ``jax.jacfwd`` (``n`` JVPs) when ``m >= n`` and by ``jax.jacrev`` (``m`` VJPs) when
  ``m < n`` -- each pass costs about one residual evaluation, so the mode with fewer passes
  wins (``jacobian="forward"``/``"reverse"`` overrides the rule). The Jacobian of the current
  iterate is kept in the solver's state: each iteration forms one Jacobian, at the accepted
  point, and rejected trials cost one residual evaluation each.
- **Matrix-free** (``linear_solver="cg"``): the normal equations are solved by conjugate
  gradients with products ``J^T (J v)`` from one ``jax.linearize`` of ``r`` per iteration
  (a JVP and its transpose, a VJP); ``J`` is never formed, for large ``n``.
- **Counts** in :class:`~lossopt.Result`: ``num_fun_evals`` counts residual evaluations at
  trial points (rejected ones included); ``num_grad_evals`` counts Jacobians formed (dense)
  or linearisations and gradients (``"cg"``), each of which also evaluates ``r``;
  ``num_hvp_evals`` counts products with ``J`` or ``J^T J`` (``"cg"``). The driver's
  evaluation of the start counts one of each, and the Jacobian that ``init`` forms at the
  start is added on the first step.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike

from lossopt._pytree import PyTree
from lossopt._validation import check_bool, check_choice, check_positive
from lossopt.solvers._least_squares import (
    backtrack,
    check_jacobian_mode,
    check_static_int,
    flat_problem,
    jacobian,
    linear_operators,
    normal_cg,
    num_residuals,
)
from lossopt.solvers._linesearch import Armijo, normalize_line_search
from lossopt.solvers._protocol import Objective, StepResult, pytree_dataclass, static_field

__all__ = ["GaussNewton", "LevenbergMarquardt"]


def _finite(a: jax.Array) -> jax.Array:
    return jnp.all(jnp.isfinite(a))


def _count(n: Any) -> jax.Array:
    return jnp.asarray(n, jnp.int32)


class GaussNewtonState(NamedTuple):
    r: Any  # residuals at the current iterate (None with "cg")
    jac: Any  # their Jacobian (None with "cg")
    pending: jax.Array  # Jacobians formed by init, counted on the first step


class LevenbergMarquardtState(NamedTuple):
    r: Any  # residuals at the current iterate (None with "cg")
    jac: Any  # their Jacobian (None with "cg")
    mu: jax.Array  # damping of the next trial
    nu: jax.Array  # Nielsen's growth factor of the damping after a rejection
    diag: Any  # Marquardt/More scaling D (with scale=True), else None
    pending: tuple[jax.Array, jax.Array]  # (Jacobians, products) spent by init


@pytree_dataclass
class GaussNewton:
    """Gauss-Newton with a backtracking line search, for ``F(x) = 1/2 ||r(x)||^2``.

    Each iteration takes the Gauss-Newton direction, the minimiser of the linearised model
    ``1/2 ||r + J d||^2``: ``d = -J^+ r`` by least squares (``linear_solver="lstsq"``, an SVD:
    when ``J^T J`` is singular this is the minimum-norm solution of ``J^T J d = -J^T r``,
    still a descent direction), or ``J^T J d = -J^T r`` by conjugate gradients
    (``linear_solver="cg"``, matrix-free, at most ``cg_max_iters`` products). A direction
    that is not finite or does not descend (``g^T d >= 0``, ``g = J^T r``) is replaced by
    ``-g``. Then ``x + t d`` with ``t`` from Armijo backtracking on ``F`` started at 1
    (``F(x + t d) <= F(x) + c1 t g^T d`` and a strict decrease; ``line_search=None`` takes
    ``t = 1``). Near a zero-residual solution with ``J`` of full column rank the full step
    is accepted and convergence is quadratic; with large residuals it can be slow or stall
    (use :class:`LevenbergMarquardt`).

    Args:
        line_search: ``"armijo"`` (default), ``None`` (full steps, not monotone) or an
            :class:`~lossopt.solvers.Armijo`, of which ``c1``, ``shrink`` and ``max_steps``
            are used: the search evaluates residuals only, always starts at ``t = 1`` (the
            Gauss-Newton step's natural length) and makes at most ``max_steps`` trials.
        linear_solver: ``"lstsq"`` or ``"cg"`` (static).
        jacobian: ``"auto"`` (forward mode when ``m >= n``), ``"forward"`` or ``"reverse"``
            (static; unused with ``"cg"``).
        cg_max_iters: CG products per iteration (static, >= 1); ``None``: ``n``.

    Raises:
        ValueError: an unknown choice or a ``cg_max_iters`` below 1.

    Example:
        >>> import jax.numpy as jnp
        >>> import lossopt
        >>> from lossopt.solvers import GaussNewton
        >>> def r(x):  # Rosenbrock's residuals (MGH 1): zero at (1, 1)
        ...     return jnp.stack([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])
        >>> res = lossopt.minimize_least_squares(r, jnp.array([-1.2, 1.0]), GaussNewton())
        >>> print(jnp.round(res.params, 5), res.status.name)
        [1. 1.] CONVERGED

        Full steps (Newton's method on ``r = 0`` here, ``J`` being square): the first lands on
        ``x_1 = 1``, the second on the solution (a third in float32, whose rounding leaves
        ``|J^T r|`` above ``gtol``):

        >>> res = lossopt.minimize_least_squares(r, jnp.array([-1.2, 1.0]),
        ...                                      GaussNewton(line_search=None))
        >>> print(jnp.round(res.params, 5), res.iterations <= 3, res.status.name)
        [1. 1.] True CONVERGED

    References:
        Nocedal, J. and Wright, S. J. (2006). *Numerical Optimization*, 2nd ed., Section 10.3
        (the Gauss-Newton method) and Algorithm 3.1 (backtracking).
    """

    line_search: str | Armijo | None = "armijo"
    linear_solver: str = static_field("lstsq")
    jacobian: str = static_field("auto")
    cg_max_iters: int | None = static_field(None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "line_search", normalize_line_search(self.line_search))
        check_choice(self.linear_solver, "linear_solver", ("lstsq", "cg"))
        check_jacobian_mode(self.jacobian)
        check_static_int(self.cg_max_iters, "cg_max_iters", allow_none=True)

    #: For ``compile="auto"``: Gauss-Newton converges fast or not at all.
    iteration_estimate = 100

    @property
    def monotone(self) -> bool:
        """True with a line search: every accepted step decreases ``F``."""
        return self.line_search is not None

    def init(
        self, objective: Objective, params: PyTree, value: jax.Array, grad: PyTree
    ) -> GaussNewtonState:
        if self.linear_solver == "cg":
            return GaussNewtonState(None, None, _count(0))
        x, _, res = flat_problem(objective, params, "GaussNewton")
        r, jac = jacobian(res, x, num_residuals(res, x), self.jacobian)
        return GaussNewtonState(r, jac, _count(1))

    def step(
        self, objective: Objective, params: PyTree, value: jax.Array, grad: PyTree,
        state: GaussNewtonState,
    ) -> StepResult:
        x, unravel, res = flat_problem(objective, params, "GaussNewton")
        g = ravel_pytree(grad)[0].astype(x.dtype)
        products = _count(0)
        if self.linear_solver == "cg":
            _, jvp, vjp = linear_operators(res, x)
            cap = x.shape[0] if self.cg_max_iters is None else self.cg_max_iters
            d, products = normal_cg(lambda v: vjp(jvp(v)), -g, cap)
        else:
            d = jnp.linalg.lstsq(state.jac, -state.r)[0]
        slope = jnp.vdot(g, d)
        descends = _finite(d) & (slope < 0)
        d = jnp.where(descends, d, -g)
        slope = jnp.where(descends, slope, -jnp.vdot(g, g))

        if self.line_search is None:
            x_new, ok, trials = x + d, jnp.asarray(True), _count(1)
        else:
            ls = self.line_search
            x_new, ok, trials = backtrack(res, x, d, value, slope, ls.c1, ls.shrink,
                                          ls.max_steps)
        new_params = unravel(x_new)
        if self.linear_solver == "cg":
            new_value, new_grad = objective.value_and_grad(new_params)
            new_state = GaussNewtonState(None, None, _count(0))
            grad_evals = 2  # the linearisation at x and the gradient at x_new
        else:
            r_new, jac_new = jacobian(res, x_new, state.r.shape[0], self.jacobian)
            new_value = (0.5 * jnp.vdot(r_new, r_new)).astype(value.dtype)
            new_grad = unravel(jac_new.T @ r_new)
            new_state = GaussNewtonState(r_new, jac_new, _count(0))
            grad_evals = 1 + state.pending
        return StepResult(new_params, new_value, new_grad, new_state, fun_evals=trials,
                          grad_evals=grad_evals, hvp_evals=products, failed=~ok)


@pytree_dataclass
class LevenbergMarquardt:
    """Levenberg-Marquardt with Nielsen's damping update, for ``F(x) = 1/2 ||r(x)||^2``.

    Each trial solves the damped normal equations ``(J^T J + mu D) h = -J^T r`` (Cholesky;
    or matrix-free CG with ``D = I``, ``linear_solver="cg"``) and compares the actual decrease
    with the one the linear model predicts, the gain ratio
    ``rho = (F(x) - F(x + h)) / (L(0) - L(h))``, where the predicted decrease is
    ``L(0) - L(h) = -g^T h - 1/2 ||J h||^2`` and ``g = J^T r``.

    A trial with ``rho > 0`` (``F`` strictly decreases) is accepted and
    ``mu <- mu * max(1/3, 1 - (2 rho - 1)^3)``, ``nu <- 2``; any other trial (no decrease,
    a non-positive prediction, a NaN, a failed factorisation) is rejected,
    ``mu <- mu * nu``, ``nu <- 2 nu``, and the next trial is solved in the same iteration
    (Nielsen 1999; Madsen, Nielsen & Tingleff 2004, Algorithm 3.16). So every iteration
    decreases ``F``; after ``max_rejections`` rejected trials in one iteration the run
    stops with ``LINE_SEARCH_FAILED`` (no damping found a decrease: usually ``gtol`` is
    below the rounding noise of ``F``). Every trial's residual evaluation is counted in
    ``num_fun_evals``.

    The first damping is ``mu_0 = damping * max_i (J^T J)_ii / max_i D_ii`` at the start
    (Nielsen's ``tau``; with ``scale=True`` this is ``damping`` itself); with ``"cg"``,
    where no diagonal is formed, ``max_i (J^T J)_ii`` is replaced by the Rayleigh quotient
    ``||J g||^2 / ||g||^2`` (one JVP). ``D = I`` unless ``scale=True``: then
    ``D = diag(J^T J)`` (Marquardt's scaling, which makes the method invariant to rescaling
    the parameters), kept as the running maximum over the iterations and with zero entries
    set to 1 (More 1978's safeguard).

    Args:
        damping: Nielsen's ``tau`` (> 0), the initial damping relative to ``J^T J``'s
            diagonal; a pytree leaf (``jax.vmap`` sweeps it in one compilation). Small
            (1e-6) when the start is good, large (1) when it is not.
        scale: Marquardt's ``D = diag(J^T J)`` scaling (static; not with ``"cg"``).
        linear_solver: ``"cholesky"`` or ``"cg"`` (static).
        jacobian: ``"auto"`` (forward mode when ``m >= n``), ``"forward"`` or ``"reverse"``
            (static; unused with ``"cg"``).
        max_rejections: rejected trials allowed per iteration (static, >= 1).
        cg_max_iters: CG products per trial (static, >= 1); ``None``: ``n``.

    Raises:
        ValueError: ``damping <= 0``, an unknown choice, an int option below 1, or
            ``scale=True`` with ``linear_solver="cg"``.
        TypeError: a ``scale`` that is not a bool.

    Example:
        >>> import jax.numpy as jnp
        >>> import lossopt
        >>> from lossopt.solvers import LevenbergMarquardt
        >>> t = jnp.arange(1.0, 9.0)
        >>> y = jnp.array([2.1, 3.0, 4.4, 6.1, 8.9, 13.1, 18.8, 27.2])  # ~ 1.42 exp(0.37 t)
        >>> def r(p, t, y):
        ...     return p[0] * jnp.exp(p[1] * t) - y
        >>> res = lossopt.minimize_least_squares(r, jnp.array([1.0, 0.1]),
        ...                                      LevenbergMarquardt(), args=(t, y), gtol=1e-2)
        >>> print(jnp.round(res.params, 3), res.status.name)  # scipy: [1.42185 0.36892]
        [1.422 0.369] CONVERGED

    References:
        Nielsen, H. B. (1999). Damping parameter in Marquardt's method. Technical report
        IMM-REP-1999-05, Technical University of Denmark.
        Madsen, K., Nielsen, H. B. and Tingleff, O. (2004). *Methods for Non-Linear Least
        Squares Problems*, 2nd ed., IMM, DTU: Section 3.2, Algorithm 3.16.
        Marquardt, D. W. (1963). An algorithm for least-squares estimation of nonlinear
        parameters. J. SIAM 11(2). More, J. J. (1978). The Levenberg-Marquardt algorithm:
        implementation and theory. Lecture Notes in Mathematics 630.
    """

    damping: ArrayLike = 1e-3
    scale: bool = static_field(False)
    linear_solver: str = static_field("cholesky")
    jacobian: str = static_field("auto")
    max_rejections: int = static_field(20)
    cg_max_iters: int | None = static_field(None)

    def __post_init__(self) -> None:
        check_positive(self.damping, "damping")
        check_bool(self.scale, "scale")
        check_choice(self.linear_solver, "linear_solver", ("cholesky", "cg"))
        check_jacobian_mode(self.jacobian)
        check_static_int(self.max_rejections, "max_rejections")
        check_static_int(self.cg_max_iters, "cg_max_iters", allow_none=True)
        if self.scale and self.linear_solver == "cg":
            raise ValueError(
                "`scale=True` scales by diag(J^T J), which linear_solver='cg' never forms; "
                "use linear_solver='cholesky' or scale=False"
            )

    #: For ``compile="auto"``: like Newton, a run that converges does so in few iterations.
    iteration_estimate = 100

    @property
    def monotone(self) -> bool:
        """Always True: a trial that does not decrease ``F`` is rejected."""
        return True

    def init(
        self, objective: Objective, params: PyTree, value: jax.Array, grad: PyTree
    ) -> LevenbergMarquardtState:
        x, _, res = flat_problem(objective, params, "LevenbergMarquardt")
        dtype = x.dtype
        tau = jnp.asarray(self.damping, dtype)
        two = jnp.asarray(2.0, dtype)
        if self.linear_solver == "cg":
            g = ravel_pytree(grad)[0].astype(dtype)
            jg = jax.jvp(res, (x,), (g,))[1]
            gg = jnp.vdot(g, g)
            curvature = jnp.where(gg > 0, jnp.vdot(jg, jg) / jnp.where(gg > 0, gg, 1.0), 1.0)
            return LevenbergMarquardtState(None, None, tau * curvature, two, None,
                                           (_count(0), _count(1)))
        r, jac = jacobian(res, x, num_residuals(res, x), self.jacobian)
        a_diag = jnp.sum(jac * jac, axis=0)
        diag = jnp.where(a_diag > 0, a_diag, 1.0) if self.scale else None
        d_max = jnp.max(diag) if self.scale else jnp.ones((), dtype)
        mu = tau * jnp.max(a_diag) / d_max
        return LevenbergMarquardtState(r, jac, mu, two, diag, (_count(1), _count(0)))

    def step(
        self, objective: Objective, params: PyTree, value: jax.Array, grad: PyTree,
        state: LevenbergMarquardtState,
    ) -> StepResult:
        x, unravel, res = flat_problem(objective, params, "LevenbergMarquardt")
        dtype = x.dtype
        g = ravel_pytree(grad)[0].astype(dtype)
        cg = self.linear_solver == "cg"
        if cg:
            _, jvp, vjp = linear_operators(res, x)
            cap = x.shape[0] if self.cg_max_iters is None else self.cg_max_iters

            def solve(mu):
                h, k = normal_cg(lambda v: vjp(jvp(v)) + mu * v, -g, cap)
                return h, jvp(h), k + 1  # the CG products and the one J h
        else:
            jac = state.jac
            a = jac.T @ jac
            d = state.diag if self.scale else jnp.ones_like(x)

            def solve(mu):
                chol = jnp.linalg.cholesky(a + jnp.diag(mu * d))
                h = jax.scipy.linalg.cho_solve((chol, True), -g)
                return h, jac @ h, _count(0)

        def cond(s):
            return ~s[3] & (s[4] < self.max_rejections)

        def body(s):
            mu, nu, _, _, tries, products = s
            h, jh, k = solve(mu)
            x_t = x + h
            r_t = res(x_t)
            actual = value - 0.5 * jnp.vdot(r_t, r_t)
            predicted = -jnp.vdot(g, h) - 0.5 * jnp.vdot(jh, jh)
            ok = _finite(h) & _finite(r_t) & (predicted > 0) & (actual > 0)
            rho = actual / jnp.where(ok, predicted, 1.0)
            shrunk = mu * jnp.maximum(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
            mu_next = jnp.where(ok, shrunk, mu * nu).astype(dtype)
            nu_next = jnp.where(ok, 2.0, 2.0 * nu).astype(dtype)
            return mu_next, nu_next, x_t, ok, tries + 1, products + k

        start = (state.mu, state.nu, x, jnp.asarray(False), _count(0), _count(0))
        mu, nu, x_new, ok, trials, products = lax.while_loop(cond, body, start)
        new_params = unravel(x_new)
        jacobians, init_products = state.pending
        if cg:
            new_value, new_grad = objective.value_and_grad(new_params)
            new_state = LevenbergMarquardtState(None, None, mu, nu, None, (_count(0), _count(0)))
            grad_evals = 2  # the linearisation at x and the gradient at x_new
        else:
            r_new, jac_new = jacobian(res, x_new, state.r.shape[0], self.jacobian)
            new_value = (0.5 * jnp.vdot(r_new, r_new)).astype(value.dtype)
            new_grad = unravel(jac_new.T @ r_new)
            diag = None
            if self.scale:
                diag = jnp.maximum(state.diag, jnp.sum(jac_new * jac_new, axis=0))
            new_state = LevenbergMarquardtState(r_new, jac_new, mu, nu, diag,
                                                (_count(0), _count(0)))
            grad_evals = 1 + jacobians
        return StepResult(new_params, new_value, new_grad, new_state, fun_evals=trials,
                          grad_evals=grad_evals, hvp_evals=products + init_products,
                          failed=~ok)
