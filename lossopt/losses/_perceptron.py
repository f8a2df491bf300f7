"""Perceptron losses: ``perceptron`` (binary, labels +-1) and ``multiclass_perceptron``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lossopt._validation import as_float_array, describe
from lossopt.losses._labels import class_ids, class_targets, signed_labels
from lossopt.losses._masking import class_mask, reduce_masked
from lossopt.losses._numerics import positive_part
from lossopt.losses._reduce import check_reduction, reduce_loss
from lossopt.losses._registry import register

__all__ = ["multiclass_perceptron", "perceptron"]

_PERCEPTRON = dict(
    task="classification",
    input_kind="scores",
    convex=True,
    smooth=False,
    robust=True,
    probabilistic=False,
)


@register(
    **_PERCEPTRON,
    reference="Rosenblatt (1958), Psychological Review 65(6); optax.losses.perceptron_loss",
)
def perceptron(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Perceptron loss: ``l = max(0, -y s)`` with labels ``y`` in ``{-1, +1}``.

    The hinge without its margin: 0 for every correctly signed score, so any separating
    hyperplane is a minimiser (a stochastic subgradient step on it is Rosenblatt's update).
    Convex, piecewise linear, gradient ``-y`` where ``y s < 0`` and the minimum-norm
    subgradient 0 at ``y s = 0`` (Hessian 0). Matches ``optax.losses.perceptron_loss``
    elementwise; concrete labels other than -1/+1 raise here (optax takes any targets).

    Args:
        scores: real-valued scores.
        labels: array of ``scores``' shape with values in {-1, +1}.
        weights, reduction: as for every loss ("none": elementwise values).

    Returns:
        The reduced loss, or elementwise values with "none".

    Raises:
        ValueError: mismatched shapes, labels not in {-1, +1}, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> perceptron(jnp.array([2.0, -0.5, 0.0]), jnp.array([1, 1, -1]), reduction="none")
        Array([0. , 0.5, 0. ], dtype=float...)

    References:
        Rosenblatt, F. (1958). The perceptron: a probabilistic model for information storage
        and organization in the brain. Psychological Review 65(6), 386-408.
    """
    s, y = signed_labels(scores, labels, reduction)
    return reduce_loss(positive_part(-y * s), weights, reduction)


@register(**_PERCEPTRON, reference="Collins (2002), EMNLP; optax.losses.multiclass_perceptron_loss")
def multiclass_perceptron(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Multiclass perceptron loss: ``l = max_j s_j - s_y = max(0, max_{j != y} s_j - s_y)``.

    Scores ``(..., K)``, ``K >= 2``, integer class ids ``y``. Convex, piecewise linear, 0 when
    the target scores highest. Subgradient ``e_j* - e_y`` while a wrong class ``j*`` scores
    strictly higher; the minimum-norm one 0 when the target ties the top score (the max's
    subdifferential contains ``e_y``), and an equal split between tied wrong top classes.
    Matches ``optax.losses.multiclass_perceptron_loss`` per example (which returns ``jnp.max``'s
    split ``(e_top - e_y) / 2`` at a tie with the target). ``where`` masks classes out of the
    maximum, as if dropped by hand; all-masked examples give 0 and are left out of ``"mean"``.

    Args:
        scores: ``(..., K)`` class scores.
        labels: integer class ids of shape ``scores.shape[:-1]``.
        where: optional boolean class mask (the scores' shape, or one flag per example).
        weights, reduction: as for every loss.

    Returns:
        The reduced loss, or per-example values ``scores.shape[:-1]`` with "none".

    Raises:
        TypeError: float labels; non-boolean ``where``.
        ValueError: labels of another shape, concrete ids outside ``[0, K)`` or on a masked
            class, ``K < 2``, ``where`` of another shape, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> s = jnp.array([[3.0, 1.0, 0.0], [0.5, 1.0, 0.0]])
        >>> multiclass_perceptron(s, jnp.array([0, 0]), reduction="none")
        Array([0. , 0.5], dtype=float...)

    References:
        Collins, M. (2002). Discriminative training methods for hidden Markov models: theory
        and experiments with perceptron algorithms. EMNLP, 1-8.
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
        s = mask.logits(s)
        invalid = invalid | mask.ids_on_masked(safe, lab)
    onehot = jax.nn.one_hot(safe, s.shape[-1], dtype=jnp.bool_)
    s_y = jnp.sum(jnp.where(onehot, s, 0.0), axis=-1)
    runner_up = jnp.max(jnp.where(onehot, -jnp.inf, s), axis=-1)
    values = jnp.where(invalid, jnp.nan, positive_part(runner_up - s_y))
    return reduce_masked(values, weights, reduction, mask)
