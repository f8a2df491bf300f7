"""Gradient, Hessian and Hessian-vector-product helpers over parameter pytrees.

Thin, documented wrappers over ``jax.grad``, ``jax.hessian`` and forward-over-reverse
``jax.jvp``. They differentiate ``fun(params, *args)`` with respect to ``params`` (any pytree)
and pass ``args`` through, matching the objective convention of :func:`lossopt.minimize`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from jax.flatten_util import ravel_pytree

from lossopt._pytree import PyTree

__all__ = ["grad", "hessian", "hessian_matrix", "hvp"]


def grad(fun: Callable[..., Any], params: PyTree, *args: Any) -> PyTree:
    """Gradient of ``fun(params, *args)`` with respect to ``params``, same pytree as ``params``.

    Example:
        >>> import jax.numpy as jnp
        >>> grad(lambda w, x: jnp.sum((w * x) ** 2), jnp.array([1.0, 2.0]), jnp.array([1.0, 3.0]))
        Array([ 2., 36.], dtype=float...)
    """
    return jax.grad(fun)(params, *args)


def hessian(fun: Callable[..., Any], params: PyTree, *args: Any) -> PyTree:
    """Hessian of ``fun(params, *args)`` as ``jax.hessian`` returns it (a pytree of pytrees).

    For a flat matrix over all parameters use :func:`hessian_matrix`.

    Example:
        >>> import jax.numpy as jnp
        >>> hessian(lambda w: jnp.sum(w ** 3), jnp.array([1.0, 2.0]))
        Array([[ 6.,  0.],
               [ 0., 12.]], dtype=float...)
    """
    return jax.hessian(fun)(params, *args)


def hessian_matrix(fun: Callable[..., Any], params: PyTree, *args: Any) -> jax.Array:
    """Hessian of ``fun(params, *args)`` as one ``(n, n)`` matrix over the flattened ``params``.

    The flattening order is ``jax.flatten_util.ravel_pytree(params)``'s, so
    ``ravel_pytree(grad(fun, params, *args))[0]`` indexes the same coordinates.

    Example:
        >>> import jax.numpy as jnp
        >>> f = lambda p: p["a"] ** 2 * p["b"]
        >>> hessian_matrix(f, {"a": jnp.array(1.0), "b": jnp.array(3.0)})
        Array([[6., 2.],
               [2., 0.]], dtype=float...)
    """
    flat, unravel = ravel_pytree(params)
    return jax.hessian(lambda v: fun(unravel(v), *args))(flat)


def hvp(fun: Callable[..., Any], params: PyTree, vector: PyTree, *args: Any) -> PyTree:
    """Hessian-vector product ``H(params) @ vector`` without forming ``H``.

    Forward-over-reverse (``jax.jvp`` of ``jax.grad``): costs about two gradient evaluations.
    ``vector`` has the structure of ``params``; so does the result.

    Example:
        >>> import jax.numpy as jnp
        >>> hvp(lambda w: jnp.sum(w ** 3), jnp.array([1.0, 2.0]), jnp.array([1.0, 1.0]))
        Array([ 6., 12.], dtype=float...)
    """
    return jax.jvp(lambda p: jax.grad(fun)(p, *args), (params,), (vector,))[1]

