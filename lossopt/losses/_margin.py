"""Margin (hinge-type) and soft-margin classification losses of PyTorch and Keras.

``multi_margin`` (Weston-Watkins multiclass hinge, ``torch.nn.MultiMarginLoss``),
``multilabel_margin`` (``torch.nn.MultiLabelMarginLoss`` on a multi-hot label matrix),
``hinge_embedding`` (``torch.nn.HingeEmbeddingLoss``), ``soft_margin``
(``torch.nn.SoftMarginLoss``), ``multilabel_soft_margin`` (``torch.nn.MultiLabelSoftMarginLoss``)
and ``categorical_hinge`` (Keras' ``CategoricalHinge``, for general targets).

Shared conventions (as in :mod:`lossopt.losses._classification`): predictions first; the class
axis is the last one; ``reduction="none"`` returns one value per example (the class axis
removed for the multiclass and multi-label losses, elementwise for the binary ones). Every
kink returns the minimum-norm subgradient: ``max(m, 0)`` has slope 0 at ``m = 0``, so a zero
gradient certifies optimality. A NaN score gives a NaN loss (the flat branch of a hinge never
swallows it).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lossopt._validation import (
    as_float_array,
    check_array_values,
    check_nonnegative,
    check_same_shape,
    describe,
)
from lossopt.losses._labels import along_last, class_ids, class_targets, paired_inputs, per_class
from lossopt.losses._numerics import mul_log, positive_part
from lossopt.losses._reduce import check_reduction, reduce_loss
from lossopt.losses._registry import register

__all__ = [
    "categorical_hinge",
    "hinge_embedding",
    "multi_margin",
    "multilabel_margin",
    "multilabel_soft_margin",
    "soft_margin",
]

_CLS = dict(task="classification")


def _scores_with_classes(scores: Any, name: str = "scores") -> jax.Array:
    s = as_float_array(scores, name)
    if s.ndim == 0 or s.shape[-1] < 2:
        raise ValueError(
            f"`{name}` must have K >= 2 classes on the last axis; got {describe(scores)}"
        )
    return s


def _check_margin(margin: Any) -> None:
    check_nonnegative(margin, "margin")


def _signed(scores: Any, labels: Any, name: str, reduction: str):
    """``(s, y)`` for binary losses with labels in {-1, +1}, both of one shape."""
    s, y = paired_inputs(scores, labels, name, "labels", reduction)
    check_array_values(
        y, "labels", lambda v: (v == 1) | (v == -1), "labels in {-1, +1} (map 0/1 labels by 2y - 1)"
    )
    return s, y


def _multi_hot(s: jax.Array, labels: Any) -> jax.Array:
    """A bool or 0/1 float multi-hot matrix of ``s``'s shape, as ``s``'s dtype."""
    lab = jnp.asarray(labels)
    if jnp.issubdtype(lab.dtype, jnp.integer):
        raise TypeError(
            "`labels` must be a multi-hot matrix of bool or float 0/1 entries (one column per "
            f"class); got {describe(labels)}. An integer array is ambiguous: PyTorch's "
            "MultiLabelMarginLoss takes class indices padded with -1, which must be converted "
            "(see the docstring); 0/1 integers can be cast with .astype(bool)."
        )
    t = as_float_array(lab, "labels", like=s)
    check_same_shape(s, t, "scores", "labels")
    check_array_values(t, "labels", lambda v: (v == 0) | (v == 1), "multi-hot entries 0 or 1")
    return t


# --------------------------------------------------------------------------------------------
# Multiclass and multi-label hinges
# --------------------------------------------------------------------------------------------


@register(
    **_CLS,
    input_kind="scores",
    convex=True,
    smooth=False,
    robust=True,
    probabilistic=False,
    reference="Weston & Watkins (1999), ESANN; torch.nn.MultiMarginLoss",
)
def multi_margin(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    p: int = 1,
    margin: ArrayLike = 1.0,
    class_weights: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Weston-Watkins multiclass hinge: ``l = (1/K) sum_{j != y} w_y max(0, m - s_y + s_j)^p``.

    Every wrong class ``j`` whose score comes within ``margin`` ``m`` of the true score ``s_y``
    is penalised, and the penalties are summed (divided by the number of classes ``K``, as in
    ``torch.nn.MultiMarginLoss``). ``multiclass_hinge`` is the Crammer-Singer loss instead,
    which penalises only the largest wrong score, ``max(0, 1 + max_{j != y} s_j - s_y)``, and
    does not divide by ``K``: the two agree only for ``K = 2`` up to that factor.
    ``class_weights`` ``w`` (shape ``(K,)``) scale each example by its true class's weight,
    after the power, and ``"mean"`` is the plain mean over examples (PyTorch does not
    renormalise by the weights here, unlike its cross-entropy).

    ``p = 1``: convex, piecewise linear, bounded gradient; the subgradient at a hinge kink
    (``m - s_y + s_j = 0``) is the minimum-norm one, 0. ``p = 2``: convex and C1 (gradient
    ``2 w_y max(0, .)/K`` per violated class), not C2 at the kinks; its gradient grows with the
    violation. The registry's properties describe the default ``p = 1``.

    Args:
        scores: ``(..., K)`` class scores, ``K >= 2``.
        labels: integer class ids of shape ``scores.shape[:-1]``.
        p: 1 or 2 (a Python int: the power is chosen at trace time).
        margin: ``m >= 0`` (a negative margin would no longer ask for the true class to win).
        class_weights: optional non-negative per-class weights of shape ``(K,)``.
        weights: optional per-example weights; reduction: "mean", "sum" or "none".

    Returns:
        The reduced loss, or per-example losses of shape ``scores.shape[:-1]`` with "none".

    Raises:
        TypeError: float labels.
        ValueError: ``p`` not 1 or 2, negative or non-finite ``margin``, labels not of shape
            ``scores.shape[:-1]``, concrete ids outside ``[0, K)``, ``K < 2``, misshaped or
            negative ``class_weights``, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> s = jnp.array([[0.1, 0.2, 0.4, 0.8]])
        >>> round(float(multi_margin(s, jnp.array([3]))), 4)  # PyTorch's documented example
        0.325
        >>> round(float(multi_margin(s, jnp.array([3]), p=2)), 4)
        0.1525

    References:
        Weston, J. & Watkins, C. (1999). Support vector machines for multi-class pattern
        recognition. ESANN. PyTorch documentation, ``torch.nn.MultiMarginLoss``.
    """
    check_reduction(reduction)
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p not in (1, 2):
        raise ValueError(f"`p` must be 1 or 2; got {p!r}")
    _check_margin(margin)
    s = _scores_with_classes(scores)
    k = s.shape[-1]
    kind, lab = class_targets(s, labels, -1, "scores")
    if kind != "ids":
        raise TypeError(f"`labels` must be integer class ids; got {describe(labels)}")
    safe, _, invalid = class_ids(lab, k, None)
    onehot = jax.nn.one_hot(safe, k, dtype=jnp.bool_)
    s_y = jnp.sum(jnp.where(onehot, s, 0.0), axis=-1, keepdims=True)
    h = positive_part(margin - s_y + s)
    if p == 2:
        h = h * h
    # The true class's own term (margin - s_y + s_y = margin) is not part of the sum.
    values = jnp.sum(jnp.where(onehot, 0.0, h), axis=-1) / k
    if class_weights is not None:
        cw = per_class(class_weights, "class_weights", k, s.dtype, allow_scalar=False)
        values = cw[safe] * values
    # A NaN true-class score sits in s_y of every term; one in a wrong class reaches its own.
    values = jnp.where(invalid | jnp.any(jnp.isnan(s), axis=-1), jnp.nan, values)
    return reduce_loss(values, weights, reduction)


@register(
    **_CLS,
    input_kind="scores",
    convex=True,
    smooth=False,
    robust=True,
    probabilistic=False,
    reference="torch.nn.MultiLabelMarginLoss; Elisseeff & Weston (2001), NIPS",
)
def multilabel_margin(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Multi-label hinge: ``l = (1/K) sum_{j in T} sum_{i not in T} max(0, 1 - (s_j - s_i))``.

    ``T`` is the example's set of target classes: every target class should outscore every
    non-target class by a margin of 1 (``torch.nn.MultiLabelMarginLoss``). An example with no
    target class, or with every class a target, has loss 0. Convex, piecewise linear, bounded
    gradient; the minimum-norm subgradient 0 at each kink.

    Target format. lossopt takes ``labels`` as a **multi-hot matrix** of ``scores``' shape (bool,
    or float 0/1): ``labels[n, c]`` is True when class ``c`` is a target of example ``n``, the
    natural array form in JAX (fixed shape, no sentinel). PyTorch instead takes an integer
    matrix of class *indices*, each row read up to its first ``-1`` (``[[3, 0, -1, 1]]`` means
    ``T = {3, 0}``). Integer labels raise here, because the two formats cannot be told apart.
    Convert PyTorch's format with::

        valid = jnp.cumprod(t >= 0, axis=-1).astype(bool)       # entries before the first -1
        rows = jnp.arange(t.shape[0])[:, None]
        multi_hot = jnp.zeros(t.shape, bool).at[rows, jnp.where(valid, t, 0)].max(valid)

    (``t.shape = (N, K)``; for one example of shape ``(K,)`` use ``t[None]``.) Duplicate
    indices in a PyTorch row count once in ``T`` for the non-target set but are summed twice by
    PyTorch; the multi-hot form has no duplicates.

    Args:
        scores: ``(..., K)`` class scores, ``K >= 2``.
        labels: multi-hot matrix of ``scores``' shape, bool or float entries 0/1.
        weights: optional per-example weights; reduction: "mean", "sum" or "none".

    Returns:
        The reduced loss, or per-example losses of shape ``scores.shape[:-1]`` with "none".

    Raises:
        TypeError: integer labels (the PyTorch index format: convert it as above).
        ValueError: labels not of ``scores``' shape, concrete entries other than 0/1,
            ``K < 2``, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> s = jnp.array([[0.1, 0.2, 0.4, 0.8]])
        >>> t = jnp.array([[True, False, False, True]])  # PyTorch's [[3, 0, -1, 1]]
        >>> round(float(multilabel_margin(s, t)), 4)  # PyTorch's documented example
        0.85

    References:
        PyTorch documentation, ``torch.nn.MultiLabelMarginLoss``. Elisseeff, A. & Weston, J.
        (2001). A kernel method for multi-labelled classification. NIPS.
    """
    check_reduction(reduction)
    s = _scores_with_classes(scores)
    t = _multi_hot(s, labels)
    k = s.shape[-1]
    # pair[..., j, i] = max(0, 1 - s_j + s_i), counted when j is a target and i is not.
    pair = positive_part(1.0 - s[..., :, None] + s[..., None, :])
    counted = t[..., :, None] * (1.0 - t[..., None, :])
    values = jnp.sum(counted * pair, axis=(-2, -1)) / k
    values = jnp.where(jnp.any(jnp.isnan(s), axis=-1), jnp.nan, values)
    return reduce_loss(values, weights, reduction)


@register(
    **_CLS,
    input_kind="scores",
    convex=True,
    smooth=False,
    robust=True,
    probabilistic=False,
    reference="Keras CategoricalHinge",
)
def categorical_hinge(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Keras' categorical hinge: ``l = max(0, 1 + max_c (1 - t_c) s_c - sum_c t_c s_c)``.

    For general targets ``t`` in ``[0, 1]`` (one-hot, multi-hot or soft; integer class ids are
    turned into one-hot rows): ``pos = sum_c t_c s_c`` is the target-weighted score and
    ``neg = max_c (1 - t_c) s_c`` the largest score weighted by how much it is *not* a
    target, exactly Keras' ``categorical_hinge`` (``keras.losses.CategoricalHinge``). Note that
    for one-hot targets the true class enters ``neg`` with weight 0, i.e. as the value 0, so
    ``neg >= 0`` always: this is not the Crammer-Singer ``multiclass_hinge``
    (``max(0, 1 + max_{j != y} s_j - s_y)``); the two agree when some wrong class has a
    non-negative score. Convex (a max of linear functions, minus a linear one, clipped at 0),
    bounded gradient ``(1 - t_j*) e_j* - t`` while the margin is violated and the minimum-norm
    subgradient 0 at the margin; ties in the max share the gradient equally (JAX's rule).

    Args:
        scores: ``(..., K)`` scores (Keras' ``y_pred``).
        labels: float/bool targets of ``scores``' shape with values in ``[0, 1]``, or integer
            class ids of shape ``scores.shape[:-1]``.
        weights: optional per-example weights; reduction: "mean", "sum" or "none" (one value
            per example, shape ``scores.shape[:-1]``, as Keras' per-sample values).

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        TypeError: float labels of the class-id shape.
        ValueError: labels of another shape, concrete targets outside [0, 1] or ids outside
            ``[0, K)``, 0-d scores, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> s = jnp.array([[0.5, -1.0, -1.0], [1.0, 2.0, 0.0]])
        >>> categorical_hinge(s, jnp.array([0, 0]), reduction="none")  # neg = 0, then 2
        Array([0.5, 2. ], dtype=float...)

    References:
        Keras documentation, ``keras.losses.CategoricalHinge``.
    """
    check_reduction(reduction)
    s = as_float_array(scores, "scores")
    if s.ndim == 0:
        raise ValueError(f"`scores` must have a class axis (the last one); got {describe(scores)}")
    kind, lab = class_targets(s, labels, -1, "scores")
    invalid = None
    if kind == "ids":
        safe, _, invalid = class_ids(lab, s.shape[-1], None)
        t = jax.nn.one_hot(safe, s.shape[-1], dtype=s.dtype)
    else:
        t = lab
        check_array_values(t, "labels", lambda v: (v >= 0) & (v <= 1), "targets in [0, 1]")
    pos = jnp.sum(t * s, axis=-1)
    neg = jnp.max((1.0 - t) * s, axis=-1)
    values = positive_part(1.0 + neg - pos)
    if invalid is not None:
        values = jnp.where(invalid, jnp.nan, values)
    return reduce_loss(values, weights, reduction)


# --------------------------------------------------------------------------------------------
# Binary margin losses on {-1, +1} labels
# --------------------------------------------------------------------------------------------


@register(
    **_CLS,
    input_kind="distances",
    convex=True,
    smooth=False,
    robust=True,
    probabilistic=False,
    reference="torch.nn.HingeEmbeddingLoss",
)
def hinge_embedding(
    distances: ArrayLike,
    labels: ArrayLike,
    *,
    margin: ArrayLike = 1.0,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Hinge embedding loss: ``l = x`` if ``y = 1``, ``max(0, m - x)`` if ``y = -1``.

    ``x`` is typically a distance between the two members of a pair (e.g. an L1 distance),
    ``y = 1`` marks similar pairs (pulled to distance 0) and ``y = -1`` dissimilar ones (pushed
    beyond the margin ``m``), as ``torch.nn.HingeEmbeddingLoss``. Elementwise; ``x`` is not
    required to be non-negative (PyTorch does not check either). Convex and piecewise linear in
    ``x`` with slope 1, -1 or 0: bounded gradient; the minimum-norm subgradient 0 at the kink
    ``x = m`` of a dissimilar pair.

    Args:
        distances: pair distances (or any scores), any shape.
        labels: array of ``distances``' shape, each 1 (similar) or -1 (dissimilar).
        margin: ``m >= 0``.
        weights: optional per-example weights; reduction: "mean", "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        ValueError: mismatched shapes, labels other than +-1, negative or non-finite
            ``margin``, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> d, y = jnp.array([0.3, 0.3, 1.5]), jnp.array([1, -1, -1])
        >>> hinge_embedding(d, y, reduction="none")
        Array([0.3, 0.7, 0. ], dtype=float...)

    References:
        PyTorch documentation, ``torch.nn.HingeEmbeddingLoss``.
    """
    _check_margin(margin)
    x, y = _signed(distances, labels, "distances", reduction)
    values = jnp.where(y == 1, x, positive_part(margin - x))
    return reduce_loss(values, weights, reduction)


@register(
    **_CLS,
    input_kind="scores",
    convex=True,
    smooth=True,
    robust=True,
    probabilistic=True,
    reference="torch.nn.SoftMarginLoss",
)
def soft_margin(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Soft-margin (logistic) loss on {-1, +1} labels: ``l = log(1 + exp(-y s))``.

    Computed as ``-log_sigmoid(y s)``: finite value, gradient ``-y sigmoid(-y s)`` (bounded)
    and Hessian ``sigmoid(s) sigmoid(-s)`` at ``s = +-1e4``. Convex and C2; the negative
    log-likelihood of a logistic model, equal to ``sigmoid_binary_cross_entropy(s, (y + 1) / 2)``
    elementwise. As ``torch.nn.SoftMarginLoss``, whose ``"mean"`` is also over all elements.

    Args:
        scores: real-valued decision scores.
        labels: array of the same shape, each in {-1, +1}.
        weights: optional per-example weights; "mean" then is ``sum(w l) / sum(w)``.
        reduction: "mean" (default), "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        ValueError: mismatched shapes, labels other than +-1, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> soft_margin(jnp.array([0.0, 2.0, 1e4]), jnp.array([1, -1, 1]), reduction="none")
        Array([0.6931..., 2.1269..., 0. ...], dtype=float...)

    References:
        PyTorch documentation, ``torch.nn.SoftMarginLoss``.
    """
    s, y = _signed(scores, labels, "scores", reduction)
    return reduce_loss(-jax.nn.log_sigmoid(y * s), weights, reduction)


@register(
    **_CLS,
    input_kind="logits",
    convex=True,
    smooth=True,
    robust=True,
    probabilistic=True,
    reference="torch.nn.MultiLabelSoftMarginLoss",
)
def multilabel_soft_margin(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    class_weights: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Multi-label soft margin: ``l = (1/K) sum_c w_c BCE(x_c, t_c)`` per example.

    ``BCE(x, t) = -(t log sigmoid(x) + (1 - t) log sigmoid(-x))`` (log-space: finite at
    +-1e4) summed over the ``K`` classes of the last axis and divided by ``K``, with optional
    per-class weights ``w`` (shape ``(K,)``); ``"mean"`` then averages over examples, exactly
    ``torch.nn.MultiLabelSoftMarginLoss`` (whose ``weight`` is ``class_weights`` here; neither
    renormalises by the weights). Without ``class_weights`` this is an alias in value:
    ``multilabel_soft_margin(x, t)`` equals ``sigmoid_binary_cross_entropy(x, t)`` (the mean over
    all ``N K`` elements is the mean over examples of the mean over classes), and the
    ``"none"`` values are the latter's elementwise values averaged over the last axis. Convex,
    C2, bounded gradient. Labels may be soft, in ``[0, 1]``.

    Args:
        logits: ``(..., K)`` logits.
        labels: array of ``logits``' shape with values in ``[0, 1]``.
        class_weights: optional non-negative per-class weights of shape ``(K,)``.
        weights: optional per-example weights; reduction: "mean", "sum" or "none" (one value
            per example, shape ``logits.shape[:-1]``).

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        ValueError: mismatched shapes, 0-d logits, labels outside [0, 1], misshaped or
            negative ``class_weights``, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.array([[0.0, 2.0], [-1.0, 1e4]])
        >>> multilabel_soft_margin(x, jnp.array([[1.0, 0.0], [0.0, 1.0]]), reduction="none")
        Array([1.4100..., 0.1566...], dtype=float...)

    References:
        PyTorch documentation, ``torch.nn.MultiLabelSoftMarginLoss``.
    """
    check_reduction(reduction)
    x = as_float_array(logits, "logits")
    if x.ndim == 0:
        raise ValueError(f"`logits` must have a class axis (the last one); got {describe(logits)}")
    t = as_float_array(labels, "labels", like=x)
    check_same_shape(x, t, "logits", "labels")
    check_array_values(t, "labels", lambda v: (v >= 0) & (v <= 1), "values in [0, 1]")
    bce = -mul_log(t, jax.nn.log_sigmoid(x)) - mul_log(1.0 - t, jax.nn.log_sigmoid(-x))
    if class_weights is not None:
        cw = per_class(class_weights, "class_weights", x.shape[-1], x.dtype, allow_scalar=False)
        bce = along_last(cw, x.ndim) * bce
    values = jnp.mean(bce, axis=-1)
    return reduce_loss(values, weights, reduction)
