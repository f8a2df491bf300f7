"""The subgradient method for nonsmooth convex objectives (MAE, pinball, hinge, L1)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lossopt._pytree import PyTree
from lossopt._validation import check_choice, check_finite_scalar, check_positive, concrete_value
from lossopt.solvers._protocol import Objective, StepResult, pytree_dataclass, static_field
from lossopt.solvers._tree import tree_add_scaled, tree_vdot

__all__ = ["Subgradient"]

_SCHEDULES = ("constant", "inverse_sqrt", "polyak")


class SubgradientState(NamedTuple):
    count: Any  # iterations taken, for the schedules
    best_value: Any  # lowest objective seen, for Polyak's estimate of f*


@pytree_dataclass
class Subgradient:
    """The subgradient method ``x_{k+1} = x_k - t_k g_k`` with a chosen step-size schedule.

    ``g_k`` is the (sub)gradient ``jax.grad`` returns; lossopt's losses return the
    minimum-norm subgradient at kinks, so ``g_k = 0`` certifies optimality and the ``gtol`` rule
    can fire. The method is not a descent method: the objective may rise between iterations,
    so :func:`lossopt.minimize` keeps the best iterate in ``Result.best_params`` /
    ``best_value`` -- use those, not ``params``. It usually stops on ``max_iters``.

    Schedules (``k`` counts from 0):

    - ``"constant"``: ``t_k = step_size``. Converges to within ``O(step_size)`` of the optimum.
    - ``"inverse_sqrt"``: ``t_k = step_size / sqrt(k + 1)`` (square summable is not needed;
      ``sum t_k = inf`` and ``t_k -> 0`` give convergence of the best value).
    - ``"polyak"``: ``t_k = max(f(x_k) - f_target_k, 0) / ||g_k||^2`` with
      ``f_target_k = f_star`` when ``f_star`` (the optimal value, or a lower bound on it) is
      given, else the estimate ``f_best_k - step_size / sqrt(k + 1)`` (Boyd's "estimated
      optimal value" rule, ``f_best_k`` the lowest value seen so far).

    Args:
        step_size: the step (constant), its scale (inverse_sqrt) or the estimate's offset scale
            (polyak without ``f_star``); > 0. Required except for ``"polyak"`` with ``f_star``.
        schedule: ``"constant"``, ``"inverse_sqrt"`` or ``"polyak"`` (static).
        f_star: the optimal value for ``"polyak"`` (only there), e.g. 0 for a problem that can
            be fit exactly. A value above the true optimum stalls the method (``t_k = 0``).

    Raises:
        ValueError: an unknown schedule, a missing or non-positive ``step_size``, or
            ``f_star`` given with another schedule.

    Example:
        >>> import jax.numpy as jnp
        >>> import lossopt
        >>> from lossopt.solvers import Subgradient
        >>> f = lambda w: jnp.sum(jnp.abs(w - jnp.array([1.0, -1.0])))  # f* = 0
        >>> res = lossopt.minimize(f, jnp.zeros(2), Subgradient(schedule="polyak", f_star=0.0),
        ...                        max_iters=100)
        >>> print(jnp.round(res.best_params, 3))
        [ 1. -1.]

    References:
        Polyak, B. T. (1987). *Introduction to Optimization*, Optimization Software, Ch. 5.3.
        Boyd, S., Xiao, L. and Mutapcic, A. (2003). Subgradient methods. Lecture notes,
        Stanford EE392o (step-size rules, Sections 2 and 3).
    """

    step_size: ArrayLike | None = None
    schedule: str = static_field("constant")
    f_star: ArrayLike | None = None

    def __post_init__(self) -> None:
        check_choice(self.schedule, "schedule", _SCHEDULES)
        needs_step = not (self.schedule == "polyak" and self.f_star is not None)
        if self.step_size is None and needs_step:
            raise ValueError(
                f"`step_size` is required for schedule={self.schedule!r}"
                + (" without f_star" if self.schedule == "polyak" else "")
                + "; got None"
            )
        if self.step_size is not None:
            check_positive(self.step_size, "step_size")
        if self.f_star is not None:
            if self.schedule != "polyak":
                raise ValueError(
                    f"`f_star` is used only by schedule='polyak'; got f_star={self.f_star!r} "
                    f"with schedule={self.schedule!r}"
                )
            if concrete_value(self.f_star) is not None:
                check_finite_scalar(self.f_star, "f_star")

    @property
    def monotone(self) -> bool:
        """False: the objective can rise between iterations (track ``best_params``)."""
        return False

    def init(
        self, objective: Objective, params: PyTree, value: jax.Array, grad: PyTree
    ) -> SubgradientState:
        return SubgradientState(count=jnp.asarray(0, jnp.int32), best_value=value)

    def step(
        self, objective: Objective, params: PyTree, value: jax.Array, grad: PyTree,
        state: SubgradientState,
    ) -> StepResult:
        dtype = value.dtype
        decay = jnp.sqrt(state.count + 1).astype(dtype)
        if self.schedule == "constant":
            t = jnp.asarray(self.step_size, dtype)
        elif self.schedule == "inverse_sqrt":
            t = self.step_size / decay
        else:
            target = self.f_star if self.f_star is not None else (
                state.best_value - self.step_size / decay
            )
            g2 = tree_vdot(grad, grad)
            gap = jnp.maximum(value - target, 0.0)
            t = jnp.where(g2 > 0, gap / jnp.where(g2 > 0, g2, 1.0), 0.0)
        new_params = tree_add_scaled(params, -t, grad)
        new_value, new_grad = objective.value_and_grad(new_params)
        best = jnp.where(new_value < state.best_value, new_value, state.best_value)
        return StepResult(
            new_params, new_value, new_grad, SubgradientState(state.count + 1, best)
        )
