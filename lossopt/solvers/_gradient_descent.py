"""Gradient descent with optional momentum, Nesterov acceleration, clipping and line search."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lossopt._pytree import PyTree
from lossopt._validation import check_in_interval, check_positive
from lossopt.solvers._linesearch import (
    Armijo,
    armijo_backtrack,
    next_initial_step,
    normalize_line_search,
)
from lossopt.solvers._protocol import (
    Objective,
    StepResult,
    is_literal_zero,
    leaf_unless_zero,
    pytree_dataclass,
    static_field,
)
from lossopt.solvers._tree import (
    tree_add_scaled,
    tree_l2_norm,
    tree_scale,
    tree_vdot,
    tree_where,
)

__all__ = ["GradientDescent"]


class GradientDescentState(NamedTuple):
    velocity: Any  # the momentum buffer, a pytree like params (None without momentum)
    initial_step: Any  # the line search's next first trial (None without a line search)


@pytree_dataclass
class GradientDescent:
    """Gradient descent, optionally with heavy-ball or Nesterov momentum, a global-norm clip
    of the gradient, and an Armijo backtracking line search.

    With ``g_k`` the gradient (rescaled to norm ``clip_norm`` when it is longer), momentum
    ``mu`` and learning rate ``lr``, an iteration sets ``v_{k+1} = mu v_k + g_k``, the update
    ``u_k = v_{k+1}`` (heavy ball) or ``u_k = g_k + mu v_{k+1}`` (Nesterov), and
    ``x_{k+1} = x_k - t_k u_k``, with ``t_k = lr`` (``line_search=None``) or, with
    ``line_search="armijo"``, the first of ``s_k, s_k shrink, s_k shrink^2, ...`` satisfying
    the Armijo condition, warm-started at ``s_0 = lr`` and ``s_k = min(growth * t_{k-1}, lr)``
    (``growth`` of the :class:`~lossopt.solvers.Armijo`, 2 by default): ``lr`` is the longest
    step tried, and a search does not repeat the previous iteration's halvings (with
    ``growth=inf`` every search starts at ``lr``). With a line search, a momentum direction that
    is not a descent direction (``g . u <= 0``) is replaced by the gradient and the velocity reset,
    which makes the method monotone. ``momentum=0`` is plain gradient descent.

    Args:
        learning_rate: step size (> 0), or with a line search the longest step tried; a
            pytree leaf, so ``jax.vmap`` can sweep it.
        momentum: momentum coefficient in [0, 1).
        nesterov: use Nesterov's look-ahead form (static).
        line_search: ``None``, ``"armijo"`` or an :class:`~lossopt.solvers.Armijo` with custom
            parameters.
        clip_norm: if given (> 0), rescale the gradient to this Euclidean norm when longer.

    Raises:
        ValueError: a hyperparameter outside its range, or an unknown ``line_search``.

    Example:
        >>> import jax.numpy as jnp
        >>> import lossopt
        >>> from lossopt.solvers import GradientDescent
        >>> def f(w, c):
        ...     return jnp.sum((w - c) ** 2)
        >>> res = lossopt.minimize(f, jnp.zeros(2), GradientDescent(learning_rate=0.1),
        ...                        args=(jnp.array([1.0, -2.0]),))
        >>> print(res.status.name, jnp.round(res.params, 4))
        CONVERGED [ 1. -2.]

    References:
        Polyak, B. T. (1964). Some methods of speeding up the convergence of iteration methods.
        Nesterov, Y. (1983). A method for solving the convex programming problem with
        convergence rate O(1/k^2). Nocedal & Wright (2006), *Numerical Optimization*, Ch. 3.
    """

    learning_rate: ArrayLike
    momentum: ArrayLike = leaf_unless_zero(0.0)
    nesterov: bool = static_field(False)
    line_search: str | Armijo | None = None
    clip_norm: ArrayLike | None = None

    def __post_init__(self) -> None:
        check_positive(self.learning_rate, "learning_rate")
        check_in_interval(self.momentum, "momentum", 0.0, 1.0, closed_low=True)
        if not isinstance(self.nesterov, bool):
            raise TypeError(f"`nesterov` must be a bool; got {self.nesterov!r}")
        object.__setattr__(self, "line_search", normalize_line_search(self.line_search))
        if self.clip_norm is not None:
            check_positive(self.clip_norm, "clip_norm")

    @property
    def monotone(self) -> bool:
        """True with a line search: every accepted step decreases the objective."""
        return self.line_search is not None

    def init(
        self, objective: Objective, params: PyTree, value: jax.Array, grad: PyTree
    ) -> GradientDescentState:
        # Nothing is carried or compiled for a feature that is off: no momentum buffer for a
        # literal momentum of 0, no warm-start step without a line search.
        velocity = None if is_literal_zero(self.momentum) else tree_scale(0.0, params)
        initial_step = None
        if self.line_search is not None:
            initial_step = jnp.asarray(self.learning_rate, jnp.result_type(value))
        return GradientDescentState(velocity=velocity, initial_step=initial_step)

    def step(
        self, objective: Objective, params: PyTree, value: jax.Array, grad: PyTree,
        state: GradientDescentState,
    ) -> StepResult:
        g = grad
        if self.clip_norm is not None:
            norm = tree_l2_norm(g)
            scale = jnp.where(norm > self.clip_norm, self.clip_norm / norm, 1.0)
            g = tree_scale(scale, g)
        if state.velocity is None:  # momentum is a literal 0: plain (clipped) gradient steps
            velocity, u = None, g
        else:
            velocity = tree_add_scaled(g, self.momentum, state.velocity)
            u = tree_add_scaled(g, self.momentum, velocity) if self.nesterov else velocity

        if self.line_search is None:
            new_params = tree_add_scaled(params, -self.learning_rate, u)
            new_value, new_grad = objective.value_and_grad(new_params)
            return StepResult(new_params, new_value, new_grad,
                              GradientDescentState(velocity, None))

        if velocity is not None:
            # Keep the momentum direction only while it descends; otherwise restart from -g.
            descends = tree_vdot(grad, u) > 0
            u = tree_where(descends, u, g)
            velocity = tree_where(descends, velocity, g)
        direction = tree_scale(-1.0, u)
        ls = armijo_backtrack(
            self.line_search, objective, params, value, grad, direction, state.initial_step
        )
        initial_step = next_initial_step(self.line_search, ls.step, self.learning_rate)
        return StepResult(
            ls.params,
            ls.value,
            ls.grad,
            GradientDescentState(velocity, initial_step.astype(state.initial_step.dtype)),
            fun_evals=ls.evals,
            grad_evals=ls.evals,
            failed=ls.failed,
        )
