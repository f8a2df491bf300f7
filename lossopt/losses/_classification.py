"""Classification losses ``loss(logits | probs | scores, labels, *, ..., weights, reduction)``.

Conventions shared by every loss in this module:

* Predictions come first, labels second (optax and PyTorch order; Keras takes ``(y_true,
  y_pred)``). ``reduction="none"`` returns one value per example: elementwise for the binary
  losses, with the class axis removed for the multiclass ones (optax returns these per-example
  values without reducing; PyTorch and Keras average by default, as ``"mean"`` does here).
* The class axis is the last one (``axis=-1``) where a loss takes ``axis``; PyTorch puts it at
  dim 1, so pass ``axis=1`` for a ``(N, C, ...)`` PyTorch layout.
* Multiclass labels are either integer class ids, of the logits' shape with the class axis
  removed, or one-hot/soft labels: a float (or bool) array of the logits' shape. Anything else
  raises. Concrete class ids outside ``[0, K)`` (other than ``ignore_index``) raise ValueError;
  under ``jit`` the ids cannot be inspected and such an entry yields NaN instead, so that the
  mistake is visible rather than silently scored as 0.
* Probability inputs go through a clamped log ``log(max(p, eps))`` (``eps`` defaults to the
  machine epsilon of the dtype: about 1.2e-7 in float32, 2.2e-16 in float64) whose derivative
  is ``1 / max(p, eps)``: finite at ``p = 0`` but not zero there, so a solver started at a
  saturated wrong prediction still moves (a plain ``clip`` has zero gradient below ``eps``).
* Nonsmooth losses (the hinges) return the minimum-norm subgradient at their kinks: 0 at the
  margin, and an equal split between tied runner-up classes in ``multiclass_hinge``.
* Value checks run on concrete arrays only. Probability inputs must lie in ``[0, 1]`` (NaN
  rejected) and, where they are distributions (``categorical_cross_entropy``'s probs, both
  arguments of ``kl_divergence``, the targets of ``kl_divergence_with_logits``), sum to 1 within
  ``sqrt(eps)`` of their dtype (3.5e-4 in float32, 1.5e-8 in float64); one-hot/soft labels must
  lie in ``[0, 1]``. Under ``jit`` (traced inputs) none of this is checked: out-of-range values
  then give out-of-range losses (e.g. a negative cross-entropy), and a NaN gives NaN.
* Class ids gather the target's log-probability, and a class with zero target mass contributes
  exactly 0, so a masked (``-inf``) logit of another class never turns the loss into NaN.
"""

from __future__ import annotations

from typing import Any

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

# The focal losses and the KL divergences live with their kind (``_focal``, ``_divergence``);
# listed here too, as the logit/probability classification losses of the module's original scope.
from lossopt.losses._divergence import kl_divergence, kl_divergence_with_logits
from lossopt.losses._focal import sigmoid_focal, softmax_focal
from lossopt.losses._labels import (
    along_last,
    binary_inputs,
    check_ignore_index,
    check_soft_labels,
    class_axis_last,
    class_ids,
    class_targets,
    per_class,
    signed_labels,
    take_last,
)
from lossopt.losses._masking import ClassMask, class_mask, reduce_masked
from lossopt.losses._numerics import (
    clamped_log,
    default_eps,
    is_concrete_zero,
    mul_log,
    positive_part,
)
from lossopt.losses._reduce import check_reduction, reduce_loss, reduce_normalised
from lossopt.losses._registry import register

__all__ = [
    "binary_cross_entropy",
    "categorical_cross_entropy",
    "hinge",
    "kl_divergence",
    "kl_divergence_with_logits",
    "multiclass_hinge",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal",
    "softmax_cross_entropy",
    "softmax_focal",
    "squared_hinge",
]


_hinge_part = positive_part  # max(m, 0): slope 0 at the margin, NaN in -> NaN out


def _cross_entropy(
    log_probs_fn,
    x: jax.Array,
    labels: Any,
    *,
    name: str,
    axis: int,
    label_smoothing: Any,
    class_weights: Any,
    ignore_index: Any,
    weights: Any,
    reduction: str,
    mask: ClassMask | None = None,
):
    """Shared body of the softmax/categorical cross-entropies (``x``'s class axis moved last).

    With ``mask`` (``where=``), ``x`` already holds the masked input (``-inf`` logits or
    probability 1 at masked entries); labels, smoothing and the reduction skip masked entries.
    """
    check_in_interval(
        label_smoothing, "label_smoothing", 0.0, 1.0, closed_low=True, closed_high=True
    )
    check_ignore_index(ignore_index)
    kind, lab = class_targets(x, labels, axis, name)
    k = x.shape[-1]
    cw_vec = cw = None
    if class_weights is not None:
        cw_vec = per_class(class_weights, "class_weights", k, x.dtype, allow_scalar=False)
        cw = along_last(cw_vec, x.ndim)
    log_p = log_probs_fn(x)
    ls = label_smoothing
    # The smoothing's uniform part ls / K spreads over the kept classes only.
    uniform = (ls / k) if mask is None else mask.fill(ls / mask.count(x.dtype), 0.0)
    invalid = keep = None
    if kind == "ids":
        safe, keep, invalid = class_ids(lab, k, ignore_index)
        if mask is not None:
            invalid = invalid | mask.ids_on_masked(safe, lab, among=keep)
        # Gather the target's log-probability: a one-hot product would give 0 * -inf = NaN for
        # a masked (-inf) logit of another class.
        w_y = None if cw_vec is None else cw_vec[safe]
        main = mul_log((1.0 - ls) if w_y is None else (1.0 - ls) * w_y, take_last(log_p, safe))
        values = -main
        if not is_concrete_zero(ls):  # the uniform part ls / K of the smoothed target
            spread = uniform if cw is None else uniform * cw
            values = values - jnp.sum(mul_log(jnp.broadcast_to(spread, log_p.shape), log_p), -1)
        normaliser = w_y
    else:
        if ignore_index is not None:
            raise ValueError(
                "`ignore_index` applies to integer class ids only; got one-hot/soft `labels` "
                f"({describe(labels)}) with ignore_index={ignore_index}. Mask soft labels with "
                "`weights` instead."
            )
        if mask is not None:
            lab = mask.fill(lab, 0.0)  # labels of masked classes are not read
        check_soft_labels(lab)
        smoothed = (1.0 - ls) * lab + uniform
        coeff = smoothed if cw is None else cw * smoothed
        values = -jnp.sum(mul_log(coeff, log_p), axis=-1)  # zero-mass classes contribute 0
        normaliser = None if cw is None else jnp.sum(cw * lab, axis=-1)
    # A NaN anywhere in an example's input makes its loss NaN (a gather, or a zero target
    # mass, would otherwise skip it).
    values = jnp.where(jnp.any(jnp.isnan(x), axis=-1), jnp.nan, values)
    if invalid is not None:
        values = jnp.where(invalid, jnp.nan, values)
    if mask is not None:
        values = mask.values(values)
        keep = mask.reduce_mask(keep)
    return reduce_normalised(values, normaliser, weights, reduction, keep)


_CLS = dict(task="classification")

# --------------------------------------------------------------------------------------------
# Binary cross-entropy
# --------------------------------------------------------------------------------------------


@register(
    **_CLS,
    input_kind="probabilities",
    convex=True,
    smooth=True,
    robust=False,
    probabilistic=True,
    reference="torch.nn.BCELoss; Keras BinaryCrossentropy",
)
def binary_cross_entropy(
    probs: ArrayLike,
    labels: ArrayLike,
    *,
    eps: float | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Binary cross-entropy on probabilities: ``l = -(y log p + (1 - y) log(1 - p))``.

    Both logs are clamped, ``log(max(p, eps))`` and ``log(max(1 - p, eps))``, with derivative
    ``1 / max(., eps)``: value and gradient stay finite at ``p`` exactly 0 or 1 and the gradient
    does not vanish there. Convex and C2 in ``p`` on ``(0, 1)``; its gradient
    ``(p - y) / (p (1 - p))`` is unbounded (prefer ``sigmoid_binary_cross_entropy`` on logits).
    Labels may be soft, in ``[0, 1]``. Matches ``torch.nn.BCELoss`` (which clamps the log at
    -100) up to the clamp; Keras' ``BinaryCrossentropy`` takes ``(y_true, y_pred)`` and clips
    ``p`` to ``[1e-7, 1 - 1e-7]`` (zero gradient outside).

    Args:
        probs: predicted probabilities of the positive class.
        labels: array of ``probs``' shape with values in ``[0, 1]`` (ints and bools promoted).
        eps: clamp for the logs; default the dtype's machine epsilon. Must lie in (0, 1).
        weights: optional per-example weights; "mean" then is ``sum(w l) / sum(w)``.
        reduction: "mean" (default), "sum" or "none" (elementwise values).

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        ValueError: mismatched shapes, concrete probs or labels outside [0, 1] (or NaN),
            ``eps`` outside (0, 1), unknown reduction. Under ``jit`` probs and labels are not
            checked.

    Example (the seed document's example):
        >>> import jax.numpy as jnp
        >>> y_true = jnp.array([1, 0, 1, 1])
        >>> y_pred = jnp.array([0.9, 0.1, 0.8, 0.4])
        >>> round(float(binary_cross_entropy(y_pred, y_true)), 4)
        0.3375

    References:
        torch.nn.BCELoss; Keras BinaryCrossentropy.
    """
    p, y = binary_inputs(probs, labels, "probs", reduction)
    check_probabilities(p, "probs")
    eps = default_eps(eps, p.dtype)
    values = -(y * clamped_log(p, eps) + (1.0 - y) * clamped_log(1.0 - p, eps))
    return reduce_loss(values, weights, reduction)


def _pos_weight(pos_weight: Any, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """``pos_weight`` aligned on the trailing axes of ``shape`` (as PyTorch broadcasts it)."""
    pw = as_float_array(pos_weight, "pos_weight").astype(dtype)
    n = len(shape)
    fits = pw.ndim <= n and all(
        a in (1, b) for a, b in zip(pw.shape, shape[n - pw.ndim :], strict=True)
    )
    if not fits:
        raise ValueError(
            f"`pos_weight` must broadcast against the trailing axes of the logits shape "
            f"{tuple(shape)} (e.g. one weight per class, shape ({shape[-1] if shape else 1},)); "
            f"got {describe(pos_weight)}"
        )
    check_nonnegative(pw, "pos_weight")
    return jnp.broadcast_to(pw.reshape((1,) * (n - pw.ndim) + pw.shape), shape)


@register(
    **_CLS,
    input_kind="logits",
    convex=True,
    smooth=True,
    robust=True,
    probabilistic=True,
    reference="torch.nn.BCEWithLogitsLoss; optax.sigmoid_binary_cross_entropy",
)
def sigmoid_binary_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    pos_weight: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Binary cross-entropy on logits: ``l = -(pw y log s(x) + (1 - y) log s(-x))``.

    ``s`` is the sigmoid, computed as ``log_sigmoid`` (finite value, gradient and Hessian at
    ``x = +-1e4``). Gradient ``(1 - y + pw y) s(x) - pw y`` is bounded; Hessian
    ``(1 - y + pw y) s(x) s(-x)``. Label smoothing first replaces ``y`` by
    ``(1 - ls) y + ls / 2`` (PyTorch's ``(1 - ls) onehot + ls / K`` with K = 2, and Keras'
    rule); ``pos_weight`` then scales the positive term as in ``torch.nn.BCEWithLogitsLoss``,
    aligned on the trailing axes (one weight per class of a multi-label ``(N, C)`` output).
    Per element it matches ``optax.sigmoid_binary_cross_entropy`` (which does not reduce).

    Args:
        logits: real-valued scores.
        labels: array of ``logits``' shape with values in ``[0, 1]``.
        pos_weight: optional non-negative weight of the positive term, a scalar or an array
            broadcasting against the trailing axes of ``logits``.
        label_smoothing: in ``[0, 1]``.
        weights: optional per-example weights; reduction: "mean", "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        ValueError: mismatched shapes, labels outside [0, 1], negative or misshaped
            ``pos_weight``, ``label_smoothing`` outside [0, 1], unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> sigmoid_binary_cross_entropy(jnp.array([0.0, 1e4, -1e4]), jnp.array([1.0, 1.0, 1.0]),
        ...                              reduction="none")
        Array([6.931...e-01, 0.0...e+00, 1.0...e+04], dtype=float...)

    References:
        torch.nn.BCEWithLogitsLoss; optax.sigmoid_binary_cross_entropy.
    """
    check_in_interval(
        label_smoothing, "label_smoothing", 0.0, 1.0, closed_low=True, closed_high=True
    )
    x, y = binary_inputs(logits, labels, "logits", reduction)
    y = (1.0 - label_smoothing) * y + 0.5 * label_smoothing
    pos = y if pos_weight is None else _pos_weight(pos_weight, x.shape, x.dtype) * y
    values = -mul_log(pos, jax.nn.log_sigmoid(x)) - mul_log(1.0 - y, jax.nn.log_sigmoid(-x))
    return reduce_loss(values, weights, reduction)


# --------------------------------------------------------------------------------------------
# Multiclass cross-entropy
# --------------------------------------------------------------------------------------------

_CE_DOC_OPTIONS = """
    Options (shared by ``softmax_cross_entropy`` and ``categorical_cross_entropy``):

    * ``labels``: integer class ids of the input's shape without the class axis, or a float
      (or bool) one-hot/soft label array of the input's shape.
    * ``label_smoothing``: the target becomes ``(1 - ls) t + ls / K``, exactly PyTorch's rule
      (and ``optax.smooth_labels``).
    * ``class_weights`` (shape ``(K,)``, non-negative) and ``ignore_index`` follow PyTorch's
      weighted mean: with class ids, ``l_i = -sum_c w_c t_c log p_c`` (``w_y (-log p_y)``
      without smoothing) and ``"mean"`` is ``sum_i l_i / sum_i w[y_i]`` over non-ignored
      examples. For soft labels the values are the same ``-sum_c w_c t_c log p_c`` and the mean
      divides by ``sum_i sum_c w_c t_ic`` (the un-smoothed labels' weight mass), so one-hot
      float labels give exactly the class-id result; PyTorch instead divides soft-label losses
      by the number of examples. ``ignore_index`` applies to class ids only (soft labels raise:
      mask them with ``weights``); ignored entries are 0 in ``"none"`` and left out of both
      sums. ``weights`` (per example) multiply numerator and denominator alike.
    * ``axis``: the class axis (default last; PyTorch's layout is ``axis=1``).
    * ``where``: optional boolean mask of the input's shape (or of the shape without the
      class axis: one flag per example); masked classes take no part, exactly as if dropped
      by hand (the softmax, label smoothing's ``1/K`` and soft labels run over the kept
      classes). Whatever a masked entry holds (``-inf``, NaN) is not read and gets gradient 0;
      an all-masked example has loss 0 and is left out of ``"mean"``; a class id pointing at a
      masked class raises (concrete inputs) or gives NaN (under ``jit``). Per example this is
      ``optax.softmax_cross_entropy(..., where=)`` for soft labels.
    * Concrete one-hot/soft labels must lie in ``[0, 1]`` (they need not sum to 1); under
      ``jit`` they are not checked. Masked classes (logit ``-inf``, probability 0) with zero
      target mass contribute exactly 0.
    * ``weights``, ``reduction``: per-example weights; "mean" (default), "sum" or "none"
      (one value per example: the input's shape without the class axis).
"""


@register(
    **_CLS,
    input_kind="logits",
    convex=True,
    smooth=True,
    robust=True,
    probabilistic=True,
    reference="torch.nn.CrossEntropyLoss; optax.softmax_cross_entropy",
)
def softmax_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    label_smoothing: ArrayLike = 0.0,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Softmax cross-entropy: ``l = -sum_c t_c log_softmax(x)_c`` (``-log p_y`` for class ids).

    Computed with ``log_softmax`` (finite value, gradient ``softmax(x) - t`` and Hessian
    ``diag(p) - p p^T`` at logits of +-1e4). Convex in the logits, gradient bounded.
    Per example it matches ``optax.softmax_cross_entropy`` (soft labels) and
    ``optax.softmax_cross_entropy_with_integer_labels`` (ids); ``torch.nn.CrossEntropyLoss``
    takes the class axis at dim 1 (use ``axis=1``); Keras splits it into
    ``CategoricalCrossentropy(from_logits=True)`` and ``SparseCategoricalCrossentropy``, with
    ``(y_true, y_pred)`` order.
    {options}

    Args:
        logits: unnormalised log-probabilities, classes along ``axis``.
        labels: integer class ids (the class axis removed) or one-hot/soft labels of
            ``logits``' shape.
        label_smoothing: in [0, 1); mixes the target with the uniform distribution.
        class_weights: optional non-negative ``(K,)`` weights (PyTorch's ``weight``).
        ignore_index: optional class id whose examples are left out (ids only).
        axis: the class axis (default -1).
        where: optional boolean class mask (the first argument's shape or one flag per example).
        weights: optional per-example weights; "mean" then is ``sum(w l) / sum(w)``.
        reduction: "mean" (default), "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        TypeError: float labels of the class-id shape; non-integer ``axis``/``ignore_index``.
        ValueError: labels of any other shape, integer labels of the logits' shape, concrete
            class ids outside ``[0, K)``, ``label_smoothing`` outside [0, 1], ``class_weights``
            not of shape ``(K,)`` or negative, ``ignore_index`` with soft labels, bad ``axis``,
            unknown reduction, ``where`` not boolean or of another shape, a concrete class id
            on a masked class.

    Example:
        >>> import jax.numpy as jnp
        >>> logits = jnp.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
        >>> round(float(softmax_cross_entropy(logits, jnp.array([0, 2]))), 4)
        0.6691
        >>> round(float(softmax_cross_entropy(logits, jnp.array([0, -100]), ignore_index=-100)), 4)
        0.2395
        >>> keep = jnp.array([[True, True, False], [True, True, True]])  # class 2 of row 0 out
        >>> softmax_cross_entropy(logits, jnp.array([0, 2]), where=keep, reduction="none")
        Array([0.1269..., 1.0986...], dtype=float...)

    References:
        torch.nn.CrossEntropyLoss; optax.softmax_cross_entropy.
    """
    check_reduction(reduction)
    raw = as_float_array(logits, "logits")
    x = class_axis_last(raw, axis, "logits")
    mask = class_mask(where, raw.shape, axis)
    return _cross_entropy(
        lambda z: jax.nn.log_softmax(z, axis=-1),
        x if mask is None else mask.logits(x),
        labels,
        name="logits",
        axis=axis,
        label_smoothing=label_smoothing,
        class_weights=class_weights,
        ignore_index=ignore_index,
        weights=weights,
        reduction=reduction,
        mask=mask,
    )


@register(
    **_CLS,
    input_kind="probabilities",
    convex=True,
    smooth=True,
    robust=False,
    probabilistic=True,
    reference="Keras CategoricalCrossentropy; torch.nn.NLLLoss on log(probs)",
)
def categorical_cross_entropy(
    probs: ArrayLike,
    labels: ArrayLike,
    *,
    label_smoothing: ArrayLike = 0.0,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    axis: int = -1,
    eps: float | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Categorical cross-entropy on probabilities: ``l = -sum_c t_c log p_c``.

    ``log p`` is the clamped ``log(max(p, eps))`` with derivative ``1 / max(p, eps)`` (finite at
    ``p = 0``, never stalled there). Probabilities are used as given (Keras renormalises them to
    sum to 1 and clips at 1e-7; the seed document clips at 1e-15 and divides the sum by ``n``,
    which is this ``"mean"``). Convex and C2 in ``p`` on ``(0, 1]``, gradient ``-t / p``
    unbounded: prefer ``softmax_cross_entropy`` on logits.
    {options}
    * ``eps``: clamp for the log; default the dtype's machine epsilon. Must lie in (0, 1).
    * Concrete ``probs`` must lie in ``[0, 1]`` and sum to 1 over ``axis`` within ``sqrt(eps)``
      of their dtype (3.5e-4 in float32): unnormalised scores or sigmoid outputs would make
      every prediction look right. Under ``jit`` ``probs`` are not checked. With ``where``
      the probabilities of masked classes are not read, and the kept ones must sum to 1 (as
      after a masked softmax).

    Args:
        probs: class probabilities, summing to 1 along ``axis``.
        labels: integer class ids (the class axis removed) or one-hot/soft labels of
            ``probs``' shape.
        label_smoothing: in [0, 1); mixes the target with the uniform distribution.
        class_weights: optional non-negative ``(K,)`` weights (PyTorch's ``weight``).
        ignore_index: optional class id whose examples are left out (ids only).
        axis: the class axis (default -1).
        eps: clamp of ``log(max(p, eps))``; None: the dtype's machine epsilon.
        where: optional boolean class mask (the first argument's shape or one flag per example).
        weights: optional per-example weights; "mean" then is ``sum(w l) / sum(w)``.
        reduction: "mean" (default), "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        TypeError, ValueError: as ``softmax_cross_entropy``; ``eps`` outside (0, 1); concrete
            ``probs`` outside [0, 1] or not summing to 1.

    Example (the seed document's example):
        >>> import jax.numpy as jnp
        >>> y_true = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        >>> y_pred = jnp.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5]])
        >>> round(float(categorical_cross_entropy(y_pred, y_true)), 4)
        0.4243
        >>> round(float(categorical_cross_entropy(y_pred, jnp.array([0, 1, 2]))), 4)
        0.4243

    References:
        Keras CategoricalCrossentropy; torch.nn.NLLLoss on log(probs).
    """
    check_reduction(reduction)
    raw = as_float_array(probs, "probs")
    p = class_axis_last(raw, axis, "probs")
    mask = class_mask(where, raw.shape, axis)
    if mask is None:
        check_probabilities(raw, "probs", sum_axis=int(axis))
    else:
        mask.check_distributions(p, "probs", int(axis))
        p = mask.fill(p, 1.0)  # log 1 = 0: a masked class adds nothing
    eps = default_eps(eps, p.dtype)
    return _cross_entropy(
        lambda z: clamped_log(z, eps),
        p,
        labels,
        name="probs",
        axis=axis,
        label_smoothing=label_smoothing,
        class_weights=class_weights,
        ignore_index=ignore_index,
        weights=weights,
        reduction=reduction,
        mask=mask,
    )


softmax_cross_entropy.__doc__ = softmax_cross_entropy.__doc__.format(options=_CE_DOC_OPTIONS)
categorical_cross_entropy.__doc__ = categorical_cross_entropy.__doc__.format(
    options=_CE_DOC_OPTIONS
)


# --------------------------------------------------------------------------------------------
# Margin losses
# --------------------------------------------------------------------------------------------


@register(
    **_CLS,
    input_kind="scores",
    convex=True,
    smooth=False,
    robust=True,
    probabilistic=False,
    reference="Cortes & Vapnik (1995), Machine Learning 20(3); optax.hinge_loss",
)
def hinge(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Hinge loss: ``l = max(0, 1 - y s)`` with labels ``y`` in ``{-1, +1}``.

    Gradient ``-y`` where the margin is violated (``y s < 1``), 0 beyond it, and the
    minimum-norm subgradient 0 exactly at the margin ``y s = 1``. Matches ``optax.hinge_loss``
    per element and ``sklearn.metrics.hinge_loss``; Keras' ``Hinge`` takes ``(y_true, y_pred)``
    and silently maps 0/1 labels to -1/+1, whereas here concrete labels other than -1/+1 raise.

    Args:
        scores: real-valued decision scores.
        labels: array of the same shape, each in {-1, +1}.
        weights: optional per-example weights; "mean" then is ``sum(w l) / sum(w)``.
        reduction: "mean" (default), "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        ValueError: mismatched shapes, labels not in {-1, +1}, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> hinge(jnp.array([2.0, 0.5, -1.0]), jnp.array([1, 1, 1]), reduction="none")
        Array([0. , 0.5, 2. ], dtype=float...)

    References:
        Cortes & Vapnik (1995), Machine Learning 20(3); optax.hinge_loss.
    """
    s, y = signed_labels(scores, labels, reduction)
    return reduce_loss(_hinge_part(1.0 - y * s), weights, reduction)


@register(
    **_CLS,
    input_kind="scores",
    convex=True,
    smooth=False,
    robust=False,
    probabilistic=False,
    reference="Keras SquaredHinge; Rennie & Srebro (2005), IJCAI workshop",
)
def squared_hinge(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Squared hinge loss: ``l = max(0, 1 - y s)^2`` with labels in ``{-1, +1}``.

    C1 with gradient ``-2 y max(0, 1 - y s)`` (0 at the margin); the second derivative jumps
    from 2 to 0 at the margin, so not C2 (the Hessian returned at the margin itself is 0).
    Keras' ``SquaredHinge`` takes ``(y_true, y_pred)`` and maps 0/1 labels to -1/+1.

    Args:
        scores: real-valued decision scores.
        labels: array of the same shape, each in {-1, +1}.
        weights: optional per-example weights; "mean" then is ``sum(w l) / sum(w)``.
        reduction: "mean" (default), "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        ValueError: mismatched shapes, labels not in {-1, +1}, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> squared_hinge(jnp.array([2.0, 0.5, -1.0]), jnp.array([1, 1, 1]), reduction="none")
        Array([0.  , 0.25, 4.  ], dtype=float...)

    References:
        Keras SquaredHinge; Rennie & Srebro (2005), IJCAI workshop.
    """
    s, y = signed_labels(scores, labels, reduction)
    m = _hinge_part(1.0 - y * s)
    return reduce_loss(m * m, weights, reduction)


@register(
    **_CLS,
    input_kind="scores",
    convex=True,
    smooth=False,
    robust=True,
    probabilistic=False,
    reference="Crammer & Singer (2001), JMLR 2; optax.multiclass_hinge_loss",
)
def multiclass_hinge(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Crammer-Singer multiclass hinge: ``l = max(0, 1 + max_{j != y} s_j - s_y)``.

    Scores ``(..., K)`` with ``K >= 2`` classes on the last axis and integer class ids ``y`` of
    shape ``(...)``. Subgradient: ``e_j* - e_y`` while the margin is violated, 0 beyond and
    exactly at the margin (minimum norm); tied runner-up classes share the ``+1`` equally, the
    minimum-norm element of that face. Matches ``optax.multiclass_hinge_loss`` per example and
    ``sklearn.metrics.hinge_loss`` for multiclass input. Only the largest wrong score counts:
    PyTorch's ``MultiMarginLoss`` is the Weston-Watkins loss instead (``multi_margin``), which
    sums ``max(0, 1 - s_y + s_j)`` over every wrong class and divides by ``K``; the two agree
    only for ``K = 2`` up to that factor. ``where`` (boolean, ``scores``' shape
    or one flag per example) masks classes out of the runner-up maximum, as if dropped by
    hand (an example with only its target class kept has loss 0); all-masked examples give 0
    and are left out of ``"mean"``.

    Args:
        scores: ``(..., K)`` class scores.
        labels: integer class ids of shape ``scores.shape[:-1]``.
        where: optional boolean class mask (the first argument's shape or one flag per example).
        weights: optional per-example weights; "mean" then is ``sum(w l) / sum(w)``.
        reduction: "mean" (default), "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        TypeError: float labels; non-boolean ``where``.
        ValueError: labels not of shape ``scores.shape[:-1]``, concrete ids outside ``[0, K)``
            or on a masked class, ``K < 2``, ``where`` of another shape, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> s = jnp.array([[3.0, 1.0, 0.0], [0.5, 1.0, 0.0]])
        >>> multiclass_hinge(s, jnp.array([0, 0]), reduction="none")
        Array([0. , 1.5], dtype=float...)

    References:
        Crammer & Singer (2001), JMLR 2; optax.multiclass_hinge_loss.
    """
    check_reduction(reduction)
    s = as_float_array(scores, "scores")
    if s.ndim == 0 or s.shape[-1] < 2:
        raise ValueError(
            f"`scores` must have K >= 2 classes on the last axis; got {describe(scores)}"
        )
    kind, lab = class_targets(s, labels, -1, "scores")
    if kind != "ids":
        raise TypeError(f"`labels` must be integer class ids; got {describe(labels)}")
    safe, _, invalid = class_ids(lab, s.shape[-1], None)
    mask = class_mask(where, s.shape, -1)
    if mask is not None:
        s = mask.logits(s)  # masked classes at -inf: never the runner-up
        invalid = invalid | mask.ids_on_masked(safe, lab)
    onehot = jax.nn.one_hot(safe, s.shape[-1], dtype=jnp.bool_)
    s_y = jnp.sum(jnp.where(onehot, s, 0.0), axis=-1)
    runner_up = jnp.max(jnp.where(onehot, -jnp.inf, s), axis=-1)
    values = jnp.where(invalid, jnp.nan, _hinge_part(1.0 + runner_up - s_y))
    return reduce_masked(values, weights, reduction, mask)
