"""The arguments of minimize's compiled loop: its static spec and its traced inputs.

``_driver._prepare`` validates :func:`lossopt.minimize`'s arguments once and splits them in two
objects that every compiled entry point takes (``_loop``'s solve and chunk entries,
``_implicit``'s differentiable solve and unrolled scan, ``_driver``'s sweep, ``_chunked``'s
host driver):

- :class:`LoopSpec`, frozen and hashable: what the compiled program is built from, the static
  argument of every ``jax.jit`` (with the shapes and dtypes of the traced inputs and the
  solver's static fields, the compile cache key);
- :class:`LoopInputs`, a pytree (a ``NamedTuple``): the arrays and numbers the program reads,
  traced, so new data, new tolerances or a new key reuse the compiled loop.

The solver is passed beside them: a pytree of its own, whose numeric hyperparameters are
traced and whose choices are static fields (a sweep builds one per lane inside its program).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["LoopInputs", "LoopSpec"]


@dataclasses.dataclass(frozen=True)
class LoopSpec:
    """The static part of a solve: equal specs (and equal input shapes) share one compilation.

    Attributes:
        fun: the objective, wrapped in ``lossopt._functions.Function`` by ``_prepare`` so that
            it compares by what it computes (its code and the values it reads), not by identity.
        metrics: ``(name, metric)`` pairs, each metric wrapped likewise.
        max_iters: the iteration cap (it sizes the trace buffers).
        record_every: trace records every this many iterations.
        rules_enabled: whether the ``(gtol, ftol, xtol)`` stopping rules are compiled in (a
            tolerance that is a concrete 0 compiles its rule out).
        has_key: ``fun`` takes a PRNG key (``fun(params, *args, key=k)``, a fresh one per
            iteration).
        batch_size: the minibatch size, or ``None`` for the full data.
    """

    fun: Callable[..., Any]
    metrics: tuple[tuple[str, Callable[..., Any]], ...]
    max_iters: int
    record_every: int
    rules_enabled: tuple[bool, bool, bool]
    has_key: bool = False
    batch_size: int | None = None

    @property
    def stochastic(self) -> bool:
        """Each iteration sees its own objective (a minibatch, a key, or both)."""
        return self.has_key or self.batch_size is not None

    @property
    def n_records(self) -> int:
        """Trace records of a run: the initial point and every ``record_every``-th iteration."""
        return self.max_iters // self.record_every + 1


class LoopInputs(NamedTuple):
    """The traced part of a solve, in the order the compiled programs take their inputs.

    ``init_params`` is ``None`` for the chunk entries that continue from a carry (which holds
    the iterate); ``key`` is ``None`` without a key.
    """

    init_params: Any
    args: tuple[Any, ...]
    metric_args: tuple[Any, ...]
    gtol: Any
    ftol: Any
    xtol: Any
    key: Any = None

    def without_params(self) -> LoopInputs:
        """These inputs for a program that starts from a carry instead of ``init_params``."""
        return self._replace(init_params=None)
