"""Multi-task objectives: combine per-task loss values into one scalar.

Unlike the other losses these take a mapping ``{task_name: loss_value}`` (the already reduced
loss of each task, typically scalars) rather than ``(predictions, targets)``, and return their
combination. They are registered under task ``"multi_task"`` (input kind ``"loss_values"``):
their first argument is that mapping, a pytree that ``jax.grad`` and ``jax.hessian``
differentiate like any other. The seed document's multi-task example is
``combine({"regression": mse, "classification": ce}, {"regression": 1.0,
"classification": 0.5})``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lossopt._validation import as_float_array, check_choice, check_nonnegative, describe
from lossopt.losses._registry import register

__all__ = ["combine", "uncertainty_weighted"]

TASK_KINDS = ("regression", "classification")


def _task_values(losses: Any) -> dict[str, jax.Array]:
    if not isinstance(losses, Mapping) or not losses:
        raise TypeError(
            f"`losses` must be a non-empty mapping {{task name: loss value}}; got "
            f"{describe(losses)}"
        )
    values = {k: as_float_array(v, f"losses[{k!r}]") for k, v in losses.items()}
    shapes = {k: tuple(v.shape) for k, v in values.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(
            f"every task's loss value must have the same shape (usually a scalar); got {shapes}"
        )
    return values


def _per_task(mapping: Any, name: str, tasks: list[str]) -> dict[str, Any]:
    if not isinstance(mapping, Mapping):
        raise TypeError(f"`{name}` must be a mapping {{task name: value}}; got {describe(mapping)}")
    missing = [k for k in tasks if k not in mapping]
    extra = [k for k in mapping if k not in tasks]
    if missing or extra:
        raise ValueError(
            f"`{name}` must have exactly the tasks of `losses` {tasks}; missing {missing}, "
            f"unknown {extra}"
        )
    return dict(mapping)


@register(
    task="multi_task",
    input_kind="loss_values",
    convex=True,
    smooth=True,
    robust=True,
    probabilistic=False,
    reference="Caruana (1997), Multitask Learning, Machine Learning 28(1)",
)
def combine(
    losses: Mapping[str, ArrayLike],
    *,
    task_weights: Mapping[str, ArrayLike] | None = None,
) -> jax.Array:
    """Fixed-weight combination of task losses: ``sum_k w_k L_k``.

    Linear in the loss values (gradient ``w_k``), hence convex, smooth and of bounded
    influence in them. ``task_weights`` (keyword-only) are the *task* weights ``w_k`` (a mapping
    with the same keys as ``losses``; all 1 by default), not the per-example ``weights`` of the
    other losses.

    Args:
        losses: mapping ``{task: loss value}``; values of equal shape (usually scalars).
        task_weights: optional mapping ``{task: weight >= 0}`` with exactly the same tasks. Values
            may be traced (e.g. scheduled or learned weights).

    Returns:
        ``sum_k task_weights[k] * losses[k]`` (the shape of the loss values).

    Raises:
        TypeError: ``losses`` or ``task_weights`` not a mapping, non-numeric values.
        ValueError: empty ``losses``, tasks of ``task_weights`` differing from those of ``losses``,
            loss values of different shapes, negative concrete weights.

    Example (the seed document's ``loss1 + 0.5 * loss2``):
        >>> import jax.numpy as jnp
        >>> task_losses = {"regression": jnp.array(2.0), "classification": jnp.array(0.6)}
        >>> float(combine(task_losses, task_weights={"regression": 1.0, "classification": 0.5}))
        2.3

    References:
        Caruana (1997), Multitask Learning, Machine Learning 28(1).
    """
    values = _task_values(losses)
    tasks = list(values)
    if task_weights is None:
        return sum(values[k] for k in tasks)
    w = _per_task(task_weights, "task_weights", tasks)
    total = 0
    for k in tasks:
        check_nonnegative(w[k], f"task_weights[{k!r}]")
        total = total + jnp.asarray(w[k], values[k].dtype) * values[k]
    return total


@register(
    task="multi_task",
    input_kind="loss_values",
    convex=True,
    smooth=True,
    robust=True,
    probabilistic=True,
    reference="Kendall, Gal & Cipolla (2018), Multi-Task Learning Using Uncertainty to Weigh "
    "Losses, CVPR",
)
def uncertainty_weighted(
    losses: Mapping[str, ArrayLike],
    log_vars: Mapping[str, ArrayLike],
    *,
    kinds: Mapping[str, str] | None = None,
) -> jax.Array:
    """Homoscedastic-uncertainty task weighting (Kendall, Gal & Cipolla 2018).

    With ``s_k = log sigma_k^2`` learnable per task (``log_vars``), the combined objective is
    ``sum_k c_k exp(-s_k) L_k + s_k / 2`` with ``c_k = 1/2`` for a regression task (Gaussian
    likelihood: ``L_k / (2 sigma^2) + log sigma``, their eq. 7) and ``c_k = 1`` for a
    classification task (scaled softmax: ``L_k / sigma^2 + log sigma``, their eq. 10). Minimising
    over ``s_k`` gives ``s_k = log(2 c_k L_k)``: tasks with a large loss get a small weight.
    Using ``log sigma^2`` keeps the weights positive without constraints. Linear in the loss
    values (convex, smooth, bounded gradient ``c_k exp(-s_k)``); the objective is the negative
    log-likelihood of the paper's model up to constants.

    Args:
        losses: mapping ``{task: loss value}`` (equal shapes, usually scalars).
        log_vars: mapping ``{task: s_k}`` with exactly the same tasks (scalars or arrays of the
            loss values' shape); differentiate with respect to it to learn the weights.
        kinds: optional mapping ``{task: "regression" | "classification"}`` (default: every
            task "regression").

    Returns:
        The combined objective (the shape of the loss values).

    Raises:
        TypeError: non-mapping arguments, non-numeric values.
        ValueError: task sets that differ, unknown kinds, loss values of different shapes.

    Example (at ``s = log L`` a regression task contributes ``(1 + log L) / 2``):
        >>> import jax.numpy as jnp
        >>> task_losses = {"depth": jnp.array(4.0), "labels": jnp.array(1.0)}
        >>> s = {"depth": jnp.log(4.0), "labels": jnp.array(0.0)}
        >>> round(float(uncertainty_weighted(task_losses, s)), 4)  # (1 + log 4)/2 + 1/2
        1.6931

    References:
        Kendall, A., Gal, Y. & Cipolla, R. (2018). Multi-task learning using uncertainty to
        weigh losses for scene geometry and semantics. CVPR, 7482-7491.
    """
    values = _task_values(losses)
    tasks = list(values)
    s = _per_task(log_vars, "log_vars", tasks)
    kind = _per_task(kinds, "kinds", tasks) if kinds is not None else dict.fromkeys(tasks)
    total = 0
    for k in tasks:
        kind_k = kind[k] if kind[k] is not None else "regression"
        check_choice(kind_k, f"kinds[{k!r}]", TASK_KINDS)
        factor = 0.5 if kind_k == "regression" else 1.0
        v = values[k]
        s_k = as_float_array(s[k], f"log_vars[{k!r}]").astype(v.dtype)
        if s_k.ndim and tuple(s_k.shape) != tuple(v.shape):
            raise ValueError(
                f"`log_vars[{k!r}]` must be a scalar or of the loss value's shape "
                f"{tuple(v.shape)}; got {describe(s_k)}"
            )
        total = total + factor * jnp.exp(-s_k) * v + 0.5 * s_k
    return total
