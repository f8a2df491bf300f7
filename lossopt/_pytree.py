"""Frozen dataclasses registered as pytrees: numeric fields are leaves, choices are static.

The one definition, shared by the solvers (:mod:`lossopt.solvers`) and the penalties of
:mod:`lossopt.prox`: numeric hyperparameters are pytree leaves (so ``jax.vmap`` sweeps them
in one compilation), fields declared with :func:`static_field` are auxiliary data (they select
code at trace time and key the compilation cache), and :func:`leaf_unless_zero` fields are
static only when they hold a literal zero (a feature switched off compiles to nothing).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar, dataclass_transform

import jax

__all__ = ["PyTree", "is_literal_zero", "leaf_unless_zero", "pytree_dataclass", "static_field"]

#: A pytree of arrays -- an array, a tuple, list or dict of them, a Flax or Equinox parameter
#: tree: the type the public signatures give parameters, their gradients and their updates.
PyTree = Any


def static_field(default: Any = dataclasses.MISSING, **kwargs: Any) -> Any:
    """A dataclass field stored as static pytree metadata (hashable; part of the cache key)."""
    metadata = {**kwargs.pop("metadata", {}), "static": True}
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


def leaf_unless_zero(default: Any = dataclasses.MISSING, **kwargs: Any) -> Any:
    """A numeric hyperparameter that is a pytree leaf, except a literal Python ``0``/``0.0``.

    A feature switched off by a zero coefficient (momentum) then compiles to nothing: the
    zero is static auxiliary data and the solver can test it in Python. Any other value --
    a non-zero number, an array, a traced value under ``jax.vmap`` -- is a leaf as usual, so
    sweeping it still shares one compilation.
    """
    metadata = {**kwargs.pop("metadata", {}), "zero_is_static": True}
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


def is_literal_zero(value: Any) -> bool:
    """True for a Python int or float equal to 0 (not a bool, an array or a tracer)."""
    return type(value) in (int, float) and value == 0


_T = TypeVar("_T")


# dataclass_transform: type checkers (mypy, pyright) see the solvers and penalties as the
# frozen dataclasses they are, with their fields as keyword arguments of the constructor.
@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, static_field,
                                                            leaf_unless_zero))
def pytree_dataclass(cls: type[_T]) -> type[_T]:
    """Make ``cls`` a frozen dataclass and register it as a pytree.

    Fields declared with :func:`static_field` become auxiliary data; every other field is a
    child, and so is every field declared with :func:`leaf_unless_zero` unless it holds a
    literal zero (then it is auxiliary data). Unflattening bypasses ``__init__`` (and so
    ``__post_init__`` validation): JAX
    rebuilds pytrees with placeholder leaves (``None``, ``object()``, vmap axis specs) that
    must not be validated as hyperparameters.
    """
    cls = dataclasses.dataclass(frozen=True)(cls)
    fields = dataclasses.fields(cls)
    data_names = tuple(f.name for f in fields if not f.metadata.get("static", False))
    meta_names = tuple(f.name for f in fields if f.metadata.get("static", False))
    zero_static = frozenset(f.name for f in fields if f.metadata.get("zero_is_static", False))

    def split(obj):
        # The names of this object's children: literal zeros of leaf_unless_zero fields are
        # auxiliary data instead (the tuple of those names is part of the treedef).
        zeros = tuple(n for n in data_names
                      if n in zero_static and is_literal_zero(getattr(obj, n)))
        names = tuple(n for n in data_names if n not in zeros)
        aux = (tuple(getattr(obj, n) for n in meta_names),
               tuple((n, getattr(obj, n)) for n in zeros))
        return names, aux

    def flatten_with_keys(obj):
        names, aux = split(obj)
        return tuple((jax.tree_util.GetAttrKey(n), getattr(obj, n)) for n in names), aux

    def flatten(obj):
        names, aux = split(obj)
        return tuple(getattr(obj, n) for n in names), aux

    def unflatten(aux, children):
        meta, zeros = aux
        obj = object.__new__(cls)
        zero_names = {n for n, _ in zeros}
        names = [n for n in data_names if n not in zero_names]
        for name, value in zip(names, children, strict=True):
            object.__setattr__(obj, name, value)
        for name, value in zeros:
            object.__setattr__(obj, name, value)
        for name, value in zip(meta_names, meta, strict=True):
            object.__setattr__(obj, name, value)
        return obj

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)
    return cls
