"""Divergences between non-negative measures: ``generalized_kl_divergence``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lossopt._validation import as_float_array, check_array_values, check_same_shape, describe
from lossopt.losses._classification import _default_eps, clamped_log, xlogx
from lossopt.losses._masking import class_mask, reduce_masked
from lossopt.losses._reduce import check_reduction
from lossopt.losses._registry import register

__all__ = ["generalized_kl_divergence"]


def _check_nonnegative_entries(x, name: str) -> None:
    # NaN is let through (it gives a NaN loss); negative entries and -inf raise.
    check_array_values(x, name, lambda v: ~(v < 0), "values >= 0 (a non-negative measure)")


@register(
    task="probabilistic",
    input_kind="nonnegative",
    convex=True,
    smooth=True,
    robust=False,
    probabilistic=True,
    reference="Lee & Seung (2001), NMF algorithms, NeurIPS; Csiszar (1975) I-divergence; "
    "optax.losses.generalized_kl_divergence",
)
def generalized_kl_divergence(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    eps: float | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Generalized KL (I-) divergence ``D(t || p) = sum_c t_c log(t_c / p_c) - t_c + p_c``.

    For non-negative, unnormalised ``p`` and ``t`` (intensities, counts, NMF factors); the
    sum runs over the last axis. It is the KL divergence plus ``sum(p) - sum(t)``, so it equals
    :func:`kl_divergence` for distributions, stays ``>= 0`` without normalisation (0 iff
    ``p = t``), and is the Poisson negative log-likelihood of ``t`` given rates ``p`` up to a
    term in ``t`` alone. ``t log t`` is 0 at ``t = 0``; ``log p`` is the clamped
    ``log(max(p, eps))`` with derivative ``1 / max(p, eps)`` (finite at ``p = 0``). Convex and
    C2 in ``p`` on ``p > 0``, gradient ``1 - t / p`` (unbounded as ``p -> 0``), Hessian
    ``t / p^2``. ``optax.losses.generalized_kl_divergence(log_predictions, targets)`` takes the
    log of ``p``; its values match per example.

    Args:
        predictions: non-negative measure ``p``, shape ``(..., K)``.
        targets: non-negative measure ``t`` of the same shape.
        eps: clamp of ``log p``; default the dtype's machine epsilon. Must lie in (0, 1).
        where: optional boolean mask (the inputs' shape, or one flag per example): masked
            entries are not read and add nothing; all-masked examples give 0 and are left out
            of ``"mean"``.
        weights, reduction: as for every loss ("none": one value per example, shape
            ``predictions.shape[:-1]``).

    Returns:
        The reduced divergence, or per-example values with "none".

    Raises:
        ValueError: mismatched shapes, 0-d inputs, concrete negative entries in either
            argument (NaN is not rejected: it gives a NaN loss), ``eps`` outside (0, 1),
            ``where`` of another shape, unknown reduction. Under ``jit`` values are not checked.
        TypeError: non-boolean ``where``.

    Example:
        >>> import jax.numpy as jnp
        >>> p, t = jnp.array([[2.0, 1.0]]), jnp.array([[1.0, 1.0]])
        >>> round(float(generalized_kl_divergence(p, t)), 4)  # log(1/2) - 1 + 2
        0.3069

    References:
        Lee, D. D. & Seung, H. S. (2001). Algorithms for non-negative matrix factorization.
        NeurIPS 13, 556-562. Csiszar, I. (1975). I-divergence geometry of probability
        distributions and minimization problems. Annals of Probability 3(1), 146-158.
    """
    check_reduction(reduction)
    p = as_float_array(predictions, "predictions")
    t = as_float_array(targets, "targets", like=p)
    check_same_shape(p, t, "predictions", "targets")
    if p.ndim == 0:
        raise ValueError(
            f"`predictions` must have a last axis to sum over; got {describe(predictions)}"
        )
    mask = class_mask(where, p.shape, -1)
    if mask is not None:  # masked entries are not read: p = t = 0 there adds exactly 0
        p, t = mask.fill(p, 0.0), mask.fill(t, 0.0)
    _check_nonnegative_entries(p, "predictions")
    _check_nonnegative_entries(t, "targets")
    eps = _default_eps(eps, p.dtype)
    values = jnp.sum(xlogx(t) - t * clamped_log(p, eps) - t + p, axis=-1)
    return reduce_masked(values, weights, reduction, mask)
