"""What a function computes, as a value: the one description behind compile reuse and resume.

A JAX program is keyed on the *identity* of the Python function it traces, so a ``lambda``
re-created in a loop or a notebook cell compiles again although nothing changed; and a
checkpoint written by one process must recognise "the same objective" in another process,
where no identity survives. Both questions have one answer here: a function is described by
its code and by every value its code can read --

- its code object (bytecode, constants, names; nested functions' code included),
- its defaults and keyword defaults,
- the contents of its closure cells,
- the module-level globals its code names (a constant ``LAM = 0.1``, a helper function),
- for a ``functools.partial``, the function and the bound arguments; for a bound method, the
  function and its object; for a ``jax.jit``-wrapped function, the function it wraps,

each walked recursively (bounded in depth and size). Values are described by kind:

========================  ===================================  ===========================
value                     ``function_key`` (in this process)   ``portable_description``
========================  ===================================  ===========================
number, string, None      type and ``repr`` (NaN equals NaN,   the same, as JSON values
                          ``0.0`` differs from ``-0.0``)
module                    its name                             its name
tuple                     its items                            its items
list, dict, set           the object itself (mutable)          its items
numpy array               shape, dtype and bytes (<= 4096      shape, dtype and values
                          elements), else the object itself    (<= 64 elements), else
                                                               shape and dtype
``jax.Array``, any other  the object itself (identity: JAX     its type's name
object                    arrays are immutable)
========================  ===================================  ===========================

:func:`function_key` is hashable and compares equal exactly when two functions have the same
code and read equal values, so two such functions trace to the same program: it is what
:func:`lossopt.minimize` keys its compiled loops on. What is *not* seen: state reached through
an object's attributes at call time (``self.scale`` of a callable object is read through the
object, which is compared by identity), and the contents of large numpy arrays mutated in
place (compared by identity, as ``jax.jit`` itself does with closed-over constants).
:func:`portable_description` is JSON-serialisable and free of memory addresses: it is what a
checkpoint's fingerprint stores.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import types
from typing import Any

import jax
import numpy as np

__all__ = ["Function", "function_key", "portable_description"]

_MAX_DEPTH = 12
_MAX_ITEMS = 4000
_KEY_ARRAY_ELEMENTS = 4096  # numpy arrays up to this size are keyed by value
_PORTABLE_ARRAY_ELEMENTS = 64  # ... and recorded by value in a fingerprint


class _Same:
    """An object compared by identity, kept alive while the key lives (no reused ``id``)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any):
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)


class _Walker:
    """One recursive walk; ``portable`` chooses the representation of leaves."""

    def __init__(self, portable: bool):
        self.portable = portable
        self.items = 0
        self.seen: set[int] = set()

    # --- leaves ---------------------------------------------------------------------------

    def scalar(self, obj: Any) -> Any:
        if isinstance(obj, np.generic):
            obj = obj.item()
        if obj is None or isinstance(obj, (bool, str)):
            return obj if self.portable else (type(obj).__name__, obj)
        return repr(obj) if self.portable else (type(obj).__name__, repr(obj))

    def array(self, obj: Any) -> Any:
        is_key = jax.dtypes.issubdtype(obj.dtype, jax.dtypes.prng_key)
        head = [list(obj.shape), str(obj.dtype)]
        if self.portable:
            small = obj.size <= _PORTABLE_ARRAY_ELEMENTS and not is_key
            try:
                values = [repr(x) for x in np.asarray(obj).ravel().tolist()] if small else []
            except Exception:  # a tracer, or an array this process cannot read whole
                values = []
            return [*head, *values]
        if isinstance(obj, np.ndarray) and obj.size <= _KEY_ARRAY_ELEMENTS and not is_key:
            return ("ndarray", obj.shape, str(obj.dtype), obj.tobytes())
        return _Same(obj)

    def code(self, code: types.CodeType) -> Any:
        if not self.portable:
            return code  # code objects compare by bytecode, constants, names and positions
        digest = hashlib.sha256()
        for c in _code_objects(code):
            digest.update(c.co_code)
            digest.update(repr([k for k in c.co_consts if not isinstance(k, types.CodeType)])
                          .encode())
            digest.update(repr((c.co_names, c.co_varnames, c.co_argcount)).encode())
        return f"{code.co_qualname}:{digest.hexdigest()[:20]}"

    # --- the walk -------------------------------------------------------------------------

    def __call__(self, obj: Any, depth: int = 0) -> Any:
        self.items += 1
        if self.items > _MAX_ITEMS or depth > _MAX_DEPTH:
            raise _TooLarge
        if obj is None or isinstance(obj, (bool, int, float, complex, str, np.generic)):
            return self.scalar(obj)
        if isinstance(obj, (np.ndarray, jax.Array)):
            return self.array(obj)
        if isinstance(obj, types.ModuleType):
            return ["module", obj.__name__] if self.portable else ("module", obj.__name__)
        if isinstance(obj, Function):
            return self(obj.fun, depth)
        if callable(obj) and not isinstance(obj, types.FunctionType) and _from_library(obj):
            # jax.numpy's jitted functions, a library's callable objects: named, not walked.
            name = f"{obj.__module__}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"
            return ["library", name] if self.portable else ("library", name, _Same(obj))
        if id(obj) in self.seen:  # a cycle (a recursive function): already described above
            return "<cycle>" if self.portable else ("cycle", _Same(obj))
        self.seen.add(id(obj))
        try:
            return self.compound(obj, depth + 1)
        finally:
            self.seen.discard(id(obj))

    def compound(self, obj: Any, depth: int) -> Any:
        seq = list if self.portable else tuple
        if not self.portable and isinstance(obj, (list, dict, set, bytearray)):
            # Mutable: what a function reads from it at call time is not fixed now (a list a
            # function appends to is state, not a constant). Compared by identity.
            return _Same(obj)
        if isinstance(obj, (tuple, list)):
            return seq([type(obj).__qualname__, *(self(x, depth) for x in obj)])
        if isinstance(obj, dict):
            keys = sorted(obj, key=repr)
            return seq(["dict", *(seq([repr(k), self(obj[k], depth)]) for k in keys)])
        if isinstance(obj, functools.partial):
            # Its keywords dict is the partial's own copy: its items are the bound values.
            keywords = tuple(sorted(obj.keywords.items()))
            return seq(["partial", self(obj.func, depth), self(obj.args, depth),
                        self(keywords, depth)])
        if isinstance(obj, types.MethodType):
            return seq(["method", self(obj.__func__, depth), self(obj.__self__, depth)])
        if isinstance(obj, types.FunctionType):
            return self.function(obj, depth)
        wrapped = getattr(obj, "__wrapped__", None)  # jax.jit, functools.wraps
        if wrapped is not None and callable(obj):
            return seq(["wrapped", type(obj).__qualname__, self(wrapped, depth)])
        if self.portable:
            name = getattr(obj, "__qualname__", None) if isinstance(obj, type) else None
            return [name or type(obj).__qualname__]
        return _Same(obj)

    def function(self, fun: types.FunctionType, depth: int) -> Any:
        seq = list if self.portable else tuple
        cells = []
        for cell in fun.__closure__ or ():
            try:
                cells.append(self(cell.cell_contents, depth))
            except ValueError:  # an empty cell (a name not yet assigned)
                cells.append("<empty>")
        module = getattr(fun, "__module__", None) or "?"
        if _from_library(fun):
            # A library's function (an optax update rule, a lossopt loss): fixed code and
            # globals; only what it closes over (an optax learning rate) can differ.
            return seq(["library", f"{module}.{fun.__qualname__}", seq(cells),
                        self(fun.__defaults__, depth), self(fun.__kwdefaults__, depth)])
        names = sorted({n for c in _code_objects(fun.__code__) for n in c.co_names})
        module_globals = fun.__globals__
        read = [
            seq([name, self(module_globals[name], depth)])
            for name in names
            if name in module_globals and not _is_builtin(name, module_globals[name])
        ]
        return seq([
            "function", f"{module}.{fun.__qualname__}", self.code(fun.__code__),
            self(fun.__defaults__, depth), self(fun.__kwdefaults__, depth),
            seq(cells), seq(read),
        ])


class _TooLarge(Exception):
    pass


def _code_objects(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


# Code from these packages does not change within a process and reads no user state through
# its globals: a function of theirs is named, not walked (this keeps every key small).
_LIBRARIES = frozenset({"jax", "jaxlib", "numpy", "optax", "chex", "lossopt", "scipy",
                        "equinox", "flax", "builtins", "math", "functools", "operator"})


def _from_library(obj: Any) -> bool:
    module = getattr(obj, "__module__", None)
    return (isinstance(module, str) and module.partition(".")[0] in _LIBRARIES
            and not isinstance(obj, (functools.partial, types.MethodType)))


def _is_builtin(name: str, value: Any) -> bool:
    return getattr(builtins, name, _MISSING) is value


_MISSING = object()


def function_key(fun: Any) -> Any:
    """A hashable key equal for functions with the same code that read equal values.

    Falls back to the function's identity when the walk is too large or meets a value that
    cannot be hashed -- never to a key that could match a different computation.
    """
    try:
        key = _Walker(portable=False)(fun)
        hash(key)
        return key
    except (_TooLarge, TypeError):
        return _Same(fun)


def portable_description(obj: Any) -> Any:
    """A JSON-serialisable description of ``obj`` (see the module docstring), free of addresses.

    Used in checkpoint fingerprints: equal across processes for the same code and values.
    A walk that grows too large is cut short by naming the object's type only.
    """
    try:
        return _Walker(portable=True)(obj)
    except _TooLarge:
        return ["<too large>", type(obj).__qualname__]


class Function:
    """A callable compared by :func:`function_key`: a static argument of a compiled loop.

    ``jax.jit`` caches on the hash and equality of static arguments, so wrapping an
    objective in :class:`Function` makes a re-created but identical ``lambda`` hit the cache
    of the first one (it is then the first one's code that runs: the same computation).
    """

    __slots__ = ("_hash", "fun", "key")

    def __init__(self, fun: Any):
        while isinstance(fun, Function):
            fun = fun.fun
        self.fun = fun
        self.key = function_key(fun)
        self._hash = hash(self.key)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fun(*args, **kwargs)

    def __eq__(self, other: object) -> bool:
        # Not `other.fun is self.fun`: the same function reads new values once a global
        # it names changes, and then it is another computation.
        return isinstance(other, Function) and other._hash == self._hash and other.key == self.key

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"Function({self.fun!r})"

    @property
    def __name__(self) -> str:  # error messages name the user's function
        return getattr(self.fun, "__name__", type(self.fun).__name__)
