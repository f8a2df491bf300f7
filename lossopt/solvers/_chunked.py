"""Long runs of :func:`lossopt.minimize`: compiled chunks, a progress bar, checkpoints, Ctrl-C.

The host drives the loop in chunks: ``init_chunks`` builds the initial carry, ``run_chunk``
iterates until the run stops or reaches an iteration bound (a traced number, so chunks of any
length share one compilation), and ``finish_chunks`` turns the carry into a :class:`Result`.
The chunk runs the very loop body of the one-loop solve, so the result is bit-identical to
``minimize`` without chunks. Between chunks the host reads four scalars (iteration, done, loss,
gradient norm) to report progress, writes a checkpoint every ``checkpoint_every`` chunks, and
turns a Ctrl-C into a final checkpoint and a partial result with status ``INTERRUPTED`` (a first
Ctrl-C stops the loop when the running chunk ends; a second one stops it at once).

A checkpoint is one ``.npz`` file, ``<checkpoint_dir>/checkpoint.npz``, written to a temporary
file and moved into place (``os.replace``), so it is always either the previous checkpoint or
the new one. It holds every leaf of the carry -- parameters, solver state, gradient, trace
buffers, counters, the best iterate and the epoch's permutation of the examples (with the
iteration number and the run's key, the PRNG position) -- and a fingerprint of the run (the
objective's name, the solver and its numeric hyperparameters, tolerances, the shapes of the
data and parameters, the key) that ``resume=True`` checks before it continues.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import signal
import threading
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from lossopt._functions import portable_description
from lossopt.solvers import _loop
from lossopt.solvers._result import Result, Status

CHECKPOINT_NAME = "checkpoint.npz"
_FORMAT = 1
# Adaptive chunks aim at this many seconds each: a 4 Hz progress bar, and one host round trip
# (about 0.1 ms) per 0.25 s of computation.
_TARGET_CHUNK_SECONDS = 0.25
_FIRST_CHUNK = 8
_MULTI_PROCESS_CHUNK = 1000


@dataclasses.dataclass(frozen=True)
class Progress:
    """What a ``progress`` callback receives after every chunk of iterations.

    Attributes:
        iteration: iterations completed so far.
        max_iters: the iteration cap.
        value, grad_norm: the loss and the gradient's max-abs norm at the current iterate.
        elapsed: seconds spent iterating in this call (compilation excluded).
        rate: iterations per second in this call.
        chunks: chunks completed in this call.
        done: the run has stopped (this is the last report).
    """

    iteration: int
    max_iters: int
    value: float
    grad_norm: float
    elapsed: float
    rate: float
    chunks: int
    done: bool


def _fingerprint(static: tuple[Any, ...], solver: Any, traced: tuple[Any, ...]) -> dict[str, Any]:
    fun, metric_items, _, record_every, rules_enabled, stochastic = static
    init_params, args, metric_args, gtol, ftol, xtol, key = traced

    def shapes(tree):
        leaves, treedef = jax.tree.flatten(tree)
        return {"tree": str(treedef),
                "leaves": [[list(np.shape(x)), str(np.asarray(x).dtype) if not hasattr(x, "dtype")
                            else str(x.dtype)] for x in leaves]}

    solver_leaves, solver_def = jax.tree.flatten(solver)
    return {
        # The objective's code and every value it reads (closed-over, defaults, the globals
        # its code names, functools.partial arguments): lossopt._functions.
        "fun": portable_description(fun),
        # Static fields print functions with their (per-process) address: drop it.
        "solver": re.sub(r" at 0x[0-9a-fA-F]+", "", str(solver_def)),
        "solver_hyperparameters": [np.asarray(x).tolist() for x in solver_leaves],
        # What static fields hold: an optax optimizer's closed-over hyperparameters.
        "solver_static": [
            [f.name, portable_description(getattr(solver, f.name))]
            for f in dataclasses.fields(solver) if f.metadata.get("static")
        ] if dataclasses.is_dataclass(solver) else [],
        # Not max_iters: a finished run may be extended with a larger budget (load_checkpoint).
        "record_every": record_every,
        "rules": list(rules_enabled),
        "stochastic": None if stochastic is None else list(stochastic),
        "metrics": [name for name, _ in metric_items],
        "tolerances": [float(np.asarray(t)) for t in (gtol, ftol, xtol)],
        "params": shapes(init_params),
        "args": shapes(args),
        "metric_args": shapes(metric_args),
        "key": None if key is None else np.asarray(jax.random.key_data(key)).tolist(),
    }


def _host_leaf(leaf: Any) -> np.ndarray:
    # In a multi-process run every carry leaf is replicated: any addressable shard is whole.
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        return np.asarray(leaf.addressable_data(0))
    return np.asarray(leaf)


def save_checkpoint(folder: Path, carry: _loop.Carry, fingerprint: dict[str, Any],
                    compile_mode: str | None = None) -> Path:
    """Write ``carry`` to ``folder/checkpoint.npz`` atomically; return the path.

    ``compile_mode`` ("fast" or "optimized") is recorded: a resumed run compiles its chunks
    the same way, so it stays bit-identical to the uninterrupted run.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CHECKPOINT_NAME
    if jax.process_index() != 0:  # one writer; every process reads the same file on resume
        return path
    leaves = [_host_leaf(x) for x in jax.tree.leaves(carry)]
    meta = {"format": _FORMAT, "fingerprint": fingerprint, "iteration": int(leaves[0]),
            "num_leaves": len(leaves), "saved_at": time.time(), "compile_mode": compile_mode}
    from lossopt._io import atomic_path  # fsync, the umask's mode, os.replace

    with atomic_path(path, prefix=".checkpoint-", suffix=".npz.tmp") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, meta=np.asarray(json.dumps(meta)),
                 **{f"leaf_{i:05d}": x for i, x in enumerate(leaves)})
    return path


def _unreadable(path: Path, err: BaseException) -> ValueError:
    """The one error for a checkpoint file that cannot be read, with the reason."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as os_err:
        reason = f"it cannot be opened: {os_err.strerror or os_err}"
    else:
        if size == 0:
            reason = "the file is empty"
        elif head != b"PK\x03\x04":
            reason = "it is not a checkpoint archive (.npz); a stray or overwritten file"
        elif isinstance(err, (zipfile.BadZipFile, EOFError, zlib.error)):
            reason = "the archive is truncated or damaged"
        else:
            reason = f"its contents are damaged ({type(err).__name__}: {err})"
    return ValueError(
        f"checkpoint {str(path)!r} cannot be read ({reason}); delete it to start afresh"
    )


def _read_checkpoint(path: Path) -> tuple[dict[str, Any], list[np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if not isinstance(meta, dict) or not isinstance(meta.get("num_leaves"), int):
                raise ValueError("no leaf count in its metadata")
            leaves = [data[f"leaf_{i:05d}"] for i in range(meta["num_leaves"])]
    except Exception as err:  # every way a damaged file fails: zip, zlib, npy, JSON, keys
        raise _unreadable(path, err) from err
    return meta, leaves


# The carry's per-record buffers: sized by max_iters, so a run extended with a larger budget
# gets them padded (with NaN, as the loop preallocates them).
_BUFFERS = ("loss_buf", "grad_norm_buf", "step_buf")


def _resized(carry: _loop.Carry, template: _loop.Carry) -> _loop.Carry:
    def fit(saved, like):
        saved = np.asarray(saved)
        if saved.shape == like.shape:
            return saved
        out = np.full(like.shape, np.nan, like.dtype)
        n = min(len(saved), len(out))
        out[:n] = saved[:n]
        return out

    changes = {name: fit(getattr(carry, name), getattr(template, name)) for name in _BUFFERS}
    changes["metric_bufs"] = {n: fit(b, template.metric_bufs[n])
                              for n, b in carry.metric_bufs.items()}
    return carry._replace(**changes)


def load_checkpoint(path: Path, template: Any, fingerprint: dict[str, Any],
                    max_iters: int | None = None) -> tuple[Any, str | None]:
    """Read a checkpoint into the structure of ``template`` (a carry of ShapeDtypeStructs);
    return it with the compile mode it was written in (None for older checkpoints).

    A checkpoint written with a smaller ``max_iters`` continues to the new ``max_iters``: its
    trace buffers are extended, and a run that had stopped on its budget (``MAX_ITERS``) is
    reopened. A run that stopped for another reason (converged, non-finite, failed line
    search) stays stopped.

    Raises:
        ValueError: a file that cannot be read (empty, not a checkpoint, truncated or
            damaged: the reason is named), one written by a different run (the fingerprint
            fields that differ are named), or one already past ``max_iters``.
    """
    meta, leaves = _read_checkpoint(path)
    if meta.get("format") != _FORMAT:
        raise ValueError(
            f"checkpoint {str(path)!r} has format {meta.get('format')!r}, expected {_FORMAT}"
        )
    saved = dict(meta.get("fingerprint") or {})
    saved.pop("max_iters", None)  # recorded by checkpoints of earlier versions
    # JSON turns tuples into lists; compare through the same encoding.
    current = json.loads(json.dumps(fingerprint))
    differ = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if differ:
        details = "; ".join(
            f"{k}: checkpoint has {saved.get(k)!r}, this call has {current.get(k)!r}"
            for k in differ
        )
        raise ValueError(
            f"checkpoint {str(path)!r} was written by a different run, so resume=True cannot "
            f"continue it ({details}). Call minimize with the same objective, solver, "
            "options, data shapes and key, or delete the checkpoint (or pass resume=False) "
            "to start afresh."
        )
    expected, treedef = jax.tree.flatten(template)
    if len(expected) != len(leaves):
        raise ValueError(
            f"checkpoint {str(path)!r} does not match this run's loop state (it holds "
            f"{len(leaves)} arrays, this run has {len(expected)}): it may come from another "
            "version of lossopt; delete it to start afresh"
        )
    carry = _resized(jax.tree.unflatten(treedef, leaves), template)
    iteration = int(carry.k)
    if max_iters is not None and iteration > max_iters:
        raise ValueError(
            f"checkpoint {str(path)!r} is at iteration {iteration}, past this call's "
            f"max_iters={max_iters}: pass max_iters >= {iteration} to resume it"
        )
    if (max_iters is not None and iteration < max_iters and bool(carry.done)
            and int(carry.status) == Status.MAX_ITERS and bool(carry.accepted)):
        carry = carry._replace(done=np.asarray(False))  # a larger budget: carry on
    leaves = jax.tree.leaves(carry)
    if any(e.shape != np.shape(x) or e.dtype != np.asarray(x).dtype
           for e, x in zip(expected, leaves, strict=True)):
        raise ValueError(
            f"checkpoint {str(path)!r} does not match this run's loop state (shapes or dtypes "
            "differ): it may come from another version of lossopt; delete it to start afresh"
        )
    mode = meta.get("compile_mode")
    return carry, mode if mode in ("fast", "optimized") else None


def remove_stale_temporaries(folder: Path) -> None:
    """Delete partial checkpoint files that a killed write left behind (one writer a folder)."""
    if jax.process_index() != 0 or not folder.is_dir():
        return
    for stale in folder.glob(".checkpoint-*.npz.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()


class _RichBar:
    """A rich progress bar on stderr: iterations, loss, gradient norm, it/s, time."""

    def __init__(self, max_iters: int, description: str):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  |g| {task.fields[gnorm]}  "
                       "{task.fields[rate]} it/s"),
            TimeElapsedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False,
        )
        self._task = self._bar.add_task(description, total=max_iters, loss="-", gnorm="-",
                                        rate="-")

    def __enter__(self):
        self._bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self._bar.__exit__(*exc)

    def __call__(self, p: Progress) -> None:
        # A run that stops early fills the bar: its total becomes the iterations it took.
        total = p.iteration if p.done else p.max_iters
        self._bar.update(self._task, completed=p.iteration, total=total, loss=f"{p.value:.6g}",
                         gnorm=f"{p.grad_norm:.3g}", rate=f"{p.rate:,.0f}")


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


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
    static: tuple[Any, ...],
    solver: Any,
    traced: tuple[Any, ...],
    *,
    progress: bool | Callable[[Progress], Any],
    chunk_size: int | None,
    checkpoint_dir: str | os.PathLike[str] | None,
    checkpoint_every: int,
    resume: bool,
    compile: str = "auto",
) -> Result:
    """Run minimize's loop in compiled chunks driven from the host (see the module docstring)."""
    max_iters = static[2]
    # One mode for the three programs, the one the one-call solve would use now: the chunks
    # then compute what it computes, bit for bit (a resumed run: its checkpoint's mode).
    compile = _loop.solve.choice(compile, *static, solver, *traced).mode
    rest = traced[1:]  # args, metric_args, gtol, ftol, xtol, key
    folder = None if checkpoint_dir is None else Path(checkpoint_dir)
    fingerprint = _fingerprint(static, solver, traced) if folder is not None else None
    carry = None
    if folder is not None:
        remove_stale_temporaries(folder)
    if resume and folder is not None and (folder / CHECKPOINT_NAME).exists():
        template = _loop.init_chunks.eval_shape(*static, solver, *traced)
        carry, written_in = load_checkpoint(folder / CHECKPOINT_NAME, template, fingerprint,
                                            max_iters)
        compile = written_in or compile
    if carry is None:
        carry = _loop.init_chunks(compile, *static, solver, *traced)

    if callable(progress):
        report, bar = progress, _NoBar()
    elif progress:
        bar = _RichBar(max_iters, getattr(static[0], "__name__", "minimize"))
        report = bar
    else:
        report, bar = None, _NoBar()

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
            carry = _loop.run_chunk(compile, *static, solver, carry, *rest, np.int32(k))
            done = bool(carry.done)
            while not done:
                if ctrl_c.requested:  # read between chunks: nothing computed is dropped
                    interrupted = True
                    break
                t0 = time.perf_counter()
                stop_at = np.int32(min(k + chunk, max_iters))  # carry.k's type: one compile
                new = _loop.run_chunk(compile, *static, solver, carry, *rest, stop_at)
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
                    save_checkpoint(folder, carry, fingerprint, compile)
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
        save_checkpoint(folder, carry, fingerprint, compile)
    return _loop.finish_chunks(compile, *static, interrupted, solver, carry, *rest)
