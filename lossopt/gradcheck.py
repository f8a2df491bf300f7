"""Check a hand-derived gradient or Hessian, and say what is wrong with it.

:func:`check_gradient` compares ``grad_f(*args)`` with the gradient of ``f(*args)`` with respect
to ``args[argnum]`` (an array or any pytree of arrays); :func:`check_hessian` does the same for a
Hessian. The reference is

* **autodiff** (``jax.grad`` / ``jax.hessian``) when ``f`` is JAX-traceable, or
* **finite differences** when ``f`` is plain numpy that JAX cannot trace: central differences with
  a step scaled to each coordinate (a power of two, so ``x + h`` is exact), Richardson
  extrapolation (error ``O(h**4)``), an error estimate per entry (truncation + round-off) that
  widens the tolerance where the reference is less accurate, and adaptive step reduction that
  steps off nearby kinks and domain boundaries. In float64 the reference is typically accurate to
  ``1e-10`` relative, so a ``1e-6`` relative error in a hand gradient is caught.

Everything is computed in float64 inside a scoped ``jax.enable_x64(True)`` context, whatever the
global JAX setting (which is never changed); inputs that carry less precision (float32 arrays)
trigger a :class:`PrecisionWarning`.

A mismatch is explained, not just reported (:attr:`GradientReport.diagnosis` and its
machine-readable :attr:`GradientReport.kind`):

=====================  ============================================================================
``kind``               meaning
=====================  ============================================================================
``sign_flip``          hand = -1 x reference
``constant_factor``    hand = c x reference, with guesses when ``c`` is ``n``, ``1/n``, ``2``,
                       ``1/2`` (or products, or negative) and ``n`` is a dimension of an argument
``zero``               the hand gradient is zero where the reference is not
``offset``             hand = reference + constant (overall, or per row along the last axis)
``transposed``         the hand gradient is the reference transposed
``some_entries``       only some entries are wrong (their indices, and any pattern among them)
``per_leaf``           each wrong leaf of a pytree has its own simple error
``nonfinite``          NaN or Inf in the hand gradient
``reference_nonfinite`` the reference is not finite: ``f`` is not differentiable at this point
``nonsmooth``          the point is a kink of ``f``: one-sided derivatives differ, so the gradient
                       does not exist; says whether the hand value lies between them
``reference_disagrees`` the hand gradient agrees with finite differences but not with JAX's
                       autodiff of ``f`` (``f``'s JAX derivative is not that of its values)
``shape``              the hand gradient has the wrong shape or structure
``asymmetric``         (Hessian) the hand Hessian is not symmetric but its symmetric part is right
``unexplained``        none of the above
=====================  ============================================================================
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lossopt._validation import check_choice, describe

__all__ = ["REFERENCES", "GradientReport", "PrecisionWarning", "check_gradient", "check_hessian"]

REFERENCES: tuple[str, ...] = ("auto", "autodiff", "finite_difference")

_EPS64 = float(np.finfo(np.float64).eps)
# Finite differences: first step (relative to each coordinate's scale) of the gradient and of the
# Hessian (second differences lose twice the digits to round-off, so they need a larger step),
# the step reduction per level, and how many levels are tried near kinks / domain boundaries.
_GRAD_STEP = 1e-4
_HESS_STEP = 1e-3
_SHRINK = 8.0
_LEVELS = 8
# Safety factors on the round-off bounds derived in the comments of the FD routines.
_ROUNDOFF_SAFETY = 10.0
# Largest batch of points (times the dimension) evaluated at once by a vmapped JAX function.
_BATCH_ELEMENTS = 1 << 21
_MAX_LISTED = 12


class PrecisionWarning(UserWarning):
    """Inputs, the function's output or the hand gradient carry less than float64 precision."""


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class GradientReport:
    """The verdict of :func:`check_gradient` or :func:`check_hessian`.

    Attributes:
        ok: True when every entry of the hand value matches the reference within
            ``atol + rtol * |reference| + reference_error``.
        max_abs_error: ``max |hand - reference|`` over all entries (``inf`` with NaN/Inf in the
            hand value, ``nan`` when the shapes do not match).
        max_rel_error: ``max |hand - reference| / (|reference| + atol)``.
        worst_index: index, in the shape of the argument's leaf (of the ``(n, n)`` matrix for a
            Hessian), of the entry that most exceeds its tolerance.
        worst_path: pytree path of that leaf (``jax.tree_util.keystr``), ``""`` for a bare array.
        hand_value: the hand value at the worst entry.
        reference_value: the reference value at the worst entry.
        diagnosis: what is wrong, in words (None when ``ok``).
        kind: the diagnosis as a short key ("sign_flip", "constant_factor", "offset",
            "transposed", "some_entries", "nonfinite", "nonsmooth", ...; see the module
            docstring), None when ``ok``.
        factor: the fitted ``hand / reference`` factor for "sign_flip" and "constant_factor".
        wrong_entries: locations of the wrong entries (at most a dozen are listed).
        num_wrong: how many entries are wrong (kinks included).
        num_entries: how many entries were compared.
        what: "gradient" or "hessian".
        argument: the differentiated argument, as ``name`` or ``args[i]``.
        reference: "autodiff" or "finite_difference".
        reference_error: largest estimated error of the reference (0 for autodiff).
        rtol: relative tolerance used.
        atol: absolute tolerance used.
        notes: further remarks (why finite differences were used, precision, asymmetry).
        hand: the hand value as float64 numpy (pytree for a gradient, matrix for a Hessian).
        expected: the reference, same layout as ``hand``.
    """

    ok: bool
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple[int, ...]
    worst_path: str
    hand_value: float
    reference_value: float
    diagnosis: str | None
    kind: str | None
    factor: float | None = None
    wrong_entries: tuple[str, ...] = ()
    num_wrong: int = 0
    num_entries: int = 0
    what: str = "gradient"
    argument: str = "args[0]"
    reference: str = "autodiff"
    reference_error: float = 0.0
    rtol: float = 0.0
    atol: float = 0.0
    notes: tuple[str, ...] = ()
    hand: Any = dataclasses.field(default=None, repr=False, compare=False)
    expected: Any = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def worst_location(self) -> str:
        """The worst entry as text: pytree path and index (``"['W'][0, 1]"``, ``"[3]"``)."""
        if not self.worst_index:
            return self.worst_path or "()"
        return self.worst_path + "[" + ", ".join(str(i) for i in self.worst_index) + "]"

    def __str__(self) -> str:
        verdict = "OK" if self.ok else "WRONG"
        ref = {
            "autodiff": "JAX autodiff of f",
            "finite_difference": "finite differences of f (Richardson-extrapolated)",
        }.get(self.reference, self.reference)
        lines = [
            f"{self.what} check: {verdict}",
            f"  {self.what} of f with respect to {self.argument}: {self.num_entries} "
            f"entr{'y' if self.num_entries == 1 else 'ies'}",
            f"  reference: {ref}, computed in float64"
            + (f" (estimated error <= {self.reference_error:.1e})"
               if self.reference == "finite_difference" else ""),
            f"  max abs error {self.max_abs_error:.3e}, max rel error {self.max_rel_error:.3e}"
            f" (rtol {self.rtol:.1e}, atol {self.atol:.1e})",
        ]
        if self.worst_index or self.worst_path or self.num_entries:
            lines.append(
                f"  worst entry {self.worst_location}: hand {self.hand_value:.10g}, "
                f"reference {self.reference_value:.10g}"
            )
        if self.diagnosis:
            lines.append(f"  diagnosis: {self.diagnosis}")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------


def _x64() -> contextlib.AbstractContextManager[Any]:
    """A scoped float64 context: ``jax.enable_x64(True)`` (``jax.experimental`` on old JAX)."""
    ctx = getattr(jax, "enable_x64", None)
    if callable(ctx):
        return ctx(True)
    from jax.experimental import enable_x64  # pragma: no cover - JAX < 0.5

    return enable_x64(True)  # pragma: no cover


def _is_array(leaf: Any) -> bool:
    return hasattr(leaf, "shape") and hasattr(leaf, "dtype")


def _is_floating(dtype: Any) -> bool:
    return bool(jnp.issubdtype(dtype, jnp.floating))


def _to_numpy64(tree: Any) -> Any:
    """Array leaves as numpy; floating ones as float64 (complex as complex128)."""

    def convert(leaf: Any) -> Any:
        if not _is_array(leaf):
            return leaf
        arr = np.asarray(leaf)
        if _is_floating(arr.dtype):
            return arr.astype(np.float64)
        if jnp.issubdtype(arr.dtype, jnp.complexfloating):
            return arr.astype(np.complex128)
        return arr

    return jax.tree_util.tree_map(convert, tree)


def _to_jax(tree: Any) -> Any:
    return jax.tree_util.tree_map(
        lambda leaf: jnp.asarray(leaf) if isinstance(leaf, np.ndarray) else leaf, tree
    )


def _arg_names(f: Callable[..., Any], nargs: int) -> list[str]:
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


def _warn_low_precision(args: Sequence[Any], names: Sequence[str], func: str) -> None:
    low = []
    for name, arg in zip(names, args, strict=True):
        for path, leaf in jax.tree_util.tree_flatten_with_path(arg)[0]:
            if _is_array(leaf) and _is_floating(leaf.dtype):
                if jnp.finfo(leaf.dtype).bits < 64:
                    low.append(f"{name}{jax.tree_util.keystr(path)} ({np.dtype(leaf.dtype).name})")
    if low:
        warnings.warn(
            f"{func}: {', '.join(low)} carr{'ies' if len(low) == 1 else 'y'} less than float64 "
            "precision. The check runs in float64 on these values, i.e. at the rounded point; "
            "pass float64 inputs to check at the point you meant.",
            PrecisionWarning,
            stacklevel=3,
        )


def _index_text(path: str, idx: tuple[int, ...], bare: bool) -> str:
    if bare:
        if len(idx) == 1:
            return str(idx[0])
        return "(" + ", ".join(str(i) for i in idx) + ")"
    return path + ("[" + ", ".join(str(i) for i in idx) + "]" if idx else "")


class _FlatArg:
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
            arr = np.asarray(leaf) if _is_array(leaf) or isinstance(leaf, (int, float)) else None
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


class _HessLayout:
    """Entries of the ``(n, n)`` Hessian matrix over the flattened argument."""

    def __init__(self, x: _FlatArg):
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


def _batch_sizes(args: Sequence[Any], names: Sequence[str], argnum: int) -> list[tuple[int, str]]:
    """Candidate values of ``n`` for the diagnosis: dimensions and sizes of the arguments."""
    order = [argnum, *[i for i in range(len(args)) if i != argnum]]
    found: dict[int, str] = {}
    for i in order:
        for path, leaf in jax.tree_util.tree_flatten_with_path(args[i])[0]:
            if not _is_array(leaf) or not getattr(leaf, "shape", ()):
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


# --------------------------------------------------------------------------------------------
# The function under test
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _FD:
    """Finite-difference results over some coordinates (or entries)."""

    value: np.ndarray
    error: np.ndarray
    kink: np.ndarray
    left: np.ndarray
    right: np.ndarray


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def _scalar_output(out: Any, func: str) -> tuple[float, np.dtype]:
    try:
        arr = np.asarray(out)
    except Exception as err:
        raise TypeError(f"`{func}` must return a real scalar; got {describe(out)}") from err
    if arr.size != 1:
        raise ValueError(
            f"`{func}` must return a scalar (the loss); got {describe(out)}. "
            "Reduce it (e.g. reduction='mean') before checking its gradient."
        )
    if arr.dtype.kind not in "fiub" and not _is_floating(arr.dtype):
        raise TypeError(f"`{func}` must return a real scalar; got {describe(out)}")
    return float(arr.reshape(())), arr.dtype


_DYNAMIC = object()  # placeholder for an array leaf in the static part of a cache key


@dataclasses.dataclass(frozen=True)
class _Static:
    """A non-array leaf in a cache key, compared with its type (``1``, ``1.0``, ``True``
    differ)."""

    value: Any

    def __hash__(self) -> int:
        return hash((type(self.value), self.value))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, _Static) and type(self.value) is type(other.value)
                and self.value == other.value)


@functools.lru_cache(maxsize=32)
def _compiled(kind: str, f: Callable[..., Any], argnum: int, x_treedef: Any,
              x_shapes: tuple[tuple[int, ...], ...], args_treedef: Any,
              static: tuple[Any, ...]) -> Callable[..., Any]:
    """A jitted ``value_and_grad`` / ``hessian`` / vmapped evaluation of ``f`` as a function of
    the flat argument ``v`` and the other arguments' arrays, cached so that checking the same
    ``f`` again (another point of the same shapes, another hand gradient) compiles nothing.
    The cache keeps the last 32 functions (and what they close over) alive."""
    sizes = [math.prod(shape) for shape in x_shapes]
    offsets = np.cumsum([0, *sizes[:-1]]).tolist()

    def scalar(v: Any, dynamic: Sequence[Any]) -> Any:
        it = iter(dynamic)
        leaves = [next(it) if leaf is _DYNAMIC else leaf.value for leaf in static]
        args = jax.tree_util.tree_unflatten(args_treedef, leaves)
        x = jax.tree_util.tree_unflatten(x_treedef, [
            jnp.reshape(v[o : o + n], shape)
            for o, n, shape in zip(offsets, sizes, x_shapes, strict=True)
        ])
        args[argnum] = x
        return jnp.reshape(jnp.asarray(f(*args), dtype=jnp.float64), ())

    if kind == "value_and_grad":
        return jax.jit(jax.value_and_grad(scalar))
    if kind == "hessian":
        return jax.jit(jax.hessian(scalar))
    return jax.jit(jax.vmap(scalar, in_axes=(0, None)))


class _Problem:
    """``f`` with all arguments but ``args[argnum]`` fixed, as a function of a flat vector."""

    def __init__(self, f: Callable[..., Any], args: Sequence[Any], argnum: int,
                 names: Sequence[str]):
        self.f = f
        self.argnum = argnum
        self.names = list(names)
        self.args_np = [_to_numpy64(a) for a in args]
        self.args_jax = [_to_jax(a) for a in self.args_np]
        self.x = _FlatArg(self.args_np[argnum], names[argnum])
        self.use_jax_inputs = False
        self._batched: Callable[..., Any] | None = None
        self._batched_failed = False
        self._chunk: int | None = None
        # f0 (the value at the point) is known up front only for code JAX cannot trace;
        # otherwise it comes with the reference (autodiff value, or the FD batch).
        self.f0: float | None = None
        try:
            spec = jax.eval_shape(f, *self.args_jax)  # traces f: no compilation, no FLOPs
            out_shape, dtype = getattr(spec, "shape", None), getattr(spec, "dtype", None)
            if out_shape is None or dtype is None:
                raise TypeError(f"`f` must return a real scalar; got {spec}")
        except Exception:  # not JAX code: call it as it is
            try:
                out = f(*self.args_np)
            except Exception as err_np:
                try:
                    out = f(*self.args_jax)
                except Exception:
                    raise ValueError(
                        f"calling `f` at the given arguments failed: {_first_line(err_np)}"
                    ) from err_np
                self.use_jax_inputs = True
            self.f0, dtype = _scalar_output(out, "f")
        else:
            _scalar_output(np.zeros(out_shape, dtype), "f")
        # JAX code is evaluated with JAX inputs (it may use `.at`), batched under vmap when
        # possible; numpy code with numpy inputs, one point at a time.
        self.jax_code = self.f0 is None
        self.eval_jax_inputs = self.use_jax_inputs or self.jax_code
        self.f_eps = _EPS64
        if _is_floating(dtype) and jnp.finfo(dtype).bits < 64:
            self.f_eps = float(jnp.finfo(dtype).eps)
            warnings.warn(
                f"`f` returns {np.dtype(dtype).name} values although its inputs are float64: "
                "it computes in lower precision, which limits the reference's accuracy.",
                PrecisionWarning,
                stacklevel=4,
            )

    # -- calling -----------------------------------------------------------------------------

    def call(self, func: Callable[..., Any], label: str) -> Any:
        """``func(*args)`` with numpy inputs (or JAX inputs where only those work)."""
        first, second = (
            (self.args_jax, self.args_np) if self.use_jax_inputs else (self.args_np, self.args_jax)
        )
        try:
            return func(*first)
        except Exception as err:
            try:
                return func(*second)
            except Exception:
                raise ValueError(
                    f"calling `{label}` at the given arguments failed: {_first_line(err)}"
                ) from err

    def _with(self, args: Sequence[Any], x: Any) -> list[Any]:
        out = list(args)
        out[self.argnum] = x
        return out

    def _jitted(self, kind: str) -> Callable[[Any], Any] | None:
        """The cached compiled ``kind`` of ``f`` (see :func:`_compiled`) bound to this point, or
        None when the fixed arguments hold unhashable non-array leaves (no cache key)."""
        args = list(self.args_jax)
        args[self.argnum] = None
        leaves, treedef = jax.tree_util.tree_flatten(args)
        dynamic = [leaf for leaf in leaves if isinstance(leaf, jax.Array)]
        static = tuple(_DYNAMIC if isinstance(leaf, jax.Array) else _Static(leaf)
                       for leaf in leaves)
        try:
            fn = _compiled(kind, self.f, self.argnum, self.x.treedef, tuple(self.x.shapes),
                           treedef, static)
        except TypeError:  # unhashable: f, or a non-array leaf
            return None
        return lambda v: fn(v, dynamic)

    def _jit_or_eager(self, kind: str, eager: Callable[[Any], Any], v: Any) -> Any:
        """The compiled ``kind`` at ``v`` (one compilation, cached), or ``eager(v)`` when ``f``
        needs concrete values (Python control flow on them works under ``jax.grad``)."""
        fn = self._jitted(kind)
        try:
            if fn is None:
                return jax.jit(eager)(v)
            return fn(v)
        except jax.errors.JAXTypeError:
            return eager(v)

    def _jax_scalar_fn(self) -> Callable[[Any], Any]:
        def g(v: Any) -> Any:
            out = self.f(*self._with(self.args_jax, self.x.unflatten_jax(v)))
            return jnp.reshape(jnp.asarray(out, dtype=jnp.float64), ())

        return g

    def _eval_one(self, v: np.ndarray) -> float:
        try:
            if self.eval_jax_inputs:
                out = self.f(*self._with(self.args_jax, self.x.unflatten_jax(jnp.asarray(v))))
            else:
                out = self.f(*self._with(self.args_np, self.x.unflatten_np(v)))
            return float(np.asarray(out).reshape(()))
        except Exception:
            return math.nan

    def evaluate(self, points: np.ndarray) -> np.ndarray:
        """``f`` at each row of ``points`` (non-finite where ``f`` fails)."""
        m = points.shape[0]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if self.jax_code and not self._batched_failed:
                try:
                    return self._evaluate_batched(points)
                except Exception:
                    self._batched_failed = True
            return np.array([self._eval_one(points[i]) for i in range(m)])

    def _evaluate_batched(self, points: np.ndarray) -> np.ndarray:
        if self._batched is None:
            self._batched = self._jitted("batched") or jax.jit(jax.vmap(self._jax_scalar_fn()))
        m, n = points.shape
        if self._chunk is None:  # one batch shape for every later call: one compilation
            chunk = max(1, min(m, _BATCH_ELEMENTS // max(n, 1)))
            self._chunk = 1 << (chunk - 1).bit_length()
        chunk = self._chunk
        out = np.empty(m)
        for start in range(0, m, chunk):
            block = points[start : start + chunk]
            rows = block.shape[0]
            if rows < chunk:
                block = np.concatenate([block, np.repeat(block[-1:], chunk - rows, axis=0)])
            out[start : start + rows] = np.asarray(self._batched(jnp.asarray(block)))[:rows]
        return out

    # -- autodiff ----------------------------------------------------------------------------

    def _check_traced_value(self, value: float) -> None:
        if self.f0 is None:
            self.f0 = value
        elif not math.isclose(value, self.f0, rel_tol=1e-6, abs_tol=1e-12):
            raise ValueError(
                f"tracing f with JAX gives {value!r} but calling it gives {self.f0!r} "
                "(f calls non-JAX code?)"
            )

    def autodiff_gradient(self) -> tuple[np.ndarray | None, BaseException | None]:
        try:
            value, grad = self._jit_or_eager(
                "value_and_grad", jax.value_and_grad(self._jax_scalar_fn()),
                jnp.asarray(self.x.flat))
            self._check_traced_value(float(value))
        except Exception as err:
            return None, err
        return np.asarray(grad, dtype=np.float64), None

    def autodiff_hessian(self) -> tuple[np.ndarray | None, BaseException | None]:
        g = self._jax_scalar_fn()
        try:
            flat = jnp.asarray(self.x.flat)
            if self.f0 is not None:  # f needed concrete values: is its traced value the same?
                self._check_traced_value(float(g(flat)))
            hess = self._jit_or_eager("hessian", jax.hessian(g), flat)
        except Exception as err:
            return None, err
        return np.asarray(hess, dtype=np.float64).reshape(self.x.size, self.x.size), None

    # -- finite differences ------------------------------------------------------------------

    def steps(self, base: float) -> np.ndarray:
        """Per-coordinate steps ``base * scale``, rounded to powers of two (exact ``x + h``)."""
        raw = base * self.x.scales()
        return np.exp2(np.round(np.log2(raw)))

    def fd_gradient(self, coords: np.ndarray | None = None) -> _FD:
        """Richardson-extrapolated central differences, with kink detection, per coordinate.

        At each coordinate, with steps ``h`` and ``h/2``: central differences ``Dc(h)``,
        ``Dc(h/2)`` give ``R = (4 Dc(h/2) - Dc(h)) / 3`` (error ``O(h**4)``); the one-sided
        Richardson estimates ``D+ = 2 D+(h/2) - D+(h)`` and ``D- = 2 D-(h/2) - D-(h)`` share
        their ``O(h**2)`` error term for smooth ``f``, so their gap is ``O(h**3)``. A larger gap
        means ``f`` is not smooth within ``h`` (a kink, a domain boundary): the step shrinks by 8
        and the coordinate is redone. A gap that persists down to the smallest step, without
        growing like round-off (``1/h``), is a kink at the point itself: the left and right
        derivatives are returned. The error estimate of ``R`` is
        ``max(|R - Dc(h/2)|, |R - (D+ + D-)/2|)`` (truncation, conservative for smooth ``f`` and
        exact at a jump of ``f''`` within ``h``) plus round-off: with ``delta = eps * max|f|``,
        at most ``3 delta / h`` in ``R`` and ``20 delta / h`` in the gap, both with a safety
        factor. The step keeps shrinking while that estimate improves and is above
        ``1e-9 * (|R| + |f| / scale)``; the best level is kept.
        """
        x = self.x.flat
        n = x.size
        coords = np.arange(n) if coords is None else np.asarray(coords, dtype=int)
        m = coords.size
        value = np.full(m, np.nan)
        error = np.full(m, np.inf)
        kink = np.zeros(m, dtype=bool)
        left = np.full(m, np.nan)
        right = np.full(m, np.nan)
        first_gap = np.full(m, np.nan)
        last: dict[str, np.ndarray] = {
            key: np.full(m, np.nan) for key in ("central", "fwd", "bwd", "gap", "err")
        }
        scale = self.x.scales()[coords]
        h = self.steps(_GRAD_STEP)[coords]
        pending = np.arange(m)
        for _ in range(_LEVELS):
            if pending.size == 0:
                break
            c, hh = coords[pending], h[pending]
            k = pending.size
            points = np.repeat(x[None, :], 4 * k + 1, axis=0)
            rows = 1 + 4 * np.arange(k)
            points[rows, c] += hh
            points[rows + 1, c] -= hh
            points[rows + 2, c] += hh / 2
            points[rows + 3, c] -= hh / 2
            vals = self.evaluate(points)
            f0 = vals[0]
            fp1, fm1, fp2, fm2 = vals[1:].reshape(k, 4).T
            with np.errstate(all="ignore"):
                dc2 = (fp2 - fm2) / hh
                central = (4 * dc2 - (fp1 - fm1) / (2 * hh)) / 3
                fwd = 2 * (fp2 - f0) / (hh / 2) - (fp1 - f0) / hh
                bwd = 2 * (f0 - fm2) / (hh / 2) - (f0 - fm1) / hh
                finite = np.isfinite(vals[1:].reshape(k, 4)).all(axis=1) & np.isfinite(f0)
                big = np.max(np.abs(np.column_stack([fp1, fm1, fp2, fm2])), axis=1)
                delta = self.f_eps * np.maximum(big, abs(f0))
                gap = np.abs(fwd - bwd)
                gap_ok = gap <= 20 * _ROUNDOFF_SAFETY * delta / hh + 1e-7 * (
                    np.abs(fwd) + np.abs(bwd))
                err = (np.maximum(np.abs(central - dc2), np.abs(central - (fwd + bwd) / 2))
                       + 3 * _ROUNDOFF_SAFETY * delta / hh)
                target = 1e-9 * (np.abs(central) + abs(f0) / scale[pending])
            good = finite & gap_ok
            better = good & (err < error[pending])
            value[pending[better]] = central[better]
            error[pending[better]] = err[better]
            had_best = np.isfinite(error[pending])
            # Done: good enough, or past the best step (round-off now dominates, or a gap
            # opened after a good level: noise).
            done = (good & ((err <= target) | ~better)) | (~good & had_best)
            seen = finite & ~gap_ok & ~had_best
            idx = pending[seen]
            for key, arr in (("central", central), ("fwd", fwd), ("bwd", bwd), ("gap", gap),
                             ("err", err)):
                last[key][idx] = arr[seen]
            first_gap[idx] = np.where(np.isnan(first_gap[idx]), gap[seen], first_gap[idx])
            pending = pending[~done]
            h[pending] /= _SHRINK
        for i in pending:
            if np.isfinite(error[i]) or np.isnan(last["gap"][i]):
                continue  # best level kept, or never finite near x (reference not finite)
            value[i] = last["central"][i]
            if last["gap"][i] <= 10 * first_gap[i]:  # constant gap: a kink at x itself
                kink[i] = True
                left[i], right[i] = last["bwd"][i], last["fwd"][i]
                error[i] = np.nan  # no derivative to estimate; see left/right
            else:  # gap growing like 1/h: noise, not a kink; keep the best we have
                error[i] = max(last["err"][i], last["gap"][i])
        error[np.isinf(error)] = np.nan
        return _FD(value, error, kink, left, right)

    def fd_hessian(self, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Richardson-extrapolated second differences for the ``(i, j)`` rows of ``pairs``.

        ``D(h) = [f(x+hi+hj) - f(x+hi-hj) - f(x-hi+hj) + f(x-hi-hj)] / (4 hi hj)`` (the diagonal
        uses ``[f(x+h) - 2 f(x) + f(x-h)] / h**2``), ``R = (4 D(h/2) - D(h)) / 3``. The error
        estimate is ``|R - D(h/2)|`` plus round-off, at most ``23 delta / (hi hj)``. Round-off
        grows like ``1/h**2``, so a step tied to a small coordinate can be too small: three step
        sizes (``1e-3``, ``8e-3`` and ``6.4e-2`` times the coordinate scale) are tried and, per
        entry, the estimate with the smallest error bound is kept.
        """
        best_value, best_err = self._fd_hessian_at(pairs, 1.0)
        for scale in (8.0, 64.0):
            value, err = self._fd_hessian_at(pairs, scale)
            better = np.isfinite(value) & (~np.isfinite(best_err) | (err < best_err))
            best_value = np.where(better, value, best_value)
            best_err = np.where(better, err, best_err)
        return best_value, best_err

    def _fd_hessian_at(self, pairs: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
        x = self.x.flat
        steps = self.steps(_HESS_STEP) * scale
        pairs = np.asarray(pairs, dtype=int).reshape(-1, 2)
        k = pairs.shape[0]
        i, j = pairs[:, 0], pairs[:, 1]
        hi, hj = steps[i], steps[j]
        diag = i == j
        points = np.repeat(x[None, :], 8 * k + 1, axis=0)
        for level, frac in enumerate((1.0, 0.5)):
            for corner, (si, sj) in enumerate(((1, 1), (1, -1), (-1, 1), (-1, -1))):
                rows = 1 + 8 * np.arange(k) + 4 * level + corner
                # Diagonal entries use x +- h only: rows (1,-1) and (-1,1) stay at x.
                wi = np.where(diag, np.where(si == sj, si, 0), si)
                wj = np.where(diag, 0, sj)
                np.add.at(points, (rows, i), wi * frac * hi)
                np.add.at(points, (rows, j), wj * frac * hj)
        vals = self.evaluate(points)
        f0 = vals[0]
        v = vals[1:].reshape(k, 2, 4)

        def second(level: int, frac: float) -> np.ndarray:
            pp, pm, mp, mm = (v[:, level, c] for c in range(4))
            off = (pp - pm - mp + mm) / (4 * frac * frac * hi * hj)
            on = (pp - 2 * f0 + mm) / (frac * frac * hi * hi)
            return np.where(diag, on, off)

        with np.errstate(all="ignore"):
            d1, d2 = second(0, 1.0), second(1, 0.5)
            rich = (4 * d2 - d1) / 3
            delta = self.f_eps * np.maximum(np.max(np.abs(v), axis=(1, 2)), abs(f0))
            err = np.abs(rich - d2) + 23 * _ROUNDOFF_SAFETY * delta / (hi * hj)
        return rich, err

    def fd_curvature_jump(self, coords: np.ndarray) -> np.ndarray:
        """Whether the one-sided second derivatives along each coordinate differ at x.

        Forward ``[f(x+2h) - 2f(x+h) + f(x)] / h**2`` and backward second differences differ by
        ``O(h)`` for smooth ``f`` and by the jump of ``f''`` at a curvature kink: the gap must
        stay put as ``h`` shrinks 8-fold.
        """
        x = self.x.flat
        coords = np.asarray(coords, dtype=int)
        gaps = []
        for scale in (1.0, 1.0 / 64):
            h = self.steps(_HESS_STEP)[coords] * scale
            k = coords.size
            points = np.repeat(x[None, :], 4 * k + 1, axis=0)
            rows = 1 + 4 * np.arange(k)
            for off, mult in enumerate((2, 1, -1, -2)):
                points[rows + off, coords] += mult * h
            vals = self.evaluate(points)
            f0 = vals[0]
            p2, p1, m1, m2 = vals[1:].reshape(k, 4).T
            with np.errstate(all="ignore"):
                fwd = (p2 - 2 * p1 + f0) / h**2
                bwd = (m2 - 2 * m1 + f0) / h**2
                noise = 8 * _ROUNDOFF_SAFETY * self.f_eps * np.maximum(abs(f0), np.abs(p2)) / h**2
                gaps.append((np.abs(fwd - bwd), noise, np.abs(fwd) + np.abs(bwd)))
        (g1, _, _), (g2, n2, s2) = gaps
        return (g2 > n2 + 1e-6 * s2) & (g2 > 0.5 * g1)


# --------------------------------------------------------------------------------------------
# Diagnosis
# --------------------------------------------------------------------------------------------


def _fmt_factor(c: float) -> str:
    """``8.000`` for factors that are round to 1e-6 (except 1, where small errors matter)."""
    short = f"{c:.3f}"
    if abs(float(short)) not in (0.0, 1.0) and abs(float(short) - c) <= 1e-6 * abs(c):
        return short
    return f"{c:.7g}"


def _fmt_list(items: Sequence[str], total: int) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = total - min(total, _MAX_LISTED)
    return f"[{shown}{f', ... ({more} more)' if more else ''}]"


def _factor_hints(c: float, ns: Sequence[tuple[int, str]]) -> list[str]:
    """Plausible causes of ``hand = c x reference``: powers of 2 and of a batch size ``n``."""
    a = abs(c)
    two = {0: "", 1: "an extra factor 2",
           -1: "a missing factor 2 (from differentiating a square)"}
    found: list[tuple[int, str]] = []  # (complexity, text): simplest guesses first
    for q, text in two.items():
        if q and math.isclose(a, 2.0**q, rel_tol=1e-6):
            found.append((0, text))
    for n, where in ns:
        for p in (1, -1):
            for q in (0, -1, 1):
                if not math.isclose(a, float(n) ** p * 2.0**q, rel_tol=1e-6):
                    continue
                if p == 1 and q == -1:
                    found.append((1, f"a missing 2/n with n = {n} ({where})"))
                    continue
                part = (
                    f"a missing 1/n with n = {n} ({where}): the gradient of the sum, not the mean"
                    if p == 1
                    else f"an extra 1/n with n = {n} ({where}): divided by n twice"
                )
                found.append((1, part) if q == 0 else (2, f"{two[q]} and {part}"))
    simplest = min((level for level, _ in found), default=0)
    hints = [text for level, text in found if level == simplest][:2]
    if c < 0:
        hints = [f"a sign flip and {h}" for h in hints] or ["a sign flip and a scale error"]
    return hints


@dataclasses.dataclass
class _Pattern:
    kind: str
    text: str
    factor: float | None = None


def _pattern(h: np.ndarray, r: np.ndarray, tol: np.ndarray, rtol: float,
             ns: Sequence[tuple[int, str]], brief: bool = False) -> _Pattern | None:
    """A simple relation ``hand = c * reference``, ``hand = 0`` or ``hand = reference + d``
    (``brief``: without the explanations, for a subset of the entries)."""
    if h.size == 0:
        return None
    if np.all(np.abs(h) <= tol) and not np.all(np.abs(r) <= tol):
        return _Pattern("zero",
                        "the hand value is zero where the reference is not: a missing term?", 0.0)
    # Weighted least squares (weights 1/tol**2): accurate reference entries decide the factor.
    wt = 1.0 / np.square(tol / np.min(tol)) if np.all(tol > 0) else np.ones_like(tol)
    rr = float(np.sum(wt * r * r))
    if rr > 0:
        c = float(np.sum(wt * h * r)) / rr
        fits = np.all(np.abs(h - c * r) <= abs(c) * tol + rtol * np.abs(h))
        if fits and not math.isclose(c, 1.0, rel_tol=1e-12):
            if math.isclose(c, -1.0, rel_tol=1e-6):
                why = ("" if brief else " ((y - ŷ) instead of (ŷ - y), or a descent direction "
                       "returned as the gradient?)")
                return _Pattern("sign_flip", f"sign flip: hand = -1 x reference{why}", c)
            hints = _factor_hints(c, ns)
            text = f"hand = {_fmt_factor(c)} x reference"
            if hints:
                text += ": " + " or ".join(hints) + "?"
            return _Pattern("constant_factor", text, c)
    d = h - r
    shift = float(np.median(d))
    if shift != 0 and np.all(np.abs(d - shift) <= tol + rtol * abs(shift)):
        hint = ""
        for n, where in ns:
            if math.isclose(abs(shift), 1.0 / n, rel_tol=1e-6):
                hint = f" (1/n with n = {n}, {where}?)"
                break
        why = ("" if brief else ". A shift along the all-ones direction is invisible to "
               "directional derivatives that keep sum(x) fixed (probabilities on the simplex), "
               "but it is not the gradient")
        return _Pattern(
            "offset",
            f"hand = reference {'+' if shift > 0 else '-'} {_fmt_factor(abs(shift))} on every "
            f"entry: a constant offset{hint}{why}",
        )
    return None


@dataclasses.dataclass
class _Verdict:
    ok: bool
    kind: str | None = None
    text: str | None = None
    factor: float | None = None
    wrong: np.ndarray | None = None


def _leaf_segments(layout: Any) -> list[tuple[int, int, tuple[int, ...], str]]:
    return [
        (int(off), int(size), tuple(shape), path)
        for off, size, shape, path in zip(
            layout.offsets, layout.sizes, layout.shapes, layout.paths, strict=True
        )
    ]


def _transposed(h: np.ndarray, r: np.ndarray, tol: np.ndarray, wrong: np.ndarray,
                layout: Any) -> list[str] | None:
    """Leaves whose hand value is the reference transposed, if that explains every error."""
    fixed = np.zeros_like(wrong)
    names = []
    for off, size, shape, path in _leaf_segments(layout):
        sl = slice(off, off + size)
        if len(shape) < 2 or shape[::-1] != shape or not wrong[sl].any():
            continue
        ht = np.transpose(h[sl].reshape(shape)).ravel()
        if np.all(np.abs(ht - r[sl]) <= tol[sl]):
            fixed[sl] = True
            names.append(path or "the gradient")
    if names and not (wrong & ~fixed).any():
        return names
    return None


def _row_offset(h: np.ndarray, r: np.ndarray, tol: np.ndarray, wrong: np.ndarray,
                rtol: float, layout: Any) -> str | None:
    """``hand = reference + c_row`` along the last axis of every wrong leaf (softmax-style)."""
    texts = []
    for off, size, shape, path in _leaf_segments(layout):
        sl = slice(off, off + size)
        if not wrong[sl].any():
            continue
        if len(shape) < 2:
            return None
        d = (h[sl] - r[sl]).reshape(-1, shape[-1])
        t = tol[sl].reshape(-1, shape[-1])
        rows = np.median(d, axis=1, keepdims=True)
        if not np.all(np.abs(d - rows) <= t + rtol * np.abs(rows)):
            return None
        if np.any(np.abs(rows) > t.min(axis=1, keepdims=True)):
            texts.append(path or "the gradient")
    if not texts:
        return None
    return (
        f"hand = reference + c_i on each row i of {', '.join(texts)}: an offset constant along "
        "the last axis (differing between rows). It is invisible to directional derivatives "
        "that keep each row's sum fixed (softmax probabilities), but it is not the gradient"
    )


def _classify(h: np.ndarray, r: np.ndarray, tol: np.ndarray, wrong: np.ndarray, rtol: float,
              layout: Any, ns: Sequence[tuple[int, str]], allow_transpose: bool) -> _Verdict:
    """Explain the wrong entries (no NaN, no kinks left at this point)."""
    total = wrong.size
    count = int(wrong.sum())
    pattern = _pattern(h, r, tol, rtol, ns)
    if pattern is not None:
        return _Verdict(False, pattern.kind, pattern.text, pattern.factor)
    if allow_transpose:
        leaves = _transposed(h, r, tol, wrong, layout)
        if leaves is not None:
            return _Verdict(False, "transposed",
                            f"transposed: hand[i, j] = reference[j, i] in {', '.join(leaves)}")
        rows = _row_offset(h, r, tol, wrong, rtol, layout)
        if rows is not None:
            return _Verdict(False, "offset", rows)
    segments = _leaf_segments(layout)
    if len(segments) > 1:
        parts = []
        explained = True
        for off, size, _shape, path in segments:
            sl = slice(off, off + size)
            w = wrong[sl]
            if not w.any():
                continue
            p = _pattern(h[sl][w], r[sl][w], tol[sl][w], rtol, ns, brief=True)
            explained &= p is not None
            if w.all():
                where = f"{path} (all {size} entries)" if size > 1 else path
            else:
                locs = [layout.fmt(k) for k in off + np.flatnonzero(w)]
                where = f"{path} ({len(locs)} of {size} entries: {_fmt_list(locs, len(locs))})"
            parts.append(f"{where}: {p.text if p else 'no simple pattern'}")
        head = f"{count} of {total} entries wrong, in "
        if count == total and explained:
            return _Verdict(False, "per_leaf", head + "; ".join(parts))
        if count < total:
            return _Verdict(False, "some_entries", head + "; ".join(parts))
        return _Verdict(False, "unexplained", head + "; ".join(parts) + _cosine(h, r))
    if count < total:
        idx = np.flatnonzero(wrong)
        text = (f"{count} of {total} entries wrong: indices "
                f"{_fmt_list([layout.fmt(k) for k in idx], count)}")
        p = _pattern(h[idx], r[idx], tol[idx], rtol, ns, brief=True)
        if p is not None:
            text += f"; there {p.text} (one branch of a piecewise formula?)"
        else:
            text += "; no common pattern among them"
        return _Verdict(False, "some_entries", text)
    return _Verdict(
        False,
        "unexplained",
        "every entry is wrong, with no simple pattern (not a sign flip, constant factor, "
        "offset or transpose)" + _cosine(h, r),
    )


def _cosine(h: np.ndarray, r: np.ndarray) -> str:
    nh, nr = float(np.linalg.norm(h)), float(np.linalg.norm(r))
    if nh == 0 or nr == 0:
        return ""
    return (f"; cosine similarity with the reference {float(h @ r) / (nh * nr):.4f}, "
            f"norm ratio {nh / nr:.4g}")


def _nonsmooth_text(idx: np.ndarray, h: np.ndarray, fd: _FD, pos: np.ndarray, layout: Any,
                    what: str) -> str:
    """Describe kinks at entries ``idx`` (``pos`` indexes them in ``fd``)."""
    lo = np.minimum(fd.left[pos], fd.right[pos])
    hi = np.maximum(fd.left[pos], fd.right[pos])
    slack = 1e-7 * (np.abs(lo) + np.abs(hi))
    inside = (h[idx] >= lo - slack) & (h[idx] <= hi + slack)
    first = 0
    locs = _fmt_list([layout.fmt(k) for k in idx], idx.size)
    func, deriv = ("f", "gradient") if what == "gradient" else ("the gradient of f",
                                                                "second derivative")
    text = (
        f"nonsmooth point: {func} has a kink along {idx.size} "
        f"entr{'y' if idx.size == 1 else 'ies'} {locs}, where its one-sided derivatives differ "
        f"(at {layout.fmt(idx[first])}: left {fd.left[pos][first]:.6g}, right "
        f"{fd.right[pos][first]:.6g}), so the {deriv} does not exist there; "
    )
    if inside.all():
        valid = "a valid subgradient" if what == "gradient" else "in the generalized Hessian"
        text += f"the hand value lies between them ({valid}). Check again at a point off the kink"
    else:
        bad = idx[~inside]
        text += ("the hand value lies outside that interval at "
                 f"{_fmt_list([layout.fmt(k) for k in bad], bad.size)}")
    return text


def _compare(*, h: np.ndarray, r: np.ndarray, ref_err: np.ndarray, rtol: float,
             atol: float | None, layout: Any, ns: Sequence[tuple[int, str]],
             fd_all: _FD | None, probe: Callable[[np.ndarray], _FD] | None,
             allow_transpose: bool, what: str) -> tuple[_Verdict, float, np.ndarray]:
    """Compare flat ``h`` with ``r``; returns the verdict, the absolute tolerance, tolerances."""
    finite_r = np.isfinite(r)
    scale = float(np.max(np.abs(r[finite_r]))) if finite_r.any() else 0.0
    atol_eff = float(atol) if atol is not None else (1e-10 * scale if scale > 0 else 1e-300)
    tol = atol_eff + rtol * np.abs(r) + np.where(np.isfinite(ref_err), ref_err, 0.0)
    bad_h = ~np.isfinite(h)
    if bad_h.any():
        idx = np.flatnonzero(bad_h)
        vals = ", ".join(f"{h[k]}" for k in idx[:_MAX_LISTED])
        text = (f"NaN/Inf in the hand value: {idx.size} of {h.size} entries "
                f"{_fmt_list([layout.fmt(k) for k in idx], idx.size)} ({vals}); ")
        if np.isfinite(r[idx]).all():
            text += ("the reference is finite there: a division by zero, log(0) or overflow in "
                     "the hand formula? (clip or use a log-space form)")
        else:
            text += ("the reference is not finite there either: the point is outside f's "
                     "domain or f is not differentiable there")
        return _Verdict(False, "nonfinite", text, wrong=bad_h), atol_eff, tol
    if not finite_r.all():
        idx = np.flatnonzero(~finite_r)
        text = (f"the reference is not finite at {idx.size} entries "
                f"{_fmt_list([layout.fmt(k) for k in idx], idx.size)}: f is not differentiable "
                "at this point (outside its domain?); check at another point")
        return _Verdict(False, "reference_nonfinite", text, wrong=~finite_r), atol_eff, tol
    bad = np.abs(h - r) > tol
    kinks = np.zeros(h.size, dtype=bool) if fd_all is None else fd_all.kink.copy()
    kink_fd, kink_pos = fd_all, np.arange(h.size)
    disagree_text = None
    if probe is not None and bad.any():
        idx = np.flatnonzero(bad)
        fd = probe(idx)
        kinks[idx] = fd.kink
        kink_fd, kink_pos = fd, np.full(h.size, -1)
        kink_pos[idx] = np.arange(idx.size)
        real = ~fd.kink
        fd_tol = atol_eff + rtol * np.abs(fd.value) + fd.error
        agrees = np.abs(h[idx] - fd.value) <= fd_tol
        if real.any() and np.all(agrees[real]):
            sel = idx[real]
            disagree_text = (
                f"the hand value agrees with finite differences of f but not with JAX's autodiff "
                f"at {sel.size} entries {_fmt_list([layout.fmt(k) for k in sel], sel.size)}: f's "
                "JAX derivative is not the derivative of its values there (a stop_gradient, "
                "custom_jvp or integer cast in f?). Use reference='finite_difference' to check "
                "against f's values only"
            )
    wrong = bad & ~kinks
    if not wrong.any() and not kinks.any():
        return _Verdict(True), atol_eff, tol
    kink_text = None
    if kinks.any():
        idx = np.flatnonzero(kinks)
        kink_text = _nonsmooth_text(idx, h, kink_fd, kink_pos[idx], layout, what)
    if not wrong.any():
        return _Verdict(False, "nonsmooth", kink_text, wrong=kinks), atol_eff, tol
    if disagree_text is not None:
        return _Verdict(False, "reference_disagrees", disagree_text, wrong=wrong), atol_eff, tol
    keep = ~kinks
    sub_layout = layout if not kinks.any() else _Subset(layout, np.flatnonzero(keep))
    verdict = _classify(h[keep], r[keep], tol[keep], wrong[keep], rtol, sub_layout, ns,
                        allow_transpose and not kinks.any())
    if kink_text:
        verdict.text = f"{verdict.text}. Also a {kink_text}"
    verdict.wrong = wrong | kinks
    return verdict, atol_eff, tol


class _Subset:
    """A layout restricted to some entries (used once kinks are set aside)."""

    def __init__(self, layout: Any, keep: np.ndarray):
        self.layout, self.keep = layout, keep
        self.offsets, self.sizes, self.shapes, self.paths = [0], [keep.size], [(keep.size,)], [""]
        self.bare = True

    def fmt(self, k: int) -> str:
        return self.layout.fmt(int(self.keep[k]))


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


def _check_common(f: Any, other: Any, other_name: str, args: Sequence[Any], argnum: Any,
                  reference: Any, rtol: Any, atol: Any) -> int:
    if not callable(f):
        raise TypeError(f"`f` must be callable; got {describe(f)}")
    if not callable(other):
        raise TypeError(f"`{other_name}` must be callable; got {describe(other)}")
    check_choice(reference, "reference", REFERENCES)
    if isinstance(argnum, bool) or not isinstance(argnum, (int, np.integer)):
        raise TypeError(f"`argnum` must be an int; got {describe(argnum)}")
    if not args:
        raise ValueError("no arguments given: pass the point as check(f, grad_f, *args)")
    if not -len(args) <= argnum < len(args):
        raise ValueError(f"`argnum` must index one of the {len(args)} arguments; got {argnum}")
    if not (isinstance(rtol, (int, float)) and math.isfinite(rtol) and rtol >= 0):
        raise ValueError(f"`rtol` must be a finite number >= 0; got {rtol!r}")
    if atol is not None and not (isinstance(atol, (int, float)) and math.isfinite(atol)
                                 and atol >= 0):
        raise ValueError(f"`atol` must be None or a finite number >= 0; got {atol!r}")
    return int(argnum) % len(args)


def _hand_dtype_rtol(leaves: Sequence[Any], rtol: float, label: str, notes: list[str]) -> float:
    low = [leaf for leaf in leaves if _is_array(leaf) and _is_floating(leaf.dtype)
           and jnp.finfo(leaf.dtype).bits < 64]
    if not low:
        return rtol
    name = np.dtype(low[0].dtype).name
    warnings.warn(
        f"`{label}` returns {name} values from float64 inputs: its own round-off limits the "
        "check; rtol is raised to 1e-5.",
        PrecisionWarning,
        stacklevel=4,
    )
    notes.append(f"{label} computes in {name}: rtol raised to 1e-5")
    return max(rtol, 1e-5)


def _align_gradient(hand: Any, x: _FlatArg) -> tuple[np.ndarray | None, str | None, list[str]]:
    """Hand leaves as one flat vector in the argument's layout, or a shape diagnosis."""
    leaves, treedef = jax.tree_util.tree_flatten(hand)
    if len(leaves) != len(x.shapes):
        expected = x.describe()
        got = describe(hand) if len(leaves) == 1 else f"a pytree of {len(leaves)} arrays"
        return None, f"wrong structure: the hand gradient is {got}; expected {expected}", []
    notes = []
    if treedef != x.treedef and not x.bare:
        notes.append(f"the hand gradient's container ({treedef}) differs from the argument's "
                     f"({x.treedef}); leaves compared in order")
    chunks, shape_msgs, transposed = [], [], []
    for leaf, shape, path in zip(leaves, x.shapes, x.paths, strict=True):
        try:
            arr = np.asarray(leaf)
        except Exception:
            arr = np.asarray(np.nan)
        if arr.dtype.kind not in "fiub" and not _is_floating(arr.dtype):
            return None, f"the hand gradient{path} is not a real array: {describe(leaf)}", []
        arr = arr.astype(np.float64)
        label = f"{x.name}{path}"
        if arr.shape == shape:
            chunks.append(arr.ravel())
        elif arr.ndim >= 2 and arr.shape[::-1] == shape:
            transposed.append(f"{path or 'the gradient'} has shape {arr.shape}, {label} has "
                              f"shape {shape}")
            chunks.append(np.transpose(arr).ravel())
        elif arr.size == math.prod(shape):
            shape_msgs.append(f"hand gradient{path} has shape {arr.shape} but {label} has shape "
                              f"{shape}")
            chunks.append(arr.ravel())
        else:
            return None, (f"wrong shape: the hand gradient{path} has shape {arr.shape} "
                          f"({arr.size} entries) but {label} has shape {shape}"), []
    flat = np.concatenate(chunks) if chunks else np.zeros(0)
    issues = []
    if transposed:
        issues.append("transposed: " + "; ".join(transposed))
    issues.extend(shape_msgs)
    return flat, ("; ".join(issues) if issues else None), notes


def _finish(*, verdict: _Verdict, h: np.ndarray, r: np.ndarray, tol: np.ndarray,
            atol_eff: float, rtol: float, layout: Any, what: str, argument: str, method: str,
            ref_err: np.ndarray, notes: list[str], hand_out: Any, ref_out: Any) -> GradientReport:
    with np.errstate(all="ignore"):
        diff = np.abs(h - r)
        diff = np.where(np.isnan(diff), np.inf, diff)
        rel = diff / (np.abs(r) + atol_eff)
        ratio = diff / tol
    wrong = verdict.wrong if verdict.wrong is not None else np.zeros(h.size, dtype=bool)
    if wrong.any():  # the worst entry is one of the entries the diagnosis is about
        ratio = np.where(wrong, np.where(np.isnan(ratio), np.inf, ratio) + 1.0, -1.0)
    if h.size:
        k = int(np.argmax(np.where(np.isnan(ratio), np.inf, ratio)))
        path, idx = layout.locate(k)
        max_abs, max_rel = float(np.max(diff)), float(np.nanmax(rel))
        hand_v, ref_v = float(h[k]), float(r[k])
    else:
        path, idx, max_abs, max_rel, hand_v, ref_v = "", (), 0.0, 0.0, math.nan, math.nan
    wrong_idx = np.flatnonzero(wrong)
    finite_err = ref_err[np.isfinite(ref_err)]
    return GradientReport(
        ok=verdict.ok,
        max_abs_error=max_abs,
        max_rel_error=max_rel,
        worst_index=idx,
        worst_path=path,
        hand_value=hand_v,
        reference_value=ref_v,
        diagnosis=None if verdict.ok else verdict.text,
        kind=None if verdict.ok else verdict.kind,
        factor=verdict.factor,
        wrong_entries=tuple(layout.fmt(k) for k in wrong_idx[:_MAX_LISTED]),
        num_wrong=int(wrong_idx.size),
        num_entries=int(h.size),
        what=what,
        argument=argument,
        reference=method,
        reference_error=float(np.max(finite_err)) if finite_err.size else 0.0,
        rtol=rtol,
        atol=atol_eff,
        notes=tuple(notes),
        hand=hand_out,
        expected=ref_out,
    )


def _shape_report(text: str, *, what: str, argument: str, rtol: float, notes: list[str],
                  num_entries: int, hand: Any) -> GradientReport:
    return GradientReport(
        ok=False, max_abs_error=math.nan, max_rel_error=math.nan, worst_index=(),
        worst_path="", hand_value=math.nan, reference_value=math.nan, diagnosis=text,
        kind="shape", num_entries=num_entries, what=what, argument=argument,
        reference="not computed", rtol=rtol, atol=math.nan, notes=tuple(notes), hand=hand,
    )


def check_gradient(
    f: Callable[..., Any],
    grad_f: Callable[..., Any],
    *args: Any,
    argnum: int = 0,
    reference: str = "auto",
    rtol: float = 1e-7,
    atol: float | None = None,
) -> GradientReport:
    """Check a hand-derived gradient against autodiff or finite differences, and explain errors.

    Computes ``hand = grad_f(*args)`` and the reference gradient of the scalar ``f(*args)`` with
    respect to ``args[argnum]`` (an array or any pytree of floating arrays), in float64 (a scoped
    ``jax.enable_x64`` context; global JAX settings are untouched), and compares them entry by
    entry: an entry is correct when ``|hand - ref| <= atol + rtol * |ref| + ref_error`` where
    ``ref_error`` is the finite-difference error estimate (0 for autodiff). A mismatch is
    diagnosed (sign flip, constant factor such as a missing ``1/n``, offset, transpose, errors
    confined to some entries, NaN/Inf, a kink at the point, wrong shape): see
    :class:`GradientReport` and the module docstring.

    ``f`` may be plain numpy: when JAX cannot trace it, the reference is by finite
    differences (central, Richardson-extrapolated, with a per-entry error estimate and steps
    that shrink off nearby kinks and domain boundaries; see the module docstring). Each
    coordinate costs about 4 evaluations of ``f`` (more near a kink), so keep the argument to a
    few thousand entries. At a kink of ``f`` the gradient does not exist: finite differences
    detect it (left and right derivatives differ) and the report says so (kind "nonsmooth")
    instead of a plain failure. With an autodiff reference, kinks are probed only at entries
    that disagree: a hand value equal to JAX's choice of subgradient passes.

    Args:
        f: ``f(*args) -> scalar`` (a size-1 array is accepted).
        grad_f: ``grad_f(*args)`` -> the hand gradient, same structure and shapes as
            ``args[argnum]`` (a transposed or reshaped leaf is reported, not rejected).
        *args: the point; array leaves are converted to float64 (integer arrays kept).
        argnum: which argument to differentiate (negative counts from the end).
        reference: "auto" (autodiff if ``f`` is JAX-traceable, else finite differences),
            "autodiff" or "finite_difference".
        rtol: relative tolerance per entry (default ``1e-7``: float64 hand formulas agree with
            autodiff to ~1e-12, so 1e-7 flags a 1e-6 relative error with a wide margin).
        atol: absolute tolerance per entry; default ``1e-10 * max|reference|`` (entries far
            below the gradient's scale are judged against that scale, not their own size).

    Returns:
        A :class:`GradientReport`; ``report.ok`` is the verdict, ``str(report)`` the full text.

    Raises:
        TypeError: ``f`` or ``grad_f`` not callable, a non-floating argument to differentiate,
            or ``reference="autodiff"`` for an ``f`` JAX cannot trace.
        ValueError: bad ``argnum`` / ``rtol`` / ``atol`` / ``reference``, ``f`` not returning a
            scalar, or ``f`` / ``grad_f`` failing at the given point.

    Warns:
        PrecisionWarning: when an argument is float32 (or lower), or when ``f`` or ``grad_f``
            compute in lower precision than float64.

    Example:
        >>> import numpy as np
        >>> def loss(y_pred, y_true):                # plain-numpy mean squared error
        ...     return np.mean((y_pred - y_true) ** 2)
        >>> def grad(y_pred, y_true):                # hand-derived: forgot the 1/n
        ...     return 2 * (y_pred - y_true)
        >>> y_pred, y_true = np.array([0.5, 1.0, -2.0, 3.0]), np.zeros(4)
        >>> report = check_gradient(loss, grad, y_pred, y_true)
        >>> report.ok, report.kind
        (False, 'constant_factor')
        >>> print(report.diagnosis)
        hand = 4.000 x reference: a missing 1/n with n = 4 (y_pred.shape[0]): the gradient of
        the sum, not the mean?
        >>> check_gradient(loss, lambda p, t: 2 * (p - t) / p.size, y_pred, y_true).ok
        True
    """
    argnum = _check_common(f, grad_f, "grad_f", args, argnum, reference, rtol, atol)
    names = _arg_names(f, len(args))
    notes: list[str] = []
    with _x64():
        _warn_low_precision(args, names, "check_gradient")
        problem = _Problem(f, args, argnum, names)
        x = problem.x
        hand_raw = problem.call(grad_f, "grad_f")
        rtol = _hand_dtype_rtol(jax.tree_util.tree_leaves(hand_raw), float(rtol), "grad_f",
                                notes)
        hand_out = _to_numpy64(hand_raw)
        h, shape_issue, align_notes = _align_gradient(hand_raw, x)
        notes.extend(align_notes)
        if h is None:
            return _shape_report(shape_issue or "wrong shape", what="gradient", argument=x.name,
                                 rtol=rtol, notes=notes, num_entries=x.size, hand=hand_out)
        method, fd_all, probe = "autodiff", None, None
        r = None
        if reference in ("auto", "autodiff"):
            r, err = problem.autodiff_gradient()
            if r is None and reference == "autodiff":
                raise TypeError(
                    f"reference='autodiff' needs a JAX-traceable `f`; tracing it failed with "
                    f"{_first_line(err)}. Use reference='finite_difference' or 'auto'."
                ) from err
            if r is None:
                notes.append(f"f is not JAX-traceable ({_first_line(err)}); reference by "
                             "finite differences")
        if r is None:
            method = "finite_difference"
            fd_all = problem.fd_gradient()
            r, ref_err = fd_all.value, fd_all.error
        else:
            ref_err = np.zeros_like(r)
            probe = problem.fd_gradient
        ns = _batch_sizes(problem.args_np, names, argnum)
        verdict, atol_eff, tol = _compare(h=h, r=r, ref_err=ref_err, rtol=rtol, atol=atol,
                                          layout=x, ns=ns, fd_all=fd_all, probe=probe,
                                          allow_transpose=True, what="gradient")
        if shape_issue is not None:
            if verdict.ok:
                kind = "transposed" if shape_issue.startswith("transposed") else "shape"
                suffix = "" if kind == "transposed" else " (the values match after reshaping)"
                verdict = _Verdict(False, kind, shape_issue + suffix,
                                   wrong=np.zeros(h.size, dtype=bool))
            else:
                verdict.text = f"{shape_issue}; and after aligning the shapes: {verdict.text}"
        return _finish(verdict=verdict, h=h, r=r, tol=tol, atol_eff=atol_eff, rtol=rtol,
                       layout=x, what="gradient", argument=x.name, method=method,
                       ref_err=ref_err, notes=notes, hand_out=hand_out,
                       ref_out=x.unflatten_np(r))


def _align_hessian(hand: Any, x: _FlatArg) -> tuple[np.ndarray | None, str | None]:
    leaves = jax.tree_util.tree_leaves(hand)
    n = x.size
    if len(leaves) != 1:
        return None, (f"wrong structure: the hand Hessian must be one (n, n) matrix over the "
                      f"flattened {x.name} (n = {n}); got {len(leaves)} arrays")
    arr = np.asarray(leaves[0])
    if arr.dtype.kind not in "fiub" and not _is_floating(arr.dtype):
        return None, f"the hand Hessian is not a real array: {describe(leaves[0])}"
    arr = arr.astype(np.float64)
    if arr.shape == (n, n):
        return arr, None
    if x.bare and arr.shape == x.shapes[0] + x.shapes[0]:
        return arr.reshape(n, n), None
    return None, (f"wrong shape: the hand Hessian has shape {arr.shape}; expected ({n}, {n}) "
                  f"over the flattened {x.name}"
                  + (f" or {x.shapes[0] + x.shapes[0]}" if x.bare else ""))


def check_hessian(
    f: Callable[..., Any],
    hess_f: Callable[..., Any],
    *args: Any,
    argnum: int = 0,
    reference: str = "auto",
    rtol: float = 1e-7,
    atol: float | None = None,
) -> GradientReport:
    """Check a hand-derived Hessian against autodiff or finite differences, and explain errors.

    The Hessian is the ``(n, n)`` matrix of second derivatives of the scalar ``f(*args)`` over
    ``args[argnum]`` flattened (leaves in ``jax.tree_util`` order, each in C order; for a single
    array of shape ``S``, a hand Hessian of shape ``S + S`` is accepted too). The reference is
    ``jax.hessian`` when ``f`` is JAX-traceable, else Richardson-extrapolated second differences
    of ``f`` (about ``4 n**2`` evaluations: keep ``n`` to a few dozen). Everything runs in
    float64 (scoped). Besides the diagnoses of :func:`check_gradient`, the symmetric part is
    checked: a hand Hessian that is not symmetric but whose symmetric part ``(H + H.T) / 2`` is
    right is reported as "asymmetric". At a jump of the second derivative (a kink of the
    gradient, e.g. Huber at ``|r| = delta``) a mismatch is reported as "nonsmooth".

    Args:
        f: ``f(*args) -> scalar``.
        hess_f: ``hess_f(*args)`` -> the hand Hessian.
        *args: the point.
        argnum: which argument to differentiate.
        reference: "auto", "autodiff" or "finite_difference".
        rtol: relative tolerance per entry.
        atol: absolute tolerance per entry; default ``1e-10 * max|reference|``.

    Returns:
        A :class:`GradientReport` with ``what="hessian"``; indices are ``(i, j)`` in the matrix.

    Raises:
        TypeError, ValueError: as :func:`check_gradient`.

    Warns:
        PrecisionWarning: as :func:`check_gradient`.

    Example:
        >>> import numpy as np
        >>> def loss(w, X, y):
        ...     return np.mean((X @ w - y) ** 2)
        >>> X = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]])
        >>> w, y = np.array([0.3, -0.2]), np.array([1.0, 0.0, 2.0])
        >>> check_hessian(loss, lambda w, X, y: 2 * X.T @ X / len(y), w, X, y).ok
        True
        >>> print(check_hessian(loss, lambda w, X, y: X.T @ X / len(y), w, X, y).diagnosis)
        hand = 0.500 x reference: a missing factor 2 (from differentiating a square)?
    """
    argnum = _check_common(f, hess_f, "hess_f", args, argnum, reference, rtol, atol)
    names = _arg_names(f, len(args))
    notes: list[str] = []
    with _x64():
        _warn_low_precision(args, names, "check_hessian")
        problem = _Problem(f, args, argnum, names)
        x = problem.x
        n = x.size
        hand_raw = problem.call(hess_f, "hess_f")
        rtol = _hand_dtype_rtol(jax.tree_util.tree_leaves(hand_raw), float(rtol), "hess_f",
                                notes)
        H, issue = _align_hessian(hand_raw, x)
        if H is None:
            return _shape_report(issue or "wrong shape", what="hessian", argument=x.name,
                                 rtol=rtol, notes=notes, num_entries=n * n,
                                 hand=_to_numpy64(hand_raw))
        method, R = "autodiff", None
        if reference in ("auto", "autodiff"):
            R, err = problem.autodiff_hessian()
            if R is None and reference == "autodiff":
                raise TypeError(
                    f"reference='autodiff' needs a JAX-traceable `f`; tracing it failed with "
                    f"{_first_line(err)}. Use reference='finite_difference' or 'auto'."
                ) from err
            if R is None:
                notes.append(f"f is not JAX-traceable ({_first_line(err)}); reference by "
                             "finite differences")
        iu, ju = np.triu_indices(n)
        if R is None:
            method = "finite_difference"
            vals, errs = problem.fd_hessian(np.column_stack([iu, ju]))
            R, E = np.empty((n, n)), np.empty((n, n))
            R[iu, ju] = R[ju, iu] = vals
            E[iu, ju] = E[ju, iu] = errs
        else:
            E = np.zeros((n, n))
        layout = _HessLayout(x)

        def probe(entries: np.ndarray) -> _FD:
            return _hessian_probe(problem, entries, n, H.ravel(), R.ravel(), E.ravel(), method)

        ns = _batch_sizes(problem.args_np, names, argnum)
        h, r, e = H.ravel(), R.ravel(), E.ravel()
        verdict, atol_eff, tol = _compare(h=h, r=r, ref_err=e, rtol=rtol, atol=atol,
                                          layout=layout, ns=ns, fd_all=None, probe=probe,
                                          allow_transpose=False, what="hessian")
        if np.isfinite(H).all():
            asym = np.abs(H - H.T)
            tol_m = tol.reshape(n, n)
            if np.any(asym > tol_m + tol_m.T):
                i, j = np.unravel_index(int(np.argmax(asym)), asym.shape)
                where = f"max |H - H.T| = {asym[i, j]:.3g} at {layout.fmt(i * n + j)}"
                sym = ((H + H.T) / 2).ravel()
                if not verdict.ok and np.all(np.abs(sym - r) <= tol):
                    verdict = _Verdict(
                        False, "asymmetric",
                        f"the hand Hessian is not symmetric ({where}) but its symmetric part "
                        "(H + H.T) / 2 matches the reference: quadratic forms v.H.v are right, "
                        "Newton steps and Hessian-vector products are not",
                        wrong=verdict.wrong,
                    )
                else:
                    notes.append(f"the hand Hessian is not symmetric: {where}")
        return _finish(verdict=verdict, h=h, r=r, tol=tol, atol_eff=atol_eff, rtol=rtol,
                       layout=layout, what="hessian", argument=x.name, method=method, ref_err=e,
                       notes=notes, hand_out=H, ref_out=R)


def _hessian_probe(problem: _Problem, entries: np.ndarray, n: int, h: np.ndarray,
                   r: np.ndarray, e: np.ndarray, method: str) -> _FD:
    """For disagreeing Hessian entries: curvature jumps (kinks of the gradient) and, with an
    autodiff reference, an independent finite-difference value."""
    i, j = np.divmod(entries, n)
    diag = i == j
    kink = np.zeros(entries.size, dtype=bool)
    if diag.any():
        kink[diag] = problem.fd_curvature_jump(i[diag])
    if method == "autodiff":
        value, error = problem.fd_hessian(np.column_stack([i, j]))
    else:
        value, error = r[entries], e[entries]
    left = np.where(kink, np.minimum(value, h[entries]), np.nan)
    right = np.where(kink, np.maximum(value, h[entries]), np.nan)
    if diag.any() and kink.any():
        left, right = _curvature_sides(problem, i, kink, left, right)
    return _FD(value, error, kink, left, right)


def _curvature_sides(problem: _Problem, i: np.ndarray, kink: np.ndarray, left: np.ndarray,
                     right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-sided second derivatives (small step) at curvature kinks."""
    x = problem.x.flat
    coords = i[kink]
    h = problem.steps(_HESS_STEP)[coords] / 64
    k = coords.size
    points = np.repeat(x[None, :], 4 * k + 1, axis=0)
    rows = 1 + 4 * np.arange(k)
    for off, mult in enumerate((2, 1, -1, -2)):
        points[rows + off, coords] += mult * h
    vals = problem.evaluate(points)
    p2, p1, m1, m2 = vals[1:].reshape(k, 4).T
    left, right = left.copy(), right.copy()
    left[kink] = (m2 - 2 * m1 + vals[0]) / h**2
    right[kink] = (p2 - 2 * p1 + vals[0]) / h**2
    return left, right
