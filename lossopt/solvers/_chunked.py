"""Long runs of :func:`lossopt.minimize`: compiled chunks, progress reports, checkpoints, Ctrl-C.

The host drives the loop in chunks: ``init_chunks`` builds the initial carry, ``run_chunk``
iterates until the run stops or reaches an iteration bound (a traced number, so chunks of any
length share one compilation), and ``finish_chunks`` turns the carry into a :class:`Result`.
The chunk runs the very loop body of the one-loop solve, so the result is bit-identical to
``minimize`` without chunks. Between chunks the host reads four scalars (iteration, done, loss,
gradient norm) to report progress (:mod:`._progress`), writes a checkpoint every
``checkpoint_every`` chunks (:mod:`._checkpoint`: the file format and the run's fingerprint),
and turns a Ctrl-C into a final checkpoint and a partial result with status ``INTERRUPTED`` (a
first Ctrl-C stops the loop when the running chunk ends; a second one stops it at once).
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from lossopt.solvers import _loop
from lossopt.solvers._checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    remove_stale_temporaries,
    run_fingerprint,
    save_checkpoint,
)
from lossopt.solvers._progress import NoBar, Progress, RichBar
from lossopt.solvers._result import Result
from lossopt.solvers._spec import LoopInputs, LoopSpec

__all__ = ["Progress", "run_chunked"]

# Adaptive chunks aim at this many seconds each: a 4 Hz progress bar, and one host round trip
# (about 0.1 ms) per 0.25 s of computation.
_TARGET_CHUNK_SECONDS = 0.25
_FIRST_CHUNK = 8
_MULTI_PROCESS_CHUNK = 1000


class _CtrlC:
    """While the chunked loop runs, a first Ctrl-C asks it to stop at the end of the chunk.

    Python's default SIGINT handler raises ``KeyboardInterrupt`` wherever the main thread
    happens to be when it runs the handler -- possibly inside a finalizer or a weakref callback
    of JAX's caches, where the exception is printed and dropped, so the run would go on. This
    handler only sets a flag that the loop reads after every chunk; a second Ctrl-C raises
    ``KeyboardInterrupt`` at once (the current chunk is then discarded). It is installed only
    in the main thread and only over Python's default handler, and restored on exit.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _CtrlC:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def run_chunked(
    spec: LoopSpec,
    solver: Any,
    inputs: LoopInputs,
    *,
    progress: bool | Callable[[Progress], Any],
    chunk_size: int | None,
    checkpoint_dir: str | os.PathLike[str] | None,
    checkpoint_every: int,
    resume: bool,
    compile: str = "auto",
) -> Result:
    """Run minimize's loop in compiled chunks driven from the host (see the module docstring)."""
    max_iters = spec.max_iters
    # One mode for the three programs, the one the one-call solve would use now: the chunks
    # then compute what it computes, bit for bit (a resumed run: its checkpoint's mode).
    compile = _loop.solve.choice(compile, spec, solver, inputs).mode
    rest = inputs.without_params()  # after the initial carry, the carry holds the iterate
    folder = None if checkpoint_dir is None else Path(checkpoint_dir)
    run_id = run_fingerprint(spec, solver, inputs) if folder is not None else None
    carry = None
    if folder is not None:
        remove_stale_temporaries(folder)
    if resume and folder is not None and (folder / CHECKPOINT_NAME).exists():
        template = _loop.init_chunks.eval_shape(spec, solver, inputs)
        carry, written_in = load_checkpoint(folder / CHECKPOINT_NAME, template, run_id,
                                            max_iters)
        compile = written_in or compile
    if carry is None:
        carry = _loop.init_chunks(compile, spec, solver, inputs)

    if callable(progress):
        report, bar = progress, NoBar()
    elif progress:
        bar = RichBar(max_iters, getattr(spec.fun, "__name__", "minimize"))
        report = bar
    else:
        report, bar = None, NoBar()

    interrupted = False
    chunks = 0
    if chunk_size is None and jax.process_count() > 1:
        # Every process must run the same chunks (their collectives pair up), and adaptive
        # sizes come from each process's own clock: use a fixed size instead.
        chunk_size = _MULTI_PROCESS_CHUNK
    chunk = chunk_size or _FIRST_CHUNK
    iterated = 0.0
    with bar, _CtrlC() as ctrl_c:
        try:
            # Compile the chunk by running it for zero iterations (the bound is the current
            # iteration), so that the timings and the chunk sizes below exclude compilation.
            start_k = k = int(carry.k)
            carry = _loop.run_chunk(compile, spec, solver, carry, rest, np.int32(k))
            done = bool(carry.done)
            while not done:
                if ctrl_c.requested:  # read between chunks: nothing computed is dropped
                    interrupted = True
                    break
                t0 = time.perf_counter()
                stop_at = np.int32(min(k + chunk, max_iters))  # carry.k's type: one compile
                new = _loop.run_chunk(compile, spec, solver, carry, rest, stop_at)
                new_k, done, value, grad_norm, accepted, prev = jax.device_get(
                    (new.k, new.done, new.value, new.grad_norm, new.accepted,
                     (new.prev_value, new.prev_grad_norm))
                )
                elapsed = time.perf_counter() - t0
                carry, chunks, iterated = new, chunks + 1, iterated + elapsed
                ran, k, done = int(new_k) - k, int(new_k), bool(done)
                if chunk_size is None and ran > 0:
                    chunk = max(1, min(8 * chunk, math.ceil(ran * _TARGET_CHUNK_SECONDS
                                                            / max(elapsed, 1e-6))))
                if folder is not None and not done and chunks % checkpoint_every == 0:
                    save_checkpoint(folder, carry, run_id, compile)
                if report is not None:
                    if not accepted:  # a rejected last step: the result is the one before
                        value, grad_norm = prev
                    report(Progress(
                        iteration=k - (not accepted), max_iters=max_iters, value=float(value),
                        grad_norm=float(grad_norm), elapsed=iterated,
                        rate=(k - start_k) / max(iterated, 1e-9), chunks=chunks, done=done,
                    ))
        except KeyboardInterrupt:
            interrupted = True
    if folder is not None:
        save_checkpoint(folder, carry, run_id, compile)
    return _loop.finish_chunks(compile, spec, interrupted, solver, carry, rest)
