"""Similarity-based losses: cosine similarity as a loss (Keras) and circle loss (Sun et al.).

Both work on cosines of vectors along the last (feature) axis. The unit vector of a zero
vector is 0 (cosine 0, with zero gradient and Hessian) instead of NaN, as in
:mod:`lossopt.losses._embedding`; a NaN entry gives a NaN loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lossopt._validation import (
    as_float_array,
    as_integer_labels,
    check_in_interval,
    check_positive,
    describe,
)
from lossopt.losses._labels import paired_inputs
from lossopt.losses._numerics import positive_part, unit_vector
from lossopt.losses._reduce import check_reduction, reduce_loss
from lossopt.losses._registry import register

__all__ = ["circle", "cosine_similarity"]


@register(
    task="embedding",
    input_kind="embeddings",
    convex=False,
    smooth=True,
    robust=True,
    probabilistic=False,
    reference="Keras CosineSimilarity",
)
def cosine_similarity(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int = -1,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Negative cosine similarity as a loss: ``l = -cos(p, t) = -<p, t> / (||p|| ||t||)``.

    Sign convention (Keras' ``keras.losses.CosineSimilarity``): the loss is the *negative*
    cosine, in ``[-1, 1]``: -1 for predictions pointing along the targets (the minimum), 0 for
    orthogonal ones, +1 for opposite ones. It is **not** ``1 - cos`` (``cosine_embedding``'s
    similar-pair term and the cosine *distance*), which differs by the constant 1 and has its
    minimum at 0. A zero vector on either side gives 0, as in Keras (which divides by norms
    clamped at a small epsilon; here the cosine of a zero vector is defined as 0, with zero
    gradient). Scale-invariant in ``p``: the gradient ``-(t_hat - cos p_hat) / ||p||`` shrinks
    as ``p`` grows (bounded: robust), and the loss is not convex (it peaks at ``p = -t``).
    Smooth away from zero vectors.

    Args:
        predictions: vectors along ``axis`` (Keras' ``y_pred``).
        targets: array of ``predictions``' shape (Keras' ``y_true``).
        axis: the feature axis (default last), removed in the per-example values.
        weights: optional per-example weights; reduction: "mean", "sum" or "none".

    Returns:
        The reduced loss, or per-example values (the shape without ``axis``) with "none".

    Raises:
        TypeError: non-integer ``axis``.
        ValueError: mismatched shapes, 0-d inputs, ``axis`` out of range, unknown reduction.

    Example (Keras' documented values: ``[-0., -0.99999994, 0.99999994]``):
        >>> import jax.numpy as jnp
        >>> t = jnp.array([[0.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
        >>> p = jnp.array([[1.0, 0.0], [1.0, 1.0], [-1.0, -1.0]])
        >>> [round(float(v), 4) for v in cosine_similarity(p, t, reduction="none")]
        [-0.0, -1.0, 1.0]

    References:
        Keras documentation, ``keras.losses.CosineSimilarity``.
    """
    p, t = paired_inputs(predictions, targets, "predictions", "targets", reduction)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"`axis` must be an int; got {describe(axis)}")
    if p.ndim == 0 or not -p.ndim <= axis < p.ndim:
        raise ValueError(
            f"`axis` must index a dimension of `predictions` (ndim {p.ndim}); got axis={axis}"
        )
    p, t = jnp.moveaxis(p, int(axis), -1), jnp.moveaxis(t, int(axis), -1)
    values = -jnp.sum(unit_vector(p) * unit_vector(t), axis=-1)
    return reduce_loss(values, weights, reduction)


@register(
    task="embedding",
    input_kind="embeddings",
    convex=False,
    smooth=False,
    robust=True,
    probabilistic=False,
    reference="Sun et al. (2020), Circle Loss, CVPR, arXiv:2002.10857; Keras Circle",
)
def circle(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    margin: ArrayLike = 0.4,
    gamma: ArrayLike = 80.0,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Circle loss over a batch (Sun et al. 2020, the pair-wise label form).

    With ``s_ij = cos(e_i, e_j)``, the positives of anchor ``i`` are ``P(i) = {j != i :
    labels_j = labels_i}`` and its negatives ``N(i) = {j : labels_j != labels_i}``. With
    ``m = margin``, optima ``O_p = 1 + m``, ``O_n = -m``, margins ``D_p = 1 - m``, ``D_n = m``
    and self-paced weights ``a_p = max(O_p - s_p, 0)``, ``a_n = max(s_n - O_n, 0)``, the loss of
    anchor ``i`` is::

        l_i = log(1 + sum_{n in N(i)} exp(gamma a_n (s_n - D_n))
                      * sum_{p in P(i)} exp(-gamma a_p (s_p - D_p)))
            = softplus(logsumexp_n(gamma a_n (s_n - D_n)) + logsumexp_p(-gamma a_p (s_p - D_p)))

    evaluated in that log-space form (finite for any ``gamma``). An anchor without positives
    or without negatives has loss 0 and, as in Keras, still counts in ``"mean"`` (a plain mean
    over anchors). This is Keras' ``keras.losses.Circle`` (``margin`` and ``gamma`` there,
    defaults 0.4 and 80), written with cosines ``s = 1 - d`` instead of its cosine distances
    ``d``; Keras expects unit-norm embeddings, and here they are normalised first, so unit
    inputs give Keras' values. The paper treats ``a_p``, ``a_n`` as constants when deriving the
    gradient (its reference code detaches them); here, as in Keras, they are differentiated.
    ``a_n`` has a kink at ``s_n = -m`` (minimum-norm subgradient 0 there), so the loss is not
    C2; it is not convex; its gradient in ``e`` scales like ``gamma / ||e||`` (bounded as the
    embeddings grow). The paper uses ``gamma = 256, m = 0.25`` for face recognition.

    Args:
        embeddings: ``(n, d)`` array (normalised internally).
        labels: ``(n,)`` integer class ids; equal ids are positive pairs.
        margin: the relaxation ``m``, in ``[0, 0.5)`` (``D_p = 1 - m`` must exceed ``D_n = m``).
        gamma: the scale, > 0.
        weights: optional per-anchor weights ``(n,)``; reduction: "mean", "sum" or "none"
            (per-anchor values).

    Returns:
        The reduced loss, or per-anchor values ``(n,)`` with "none".

    Raises:
        TypeError: non-integer labels.
        ValueError: embeddings not 2-D, labels not of shape ``(n,)``, ``margin`` outside
            ``[0, 0.5)``, ``gamma <= 0``, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> e = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
        >>> circle(e, jnp.array([0, 0, 1, 1]), reduction="none")  # already separated: 0
        Array([0., 0., 0., 0.], dtype=float...)
        >>> e = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
        >>> round(float(circle(e, jnp.array([0, 0, 1, 1]), gamma=1.0)), 4)
        2.121

    References:
        Sun, Y., Cheng, C., Zhang, Y., Zhang, C., Zheng, L., Wang, Z. & Wei, Y. (2020). Circle
        loss: a unified perspective of pair similarity optimization. CVPR. arXiv:2002.10857.
        Keras documentation, ``keras.losses.Circle``.
    """
    check_reduction(reduction)
    check_in_interval(margin, "margin", 0.0, 0.5, closed_low=True)
    check_positive(gamma, "gamma")
    e = as_float_array(embeddings, "embeddings")
    if e.ndim != 2:
        raise ValueError(f"`embeddings` must be 2-D (n, d); got {describe(e)}")
    y = as_integer_labels(labels, "labels")
    if tuple(y.shape) != (e.shape[0],):
        raise ValueError(
            f"`labels` must have shape ({e.shape[0]},), one class id per embedding; got "
            f"labels.shape={tuple(y.shape)}"
        )
    values = _circle_values(e, y, jnp.asarray(margin, e.dtype), jnp.asarray(gamma, e.dtype))
    return reduce_loss(values, weights, reduction)


def _masked_logsumexp(z: jax.Array, mask: jax.Array) -> jax.Array:
    """``logsumexp`` over the True entries of each row (``-inf`` for none), NaN-propagating.

    Double ``where``: the masked-out entries never reach ``exp``, so their (possibly huge)
    values add nothing to the value or the gradient.
    """
    zm = jnp.where(mask, z, -jnp.inf)
    top = jnp.max(zm, axis=-1, keepdims=True)
    top = jnp.where(jnp.isfinite(top), jax.lax.stop_gradient(top), 0.0)
    terms = jnp.where(mask, jnp.exp(jnp.where(mask, z - top, 0.0)), 0.0)
    empty = ~jnp.any(mask, axis=-1)
    total = jnp.sum(terms, axis=-1)
    return jnp.where(empty, -jnp.inf, jnp.log(jnp.where(empty, 1.0, total)) + top[..., 0])


@jax.jit
def _circle_values(e, y, m, gamma):
    """Per-anchor circle-loss values (jitted: one compile per shape)."""
    n = e.shape[0]
    u = unit_vector(e)
    # HIGHEST: no reduced-precision (TF32/bf16) matmul on accelerators for the similarities.
    s = jnp.matmul(u, u.T, precision=jax.lax.Precision.HIGHEST)
    same = y[:, None] == y[None, :]
    positives = same & ~jnp.eye(n, dtype=bool)
    negatives = ~same
    a_p = positive_part(1.0 + m - s)
    a_n = positive_part(s + m)
    log_p = _masked_logsumexp(-gamma * a_p * (s - (1.0 - m)), positives)
    log_n = _masked_logsumexp(gamma * a_n * (s - m), negatives)
    total = log_p + log_n  # -inf when an anchor has no positives or no negatives
    values = jax.nn.softplus(jnp.where(jnp.isneginf(total), 0.0, total))
    # A NaN similarity anywhere in an anchor's row must reach its loss (the masks may hide it).
    nan_row = jnp.any(jnp.isnan(s), axis=-1)
    return jnp.where(nan_row, jnp.nan, jnp.where(jnp.isneginf(total), 0.0, values))
