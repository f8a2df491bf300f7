"""Small, dependency-free pure-JAX models for experiments.

Each model is a frozen dataclass with ``init(key, n_features) -> params`` and
``apply(params, x, *, key=None, train=False) -> outputs``; params are plain dicts of arrays, so
they work with every lossopt solver, ``jax.grad`` and ``jax.vmap``.

- :class:`Linear`: ``x @ w + b``; with ``n_outputs=None`` a vector of shape ``(n,)`` (linear
  regression, logistic regression logits, Poisson log-rates); with ``n_outputs=k`` an
  ``(n, k)`` matrix (softmax regression logits).
- :class:`MLP`: fully connected layers with ``activation`` and (inverted) dropout between them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from lossopt._pytree import PyTree
from lossopt._validation import check_choice, check_in_interval

__all__ = ["ACTIVATIONS", "MLP", "Linear", "make_model"]

ACTIVATIONS = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
}


def _check_outputs(n_outputs: int | None) -> None:
    if n_outputs is not None and (not isinstance(n_outputs, int) or n_outputs < 1):
        raise ValueError(f"`n_outputs` must be None or an int >= 1; got {n_outputs!r}")


@dataclasses.dataclass(frozen=True)
class Linear:
    """Affine model ``x @ w + b``, initialised at zero (a convex problem needs no random start).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> model = Linear()
        >>> params = model.init(jax.random.key(0), 3)
        >>> model.apply(params, jnp.ones((2, 3))).shape
        (2,)
    """

    n_outputs: int | None = None

    def __post_init__(self) -> None:
        _check_outputs(self.n_outputs)

    def init(self, key: jax.Array, n_features: int, dtype: Any = None) -> dict[str, jax.Array]:
        """Zero weights ``w`` of shape ``(n_features,)`` or ``(n_features, n_outputs)``."""
        del key
        dtype = dtype or jnp.result_type(float)
        if self.n_outputs is None:
            return {"w": jnp.zeros((n_features,), dtype), "b": jnp.zeros((), dtype)}
        return {
            "w": jnp.zeros((n_features, self.n_outputs), dtype),
            "b": jnp.zeros((self.n_outputs,), dtype),
        }

    def apply(
        self, params: PyTree, x: jax.Array, *, key: jax.Array | None = None, train: bool = False
    ) -> jax.Array:
        """``x @ w + b`` (``key`` and ``train`` are accepted for a uniform interface)."""
        del key, train
        out = x @ params["w"]
        return out + jnp.broadcast_to(params["b"], out.shape)


@dataclasses.dataclass(frozen=True)
class MLP:
    """Multi-layer perceptron with ``activation`` and inverted dropout on hidden layers.

    Weights use He (relu, gelu) or Glorot (tanh, sigmoid, softplus) normal initialisation;
    biases start at zero. Dropout (probability ``dropout`` of zeroing a hidden unit, survivors
    scaled by ``1 / (1 - dropout)``) is active only when ``train=True`` and a ``key`` is given.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> model = MLP(hidden=(8,), n_outputs=None)
        >>> params = model.init(jax.random.key(0), 3)
        >>> model.apply(params, jnp.ones((5, 3))).shape
        (5,)
    """

    hidden: Sequence[int] = (64, 32)
    activation: str = "relu"
    n_outputs: int | None = None
    dropout: float = 0.0

    def __post_init__(self) -> None:
        _check_outputs(self.n_outputs)
        check_choice(self.activation, "activation", tuple(ACTIVATIONS))
        check_in_interval(self.dropout, "dropout", 0.0, 1.0, closed_low=True)
        hidden = tuple(self.hidden)
        if not hidden or any(not isinstance(h, int) or h < 1 for h in hidden):
            raise ValueError(f"`hidden` must be a non-empty list of ints >= 1; got {self.hidden!r}")
        object.__setattr__(self, "hidden", hidden)

    def init(self, key: jax.Array, n_features: int, dtype: Any = None) -> dict[str, Any]:
        """Random weights ``{"layers": [{"w", "b"}, ...]}``, one dict per layer."""
        dtype = dtype or jnp.result_type(float)
        sizes = [n_features, *self.hidden, self.n_outputs or 1]
        he = self.activation in ("relu", "gelu")
        layers = []
        for fan_in, fan_out, k in zip(sizes[:-1], sizes[1:], jax.random.split(key, len(sizes) - 1),
                                      strict=True):
            scale = (2.0 / fan_in) ** 0.5 if he else (2.0 / (fan_in + fan_out)) ** 0.5
            w = scale * jax.random.normal(k, (fan_in, fan_out), dtype)
            layers.append({"w": w, "b": jnp.zeros((fan_out,), dtype)})
        return {"layers": layers}

    def apply(
        self, params: PyTree, x: jax.Array, *, key: jax.Array | None = None, train: bool = False
    ) -> jax.Array:
        """Forward pass; dropout only when ``train`` is True and ``key`` is given."""
        act = ACTIVATIONS[self.activation]
        layers = params["layers"]
        h = x
        keys = (jax.random.split(key, len(layers)) if (train and key is not None and
                                                       self.dropout > 0) else None)
        for i, layer in enumerate(layers[:-1]):
            z = h @ layer["w"]
            h = act(z + jnp.broadcast_to(layer["b"], z.shape))
            if keys is not None:
                keep = jax.random.bernoulli(keys[i], 1.0 - self.dropout, h.shape)
                h = jnp.where(keep, h / (1.0 - self.dropout), 0.0)
        out = h @ layers[-1]["w"]
        out = out + jnp.broadcast_to(layers[-1]["b"], out.shape)
        return out[..., 0] if self.n_outputs is None else out


def make_model(kind: str, *, n_outputs: int | None = None, **options: Any) -> Linear | MLP:
    """Build a model by name: "linear", "logistic" (= linear, one logit), "softmax" (linear,
    ``n_outputs`` logits) or "mlp" (``hidden``, ``activation``, ``dropout``).

    Raises:
        ValueError: an unknown ``kind`` or options that the model does not take.
    """
    check_choice(kind, "model.kind", ("linear", "logistic", "softmax", "mlp"))
    if kind == "mlp":
        return MLP(n_outputs=n_outputs, **options)
    if options:
        raise ValueError(
            f"model.kind = {kind!r} takes no options; got {sorted(options)} (only 'mlp' does)"
        )
    return Linear(n_outputs=n_outputs)
