"""The one reduction and weighting helper every loss goes through.

Contract (see DESIGN.md):

* ``reduction="none"`` returns the per-example values (times ``weights`` when given);
* ``reduction="sum"`` returns ``sum(w * l)``;
* ``reduction="mean"`` returns ``sum(w * l) / sum(w)`` (plain mean without weights); all-zero
  weights give exactly 0, never NaN, and the gradient stays finite.

Checked here, for every loss: concrete ``weights`` must be finite and non-negative (a negative
weight turns a loss into a gain: ``mse([0, 0], [3, 1], weights=[1, -1])`` would be 0); the mean
of an empty batch raises instead of returning NaN (``"sum"`` of an empty batch is 0 and
``"none"`` returns the empty array). Weights that are traced (under ``jit``, or learned) are
not checked: their values are unknown at trace time.

``weights`` must broadcast to the per-example shape *without* rank promotion surprises: a
lower-rank weight array is aligned with the leading axes of the per-example values (one weight
per example for an ``(n, d)`` regression output given ``weights`` of shape ``(n,)``), which is
what users mean and what PyTorch's ``reduction='none'`` + multiply would need explicit reshapes
for.
"""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from lossopt._validation import as_float_array, check_array_values, check_choice, describe

__all__ = [
    "REDUCTIONS",
    "Reduction",
    "broadcast_weights",
    "check_nonempty",
    "check_reduction",
    "reduce_loss",
    "reduce_normalised",
]

Reduction = Literal["mean", "sum", "none"]
REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")


def check_reduction(reduction: Any) -> None:
    """Raise ValueError unless ``reduction`` is "mean", "sum" or "none"."""
    check_choice(reduction, "reduction", REDUCTIONS)


def broadcast_weights(weights: Any, shape: tuple[int, ...], dtype: Any, name: str = "weights"):
    """Broadcast ``weights`` to ``shape``, aligning a lower-rank array with the leading axes.

    Raises:
        ValueError: if the shapes are incompatible, naming ``name`` and both shapes, or if
            concrete weights hold a negative, NaN or infinite entry.
    """
    check_array_values(weights, name, lambda v: np.isfinite(v) & (v >= 0), "finite weights >= 0")
    w = as_float_array(weights, name).astype(dtype)
    if w.ndim > len(shape):
        raise ValueError(
            f"`{name}` must broadcast to the per-example loss shape {tuple(shape)}; got "
            f"{describe(w)}"
        )
    # Align leading axes: (n,) against (n, d) means one weight per row.
    w = w.reshape(w.shape + (1,) * (len(shape) - w.ndim))
    try:
        return jnp.broadcast_to(w, shape)
    except ValueError as err:
        raise ValueError(
            f"`{name}` must broadcast to the per-example loss shape {tuple(shape)} (aligned on "
            f"the leading axes); got {name}.shape={tuple(jnp.shape(weights))}"
        ) from err


def check_nonempty(values: jax.Array, reduction: str) -> None:
    """Raise ValueError for the mean of zero per-example values (it would be NaN, 0/0)."""
    if reduction == "mean" and values.size == 0:
        axis = next(i for i, n in enumerate(values.shape) if n == 0)
        what = "batch axis 0" if axis == 0 else f"axis {axis}"
        raise ValueError(
            f"the per-example loss values have shape {tuple(values.shape)}: {what} has size 0, "
            "and the mean of an empty batch is undefined. Pass a non-empty batch, or use "
            'reduction="sum" (0 for an empty batch) or "none".'
        )


def reduce_loss(
    values: jax.Array,
    weights: Any = None,
    reduction: str = "mean",
    *,
    mask: jax.Array | None = None,
) -> jax.Array:
    """Reduce per-example loss ``values`` with optional ``weights`` and boolean ``mask``.

    Args:
        values: per-example losses.
        weights: optional non-negative finite weights, broadcast to ``values.shape`` (leading-axis
            aligned). With ``reduction="mean"`` the result is ``sum(w*l)/sum(w)``.
        reduction: "mean", "sum" or "none".
        mask: optional boolean array of ``values.shape``; masked-out entries (False) count with
            weight 0 and are returned as 0 by ``reduction="none"`` (used by ``ignore_index``).

    Returns:
        A scalar for "mean"/"sum", an array of ``values.shape`` for "none".

    Raises:
        ValueError: unknown reduction; ``weights`` that do not broadcast, or (when concrete)
            hold a negative, NaN or infinite entry; ``"mean"`` of an empty batch.

    Example:
        >>> import jax.numpy as jnp
        >>> from lossopt.losses._reduce import reduce_loss
        >>> float(reduce_loss(jnp.array([1.0, 2.0, 3.0]), jnp.array([1.0, 0.0, 1.0])))
        2.0
    """
    check_reduction(reduction)
    check_nonempty(values, reduction)
    has_weights = weights is not None or mask is not None
    w = None
    if weights is not None:
        w = broadcast_weights(weights, values.shape, values.dtype)
    if mask is not None:
        m = mask.astype(values.dtype)
        w = m if w is None else w * m
    if w is not None:
        # Double where: masked or zero-weight entries may hold inf/NaN (an ignored class id);
        # they must contribute exactly 0 to the value and to the gradient.
        keep = w != 0
        weighted = jnp.where(keep, w * jnp.where(keep, values, 0), 0)
    else:
        weighted = values
    if reduction == "none":
        return weighted
    total = jnp.sum(weighted)
    if reduction == "sum":
        return total
    if not has_weights:
        return jnp.mean(values)
    denom = jnp.sum(w)
    nonzero = denom != 0
    return jnp.where(nonzero, total / jnp.where(nonzero, denom, 1), jnp.zeros_like(total))


def reduce_normalised(values, normaliser, weights, reduction, mask):
    """Reduce with PyTorch's class-weighted mean ``sum(values) / sum(normaliser)``.

    ``values`` already carry the class weights; ``normaliser`` is each example's weight mass
    (``class_weights[y]`` for ids). Without a normaliser this is plain :func:`reduce_loss`.
    Both sums go through :func:`reduce_loss`, so ``weights`` and the ``ignore_index`` mask act
    identically on numerator and denominator; an all-zero denominator gives 0, not NaN.
    """
    if normaliser is None or reduction != "mean":
        return reduce_loss(values, weights, reduction, mask=mask)
    check_nonempty(values, reduction)
    num = reduce_loss(values, weights, "sum", mask=mask)
    den = reduce_loss(normaliser, weights, "sum", mask=mask)
    nonzero = den != 0
    return jnp.where(nonzero, num / jnp.where(nonzero, den, 1.0), jnp.zeros_like(num))
