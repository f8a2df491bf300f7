"""``l2_loss``: half the squared error, optax's convention."""

from __future__ import annotations

import jax
from jax.typing import ArrayLike

from lossopt.losses._labels import paired_inputs
from lossopt.losses._reduce import reduce_loss
from lossopt.losses._registry import register

__all__ = ["l2_loss"]


@register(
    task="regression",
    input_kind="values",
    convex=True,
    smooth=True,
    robust=False,
    probabilistic=False,
    reference="optax.losses.l2_loss",
)
def l2_loss(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Half squared error: ``l = (p - t)^2 / 2``, elementwise.

    Exactly ``mse / 2``: the 1/2 makes the gradient the residual ``p - t`` and the Hessian the
    identity (``mse``'s are ``2 (p - t)`` and ``2 I``), the Gaussian negative log-likelihood at
    unit variance up to a constant. optax's ``l2_loss`` uses this convention and
    ``squared_error`` the other; PyTorch's ``MSELoss``, Keras' ``MeanSquaredError`` and
    lossopt's ``mse`` have no 1/2. Unlike ``optax.losses.l2_loss``, ``targets`` is required
    and must have the predictions' shape (never broadcast); pass zeros for a penalty on
    ``p``.

    Args:
        predictions: predicted values.
        targets: targets of the same shape.
        weights, reduction: as for every loss ("none": elementwise values).

    Returns:
        The reduced loss, or elementwise values with "none".

    Raises:
        ValueError: mismatched shapes, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> p, t = jnp.array([3.0, 0.0]), jnp.array([1.0, 0.0])
        >>> float(l2_loss(p, t)), float(l2_loss(p, t, reduction="sum"))  # mse would give 2.0
        (1.0, 2.0)

    References:
        optax.losses.l2_loss (optax documentation); the 1/2 is the convention of Gauss's least
        squares in, e.g., Nocedal & Wright (2006), Numerical Optimization, ch. 10.
    """
    p, t = paired_inputs(predictions, targets, "predictions", "targets", reduction)
    r = p - t
    return reduce_loss(0.5 * r * r, weights, reduction)
