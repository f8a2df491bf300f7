"""Count-data losses on predicted rates: Keras' Poisson loss.

``poisson(rates, counts)`` takes the Poisson rate itself (Keras' ``y_pred``), where
``poisson_nll`` takes its log by default (PyTorch's ``log_input=True``); both are the same
negative log-likelihood up to the constant ``log(c!)``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lossopt._validation import (
    as_float_array,
    check_array_values,
    check_bool,
    check_positive,
    check_same_shape,
)
from lossopt.losses._reduce import check_reduction, reduce_loss
from lossopt.losses._registry import register

__all__ = ["poisson", "poisson_nll_values"]


@register(
    task="probabilistic",
    input_kind="rate",
    convex=True,
    smooth=True,
    robust=False,
    probabilistic=True,
    reference="Keras Poisson",
)
def poisson(
    rates: ArrayLike,
    counts: ArrayLike,
    *,
    eps: float = 1e-7,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Poisson loss on predicted rates (Keras): ``l = r - c log(r + eps)``.

    ``r >= 0`` is the predicted rate and ``c >= 0`` the observed count; ``eps`` (Keras'
    ``backend.epsilon()``, 1e-7) keeps ``log(0)`` away. This is Keras' ``keras.losses.Poisson``
    elementwise (Keras averages over the last axis, then over the batch: the same ``"mean"``)
    and ``poisson_nll(r, c, log_input=False, eps=eps)``, which computes it. Convex and C2 in
    ``r`` (Hessian ``c / (r + eps)^2``); the gradient ``1 - c / (r + eps)`` is unbounded as
    ``r -> 0`` with ``c > 0`` (finite at ``r = 0``: ``1 - c / eps``).

    Args:
        rates: predicted rates, ``>= 0``.
        counts: observed counts of ``rates``' shape, ``>= 0`` (non-integer counts accepted).
        eps: > 0.
        weights: optional per-example weights; reduction: "mean", "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        ValueError: mismatched shapes, concrete negative (or NaN) rates or counts,
            ``eps <= 0``, unknown reduction. Under ``jit`` rates and counts are not checked.

    Example (Keras' documented example: 0.5):
        >>> import jax.numpy as jnp
        >>> y_true = jnp.array([[0.0, 1.0], [0.0, 0.0]])
        >>> y_pred = jnp.array([[1.0, 1.0], [0.0, 0.0]])
        >>> round(float(poisson(y_pred, y_true)), 6)
        0.5

    References:
        Keras documentation, ``keras.losses.Poisson``.
    """
    return poisson_nll_values(rates, counts, "rates", False, False, eps, weights, reduction)


def poisson_nll_values(first, counts, name, log_input, full, eps, weights, reduction):
    """The Poisson negative log-likelihood, the body of ``poisson`` and ``poisson_nll`` (internal).

    ``name`` is the first argument's name in error messages; ``log_input``: ``first`` holds
    ``log r`` (``exp(x) - c x``) rather than ``r`` (``r - c log(r + eps)``); ``full`` adds the
    Stirling term of ``log(c!)`` for ``c > 1``.
    """
    check_reduction(reduction)
    check_bool(log_input, "log_input")
    check_bool(full, "full")
    check_positive(eps, "eps")
    x = as_float_array(first, name)
    c = as_float_array(counts, "counts", like=x)
    check_same_shape(x, c, name, "counts")
    check_array_values(c, "counts", lambda v: v >= 0, "counts >= 0")
    if log_input:
        values = jnp.exp(x) - c * x
    else:
        check_array_values(x, name, lambda v: v >= 0, "rates >= 0")
        values = x - c * jnp.log(x + eps)
    if full:
        big = c > 1
        cs = jnp.where(big, c, 2.0)  # double where: log of c <= 1 never evaluated
        stirling = cs * jnp.log(cs) - cs + 0.5 * jnp.log(2.0 * math.pi * cs)
        values = values + jnp.where(big, stirling, 0.0)
    return reduce_loss(values, weights, reduction)
