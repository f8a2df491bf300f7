"""Penalties over parameter pytrees: ``l1``, ``l2`` and ``elastic_net``.

They follow the seed document's conventions: ``l2 = strength * sum(w^2)`` (no 1/2 factor) and
``elastic_net = alpha * (l1_ratio * sum|w| + (1 - l1_ratio) * sum(w^2))``. Each sums over every
leaf of ``params`` (arrays, tuples, dicts, Flax/Equinox parameter trees). To leave a bias out,
pass only the leaves you want penalised, e.g. ``l2(params["w"], 1e-3)``.

The absolute value uses the minimum-norm subgradient at 0 (0, not ``jnp.abs``'s 1), so a
proximal or subgradient solver sees an exact zero gradient at a sparse optimum.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lossopt._pytree import PyTree
from lossopt._validation import check_in_interval, check_nonnegative, float_leaves

__all__ = ["elastic_net", "l1", "l2"]


def _sum_abs(params: PyTree) -> jax.Array:
    return sum((jnp.sum(x * jnp.sign(x)) for x in float_leaves(params)), start=jnp.zeros(()))


def _sum_squares(params: PyTree) -> jax.Array:
    return sum((jnp.sum(x * x) for x in float_leaves(params)), start=jnp.zeros(()))


def l1(params: PyTree, strength: ArrayLike = 1.0) -> jax.Array:
    """L1 (lasso) penalty ``strength * sum_i |w_i|`` over every leaf of ``params``.

    Gradient ``strength * sign(w)``, with 0 at ``w = 0`` (the minimum-norm subgradient).

    Raises:
        ValueError: ``strength < 0``.

    Example:
        >>> import jax.numpy as jnp
        >>> float(l1({"w": jnp.array([1.0, -2.0]), "b": jnp.array(3.0)}, 0.5))
        3.0
    """
    check_nonnegative(strength, "strength")
    return strength * _sum_abs(params)


def l2(params: PyTree, strength: ArrayLike = 1.0) -> jax.Array:
    """L2 (ridge) penalty ``strength * sum_i w_i^2`` (the seed's convention: no 1/2).

    Raises:
        ValueError: ``strength < 0``.

    Example:
        >>> import jax.numpy as jnp
        >>> float(l2(jnp.array([1.0, -2.0]), 0.1))
        0.5...
    """
    check_nonnegative(strength, "strength")
    return strength * _sum_squares(params)


def elastic_net(params: PyTree, alpha: ArrayLike = 1.0, l1_ratio: ArrayLike = 0.5) -> jax.Array:
    """Elastic net ``alpha * (l1_ratio * sum|w| + (1 - l1_ratio) * sum w^2)``.

    The seed's convention (scikit-learn's ``ElasticNet`` halves the squared term instead).

    Raises:
        ValueError: ``alpha < 0`` or ``l1_ratio`` outside [0, 1].

    Example:
        >>> import jax.numpy as jnp
        >>> float(elastic_net(jnp.array([1.0, -2.0]), alpha=1.0, l1_ratio=0.5))
        4.0
    """
    check_nonnegative(alpha, "alpha")
    check_in_interval(l1_ratio, "l1_ratio", 0.0, 1.0, closed_low=True, closed_high=True)
    return alpha * (l1_ratio * _sum_abs(params) + (1.0 - l1_ratio) * _sum_squares(params))
