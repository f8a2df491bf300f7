"""The function under test: ``f`` with every argument but the differentiated one fixed, as a
function of one flat float64 vector; called as JAX code (batched, compiled once per shape and
cached) or as plain numpy, with its autodiff gradient and Hessian when JAX can trace it."""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lossopt._validation import describe
from lossopt.gradcheck._finite_diff import FiniteDifferences
from lossopt.gradcheck._layout import FlatArg, is_floating, to_jax, to_numpy64
from lossopt.gradcheck._report import PrecisionWarning

__all__ = ["Problem", "first_line"]

_EPS64 = float(np.finfo(np.float64).eps)
# Largest batch of points (times the dimension) evaluated at once by a vmapped JAX function.
_BATCH_ELEMENTS = 1 << 21


def first_line(err: BaseException) -> str:
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
    if arr.dtype.kind not in "fiub" and not is_floating(arr.dtype):
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




class Problem:
    """``f`` with all arguments but ``args[argnum]`` fixed, as a function of a flat vector."""

    def __init__(self, f: Callable[..., Any], args: Sequence[Any], argnum: int,
                 names: Sequence[str]):
        self.f = f
        self.argnum = argnum
        self.names = list(names)
        self.args_np = [to_numpy64(a) for a in args]
        self.args_jax = [to_jax(a) for a in self.args_np]
        self.x = FlatArg(self.args_np[argnum], names[argnum])
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
                        f"calling `f` at the given arguments failed: {first_line(err_np)}"
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
        if is_floating(dtype) and jnp.finfo(dtype).bits < 64:
            self.f_eps = float(jnp.finfo(dtype).eps)
            warnings.warn(
                f"`f` returns {np.dtype(dtype).name} values although its inputs are float64: "
                "it computes in lower precision, which limits the reference's accuracy.",
                PrecisionWarning,
                stacklevel=5,
            )
        self.fd = FiniteDifferences(self.evaluate, self.x, self.f_eps)

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
                    f"calling `{label}` at the given arguments failed: {first_line(err)}"
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
