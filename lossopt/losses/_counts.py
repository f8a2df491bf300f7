"""Count-data losses on predicted rates: Keras' Poisson loss.

``poisson(rates, counts)`` takes the Poisson rate itself (Keras' ``y_pred``), where
``poisson_nll`` takes its log by default (PyTorch's ``log_input=True``); both are the same
negative log-likelihood up to the constant ``log(c!)``.
"""

from __future__ import annotations

from lossopt.losses._probabilistic import poisson_nll_values
from lossopt.losses._registry import register

__all__ = ["poisson"]


@register(
    task="probabilistic",
    input_kind="rate",
    convex=True,
    smooth=True,
    robust=False,
    probabilistic=True,
    reference="Keras Poisson",
)
def poisson(rates, counts, *, eps=1e-7, weights=None, reduction="mean"):
    """Poisson loss on predicted rates (Keras): ``l = r - c log(r + eps)``.

    ``r >= 0`` is the predicted rate and ``c >= 0`` the observed count; ``eps`` (Keras'
    ``backend.epsilon()``, 1e-7) keeps ``log(0)`` away. This is Keras' ``keras.losses.Poisson``
    elementwise (Keras averages over the last axis, then over the batch: the same ``"mean"``)
    and ``poisson_nll(r, c, log_input=False, eps=eps)``, which computes it. Convex and C2 in
    ``r`` (Hessian ``c / (r + eps)**2``); the gradient ``1 - c / (r + eps)`` is unbounded as
    ``r -> 0`` with ``c > 0`` (finite at ``r = 0``: ``1 - c / eps``).

    Args:
        rates: predicted rates, ``>= 0``.
        counts: observed counts of ``rates``' shape, ``>= 0`` (non-integer counts accepted).
        eps: > 0.
        weights: optional per-example weights; reduction: "mean", "sum" or "none".

    Raises:
        ValueError: mismatched shapes, concrete negative (or NaN) rates or counts,
            ``eps <= 0``, unknown reduction. Under ``jit`` rates and counts are not checked.

    Example (Keras' documented example: 0.5):
        >>> import jax.numpy as jnp
        >>> y_true = jnp.array([[0.0, 1.0], [0.0, 0.0]])
        >>> y_pred = jnp.array([[1.0, 1.0], [0.0, 0.0]])
        >>> round(float(poisson(y_pred, y_true)), 6)
        0.5

    References:
        Keras documentation, ``keras.losses.Poisson``.
    """
    return poisson_nll_values(rates, counts, "rates", False, False, eps, weights, reduction)
