"""Safeguarded Newton's method: exact Hessian + shifted Cholesky, or Newton-CG with HVPs."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike

from lossopt._pytree import PyTree
from lossopt._validation import check_choice, check_nonnegative, check_positive
from lossopt.solvers._linesearch import Armijo, armijo_backtrack, normalize_line_search
from lossopt.solvers._protocol import Objective, StepResult, pytree_dataclass, static_field
from lossopt.solvers._tree import tree_add_scaled

__all__ = ["Newton"]

_LINEAR_SOLVERS = ("cholesky", "cg")
# Factor between successive Cholesky shifts. Measured on the MGH set from the standard
# starts (experiments/benchmarks/bench_mgh.py): 10 solved 33 of 35, doubling 31 (Biggs EXP6
# and Osborne 1 wander into a flat valley when the first working shift is too small).
_SHIFT_GROWTH = 10.0


@pytree_dataclass
class Newton:
    """Newton's method that always descends, with an exact or matrix-free Hessian.

    Each iteration solves ``(H + (damping + tau) I) d = -g`` and moves ``x + t d`` with ``t``
    from an Armijo backtracking line search started at 1 (``line_search=None`` takes the full
    step ``t = 1``).

    **Cholesky** (``linear_solver="cholesky"``, the default): ``H`` is the exact Hessian of the
    flattened objective (``jax.hessian``, one evaluation per iteration; any params pytree).
    Singular or indefinite Hessians get a multiple of the identity added, as in Nocedal &
    Wright's Algorithm 3.3 (Cholesky with added multiple of the identity) but with a shift
    sized for badly scaled problems: with ``A = H + damping I``, ``tau = 0`` if
    ``min(diag(A)) > 0`` else ``beta - min(diag(A))``, where
    ``beta = max(1e-3 * min_i |a_ii|, eps * max_i |a_ii|)`` (the smallest non-zero diagonal
    magnitude, floored at the rounding of the largest); while the Cholesky factor of
    ``A + tau I`` contains NaN (JAX's signal for "not positive definite"),
    ``tau <- max(10 tau, beta)``, at most ``max_shifts`` times. Algorithm 3.3's
    ``beta = 1e-3 * max|a_ii|`` swamps the small curvatures of a badly scaled Hessian: on
    Meyer's function (diagonal magnitudes from 9e3 to 2e12 at the start) its first shift of
    2e9 turns Newton into slow steepest descent, while this one starts near the smallest
    curvature and grows by decades (the accepted shift is within a factor 10 of the smallest of that
    sequence that works). A positive definite ``A`` therefore costs exactly one
    factorisation. If every shift fails, the solution is not
    finite or not a descent direction, or ``A`` has no curvature at all (a zero diagonal, as for
    the piecewise-linear MAE), the step falls back to ``d = -g``. So the direction
    always descends and Newton does not converge to a saddle point or maximum it did not start
    on: on ``sum(y^4 - y^2)`` from ``[0.1, 0.2]`` it reaches ``+-1/sqrt(2)``.

    **Newton-CG** (``linear_solver="cg"``): matrix-free. The gradient is linearised once per
    iteration (``jax.linearize`` of ``jax.grad``), so each Hessian-vector product costs about
    one gradient's work (two passes over the data) and the Hessian is never formed. Truncated
    conjugate gradients stop on negative curvature (Steihaug's rule; returning the last iterate,
    or ``-g`` at the first CG step), at relative residual
    ``min(0.5, sqrt(||g||))`` (superlinear forcing sequence), or after ``cg_max_iters``.

    Args:
        damping: constant Levenberg-Marquardt/Tikhonov shift (>= 0) added to the Hessian.
        line_search: ``"armijo"`` (default), ``None`` (full steps), or an
            :class:`~lossopt.solvers.Armijo`.
        linear_solver: ``"cholesky"`` or ``"cg"`` (static).
        max_shifts: maximum shift increases (each by 10x) for the Cholesky path (static).
        cg_max_iters: CG iteration cap (static); ``None`` means the number of parameters.

    Raises:
        ValueError: a hyperparameter outside its range or an unknown choice.

    Example:
        >>> import jax.numpy as jnp
        >>> import lossopt
        >>> from lossopt.solvers import Newton
        >>> f = lambda y: jnp.sum(y ** 4 - y ** 2)  # maximum at 0, minima at +-1/sqrt(2)
        >>> # float32: a value-based line search stalls at gradients of about
        >>> # sqrt(eps |f| lambda) ~ 5e-4 here (see lossopt.solvers.Armijo), hence gtol=1e-3
        >>> res = lossopt.minimize(f, jnp.array([0.1, 0.2]), Newton(), gtol=1e-3)
        >>> print(jnp.round(res.params, 4), res.status.name)
        [0.7071 0.7071] CONVERGED

    References:
        Nocedal, J. and Wright, S. J. (2006). *Numerical Optimization*, 2nd ed.: Algorithm 3.3
        (Cholesky with added multiple of the identity), Algorithm 7.1 (line search Newton-CG).
        Steihaug, T. (1983). The conjugate gradient method and trust regions in large scale
        optimization. SIAM J. Numer. Anal. 20(3).
    """

    damping: ArrayLike = 0.0
    line_search: str | Armijo | None = "armijo"
    linear_solver: str = static_field("cholesky")
    max_shifts: int = static_field(60)
    cg_max_iters: int | None = static_field(None)

    def __post_init__(self) -> None:
        check_nonnegative(self.damping, "damping")
        object.__setattr__(self, "line_search", normalize_line_search(self.line_search))
        check_choice(self.linear_solver, "linear_solver", _LINEAR_SOLVERS)
        for name in ("max_shifts", "cg_max_iters"):
            value = getattr(self, name)
            if value is None and name == "cg_max_iters":
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"`{name}` must be an int >= 1; got {value!r}")
            check_positive(value, name)

    #: For ``compile="auto"``: a Newton run that converges at all does so in far fewer than
    #: 100 iterations (quadratic convergence near the solution), whatever ``max_iters`` is.
    iteration_estimate = 100

    @property
    def monotone(self) -> bool:
        """True with a line search: every accepted step decreases the objective."""
        return self.line_search is not None

    def init(
        self, objective: Objective, params: PyTree, value: jax.Array, grad: PyTree
    ) -> tuple[()]:
        return ()

    def step(
        self, objective: Objective, params: PyTree, value: jax.Array, grad: PyTree,
        state: tuple[()],
    ) -> StepResult:
        x, unravel = ravel_pytree(params)
        g, _ = ravel_pytree(grad)

        def flat_fun(v):
            return objective.value(unravel(v))

        if self.linear_solver == "cholesky":
            hess = jax.hessian(flat_fun)(x)
            d = _shifted_cholesky_direction(hess, g, self.damping, self.max_shifts)
            counts = dict(hess_evals=1, hvp_evals=0, extra_grads=0)
        else:
            # One linearisation per iteration; each HVP then reuses its residuals.
            _, hvp_lin = jax.linearize(jax.grad(flat_fun), x)
            max_iters = x.size if self.cg_max_iters is None else self.cg_max_iters
            d, n_hvp = _truncated_cg_direction(
                lambda v: hvp_lin(v) + self.damping * v, g, max_iters
            )
            counts = dict(hess_evals=0, hvp_evals=n_hvp, extra_grads=1)

        direction = unravel(d)
        if self.line_search is None:
            new_params = tree_add_scaled(params, 1.0, direction)
            new_value, new_grad = objective.value_and_grad(new_params)
            return StepResult(
                new_params,
                new_value,
                new_grad,
                state,
                fun_evals=1,
                grad_evals=1 + counts["extra_grads"],
                hess_evals=counts["hess_evals"],
                hvp_evals=counts["hvp_evals"],
            )
        ls = armijo_backtrack(self.line_search, objective, params, value, grad, direction, 1.0)
        return StepResult(
            ls.params,
            ls.value,
            ls.grad,
            state,
            fun_evals=ls.evals,
            grad_evals=ls.evals + counts["extra_grads"],
            hess_evals=counts["hess_evals"],
            hvp_evals=counts["hvp_evals"],
            failed=ls.failed,
        )


def _all_finite(a: jax.Array) -> jax.Array:
    return jnp.all(jnp.isfinite(a))


def _shifted_cholesky_direction(
    hess: jax.Array, g: jax.Array, damping: Any, max_shifts: int
) -> jax.Array:
    """Solve ``(H + (damping + tau) I) d = -g`` with the smallest working shift (N&W Alg. 3.3)."""
    n = g.shape[0]
    dtype = g.dtype
    eye = jnp.eye(n, dtype=dtype)
    a = hess.astype(dtype) + jnp.asarray(damping, dtype) * eye
    diag = jnp.diagonal(a)
    min_diag = jnp.min(diag)
    absdiag = jnp.abs(diag)
    max_abs = jnp.max(absdiag)
    # The first shift is small against the *smallest* curvature on the diagonal (N&W's
    # 1e-3 max|a_ii| would swamp it on badly scaled problems: Meyer's function), but above the
    # rounding of the largest entry; later shifts grow by decades.
    min_abs = jnp.min(jnp.where(absdiag > 0, absdiag, max_abs))
    floor = jnp.maximum(jnp.finfo(dtype).eps * max_abs, jnp.sqrt(jnp.finfo(dtype).tiny))
    beta = jnp.maximum(1e-3 * min_abs, floor).astype(dtype)
    tau0 = jnp.where(min_diag > 0, jnp.zeros((), dtype), beta - min_diag)

    # A do-while: the first pass factors A + tau0 I, each later one multiplies the shift by
    # _SHIFT_GROWTH; one factorisation in the program instead of one before the loop and one
    # inside it.
    def cond(s):
        tau, chol, tries = s
        return ~_all_finite(chol) & (tries < max_shifts) & jnp.isfinite(tau)

    def body(s):
        tau, _, tries = s
        tau = jnp.where(tries < 0, tau0, jnp.maximum(_SHIFT_GROWTH * tau, beta))
        return tau, jnp.linalg.cholesky(a + tau * eye), tries + 1

    unset = jnp.full_like(a, jnp.nan)  # not finite: the loop runs at least once
    _, chol, _ = lax.while_loop(cond, body, (tau0, unset, jnp.asarray(-1, jnp.int32)))
    d = jax.scipy.linalg.cho_solve((chol, True), -g)
    # A Hessian without any curvature (a zero diagonal: piecewise-linear objectives such as the
    # MAE) carries no scale for the shift: beta would fall to sqrt(tiny) and d = -g / beta would
    # be astronomically long, beyond what backtracking can shrink. Use the gradient direction.
    has_curvature = max_abs > 0
    usable = has_curvature & _all_finite(chol) & _all_finite(d) & (jnp.vdot(g, d) < 0)
    return jnp.where(usable, d, -g)


def _truncated_cg_direction(hvp, g: jax.Array, max_iters: int) -> tuple[jax.Array, jax.Array]:
    """Approximately solve ``H d = -g`` by CG, stopping on negative curvature (Steihaug)."""
    dtype = g.dtype
    gnorm = jnp.linalg.norm(g)
    tol = jnp.minimum(0.5, jnp.sqrt(gnorm)) * gnorm
    z0 = jnp.zeros_like(g)
    # state: z (iterate), r (residual H z + g), p (search direction), rr, iteration, done,
    # negative-curvature-at-first-step flag
    start = (z0, g, -g, jnp.vdot(g, g), jnp.asarray(0, jnp.int32), gnorm <= 0, jnp.asarray(False))

    def cond(s):
        return ~s[5] & (s[4] < max_iters)

    def body(s):
        z, r, p, rr, i, _, _ = s
        hp = hvp(p)
        curvature = jnp.vdot(p, hp)
        negative = ~(curvature > 0)  # NaN counts as negative curvature: stop.
        alpha = rr / jnp.where(negative, 1.0, curvature)
        z_new = z + alpha * p
        r_new = r + alpha * hp
        rr_new = jnp.vdot(r_new, r_new)
        converged = jnp.sqrt(rr_new) <= tol
        p_new = -r_new + (rr_new / rr) * p
        z_out = jnp.where(negative, z, z_new)
        done = negative | converged
        return (
            z_out,
            jnp.where(negative, r, r_new),
            jnp.where(negative, p, p_new),
            jnp.where(negative, rr, rr_new),
            i + 1,
            done,
            negative & (i == 0),
        )

    z, _, _, _, iters, _, first_negative = lax.while_loop(cond, body, start)
    z = jnp.where(first_negative, -g, z)
    usable = _all_finite(z) & (jnp.vdot(g, z) < 0)
    return jnp.where(usable, z, -g).astype(dtype), iters
