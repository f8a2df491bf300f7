"""Poly-1 loss: the softmax cross-entropy plus ``epsilon (1 - p_t)`` (Leng et al. 2022)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lossopt._validation import as_float_array, check_array_values, describe
from lossopt.losses._labels import check_soft_labels, class_ids, class_targets, take_last
from lossopt.losses._masking import class_mask, reduce_masked
from lossopt.losses._numerics import mul_log
from lossopt.losses._reduce import check_reduction
from lossopt.losses._registry import register

__all__ = ["poly_loss"]


@register(
    task="classification",
    input_kind="logits",
    convex=False,
    smooth=True,
    robust=True,
    probabilistic=False,
    reference="Leng et al. (2022), PolyLoss: A Polynomial Expansion Perspective of "
    "Classification Loss Functions, ICLR, arXiv:2204.12511; optax.losses.poly_loss_cross_entropy",
)
def poly_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    epsilon: ArrayLike = 2.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Poly-1 loss: ``l = -sum_c t_c log p_c + epsilon sum_c t_c (1 - p_c)``, ``p = softmax(x)``.

    For class ids (or one-hot labels) ``l = -log p_y + epsilon (1 - p_y)``: the first term of
    the cross-entropy's expansion ``-log p = sum_j (1 - p)^j / j`` reweighted by
    ``1 + epsilon``. ``epsilon = 0`` is ``softmax_cross_entropy``. Matches
    ``optax.losses.poly_loss_cross_entropy`` (whose default ``epsilon`` is also 2.0) per
    example, its ``where`` included. ``epsilon >= -1`` keeps the loss decreasing in ``p_y``
    (``dl/dp_y = -1/p_y - epsilon <= 0``); below it the loss would reward a confident wrong
    answer, so it raises. Not convex for ``epsilon > 1``: with two classes and margin
    ``m = x_y - x_other`` the curvature is ``s (1 - s) (1 - epsilon (1 - 2 s))``, ``s =
    sigmoid(m)``, negative where ``s < (1 - 1/epsilon) / 2`` (``m < -log 3`` at the default).
    Gradient ``softmax(x) - t`` plus ``-epsilon`` times the bounded ``d p_y``: bounded; C2.

    Args:
        logits: ``(..., K)`` scores.
        labels: class ids ``logits.shape[:-1]`` or one-hot/soft labels of the logits' shape.
        epsilon: the Poly-1 coefficient, a finite number ``>= -1``.
        where: optional boolean class mask (the logits' shape, or one flag per example):
            masked classes take no part, as if dropped by hand; all-masked examples give 0 and
            are left out of ``"mean"``.
        weights, reduction: as for every loss.

    Returns:
        The reduced loss, or per-example values ``logits.shape[:-1]`` with "none".

    Raises:
        TypeError: float labels of the class-id shape; non-boolean ``where``.
        ValueError: ``epsilon < -1`` or not finite, ``K < 2``, labels of another shape,
            concrete ids outside ``[0, K)`` or on a masked class, concrete soft labels outside
            [0, 1], ``where`` of another shape, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.array([[0.0, 0.0], [2.0, -1.0]])
        >>> poly_loss(x, jnp.array([0, 1]), reduction="none")  # log 2 + 2 * 0.5, ...
        Array([1.6931..., 4.9537...], dtype=float...)

    References:
        Leng, Z., Tan, M., Liu, C., Cubuk, E. D., Shi, X., Cheng, S. & Anguelov, D. (2022).
        PolyLoss: a polynomial expansion perspective of classification loss functions. ICLR.
    """
    check_reduction(reduction)
    check_array_values(
        epsilon, "epsilon", lambda v: (v >= -1) & (v < float("inf")), "a finite number >= -1"
    )
    x = as_float_array(logits, "logits")
    if x.ndim == 0 or x.shape[-1] < 2:
        raise ValueError(
            f"`logits` must have K >= 2 classes on the last axis; got {describe(logits)}"
        )
    k = x.shape[-1]
    mask = class_mask(where, x.shape, -1)
    kind, lab = class_targets(x, labels, -1, "logits")
    nan_in = jnp.any(jnp.isnan(x if mask is None else mask.fill(x, 0.0)), axis=-1)
    if mask is not None:
        x = mask.logits(x)
    log_p = jax.nn.log_softmax(x, axis=-1)
    if kind == "ids":
        safe, _, invalid = class_ids(lab, k, None)
        if mask is not None:
            invalid = invalid | mask.ids_on_masked(safe, lab)
        log_pt = take_last(log_p, safe)
        values = -log_pt + epsilon * -jnp.expm1(log_pt)  # 1 - p_y without cancellation
        values = jnp.where(invalid, jnp.nan, values)
    else:
        if mask is not None:
            lab = mask.fill(lab, 0.0)
        check_soft_labels(lab)
        values = -jnp.sum(mul_log(lab, log_p), axis=-1) + epsilon * jnp.sum(
            lab * -jnp.expm1(log_p), axis=-1
        )
    values = jnp.where(nan_in, jnp.nan, values)
    return reduce_masked(values, weights, reduction, mask)
