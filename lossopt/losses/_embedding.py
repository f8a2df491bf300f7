"""Embedding and metric-learning losses: triplet, contrastive, cosine embedding, margin ranking,
InfoNCE.

Embeddings are arrays ``(..., d)``: the last axis is the feature axis and the leading axes index
examples, so ``reduction="none"`` returns one value per example (shape ``(...)``).

Distances are safe at zero: the euclidean norm uses a double ``where`` (value 0, gradient 0,
Hessian 0 at a zero difference: the minimum-norm subgradient of ``||x||``), and the unit vector
of a zero embedding is defined as 0 (cosine similarity 0, gradient 0) instead of NaN. PyTorch
instead adds ``eps`` (``pairwise_distance``: ``||x1 - x2 + 1e-6||``; ``cosine_similarity``:
norms clamped at ``1e-8``); the values differ only within ``eps`` of those points.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lossopt._validation import (
    as_float_array,
    as_integer_labels,
    check_array_values,
    check_bool,
    check_choice,
    check_in_interval,
    check_nonnegative,
    check_positive,
    check_same_shape,
    describe,
)
from lossopt.losses._numerics import positive_part, unit_vector
from lossopt.losses._reduce import check_reduction, reduce_loss
from lossopt.losses._registry import register

__all__ = ["contrastive", "cosine_embedding", "info_nce", "margin_ranking", "triplet"]

DISTANCES = ("squared_euclidean", "euclidean", "cosine")


def _embeddings(x: Any, name: str, like: jax.Array | None = None) -> jax.Array:
    arr = as_float_array(x, name, like=like)
    if arr.ndim < 1:
        raise ValueError(f"`{name}` must have a feature axis (shape (..., d)); got {describe(arr)}")
    return arr


def _squared_norm(x: jax.Array) -> jax.Array:
    return jnp.sum(x * x, axis=-1)


def _norm(x: jax.Array) -> jax.Array:
    """Euclidean norm over the last axis; at 0: value 0, gradient 0, Hessian 0 (double where)."""
    s = _squared_norm(x)
    zero = s == 0  # not `s > 0`: a NaN must reach the formula, not the guard
    return jnp.where(zero, 0, jnp.sqrt(jnp.where(zero, 1, s)))


def _cosine_similarity(x1: jax.Array, x2: jax.Array) -> jax.Array:
    return jnp.sum(unit_vector(x1) * unit_vector(x2), axis=-1)


def _distance(x1: jax.Array, x2: jax.Array, kind: str) -> jax.Array:
    if kind == "squared_euclidean":
        return _squared_norm(x1 - x2)
    if kind == "euclidean":
        return _norm(x1 - x2)
    return 1 - _cosine_similarity(x1, x2)


_positive_part = positive_part  # max(v, 0): slope 0 at the hinge, NaN in -> NaN out


def _check_values_in(x: Any, name: str, allowed: tuple[float, ...]) -> None:
    check_array_values(x, name, lambda v: np.isin(v, allowed), f"only values in {list(allowed)}")


def _labels_for(labels: Any, shape: tuple[int, ...], dtype: Any, name: str = "labels"):
    y = as_float_array(labels, name).astype(dtype)
    if tuple(y.shape) != tuple(shape):
        raise ValueError(
            f"`{name}` must have the per-example shape {tuple(shape)} (the embeddings' shape "
            f"without the feature axis); got {name}.shape={tuple(y.shape)}"
        )
    return y


_EMB = dict(task="embedding", input_kind="embeddings", probabilistic=False)


@register(
    **_EMB,
    convex=False,  # convex in the anchor for squared distances, not for euclidean ones
    smooth=False,
    # Bounded in the anchor: d/da (|a-p|^2 - |a-n|^2) = 2 (n - p); unit vectors for euclidean.
    robust=True,
    reference="Schroff et al. (2015), FaceNet, CVPR; torch.nn.TripletMarginLoss "
    "(its defaults: distance='euclidean', margin=1.0)",
)
def triplet(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    margin: ArrayLike = 0.2,
    distance: str = "squared_euclidean",
    swap: bool = False,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Triplet margin loss: ``max(d(a, p) - d(a, n) + margin, 0)`` per example.

    ``distance``: ``"squared_euclidean"`` ``||a - p||^2`` (the seed document and FaceNet),
    ``"euclidean"`` ``||a - p||`` (``torch.nn.TripletMarginLoss(p=2)``, which adds
    ``eps = 1e-6`` to the difference), or ``"cosine"`` ``1 - cos(a, p)``. ``swap=True`` uses
    ``min(d(a, n), d(p, n))`` as the negative distance (Balntas et al. 2016, PyTorch's
    ``swap``). ``optax.losses.triplet_margin_loss`` computes ``(sum (a-p)^q + eps)^(1/q)``
    without the absolute value, which is wrong for odd ``q``; its ``q = 2`` agrees with the
    euclidean case here up to its ``eps``. At the hinge and at zero distance the minimum-norm
    subgradient (0) is returned. Convex in the anchor for ``"squared_euclidean"`` (the
    ``||a||^2`` terms cancel), not for the other distances.

    Defaults: the seed document's squared distance with ``margin=0.2``. PyTorch's
    ``TripletMarginLoss()`` and optax's ``triplet_margin_loss`` default to the euclidean
    distance with margin 1.0: ``triplet(a, p, n, distance="euclidean", margin=1.0)`` is theirs
    (up to their ``eps``).

    Args:
        anchor, positive, negative: embeddings of equal shape ``(..., d)``.
        margin: margin >= 0.
        distance: "squared_euclidean" (default), "euclidean" or "cosine".
        swap: use the distance swap.
        weights: optional per-example weights (shape ``(...)``); reduction: "mean", "sum",
            "none".

    Returns:
        The reduced loss, or per-example values of shape ``anchor.shape[:-1]`` with "none".

    Raises:
        ValueError: mismatched shapes, missing feature axis, ``margin < 0``, unknown distance or
            reduction.
        TypeError: ``swap`` not a bool.

    Example:
        >>> import jax.numpy as jnp
        >>> a, p, n = jnp.array([[0.0, 0.0]]), jnp.array([[0.3, 0.4]]), jnp.array([[0.6, 0.8]])
        >>> round(float(triplet(a, p, n, margin=1.0)), 4)  # 0.25 - 1 + 1
        0.25
        >>> round(float(triplet(a, p, n, margin=1.0, distance="euclidean")), 4)  # 0.5 - 1 + 1
        0.5

    References:
        Schroff, F., Kalenichenko, D. & Philbin, J. (2015). FaceNet: A unified embedding for
        face recognition and clustering. CVPR. Balntas, V. et al. (2016). Learning local
        feature descriptors with triplets and shallow convolutional neural networks. BMVC.
    """
    check_reduction(reduction)
    check_choice(distance, "distance", DISTANCES)
    check_bool(swap, "swap")
    check_nonnegative(margin, "margin")
    a = _embeddings(anchor, "anchor")
    p = _embeddings(positive, "positive", like=a)
    n = _embeddings(negative, "negative", like=a)
    check_same_shape(a, p, "anchor", "positive")
    check_same_shape(a, n, "anchor", "negative")
    d_pos = _distance(a, p, distance)
    d_neg = _distance(a, n, distance)
    if swap:
        d_neg = jnp.minimum(d_neg, _distance(p, n, distance))
    return reduce_loss(_positive_part(d_pos - d_neg + margin), weights, reduction)


@register(
    **_EMB,
    convex=False,
    smooth=False,
    robust=False,
    reference="Hadsell, Chopra & LeCun (2006), CVPR",
)
def contrastive(
    x1: ArrayLike,
    x2: ArrayLike,
    labels: ArrayLike,
    *,
    margin: ArrayLike = 1.0,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Contrastive loss: ``(1 - y) d^2 + y max(margin - d, 0)^2``, ``d = ||x1 - x2||``.

    Label convention as in the seed document and Hadsell et al.: ``y = 1`` marks a
    *dissimilar* pair (pushed beyond ``margin``), ``y = 0`` a similar one (pulled together);
    soft labels in ``[0, 1]`` interpolate. Hadsell et al. put a factor 1/2 on both terms
    (this is twice theirs). The similar term uses ``d^2`` directly (smooth); the dissimilar
    term's gradient at ``d = 0`` (the direction is undefined) is the minimum-norm subgradient
    0 there, finite with a finite Hessian. Not smooth (kink at ``d = 0`` and ``d = margin``).

    Args:
        x1, x2: embeddings of equal shape ``(..., d)``.
        labels: per-pair labels of shape ``(...)`` in ``[0, 1]`` (1 = dissimilar).
        margin: margin > 0.
        weights: optional per-example weights; reduction: "mean", "sum" or "none".

    Returns:
        The reduced loss (a scalar), or per-example losses (shape ``x1.shape[:-1]``) with "none".

    Raises:
        ValueError: mismatched shapes, labels outside ``[0, 1]``, ``margin <= 0``, unknown
            reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> x1 = jnp.array([[0.0, 0.0], [0.0, 0.0]])
        >>> x2 = jnp.array([[0.3, 0.4], [0.3, 0.4]])
        >>> l = contrastive(x1, x2, jnp.array([0, 1]), margin=1.0, reduction="none")
        >>> [round(float(v), 4) for v in l]  # similar: 0.5^2; dissimilar: (1 - 0.5)^2
        [0.25, 0.25]

    References:
        Hadsell, R., Chopra, S. & LeCun, Y. (2006). Dimensionality reduction by learning an
        invariant mapping. CVPR, 1735-1742.
    """
    check_reduction(reduction)
    check_positive(margin, "margin")
    a = _embeddings(x1, "x1")
    b = _embeddings(x2, "x2", like=a)
    check_same_shape(a, b, "x1", "x2")
    y = _labels_for(labels, a.shape[:-1], a.dtype)
    check_in_interval(labels, "labels", 0.0, 1.0, closed_low=True, closed_high=True)
    diff = a - b
    push = _positive_part(margin - _norm(diff))
    values = (1 - y) * _squared_norm(diff) + y * push * push
    return reduce_loss(values, weights, reduction)


@register(
    **_EMB,
    convex=False,
    smooth=False,
    robust=True,
    reference="torch.nn.CosineEmbeddingLoss",
)
def cosine_embedding(
    x1: ArrayLike,
    x2: ArrayLike,
    labels: ArrayLike,
    *,
    margin: ArrayLike = 0.0,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Cosine embedding loss: ``1 - cos(x1, x2)`` if ``y = 1``, ``max(0, cos - margin)`` if
    ``y = -1``.

    As ``torch.nn.CosineEmbeddingLoss`` (labels 1 / -1), except at zero vectors: the cosine of
    a zero vector is 0 here with zero gradient (PyTorch clamps the norms at ``1e-8``). The
    gradient of ``cos`` scales like ``1/||x1||``: bounded as the embeddings grow (robust), not
    near 0. Minimum-norm subgradient 0 at the hinge.

    Args:
        x1, x2: embeddings of equal shape ``(..., d)``.
        labels: per-pair labels of shape ``(...)``, each 1 (similar) or -1 (dissimilar).
        margin: in ``[-1, 1]`` (PyTorch suggests 0 to 0.5).
        weights: optional per-example weights; reduction: "mean", "sum" or "none".

    Returns:
        The reduced loss (a scalar), or per-example losses (shape ``x1.shape[:-1]``) with "none".

    Raises:
        ValueError: mismatched shapes, labels other than +-1, ``margin`` outside ``[-1, 1]``,
            unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> x1, x2 = jnp.array([[1.0, 0.0], [1.0, 0.0]]), jnp.array([[1.0, 1.0], [1.0, 1.0]])
        >>> l = cosine_embedding(x1, x2, jnp.array([1, -1]), margin=0.5, reduction="none")
        >>> [round(float(v), 4) for v in l]  # cos = 0.7071
        [0.2929, 0.2071]

    References:
        PyTorch documentation, ``torch.nn.CosineEmbeddingLoss``.
    """
    check_reduction(reduction)
    check_in_interval(margin, "margin", -1.0, 1.0, closed_low=True, closed_high=True)
    a = _embeddings(x1, "x1")
    b = _embeddings(x2, "x2", like=a)
    check_same_shape(a, b, "x1", "x2")
    y = _labels_for(labels, a.shape[:-1], a.dtype)
    _check_values_in(labels, "labels", (-1.0, 1.0))
    cos = _cosine_similarity(a, b)
    values = jnp.where(y > 0, 1 - cos, _positive_part(cos - margin))
    return reduce_loss(values, weights, reduction)


@register(
    task="embedding",
    input_kind="scores",
    convex=True,
    smooth=False,
    robust=True,
    probabilistic=False,
    reference="torch.nn.MarginRankingLoss",
)
def margin_ranking(
    x1: ArrayLike,
    x2: ArrayLike,
    labels: ArrayLike,
    *,
    margin: ArrayLike = 0.0,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Margin ranking loss: ``max(0, -y (x1 - x2) + margin)`` elementwise.

    ``y = 1``: ``x1`` should rank higher than ``x2`` by ``margin``; ``y = -1``: lower. As
    ``torch.nn.MarginRankingLoss``. Convex and piecewise linear in ``x1``; minimum-norm
    subgradient 0 at the hinge.

    Args:
        x1, x2: scores of equal shape.
        labels: array of the same shape, each 1 or -1.
        margin: any real number (PyTorch allows negative margins too).
        weights: optional per-example weights; reduction: "mean", "sum" or "none".

    Returns:
        The reduced loss (a scalar), or the elementwise losses with "none".

    Raises:
        ValueError: mismatched shapes, labels other than +-1, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> l = margin_ranking(jnp.array([1.0, 1.0]), jnp.array([0.5, 0.5]), jnp.array([1, -1]),
        ...                    margin=0.2, reduction="none")
        >>> [round(float(v), 4) for v in l]
        [0.0, 0.7]

    References:
        PyTorch documentation, ``torch.nn.MarginRankingLoss``; Herbrich, R., Graepel, T. &
        Obermayer, K. (2000). Large margin rank boundaries for ordinal regression.
    """
    check_reduction(reduction)
    check_in_interval(margin, "margin", -np.inf, np.inf)
    a = as_float_array(x1, "x1")
    b = as_float_array(x2, "x2", like=a)
    check_same_shape(a, b, "x1", "x2")
    y = as_float_array(labels, "labels").astype(a.dtype)
    check_same_shape(a, y, "x1", "labels")
    _check_values_in(labels, "labels", (-1.0, 1.0))
    return reduce_loss(_positive_part(margin - y * (a - b)), weights, reduction)


@register(
    **_EMB,
    convex=False,
    smooth=True,
    robust=True,
    reference="Oord et al. (2018), arXiv:1807.03748; Chen et al. (2020), SimCLR; "
    "Khosla et al. (2020), Supervised Contrastive Learning",
)
def info_nce(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    temperature: ArrayLike = 0.07,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """InfoNCE / NT-Xent / supervised contrastive loss over a batch.

    With ``s_ij = cos(e_i, e_j) / temperature`` and ``P(i) = {j != i : labels_j = labels_i}``,
    the loss of anchor ``i`` is (Khosla et al.'s ``L_out``)
    ``-1/|P(i)| sum_{p in P(i)} [s_ip - log sum_{k != i} exp(s_ik)]``. With exactly one
    positive per anchor (SimCLR's two views, ``labels = [0, 0, 1, 1, ...]``) this is NT-Xent,
    and its mean equals ``optax.losses.ntxent`` (which, with several positives, leaves the
    other positives out of each denominator instead). Anchors without a positive get 0 and are
    left out of the mean (counted with weight 0). The cosine of a zero embedding is 0 (finite
    value, gradient and Hessian). Smooth away from zero embeddings.

    Args:
        embeddings: ``(n, d)`` array.
        labels: ``(n,)`` integer group ids; equal ids are positive pairs.
        temperature: > 0.
        weights: optional per-anchor weights ``(n,)``; reduction: "mean", "sum" or "none"
            (per-anchor values, 0 for anchors without positives).

    Returns:
        The reduced loss (a scalar), or the per-anchor losses ``(n,)`` with "none".

    Raises:
        ValueError: embeddings not 2-D, labels not of shape ``(n,)``, ``temperature <= 0``,
            unknown reduction.
        TypeError: non-integer labels.

    Example:
        >>> import jax.numpy as jnp
        >>> e = jnp.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
        >>> round(float(info_nce(e, jnp.array([0, 0, 1, 1]), temperature=1.0)), 4)
        0.5978

    References:
        van den Oord, A., Li, Y. & Vinyals, O. (2018). Representation learning with contrastive
        predictive coding. arXiv:1807.03748. Chen, T. et al. (2020). A simple framework for
        contrastive learning of visual representations. ICML. Khosla, P. et al. (2020).
        Supervised contrastive learning. NeurIPS.
    """
    check_reduction(reduction)
    check_positive(temperature, "temperature")
    e = as_float_array(embeddings, "embeddings")
    if e.ndim != 2:
        raise ValueError(f"`embeddings` must be 2-D (n, d); got {describe(e)}")
    y = as_integer_labels(labels, "labels")
    if tuple(y.shape) != (e.shape[0],):
        raise ValueError(
            f"`labels` must have shape ({e.shape[0]},), one group id per embedding; got "
            f"labels.shape={tuple(y.shape)}"
        )
    values, has_pos = _info_nce_values(e, y, jnp.asarray(temperature, e.dtype))
    return reduce_loss(values, weights, reduction, mask=has_pos)


@jax.jit
def _info_nce_values(e, y, temperature):
    """Per-anchor InfoNCE values and the has-a-positive mask (jitted: one compile per shape)."""
    n = e.shape[0]
    eye = jnp.eye(n, dtype=bool)
    positives = (y[:, None] == y[None, :]) & ~eye
    num_pos = jnp.sum(positives, axis=1)
    has_pos = num_pos > 0
    if n < 2:  # static: no pairs at all
        return jnp.zeros((n,), e.dtype), has_pos
    u = unit_vector(e)
    # HIGHEST: no reduced-precision (TF32/bf16) matmul on accelerators for the similarities.
    sim = jnp.matmul(u, u.T, precision=jax.lax.Precision.HIGHEST) / temperature
    log_denominator = jax.nn.logsumexp(jnp.where(eye, -jnp.inf, sim), axis=1)
    log_prob = sim - log_denominator[:, None]  # finite everywhere (diagonal unused)
    total = jnp.sum(jnp.where(positives, log_prob, 0), axis=1)
    return -total / jnp.maximum(num_pos, 1).astype(e.dtype), has_pos
