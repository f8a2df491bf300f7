"""The arguments of a check: float64 copies, their names, and the layouts of the differentiated
argument (one flat float64 vector and the way back to its pytree) and of its Hessian."""

from __future__ import annotations

import contextlib
import inspect
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lossopt._validation import describe
from lossopt.gradcheck._report import PrecisionWarning

__all__ = [
    "FlatArg",
    "HessianLayout",
    "Subset",
    "arg_names",
    "batch_sizes",
    "is_array",
    "is_floating",
    "leaf_segments",
    "to_jax",
    "to_numpy64",
    "warn_low_precision",
    "x64",
]


def x64() -> contextlib.AbstractContextManager[Any]:
    """A scoped float64 context: ``jax.enable_x64(True)`` (``jax.experimental`` on old JAX)."""
    ctx = getattr(jax, "enable_x64", None)
    if callable(ctx):
        return ctx(True)
    from jax.experimental import enable_x64  # pragma: no cover - JAX < 0.5

    return enable_x64(True)  # pragma: no cover


def is_array(leaf: Any) -> bool:
    return hasattr(leaf, "shape") and hasattr(leaf, "dtype")


def is_floating(dtype: Any) -> bool:
    return bool(jnp.issubdtype(dtype, jnp.floating))


def to_numpy64(tree: Any) -> Any:
    """Array leaves as numpy; floating ones as float64 (complex as complex128)."""

    def convert(leaf: Any) -> Any:
        if not is_array(leaf):
            return leaf
        arr = np.asarray(leaf)
        if is_floating(arr.dtype):
            return arr.astype(np.float64)
        if jnp.issubdtype(arr.dtype, jnp.complexfloating):
            return arr.astype(np.complex128)
        return arr

    return jax.tree_util.tree_map(convert, tree)


def to_jax(tree: Any) -> Any:
    return jax.tree_util.tree_map(
        lambda leaf: jnp.asarray(leaf) if isinstance(leaf, np.ndarray) else leaf, tree
    )


def arg_names(f: Callable[..., Any], nargs: int) -> list[str]:
    """``name (args[i])`` labels from ``f``'s signature where it has them, else ``args[i]``."""
    names = [f"args[{i}]" for i in range(nargs)]
    try:
        params = list(inspect.signature(f).parameters.values())
    except (TypeError, ValueError):
        return names
    positional = [
        p.name for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    for i, name in enumerate(positional[:nargs]):
        names[i] = name
    return names


def warn_low_precision(args: Sequence[Any], names: Sequence[str], func: str,
                       stacklevel: int) -> None:
    """A PrecisionWarning naming the arguments that hold less than float64 precision."""
    low = []
    for name, arg in zip(names, args, strict=True):
        for path, leaf in jax.tree_util.tree_flatten_with_path(arg)[0]:
            if is_array(leaf) and is_floating(leaf.dtype):
                if jnp.finfo(leaf.dtype).bits < 64:
                    low.append(f"{name}{jax.tree_util.keystr(path)} ({np.dtype(leaf.dtype).name})")
    if low:
        warnings.warn(
            f"{func}: {', '.join(low)} carr{'ies' if len(low) == 1 else 'y'} less than float64 "
            "precision. The check runs in float64 on these values, i.e. at the rounded point; "
            "pass float64 inputs to check at the point you meant.",
            PrecisionWarning,
            stacklevel=stacklevel,
        )


def _index_text(path: str, idx: tuple[int, ...], bare: bool) -> str:
    if bare:
        if len(idx) == 1:
            return str(idx[0])
        return "(" + ", ".join(str(i) for i in idx) + ")"
    return path + ("[" + ", ".join(str(i) for i in idx) + "]" if idx else "")


class FlatArg:
    """The differentiated argument as one float64 vector, with the way back to its pytree."""

    def __init__(self, tree: Any, name: str):
        with_path, self.treedef = jax.tree_util.tree_flatten_with_path(tree)
        if not with_path:
            raise ValueError(f"`{name}` (the argument to differentiate) holds no arrays")
        self.name = name
        self.paths: list[str] = []
        self.shapes: list[tuple[int, ...]] = []
        self.python_scalar: list[bool] = []
        chunks = []
        for path, leaf in with_path:
            label = f"{name}{jax.tree_util.keystr(path)}"
            arr = np.asarray(leaf) if is_array(leaf) or isinstance(leaf, (int, float)) else None
            if arr is None or arr.dtype.kind != "f":
                got = describe(leaf)
                raise TypeError(
                    f"`{label}` must hold floating-point values to be differentiated; got {got}"
                )
            self.paths.append(jax.tree_util.keystr(path))
            self.shapes.append(tuple(arr.shape))
            self.python_scalar.append(not isinstance(leaf, np.ndarray))
            chunks.append(arr.astype(np.float64).ravel())
        self.sizes = [math.prod(s) for s in self.shapes]
        self.offsets = list(np.cumsum([0, *self.sizes[:-1]]))
        self.flat = np.concatenate(chunks) if chunks else np.zeros(0)
        self.size = int(self.flat.size)
        self.bare = self.treedef.num_nodes == 1  # a single array, no container

    def scales(self) -> np.ndarray:
        """Per-coordinate scale for finite-difference steps: |x_i|, floored by the leaf's rms."""
        out = np.empty(self.size)
        for off, size in zip(self.offsets, self.sizes, strict=True):
            seg = self.flat[off : off + size]
            rms = float(np.sqrt(np.mean(seg * seg))) if size else 0.0
            floor = 1e-2 * rms if rms > 0 else 1.0
            out[off : off + size] = np.maximum(np.abs(seg), floor)
        return out

    def unflatten_np(self, v: np.ndarray) -> Any:
        leaves = []
        for off, size, shape, scalar in zip(
            self.offsets, self.sizes, self.shapes, self.python_scalar, strict=True
        ):
            seg = np.array(v[off : off + size], dtype=np.float64).reshape(shape)
            leaves.append(np.float64(seg) if scalar and shape == () else seg)
        return jax.tree_util.tree_unflatten(self.treedef, leaves)

    def unflatten_jax(self, v: Any) -> Any:
        leaves = [
            jnp.reshape(v[off : off + size], shape)
            for off, size, shape in zip(self.offsets, self.sizes, self.shapes, strict=True)
        ]
        return jax.tree_util.tree_unflatten(self.treedef, leaves)

    def locate(self, k: int) -> tuple[str, tuple[int, ...]]:
        leaf = int(np.searchsorted(self.offsets, k, side="right") - 1)
        shape = self.shapes[leaf]
        idx = np.unravel_index(k - self.offsets[leaf], shape) if shape else ()
        return self.paths[leaf], tuple(int(i) for i in idx)

    def leaf_of(self, k: int) -> int:
        return int(np.searchsorted(self.offsets, k, side="right") - 1)

    def fmt(self, k: int) -> str:
        path, idx = self.locate(k)
        return _index_text(path, idx, self.bare)

    def describe(self) -> str:
        if self.bare:
            return f"{self.name}, shape {self.shapes[0]}"
        return f"{self.name}, a pytree of {len(self.shapes)} arrays"


class HessianLayout:
    """Entries of the ``(n, n)`` Hessian matrix over the flattened argument."""

    def __init__(self, x: FlatArg):
        self.x = x
        self.n = x.size
        self.size = self.n * self.n
        self.bare = True
        self.paths = [""]
        self.shapes = [(self.n, self.n)]
        self.offsets = [0]
        self.sizes = [self.size]

    def locate(self, k: int) -> tuple[str, tuple[int, ...]]:
        i, j = divmod(int(k), self.n)
        return "", (i, j)

    def leaf_of(self, k: int) -> int:
        return 0

    def fmt(self, k: int) -> str:
        i, j = divmod(int(k), self.n)
        text = f"({i}, {j})"
        if not (self.x.bare and len(self.x.shapes[0]) == 1):
            text += f" [{self.x.name}{self.x.fmt(i)}, {self.x.name}{self.x.fmt(j)}]"
        return text


def batch_sizes(args: Sequence[Any], names: Sequence[str], argnum: int) -> list[tuple[int, str]]:
    """Candidate values of ``n`` for the diagnosis: dimensions and sizes of the arguments."""
    order = [argnum, *[i for i in range(len(args)) if i != argnum]]
    found: dict[int, str] = {}
    for i in order:
        for path, leaf in jax.tree_util.tree_flatten_with_path(args[i])[0]:
            if not is_array(leaf) or not getattr(leaf, "shape", ()):
                continue
            label = f"{names[i]}{jax.tree_util.keystr(path)}"
            shape = tuple(leaf.shape)
            cands = [(shape[0], f"{label}.shape[0]")]
            if len(shape) > 1:
                cands.append((math.prod(shape), f"{label}.size"))
                cands.extend((d, f"{label}.shape[{a}]") for a, d in enumerate(shape[1:], 1))
            for value, where in cands:
                if value > 1 and value not in found:
                    found[value] = where
    return list(found.items())



class Subset:
    """A layout restricted to some entries (used once kinks are set aside)."""

    def __init__(self, layout: Any, keep: np.ndarray):
        self.layout, self.keep = layout, keep
        self.offsets, self.sizes, self.shapes, self.paths = [0], [keep.size], [(keep.size,)], [""]
        self.bare = True

    def fmt(self, k: int) -> str:
        return self.layout.fmt(int(self.keep[k]))


def leaf_segments(layout: Any) -> list[tuple[int, int, tuple[int, ...], str]]:
    return [
        (int(off), int(size), tuple(shape), path)
        for off, size, shape, path in zip(
            layout.offsets, layout.sizes, layout.shapes, layout.paths, strict=True
        )
    ]
