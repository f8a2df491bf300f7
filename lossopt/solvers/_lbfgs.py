"""L-BFGS: the two-loop recursion over a ring buffer of curvature pairs, with a strong-Wolfe
line search written as one ``lax.while_loop`` (or Armijo backtracking)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike

from lossopt._pytree import PyTree
from lossopt._validation import check_choice, check_in_interval, check_positive, concrete_value
from lossopt.solvers._linesearch import Armijo, armijo_backtrack
from lossopt.solvers._protocol import Objective, StepResult, pytree_dataclass, static_field

__all__ = ["LBFGS"]

_LINE_SEARCHES = ("wolfe", "armijo")
_EXPAND = 2.0  # step growth per bracketing trial while no bracket is known
_SAFEGUARD = 0.1  # an interpolated trial must lie this far (relative) inside the bracket


class LBFGSState(NamedTuple):
    """The last ``memory`` accepted curvature pairs, in a ring buffer of ``memory + 1`` slots.

    ``pairs[i] = (s, y)`` with ``s = x_{k+1} - x_k`` and ``y = g_{k+1} - g_k`` (flattened).
    ``stored`` counts the pairs kept since the last reset: the newest is in slot
    ``(stored - 1) % (memory + 1)``, the valid ones are the ``min(stored, memory)`` slots
    before ``head = stored % (memory + 1)``, and ``head`` itself is always spare, so a step
    writes its pair there unconditionally and keeps it by incrementing ``stored``. ``gamma``
    is the initial inverse-Hessian scale ``s'y / y'y`` of the newest pair (1 when empty).
    """

    pairs: jax.Array
    stored: jax.Array
    gamma: jax.Array


@pytree_dataclass
class LBFGS:
    """Limited-memory BFGS with a strong-Wolfe (default) or Armijo line search.

    Each iteration computes ``d = -H g`` by the two-loop recursion over the last ``memory``
    pairs ``s_i = x_{i+1} - x_i``, ``y_i = g_{i+1} - g_i`` with ``rho_i = 1 / (s_i' y_i)``,
    starting from the scaled identity ``H0 = gamma I``,
    ``gamma = s' y / y' y`` of the newest pair (Nocedal & Wright eq. 7.20), then moves
    ``x + t d`` with ``t`` from the line search, started at ``t = 1``. The recursion: ``q = g``;
    from the newest pair to the oldest, ``alpha_i = rho_i s_i' q`` and
    ``q <- q - alpha_i y_i``; then ``r = gamma q``; from the oldest pair to the newest,
    ``r <- r + (alpha_i - rho_i y_i' r) s_i``; and ``d = -r``.

    Safeguards. A new pair is stored only when ``s'y > eps * y'y`` (``eps`` the machine epsilon
    of the parameters' dtype, the rule of scipy's L-BFGS-B), which keeps ``H`` positive
    definite; otherwise the history is kept unchanged. If ``d`` is still not a descent direction
    (``g'd >= 0`` or not finite, e.g. from rounding), the history is cleared and the step is
    steepest descent. With no stored pair (the first iteration, or after a reset) ``d = -g``
    and the initial trial step is ``min(1, 1 / ||g||_2)``, so the first trial moves at most a
    unit distance (scipy's L-BFGS-B choice); later iterations start at ``t = 1``.

    **Strong Wolfe** (``line_search="wolfe"``): accept the first trial with
    ``f(x + t d) <= f(x) + c1 t g'd`` and ``|g(x + t d)'d| <= c2 |g'd|``.
    Bracketing and zoom (Nocedal & Wright Alg. 3.5 and 3.6) run as ONE ``lax.while_loop``
    sharing one objective evaluation: while no bracket is known the step doubles; once one is,
    the next trial minimises the cubic through both ends' values and slopes (eq. 3.59),
    replaced by the midpoint when it falls outside the middle 80% of the bracket or is not
    finite (a NaN or Inf trial value therefore halves the step). After
    ``max_line_search_steps`` trials, or when the bracket collapses below rounding, the best
    trial with a strict, sufficient decrease is accepted even if it misses the curvature
    condition.
    **Armijo** (``line_search="armijo"``): :class:`~lossopt.solvers.Armijo` backtracking with
    ``c1``, halving the step, ``max_line_search_steps`` trials. Either search fails, and the
    run stops with ``LINE_SEARCH_FAILED``, when no trial is acceptable. Armijo needs a strict
    decrease, so it fails once the decrease falls below the rounding of ``f`` (see
    :mod:`lossopt.solvers._linesearch`). The Wolfe search instead accepts, when the curvature
    condition holds, a value within rounding of ``f(x)`` (``f(x + t d) <= f(x) + 10 eps
    |f(x)|``, Hager & Zhang's approximate Wolfe test with a dtype-scaled tolerance), so it
    keeps reducing the gradient below that level, as optax's zoom search does; ``f`` is then
    monotone to within that rounding.

    Every trial evaluates ``value_and_grad`` once; all trials are counted in
    ``num_fun_evals`` and ``num_grad_evals``. Parameters may be any pytree: they are flattened
    (``jax.flatten_util.ravel_pytree``) and the history holds ``2 * memory`` vectors of their
    size.

    Args:
        memory: number of stored pairs ``m`` (static, >= 1).
        line_search: ``"wolfe"`` (default) or ``"armijo"`` (static).
        c1: sufficient-decrease constant in (0, 1).
        c2: curvature constant in (c1, 1) for the Wolfe search (unused by Armijo); 0.9 is the
            usual quasi-Newton choice.
        max_line_search_steps: trials per line search (static, >= 1).

    Raises:
        TypeError: ``memory`` or ``max_line_search_steps`` not an int.
        ValueError: a hyperparameter outside its range or an unknown ``line_search``.

    Example:
        >>> import jax.numpy as jnp
        >>> import lossopt
        >>> from lossopt.solvers import LBFGS
        >>> def rosenbrock(p):  # minimum 0 at (1, 1)
        ...     return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2
        >>> res = lossopt.minimize(rosenbrock, jnp.array([-1.2, 1.0]), LBFGS(), gtol=1e-4)
        >>> print(jnp.round(res.params, 4), res.status.name)
        [1. 1.] CONVERGED

    References:
        Nocedal, J. and Wright, S. J. (2006). *Numerical Optimization*, 2nd ed., Springer:
        Algorithm 7.4 (L-BFGS two-loop recursion), Algorithm 7.5 (L-BFGS), eq. 7.20 (initial
        scaling), Algorithms 3.5 and 3.6 (strong-Wolfe line search and zoom), eq. 3.59 (cubic
        interpolation). Liu, D. C. and Nocedal, J. (1989). On the limited memory BFGS method
        for large scale optimization. *Mathematical Programming* 45, 503-528.
        Hager, W. W. and Zhang, H. (2005). A new conjugate gradient method with guaranteed
        descent and an efficient line search. *SIAM J. Optim.* 16(1) (approximate Wolfe).
    """

    memory: int = static_field(10)
    line_search: str = static_field("wolfe")
    c1: ArrayLike = 1e-4
    c2: ArrayLike = 0.9
    max_line_search_steps: int = static_field(20)

    def __post_init__(self) -> None:
        for name in ("memory", "max_line_search_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"`{name}` must be an int >= 1; got {value!r}")
            check_positive(value, name)
        check_choice(self.line_search, "line_search", _LINE_SEARCHES)
        check_in_interval(self.c1, "c1", 0.0, 1.0)
        check_in_interval(self.c2, "c2", 0.0, 1.0)
        c1, c2 = concrete_value(self.c1), concrete_value(self.c2)
        if c1 is not None and c2 is not None and not (c1 < c2).all():
            raise ValueError(
                f"`c2` must be greater than `c1` (0 < c1 < c2 < 1); got c1={self.c1!r} and "
                f"c2={self.c2!r}"
            )

    @property
    def monotone(self) -> bool:
        """True: every accepted step decreases the objective."""
        return True

    def init(
        self, objective: Objective, params: PyTree, value: jax.Array, grad: PyTree
    ) -> LBFGSState:
        x, _ = ravel_pytree(params)
        return LBFGSState(
            pairs=jnp.zeros((self.memory + 1, 2, x.size), x.dtype),
            stored=jnp.zeros((), jnp.int32),
            gamma=jnp.ones((), x.dtype),
        )

    def step(
        self, objective: Objective, params: PyTree, value: jax.Array, grad: PyTree,
        state: LBFGSState,
    ) -> StepResult:
        x, unravel = ravel_pytree(params)
        g, _ = ravel_pytree(grad)
        dtype = x.dtype

        d = _two_loop(g, state, self.memory)
        gd = jnp.vdot(g, d)
        descends = gd < 0  # False for NaN
        # Not a descent direction: forget the history and take steepest descent.
        stored = jnp.where(descends, state.stored, 0)
        gamma = jnp.where(descends, state.gamma, 1.0).astype(dtype)
        d = jnp.where(descends, d, -g)
        gg = jnp.vdot(g, g)
        slope = jnp.where(descends, gd, -gg)
        first_step = jnp.minimum(1.0, 1.0 / jnp.sqrt(gg)).astype(dtype)
        t0 = jnp.where(stored > 0, jnp.ones((), dtype), first_step)
        c1 = jnp.asarray(self.c1, dtype)

        if self.line_search == "wolfe":

            def value_and_grad(v):
                return jax.value_and_grad(lambda u: objective.value(unravel(u)))(v)

            c2 = jnp.asarray(self.c2, dtype)
            x_new, f_new, g_new, evals, failed = _strong_wolfe(
                value_and_grad, x, value, g, slope, d, t0, c1, c2, self.max_line_search_steps
            )
            new_params, new_grad = unravel(x_new), unravel(g_new)
        else:
            # exactly max_line_search_steps trials, as for the Wolfe search
            search = Armijo(c1=c1, max_steps=self.max_line_search_steps, scale_budget=False)
            ls = armijo_backtrack(search, objective, params, value, grad, unravel(d), t0)
            new_params, f_new, new_grad = ls.params, ls.value, ls.grad
            x_new, g_new = ravel_pytree(new_params)[0], ravel_pytree(new_grad)[0]
            evals, failed = ls.evals, ls.failed

        state = LBFGSState(state.pairs, stored, gamma)
        new_state = _push_pair(state, x_new - x, g_new - g, ~failed, self.memory)
        return StepResult(
            new_params,
            f_new,
            new_grad,
            new_state,
            fun_evals=evals,
            grad_evals=evals,
            failed=failed,
        )


def _two_loop(g: jax.Array, state: LBFGSState, memory: int) -> jax.Array:
    """``-H g`` by Nocedal & Wright's Algorithm 7.4, both loops as one ``fori_loop``.

    Steps ``j < memory`` are the first loop (the pair of age ``j``, newest first); at
    ``j = memory`` ``q`` is scaled by ``gamma``; steps ``j >= memory`` are the second loop
    (oldest first). Ages beyond the stored pairs leave the vector unchanged.
    """
    slots = memory + 1
    count = jnp.minimum(state.stored, memory)
    head = state.stored % slots

    def body(j, carry):
        v, alpha = carry
        second = j >= memory
        age = jnp.where(second, 2 * memory - 1 - j, j)
        s_i, y_i = state.pairs[(head - 1 - age) % slots]
        v = jnp.where(j == memory, state.gamma * v, v)
        # first loop: a = rho s'q, q -= a y;  second loop: b = rho y'r, r += (a - b) s
        dot = jnp.vdot(jnp.where(second, y_i, s_i), v) / jnp.vdot(s_i, y_i)
        coef = jnp.where(second, alpha[age] - dot, -dot)
        alpha = alpha.at[age].set(jnp.where(second, alpha[age], dot))
        v = jnp.where(age < count, v + coef * jnp.where(second, s_i, y_i), v)
        return v, alpha

    v, _ = lax.fori_loop(0, 2 * memory, body, (g, jnp.zeros((memory,), g.dtype)))
    return -v


def _push_pair(state: LBFGSState, s, y, ok, memory: int) -> LBFGSState:
    """Write ``(s, y)`` to the spare slot; keep it when ``ok`` and ``s'y > eps y'y``."""
    pair = jnp.stack([s, y])
    sy, yy = pair @ y
    eps = jnp.finfo(s.dtype).eps
    keep = ok & (sy > eps * yy) & jnp.isfinite(sy) & jnp.isfinite(yy)  # NaN fails every test
    zero = jnp.zeros((), jnp.int32)
    head = (state.stored % (memory + 1)).astype(jnp.int32)
    return LBFGSState(
        pairs=lax.dynamic_update_slice(state.pairs, pair[None], (head, zero, zero)),
        stored=jnp.where(keep, state.stored + 1, state.stored).astype(jnp.int32),
        gamma=jnp.where(keep, sy / jnp.where(keep, yy, 1.0), state.gamma).astype(s.dtype),
    )


def _strong_wolfe(value_and_grad, x, f0, g0, slope0, d, t0, c1, c2, max_steps: int):
    """Bracketing and zoom (N&W Alg. 3.5/3.6) as one loop; returns ``(x, f, g, evals, failed)``.

    ``lo`` and ``hi`` are vectors ``(t, f(x + t d), g(x + t d)'d)``. Invariant: ``lo`` is the
    trial with the lowest value that satisfies sufficient decrease (``t = 0`` before there is
    one), its point and gradient kept as ``x_lo``, ``g_lo``; once a bracket is known
    (``hi.t`` finite; it starts at infinity) an acceptable step lies between ``lo.t`` and
    ``hi.t`` (either order). A trial that fails sufficient decrease, or does not improve on
    ``lo``, becomes ``hi``; one that passes becomes ``lo``, and the old ``lo`` becomes ``hi``
    when the trial's slope points back towards it. A first improvement whose value is within
    rounding of ``f(x)`` is accepted when the curvature condition holds (approximate Wolfe).
    ``stop``: the strong Wolfe conditions hold
    at ``lo``, or the bracket has shrunk below rounding. Few, vector-valued loop variables
    keep the compiled loop small (each one is about one kernel).
    """
    dtype = x.dtype
    eps = jnp.finfo(dtype).eps
    lo0 = jnp.stack([jnp.zeros((), dtype), f0, slope0]).astype(dtype)
    hi0 = lo0.at[0].set(jnp.inf)
    start = (t0, lo0, hi0, x, g0, jnp.asarray(False), jnp.zeros((), jnp.int32))

    def cond(s):
        return ~s[5] & (s[6] < max_steps)

    def body(s):
        t, lo, hi, x_lo, g_lo, _, evals = s
        x_t = x + t * d
        f_t, g_t = value_and_grad(x_t)
        trial = jnp.stack([t, f_t.astype(dtype), jnp.vdot(g_t, d)])
        f_t, s_t = trial[1], trial[2]
        # False for a NaN value or slope: such a trial only ever becomes `hi`.
        sufficient = jnp.isfinite(s_t) & (f_t <= f0 + c1 * t * slope0)
        decrease = sufficient & (f_t < lo[1])
        curvature = jnp.abs(s_t) <= c2 * jnp.abs(slope0)
        # Once the decrease c1 t |g'd| is below the rounding of f, accept a value within
        # rounding (10 eps |f(x)|: Hager & Zhang's approximate Wolfe test, scaled to the dtype)
        # when the curvature condition holds: gradient information stays measurable there.
        within = jnp.isfinite(s_t) & (f_t <= f0 + 10.0 * eps * jnp.abs(f0))
        wolfe = curvature & ((sufficient & (decrease | (lo[0] == 0))) | (within & (lo[0] == 0)))
        # With no bracket yet (hi.t = inf) this is the sign test s_t >= 0 of Alg. 3.5.
        behind = s_t * (hi[0] - lo[0]) >= 0
        flip = decrease & ~curvature & behind
        new_lo = jnp.where(decrease | wolfe, trial, lo)
        new_hi = jnp.where(decrease, jnp.where(flip, lo, hi), trial)
        bracketed = jnp.isfinite(new_hi[0])
        collapsed = bracketed & (
            jnp.abs(new_hi[0] - new_lo[0]) <= eps * jnp.maximum(new_lo[0], new_hi[0])
        )
        t_next = jnp.where(bracketed, _cubic_step(new_lo, new_hi), _EXPAND * t)
        return (
            t_next.astype(dtype),
            new_lo,
            new_hi,
            jnp.where(decrease | wolfe, x_t, x_lo),
            jnp.where(decrease | wolfe, g_t, g_lo),
            wolfe | collapsed,
            evals + 1,
        )

    _, lo, _, x_lo, g_lo, _, evals = lax.while_loop(cond, body, start)
    return x_lo, lo[1], g_lo, evals, ~(lo[0] > 0)


def _cubic_step(lo, hi) -> jax.Array:
    """The safeguarded minimiser of the cubic through ``lo`` and ``hi`` (N&W eq. 3.59).

    ``lo`` and ``hi`` are ``(t, f, slope)``; the midpoint replaces a minimiser outside the
    middle of the bracket or one that does not exist (NaN).
    """
    lo_t, lo_f, lo_s = lo[0], lo[1], lo[2]
    hi_t, hi_f, hi_s = hi[0], hi[1], hi[2]
    width = hi_t - lo_t
    d1 = lo_s + hi_s - 3.0 * (lo_f - hi_f) / (lo_t - hi_t)
    d2 = jnp.sign(width) * jnp.sqrt(d1 * d1 - lo_s * hi_s)  # NaN: no real minimiser
    t = hi_t - width * (hi_s + d2 - d1) / (hi_s - lo_s + 2.0 * d2)
    theta = (t - lo_t) / width
    inside = (theta >= _SAFEGUARD) & (theta <= 1.0 - _SAFEGUARD)  # False for NaN
    return jnp.where(inside, t, lo_t + 0.5 * width)
