"""Regression losses ``loss(predictions, targets, *, ..., weights=None, reduction="mean")``.

The residual is ``r = predictions - targets``. Every loss is elementwise: ``reduction="none"``
returns an array of ``predictions.shape`` (as PyTorch's ``reduction='none'``; Keras instead
averages the last axis, and takes ``(y_true, y_pred)`` in the reverse order).

Nonsmooth losses return the minimum-norm subgradient at their kinks, so that a zero gradient
certifies optimality: ``jax.grad`` of ``|r|`` at ``r = 0`` is 0 here (``jnp.abs`` alone gives 1).
A NaN residual gives a NaN loss and gradient, also where the loss is flat (the pinball and
epsilon-insensitive hinges use a NaN-propagating ``max(., 0)``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lossopt._validation import (
    check_in_interval,
    check_positive,
)
from lossopt.losses._labels import paired_inputs
from lossopt.losses._numerics import positive_part
from lossopt.losses._reduce import reduce_loss
from lossopt.losses._registry import register

__all__ = [
    "epsilon_insensitive",
    "huber",
    "log_cosh",
    "mae",
    "mape",
    "mse",
    "msle",
    "quantile",
    "smooth_l1",
]


def _prepare(predictions: Any, targets: Any, reduction: str) -> tuple[jax.Array, jax.Array]:
    """Validate the common regression inputs; targets take the predictions' float dtype."""
    p, t = paired_inputs(predictions, targets, "predictions", "targets", reduction)
    return p, t


def _abs(r: jax.Array) -> jax.Array:
    """``|r|`` whose derivative at 0 is the minimum-norm subgradient 0 (and ``sign`` elsewhere).

    ``r * sign(r)``: the derivative is ``sign(r) + r * 0``; second derivative 0 everywhere.
    """
    return r * jax.lax.stop_gradient(jnp.sign(r))


_REG = dict(task="regression", input_kind="values", probabilistic=False)


@register(
    **_REG,
    convex=True,
    smooth=True,
    robust=False,
    reference="Gauss (1809); torch.nn.MSELoss",
)
def mse(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Mean squared error: ``l = r^2`` with ``r = predictions - targets``.

    Gradient ``2 r``, Hessian ``2``. Matches ``torch.nn.MSELoss`` and (per element)
    ``optax.squared_error`` (no 1/2 factor here, unlike optax's ``l2_loss``).

    Args:
        predictions: array of predictions.
        targets: array of the same shape (ints are promoted to the predictions' dtype).
        weights: optional per-example weights; "mean" then is ``sum(w l) / sum(w)``.
        reduction: "mean" (default), "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the elementwise losses.

    Raises:
        ValueError: mismatched shapes or an unknown reduction.
        TypeError: non-numeric inputs.

    Example (the seed document's example):
        >>> import jax.numpy as jnp
        >>> y_true = jnp.array([3.0, -0.5, 2.0, 7.0])
        >>> y_pred = jnp.array([2.5, 0.0, 2.0, 8.0])
        >>> round(float(mse(y_pred, y_true)), 4)
        0.375

    References:
        none (elementary: the squared error; Gauss, 1809, least squares).
    """
    p, t = _prepare(predictions, targets, reduction)
    r = p - t
    return reduce_loss(r * r, weights, reduction)


@register(
    **_REG,
    convex=True,
    smooth=False,
    robust=True,
    reference="Laplace (1774); torch.nn.L1Loss",
)
def mae(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Mean absolute error: ``l = |r|``.

    Gradient ``sign(r)``; at ``r = 0`` the minimum-norm subgradient 0 (``jnp.abs`` would give
    1). Hessian 0 everywhere (the curvature is a Dirac mass at the kink).

    Args:
        predictions: array of predictions.
        targets: array of the same shape (ints are promoted to the predictions' dtype).
        weights: optional per-example weights; "mean" then is ``sum(w l) / sum(w)``.
        reduction: "mean" (default), "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        ValueError: mismatched shapes or an unknown reduction.
        TypeError: non-numeric inputs.

    Example:
        >>> import jax.numpy as jnp
        >>> float(mae(jnp.array([1.0, -1.0, 2.0]), jnp.array([0.0, 0.0, 2.0])))
        0.666...

    References:
        none (elementary: the absolute error; Laplace, 1774).
    """
    p, t = _prepare(predictions, targets, reduction)
    return reduce_loss(_abs(p - t), weights, reduction)


@register(
    **_REG,
    convex=True,
    smooth=False,
    robust=True,
    reference="Huber (1964), Ann. Math. Stat. 35(1); torch.nn.HuberLoss",
)
def huber(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    delta: ArrayLike = 1.0,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Huber loss: ``0.5 r^2`` for ``|r| <= delta``, else ``delta (|r| - 0.5 delta)``.

    C1 with gradient ``clip(r, -delta, delta)``; the Hessian jumps from 1 to 0 at ``|r| = delta``
    (so not C2): this implementation returns 1 at the kink itself (the quadratic branch).
    Matches ``torch.nn.HuberLoss(delta=delta)`` and ``optax.huber_loss``. See ``smooth_l1`` for
    the ``1/beta``-scaled variant.

    Args:
        predictions: array of predictions.
        targets: array of the same shape (ints are promoted to the predictions' dtype).
        delta: > 0, where the loss turns from quadratic to linear.
        weights: optional per-example weights; "mean" then is ``sum(w l) / sum(w)``.
        reduction: "mean" (default), "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        ValueError: ``delta <= 0``.

    Example:
        >>> import jax.numpy as jnp
        >>> huber(jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0]), reduction="none")
        Array([0.125, 2.5  ], dtype=float...)

    References:
        Huber (1964), Ann. Math. Stat. 35(1); torch.nn.HuberLoss.
    """
    check_positive(delta, "delta")
    p, t = _prepare(predictions, targets, reduction)
    r = p - t
    a = _abs(r)
    small = a <= delta
    # Double where: each branch only sees inputs where it is the selected one.
    quad = 0.5 * jnp.square(jnp.where(small, r, 0.0))
    lin = delta * (jnp.where(small, delta, a) - 0.5 * delta)
    return reduce_loss(jnp.where(small, quad, lin), weights, reduction)


@register(
    **_REG,
    convex=True,
    smooth=False,
    robust=True,
    reference="Girshick (2015), Fast R-CNN; torch.nn.SmoothL1Loss",
)
def smooth_l1(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    beta: ArrayLike = 1.0,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Smooth L1: ``0.5 r^2 / beta`` for ``|r| < beta``, else ``|r| - 0.5 beta``.

    Equals ``huber(delta=beta) / beta``; its linear branch has slope 1 for every ``beta``.
    Matches ``torch.nn.SmoothL1Loss(beta=beta)`` for ``beta > 0`` (torch's ``beta = 0`` meaning
    plain L1 is rejected here: use ``mae``).

    Args:
        predictions: array of predictions.
        targets: array of the same shape (ints are promoted to the predictions' dtype).
        beta: > 0, where the loss turns from quadratic to linear.
        weights: optional per-example weights; "mean" then is ``sum(w l) / sum(w)``.
        reduction: "mean" (default), "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        ValueError: ``beta <= 0``.

    Example:
        >>> import jax.numpy as jnp
        >>> smooth_l1(jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0]), beta=2.0, reduction="none")
        Array([0.0625, 2.    ], dtype=float...)

    References:
        Girshick (2015), Fast R-CNN; torch.nn.SmoothL1Loss.
    """
    check_positive(beta, "beta")
    p, t = _prepare(predictions, targets, reduction)
    r = p - t
    a = _abs(r)
    small = a < beta
    quad = 0.5 * jnp.square(jnp.where(small, r, 0.0)) / beta
    lin = jnp.where(small, beta, a) - 0.5 * beta
    return reduce_loss(jnp.where(small, quad, lin), weights, reduction)


@register(
    **_REG,
    convex=True,
    smooth=False,
    robust=True,
    reference="Koenker & Bassett (1978), Econometrica 46(1)",
)
def quantile(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    tau: ArrayLike = 0.5,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Quantile (pinball) loss: ``max(tau u, (tau - 1) u)`` with ``u = targets - predictions``.

    Minimised (over a constant prediction) by the ``tau``-quantile of the targets. Gradient with
    respect to the predictions: ``-tau`` where ``u > 0``, ``1 - tau`` where ``u < 0``, and the
    minimum-norm subgradient 0 at ``u = 0`` (0 lies in ``[-tau, 1 - tau]``). ``tau = 0.5`` gives
    half the MAE.

    Args:
        predictions: array of predictions.
        targets: array of the same shape (ints are promoted to the predictions' dtype).
        tau: quantile level in (0, 1).
        weights: optional per-example weights; "mean" then is ``sum(w l) / sum(w)``.
        reduction: "mean" (default), "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        ValueError: ``tau`` outside (0, 1).

    Example:
        >>> import jax.numpy as jnp
        >>> quantile(jnp.array([0.0, 0.0]), jnp.array([1.0, -1.0]), tau=0.9, reduction="none")
        Array([0.9, 0.1], dtype=float...)

    References:
        Koenker & Bassett (1978), Econometrica 46(1).
    """
    check_in_interval(tau, "tau", 0.0, 1.0)
    p, t = _prepare(predictions, targets, reduction)
    u = t - p
    # tau max(u, 0) + (1 - tau) max(-u, 0): both parts have slope 0 at u = 0 (minimum norm),
    # and a NaN residual gives a NaN value and gradient (a where-chain on u > 0 returned 0).
    values = tau * positive_part(u) + (1.0 - tau) * positive_part(-u)
    return reduce_loss(values, weights, reduction)


@jax.custom_jvp
def _log_cosh(r):
    # log(cosh r) = |r| + log1p(exp(-2|r|)) - log 2: no overflow at |r| = 1e4 (cosh overflows).
    a = jnp.abs(r)
    return a + jnp.log1p(jnp.exp(-2.0 * a)) - jnp.log(2.0).astype(r.dtype)


@_log_cosh.defjvp
def _log_cosh_jvp(primals, tangents):
    (r,), (dr,) = primals, tangents
    # d/dr log cosh r = tanh r, whose own derivative 1 - tanh^2 gives the exact Hessian (1 at 0).
    return _log_cosh(r), jnp.tanh(r) * dr


@register(
    **_REG,
    convex=True,
    smooth=True,
    robust=True,
    reference="Keras LogCosh; Saleh & Saleh (2022), arXiv:2208.04564",
)
def log_cosh(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Log-cosh loss: ``log(cosh(r))``.

    Behaves like ``r^2 / 2`` near 0 and ``|r| - log 2`` for large ``|r|``. Computed as
    ``|r| + log1p(exp(-2|r|)) - log 2``, finite at ``|r| = 1e4`` in float32; gradient
    ``tanh(r)`` and Hessian ``1 - tanh(r)^2`` (exactly 1 at 0) come from a custom JVP. Matches
    ``optax.log_cosh`` and Keras' ``LogCosh`` (per element).

    Args:
        predictions: array of predictions.
        targets: array of the same shape (ints are promoted to the predictions' dtype).
        weights: optional per-example weights; "mean" then is ``sum(w l) / sum(w)``.
        reduction: "mean" (default), "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        ValueError: mismatched shapes or an unknown reduction.
        TypeError: non-numeric inputs.

    Example:
        >>> import jax.numpy as jnp
        >>> log_cosh(jnp.array([0.0, 1e4]), jnp.array([0.0, 0.0]), reduction="none")
        Array([   0.    , 9999.3...], dtype=float...)

    References:
        Keras LogCosh; Saleh & Saleh (2022), arXiv:2208.04564.
    """
    p, t = _prepare(predictions, targets, reduction)
    return reduce_loss(_log_cosh(p - t), weights, reduction)


@register(
    **_REG,
    convex=True,
    smooth=False,
    robust=True,
    reference="Vapnik (1995), The Nature of Statistical Learning Theory",
)
def epsilon_insensitive(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    epsilon: ArrayLike = 0.1,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Epsilon-insensitive loss (support vector regression): ``max(0, |r| - epsilon)``.

    Zero inside the tube ``|r| <= epsilon``; gradient ``sign(r)`` outside it and the minimum-norm
    subgradient 0 on the tube's edge and inside.

    Args:
        predictions: array of predictions.
        targets: array of the same shape (ints are promoted to the predictions' dtype).
        epsilon: half-width >= 0 of the zero-loss tube.
        weights: optional per-example weights; "mean" then is ``sum(w l) / sum(w)``.
        reduction: "mean" (default), "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        ValueError: ``epsilon < 0``.

    Example:
        >>> import jax.numpy as jnp
        >>> epsilon_insensitive(jnp.array([0.05, 1.0]), jnp.array([0.0, 0.0]), epsilon=0.1,
        ...                     reduction="none")
        Array([0. , 0.9], dtype=float...)

    References:
        Vapnik (1995), The Nature of Statistical Learning Theory.
    """
    check_in_interval(epsilon, "epsilon", 0.0, float("inf"), closed_low=True)
    p, t = _prepare(predictions, targets, reduction)
    excess = _abs(p - t) - epsilon
    return reduce_loss(positive_part(excess), weights, reduction)


@register(
    **_REG,
    convex=False,
    smooth=True,
    robust=False,
    reference="Keras MeanSquaredLogarithmicError",
)
def msle(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Mean squared logarithmic error: ``(log1p(predictions) - log1p(targets))^2``.

    Defined for ``predictions > -1`` and ``targets > -1`` (typically both non-negative): values
    outside that domain give NaN, which the solvers report as NONFINITE rather than hide.
    Keras clips both arguments at 0 first (killing the gradient of negative predictions); this
    version does not. Not convex in the predictions (e.g. targets = 10, predictions near 100).

    Args:
        predictions: array of predictions, > -1.
        targets: array of the same shape, > -1.
        weights: optional per-example weights; "mean" then is ``sum(w l) / sum(w)``.
        reduction: "mean" (default), "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        ValueError: mismatched shapes, concrete inputs <= -1, or an unknown reduction.
        TypeError: non-numeric inputs.

    Example:
        >>> import jax.numpy as jnp
        >>> float(msle(jnp.array([jnp.e - 1.0]), jnp.array([0.0])))
        1.0...

    References:
        Keras MeanSquaredLogarithmicError.
    """
    p, t = _prepare(predictions, targets, reduction)
    d = jnp.log1p(p) - jnp.log1p(t)
    return reduce_loss(d * d, weights, reduction)


@register(
    **_REG,
    convex=True,
    smooth=False,
    robust=True,
    reference="Keras MeanAbsolutePercentageError",
)
def mape(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    eps: float = 1e-7,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Mean absolute percentage error, in percent: ``100 |r| / max(|targets|, eps)``.

    As Keras' ``MeanAbsolutePercentageError`` (which uses ``eps = 1e-7``); ``eps`` guards zero
    targets. Minimum-norm subgradient 0 at ``r = 0``.

    Args:
        predictions: array of predictions.
        targets: array of the same shape (ints are promoted to the predictions' dtype).
        eps: > 0, floor of ``|targets|`` in the denominator.
        weights: optional per-example weights; "mean" then is ``sum(w l) / sum(w)``.
        reduction: "mean" (default), "sum" or "none".

    Returns:
        The reduced loss (a scalar) or, with "none", the per-example losses.

    Raises:
        ValueError: ``eps <= 0``.

    Example:
        >>> import jax.numpy as jnp
        >>> float(mape(jnp.array([110.0, 45.0]), jnp.array([100.0, 50.0])))
        10.0...

    References:
        Keras MeanAbsolutePercentageError.
    """
    check_positive(eps, "eps")
    p, t = _prepare(predictions, targets, reduction)
    scale = jnp.maximum(jnp.abs(t), eps)
    return reduce_loss(100.0 * _abs(p - t) / scale, weights, reduction)
