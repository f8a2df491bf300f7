"""From a config's loss, model and regularizer to an objective ``fun(params, X, y)``.

This is where incompatible choices are caught up front (a multiclass dataset with ``mse``,
``hinge`` on a softmax model, Newton whose dense Hessian would not fit the memory budget), each
with a message that says what would work instead.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from lossopt import losses, regularizers
from lossopt.experiment._config import ConfigError
from lossopt.experiment._schema import ModelSpec, RegularizerSpec, SchemaError, convert_table
from lossopt.models import make_model

__all__ = ["Problem", "build_problem", "loss_tasks", "shape_inputs", "shape_kind",
           "validation_metric"]

# How each supervised loss consumes a model's outputs and the dataset's labels:
# name -> (data tasks it accepts, outputs: "scalar" | "classes", transform of outputs, labels)
_BINARY = ("binary",)
_MULTI = ("multiclass", "binary")
_CLASSIFICATION: dict[str, tuple[tuple[str, ...], str, str, str]] = {
    "sigmoid_binary_cross_entropy": (_BINARY, "scalar", "identity", "float01"),
    "sigmoid_focal": (_BINARY, "scalar", "identity", "float01"),
    "binary_cross_entropy": (_BINARY, "scalar", "sigmoid", "float01"),
    "hinge": (_BINARY, "scalar", "identity", "pm1"),
    "squared_hinge": (_BINARY, "scalar", "identity", "pm1"),
    "softmax_cross_entropy": (_MULTI, "classes", "identity", "ids"),
    "softmax_focal": (_MULTI, "classes", "identity", "ids"),
    "multiclass_hinge": (_MULTI, "classes", "identity", "ids"),
    "categorical_cross_entropy": (_MULTI, "classes", "softmax", "ids"),
    "nll": (_MULTI, "classes", "log_softmax", "ids"),
    "kl_divergence": (_MULTI, "classes", "softmax", "onehot"),
    "kl_divergence_with_logits": (_MULTI, "classes", "identity", "onehot"),
    "poisson_nll": (("counts",), "scalar", "identity", "float"),
}
_TRANSFORMS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "identity": lambda z: z,
    "sigmoid": jax.nn.sigmoid,
    "softmax": jax.nn.softmax,
    "log_softmax": jax.nn.log_softmax,
}


def _loss_contract(name: str) -> tuple[tuple[str, ...], str, str, str]:
    if name in _CLASSIFICATION:
        return _CLASSIFICATION[name]
    entry = losses.info(name)
    if entry.task == "regression" and entry.input_kind == "values":
        return ("regression", "counts"), "scalar", "identity", "float"
    raise ConfigError(
        f"loss {name!r} ({entry.task}, input {entry.input_kind}) is not a per-example "
        "prediction loss that `lossopt run` can pair with a model; use it from the Python API"
    )


def loss_tasks(name: str) -> tuple[str, ...]:
    """The data tasks a loss can be trained on by ``lossopt run`` (empty if none)."""
    try:
        return _loss_contract(name)[0]
    except ConfigError:
        return ()


def shape_kind(name: str) -> str | None:
    """The kind of loss-shape panel a loss is drawn in ("regression", "binary", "counts",
    "multiclass"), or None for losses `lossopt run` does not pair with a model."""
    if name in _CLASSIFICATION:
        tasks, outputs = _CLASSIFICATION[name][:2]
        return "counts" if "counts" in tasks else ("binary" if outputs == "scalar" else
                                                    "multiclass")
    return "regression" if losses.info(name).task == "regression" else None


def shape_inputs(kind: str, name: str, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The loss's (first argument, targets) along a loss-shape panel's x axis, as
    ``lossopt run`` feeds it: residuals, a positive example's logit, a count of 3's log-rate,
    or the true class's logit with two other logits at 0."""
    if kind == "regression":
        return x, jnp.zeros_like(x)
    if kind == "counts":
        return x, jnp.full_like(x, 3.0)
    _, _, transform, label_kind = _CLASSIFICATION[name]
    if kind == "binary":
        labels = jnp.ones(x.shape, dtype=jnp.int32)
        return _TRANSFORMS[transform](x), _labels(labels, label_kind, 2)
    logits = jnp.stack([x, jnp.zeros_like(x), jnp.zeros_like(x)], axis=-1)
    labels = jnp.zeros(x.shape, dtype=jnp.int32)
    return _TRANSFORMS[transform](logits), _labels(labels, label_kind, 3)


def _labels(y: jax.Array, kind: str, n_classes: int) -> jax.Array:
    if kind == "ids":
        return y
    if kind == "onehot":
        return jax.nn.one_hot(y, n_classes, dtype=jnp.result_type(float))
    if kind == "pm1":
        return 2.0 * y.astype(jnp.result_type(float)) - 1.0
    return y.astype(jnp.result_type(float))


@dataclasses.dataclass(frozen=True)
class Problem:
    """One loss x model x regularizer on a dataset of a given task.

    ``objective(params, X, y, *, key=None)`` is the regularised mean loss in training mode:
    with a ``key`` the model applies dropout (``model.apply(params, X, key=key, train=True)``);
    :func:`lossopt.minimize` passes a fresh key every iteration when given ``key=``.
    ``train_loss(params, X, y)`` is the same objective in evaluation mode (no dropout), and
    ``metric(params, X, y)`` the validation metric (R^2 for regression and counts, accuracy for
    classification), also in evaluation mode. All take the raw dataset arrays (class ids for
    classification) and are pure functions of their arguments, so one compiled loop serves
    every seed's data of the same shape. ``needs_key`` says whether the objective is stochastic
    (a model with dropout > 0).
    """

    objective: Callable[..., jax.Array]
    metric: Callable[..., jax.Array]
    metric_name: str
    model: Any
    n_params: int
    label: str
    train_loss: Callable[..., jax.Array]
    needs_key: bool = False
    # Problems of one model and dataset with equal metric_key compute the same metric (it
    # depends on the task, the outputs and whether they are log-rates, not on the loss).
    metric_key: tuple[Any, ...] = ()


def _regularizer(cfg: RegularizerSpec | None):
    if cfg is None:
        return lambda params: 0.0
    if cfg.kind == "l1":
        return lambda params: regularizers.l1(params, cfg.strength)
    if cfg.kind == "l2":
        return lambda params: regularizers.l2(params, cfg.strength)
    return lambda params: regularizers.elastic_net(params, cfg.alpha, cfg.l1_ratio)


def validation_metric(task: str, outputs_kind: str):
    """``(name, metric(outputs, y))`` for a task: R^2 or accuracy."""
    if task in ("regression", "counts"):
        def r2(pred, y):
            ss_res = jnp.sum((y - pred) ** 2)
            ss_tot = jnp.sum((y - jnp.mean(y)) ** 2)
            return 1.0 - ss_res / jnp.where(ss_tot > 0, ss_tot, 1.0)

        return "r2", r2

    def accuracy(outputs, y):
        if outputs_kind == "scalar":
            predicted = (outputs > 0).astype(y.dtype)
        else:
            predicted = jnp.argmax(outputs, axis=-1).astype(y.dtype)
        return jnp.mean((predicted == y).astype(jnp.result_type(float)))

    return "accuracy", accuracy


def build_problem(
    loss_entry: dict[str, Any],
    model_cfg: ModelSpec | dict[str, Any],
    regularizer_cfg: RegularizerSpec | dict[str, Any] | None,
    task: str,
    n_features: int,
    n_classes: int,
) -> Problem:
    """Assemble the objective and metric, rejecting incompatible combinations.

    ``model_cfg`` and ``regularizer_cfg`` are the spec's tables (:class:`ModelSpec`,
    :class:`RegularizerSpec`) or mappings of their fields.

    Raises:
        ConfigError: the loss does not fit the data's task or the model's output, with the
            combination that would work.
    """
    try:  # a spec, or a mapping of its fields (the rest take the defaults)
        if not isinstance(model_cfg, ModelSpec):
            model_cfg = convert_table(dict(model_cfg), ModelSpec, "model")
        if regularizer_cfg is not None and not isinstance(regularizer_cfg, RegularizerSpec):
            regularizer_cfg = convert_table(dict(regularizer_cfg), RegularizerSpec, "regularizer")
    except SchemaError as err:
        raise ConfigError(str(err)) from None
    name = loss_entry["name"]
    hyper = {k: v for k, v in loss_entry.items() if k != "name"}
    tasks, outputs, transform, label_kind = _loss_contract(name)
    if task not in tasks:
        suggestions = {
            "regression": "a regression loss such as mse, mae or huber",
            "counts": "poisson_nll or a regression loss",
            "binary": "sigmoid_binary_cross_entropy, hinge or sigmoid_focal",
            "multiclass": "softmax_cross_entropy, multiclass_hinge or softmax_focal",
        }
        raise ConfigError(
            f"loss {name!r} does not fit data of task {task!r} (it expects "
            f"{' or '.join(tasks)} data); use {suggestions[task]}"
        )
    kind = model_cfg.kind
    if outputs == "classes" and kind == "logistic":
        raise ConfigError(
            f"loss {name!r} takes one score per class but model.kind = 'logistic' outputs one "
            "logit per example; use model.kind = 'softmax' (or 'linear' / 'mlp', which adapt)"
        )
    if outputs == "scalar" and kind == "softmax":
        alternative = {
            "hinge": "multiclass_hinge", "squared_hinge": "multiclass_hinge",
            "sigmoid_binary_cross_entropy": "softmax_cross_entropy",
            "binary_cross_entropy": "categorical_cross_entropy", "sigmoid_focal": "softmax_focal",
        }.get(name)
        hint = f", or loss {alternative!r} with the softmax model" if alternative else ""
        raise ConfigError(
            f"loss {name!r} takes one score per example but model.kind = 'softmax' outputs one "
            f"per class; use model.kind = 'logistic' (or 'linear'){hint}"
        )
    n_outputs = n_classes if outputs == "classes" else None
    options = {}
    if kind == "mlp":
        options = {"hidden": list(model_cfg.hidden), "activation": model_cfg.activation,
                   "dropout": model_cfg.dropout}
    try:
        model = make_model(kind, n_outputs=n_outputs, **options)
    except ValueError as err:
        raise ConfigError(str(err).replace("`", "`model.", 1)) from None
    loss_fn = losses.get(name, **hyper)
    to_input = _TRANSFORMS[transform]
    penalty = _regularizer(regularizer_cfg)

    def penalised_loss(params, outputs_, y):
        return loss_fn(to_input(outputs_), _labels(y, label_kind, n_classes)) + penalty(params)

    def objective(params, X, y, *, key=None):
        return penalised_loss(params, model.apply(params, X, key=key, train=True), y)

    def train_loss(params, X, y):
        return penalised_loss(params, model.apply(params, X, train=False), y)

    metric_name, metric_fn = validation_metric(task, outputs)

    def metric(params, X, y):
        out = model.apply(params, X, train=False)
        if name == "poisson_nll":
            out = jnp.exp(out)  # the model predicts log-rates
        return metric_fn(out, y)

    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), n_features))
    n_params = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes))
    label = name + "".join(f" {k}={v}" for k, v in hyper.items())
    needs_key = kind == "mlp" and model.dropout > 0
    return Problem(objective, metric, metric_name, model, n_params, label, train_loss, needs_key,
                   (metric_name, outputs, name == "poisson_nll"))
