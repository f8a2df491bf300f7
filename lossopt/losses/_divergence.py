"""Divergences: ``kl_divergence`` and ``kl_divergence_with_logits`` between distributions, and
``generalized_kl_divergence`` between non-negative measures."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lossopt._validation import (
    check_array_values,
    check_bool,
    check_probabilities,
    describe,
    when_concrete,
)
from lossopt.losses._labels import paired_inputs
from lossopt.losses._masking import class_mask, reduce_masked
from lossopt.losses._numerics import clamped_log, default_eps, mul_log, xlogx
from lossopt.losses._registry import register

__all__ = ["generalized_kl_divergence", "kl_divergence", "kl_divergence_with_logits"]


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
    p, t = paired_inputs(predictions, targets, "predictions", "targets", reduction)
    if p.ndim == 0:
        raise ValueError(
            f"`predictions` must have a last axis to sum over; got {describe(predictions)}"
        )
    mask = class_mask(where, p.shape, -1)
    if mask is not None:  # masked entries are not read: p = t = 0 there adds exactly 0
        p, t = mask.fill(p, 0.0), mask.fill(t, 0.0)
    _check_nonnegative_entries(p, "predictions")
    _check_nonnegative_entries(t, "targets")
    eps = default_eps(eps, p.dtype)
    values = jnp.sum(xlogx(t) - t * clamped_log(p, eps) - t + p, axis=-1)
    return reduce_masked(values, weights, reduction, mask)


_CLS = dict(task="classification")


def _distribution_pair(preds: Any, targets: Any, pred_name: str, reduction: str):
    x, t = paired_inputs(preds, targets, pred_name, "targets", reduction)
    if x.ndim == 0:
        raise ValueError(
            f"`{pred_name}` must have a distribution axis (the last one); got {describe(preds)}"
        )
    return x, t


@register(
    **_CLS,
    input_kind="probabilities",
    convex=True,
    smooth=True,
    robust=False,
    probabilistic=True,
    reference="Kullback & Leibler (1951), Ann. Math. Stat. 22(1); Keras KLDivergence",
)
def kl_divergence(
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    eps: float | None = None,
    log_predictions: bool = False,
    log_target: bool = False,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """KL divergence ``KL(t || p) = sum_c t_c (log t_c - log p_c)`` over the last axis.

    Both arguments are probabilities by default. ``t log t`` is 0 at ``t = 0`` (safe double
    ``where``: finite gradient there); ``log p`` is the clamped ``log(max(p, eps))`` with
    derivative ``1 / max(p, eps)``. Convex and C2 in ``p`` on ``(0, 1]``. Conventions elsewhere:
    ``optax.kl_divergence(log_predictions, targets)`` and ``torch.nn.KLDivLoss(input, target)``
    take *log*-predictions (torch averages elementwise unless ``reduction='batchmean'``; our
    ``"mean"`` is the batch mean); Keras' ``KLDivergence(y_true, y_pred)`` reverses the order
    and clips both to ``[1e-7, 1]``. ``where`` (boolean, the inputs' shape or one flag per
    example) drops masked entries of both arguments, as by hand: the kept entries of each
    must then sum to 1; all-masked examples give 0 and are left out of ``"mean"``.

    Log-space inputs. ``log_predictions=True``: ``probs`` holds ``log p`` (used as is, no
    clamp: ``-inf`` for a class of zero mass is fine where the target gives it no mass);
    ``log_target=True``: ``targets`` holds ``log t`` and ``t log t`` is ``exp(lt) lt``, 0 where
    ``lt = -inf``. ``kl_divergence(log_p, log_t, log_predictions=True, log_target=True,
    reduction="none")`` is ``torch.nn.KLDivLoss(reduction="none", log_target=True)(log_p,
    log_t)`` summed over the last axis (``"mean"`` is torch's ``reduction="batchmean"`` for 2-D
    inputs) and ``optax.losses.kl_divergence_with_log_targets(log_p, log_t)``; with
    ``log_target=False`` it is PyTorch's default ``KLDivLoss`` and ``optax.kl_divergence``.
    Concrete log-arguments must be ``<= 0`` with ``exp`` summing to 1 (the same tolerance).
    Log-predictions make the loss linear in the first argument (convex, Hessian 0).

    Args:
        probs: predicted distribution ``p`` over the last axis (``log p`` with ``log_predictions``).
        targets: target distribution ``t`` of the same shape (``log t`` with ``log_target``).
        eps: clamp of ``log(max(p, eps))``; None: the dtype's machine epsilon.
        log_predictions: ``probs`` holds log-probabilities.
        log_target: ``targets`` holds log-probabilities.
        where: optional boolean class mask (the first argument's shape or one flag per example).
        weights: optional per-example weights; "mean" then is ``sum(w l) / sum(w)``.
        reduction: "mean" (default), "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        ValueError: mismatched shapes, 0-d inputs, ``eps`` outside (0, 1), unknown reduction;
            concrete probs or targets outside [0, 1] or not summing to 1 over the last
            axis within ``sqrt(eps)`` of the dtype (a KL of unnormalised vectors can be
            negative), or, for a log-argument, with ``exp`` of it outside [0, 1] or not summing
            to 1 (named ``exp(probs)`` / ``exp(targets)``). Under ``jit`` neither argument
            is checked.
        TypeError: ``log_predictions`` or ``log_target`` not a bool.

    Example:
        >>> import jax.numpy as jnp
        >>> p = jnp.array([[0.5, 0.5], [0.9, 0.1]])
        >>> t = jnp.array([[1.0, 0.0], [0.9, 0.1]])
        >>> kl_divergence(p, t, reduction="none")
        Array([0.6931..., 0. ...], dtype=float...)
        >>> kl_divergence(jnp.log(p), jnp.log(t), log_predictions=True, log_target=True,
        ...               reduction="none")
        Array([0.6931..., 0. ...], dtype=float...)

    References:
        Kullback & Leibler (1951), Ann. Math. Stat. 22(1); Keras KLDivergence.
    """
    check_bool(log_predictions, "log_predictions")
    check_bool(log_target, "log_target")
    p, t = _distribution_pair(probs, targets, "probs", reduction)
    mask = class_mask(where, p.shape, -1)
    _check_kl_argument(p, "probs", log_predictions, mask)
    _check_kl_argument(t, "targets", log_target, mask)
    if mask is not None:  # masked entries are not read: p = 1, t = 0 there add exactly 0
        p = mask.fill(p, 0.0 if log_predictions else 1.0)
        t = mask.fill(t, -jnp.inf if log_target else 0.0)
    if log_predictions:
        log_p = p
    else:
        eps = default_eps(eps, p.dtype)
        log_p = clamped_log(p, eps)
    if log_target:
        t_prob = jnp.exp(t)  # 0 where log t = -inf: both products are then exactly 0
        values = jnp.sum(mul_log(t_prob, t) - mul_log(t_prob, log_p), axis=-1)
    elif log_predictions:
        values = jnp.sum(xlogx(t) - mul_log(t, log_p), axis=-1)
    else:
        values = jnp.sum(xlogx(t) - t * log_p, axis=-1)
    return reduce_masked(values, weights, reduction, mask)


def _check_kl_argument(x: jax.Array, name: str, log: bool, mask: Any) -> None:
    """Concrete ``x`` must be distributions over the last axis (``exp(x)`` for log-inputs)."""
    if not log:
        _check_distributions(x, name, mask)
        return
    # exp(x) of concrete values, in numpy (traced: checked on the call's values, if at all).
    when_concrete(lambda value: _check_distributions(
        np.exp(value.astype(np.float64)).astype(value.dtype), f"exp({name})", mask), x)


def _check_distributions(x: Any, name: str, mask: Any) -> None:
    if mask is None:
        check_probabilities(x, name, sum_axis=-1)
    else:
        mask.check_distributions(x, name, -1)


@register(
    **_CLS,
    input_kind="logits",
    convex=True,
    smooth=True,
    robust=True,
    probabilistic=True,
    reference="Kullback & Leibler (1951); optax.kl_divergence with log_softmax inputs",
)
def kl_divergence_with_logits(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """KL divergence from logits: ``sum_c t_c (log t_c - log_softmax(x)_c)`` over the last axis.

    Equals ``softmax_cross_entropy(x, t, reduction="none") - entropy(t)``: same gradient
    ``softmax(x) - t`` (for ``t`` summing to 1) and Hessian, but 0 at the optimum.
    ``optax.kl_divergence(jax.nn.log_softmax(x), t)`` gives the per-example values. ``where``
    masks entries as in :func:`softmax_cross_entropy` (softmax over the kept entries, whose
    targets must sum to 1; masked logits and targets are not read).

    Args:
        logits: ``(..., K)`` logits of the predicted distribution.
        targets: target distribution of the same shape, summing to 1 over the last axis.
        where: optional boolean class mask (the first argument's shape or one flag per example).
        weights: optional per-example weights; "mean" then is ``sum(w l) / sum(w)``.
        reduction: "mean" (default), "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        ValueError: mismatched shapes, 0-d inputs, unknown reduction; concrete targets outside
            [0, 1] or not summing to 1 over the last axis within ``sqrt(eps)`` of the dtype.
            Under ``jit`` the targets are not checked.

    Example:
        >>> import jax.numpy as jnp
        >>> t = jnp.array([[0.25, 0.75], [1.0, 0.0]])
        >>> kl_divergence_with_logits(jnp.zeros((2, 2)), t, reduction="none")
        Array([0.1308..., 0.6931...], dtype=float...)

    References:
        Kullback & Leibler (1951); optax.kl_divergence with log_softmax inputs.
    """
    x, t = _distribution_pair(logits, targets, "logits", reduction)
    mask = class_mask(where, x.shape, -1)
    if mask is None:
        check_probabilities(t, "targets", sum_axis=-1)
    else:
        mask.check_distributions(t, "targets", -1)
        x, t = mask.logits(x), mask.fill(t, 0.0)
    values = jnp.sum(xlogx(t) - mul_log(t, jax.nn.log_softmax(x, axis=-1)), axis=-1)
    return reduce_masked(values, weights, reduction, mask)
