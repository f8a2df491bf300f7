"""Backtracking line search with the Armijo sufficient-decrease condition.

Written once, used by :class:`~lossopt.solvers.GradientDescent`,
:class:`~lossopt.solvers.Newton` and ``LBFGS(line_search="armijo")``. Given a descent direction
``d`` at ``x`` (slope ``g . d < 0``), try ``t = t0, t0 shrink, t0 shrink^2, ...`` and
accept the first that satisfies the Armijo condition ``f(x + t d) <= f(x) + c1 t g . d``
together with a strict decrease ``f(x + t d) < f(x)``. A NaN or Inf trial value fails the test (the
comparison is false), so backtracking also retreats from overflow. The strict decrease makes
the search fail, rather than crawl, once the decrease it can measure is below the rounding of
``f``: with value-based line searches the reachable gradient norm is about
``sqrt(eps * |f*| * lambda_max)`` (``eps`` the machine epsilon), so a smaller ``gtol`` ends in
``LINE_SEARCH_FAILED``. Every trial evaluates ``value_and_grad`` so the accepted point's
gradient is already known: when the first trial is accepted (the usual case) a step costs one
evaluation.

**Trial budget.** By default (``Armijo(scale_budget=True)``) the search may shrink the step
until it no longer moves ``x`` in floating point: it runs at least ``max_steps`` trials and
goes on, if need be, to the first with ``t ||d|| <= eps ||x||`` (``||x||`` taken as 1 at
``x = 0``), about ``log(t0 ||d|| / (eps ||x||)) / log(1 / shrink) + 1`` trials. On Meyer's
function at its standard start (``|g| = 9e10``) gradient descent from ``t0 = 1`` needs 42
trials, 40 were the old limit, and this budget is 78. A search along a direction that does
not descend ends after one trial.

**Warm start.** :func:`next_initial_step` starts a method's next search at
``min(growth * t, t_max)`` from the step ``t`` it accepted last, so a method without a natural
step length (gradient descent) does not pay for the same halvings again at every iteration.

References:
    Nocedal, J. and Wright, S. J. (2006). *Numerical Optimization*, 2nd ed., Springer.
    Section 3.1 (sufficient decrease) and Algorithm 3.1 (backtracking line search).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from lossopt._pytree import PyTree
from lossopt._validation import check_bool, check_choice, check_in_interval, check_positive
from lossopt.solvers._protocol import Objective, pytree_dataclass, static_field
from lossopt.solvers._tree import tree_add_scaled, tree_l2_norm, tree_vdot

__all__ = [
    "Armijo", "LineSearchResult", "armijo_backtrack", "next_initial_step",
    "normalize_line_search",
]


@pytree_dataclass
class Armijo:
    """Parameters of the Armijo backtracking line search.

    Args:
        c1: sufficient-decrease constant in (0, 1); 1e-4 is Nocedal & Wright's choice.
        shrink: factor in (0, 1) applied to the step after each rejected trial.
        growth: warm-start factor (>= 1) for methods without a natural unit step
            (:class:`~lossopt.solvers.GradientDescent`): each search starts at
            ``min(growth * t_prev, learning_rate)``, ``t_prev`` the step accepted by the
            previous one, so a step that shrank is tried twice as long (by default) next time
            instead of restarting from ``learning_rate``. ``growth=inf`` restarts from
            ``learning_rate`` at every iteration. Newton and L-BFGS start every search at their
            natural step ``t = 1`` and do not use it.
        max_steps: trials before the search gives up (static, >= 1); with ``shrink=0.5`` the
            last of them is ``2^(1 - max_steps)`` times the first.
        scale_budget: (static) also keep trying, past ``max_steps``, until the step no longer
            moves ``x``: up to the first trial with ``t ||d|| <= eps ||x||``, so a huge
            gradient does not exhaust the halvings while the step is still far too long.
            ``False``: exactly ``max_steps`` trials.

    Raises:
        ValueError: a parameter outside its range.
        TypeError: ``max_steps`` not an int or ``scale_budget`` not a bool.

    Example:
        >>> a = Armijo(c1=1e-3)
        >>> a.shrink, a.growth, a.max_steps, a.scale_budget
        (0.5, 2.0, 40, True)
    """

    c1: ArrayLike = 1e-4
    shrink: ArrayLike = 0.5
    growth: ArrayLike = 2.0
    max_steps: int = static_field(40)
    scale_budget: bool = static_field(True)

    def __post_init__(self) -> None:
        check_in_interval(self.c1, "c1", 0.0, 1.0)
        check_in_interval(self.shrink, "shrink", 0.0, 1.0)
        check_in_interval(self.growth, "growth", 1.0, float("inf"), closed_low=True,
                          closed_high=True)
        if not isinstance(self.max_steps, int) or isinstance(self.max_steps, bool):
            raise TypeError(f"`max_steps` must be an int >= 1; got {self.max_steps!r}")
        check_positive(self.max_steps, "max_steps")
        check_bool(self.scale_budget, "scale_budget")


def normalize_line_search(
    line_search: str | Armijo | None, name: str = "line_search"
) -> Armijo | None:
    """``None``, ``"armijo"`` or an :class:`Armijo` instance -> ``None`` or ``Armijo``."""
    if line_search is None or isinstance(line_search, Armijo):
        return line_search
    check_choice(line_search, name, [None, "armijo"])
    return Armijo()


class LineSearchResult(NamedTuple):
    """The accepted trial (or the last one tried when ``failed``) and its cost."""

    params: PyTree
    value: jax.Array
    grad: PyTree
    step: jax.Array
    evals: jax.Array
    failed: jax.Array


def next_initial_step(search: Armijo, step: ArrayLike, max_step: ArrayLike) -> jax.Array:
    """The first trial of the next search: ``min(search.growth * step, max_step)``.

    ``step`` is the step the last search accepted; ``max_step`` caps the trial (gradient
    descent's ``learning_rate``).
    """
    return jnp.minimum(search.growth * step, max_step).astype(jnp.result_type(step))


def _trial_budget(search: Armijo, params: Any, direction: Any, t0: jax.Array,
                  slope: jax.Array) -> Any:
    """Trials for one search: ``search.max_steps``, or with ``scale_budget`` at least that and
    enough to reach a step that no longer moves ``x`` (``t ||d|| <= eps ||x||``); one trial
    along a direction that does not descend."""
    if not search.scale_budget:
        return search.max_steps
    dtype = t0.dtype
    x_norm = tree_l2_norm(params).astype(dtype)
    d_norm = tree_l2_norm(direction).astype(dtype)
    scale = jnp.where(x_norm > 0, x_norm, 1.0)
    # log(t0 ||d|| / (eps ||x||)) in logs, so that a huge t0 ||d|| cannot overflow the ratio; a
    # zero t0 or ||d|| gives -inf (no extra trials), a NaN none either.
    log_ratio = (jnp.log(t0) + jnp.log(d_norm) - jnp.log(jnp.finfo(dtype).eps)
                 - jnp.log(scale))
    shrinks = jnp.ceil(log_ratio / -jnp.log(jnp.asarray(search.shrink, dtype)))
    shrinks = jnp.where(jnp.isnan(shrinks), 0.0, shrinks)
    budget = jnp.clip(shrinks, 0, _MAX_SHRINKS).astype(jnp.int32) + 1
    return jnp.where(slope < 0, jnp.maximum(budget, search.max_steps), 1)


# Upper bound of the scale budget: a float64 step cannot shrink by more than max/tiny (~2**2046)
# before it underflows, so more halvings than this never move x (also the cap for an infinite
# ratio).
_MAX_SHRINKS = 2100


def armijo_backtrack(
    search: Armijo,
    objective: Objective,
    params: PyTree,
    value: jax.Array,
    grad: PyTree,
    direction: PyTree,
    initial_step: ArrayLike,
) -> LineSearchResult:
    """Backtrack from ``initial_step`` along ``direction`` until the Armijo condition holds.

    ``failed`` is true when no trial within the budget passes (``search.max_steps``, and with
    ``search.scale_budget`` the scale budget of the module docstring), or when ``direction``
    is not a descent direction (``g . d >= 0`` or NaN; then after one trial): the caller then
    keeps ``params``.
    """
    slope = tree_vdot(grad, direction)
    dtype = value.dtype

    def trial(t):
        p = tree_add_scaled(params, t, direction)
        v, g = objective.value_and_grad(p)
        # The loop's carry starts from (params, value, grad): keep their types.
        return jax.tree.map(lambda new, old: new.astype(old.dtype), (p, v, g),
                            (params, value, grad))

    def accepted(t, v):
        # Written so that a NaN value or slope fails. The strict `v < value` rejects steps whose
        # decrease c1 t |slope| is below the rounding of f: near the optimum the search then
        # fails (LINE_SEARCH_FAILED) instead of accepting steps of zero measurable progress.
        return (slope < 0) & (v <= value + search.c1 * t * slope) & (v < value)

    # One trial inside the loop, the first one included (a do-while: the loop always runs
    # once), so the objective is traced and compiled once here, not twice.
    t0 = jnp.asarray(initial_step, dtype=dtype)
    budget = _trial_budget(search, params, direction, t0, slope)
    start = (t0, params, value, grad, jnp.asarray(0, jnp.int32), jnp.asarray(False))

    def cond(s):
        return ~s[5] & (s[4] < budget)

    def body(s):
        t = jnp.where(s[4] == 0, t0, (s[0] * search.shrink).astype(dtype))
        p, v, g = trial(t)
        return (t, p, v, g, s[4] + 1, accepted(t, v))

    t, p, v, g, evals, ok = lax.while_loop(cond, body, start)
    return LineSearchResult(p, v, g, t, evals, ~ok)
