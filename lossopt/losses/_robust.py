"""Robust regression losses: redescending M-estimators and Barron's general/adaptive loss.

Every loss here is ``rho(r)`` of the residual ``r = predictions - targets`` for one penalty of
the table :data:`PENALTIES`, which also gives its influence function ``psi = rho'`` and its
IRLS weight ``psi(r) / r`` in closed form (public face: :mod:`lossopt.losses.robust`).

Normalisation. Tukey and Cauchy use the classical M-estimator normalisation
``rho = c^2 * rho_hat(r / c)`` (so ``rho ~ r^2 / 2`` near 0, as in Huber's and Hampel's
tables); Geman-McClure, Welsch and Barron are Barron's family members in scaled units,
``rho = rho_hat(r / c)`` (so ``rho ~ (r / c)^2 / 2``). Hence ``geman_mcclure(c) =
barron(alpha=-2, c=c)``, ``welsch(c) = barron(alpha=-inf, c=c)`` and
``cauchy(c) = c^2 / 2 * barron(alpha=0, c=c / sqrt(2))``.

The scale hyperparameter ``c`` and Barron's ``alpha`` may be arrays broadcastable
(numpy rules, trailing axes) to the residual's shape, e.g. one ``alpha`` per output dimension;
they may be traced, so ``jax.grad`` can learn them and ``jax.vmap`` can sweep them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lossopt._validation import (
    as_float_array,
    check_in_interval,
    check_positive,
    describe,
)
from lossopt.losses._labels import paired_inputs
from lossopt.losses._reduce import reduce_loss
from lossopt.losses._registry import register

__all__ = ["barron", "barron_nll", "cauchy", "geman_mcclure", "tukey", "welsch"]


# --------------------------------------------------------------------------------------------
# Kernels in scaled units z = r / c: rho_hat(z) and w_hat(z) = rho_hat'(z) / z.
# Each is finite with finite first and second derivatives everywhere (double-`where` at kinks).
# --------------------------------------------------------------------------------------------


def _tukey_rho(z):
    # `outside` rather than `inside = |z| <= 1`: a NaN z must take the formula (NaN), not the
    # plateau 1/6 with gradient 0.
    outside = jnp.abs(z) > 1
    u = 1 - jnp.square(jnp.where(outside, 0, z))
    return jnp.where(outside, 1 / 6, (1 - u * u * u) / 6)


def _tukey_weight(z):
    outside = jnp.abs(z) > 1
    u = 1 - jnp.square(jnp.where(outside, 0, z))
    return jnp.where(outside, 0, u * u)


def _cauchy_rho(z):
    return 0.5 * jnp.log1p(z * z)


def _cauchy_weight(z):
    return 1 / (1 + z * z)


def _geman_mcclure_rho(z):
    z2 = z * z
    return 2 * z2 / (z2 + 4)


def _geman_mcclure_weight(z):
    return 16 / jnp.square(z * z + 4)


def _welsch_rho(z):
    return -jnp.expm1(-0.5 * z * z)


def _welsch_weight(z):
    return jnp.exp(-0.5 * z * z)


def _exprel(y):
    """``expm1(y) / y``, 1 at ``y = 0``: a 5-term series for ``|y| < 1e-3`` (truncation
    ``y^5 / 720 < 2e-18``), exact quotient elsewhere; smooth to all orders used here."""
    small = jnp.abs(y) < 1e-3
    ys = jnp.where(small, y, 0)
    series = 1 + ys * (1 / 2 + ys * (1 / 6 + ys * (1 / 24 + ys / 120)))
    yl = jnp.where(small, 1, y)
    return jnp.where(small, series, jnp.expm1(yl) / yl)


def _barron_parts(z, alpha):
    """Shared pieces of Barron's loss: masks for the limits and the safe ``L = log1p(z^2/b)``."""
    neg_inf = jnp.isneginf(alpha)
    a = jnp.where(neg_inf, 0, alpha)  # any finite stand-in; the -inf lanes use Welsch
    b = jnp.abs(a - 2)
    two = b == 0
    b_safe = jnp.where(two, 1, b)
    log_term = jnp.log1p(z * z / b_safe)
    return neg_inf, two, a, b_safe, log_term


@jax.jit
def _barron_rho(z, alpha):
    """Barron's rho in scaled units, stable at every alpha.

    ``|a-2|/a * ((z^2/|a-2| + 1)^(a/2) - 1)`` is evaluated as ``(b/2) L exprel(a L / 2)`` with
    ``b = |a - 2|`` and ``L = log1p(z^2 / b)``: no division by ``a`` (exprel's series covers
    ``a -> 0``, giving ``log(1 + z^2/2)`` at ``a = 0``), no ``0 * inf`` as ``b -> 0`` (``b L``
    is finite; exactly ``a = 2`` takes ``z^2/2``) and ``(a/2) L -> -z^2/2`` as ``a -> -inf``
    (exactly ``-inf`` takes Welsch's ``1 - exp(-z^2/2)``).
    """
    neg_inf, two, a, b, log_term = _barron_parts(z, alpha)
    general = 0.5 * b * log_term * _exprel(0.5 * a * log_term)
    return jnp.where(neg_inf, _welsch_rho(z), jnp.where(two, 0.5 * z * z, general))


@jax.jit
def _barron_weight(z, alpha):
    """``rho_hat'(z) / z = (z^2/|a-2| + 1)^(a/2 - 1) = exp((a - 2)/2 * L)``."""
    neg_inf, two, a, _, log_term = _barron_parts(z, alpha)
    general = jnp.exp(0.5 * (a - 2) * log_term)
    return jnp.where(neg_inf, _welsch_weight(z), jnp.where(two, 1, general))


# --------------------------------------------------------------------------------------------
# The table of penalties: rho, psi and IRLS weight from one definition each.
# --------------------------------------------------------------------------------------------


def _broadcast_param(value: Any, name: str, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """``value`` as an array of ``shape`` (numpy broadcasting, trailing axes aligned)."""
    v = as_float_array(value, name).astype(dtype)
    try:
        out_shape = np.broadcast_shapes(tuple(v.shape), tuple(shape))
    except ValueError:
        out_shape = None
    if out_shape != tuple(shape):
        raise ValueError(
            f"`{name}` must be a scalar or broadcast (trailing axes aligned) to the residual "
            f"shape {tuple(shape)}; got {describe(v)}"
        )
    return jnp.broadcast_to(v, shape)


def _no_extra_checks(hyper: Mapping[str, Any]) -> None:
    return None


def _check_barron_alpha(hyper: Mapping[str, Any]) -> None:
    # -inf (Welsch) is allowed; +inf and NaN are not.
    check_in_interval(hyper["alpha"], "alpha", -math.inf, math.inf, closed_low=True)


@dataclasses.dataclass(frozen=True)
class RobustPenalty:
    """A robust penalty ``rho``, its influence ``psi = rho'`` and IRLS weight ``psi(r) / r``.

    Defined by ``rho_hat(z, **shape)`` and ``weight_hat(z, **shape) = rho_hat'(z) / z`` in scaled
    units ``z = r / c``; ``rho(r) = k rho_hat(z)`` with ``k = c^2`` when ``c_squared`` (classical
    M-estimator normalisation) and ``k = 1`` otherwise. Then ``psi(r) = (k / c) z w_hat(z)`` and
    ``weight(r) = (k / c^2) w_hat(z)``, finite at ``r = 0`` (where ``psi / r`` is the limit).

    Call ``rho``, ``psi`` and ``weight`` with the residual and keyword hyperparameters (defaults
    in ``hyperparameters``); they are elementwise and return arrays of ``r``'s shape.

    Attributes:
        name: the penalty's name (also the registered loss's name).
        scale_name: name of the scale hyperparameter (``"c"`` for every penalty).
        hyperparameters: every hyperparameter and its default.
        c_squared: whether ``rho`` carries the ``c^2`` factor.
        rho_hat: ``rho`` in scaled units.
        weight_hat: ``rho_hat'(z) / z``.
        check: extra validation of the hyperparameters (the scale is always checked > 0).
    """

    name: str
    scale_name: str
    hyperparameters: Mapping[str, float]
    c_squared: bool
    rho_hat: Callable[..., jax.Array]
    weight_hat: Callable[..., jax.Array]
    check: Callable[[Mapping[str, Any]], None] = _no_extra_checks

    def _resolve(self, r: Any, hyper: Mapping[str, Any]):
        unknown = sorted(set(hyper) - set(self.hyperparameters))
        if unknown:
            raise TypeError(
                f"robust.{self.name} got unknown hyperparameter(s) {unknown}; accepted: "
                f"{', '.join(self.hyperparameters)}"
            )
        values = {**self.hyperparameters, **hyper}
        check_positive(values[self.scale_name], self.scale_name)
        self.check(values)
        x = as_float_array(r, "r")
        full = {k: _broadcast_param(v, k, x.shape, x.dtype) for k, v in values.items()}
        c = full.pop(self.scale_name)
        amplitude = c * c if self.c_squared else jnp.ones_like(c)
        return x / c, c, amplitude, full

    def rho(self, r: ArrayLike, **hyper: ArrayLike) -> jax.Array:
        """The penalty ``rho(r)``, elementwise."""
        z, _, k, shape = self._resolve(r, hyper)
        return k * self.rho_hat(z, **shape)

    def psi(self, r: ArrayLike, **hyper: ArrayLike) -> jax.Array:
        """The influence function ``psi(r) = rho'(r)``, elementwise."""
        z, c, k, shape = self._resolve(r, hyper)
        return (k / c) * z * self.weight_hat(z, **shape)

    def weight(self, r: ArrayLike, **hyper: ArrayLike) -> jax.Array:
        """The IRLS weight ``psi(r) / r`` (its limit ``rho''(0)`` at ``r = 0``), elementwise."""
        z, c, k, shape = self._resolve(r, hyper)
        return (k / (c * c)) * self.weight_hat(z, **shape)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.hyperparameters.items())
        return f"RobustPenalty({self.name}: rho, psi, weight; {args})"


PENALTIES: dict[str, RobustPenalty] = {
    p.name: p
    for p in (
        RobustPenalty("tukey", "c", {"c": 4.685}, True, _tukey_rho, _tukey_weight),
        RobustPenalty("cauchy", "c", {"c": 1.0}, True, _cauchy_rho, _cauchy_weight),
        RobustPenalty(
            "geman_mcclure", "c", {"c": 1.0}, False, _geman_mcclure_rho, _geman_mcclure_weight
        ),
        RobustPenalty("welsch", "c", {"c": 1.0}, False, _welsch_rho, _welsch_weight),
        RobustPenalty(
            "barron",
            "c",
            {"alpha": 1.0, "c": 1.0},
            False,
            _barron_rho,
            _barron_weight,
            _check_barron_alpha,
        ),
    )
}


# --------------------------------------------------------------------------------------------
# Barron's log partition function log Z(alpha), alpha in [0, 2], from a cubic spline table.
# --------------------------------------------------------------------------------------------

_LOGZ_ALPHA_LO = 1e-12  # below: log Z(0) + alpha * d log Z/d alpha (0), both in closed form
_LOGZ_B_LO = 1e-16  # 2 - alpha below this (only alpha = 2 in float64): log Z(2) = log sqrt(2 pi)
_LOGZ_KNOT_SPACING = 0.05  # in v = log((2 - alpha) / alpha); interpolation error ~1e-10
_LOG_Z0 = math.log(math.pi * math.sqrt(2.0))  # integral of 1 / (1 + z^2/2)
_LOG_Z2 = 0.5 * math.log(2.0 * math.pi)  # integral of exp(-z^2/2)
# d log Z / d alpha at 0 = -E_0[d rho / d alpha] with z = sqrt(2) tan(theta), theta uniform:
# E[log(1 + z^2/2)] = 2 log 2, E[log^2(1 + z^2/2)] = 4 (log^2 2 + pi^2/12), E[z^2/(2 + z^2)] = 1/2.
_DLOG_Z0 = math.log(2.0) - math.log(2.0) ** 2 - math.pi**2 / 12 - 0.25


@functools.cache
def _log_partition_table() -> tuple[float, float, np.ndarray]:
    """Knots ``v_k = v0 + k h`` of ``v = log((2 - alpha) / alpha)`` and cubic coefficients.

    ``Z(alpha) = 2 int_0^inf exp(-rho_hat(z; alpha)) dz`` is computed in float64 numpy by the
    trapezoidal rule after ``z = sinh(t)``, ``t`` in ``[0, 50]`` with step 0.02: the integrand
    is analytic and decays at least like ``4 exp(-t)`` (``rho`` grows with ``alpha`` and
    ``alpha = 0`` gives ``1/(1 + z^2/2)``), so the rule converges geometrically (checked to
    ~1e-13 against adaptive quadrature) and the truncated tail is below ``2 / sinh(50)``. The
    knots are equally spaced in ``v``, which clusters them near ``alpha = 2`` (where ``log Z``
    has a ``(2 - alpha) log(2 - alpha)`` term) and near ``alpha = 0`` (where its derivatives
    grow factorially); a clamped cubic spline (end slopes 0: ``log Z`` is flat in ``v`` at both
    ends to ~1e-12) interpolates them.
    """
    h = _LOGZ_KNOT_SPACING
    v_lo = math.log(_LOGZ_B_LO / (2 - _LOGZ_B_LO))
    v_hi = math.log((2 - _LOGZ_ALPHA_LO) / _LOGZ_ALPHA_LO)
    n = math.ceil((v_hi - v_lo) / h) + 1
    v = v_lo + h * np.arange(n)
    b = 2 / (1 + np.exp(-v))  # 2 - alpha, accurate for tiny b
    a = 2 - b
    dt = 0.02
    t = np.arange(0.0, 50.0 + dt / 2, dt)
    z2 = np.sinh(t) ** 2
    quad_w = np.full(t.shape, dt)
    quad_w[0] = dt / 2
    log_z = np.empty(n)
    for start in range(0, n, 128):  # chunks bound the temporary (128 x 2501) arrays
        aa, bb = a[start : start + 128, None], b[start : start + 128, None]
        log_term = np.log1p(z2[None, :] / bb)
        y = 0.5 * aa * log_term
        small = np.abs(y) < 1e-3
        ys = np.where(small, y, 0.0)
        yl = np.where(small, 1.0, y)
        series = 1 + ys * (0.5 + ys * (1 / 6 + ys * (1 / 24 + ys / 120)))
        exprel = np.where(small, series, np.expm1(yl) / yl)
        rho = 0.5 * bb * log_term * exprel
        integrand = np.exp(-rho) * np.cosh(t)[None, :]
        log_z[start : start + 128] = np.log(2 * integrand @ quad_w)
    # Clamped cubic spline, end slopes 0: tridiagonal system for the knot slopes m_k
    # (m_{k-1} + 4 m_k + m_{k+1} = 3 (y_{k+1} - y_{k-1}) / h), solved by the Thomas algorithm.
    rhs = np.zeros(n)
    rhs[1:-1] = 3 * (log_z[2:] - log_z[:-2]) / h
    slopes = np.zeros(n)
    diag = np.full(n - 2, 4.0)
    r = rhs[1:-1].copy()
    for i in range(1, n - 2):
        f = 1.0 / diag[i - 1]
        diag[i] -= f
        r[i] -= f * r[i - 1]
    inner = np.zeros(n - 2)
    inner[-1] = r[-1] / diag[-1]
    for i in range(n - 4, -1, -1):
        inner[i] = (r[i] - inner[i + 1]) / diag[i]
    slopes[1:-1] = inner
    y0, y1, m0, m1 = log_z[:-1], log_z[1:], slopes[:-1], slopes[1:]
    delta = (y1 - y0) / h
    coeffs = np.stack(
        [y0, m0, (3 * delta - 2 * m0 - m1) / h, (m0 + m1 - 2 * delta) / (h * h)], axis=-1
    )
    return float(v_lo), h, coeffs


@jax.jit
def _log_partition(alpha: jax.Array) -> jax.Array:
    """log Z(alpha) for traced ``alpha`` in [0, 2] (NaN outside), differentiable twice."""
    v_lo, h, table = _log_partition_table()
    coeffs = jnp.asarray(table, dtype=alpha.dtype)
    valid = (alpha >= 0) & (alpha <= 2)
    near_zero = alpha < _LOGZ_ALPHA_LO
    near_two = (2 - alpha) < _LOGZ_B_LO
    mid = valid & ~near_zero & ~near_two
    a = jnp.where(mid, alpha, 1)
    v = jnp.log(2 - a) - jnp.log(a)
    index = jnp.clip(jnp.floor((v - v_lo) / h), 0, table.shape[0] - 1).astype(jnp.int32)
    s = v - (v_lo + h * index.astype(alpha.dtype))
    c = jnp.take(coeffs, index, axis=0)
    spline = c[..., 0] + s * (c[..., 1] + s * (c[..., 2] + s * c[..., 3]))
    value = jnp.where(near_two, _LOG_Z2, jnp.where(near_zero, _LOG_Z0 + _DLOG_Z0 * alpha, spline))
    return jnp.where(valid, value, jnp.nan)


# --------------------------------------------------------------------------------------------
# Registered losses.
# --------------------------------------------------------------------------------------------


def _residual(predictions: Any, targets: Any, reduction: str) -> jax.Array:
    p, t = paired_inputs(predictions, targets, "predictions", "targets", reduction)
    return p - t


_ROBUST = dict(task="regression", input_kind="values", probabilistic=False)


@register(
    **_ROBUST,
    convex=False,
    smooth=True,
    robust=True,
    reference="Beaton & Tukey (1974), Technometrics 16(2)",
)
def tukey(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    c: ArrayLike = 4.685,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Tukey's biweight: ``c^2/6 (1 - (1 - (r/c)^2)^3)`` for ``|r| <= c``, else ``c^2/6``.

    Redescending: ``psi(r) = r (1 - (r/c)^2)^2`` inside, 0 outside, so residuals beyond ``c``
    are ignored. The default ``c = 4.685`` gives 95% asymptotic efficiency at the Gaussian.
    C2 (``rho''(r) = (1 - z^2)(1 - 5 z^2)`` vanishes at ``|z| = 1`` from both sides) but not
    convex (``rho'' < 0`` for ``1/sqrt(5) < |z| < 1``). ``rho``, ``psi`` and the IRLS weight:
    ``lossopt.losses.robust.tukey``.

    Args:
        predictions: array of predictions.
        targets: array of the same shape.
        c: tuning constant > 0 (scalar or broadcastable to the residual shape).
        weights: optional per-example weights; "mean" then is ``sum(w l) / sum(w)``.
        reduction: "mean" (default), "sum" or "none".

    Returns:
        The reduced loss, or the elementwise losses with "none".

    Raises:
        ValueError: mismatched shapes, ``c <= 0``, unknown reduction.
        TypeError: non-numeric inputs.

    Example:
        >>> import jax.numpy as jnp
        >>> l = tukey(jnp.array([0.0, 1.0, 9.0]), jnp.zeros(3), c=2.0, reduction="none")
        >>> [round(float(v), 4) for v in l]
        [0.0, 0.3854, 0.6667]

    References:
        Beaton, A. E. & Tukey, J. W. (1974). The fitting of power series, meaning polynomials,
        illustrated on band-spectroscopic data. Technometrics 16(2), 147-185.
    """
    r = _residual(predictions, targets, reduction)
    return reduce_loss(PENALTIES["tukey"].rho(r, c=c), weights, reduction)


@register(
    **_ROBUST,
    convex=False,
    smooth=True,
    robust=True,
    reference="Black & Anandan (1996), CVIU 63(1); Barron (2019), CVPR",
)
def cauchy(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    c: ArrayLike = 1.0,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Cauchy (Lorentzian) loss: ``c^2/2 log(1 + (r/c)^2)``.

    ``psi(r) = r / (1 + (r/c)^2)`` peaks at ``|r| = c`` and decays like ``c^2 / r``; the
    curvature is negative for ``|r| > c`` (not convex). The negative log-likelihood of a
    Cauchy distribution with scale ``c``, up to constants and the factor ``c^2``. Equals
    ``c^2/2 * barron(alpha=0, c=c/sqrt(2))``.

    Args:
        predictions, targets: arrays of the same shape.
        c: scale > 0 (scalar or broadcastable to the residual shape).
        weights: optional per-example weights; reduction: "mean", "sum" or "none".

    Returns:
        The reduced loss (a scalar), or the elementwise losses with "none".

    Raises:
        ValueError: mismatched shapes, ``c <= 0``, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(cauchy(jnp.array([1.0]), jnp.array([0.0]), c=1.0)), 4)  # log(2) / 2
        0.3466

    References:
        Black, M. J. & Anandan, P. (1996). The robust estimation of multiple motions.
        Computer Vision and Image Understanding 63(1), 75-104.
    """
    r = _residual(predictions, targets, reduction)
    return reduce_loss(PENALTIES["cauchy"].rho(r, c=c), weights, reduction)


@register(
    **_ROBUST,
    convex=False,
    smooth=True,
    robust=True,
    reference="Geman & McClure (1987), Bull. ISI 52(4); Barron (2019), CVPR",
)
def geman_mcclure(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    c: ArrayLike = 1.0,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Geman-McClure loss: ``2 (r/c)^2 / ((r/c)^2 + 4)``, Barron's ``alpha = -2`` member.

    Bounded by 2; ``psi(r) = 16 r / (c^2 ((r/c)^2 + 4)^2)`` redescends like ``r^-3``; the
    curvature ``rho''(0) = 1/c^2`` turns negative for ``|r| > 2c/sqrt(3)``. Note the scaled
    units (``rho ~ (r/c)^2 / 2`` near 0), as in Barron's paper.

    Args:
        predictions, targets: arrays of the same shape.
        c: scale > 0 (scalar or broadcastable to the residual shape).
        weights: optional per-example weights; reduction: "mean", "sum" or "none".

    Returns:
        The reduced loss (a scalar), or the elementwise losses with "none".

    Raises:
        ValueError: mismatched shapes, ``c <= 0``, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> l = geman_mcclure(jnp.array([0.0, 2.0]), jnp.zeros(2), c=1.0, reduction="none")
        >>> [round(float(v), 4) for v in l]
        [0.0, 1.0]

    References:
        Geman, S. & McClure, D. E. (1987). Statistical methods for tomographic image
        reconstruction. Bulletin of the International Statistical Institute 52(4), 5-21.
    """
    r = _residual(predictions, targets, reduction)
    return reduce_loss(PENALTIES["geman_mcclure"].rho(r, c=c), weights, reduction)


@register(
    **_ROBUST,
    convex=False,
    smooth=True,
    robust=True,
    reference="Dennis & Welsch (1978), Commun. Stat. Simul. Comput. 7(4); Barron (2019), CVPR",
)
def welsch(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    c: ArrayLike = 1.0,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Welsch (Leclerc) loss: ``1 - exp(-(r/c)^2 / 2)``, Barron's ``alpha = -inf`` limit.

    Bounded by 1; ``psi(r) = (r/c^2) exp(-(r/c)^2/2)`` redescends like a Gaussian; the
    curvature turns negative for ``|r| > c``. Scaled units (``rho ~ (r/c)^2 / 2`` near 0).

    Args:
        predictions, targets: arrays of the same shape.
        c: scale > 0 (scalar or broadcastable to the residual shape).
        weights: optional per-example weights; reduction: "mean", "sum" or "none".

    Returns:
        The reduced loss (a scalar), or the elementwise losses with "none".

    Raises:
        ValueError: mismatched shapes, ``c <= 0``, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(welsch(jnp.array([2.0]), jnp.array([0.0]), c=2.0)), 4)  # 1 - e^-0.5
        0.3935

    References:
        Dennis, J. E. & Welsch, R. E. (1978). Techniques for nonlinear least squares and robust
        regression. Communications in Statistics - Simulation and Computation 7(4), 345-359.
    """
    r = _residual(predictions, targets, reduction)
    return reduce_loss(PENALTIES["welsch"].rho(r, c=c), weights, reduction)


@register(
    **_ROBUST,
    convex=False,
    smooth=True,
    robust=True,
    reference="Barron (2019), A General and Adaptive Robust Loss Function, CVPR",
)
def barron(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: ArrayLike = 1.0,
    c: ArrayLike = 1.0,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Barron's general robust loss: ``|a-2|/a (((r/c)^2/|a-2| + 1)^(a/2) - 1)``.

    With ``a = alpha`` and ``z = r/c``, its limits and members are ``z^2/2``
    (``a = 2``), ``sqrt(z^2 + 1) - 1`` (``a = 1``, Charbonnier / pseudo-Huber),
    ``log(z^2/2 + 1)`` (``a = 0``, Cauchy), ``2 z^2/(z^2 + 4)`` (``a = -2``, Geman-McClure)
    and ``1 - exp(-z^2/2)`` (``a = -inf``, Welsch). Evaluated as ``(b/2) L exprel(a L/2)``
    with ``b = |a - 2|``, ``L = log1p(z^2/b)``: stable near ``a = 0``, ``a = 2`` and for
    ``a -> -inf``, with exact closed forms at ``a = 2`` and ``a = -inf``. The curvature at 0 is
    ``1/c^2`` for every ``a``; ``psi`` is bounded iff ``a <= 1`` (the default), convex iff
    ``a >= 1``; ``a > 2`` is allowed (overflows for large ``z``).

    ``alpha`` and ``c`` may be arrays (broadcast to the residual shape) and are
    differentiable, so a solver can learn them; to learn ``alpha`` by likelihood use
    :func:`barron_nll` (minimising this ``rho`` alone drives ``alpha`` to ``-inf``). The
    ``alpha``-derivative diverges like ``log|alpha - 2|`` as ``alpha -> 2`` (``rho`` has a
    ``(alpha - 2) log|alpha - 2|`` term); exactly at ``alpha = 2`` the closed form ``z^2/2`` is
    used and its ``alpha``-derivative is returned as 0. Learn ``alpha`` through a map onto an
    open interval, e.g. ``alpha = 2 sigmoid(theta)``, as Barron does.

    Args:
        predictions, targets: arrays of the same shape.
        alpha: shape parameter in ``[-inf, inf)`` (scalar or broadcastable array).
        c: scale > 0 (scalar or broadcastable array).
        weights: optional per-example weights; reduction: "mean", "sum" or "none".

    Returns:
        The reduced loss (a scalar), or the elementwise losses with "none".

    Raises:
        ValueError: mismatched shapes, NaN or ``+inf`` ``alpha``, ``c <= 0``, parameters
            not broadcastable to the residual shape, unknown reduction.

    Example:
        >>> import jax.numpy as jnp
        >>> r = jnp.array([0.0, 1.0, 3.0])
        >>> [round(float(v), 4) for v in barron(r, jnp.zeros(3), alpha=1.0, reduction="none")]
        [0.0, 0.4142, 2.1623]
        >>> round(float(barron(jnp.array([3.0]), jnp.array([0.0]), alpha=-jnp.inf)), 4)
        0.9889

    References:
        Barron, J. T. (2019). A General and Adaptive Robust Loss Function. CVPR, 4331-4339.
    """
    r = _residual(predictions, targets, reduction)
    return reduce_loss(PENALTIES["barron"].rho(r, alpha=alpha, c=c), weights, reduction)


def barron_log_partition(alpha: ArrayLike) -> jax.Array:
    """``log Z(alpha)``, ``Z(alpha) = int exp(-rho(z; alpha, 1)) dz``, for ``alpha`` in [0, 2].

    The normaliser of Barron's distribution ``p(r) = exp(-rho(r/s; alpha)) / (s Z(alpha))``.
    ``Z`` diverges for ``alpha < 0`` (bounded ``rho``); ``alpha > 2`` is not tabulated
    (Barron's adaptive loss also restricts ``alpha`` to ``[0, 2]``). Closed forms:
    ``Z(0) = pi sqrt(2)``, ``Z(1) = 2 e K_1(1)``, ``Z(2) = sqrt(2 pi)``.

    Computed from a cubic spline in ``v = log((2 - alpha)/alpha)`` through float64 quadrature
    values (see ``_log_partition_table``; built once, on first use, in ~0.3 s): absolute error
    ~1e-10 in float64, twice differentiable. Exactly at ``alpha = 2`` the value is
    ``log sqrt(2 pi)`` and the derivative 0 (the true derivative diverges there, as ``rho``'s
    does). Concrete ``alpha`` outside ``[0, 2]`` raises; traced values outside give NaN.

    Example:
        >>> import math
        >>> round(float(barron_log_partition(0.0)) - math.log(math.pi * math.sqrt(2)), 6)
        0.0

    References:
        Barron, J. T. (2019). A General and Adaptive Robust Loss Function. CVPR, Section 2.
    """
    check_in_interval(alpha, "alpha", 0.0, 2.0, closed_low=True, closed_high=True)
    return _log_partition(as_float_array(alpha, "alpha"))


@register(
    task="probabilistic",
    input_kind="values",
    convex=False,
    smooth=True,
    robust=True,
    probabilistic=True,
    reference="Barron (2019), A General and Adaptive Robust Loss Function, CVPR",
)
def barron_nll(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: ArrayLike = 1.0,
    c: ArrayLike = 1.0,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Barron's adaptive loss: ``rho(r/c; alpha) + log(c) + log Z(alpha)``.

    The negative log-likelihood of ``r = predictions - targets`` under Barron's distribution
    ``p(r | alpha, c) = exp(-rho(r/c; alpha)) / (c Z(alpha))``: unlike the bare ``rho``
    (:func:`barron`), minimising it over ``alpha`` and ``c`` fits the shape and width of
    the residual distribution, so heavy-tailed residuals drive ``alpha`` down (towards the
    Cauchy ``alpha = 0``) and Gaussian ones towards 2. ``log Z`` comes from a precomputed
    spline (:func:`lossopt.losses.robust.barron_log_partition`), twice differentiable in
    ``alpha``. ``alpha`` must lie in ``[0, 2]`` (``Z`` diverges for ``alpha < 0``); learn it
    through ``alpha = 2 sigmoid(theta)`` (the ``alpha``-derivative diverges as ``alpha -> 2``
    and is returned as 0 exactly there). Robust (bounded ``psi``) for ``alpha <= 1``.

    Args:
        predictions, targets: arrays of the same shape.
        alpha: shape parameter in ``[0, 2]`` (scalar or broadcastable array; traced values
            outside the interval give NaN).
        c: scale > 0 (scalar or broadcastable array).
        weights: optional per-example weights; reduction: "mean", "sum" or "none".

    Returns:
        The reduced loss (a scalar), or the elementwise losses with "none".

    Raises:
        ValueError: mismatched shapes, concrete ``alpha`` outside ``[0, 2]``, ``c <= 0``,
            unknown reduction.

    Example (``alpha = 2`` is the Gaussian NLL ``r^2/2 + log sqrt(2 pi)``):
        >>> import jax.numpy as jnp
        >>> round(float(barron_nll(jnp.array([1.0]), jnp.array([0.0]), alpha=2.0)), 4)
        1.4189

    References:
        Barron, J. T. (2019). A General and Adaptive Robust Loss Function. CVPR, Section 2.
    """
    check_in_interval(alpha, "alpha", 0.0, 2.0, closed_low=True, closed_high=True)
    r = _residual(predictions, targets, reduction)
    penalty = PENALTIES["barron"]
    rho = penalty.rho(r, alpha=alpha, c=c)
    a = _broadcast_param(alpha, "alpha", r.shape, r.dtype)
    s = _broadcast_param(c, "c", r.shape, r.dtype)
    return reduce_loss(rho + jnp.log(s) + _log_partition(a), weights, reduction)
