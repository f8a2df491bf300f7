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

import jax
import jax.numpy as jnp

__all__ = ["mul_log", "positive_part"]


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
