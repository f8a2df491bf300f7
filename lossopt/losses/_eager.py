"""A loss called on concrete arrays runs as one compiled program, its inputs still validated.

Called outside any JAX transformation, a loss written with ``jax.numpy`` runs operation by
operation, and JAX compiles every operation separately for each new shape: Huber's first call
on 64 values compiled eight one-operation programs (0.69-0.74 s on 2 cores) and a later call
dispatched them one by one (about 0.4 ms). :func:`compiled_eager` makes such a call compile the
whole loss once per shape and options (0.13-0.17 s) and run it in one dispatch.

Validation keeps its meaning:

- checks of shapes, dtypes and options run while the loss is traced, with the same errors;
- checks of *values* (labels in range, probabilities that sum to 1, non-negative weights) go
  through :func:`lossopt._validation.when_concrete`: while the loss is traced they record what
  they check, the program returns those values, and each check then runs on the host on this
  call's values, before the loss is returned: the same error and message as an uncompiled call;
- any error while tracing or compiling makes the call run uncompiled, which raises the loss's
  own error with its own traceback; a loss and option set that cannot be traced with array
  inputs (one that needs a concrete value to choose what to compute) then stays uncompiled.

Arrays (``jax.Array``, ``numpy.ndarray``) are the program's inputs; every other argument
(strings, Python numbers, ``None``, booleans) is a static option, part of the program's key:
a new value compiles a new program, up to :data:`MAX_OPTION_SETS` option sets per loss (a
loop over many values of a float option runs op by op after that; pass the value as an array
to make it an input instead).
An argument of another kind (a list, a callable) makes the call run uncompiled.

Under JAX's eager transformations -- ``grad``, ``jvp``, ``vjp``, ``jacfwd``, ``hessian``,
``vmap`` and their nestings, called without a ``jit`` around them -- the same compiled call
is used, with the transformation's tracers as inputs: JAX differentiates and batches a
``jax.jit`` call as a whole (its linearisation, transpose or batched program compiled once),
where the loss as written would have each of its operations compiled and dispatched forward
and backward (Huber's eager ``jax.grad``: 3 compiles instead of 22). A value check whose
values depend on the transformation's traced inputs is unknown there and skipped, as
``when_concrete`` skips it in the loss as written; one whose values do not (labels, weights)
comes back concrete and runs. Inside a trace that stages a program (a user's ``jit``, a
``lax.while_loop`` body, ``jax.checkpoint``; arrays closed over included) the loss is traced
into the caller's program exactly as written. ``LOSSOPT_EAGER_JIT=0`` turns all of this off.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from lossopt._validation import PENDING_CHECKS

__all__ = ["compiled_eager"]

_ARRAYS = (jax.Array, np.ndarray)
# Option sets compiled per loss; calls with further ones run uncompiled. A loop over many
# values of a float option (Python numbers are static: each value is a program of its own)
# then compiles at most this many programs, op by op after that, as before.
MAX_OPTION_SETS = 16

try:  # True outside every JAX trace (a user's jit/grad/vmap, closed-over arrays included)
    from jax._src.core import trace_state_clean as _outside_traces
except ImportError:  # a JAX without it: losses run uncompiled, as they were written
    def _outside_traces() -> bool:
        return False

try:  # JAX's eager transformations: each operation is computed when it is called
    from jax._src.core import EvalTrace as _EvalTrace
    from jax._src.core import trace_ctx as _trace_ctx
    from jax._src.interpreters.ad import JVPTrace, LinearizeTrace
    from jax._src.interpreters.batching import BatchTrace

    _EAGER_TRACES: tuple[type, ...] = (JVPTrace, LinearizeTrace, BatchTrace)

    def _only_eager_transforms() -> bool:
        """True under ``grad``/``jvp``/``vjp``/``jacfwd``/``hessian``/``vmap`` called outside
        ``jit`` (any nesting of them): no trace between the call and the top level stages a
        program, so the loss's own ``jax.jit`` would run as one compiled call (these
        transformations differentiate and batch a ``jax.jit`` call as a whole)."""
        trace = _trace_ctx.trace
        while isinstance(trace, _EAGER_TRACES):
            trace = trace.parent_trace
        return isinstance(trace, _EvalTrace)
except (ImportError, AttributeError):  # another JAX: such calls run as written
    def _only_eager_transforms() -> bool:
        return False


def _signature(x: Any) -> tuple[Any, ...]:
    if isinstance(x, jax.core.Tracer):
        x = x.aval
    return (x.shape, x.dtype, getattr(x, "weak_type", False))  # hashable as they are


class _Compiled:
    """The compiled calls of one loss: one ``jax.jit`` per static option set."""

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn
        self.sig = inspect.signature(fn)
        self.jits: dict[tuple, Callable[..., Any]] = {}
        # (static options, input signatures) -> the value checks recorded by its trace
        self.checks: dict[tuple, list[Callable[..., None]]] = {}
        # (static options, outside every trace) that cannot be traced: run as written
        self.uncompiled: set[tuple] = set()
        self.traced = threading.local()
        self.lock = threading.Lock()

    def _jit(self, static: tuple) -> Callable[..., Any]:
        jitted = self.jits.get(static)
        if jitted is None:
            options = {name: value for name, _, value in static}

            def program(dynamic: dict[str, Any]):
                pending: list = []
                token = PENDING_CHECKS.set(pending)
                try:
                    arguments = {**options, **dynamic}
                    bound = inspect.BoundArguments(self.sig, {
                        name: arguments[name] for name in self.sig.parameters
                        if name in arguments})
                    out = self.fn(*bound.args, **bound.kwargs)
                finally:
                    PENDING_CHECKS.reset(token)
                self.traced.checks = [check for check, _ in pending]
                return out, [list(xs) for _, xs in pending]

            program.__name__ = program.__qualname__ = self.fn.__name__  # jit(huber) in logs
            jitted = jax.jit(program)
            with self.lock:
                self.jits[static] = jitted
        return jitted

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        outside = _outside_traces()
        if not outside and not _only_eager_transforms():
            return self.fn(*args, **kwargs)  # traced into the caller's program, as written
        try:
            bound = self.sig.bind(*args, **kwargs)
        except TypeError:
            return self.fn(*args, **kwargs)  # the loss's own error for a wrong call
        static, dynamic = [], {}
        for name, value in bound.arguments.items():
            if outside and isinstance(value, jax.core.Tracer):  # one that outlived its trace
                return self.fn(*args, **kwargs)  # the loss's own error
            if isinstance(value, _ARRAYS):  # an eager transformation's tracers are jax.Arrays
                if value.dtype.kind not in "biuf":  # strings, objects, complex: its own error
                    return self.fn(*args, **kwargs)
                dynamic[name] = value
            elif value is None or isinstance(value, (str, bool, int, float, np.generic)):
                # The type is part of the key: True and 1, 1 and 1.0 are validated apart.
                static.append((name, type(value), value))
            else:
                return self.fn(*args, **kwargs)
        static_key = tuple(static)
        if (not dynamic or (static_key, outside) in self.uncompiled
                or (static_key not in self.jits and len(self.jits) >= MAX_OPTION_SETS)):
            return self.fn(*args, **kwargs)
        key = (static_key, tuple((n, _signature(v)) for n, v in dynamic.items()))
        self.traced.checks = None
        try:
            out, checked = self._jit(static_key)(dynamic)
        except Exception:
            result = self.fn(*args, **kwargs)  # raises the loss's own error, if it has one
            with self.lock:  # it has none: these options need concrete values (or, under
                self.uncompiled.add((static_key, outside))  # a transformation, its own rule)
            return result
        checks = self.traced.checks
        if checks is not None:
            with self.lock:
                self.checks[key] = checks
        else:
            checks = self.checks.get(key)
            if checks is None:  # served from a cache this key does not describe: be safe
                return self.fn(*args, **kwargs)
        for check, values in zip(checks, checked, strict=True):
            # Under a transformation a value that depends on its traced inputs is unknown, and
            # unchecked (as `when_concrete` leaves it in an uncompiled call); one that does not
            # (labels, weights, options) comes back concrete and is checked.
            if not any(isinstance(v, jax.core.Tracer) for v in values):
                check(*(np.asarray(v) for v in values))
        return out


def compiled_eager(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` compiled when called on concrete arrays (see the module docstring)."""
    compiled = _Compiled(fn)

    @functools.wraps(fn)
    def loss(*args: Any, **kwargs: Any) -> Any:
        if os.environ.get("LOSSOPT_EAGER_JIT") == "0":
            return fn(*args, **kwargs)
        return compiled(*args, **kwargs)

    loss._compiled = compiled  # for tests: the compiled programs and checks of this loss
    return loss
