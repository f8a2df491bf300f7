"""Probabilistic losses: negative log-likelihoods ``loss(prediction, observation, *, ...)``.

Each is the negative log-likelihood of one observation under a distribution parametrised by the
first argument: a categorical distribution given as log-probabilities (``nll``), a Gaussian
with given mean and variance (``gaussian_nll``), a Poisson distribution given by its log-rate
(``poisson_nll``). Semantics follow PyTorch's ``NLLLoss``, ``GaussianNLLLoss`` and
``PoissonNLLLoss`` (``log_input=True`` by default, or rates with ``log_input=False``), except
that the class axis of ``nll`` is the last one by default (PyTorch's is dim 1: pass
``axis=1``). ``reduction="none"`` returns per-example values.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lossopt._validation import (
    as_float_array,
    check_array_values,
    check_bool,
    check_nonnegative,
    check_positive,
    check_same_shape,
    describe,
)
from lossopt.losses._counts import poisson_nll_values
from lossopt.losses._labels import (
    check_ignore_index,
    class_axis_last,
    class_ids,
    class_targets,
    per_class,
)
from lossopt.losses._reduce import check_reduction, reduce_loss, reduce_normalised
from lossopt.losses._registry import register

__all__ = ["gaussian_nll", "nll", "poisson_nll"]

_LOG_2PI = math.log(2.0 * math.pi)

_PROB = dict(task="probabilistic", probabilistic=True)


@register(
    **_PROB,
    input_kind="log_probabilities",
    convex=True,
    smooth=True,
    robust=True,
    reference="torch.nn.NLLLoss",
)
def nll(
    log_probs: ArrayLike,
    labels: ArrayLike,
    *,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    axis: int = -1,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Negative log-likelihood of class ids: ``l = -w[y] log_probs[y]``.

    ``log_probs`` holds log-probabilities with the class axis at ``axis`` (default last);
    ``labels`` integer class ids of its shape without that axis. The entry is gathered (not a
    one-hot product), so ``-inf`` log-probabilities of other classes do not poison the value.
    Linear in ``log_probs``: gradient ``-w[y] e_y``, Hessian 0. As ``torch.nn.NLLLoss``:
    ``class_weights`` (shape ``(K,)``) scale each example by its class's weight and ``"mean"``
    is ``sum_i w[y_i] l_i / sum_i w[y_i]``; entries equal to ``ignore_index`` are 0 in
    ``"none"`` and left out of both sums (all ignored: 0, not NaN). Per-example ``weights``
    multiply numerator and denominator alike. Concrete ids outside ``[0, K)`` raise; under
    ``jit`` they give NaN. Concrete ``log_probs`` above 0 (a probability above 1: raw logits
    passed by mistake, say) or NaN raise; under ``jit`` they are not checked. A NaN anywhere in
    an example's log-probabilities gives that example a NaN loss. PyTorch's class axis is dim 1
    (``axis=1`` here).

    Args:
        log_probs: log-probabilities ``(..., K, ...)``.
        labels: integer class ids.
        class_weights: optional non-negative per-class weights of shape ``(K,)``.
        ignore_index: optional class id whose entries are skipped.
        axis: class axis of ``log_probs``.
        weights: optional per-example weights; reduction: "mean", "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        TypeError: float labels, non-integer ``axis`` or ``ignore_index``.
        ValueError: labels not of the class-id shape, concrete ids out of range, concrete
            ``log_probs`` > 0 or NaN, misshaped or negative ``class_weights``, bad ``axis``,
            unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> lp = jnp.log(jnp.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
        >>> round(float(nll(lp, jnp.array([0, 2]))), 4)
        0.4581
        >>> round(float(nll(lp, jnp.array([0, 2]), class_weights=jnp.array([3.0, 1.0, 1.0]))), 4)
        0.5756

    References:
        torch.nn.NLLLoss.
    """
    check_reduction(reduction)
    check_ignore_index(ignore_index)
    x = class_axis_last(as_float_array(log_probs, "log_probs"), axis, "log_probs")
    kind, lab = class_targets(x, labels, axis, "log_probs")
    if kind != "ids":
        raise TypeError(
            f"`labels` must be integer class ids of shape {tuple(x.shape[:-1])}; got "
            f"{describe(labels)} (for soft labels use softmax_cross_entropy or "
            "categorical_cross_entropy)"
        )
    k = x.shape[-1]
    safe, mask, invalid = class_ids(lab, k, ignore_index)
    check_array_values(x, "log_probs", lambda v: v <= 0, "log-probabilities <= 0")
    picked = jnp.take_along_axis(x, safe[..., None], axis=-1)[..., 0]
    normaliser = None
    if class_weights is not None:
        cw = per_class(class_weights, "class_weights", k, x.dtype, allow_scalar=False)
        normaliser = cw[safe]
        values = -normaliser * picked
    else:
        values = -picked
    # A NaN anywhere in an example's log-probabilities makes its loss NaN (the gather alone
    # would skip a NaN of another class).
    values = jnp.where(invalid | jnp.any(jnp.isnan(x), axis=-1), jnp.nan, values)
    return reduce_normalised(values, normaliser, weights, reduction, mask)


@jax.custom_jvp
def _clamp_min_straight_through(v, eps):
    """``max(v, eps)`` whose derivative is 1 everywhere (PyTorch's no-grad in-place clamp)."""
    return jnp.maximum(v, eps)


@_clamp_min_straight_through.defjvp
def _clamp_min_straight_through_jvp(primals, tangents):
    v, eps = primals
    dv, _ = tangents
    return jnp.maximum(v, eps), dv


def _variance_like(var: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """``var`` broadcast to the means' ``shape`` under PyTorch's GaussianNLLLoss rules."""
    vs, shape = tuple(var.shape), tuple(shape)
    if var.ndim == 0 or vs == shape:
        return var
    if vs == shape[:-1]:
        return jnp.broadcast_to(var[..., None], shape)
    mismatched = [(a, b) for a, b in zip(shape, vs, strict=False) if a != b]
    if var.ndim == len(shape) and len(mismatched) == 1 and mismatched[0][1] == 1:
        return jnp.broadcast_to(var, shape)
    raise ValueError(
        f"`mean` has shape {shape}: `variance` must be a scalar, of shape {shape}, of shape "
        f"{shape[:-1]} (one variance per row), or of shape {shape} with exactly one axis of "
        f"size 1 (e.g. {(*shape[:-1], 1) if shape else ()}), as PyTorch's GaussianNLLLoss; got "
        f"variance.shape={vs}"
    )


@register(
    **_PROB,
    input_kind="values",
    convex=True,
    smooth=True,
    robust=False,
    reference="torch.nn.GaussianNLLLoss; Nix & Weigend (1994), ICNN",
)
def gaussian_nll(
    mean: ArrayLike,
    targets: ArrayLike,
    *,
    variance: ArrayLike,
    full: bool = False,
    eps: float = 1e-6,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Gaussian negative log-likelihood: ``l = 0.5 (log v + (y - mu)^2 / v)``.

    ``v = max(variance, eps)``; with ``full=True`` the constant ``0.5 log(2 pi)`` is added, so
    ``l`` is exactly ``-log N(y; mu, v)``. As ``torch.nn.GaussianNLLLoss(full, eps)``, including
    its gradient policy for the clamp: the clamp is straight-through (derivative 1 with respect
    to ``variance`` even below ``eps``, as PyTorch's clamp under ``no_grad``), so a variance
    that is being learned and falls below ``eps`` still receives the gradient evaluated at
    ``eps`` instead of a dead zero. Convex and C2 in ``mean`` (Hessian ``1 / v``), gradient
    ``(mu - y) / v`` unbounded.

    ``variance`` shapes, exactly PyTorch's rules: a scalar (one variance for everything); an
    array of ``mean``'s shape (heteroscedastic); ``mean``'s shape without the last axis (one
    variance per row: ``(N,)`` for ``(N, D)`` means, read as ``(N, 1)``); or ``mean``'s
    number of axes with exactly one axis of size 1 where ``mean``'s is larger (``(N, 1)`` or
    ``(1, D)`` for ``(N, D)``; ``(B, 1, H, W)`` for ``(B, C, H, W)``), broadcast along it.
    Anything else raises (PyTorch: "var is of incorrect size"). The values always have
    ``mean``'s shape (``reduction="none"``), and the gradient with respect to a shared
    variance sums over the entries that share it.

    Args:
        mean: predicted means.
        targets: observations, same shape as ``mean``.
        variance: predicted variances (required), non-negative.
        full: add the ``0.5 log(2 pi)`` constant.
        eps: clamp for the variance, > 0.
        weights: optional per-example weights; reduction: "mean", "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        ValueError: mismatched ``targets``, a ``variance`` shape outside the rules above,
            concrete negative variances (as PyTorch), ``eps <= 0``, unknown reduction.
        TypeError: ``full`` not a bool.

    Example:
        >>> import jax.numpy as jnp
        >>> mu, y = jnp.array([0.0, 1.0]), jnp.array([1.0, 1.0])
        >>> out = gaussian_nll(mu, y, variance=jnp.array([1.0, 0.0]), reduction="none")
        >>> [round(float(v), 4) for v in out]  # the zero variance is clamped at eps = 1e-6
        [0.5, -6.9078]
        >>> round(float(gaussian_nll(mu, y, variance=1.0, full=True)), 4)
        1.1689
        >>> mu2 = jnp.zeros((2, 3))  # one variance per row, as (2,) or (2, 1)
        >>> gaussian_nll(mu2, mu2 + 1.0, variance=jnp.array([1.0, 4.0]), reduction="none")[:, 0]
        Array([0.5  , 0.818...], dtype=float...)

    References:
        torch.nn.GaussianNLLLoss; Nix & Weigend (1994), ICNN.
    """
    check_reduction(reduction)
    check_positive(eps, "eps")
    check_bool(full, "full")
    mu = as_float_array(mean, "mean")
    y = as_float_array(targets, "targets", like=mu)
    check_same_shape(mu, y, "mean", "targets")
    var = _variance_like(as_float_array(variance, "variance", like=mu), mu.shape)
    check_nonnegative(var, "variance")
    v = _clamp_min_straight_through(var, jnp.asarray(eps, mu.dtype))
    r = y - mu
    values = 0.5 * (jnp.log(v) + r * r / v)
    if full:
        values = values + 0.5 * _LOG_2PI
    return reduce_loss(values, weights, reduction)


@register(
    **_PROB,
    input_kind="log_rate",
    convex=True,
    smooth=True,
    robust=False,
    reference="torch.nn.PoissonNLLLoss",
)
def poisson_nll(
    log_rate: ArrayLike,
    counts: ArrayLike,
    *,
    log_input: bool = True,
    full: bool = False,
    eps: float = 1e-8,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Poisson negative log-likelihood: ``l = exp(x) - c x`` on the log-rate ``x``.

    ``x`` is the log of the Poisson rate and ``c`` the observed count (non-integer counts are
    accepted). This is ``-log Poisson(c; exp(x))`` up to ``log(c!)``. With
    ``log_input=False`` the first argument is the rate ``r`` itself and
    ``l = r - c log(r + eps)`` (``eps`` default 1e-8, PyTorch's; ignored when
    ``log_input=True``), exactly ``torch.nn.PoissonNLLLoss(log_input=False, eps=eps)``.
    With ``full=True`` the Stirling approximation ``c log c - c + 0.5 log(2 pi c)`` of
    ``log(c!)`` is added for ``c > 1`` (0 for ``c <= 1``), as PyTorch's ``full=True``, in both
    modes. On the log-rate: convex and C2 (Hessian ``exp(x)``); the gradient ``exp(x) - c`` is
    unbounded and the value overflows, as the true likelihood does, once ``exp(x)`` does
    (``x`` above about 88 in float32, 709 in float64): nothing is clamped. On the rate: convex
    and C2 for ``r >= 0`` (Hessian ``c / (r + eps)^2``), gradient ``1 - c / (r + eps)``,
    finite at ``r = 0``. The registry's properties describe the default ``log_input=True``.

    Concrete counts must be ``>= 0`` (a negative count makes the loss unbounded below), and
    with ``log_input=False`` concrete rates too; under ``jit`` they are not checked.

    Args:
        log_rate: log-rates (``log_input=True``) or rates (``log_input=False``).
        counts: observed counts of the same shape, ``>= 0``.
        log_input: whether the first argument is the log-rate (PyTorch's default, True).
        full: add the Stirling term.
        eps: > 0, added to the rate inside the log when ``log_input=False``.
        weights: optional per-example weights; reduction: "mean", "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        ValueError: mismatched shapes, concrete negative (or NaN) counts, or rates with
            ``log_input=False``, ``eps <= 0``, unknown reduction.
        TypeError: ``log_input`` or ``full`` not a bool.

    Example:
        >>> import jax.numpy as jnp
        >>> out = poisson_nll(jnp.array([0.0, 1.0]), jnp.array([1.0, 3.0]), reduction="none")
        >>> [round(float(v), 4) for v in out]
        [1.0, -0.2817]
        >>> out = poisson_nll(jnp.array([1.0, jnp.e]), jnp.array([1.0, 3.0]), log_input=False,
        ...                   reduction="none")
        >>> [round(float(v), 4) for v in out]  # the same rates: the same values up to eps
        [1.0, -0.2817]

    References:
        torch.nn.PoissonNLLLoss.
    """
    return poisson_nll_values(
        log_rate, counts, "log_rate", log_input, full, eps, weights, reduction
    )
