"""Name -> loss function + properties, so configs, the CLI and tests can enumerate losses.

Each loss module decorates its public functions with :func:`register`. The properties are
*claims* that the test-suite checks numerically:

* ``convex``: convex in the first argument (predictions/logits/probabilities) for any fixed
  targets and valid hyperparameters; tested as a positive semi-definite Hessian at random points.
* ``smooth``: twice continuously differentiable (C2) in the first argument everywhere on its
  domain; a loss with a kink (MAE) or a jump in curvature (Huber) is not smooth.
* ``robust``: bounded influence: the gradient with respect to the first argument stays bounded
  as the error grows without bound (MAE, Huber, logit-input cross-entropy), as opposed to MSE
  or probability-input cross-entropy whose gradient blows up.
* ``probabilistic``: the loss is a negative log-likelihood (or divergence) of a probability
  model, so its value has a likelihood interpretation.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

from lossopt._validation import did_you_mean
from lossopt.losses._eager import compiled_eager

__all__ = ["LossInfo", "catalog", "get", "info", "names", "register"]

TASKS = (
    "regression",
    "classification",
    "probabilistic",
    "embedding",
    "segmentation",
    "sequence",
    "multi_task",
)


@dataclasses.dataclass(frozen=True)
class LossInfo:
    """A registered loss and the properties it claims.

    Attributes:
        name: registry name (also the function's name in ``lossopt.losses``).
        fn: the loss function.
        task: one of "regression", "classification", "probabilistic", "embedding",
            "segmentation", "sequence", "multi_task".
        input_kind: what the first argument holds: "values", "probabilities", "logits",
            "scores", "log_probabilities", "log_rate", "embeddings", ...
        convex: convex in the first argument.
        smooth: twice continuously differentiable in the first argument.
        robust: bounded gradient in the first argument as the error grows.
        probabilistic: a negative log-likelihood or divergence.
        reference: where the loss comes from (paper or library documentation).
        hyperparameters: keyword-only hyperparameters and their defaults (``weights``,
            ``reduction`` and the class mask ``where`` excluded: they are inputs, not
            hyperparameters; ``REQUIRED`` marks one without a default).
    """

    name: str
    fn: Callable[..., Any]
    task: str
    input_kind: str
    convex: bool
    smooth: bool
    robust: bool
    probabilistic: bool
    reference: str
    hyperparameters: dict[str, Any]

    @property
    def summary(self) -> str:
        """First line of the loss's docstring."""
        doc = inspect.getdoc(self.fn) or ""
        return doc.splitlines()[0] if doc else ""


class _Required:
    """Marks a hyperparameter without a default (e.g. ``gaussian_nll``'s ``variance``)."""

    def __repr__(self) -> str:
        return "<required>"


REQUIRED = _Required()
_REGISTRY: dict[str, LossInfo] = {}
_COMMON_KWARGS = ("weights", "reduction", "where")


def _hyperparameters(fn: Callable[..., Any]) -> dict[str, Any]:
    params = inspect.signature(fn).parameters.values()
    return {
        p.name: REQUIRED if p.default is inspect.Parameter.empty else p.default
        for p in params
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in _COMMON_KWARGS
    }


def register(
    *,
    task: str,
    input_kind: str,
    convex: bool,
    smooth: bool,
    robust: bool,
    probabilistic: bool,
    reference: str,
    name: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a loss function under ``name`` (default: its ``__name__``)."""
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS!r}; got {task!r}")

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(f"a loss named {key!r} is already registered")
        loss = compiled_eager(fn)
        _REGISTRY[key] = LossInfo(
            name=key,
            fn=loss,
            task=task,
            input_kind=input_kind,
            convex=convex,
            smooth=smooth,
            robust=robust,
            probabilistic=probabilistic,
            reference=reference,
            hyperparameters=_hyperparameters(fn),
        )
        return loss

    return decorator


def names() -> list[str]:
    """Sorted names of every registered loss."""
    return sorted(_REGISTRY)


def info(name: str) -> LossInfo:
    """The :class:`LossInfo` registered under ``name``.

    Raises:
        KeyError: for an unknown name, listing the known ones.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown loss {name!r}{did_you_mean(name, names())}; known losses: "
            f"{', '.join(names())}"
        ) from None


def get(name: str, **hyperparameters: Any) -> Callable[..., Any]:
    """Return the loss registered as ``name`` with ``hyperparameters`` bound.

    Unknown hyperparameters raise ``TypeError`` listing the accepted ones; values are validated
    by the loss itself when it is called.

    Example:
        >>> import jax.numpy as jnp
        >>> import lossopt
        >>> huber = lossopt.losses.get("huber", delta=0.5)
        >>> float(huber(jnp.array([0.0, 2.0]), jnp.array([0.0, 0.0])))
        0.4375
    """
    entry = info(name)
    unknown = sorted(set(hyperparameters) - set(entry.hyperparameters))
    if unknown:
        accepted = ", ".join(entry.hyperparameters) or "none"
        hint = did_you_mean(unknown[0], entry.hyperparameters)
        raise TypeError(
            f"loss {name!r} got unknown hyperparameter(s) {unknown}{hint}; accepted: {accepted}"
        )
    if not hyperparameters:
        return entry.fn
    bound = functools.partial(entry.fn, **hyperparameters)
    functools.update_wrapper(bound, entry.fn)
    return bound


def catalog(task: str | None = None) -> Iterator[LossInfo]:
    """Yield a :class:`LossInfo` for every registered loss (optionally one task), by name."""
    for key in names():
        entry = _REGISTRY[key]
        if task is None or entry.task == task:
            yield entry
