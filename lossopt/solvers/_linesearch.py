"""Backtracking line search with the Armijo sufficient-decrease condition.

Written once, used by :class:`~lossopt.solvers.GradientDescent` and
:class:`~lossopt.solvers.Newton`. Given a descent direction ``d`` at ``x`` (slope
``g . d < 0``), try ``t = t0, t0 * shrink, t0 * shrink**2, ...`` and accept the first that
satisfies the Armijo condition

.. math::  f(x + t d) \\le f(x) + c_1\\, t\\, g^\\top d

together with a strict decrease ``f(x + t d) < f(x)``. A NaN or Inf trial value fails the test (the
comparison is false), so backtracking also retreats from overflow. The strict decrease makes
the search fail, rather than crawl, once the decrease it can measure is below the rounding of
``f``: with value-based line searches the reachable gradient norm is about
``sqrt(eps * |f*| * lambda_max)`` (``eps`` the machine epsilon), so a smaller ``gtol`` ends in
``LINE_SEARCH_FAILED``. Every trial evaluates ``value_and_grad`` so the accepted point's
gradient is already known: when the first trial is accepted (the usual case) a step costs one
evaluation.

References:
    Nocedal, J. and Wright, S. J. (2006). *Numerical Optimization*, 2nd ed., Springer.
    Section 3.1 (sufficient decrease) and Algorithm 3.1 (backtracking line search).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from lossopt._validation import check_choice, check_in_interval, check_positive
from lossopt.solvers._protocol import Objective, pytree_dataclass, static_field
from lossopt.solvers._tree import tree_add_scaled, tree_vdot

__all__ = ["Armijo", "LineSearchResult", "armijo_backtrack", "normalize_line_search"]


@pytree_dataclass
class Armijo:
    """Parameters of the Armijo backtracking line search.

    Args:
        c1: sufficient-decrease constant in (0, 1); 1e-4 is Nocedal & Wright's choice.
        shrink: factor in (0, 1) applied to the step after each rejected trial.
        max_steps: trials before the search gives up (static; at least 1). With
            ``shrink=0.5`` the last trial is ``2**-(max_steps-1)`` times the first.

    Raises:
        ValueError: a parameter outside its range.

    Example:
        >>> Armijo(c1=1e-3).shrink
        0.5
    """

    c1: Any = 1e-4
    shrink: Any = 0.5
    max_steps: int = static_field(40)

    def __post_init__(self) -> None:
        check_in_interval(self.c1, "c1", 0.0, 1.0)
        check_in_interval(self.shrink, "shrink", 0.0, 1.0)
        if not isinstance(self.max_steps, int) or isinstance(self.max_steps, bool):
            raise TypeError(f"`max_steps` must be an int >= 1; got {self.max_steps!r}")
        check_positive(self.max_steps, "max_steps")


def normalize_line_search(line_search: Any, name: str = "line_search") -> Armijo | None:
    """``None``, ``"armijo"`` or an :class:`Armijo` instance -> ``None`` or ``Armijo``."""
    if line_search is None or isinstance(line_search, Armijo):
        return line_search
    check_choice(line_search, name, [None, "armijo"])
    return Armijo()


class LineSearchResult(NamedTuple):
    """The accepted trial (or the last one tried when ``failed``) and its cost."""

    params: Any
    value: jax.Array
    grad: Any
    step: jax.Array
    evals: jax.Array
    failed: jax.Array


def armijo_backtrack(
    search: Armijo,
    objective: Objective,
    params: Any,
    value: jax.Array,
    grad: Any,
    direction: Any,
    initial_step: Any,
) -> LineSearchResult:
    """Backtrack from ``initial_step`` along ``direction`` until the Armijo condition holds.

    ``failed`` is true when no trial within ``search.max_steps`` passes, or when
    ``direction`` is not a descent direction (``g . d >= 0`` or NaN): the caller then keeps
    ``params``.
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
    start = (t0, params, value, grad, jnp.asarray(0, jnp.int32), jnp.asarray(False))

    def cond(s):
        return ~s[5] & (s[4] < search.max_steps)

    def body(s):
        t = jnp.where(s[4] == 0, t0, (s[0] * search.shrink).astype(dtype))
        p, v, g = trial(t)
        return (t, p, v, g, s[4] + 1, accepted(t, v))

    t, p, v, g, evals, ok = lax.while_loop(cond, body, start)
    return LineSearchResult(p, v, g, t, evals, ~ok)
