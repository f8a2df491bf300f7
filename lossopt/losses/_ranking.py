"""Listwise ranking losses: ``ranking_softmax``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lossopt._validation import as_float_array, check_array_values, check_same_shape, describe
from lossopt.losses._masking import class_mask, reduce_masked
from lossopt.losses._numerics import mul_log
from lossopt.losses._reduce import broadcast_weights, check_reduction
from lossopt.losses._registry import register

__all__ = ["ranking_softmax"]


@register(
    task="classification",
    input_kind="scores",
    convex=True,
    smooth=True,
    robust=True,
    probabilistic=False,
    reference="Bruch et al. (2019), An Analysis of the Softmax Cross Entropy Loss for "
    "Learning-to-Rank, SIGIR; Cao et al. (2007), ListNet, ICML; optax.losses.ranking_softmax_loss",
)
def ranking_softmax(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    where: ArrayLike | None = None,
    item_weights: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Listwise softmax ranking loss: ``l = -sum_i w_i y_i log_softmax(s)_i`` per list.

    ``logits`` ``s`` and relevance ``labels`` ``y >= 0`` have shape ``(..., n_items)``: the
    last axis is one list (a query's documents). Each item's relevance pulls probability mass
    of the softmax over the list towards it (a cross-entropy against the unnormalised
    relevance; ListNet's top-one probability when ``y`` sums to 1). Convex and C2 in ``s``,
    gradient ``(sum_i w_i y_i) softmax(s) - w y`` (bounded). Matches
    ``optax.losses.ranking_softmax_loss`` with these names: optax's ``weights`` (per item,
    multiplying the labels) are ``item_weights`` here, because ``weights`` is per example (per
    list) in every lossopt loss; optax's default ``reduce_fn=jnp.mean`` (over the lists with a
    valid item) is ``reduction="mean"``, ``reduce_fn=None`` is ``"none"``.

    Args:
        logits: ``(..., n_items)`` scores.
        labels: relevance of the same shape, ``>= 0`` (graded or binary; ints promoted).
        where: optional boolean mask of the same shape (or one flag per list): padding items
            (False) take no part, as if dropped from the list; a list without a valid item
            gives 0 and is left out of ``"mean"``.
        item_weights: optional non-negative per-item weights, broadcast to the logits' shape
            (leading axes aligned), multiplying the labels.
        weights: optional per-list weights; reduction: "mean", "sum" or "none" (one value per
            list, shape ``logits.shape[:-1]``).

    Returns:
        The reduced loss, or per-list values with "none".

    Raises:
        TypeError: non-boolean ``where``.
        ValueError: 0-d logits, mismatched shapes, concrete negative labels or item weights
            (or NaN item weights), ``where`` of another shape, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> s = jnp.array([[2.0, 1.0, 0.0]])
        >>> round(float(ranking_softmax(s, jnp.array([[1.0, 0.0, 0.0]]))), 4)  # -log p_0
        0.4076

    References:
        Bruch, S., Wang, X., Bendersky, M. & Najork, M. (2019). An analysis of the softmax
        cross entropy loss for learning-to-rank with binary relevance. ICTIR, 75-78.
        Cao, Z., Qin, T., Liu, T.-Y., Tsai, M.-F. & Li, H. (2007). Learning to rank: from
        pairwise approach to listwise approach. ICML, 129-136.
    """
    check_reduction(reduction)
    s = as_float_array(logits, "logits")
    if s.ndim == 0:
        raise ValueError(f"`logits` must have a list axis (the last one); got {describe(logits)}")
    y = as_float_array(labels, "labels", like=s)
    check_same_shape(s, y, "logits", "labels")
    mask = class_mask(where, s.shape, -1)
    if mask is not None:
        s, y = mask.logits(s), mask.fill(y, 0.0)  # padding is never read
    check_array_values(y, "labels", lambda v: ~(v < 0), "relevance labels >= 0")
    if item_weights is not None:
        y = y * broadcast_weights(item_weights, s.shape, s.dtype, name="item_weights")
    values = -jnp.sum(mul_log(y, jax.nn.log_softmax(s, axis=-1)), axis=-1)
    return reduce_masked(values, weights, reduction, mask)
