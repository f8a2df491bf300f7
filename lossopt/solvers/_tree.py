"""Arithmetic over parameter pytrees, written once for every solver and the driver.

Every helper keeps each leaf's dtype: a float64 hyperparameter never promotes float32
parameters, so the ``lax.while_loop`` carry keeps its types.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

__all__ = [
    "tree_add_scaled",
    "tree_all_finite",
    "tree_l2_norm",
    "tree_max_abs",
    "tree_scale",
    "tree_sub",
    "tree_vdot",
    "tree_where",
]


def tree_add_scaled(x: Any, scale: Any, d: Any) -> Any:
    """``x + scale * d`` leafwise, cast back to each leaf of ``x``'s dtype."""
    return jax.tree.map(lambda a, b: (a + scale * b).astype(a.dtype), x, d)


def tree_scale(scale: Any, x: Any) -> Any:
    """``scale * x`` leafwise, keeping each leaf's dtype."""
    return jax.tree.map(lambda a: (scale * a).astype(a.dtype), x)


def tree_sub(x: Any, y: Any) -> Any:
    """``x - y`` leafwise."""
    return jax.tree.map(jnp.subtract, x, y)


def tree_vdot(x: Any, y: Any) -> jax.Array:
    """Euclidean inner product ``sum_i <x_i, y_i>`` over all leaves."""
    parts = [jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y), strict=True)]
    return sum(parts[1:], start=parts[0]) if parts else jnp.zeros(())


def tree_l2_norm(x: Any) -> jax.Array:
    """Euclidean norm over all leaves."""
    return jnp.sqrt(tree_vdot(x, x))


def tree_max_abs(x: Any) -> jax.Array:
    """Max-abs (infinity) norm over all leaves; NaN if any entry is NaN."""
    leaves = jax.tree.leaves(x)
    if not leaves:
        return jnp.zeros(())
    # jnp.max propagates NaN, so a NaN gradient never passes a `<= gtol` test.
    return jnp.max(jnp.stack([jnp.max(jnp.abs(a)) for a in leaves]))


def tree_all_finite(x: Any) -> jax.Array:
    """True when every entry of every leaf is finite."""
    leaves = jax.tree.leaves(x)
    if not leaves:
        return jnp.array(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in leaves]))


def tree_where(cond: jax.Array, x: Any, y: Any) -> Any:
    """``x`` where the scalar ``cond`` is true, else ``y``, leafwise."""
    return jax.tree.map(lambda a, b: jnp.where(cond, a, b), x, y)
