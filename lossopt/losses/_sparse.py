"""Sparsemax and Fenchel-Young losses: ``sparsemax_loss``, ``multiclass_sparsemax_loss``,
``fenchel_young`` (Shannon, squared and Tsallis-1.5 regularizers).

A Fenchel-Young loss (Blondel, Martins & Niculae 2020) is built from a regularizer ``Omega``
on the probability simplex:

    ``L(theta; y) = Omega*(theta) + Omega(y) - <theta, y>``,

with ``Omega*`` its convex conjugate. It is convex in ``theta``, non-negative, 0 exactly when
the regularized prediction ``argmax_p <theta, p> - Omega(p)`` equals ``y``, and its gradient is
that prediction minus ``y``. ``Omega(p) = sum p log p`` (Shannon negentropy) gives softmax and
the softmax cross-entropy (minus the entropy of soft labels); ``Omega(p) = ||p||^2 / 2`` gives
sparsemax (Martins & Astudillo 2016) and the sparsemax loss, whose predictions have exact
zeros.

The class axis is the last one. ``labels`` are integer class ids (shape ``logits.shape[:-1]``)
or float labels on the simplex (the logits' shape, entries in [0, 1] summing to 1 over the
kept classes; checked when concrete). ``where`` masks classes as for the other class-axis
losses (:mod:`lossopt.losses._masking`): sparsemax and softmax run over the kept classes only.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lossopt._validation import (
    as_float_array,
    check_array_values,
    check_choice,
    check_probabilities,
    describe,
)
from lossopt.losses._labels import class_ids, class_targets, paired_inputs
from lossopt.losses._masking import class_mask, reduce_masked
from lossopt.losses._numerics import mul_log
from lossopt.losses._reduce import check_reduction, reduce_loss
from lossopt.losses._registry import register

__all__ = ["fenchel_young", "multiclass_sparsemax_loss", "sparsemax_loss"]

REGULARIZERS = ("shannon", "squared", "tsallis15")


# --------------------------------------------------------------------------------------------
# Sparsemax: the Euclidean projection onto the simplex, and its conjugate
# --------------------------------------------------------------------------------------------


def _threshold(z: jax.Array) -> jax.Array:
    """The sparsemax threshold ``tau`` (``(..., 1)``): ``sparsemax(z) = max(z - tau, 0)``.

    Sort-based (Held et al. 1974; Martins & Astudillo, Algorithm 1): with ``z`` sorted
    decreasingly, the support size is ``k* = max{k : 1 + k z_(k) > sum_{j<=k} z_(j)}`` and
    ``tau = (sum_{j<=k*} z_(j) - 1) / k*``. ``-inf`` entries (masked classes) sort last and are
    never in the support.
    """
    k = z.shape[-1]
    zs = -jnp.sort(-z, axis=-1)
    cs = jnp.cumsum(zs, axis=-1)
    rank = jnp.arange(1, k + 1, dtype=z.dtype).reshape((1,) * (z.ndim - 1) + (k,))
    size = jnp.sum(1 + rank * zs > cs, axis=-1, keepdims=True)  # >= 1: the top entry
    size = jnp.maximum(size, 1)  # NaN rows compare False everywhere; their NaN shows later
    return (jnp.take_along_axis(cs, size - 1, axis=-1) - 1) / size.astype(z.dtype)


@jax.custom_jvp
def _sparsemax(z: jax.Array) -> jax.Array:
    """``argmin_{p in simplex} ||p - z||^2`` over the last axis (exact zeros off the support).

    Jacobian ``diag(s) - s s^T / |S|`` with ``s`` the support indicator (``p > 0``): the
    derivative from the support's side at a boundary entry (``z_j = tau``), piecewise constant.
    """
    return jnp.maximum(z - _threshold(z), 0)


@_sparsemax.defjvp
def _sparsemax_jvp(primals, tangents):
    (z,), (dz,) = primals, tangents
    p = _sparsemax(z)
    s = (p > 0).astype(z.dtype)
    sdz = jnp.where(p > 0, dz, 0)  # a select: tangents of masked (-inf) entries never mix in
    mean = jnp.sum(sdz, axis=-1, keepdims=True) / jnp.sum(s, axis=-1, keepdims=True)
    return p, sdz - s * mean


@jax.custom_jvp
def _sparsemax_conjugate(z: jax.Array) -> jax.Array:
    """``Omega*(z) = max_p <z, p> - ||p||^2 / 2 = sum_{j in S} (z_j^2 - tau^2) / 2``.

    Gradient ``sparsemax(z)`` (Danskin), through whose custom JVP the Hessian is the sparsemax
    Jacobian. Masked (``-inf``) entries lie off the support and are not read.
    """
    tau = _threshold(z)
    support = z > tau
    safe = jnp.where(support, z, tau)
    return 0.5 * jnp.sum(jnp.where(support, (safe - tau) * (safe + tau), 0), axis=-1)


@_sparsemax_conjugate.defjvp
def _sparsemax_conjugate_jvp(primals, tangents):
    (z,), (dz,) = primals, tangents
    p = _sparsemax(z)
    return _sparsemax_conjugate(z), jnp.sum(jnp.where(p > 0, p * dz, 0), axis=-1)


# --------------------------------------------------------------------------------------------
# 1.5-entmax: the Tsallis alpha = 1.5 prediction, and its conjugate
# --------------------------------------------------------------------------------------------


def _entmax15_threshold(z: jax.Array) -> jax.Array:
    """``tau`` (``(..., 1)``) with ``sum_j max(z_j / 2 - tau, 0)^2 = 1`` (exact, sort-based).

    Peters, Niculae & Martins (2019), Algorithm 2: with ``u = z / 2`` sorted decreasingly,
    ``tau_k = mean_k - sqrt(max(0, (1 - k (meansq_k - mean_k^2)) / k))`` over the top ``k``
    entries, and the support size is the largest ``k`` with ``tau_k <= u_(k)``. ``-inf``
    entries (masked classes) are never in the support.
    """
    k = z.shape[-1]
    u = -jnp.sort(-z, axis=-1) / 2
    rank = jnp.arange(1, k + 1, dtype=z.dtype).reshape((1,) * (z.ndim - 1) + (k,))
    finite = jnp.isfinite(u)
    us = jnp.where(finite, u, 0.0)
    mean = jnp.cumsum(us, axis=-1) / rank
    meansq = jnp.cumsum(us * us, axis=-1) / rank
    tau = mean - jnp.sqrt(jnp.maximum((1 - rank * (meansq - mean * mean)) / rank, 0.0))
    size = jnp.sum(finite & (tau <= u), axis=-1, keepdims=True)
    size = jnp.maximum(size, 1)  # NaN rows compare False everywhere; their NaN shows later
    return jnp.take_along_axis(tau, size - 1, axis=-1)


@jax.custom_jvp
def _entmax15(z: jax.Array) -> jax.Array:
    """1.5-entmax ``max(z / 2 - tau, 0)^2`` over the last axis (exact zeros off the support).

    Jacobian ``diag(s) - s s^T / sum(s)`` with ``s = sqrt(p)``.
    """
    r = jnp.maximum(z / 2 - _entmax15_threshold(z), 0)
    return r * r


@_entmax15.defjvp
def _entmax15_jvp(primals, tangents):
    (z,), (dz,) = primals, tangents
    p = _entmax15(z)
    s = jnp.sqrt(p)
    sdz = jnp.where(p > 0, s * dz, 0)  # a select: tangents of masked entries never mix in
    return p, sdz - s * jnp.sum(sdz, axis=-1, keepdims=True) / jnp.sum(s, axis=-1, keepdims=True)


def _tsallis15(p: jax.Array) -> jax.Array:
    """Tsallis alpha = 1.5 negentropy ``(sum_j p_j^1.5 - 1) / 0.75`` (0 at a vertex)."""
    positive = p > 0
    ps = jnp.where(positive, p, 1.0)
    return (jnp.sum(jnp.where(positive, ps * jnp.sqrt(ps), 0.0), axis=-1) - 1) / 0.75


@jax.custom_jvp
def _entmax15_conjugate(z: jax.Array) -> jax.Array:
    """``Omega*(z) = <z, p> - Omega(p)`` at ``p = entmax15(z)``; gradient ``p`` (Danskin)."""
    p = _entmax15(z)
    return jnp.sum(jnp.where(p > 0, z * p, 0), axis=-1) - _tsallis15(p)


@_entmax15_conjugate.defjvp
def _entmax15_conjugate_jvp(primals, tangents):
    (z,), (dz,) = primals, tangents
    p = _entmax15(z)
    return _entmax15_conjugate(z), jnp.sum(jnp.where(p > 0, p * dz, 0), axis=-1)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _simplex_inputs(logits: Any, labels: Any, where: Any, reduction: str):
    """``(z, y, invalid, mask)``: masked logits, dense labels (0 at masked classes)."""
    check_reduction(reduction)
    z = as_float_array(logits, "logits")
    if z.ndim == 0 or z.shape[-1] < 2:
        raise ValueError(
            f"`logits` must have K >= 2 classes on the last axis; got {describe(logits)}"
        )
    k = z.shape[-1]
    mask = class_mask(where, z.shape, -1)
    kind, lab = class_targets(z, labels, -1, "logits")
    invalid = None
    if kind == "ids":
        safe, _, invalid = class_ids(lab, k, None)
        if mask is not None:
            invalid = invalid | mask.ids_on_masked(safe, lab)
        y = jax.nn.one_hot(safe, k, dtype=z.dtype)
    elif mask is None:
        check_probabilities(lab, "labels", sum_axis=-1)
        y = lab
    else:
        mask.check_distributions(lab, "labels", -1)
        y = mask.fill(lab, 0.0)
    if mask is not None:
        z = mask.logits(z)
    return z, y, invalid, mask


def _finish(values, z, invalid, mask, weights, reduction):
    # A NaN logit of a kept class makes the example's loss NaN (a sort or a zero label would
    # otherwise hide it); out-of-range class ids under jit give NaN too.
    values = jnp.where(jnp.any(jnp.isnan(z), axis=-1), jnp.nan, values)
    if invalid is not None:
        values = jnp.where(invalid, jnp.nan, values)
    return reduce_masked(values, weights, reduction, mask)


def _sparsemax_fy(z: jax.Array, y: jax.Array) -> jax.Array:
    """``Omega*(z) - <z, y> + ||y||^2 / 2`` per example, shift-invariant and cancellation-free.

    Shifting by ``c = max_j z_j`` (a constant: ``sum(p - y) = 0``) keeps the support's
    ``z_j - c`` in ``[-1, 0]``, so the squares in ``Omega*`` do not cancel at ``|z| = 1e4``.
    """
    zc = z - jax.lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))
    return _sparsemax_conjugate(zc) - jnp.sum(mul_log(y, zc), axis=-1) + 0.5 * jnp.sum(y * y, -1)


def _shannon_fy(z: jax.Array, y: jax.Array) -> jax.Array:
    """``logsumexp(z) - <z, y> + sum y log y`` = ``sum_c y_c (log y_c - log_softmax(z)_c)``."""
    positive = y > 0
    ys = jnp.where(positive, y, 1.0)
    neg_entropy = jnp.sum(jnp.where(positive, ys * jnp.log(ys), 0.0), axis=-1)
    return neg_entropy - jnp.sum(mul_log(y, jax.nn.log_softmax(z, axis=-1)), axis=-1)


def _tsallis15_fy(z: jax.Array, y: jax.Array) -> jax.Array:
    """``Omega*(z) - <z, y> + Omega(y)`` for the Tsallis alpha = 1.5 negentropy, shifted."""
    zc = z - jax.lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))
    return _entmax15_conjugate(zc) - jnp.sum(mul_log(y, zc), axis=-1) + _tsallis15(y)


_FY = {"shannon": _shannon_fy, "squared": _sparsemax_fy, "tsallis15": _tsallis15_fy}


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------


@register(
    task="classification",
    input_kind="logits",
    convex=True,
    smooth=False,
    robust=True,
    probabilistic=False,
    reference="Blondel, Martins & Niculae (2020), Learning with Fenchel-Young Losses, JMLR 21; "
    "optax.losses.make_fenchel_young_loss",
)
def fenchel_young(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    regularizer: str = "shannon",
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Fenchel-Young loss ``L = Omega*(x) + Omega(y) - <x, y>`` of a simplex regularizer.

    ``regularizer="shannon"``: ``Omega(p) = sum_c p_c log p_c``, ``Omega*(x) = logsumexp(x)``;
    ``L = sum_c y_c (log y_c - log_softmax(x)_c)``: the softmax cross-entropy for class ids and
    one-hot labels, and ``kl_divergence_with_logits`` (cross-entropy minus the labels' entropy)
    for soft labels. C-infinity.

    ``regularizer="squared"``: ``Omega(p) = ||p||^2 / 2``, ``Omega*(x) = <x, p> - ||p||^2 / 2``
    with ``p = sparsemax(x)``; ``L`` is :func:`multiclass_sparsemax_loss`. C1 with a piecewise
    constant Hessian (the sparsemax Jacobian ``diag(s) - s s^T / |S|``, taken from the support
    side where an entry enters or leaves it).

    ``regularizer="tsallis15"``: the Tsallis negentropy with ``alpha = 1.5``,
    ``Omega(p) = (sum_c p_c^1.5 - 1) / 0.75``, whose prediction is 1.5-entmax
    ``p = max(x / 2 - tau, 0)^2`` (``tau`` normalises it; computed exactly by sorting, Peters
    et al. 2019): sparse like sparsemax, closer to softmax in between. Hessian the entmax
    Jacobian ``diag(s) - s s^T / sum(s)``, ``s = sqrt(p)``: C1 (it is continuous, but its
    derivative jumps where an entry leaves the support).

    All three: convex, ``L >= 0`` with equality iff the prediction (softmax / sparsemax /
    entmax of ``x``) equals ``y``, gradient ``prediction - y`` (bounded). The ``Omega(y)``
    term makes the minimum 0; ``optax.losses.make_fenchel_young_loss(max_fun)`` leaves it out
    (its value is ``L - Omega(y)``). Evaluated at ``x - max(x)`` (the loss is
    shift-invariant), so values, gradients and Hessians stay finite and accurate at +-1e4
    logits in float32.

    Args:
        logits: ``(..., K)`` scores, ``K >= 2``.
        labels: class ids of shape ``logits.shape[:-1]``, or float labels of the logits' shape
            on the simplex.
        regularizer: "shannon" (softmax), "squared" (sparsemax) or "tsallis15" (1.5-entmax).
        where: optional boolean mask (the logits' shape, or one flag per example): masked
            classes take no part, as if dropped by hand; all-masked examples give 0 and are
            left out of ``"mean"``.
        weights: optional per-example weights; reduction: "mean", "sum" or "none".

    Returns:
        The reduced loss, or per-example values ``logits.shape[:-1]`` with "none".

    Raises:
        TypeError: float labels of the class-id shape; non-boolean ``where``.
        ValueError: unknown ``regularizer``; ``K < 2``; labels of another shape, concrete ids
            outside ``[0, K)`` or on a masked class, concrete soft labels outside [0, 1] or not
            summing to 1 (over the kept classes); ``where`` of another shape; unknown
            reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.array([[2.0, 0.5, -1.0]])
        >>> round(float(fenchel_young(x, jnp.array([0]))), 4)  # softmax cross-entropy
        0.2413
        >>> round(float(fenchel_young(x, jnp.array([0]), regularizer="squared")), 4)
        0.0

    References:
        Blondel, M., Martins, A. F. T. & Niculae, V. (2020). Learning with Fenchel-Young
        losses. JMLR 21(35), 1-69. Peters, B., Niculae, V. & Martins, A. F. T. (2019).
        Sparse sequence-to-sequence models. ACL, 1504-1519.
    """
    check_choice(regularizer, "regularizer", REGULARIZERS)
    z, y, invalid, mask = _simplex_inputs(logits, labels, where, reduction)
    return _finish(_FY[regularizer](z, y), z, invalid, mask, weights, reduction)


@register(
    task="classification",
    input_kind="logits",
    convex=True,
    smooth=False,
    robust=True,
    probabilistic=False,
    reference="Martins & Astudillo (2016), From Softmax to Sparsemax, ICML; "
    "optax.losses.multiclass_sparsemax_loss",
)
def multiclass_sparsemax_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Multiclass sparsemax loss: ``l = -x_y + sum_{j in S} (x_j^2 - tau^2) / 2 + 1 / 2``.

    ``sparsemax(x) = max(x - tau, 0)`` is the Euclidean projection of the logits onto the
    simplex, ``S`` its support and ``tau`` its threshold. For soft labels ``q`` on the simplex
    ``l = -<q, x> + sum_{j in S} (x_j^2 - tau^2) / 2 + ||q||^2 / 2``. This is the Fenchel-Young
    loss of ``Omega(p) = ||p||^2 / 2`` (:func:`fenchel_young` with ``regularizer="squared"``):
    convex, 0 iff ``sparsemax(x) = q`` (a margin: 0 once ``x_y >= x_j + 1`` for every other
    ``j``), gradient ``sparsemax(x) - q`` (bounded), Hessian the sparsemax Jacobian
    ``diag(s) - s s^T / |S|`` (piecewise constant: C1, not C2). Matches
    ``optax.losses.multiclass_sparsemax_loss`` (class ids) per example.

    Args:
        logits: ``(..., K)`` scores, ``K >= 2``.
        labels: class ids ``logits.shape[:-1]`` or float labels on the simplex.
        where: optional boolean class mask (see :func:`fenchel_young`).
        weights, reduction: as for every loss.

    Returns:
        The reduced loss, or per-example values with "none".

    Raises:
        TypeError, ValueError: as :func:`fenchel_young`.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.array([[1.0, 0.5, -1.0], [3.0, 0.0, 0.0]])
        >>> multiclass_sparsemax_loss(x, jnp.array([1, 0]), reduction="none")  # tau = 0.25
        Array([0.5625, 0.    ], dtype=float...)

    References:
        Martins, A. F. T. & Astudillo, R. F. (2016). From softmax to sparsemax: a sparse model
        of attention and multi-label classification. ICML, 1614-1623.
    """
    z, y, invalid, mask = _simplex_inputs(logits, labels, where, reduction)
    return _finish(_sparsemax_fy(z, y), z, invalid, mask, weights, reduction)


@register(
    task="classification",
    input_kind="logits",
    convex=True,
    smooth=False,
    robust=True,
    probabilistic=False,
    reference="Martins & Astudillo (2016), From Softmax to Sparsemax, ICML; "
    "optax.losses.sparsemax_loss",
)
def sparsemax_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Binary sparsemax loss: ``l = sparse_plus(-x)`` for ``y = 1``, ``sparse_plus(x)`` for 0.

    ``sparse_plus(z) = 0`` for ``z <= -1``, ``(z + 1)^2 / 4`` for ``|z| < 1``, ``z`` for
    ``z >= 1``: the two-class sparsemax loss with scores ``(x, 0)``, a smoothed hinge with
    margin 1. Convex, gradient bounded by 1 (``-(1 - x) / 2`` inside the margin band for
    ``y = 1``), C1: the second derivative jumps between 0 and 1/2 at ``z = +-1`` (there the
    Hessian returned is 0). Matches ``optax.losses.sparsemax_loss`` elementwise.

    Args:
        logits: real scores, any shape.
        labels: array of ``logits``' shape with values in {0, 1} (ints, floats or bools).
        weights, reduction: as for every loss ("none": elementwise values).

    Returns:
        The reduced loss, or elementwise values with "none".

    Raises:
        ValueError: mismatched shapes, concrete labels other than 0 and 1, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> sparsemax_loss(jnp.array([2.0, 0.0, -3.0]), jnp.array([1, 1, 0]), reduction="none")
        Array([0.  , 0.25, 0.  ], dtype=float...)

    References:
        Martins, A. F. T. & Astudillo, R. F. (2016). From softmax to sparsemax. ICML.
    """
    x, y = paired_inputs(logits, labels, "logits", "labels", reduction)
    check_array_values(y, "labels", lambda v: (v == 0) | (v == 1), "labels in {0, 1}")
    z = (1.0 - 2.0 * y) * x
    # Each constant branch is selected on its own region, so a NaN falls to the formula.
    values = jnp.where(z <= -1, 0.0, jnp.where(z >= 1, z, 0.25 * (z + 1) ** 2))
    return reduce_loss(values, weights, reduction)
