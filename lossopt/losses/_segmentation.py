"""Segmentation overlap losses: soft Dice, Tversky, focal Tversky.

``loss(probs, targets, *, ..., class_axis=None, class_weights=None, weights=None,
reduction="mean")``. Axis 0 indexes examples; each example's overlap sums run over all its
other axes, so ``reduction="none"`` returns one value per example (shape ``(n,)``). With
``class_axis`` (e.g. ``-1`` for ``(n, H, W, C)`` one-hot targets) the overlap is computed per
class and the per-class losses are averaged with ``class_weights`` (``sum_c w_c l_c /
sum_c w_c``; uniform by default). ``probs`` are probabilities (apply ``jax.nn.sigmoid`` /
``jax.nn.softmax`` to logits first); ``targets`` binary or soft labels of the same shape.

With probabilities in ``[0, 1]`` the overlap sums are non-negative and ``smooth > 0`` keeps every
denominator positive: finite value, gradient and Hessian everywhere, including empty masks
(both sums 0 gives loss 0). Everything is traceable, unlike ``optax.losses.dice_loss`` with
``apply_softmax=False`` (whose probability check runs a Python ``if`` on array values): concrete
``probs`` and ``targets`` outside ``[0, 1]`` (or NaN) raise, naming the first offending entry;
under ``jit`` they are not checked (out-of-range values then give losses outside ``[0, 1]``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lossopt._validation import (
    as_float_array,
    check_bool,
    check_nonnegative,
    check_positive,
    check_probabilities,
    describe,
    when_concrete,
)
from lossopt.losses._labels import paired_inputs
from lossopt.losses._reduce import reduce_loss
from lossopt.losses._registry import register

__all__ = ["dice", "focal_tversky", "tversky"]


def _overlaps(probs, targets, reduction, class_axis):
    """Validated ``(tp, fp, fn)`` sums of shape ``(n,)`` or ``(n, C)``."""
    p, t = paired_inputs(probs, targets, "probs", "targets", reduction)
    check_probabilities(p, "probs")
    check_probabilities(t, "targets")
    if p.ndim < 1:
        raise ValueError(f"`probs` needs a batch axis (axis 0); got {describe(p)}")
    if class_axis is not None:
        if not isinstance(class_axis, int) or isinstance(class_axis, bool):
            raise TypeError(f"`class_axis` must be an int or None; got {describe(class_axis)}")
        if not -p.ndim <= class_axis < p.ndim or class_axis % p.ndim == 0:
            raise ValueError(
                f"`class_axis` must name a non-batch axis of probs (shape {tuple(p.shape)}): "
                f"1..{p.ndim - 1} or negative; got {class_axis}"
            )
        p = jnp.moveaxis(p, class_axis, -1)
        t = jnp.moveaxis(t, class_axis, -1)
        axes = tuple(range(1, p.ndim - 1))
    else:
        axes = tuple(range(1, p.ndim))
    tp = jnp.sum(p * t, axis=axes)
    fp = jnp.sum(p * (1 - t), axis=axes)
    fn = jnp.sum((1 - p) * t, axis=axes)
    return tp, fp, fn


def _class_average(values: jax.Array, class_axis, class_weights) -> jax.Array:
    """Average per-class values ``(n, C)`` over classes with ``class_weights``; ``(n,)`` as is."""
    if class_axis is None:
        if class_weights is not None:
            raise ValueError("`class_weights` needs `class_axis` (the axis holding the classes)")
        return values
    k = values.shape[-1]
    if class_weights is None:
        return jnp.mean(values, axis=-1)
    w = as_float_array(class_weights, "class_weights").astype(values.dtype)
    if tuple(w.shape) != (k,):
        raise ValueError(
            f"`class_weights` must have shape ({k},), one weight per class; got {describe(w)}"
        )
    check_nonnegative(w, "class_weights")
    when_concrete(_check_not_all_zero, w)
    return jnp.sum(values * w[None, :], axis=-1) / jnp.sum(w)


def _check_not_all_zero(concrete: np.ndarray) -> None:
    if not concrete.sum() > 0:
        raise ValueError(f"`class_weights` must not all be 0; got {concrete.tolist()!r}")


def _drop_background(tp, fp, fn, class_weights):
    """Leave class 0 of ``(n, C)`` overlaps out (and its entry of ``(C,)`` class weights).

    A single class (``C = 1``) is the foreground and stays, as in optax and MONAI.
    """
    k = tp.shape[-1]
    if k < 2:
        return tp, fp, fn, class_weights
    if class_weights is not None:
        w = as_float_array(class_weights, "class_weights")
        if tuple(w.shape) != (k,):
            raise ValueError(
                f"`class_weights` must have shape ({k},), one weight per class (the background's "
                f"is ignored with ignore_background=True); got {describe(w)}"
            )
        class_weights = w[1:]
    return tp[..., 1:], fp[..., 1:], fn[..., 1:], class_weights


def _generalized_weights(mass: jax.Array) -> jax.Array:
    """Sudre et al.'s ``w_c = 1 / (sum of targets of class c)^2`` per example, normalised.

    Computed as ``(m / mass_c)^2`` with ``m`` the smallest non-zero class mass (no overflow for
    tiny classes, no underflow for huge ones), then divided by its sum (the unsmoothed ratio
    of weighted sums does not depend on the weights' scale; normalised, ``smooth`` acts on the
    scale of one class). An empty class (mass 0: ``1 / 0``) gets the largest weight of the
    present ones, i.e. that of the rarest present class (MONAI's rule), so false positives in
    it still count; an example without any target mass weighs its classes equally.
    """
    present = mass > 0
    rarest = jnp.min(jnp.where(present, mass, jnp.inf), axis=-1, keepdims=True)
    rarest = jnp.where(jnp.isfinite(rarest), rarest, 1.0)  # no class present: all weights 1
    w = jnp.where(present, (rarest / jnp.where(present, mass, 1.0)) ** 2, 1.0)
    return w / jnp.sum(w, axis=-1, keepdims=True)


def _tversky_index(tp, fp, fn, alpha, beta, smooth):
    return (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)


_SEG = dict(task="segmentation", input_kind="probabilities", probabilistic=False)


@register(
    **_SEG,
    convex=False,
    smooth=True,
    robust=True,
    reference="Milletari, Navab & Ahmadi (2016), V-Net, 3DV",
)
def dice(
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    smooth: ArrayLike = 1.0,
    class_axis: int | None = None,
    class_weights: ArrayLike | None = None,
    ignore_background: bool = False,
    generalized: bool = False,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Soft Dice loss per example: ``1 - (2 sum(p t) + smooth) / (sum(p) + sum(t) + smooth)``.

    Sums over all non-batch axes (or, with ``class_axis``, per class, then a
    ``class_weights``-weighted class average). The seed document's ``dice_loss`` flattens the
    whole batch into one sum instead. ``optax.losses.dice_loss`` adds ``smooth`` to the
    intersection too: ``optax(smooth=s)`` equals ``dice(smooth=2 s)``; optax multiplies by
    ``class_weights`` and then averages (not normalised by their sum). A linear-fractional
    function of ``p``: smooth, bounded gradient on ``[0, 1]`` (at most ``2 / smooth`` per entry
    in magnitude), not convex.

    ``ignore_background=True`` leaves class 0 of ``class_axis`` out (MONAI's
    ``include_background=False``, optax's ``ignore_background``); like both, it leaves a
    single class alone (no ``class_axis``, or ``C = 1``: the input is the foreground, and its
    background ``1 - p`` is never scored). ``generalized=True`` is the
    generalized Dice loss of Sudre et al. (2017): one ratio of class-weighted sums per example,

        ``1 - (2 sum_c w_c TP_c + smooth) / (sum_c w_c (sum(p_c) + sum(t_c)) + smooth)``,

    with ``w_c = 1 / (sum of the targets of class c)^2`` (so a small structure weighs as much
    as a large one), normalised to sum to 1 over the classes; an empty class (``1/0``) gets the
    rarest present class's weight (MONAI's guard; ``optax.losses.multiclass_generalized_dice_
    loss`` instead averages per-class Dice losses with batch-level weights ``1 / (s^2 + 1e-7)``).
    The weights depend on the targets only: gradients in ``probs`` treat them as constants.
    With one class (no ``class_axis``) its weight is 1 and this is the plain Dice loss.

    Args:
        probs: probabilities ``(n, ...)``.
        targets: binary or soft targets of the same shape.
        smooth: > 0, added to numerator and denominator.
        class_axis: optional non-batch axis holding classes (one-hot targets).
        class_weights: optional non-negative ``(C,)`` weights of the classes (needs
            ``class_axis``; with ``ignore_background`` the background's entry is ignored).
        ignore_background: leave class 0 of ``class_axis`` out (when ``C >= 2``).
        generalized: Sudre et al.'s generalized Dice (excludes ``class_weights``).
        weights: optional per-example weights ``(n,)``; reduction: "mean", "sum" or "none".

    Returns:
        The reduced loss, or per-example losses of shape ``(n,)`` with "none".

    Raises:
        TypeError: non-bool ``ignore_background`` or ``generalized``.
        ValueError: mismatched shapes, concrete ``probs`` or ``targets`` outside [0, 1] (not
            checked under ``jit``), ``smooth <= 0``, bad ``class_axis`` or ``class_weights``,
            ``generalized`` with ``class_weights``, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> p = jnp.array([[0.9, 0.1, 0.8, 0.0]])
        >>> t = jnp.array([[1.0, 0.0, 1.0, 0.0]])
        >>> round(float(dice(p, t, smooth=1.0)), 4)  # 1 - (2 * 1.7 + 1) / (1.8 + 2 + 1)
        0.0833
        >>> t2 = jnp.array([[[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])  # (1, 4, C=2)
        >>> p2 = jnp.array([[[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]]])
        >>> round(float(dice(p2, t2, class_axis=-1, ignore_background=True, smooth=1e-6)), 4)
        0.6
        >>> # w = (1/9, 1) / (10/9) = (0.1, 0.9): 1 - 2 (0.1 2.4 + 0.9 0.4) / (0.1 6 + 0.9 2)
        >>> round(float(dice(p2, t2, class_axis=-1, generalized=True, smooth=1e-6)), 4)
        0.5

    References:
        Milletari, F., Navab, N. & Ahmadi, S.-A. (2016). V-Net: Fully convolutional neural
        networks for volumetric medical image segmentation. 3DV, 565-571.
        Sudre, C. H., Li, W., Vercauteren, T., Ourselin, S. & Cardoso, M. J. (2017).
        Generalised Dice overlap as a deep learning loss function for highly unbalanced
        segmentations. DLMIA (MICCAI workshop), LNCS 10553, 240-248.
    """
    check_positive(smooth, "smooth")
    check_bool(ignore_background, "ignore_background")
    check_bool(generalized, "generalized")
    if generalized and class_weights is not None:
        raise ValueError(
            "`class_weights` and `generalized=True` exclude each other: the generalized Dice "
            f"weighs classes by 1 / (target mass)^2 itself; got class_weights={class_weights!r}"
        )
    tp, fp, fn = _overlaps(probs, targets, reduction, class_axis)
    if ignore_background and class_axis is not None:
        tp, fp, fn, class_weights = _drop_background(tp, fp, fn, class_weights)
    # sum(p) + sum(t) = 2 tp + fp + fn.
    if generalized:
        if class_axis is None:  # one class: weight 1
            tp, fp, fn = tp[:, None], fp[:, None], fn[:, None]
        w = _generalized_weights(tp + fn)  # sum(t_c) = tp_c + fn_c (its p-derivative is 0)
        num = 2 * jnp.sum(w * tp, axis=-1) + smooth
        values = 1 - num / (jnp.sum(w * (2 * tp + fp + fn), axis=-1) + smooth)
        return reduce_loss(values, weights, reduction)
    per_class = 1 - (2 * tp + smooth) / (2 * tp + fp + fn + smooth)
    return reduce_loss(_class_average(per_class, class_axis, class_weights), weights, reduction)


@register(
    **_SEG,
    convex=False,
    smooth=True,
    robust=True,
    reference="Salehi, Erdogmus & Gholipour (2017), MLMI",
)
def tversky(
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: ArrayLike = 0.5,
    beta: ArrayLike = 0.5,
    smooth: ArrayLike = 1.0,
    class_axis: int | None = None,
    class_weights: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Tversky loss: ``1 - (TP + smooth) / (TP + alpha FP + beta FN + smooth)``.

    ``TP = sum(p t)``, ``FP = sum(p (1 - t))``, ``FN = sum((1 - p) t)`` per example (and per
    class with ``class_axis``). ``alpha`` weighs false positives and ``beta`` false negatives,
    as in Salehi et al. and ``optax.losses.dice_loss``; Keras up to 3.15
    (``keras.losses.Tversky``) applied them the other way round (fixed in keras-team/keras
    PR 23333). ``alpha = beta = 1/2`` gives ``dice(smooth=2 smooth)``; ``alpha = beta = 1`` the
    soft Jaccard loss. Same smoothness/boundedness as :func:`dice`.

    Args:
        probs, targets: as for :func:`dice`.
        alpha: weight >= 0 of the false positives.
        beta: weight >= 0 of the false negatives.
        smooth: > 0.
        class_axis, class_weights, weights, reduction: as for :func:`dice`.

    Returns:
        The reduced loss (a scalar), or per-example losses ``(n,)`` with "none".

    Raises:
        ValueError: as :func:`dice`, and negative ``alpha`` or ``beta``.

    Example:
        >>> import jax.numpy as jnp
        >>> p, t = jnp.array([[1.0, 1.0, 0.0]]), jnp.array([[1.0, 0.0, 1.0]])  # 1 TP, FP, FN
        >>> round(float(tversky(p, t, alpha=0.7, beta=0.3, smooth=1.0)), 4)  # 1 - 2 / 3
        0.3333

    References:
        Salehi, S. S. M., Erdogmus, D. & Gholipour, A. (2017). Tversky loss function for image
        segmentation using 3D fully convolutional deep networks. MLMI, 379-387.
    """
    check_nonnegative(alpha, "alpha")
    check_nonnegative(beta, "beta")
    check_positive(smooth, "smooth")
    tp, fp, fn = _overlaps(probs, targets, reduction, class_axis)
    per_class = 1 - _tversky_index(tp, fp, fn, alpha, beta, smooth)
    return reduce_loss(_class_average(per_class, class_axis, class_weights), weights, reduction)


@register(
    **_SEG,
    convex=False,
    smooth=False,
    robust=True,
    reference="Abraham & Khan (2019), ISBI",
)
def focal_tversky(
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: ArrayLike = 0.5,
    beta: ArrayLike = 0.5,
    gamma: ArrayLike = 0.75,
    smooth: ArrayLike = 1.0,
    class_axis: int | None = None,
    class_weights: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Focal Tversky loss: ``(1 - TI)^gamma`` with ``TI`` the Tversky index of :func:`tversky`.

    Per class with ``class_axis``, then class-averaged. Abraham & Khan write the exponent as
    ``1/gamma`` with their best ``gamma = 4/3``: the default exponent here is its inverse,
    0.75. For ``gamma < 1`` the loss has a cusp at a perfect prediction (``TI = 1``): the
    gradient grows like ``(1 - TI)^(gamma - 1)`` near it and the minimum-norm subgradient 0 is
    returned exactly there (with a zero Hessian); hence not smooth. ``gamma = 1`` is
    :func:`tversky`.

    Args:
        probs, targets: as for :func:`dice`.
        alpha, beta, smooth: as for :func:`tversky`.
        gamma: exponent > 0.
        class_axis, class_weights, weights, reduction: as for :func:`dice`.

    Returns:
        The reduced loss (a scalar), or per-example losses ``(n,)`` with "none".

    Raises:
        ValueError: as :func:`tversky`, and ``gamma <= 0``.

    Example:
        >>> import jax.numpy as jnp
        >>> p, t = jnp.array([[1.0, 1.0, 0.0]]), jnp.array([[1.0, 0.0, 1.0]])
        >>> round(float(focal_tversky(p, t, gamma=2.0)), 4)  # TI = 2/3: (1/3)^2
        0.1111

    References:
        Abraham, N. & Khan, N. M. (2019). A novel focal Tversky loss function with improved
        attention U-Net for lesion segmentation. ISBI, 683-687.
    """
    check_nonnegative(alpha, "alpha")
    check_nonnegative(beta, "beta")
    check_positive(gamma, "gamma")
    check_positive(smooth, "smooth")
    tp, fp, fn = _overlaps(probs, targets, reduction, class_axis)
    x = 1 - _tversky_index(tp, fp, fn, alpha, beta, smooth)
    zero = x <= 0  # not `x > 0`: a NaN index must give a NaN loss, not 0
    per_class = jnp.where(zero, 0, jnp.power(jnp.where(zero, 1, x), gamma))
    return reduce_loss(_class_average(per_class, class_axis, class_weights), weights, reduction)
