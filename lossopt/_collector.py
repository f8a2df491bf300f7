"""Python's cyclic garbage collector paused while lossopt traces, lowers and compiles a program.

Tracing a solver loop creates tens of thousands of Python objects (jaxpr variables,
equations, MLIR operations: 33,000 in a first Newton call on 500 x 10 logistic regression,
23,000 still alive after it), most of which stay alive until the program is built. Each new
batch of survivors makes CPython's collector walk every tracked object of the process -- JAX,
NumPy and SciPy's modules included: one full collection took 0.055-0.074 s of a first call of
0.35-0.9 s (500 x 10 logistic regression, gradient descent, L-BFGS, Newton; 2 cores, CPython
3.11), and garbage collection took 0.8 s of a 10 s ``lossopt run real_data.toml --quick``
(``experiments/benchmarks/RESULTS.md``, seventh round). Collecting during the build buys
little: what it could free (10,000 objects after that Newton call) is as well freed by the
first collection after the build, and acyclic garbage is freed by reference counting whether
the collector runs or not.

:func:`collector_paused` turns automatic collection off for the duration of a build and back
on at its end. It nests and is thread-safe (``lossopt run`` compiles in background threads
while its main thread traces): the collector is off while any build is in progress, and
switched back on when the last one ends, only if it was on when the first began (a program
that turned it off itself keeps it off). Nothing is skipped: the garbage of a build is
collected by the first collection after it. Inside the window the setting is process-wide,
as any :mod:`gc` setting is; ``LOSSOPT_GC_PAUSE=0`` leaves the collector alone.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from collections.abc import Iterator

__all__ = ["collector_paused"]

_lock = threading.Lock()
_depth = 0
_resume = False  # whether the collector was on when the outermost pause began


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Automatic garbage collection off while the block runs (see the module docstring)."""
    global _depth, _resume
    if os.environ.get("LOSSOPT_GC_PAUSE") == "0":
        yield
        return
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.enable()
