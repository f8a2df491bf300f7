"""Solver checkpoints: the run's fingerprint and the one-file ``.npz`` format.

A checkpoint is one ``.npz`` file, ``<checkpoint_dir>/checkpoint.npz``, written through
:func:`lossopt._io.atomic_path` (a temporary file, synced and moved into place), so it is always
either the previous checkpoint or the new one. It holds every leaf of the loop's carry --
parameters, solver state, gradient, trace buffers, counters, the best iterate and the epoch's
permutation of the examples (with the iteration number and the run's key, the PRNG position) --
and a fingerprint of the run (the objective's code and the values it reads, the solver and its
numeric hyperparameters, tolerances, the shapes of the data and parameters, the key) that
``resume=True`` checks before it continues. :mod:`lossopt.solvers._chunked` drives the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any

import jax
import numpy as np

from lossopt._functions import portable_description
from lossopt._io import atomic_path
from lossopt.solvers import _loop
from lossopt.solvers._result import Status
from lossopt.solvers._spec import LoopInputs, LoopSpec

__all__ = ["CHECKPOINT_NAME", "load_checkpoint", "remove_stale_temporaries", "run_fingerprint",
           "save_checkpoint"]

CHECKPOINT_NAME = "checkpoint.npz"
_FORMAT = 1


def run_fingerprint(spec: LoopSpec, solver: Any, inputs: LoopInputs) -> dict[str, Any]:
    """What identifies a run for ``resume=True``: JSON-ready, stable across processes."""
    gtol, ftol, xtol, key = inputs.gtol, inputs.ftol, inputs.xtol, inputs.key

    def shapes(tree):
        leaves, treedef = jax.tree.flatten(tree)
        return {"tree": str(treedef),
                "leaves": [[list(np.shape(x)), str(np.asarray(x).dtype) if not hasattr(x, "dtype")
                            else str(x.dtype)] for x in leaves]}

    solver_leaves, solver_def = jax.tree.flatten(solver)
    return {
        # The objective's code and every value it reads (closed-over, defaults, the globals
        # its code names, functools.partial arguments): lossopt._functions.
        "fun": portable_description(spec.fun),
        # Static fields print functions with their (per-process) address: drop it.
        "solver": re.sub(r" at 0x[0-9a-fA-F]+", "", str(solver_def)),
        "solver_hyperparameters": [np.asarray(x).tolist() for x in solver_leaves],
        # What static fields hold: an optax optimizer's closed-over hyperparameters.
        "solver_static": [
            [f.name, portable_description(getattr(solver, f.name))]
            for f in dataclasses.fields(solver) if f.metadata.get("static")
        ] if dataclasses.is_dataclass(solver) else [],
        # Not max_iters: a finished run may be extended with a larger budget (load_checkpoint).
        "record_every": spec.record_every,
        "rules": list(spec.rules_enabled),
        "stochastic": [spec.has_key, spec.batch_size] if spec.stochastic else None,
        "metrics": [name for name, _ in spec.metrics],
        "tolerances": [float(np.asarray(t)) for t in (gtol, ftol, xtol)],
        "params": shapes(inputs.init_params),
        "args": shapes(inputs.args),
        "metric_args": shapes(inputs.metric_args),
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
