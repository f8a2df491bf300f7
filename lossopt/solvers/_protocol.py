"""What a solver is: a frozen pytree dataclass with pure ``init`` and ``step``.

This module holds the pieces every solver shares and nothing else:

- :func:`pytree_dataclass` and :func:`static_field` (defined in :mod:`lossopt._pytree`): a
  frozen dataclass registered as a pytree whose numeric hyperparameters are leaves (so
  ``jax.vmap`` can sweep them) and whose choices (line search kind, linear solver, schedule)
  are static auxiliary data (so they select code at trace time and key the compilation cache).
- :class:`Objective`: ``fun(params, *args)`` with its data bound inside the compiled loop.
- :class:`StepResult`: what one ``step`` returns to :func:`lossopt.minimize`.
- :class:`Solver`: the structural protocol (no base class: concrete solvers do not inherit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

# The pytree dataclass helpers live in lossopt._pytree (shared with lossopt.prox); the solvers
# import them from here with the rest of the protocol.
from lossopt._pytree import (
    PyTree,
    is_literal_zero,
    leaf_unless_zero,
    pytree_dataclass,
    static_field,
)

__all__ = [
    "Objective", "Solver", "StepResult", "is_literal_zero", "leaf_unless_zero",
    "pytree_dataclass", "static_field",
]


class Objective:
    """``fun(params, *args)`` with ``args`` bound; used only while tracing the solve.

    ``args`` are the traced data arguments of the compiled loop, so binding them here does
    not bake data into the compiled program.
    """

    def __init__(self, fun: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fun = fun
        self.args = args

    def value(self, params: PyTree) -> jax.Array:
        """The objective's value; raises TypeError (at trace time) unless it is a real scalar."""
        out = self.fun(params, *self.args)
        shape = getattr(out, "shape", None)
        dtype = getattr(out, "dtype", None)
        if shape is None or tuple(shape) != () or not jnp.issubdtype(dtype, jnp.floating):
            got = f"shape {tuple(shape)} and dtype {dtype}" if shape is not None else repr(out)
            raise TypeError(
                "`fun(params, *args)` must return a real floating scalar (shape ()); got "
                f"{got}. Reduce it with .mean() or .sum(), e.g. reduction='mean' in lossopt losses."
            )
        return out

    def value_and_grad(self, params: PyTree) -> tuple[jax.Array, PyTree]:
        """``(value, grad)`` at ``params`` with one reverse pass."""
        return jax.value_and_grad(self.value)(params)


class StepResult(NamedTuple):
    """One solver step, as returned to :func:`lossopt.minimize`.

    Attributes:
        params: the proposed next iterate (same pytree as the current one).
        value: the objective at ``params``.
        grad: the gradient at ``params``.
        state: the solver's next state.
        fun_evals, grad_evals, hess_evals, hvp_evals: evaluations spent by this step (line
            search trials included; a discarded trial still counts).
        failed: True when the step could not be taken (a line search that found no decrease);
            ``params`` is then discarded and the run stops with ``LINE_SEARCH_FAILED``.
    """

    params: PyTree
    value: jax.Array
    grad: PyTree
    state: PyTree
    fun_evals: ArrayLike = 1
    grad_evals: ArrayLike = 1
    hess_evals: ArrayLike = 0
    hvp_evals: ArrayLike = 0
    failed: ArrayLike = False


@runtime_checkable
class Solver(Protocol):
    """The structural interface :func:`lossopt.minimize` drives.

    ``init(objective, params, value, grad) -> state`` and
    ``step(objective, params, value, grad, state) -> StepResult``, both pure; ``value`` and
    ``grad`` are the objective at ``params`` (already computed by the driver or the previous
    step). ``monotone`` tells the driver whether every accepted step decreases the objective;
    when it does not, the driver also keeps the best iterate seen (``Result.best_params``).
    An optional int attribute ``iteration_estimate`` bounds the iterations a run of the method
    usually takes (Newton: 100); ``compile="auto"`` then estimates the run's cost with it
    instead of ``max_iters``.

    An optional method ``measure(objective, params, value, grad, state) -> (value, residual)``
    changes what the loop reports and tests at an iterate (the initial point and every new
    one, ``state`` the solver's state there): the returned ``value`` replaces the objective's
    in the carry, the trace, ``Result.value``, the ``ftol`` rule and the best-iterate
    tracking, and the max-abs norm of the pytree ``residual`` replaces the gradient's in
    ``Result.grad_norm``, the trace and the ``gtol`` rule. ``init`` still receives the
    objective's own value and gradient; ``step`` receives the measured value and the
    objective's gradient. A composite solver (:class:`~lossopt.solvers.ProximalGradient`)
    returns ``F = f + g`` and its gradient mapping. A solver without it compiles exactly as
    before (the loop branches on its presence in Python).
    """

    @property
    def monotone(self) -> bool: ...

    def init(
        self, objective: Objective, params: PyTree, value: jax.Array, grad: PyTree
    ) -> PyTree: ...

    def step(
        self, objective: Objective, params: PyTree, value: jax.Array, grad: PyTree, state: PyTree
    ) -> StepResult: ...
