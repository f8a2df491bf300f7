"""Losses robust to noisy labels: generalized cross-entropy (Zhang & Sabuncu 2018).

The generalized cross-entropy ``L_q`` interpolates between the cross-entropy (``q -> 0``),
which fits every label including the wrong ones, and the mean absolute error of the softmax
output (``q = 1``), whose bounded per-example loss makes it tolerant of label noise.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lossopt._validation import as_float_array, check_in_interval, describe
from lossopt.losses._labels import check_soft_labels, class_ids, class_targets, take_last
from lossopt.losses._reduce import check_reduction, reduce_loss
from lossopt.losses._registry import register

__all__ = ["generalized_cross_entropy"]


@register(
    task="classification",
    input_kind="logits",
    convex=False,
    smooth=True,
    robust=True,
    probabilistic=False,
    reference="Zhang & Sabuncu (2018), Generalized Cross Entropy Loss for Training Deep Neural "
    "Networks with Noisy Labels, NeurIPS, arXiv:1805.07836",
)
def generalized_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    q: ArrayLike = 0.7,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Generalized cross-entropy: ``l = (1 - p_y^q) / q`` with ``p = softmax(x)``.

    For one-hot/soft labels ``l = sum_c t_c (1 - p_c^q) / q``. Computed as
    ``-expm1(q log_softmax(x)_y) / q``: no cancellation for small ``q``, where it tends to the
    cross-entropy ``-log p_y`` (the error is about ``q (log p_y)^2 / 2``), and finite for
    ``p_y -> 0`` (the loss is bounded by ``1 / q``, the source of its robustness to wrong
    labels). ``q = 1`` gives ``1 - p_y``, the mean absolute error of the softmax output up to
    a factor 2. The paper's default is ``q = 0.7``. Gradient ``p_y^q (p - e_y)`` (bounded);
    not convex for ``q > 0``. Finite value, gradient and Hessian at +-1e4 logits; a masked
    (``-inf``) logit of another class is fine (the target entry is gathered).

    Args:
        logits: ``(..., K)`` logits, ``K >= 2``.
        labels: integer class ids of shape ``logits.shape[:-1]`` or one-hot/soft labels of
            ``logits``' shape in ``[0, 1]``.
        q: in ``(0, 1]`` (``q = 0`` is the cross-entropy: use ``softmax_cross_entropy``).
        weights: optional per-example weights; reduction: "mean", "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        TypeError: float labels of the class-id shape.
        ValueError: ``q`` outside ``(0, 1]``, labels of another shape, concrete ids outside
            ``[0, K)`` or soft labels outside [0, 1], ``K < 2``, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.log(jnp.array([[0.5, 0.25, 0.25]]))
        >>> round(float(generalized_cross_entropy(x, jnp.array([0]), q=1.0)), 4)  # 1 - p_y
        0.5
        >>> round(float(generalized_cross_entropy(x, jnp.array([0]), q=1e-6)), 4)  # -log(0.5)
        0.6931

    References:
        Zhang, Z. & Sabuncu, M. R. (2018). Generalized cross entropy loss for training deep
        neural networks with noisy labels. NeurIPS. arXiv:1805.07836.
    """
    check_reduction(reduction)
    check_in_interval(q, "q", 0.0, 1.0, closed_high=True)
    x = as_float_array(logits, "logits")
    if x.ndim == 0 or x.shape[-1] < 2:
        raise ValueError(
            f"`logits` must have K >= 2 classes on the last axis; got {describe(logits)}"
        )
    k = x.shape[-1]
    kind, lab = class_targets(x, labels, -1, "logits")
    log_p = jax.nn.log_softmax(x, axis=-1)
    if kind == "ids":
        safe, _, invalid = class_ids(lab, k, None)
        values = -jnp.expm1(q * take_last(log_p, safe)) / q
        values = jnp.where(invalid, jnp.nan, values)
    else:
        check_soft_labels(lab)
        # A zero-mass class contributes exactly 0 even where its log-probability is -inf
        # (expm1(-inf) = -1 is finite, so the product needs no guard).
        values = -jnp.sum(lab * jnp.expm1(q * log_p), axis=-1) / q
    values = jnp.where(jnp.any(jnp.isnan(x), axis=-1), jnp.nan, values)
    return reduce_loss(values, weights, reduction)
