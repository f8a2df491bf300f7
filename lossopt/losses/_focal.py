"""Focal losses on probabilities, with label smoothing (Keras' focal cross-entropies).

``binary_focal`` and ``categorical_focal`` are the probability-input halves of the pairs
``binary_focal`` / ``sigmoid_focal`` and ``categorical_focal`` / ``softmax_focal`` (the logit
inputs, below), as ``binary_cross_entropy`` /
``sigmoid_binary_cross_entropy``. They follow Keras' ``binary_focal_crossentropy`` and
``categorical_focal_crossentropy`` with ``from_logits=False``: Keras' ``from_logits=True``
is the logit-input loss here. Logs are clamped as in the probability-input cross-entropies,
``log(max(p, eps))`` with derivative ``1 / max(p, eps)`` (``eps`` the dtype's machine epsilon
by default), and the focal factor ``(1 - p)^gamma`` is ``exp(gamma log(max(1 - p, eps)))``:
value, gradient and Hessian stay finite at probabilities exactly 0 and 1 for every
``gamma >= 0``, including ``gamma < 1`` where the plain power has an infinite slope at
``p = 1``. Keras clips ``p`` to ``[1e-7, 1 - 1e-7]`` (zero gradient outside); values agree
away from the clip.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lossopt._validation import (
    as_float_array,
    check_in_interval,
    check_nonnegative,
    check_probabilities,
    describe,
)
from lossopt.losses._labels import (
    along_last,
    binary_inputs,
    check_soft_labels,
    class_ids,
    class_targets,
    per_class,
    take_last,
)
from lossopt.losses._masking import class_mask, reduce_masked
from lossopt.losses._numerics import (
    clamped_log,
    default_eps,
    is_concrete_zero,
    log1m_softmax,
    log_one_minus_pt,
    mul_log,
)
from lossopt.losses._reduce import check_reduction, reduce_loss
from lossopt.losses._registry import register

__all__ = ["binary_focal", "categorical_focal", "sigmoid_focal", "softmax_focal"]

_FOCAL = dict(
    task="classification",
    input_kind="probabilities",
    convex=True,
    smooth=True,
    robust=False,
    probabilistic=False,
)


def _check_focal(gamma, label_smoothing) -> None:
    check_nonnegative(gamma, "gamma")
    check_in_interval(
        label_smoothing, "label_smoothing", 0.0, 1.0, closed_low=True, closed_high=True
    )


def _focal_factor(q: jax.Array, gamma, eps) -> jax.Array:
    """``q^gamma`` as ``exp(gamma log(max(q, eps)))``; exactly 1 at ``gamma = 0``."""
    return jnp.exp(mul_log(gamma, clamped_log(q, eps)))


@register(
    **_FOCAL,
    reference="Lin et al. (2017), arXiv:1708.02002; Keras BinaryFocalCrossentropy",
)
def binary_focal(
    probs: ArrayLike,
    labels: ArrayLike,
    *,
    gamma: ArrayLike = 2.0,
    alpha: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    eps: float | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Binary focal loss on probabilities: ``l = alpha_t (1 - p_t)^gamma BCE(p, y')``.

    ``y' = (1 - ls) y + ls / 2`` (label smoothing towards 1/2, applied first, as Keras),
    ``p_t = y' p + (1 - y')(1 - p)``, ``BCE(p, y') = -(y' log p + (1 - y') log(1 - p))`` and
    ``alpha_t = alpha y' + (1 - alpha)(1 - y')`` (``alpha=None``: no weighting, Keras'
    ``apply_class_balancing=False``; pass ``alpha=0.25`` for Keras'
    ``apply_class_balancing=True`` with its default alpha). This is Keras'
    ``binary_focal_crossentropy(y_true, y_pred, from_logits=False)`` elementwise (Keras then
    averages over the last axis: the same ``"mean"``). ``gamma = 0`` with ``alpha=None`` is
    ``binary_cross_entropy`` on the smoothed labels. Convex in ``p`` (unlike ``sigmoid_focal``
    in the logit): for a hard label ``-(1 - p)^gamma log p`` has second derivative
    ``(1 - p)^(gamma - 2) [gamma (1 - gamma) log p + 2 gamma (1 - p) / p + ((1 - p) / p)^2]``,
    positive for every ``gamma >= 0`` because ``-log p <= (1 - p) / p``; for soft labels
    convexity was checked numerically (dense grids over ``p``, ``y`` and ``gamma``). The
    gradient in ``p`` is unbounded near a confidently wrong ``p`` (prefer ``sigmoid_focal``).

    Args:
        probs: predicted probabilities of the positive class.
        labels: array of ``probs``' shape with values in ``[0, 1]``.
        gamma: focusing parameter, >= 0.
        alpha: None or the positive-class weight in ``[0, 1]``.
        label_smoothing: in ``[0, 1]``.
        eps: clamp for the logs; default the dtype's machine epsilon. Must lie in (0, 1).
        weights: optional per-example weights; reduction: "mean", "sum" or "none" (elementwise).

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        ValueError: mismatched shapes, concrete probs or labels outside [0, 1] (or NaN),
            ``gamma < 0``, ``alpha`` or ``label_smoothing`` outside [0, 1], ``eps`` outside
            (0, 1), unknown reduction. Under ``jit`` probs and labels are not checked.

    Example (Keras' documented example; Keras prints ``[0.330, 0.206]``):
        >>> import jax.numpy as jnp
        >>> y_true, y_pred = jnp.array([[0, 1], [0, 0]]), jnp.array([[0.6, 0.4], [0.4, 0.6]])
        >>> [round(float(v), 3) for v in binary_focal(y_pred, y_true, reduction="none").mean(-1)]
        [0.33, 0.206]

    References:
        Lin, T.-Y., Goyal, P., Girshick, R., He, K. & Dollar, P. (2017). Focal loss for dense
        object detection. ICCV. arXiv:1708.02002. Keras documentation,
        ``keras.losses.BinaryFocalCrossentropy``.
    """
    _check_focal(gamma, label_smoothing)
    if alpha is not None:
        check_in_interval(alpha, "alpha", 0.0, 1.0, closed_low=True, closed_high=True)
    p, y = binary_inputs(probs, labels, "probs", reduction)
    check_probabilities(p, "probs")
    eps = default_eps(eps, p.dtype)
    y = (1.0 - label_smoothing) * y + 0.5 * label_smoothing
    bce = -(mul_log(y, clamped_log(p, eps)) + mul_log(1.0 - y, clamped_log(1.0 - p, eps)))
    one_minus_pt = y * (1.0 - p) + (1.0 - y) * p
    values = _focal_factor(one_minus_pt, gamma, eps) * bce
    if alpha is not None:
        values = (alpha * y + (1.0 - alpha) * (1.0 - y)) * values
    return reduce_loss(values, weights, reduction)


@register(
    **_FOCAL,
    reference="Lin et al. (2017), arXiv:1708.02002; Keras CategoricalFocalCrossentropy",
)
def categorical_focal(
    probs: ArrayLike,
    labels: ArrayLike,
    *,
    gamma: ArrayLike = 2.0,
    alpha: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    eps: float | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Categorical focal loss on probabilities: ``l = -sum_c a_c t'_c (1 - p_c)^gamma log p_c``.

    ``p`` is a distribution over the last axis (``K >= 2``); ``t' = (1 - ls) t + ls / K`` the
    smoothed one-hot/soft target (class ids are one-hot rows), exactly Keras'
    ``categorical_focal_crossentropy(y_true, y_pred, from_logits=False)``, per example. Keras
    renormalises ``p`` by its sum; here a concrete ``p`` must already sum to 1 (within
    ``sqrt(eps)`` of the dtype, as ``categorical_cross_entropy``) and raises otherwise.
    ``a = alpha``: None (no weighting), a scalar, or one non-negative weight per class ``(K,)``.
    Keras' default is ``alpha=0.25``: pass it to reproduce Keras' numbers; lossopt's default
    None matches ``softmax_focal``. It multiplies the loss; ``"mean"`` stays the plain mean
    over examples. ``gamma = 0`` with ``alpha=None`` is ``categorical_cross_entropy`` with the
    same label smoothing. Convex in ``p`` (a non-negative sum of the convex one-dimensional
    ``-(1 - p_c)^gamma log p_c``, see ``binary_focal``; ``softmax_focal`` is not convex in the
    logits); unbounded gradient near ``p_y = 0`` (prefer ``softmax_focal`` on logits).

    Args:
        probs: ``(..., K)`` probabilities, each row summing to 1.
        labels: integer class ids of shape ``probs.shape[:-1]`` or one-hot/soft labels of
            ``probs``' shape in ``[0, 1]``.
        gamma: focusing parameter, >= 0.
        alpha: None, a scalar or a ``(K,)`` vector, non-negative.
        label_smoothing: in ``[0, 1]``.
        eps: clamp for the logs; default the dtype's machine epsilon. Must lie in (0, 1).
        weights: optional per-example weights; reduction: "mean", "sum" or "none" (one value
            per example).

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        TypeError: float labels of the class-id shape.
        ValueError: labels of another shape, concrete ids outside ``[0, K)``, concrete probs
            outside [0, 1] or not summing to 1, soft labels outside [0, 1], ``K < 2``,
            ``gamma < 0``, ``label_smoothing`` outside [0, 1], negative or misshaped ``alpha``,
            ``eps`` outside (0, 1), unknown reduction. Under ``jit`` probs and labels are not
            checked.

    Example (Keras' documented example, whose default alpha is 0.25):
        >>> import jax.numpy as jnp
        >>> y_true = jnp.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        >>> y_pred = jnp.array([[0.05, 0.9, 0.05], [0.1, 0.85, 0.05]])
        >>> categorical_focal(y_pred, y_true, alpha=0.25, reduction="none")
        Array([2.634...e-04, 6.759...e-01], dtype=float...)

    References:
        Lin, T.-Y., Goyal, P., Girshick, R., He, K. & Dollar, P. (2017). Focal loss for dense
        object detection. ICCV. arXiv:1708.02002. Keras documentation,
        ``keras.losses.CategoricalFocalCrossentropy``.
    """
    check_reduction(reduction)
    _check_focal(gamma, label_smoothing)
    p = as_float_array(probs, "probs")
    if p.ndim == 0 or p.shape[-1] < 2:
        raise ValueError(
            f"`probs` must have K >= 2 classes on the last axis; got {describe(probs)}"
        )
    check_probabilities(p, "probs", sum_axis=-1)
    k = p.shape[-1]
    eps = default_eps(eps, p.dtype)
    kind, lab = class_targets(p, labels, -1, "probs")
    invalid = None
    if kind == "ids":
        safe, _, invalid = class_ids(lab, k, None)
        t = jax.nn.one_hot(safe, k, dtype=p.dtype)
    else:
        check_soft_labels(lab)
        t = lab
    t = (1.0 - label_smoothing) * t + label_smoothing / k
    if alpha is not None:
        a = per_class(alpha, "alpha", k, p.dtype, allow_scalar=True)
        t = t * (a if a.ndim == 0 else along_last(a, p.ndim))
    coeff = t * _focal_factor(1.0 - p, gamma, eps)
    values = -jnp.sum(mul_log(coeff, clamped_log(p, eps)), axis=-1)
    values = jnp.where(jnp.any(jnp.isnan(p), axis=-1), jnp.nan, values)
    if invalid is not None:
        values = jnp.where(invalid, jnp.nan, values)
    return reduce_loss(values, weights, reduction)


# --------------------------------------------------------------------------------------------
# Logit inputs
# --------------------------------------------------------------------------------------------

_CLS = dict(task="classification")


@register(
    **_CLS,
    input_kind="logits",
    convex=False,
    smooth=True,
    robust=True,
    probabilistic=False,
    reference="Lin et al. (2017), Focal Loss for Dense Object Detection, arXiv:1708.02002; "
    "torchvision.ops.sigmoid_focal_loss",
)
def sigmoid_focal(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    gamma: ArrayLike = 2.0,
    alpha: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Sigmoid focal loss: ``l = alpha_t (1 - p_t)^gamma * BCE(x, y)``.

    ``p = sigmoid(x)``, ``p_t = y p + (1 - y)(1 - p)``, ``BCE`` the ``sigmoid_binary_cross_
    entropy`` value and ``alpha_t = alpha y + (1 - alpha)(1 - y)`` (``alpha=None``: no
    weighting, ``alpha_t = 1``), as ``torchvision.ops.sigmoid_focal_loss`` and
    ``optax.sigmoid_focal_loss`` (per element). The factor ``(1 - p_t)^gamma`` is
    ``exp(gamma log(1 - p_t))`` with ``log(1 - p_t)`` in log space, so value, gradient and
    Hessian stay finite at +-1e4 logits for every ``gamma >= 0`` (including ``gamma < 1``).
    Not convex for ``gamma > 0`` (e.g. ``y = 1``, ``x`` near -4); ``gamma = 0`` gives
    ``alpha_t``-weighted BCE.

    Args:
        logits: binary logits.
        labels: array of the same shape, values in [0, 1].
        gamma: focusing parameter >= 0.
        alpha: optional weight of the positive class in [0, 1].
        label_smoothing: in [0, 1]; labels become ``(1 - ls) y + ls / 2`` first (Keras).
        weights: optional per-example weights; "mean" then is ``sum(w l) / sum(w)``.
        reduction: "mean" (default), "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        ValueError: mismatched shapes, labels outside [0, 1], ``gamma < 0``, ``alpha`` or
            ``label_smoothing`` outside [0, 1], unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> sigmoid_focal(jnp.array([0.0, 2.0]), jnp.array([1.0, 0.0]), alpha=0.25,
        ...               reduction="none")
        Array([0.0433..., 1.2375...], dtype=float...)

    References:
        Lin et al. (2017), Focal Loss for Dense Object Detection, arXiv:1708.02002;
        torchvision.ops.sigmoid_focal_loss.
    """
    _check_focal(gamma, label_smoothing)
    if alpha is not None:
        check_in_interval(alpha, "alpha", 0.0, 1.0, closed_low=True, closed_high=True)
    x, y = binary_inputs(logits, labels, "logits", reduction)
    if not is_concrete_zero(label_smoothing):  # Keras: smooth towards 1/2 first
        y = (1.0 - label_smoothing) * y + 0.5 * label_smoothing
    ce = -mul_log(y, jax.nn.log_sigmoid(x)) - mul_log(1.0 - y, jax.nn.log_sigmoid(-x))
    values = jnp.exp(mul_log(gamma, log_one_minus_pt(x, y))) * ce  # 0^0 = 1 at gamma = 0
    if alpha is not None:
        values = (alpha * y + (1.0 - alpha) * (1.0 - y)) * values
    return reduce_loss(values, weights, reduction)


@register(
    **_CLS,
    input_kind="logits",
    convex=False,
    smooth=True,
    robust=True,
    probabilistic=False,
    reference="Lin et al. (2017), Focal Loss for Dense Object Detection, arXiv:1708.02002",
)
def softmax_focal(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    gamma: ArrayLike = 2.0,
    alpha: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Softmax (multiclass) focal loss: ``l = -alpha_y (1 - p_y)^gamma log p_y``.

    ``p = softmax(x)`` over the last axis (``K >= 2``). ``labels``: class ids (shape
    ``logits.shape[:-1]``) or one-hot/soft labels of the logits' shape, for which
    ``l = -sum_c alpha_c t_c (1 - p_c)^gamma log p_c``. ``alpha``: None (no weighting), a
    scalar, or one non-negative weight per class ``(K,)``; it multiplies the loss and ``"mean"``
    stays the plain mean over examples (unlike ``class_weights`` in the cross-entropy, which
    renormalises). ``log(1 - p_c)`` is computed without cancellation even when ``p_c`` rounds
    to 1, so the loss is finite to second order at +-1e4 logits. ``gamma = 0`` with
    ``alpha=None`` is ``softmax_cross_entropy``. Not convex for ``gamma > 0``.

    Class ids gather the target entry, so a masked (``-inf``) logit of another class is fine.
    ``where`` masks classes out as for :func:`softmax_cross_entropy` (softmax over the kept
    classes, masked entries never read, all-masked examples 0 and left out of ``"mean"``).

    Args:
        logits: ``(..., K)`` logits, ``K >= 2``.
        labels: integer class ids of shape ``logits.shape[:-1]`` or one-hot/soft labels of
            ``logits``' shape.
        gamma: focusing parameter >= 0.
        alpha: None, a scalar or non-negative ``(K,)`` class weights.
        label_smoothing: in [0, 1]; the target becomes ``(1 - ls) t + ls / K`` first (Keras;
            ``K`` counts the kept classes under ``where``), class ids included.
        where: optional boolean class mask (the first argument's shape or one flag per example).
        weights: optional per-example weights; "mean" then is ``sum(w l) / sum(w)``.
        reduction: "mean" (default), "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        TypeError: float labels of the class-id shape; non-boolean ``where``.
        ValueError: bad labels shape, concrete ids outside ``[0, K)`` or on a masked class,
            concrete soft labels outside [0, 1] (not checked under ``jit``), ``K < 2``,
            ``gamma < 0``, ``label_smoothing`` outside [0, 1], negative or misshaped ``alpha``,
            ``where`` of another shape, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> logits = jnp.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
        >>> softmax_focal(logits, jnp.array([0, 2]), reduction="none")
        Array([0.0108..., 0.4882...], dtype=float...)

    References:
        Lin et al. (2017), Focal Loss for Dense Object Detection, arXiv:1708.02002.
    """
    check_reduction(reduction)
    _check_focal(gamma, label_smoothing)
    x = as_float_array(logits, "logits")
    if x.ndim == 0 or x.shape[-1] < 2:
        raise ValueError(
            f"`logits` must have K >= 2 classes on the last axis; got {describe(logits)}"
        )
    k = x.shape[-1]
    kind, lab = class_targets(x, labels, -1, "logits")
    a = None if alpha is None else per_class(alpha, "alpha", k, x.dtype, allow_scalar=True)
    mask = class_mask(where, x.shape, -1)
    if mask is not None:
        x = mask.logits(x)
    factor = jnp.exp(mul_log(gamma, log1m_softmax(x)))  # (1 - p)^0 = 1 even at p = 1
    log_p = jax.nn.log_softmax(x, axis=-1)
    ls = label_smoothing
    smoothing = not is_concrete_zero(ls)
    # Keras: the target becomes (1 - ls) t + ls / K, K the kept classes.
    uniform = (ls / k) if mask is None else mask.fill(ls / mask.count(x.dtype), 0.0)
    if kind == "ids":
        safe, _, invalid = class_ids(lab, k, None)
        if mask is not None:
            invalid = invalid | mask.ids_on_masked(safe, lab)
        # Gathered, not a one-hot product: a masked (-inf) logit of another class must not
        # give 0 * -inf = NaN.
        coeff = take_last(factor, safe)
        if a is not None:
            coeff = coeff * (a if a.ndim == 0 else a[safe])
        if smoothing:
            coeff = (1.0 - ls) * coeff
        values = -mul_log(coeff, take_last(log_p, safe))
        if smoothing:
            spread = uniform * factor
            if a is not None:
                spread = spread * (a if a.ndim == 0 else along_last(a, x.ndim))
            values = values - jnp.sum(mul_log(jnp.broadcast_to(spread, log_p.shape), log_p), -1)
        values = jnp.where(invalid, jnp.nan, values)
    else:
        if mask is not None:
            lab = mask.fill(lab, 0.0)
        check_soft_labels(lab)
        if smoothing:
            lab = (1.0 - ls) * lab + uniform
        target = lab if a is None else lab * (a if a.ndim == 0 else along_last(a, x.ndim))
        values = -jnp.sum(mul_log(target * factor, log_p), axis=-1)
    return reduce_masked(values, weights, reduction, mask)
