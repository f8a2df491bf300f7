"""Elementwise building blocks shared by the loss modules, with two rules for NaN and zeros.

NaN in, NaN out. A comparison with NaN is False, so ``jnp.where(m > 0, m, 0)`` sends a NaN to
the constant branch and returns 0 with gradient 0: a broken input scored as a perfect one.
Every branch that does not depend on the input (the flat part of a hinge, the plateau of a
redescending loss, the guard of a double ``where``) is therefore selected by a comparison that
is True on that branch's *own* region (``m <= 0``, ``|z| > 1``, ``s == 0``), so a NaN always
falls through to the formula and propagates. :func:`positive_part` does this for ``max(m, 0)``
and also makes the gradient NaN (a piecewise-linear formula alone would give a finite slope).

Zero times minus infinity is zero for a zero target. A masked class (logit ``-inf``) has log-
probability ``-inf``; a target that gives it no mass must contribute exactly 0, not
``0 * -inf = NaN``. :func:`mul_log` is that product.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from lossopt._validation import check_in_interval, concrete_value

__all__ = [
    "clamped_log",
    "default_eps",
    "is_concrete_zero",
    "log1m_softmax",
    "log_one_minus_pt",
    "mul_log",
    "positive_part",
    "unit_vector",
    "xlogx",
]


@jax.custom_jvp
def positive_part(m: jax.Array) -> jax.Array:
    """``max(m, 0)`` with the minimum-norm subgradient 0 at ``m = 0``, NaN-propagating.

    Derivative 1 for ``m > 0``, 0 for ``m <= 0`` (at the kink: the minimum-norm element of
    ``[0, 1]``; ``jnp.maximum`` would split the tie, 1/2) and NaN for a NaN ``m``; second
    derivative 0.
    """
    return jnp.where(m <= 0, jnp.zeros_like(m), m)


@positive_part.defjvp
def _positive_part_jvp(primals, tangents):
    (m,), (dm,) = primals, tangents
    slope = jnp.where(m > 0, 1.0, jnp.where(m <= 0, 0.0, jnp.nan)).astype(m.dtype)
    return positive_part(m), dm * slope


def mul_log(c: jax.Array, log_p: jax.Array) -> jax.Array:
    """``c * log_p`` that is exactly 0 where ``c == 0``, even where ``log_p`` is ``-inf``.

    Gradient with respect to ``log_p``: ``c`` (0 where ``c == 0``). A NaN ``c`` or ``log_p``
    still gives NaN.
    """
    zero = c == 0
    return jnp.where(zero, 0, c * jnp.where(zero, 0, log_p))


@jax.custom_jvp
def clamped_log(p: jax.Array, eps: jax.Array) -> jax.Array:
    """``log(max(p, eps))`` whose derivative is ``1 / max(p, eps)`` (never 0, never inf).

    A custom JVP (rather than VJP) so that ``jax.hessian`` differentiates it twice: the second
    derivative is ``-1 / p^2`` above ``eps`` and 0 below it. ``eps`` is treated as a constant.
    """
    return jnp.log(jnp.maximum(p, eps))


@clamped_log.defjvp
def _clamped_log_jvp(primals, tangents):
    p, eps = primals
    dp, _ = tangents
    floor = jnp.maximum(p, eps)
    return jnp.log(floor), dp / floor


def xlogx(t: jax.Array) -> jax.Array:
    """``t * log(t)`` with ``0 log 0 = 0``; double ``where`` keeps the gradient finite at 0."""
    positive = t > 0
    safe = jnp.where(positive, t, 1.0)
    return jnp.where(positive, safe * jnp.log(safe), 0.0)


def default_eps(eps: Any, dtype: Any) -> Any:
    """The clamp of the probability-input losses: the dtype's machine epsilon for None, else
    ``eps`` checked to lie in (0, 1)."""
    if eps is None:
        return float(jnp.finfo(dtype).eps)
    check_in_interval(eps, "eps", 0.0, 1.0)
    return eps


def log1m_softmax(x: jax.Array) -> jax.Array:
    """``log(1 - softmax(x))`` along the last axis, exact even when one class saturates.

    For the arg-max class ``log(1 - p) = logsumexp(x_{j != c}) - logsumexp(x)`` (finite when
    ``K >= 2``, and not ``log(0)`` when ``p`` rounds to 1); every other class has ``p <= 1/2``,
    where ``log1p(-p)`` is accurate. Both branches are the same function, so the switch is
    smooth.
    """
    k = x.shape[-1]
    lse = jax.nn.logsumexp(x, axis=-1, keepdims=True)
    top = jax.nn.one_hot(jnp.argmax(x, axis=-1), k, dtype=jnp.bool_)
    rest = jax.nn.logsumexp(jnp.where(top, -jnp.inf, x), axis=-1, keepdims=True) - lse
    small = jnp.where(top, -1.0, x - lse)  # double where: the top branch never sees log1p(-1)
    return jnp.where(top, rest, jnp.log1p(-jnp.exp(small)))


def log_one_minus_pt(x: jax.Array, y: jax.Array) -> jax.Array:
    """``log(1 - p_t)`` for ``p_t = y sigmoid(x) + (1 - y) sigmoid(-x)``, in log space.

    Hard labels take the exact ``log_sigmoid`` branch; soft labels in (0, 1) use
    ``logaddexp(log y + log sigmoid(-x), log(1 - y) + log sigmoid(x))``, finite there.
    """
    log_q = jax.nn.log_sigmoid(-x)
    log_p = jax.nn.log_sigmoid(x)
    interior = (y > 0) & (y < 1)
    ys = jnp.where(interior, y, 0.5)
    mixed = jnp.logaddexp(jnp.log(ys) + log_q, jnp.log1p(-ys) + log_p)
    return jnp.where(y >= 1, log_q, jnp.where(y <= 0, log_p, mixed))


def is_concrete_zero(value: Any) -> bool:
    """True for a concrete scalar 0 (a static shortcut; a traced value is never "zero")."""
    v = concrete_value(value)
    return v is not None and v.ndim == 0 and float(v) == 0.0


def unit_vector(x: jax.Array) -> jax.Array:
    """``x / ||x||`` over the last axis, and 0 for a zero vector (with zero derivatives)."""
    s = jnp.sum(x * x, axis=-1, keepdims=True)
    zero = s == 0  # a NaN entry makes s NaN: the unit vector is NaN, not 0
    return jnp.where(zero, 0, x * jax.lax.rsqrt(jnp.where(zero, 1, s)))
