"""Reading a loss's inputs: paired arrays, labels and the class axis (internal API).

Shared by the loss modules, so every loss reports a bad input the same way:

* :func:`paired_inputs`: two float arrays of one shape (predictions and targets, scores and
  labels, ...); the second takes the first's float dtype and nothing is broadcast.
* Binary labels: :func:`binary_inputs` (values in [0, 1]), :func:`signed_labels` ({-1, +1}).
* Multiclass labels: :func:`class_targets` tells integer class ids from one-hot/soft labels,
  :func:`class_ids` checks ids against ``K`` classes and ``ignore_index``,
  :func:`check_soft_labels` checks one-hot/soft labels, :func:`take_last` gathers per id.
* The class axis: :func:`class_axis_last` moves it last; :func:`per_class` validates a
  per-class vector (``class_weights``, ``alpha``) and :func:`along_last` broadcasts it.

Value checks run on concrete arrays only (skipped under ``jit``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lossopt._validation import (
    as_float_array,
    check_array_values,
    check_nonnegative,
    check_same_shape,
    describe,
)
from lossopt.losses._reduce import check_reduction

__all__ = [
    "along_last",
    "binary_inputs",
    "check_ignore_index",
    "check_soft_labels",
    "class_axis_last",
    "class_ids",
    "class_targets",
    "paired_inputs",
    "per_class",
    "signed_labels",
    "take_last",
]


def paired_inputs(
    first: Any, second: Any, first_name: str, second_name: str, reduction: str
) -> tuple[jax.Array, jax.Array]:
    """Validate ``reduction`` and two float arrays of one shape; the second takes the first's
    float dtype (ints promoted). Raises ValueError (naming both) for a shape mismatch."""
    check_reduction(reduction)
    x = as_float_array(first, first_name)
    y = as_float_array(second, second_name, like=x)
    check_same_shape(x, y, first_name, second_name)
    return x, y


def _check_label_values(labels: jax.Array, name: str, ok, expected: str) -> None:
    """Raise ValueError if concrete ``labels`` hold a value outside ``expected`` (skip tracers)."""
    check_array_values(labels, name, ok, expected)


def binary_inputs(preds: Any, labels: Any, pred_name: str, reduction: str):
    x, y = paired_inputs(preds, labels, pred_name, "labels", reduction)
    _check_label_values(y, "labels", lambda v: (v >= 0) & (v <= 1), "values in [0, 1]")
    return x, y


def class_axis_last(x: jax.Array, axis: Any, name: str) -> jax.Array:
    """Move the class axis of ``x`` to the end, validating ``axis``."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"`axis` must be an int; got {describe(axis)}")
    if x.ndim == 0 or not -x.ndim <= axis < x.ndim:
        raise ValueError(
            f"`axis` must index a dimension of `{name}` (ndim {x.ndim}); got axis={axis}"
        )
    return jnp.moveaxis(x, int(axis), -1)


def along_last(v: jax.Array, ndim: int) -> jax.Array:
    """Reshape a per-class vector ``(K,)`` to ``(1, ..., 1, K)`` (explicit, no rank promotion)."""
    return v.reshape((1,) * (ndim - 1) + v.shape)


def per_class(value: Any, name: str, k: int, dtype: Any, *, allow_scalar: bool) -> jax.Array:
    """Validate a per-class vector (``class_weights``, ``alpha``) of length ``k``."""
    v = as_float_array(value, name).astype(dtype)
    if not ((v.ndim == 1 and v.shape[0] == k) or (allow_scalar and v.ndim == 0)):
        expected = f"a scalar or shape ({k},)" if allow_scalar else f"shape ({k},)"
        raise ValueError(
            f"`{name}` must have {expected} (one value per class); got {describe(value)}"
        )
    check_nonnegative(v, name)
    return v


def class_targets(x: jax.Array, labels: Any, axis: int, name: str):
    """Interpret ``labels`` against logits ``x`` whose class axis was moved last.

    Returns ``("ids", int_array)`` for integer class ids of the logits' shape without the class
    axis, or ``("soft", float_array)`` (class axis moved last) for float/bool labels of the
    logits' shape.
    """
    lab = jnp.asarray(labels)
    logits_shape = tuple(np.moveaxis(np.empty(x.shape, dtype=np.int8), -1, axis).shape)
    id_shape = tuple(x.shape[:-1])
    if jnp.issubdtype(lab.dtype, jnp.integer):
        if tuple(lab.shape) == id_shape:
            return "ids", lab
        if tuple(lab.shape) == logits_shape:
            raise ValueError(
                f"integer `labels` must be class ids of shape {id_shape} ({name}.shape without "
                f"the class axis); got an integer array of {name}'s shape {logits_shape}. For "
                "one-hot labels pass a float array (labels.astype(float))."
            )
        raise ValueError(
            f"`labels` must be integer class ids of shape {id_shape} or float one-hot/soft "
            f"labels of shape {logits_shape}; got {describe(labels)}"
        )
    if jnp.issubdtype(lab.dtype, jnp.floating) or jnp.issubdtype(lab.dtype, jnp.bool_):
        if tuple(lab.shape) == logits_shape:
            return "soft", jnp.moveaxis(lab.astype(x.dtype), axis, -1)
        if tuple(lab.shape) == id_shape:
            raise TypeError(
                f"`labels` of shape {id_shape} must hold integer class ids; got {describe(labels)}."
                " Cast with .astype(int), or pass one-hot/soft labels of shape "
                f"{logits_shape}."
            )
        raise ValueError(
            f"`labels` must be integer class ids of shape {id_shape} or float one-hot/soft "
            f"labels of shape {logits_shape}; got {describe(labels)}"
        )
    raise TypeError(f"`labels` must be integer class ids or a float array; got {describe(labels)}")


def check_ignore_index(ignore_index: Any) -> None:
    if ignore_index is not None and (
        isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer))
    ):
        raise TypeError(f"`ignore_index` must be None or an int; got {describe(ignore_index)}")


def class_ids(labels: jax.Array, k: int, ignore_index: Any):
    """Return ``(safe_ids, keep, invalid)`` for class ids against ``k`` classes.

    ``keep`` is False where ``labels == ignore_index`` (None when nothing is ignored);
    ``invalid`` marks ids outside ``[0, k)`` that are not ignored (concrete ones raise here).
    """
    in_range = (labels >= 0) & (labels < k)
    ignored = None if ignore_index is None else labels == ignore_index
    if ignore_index is None:
        _check_label_values(
            labels, "labels", lambda v: (v >= 0) & (v < k), f"class ids in [0, {k})"
        )
    else:
        _check_label_values(
            labels,
            "labels",
            lambda v: ((v >= 0) & (v < k)) | (v == ignore_index),
            f"class ids in [0, {k}) or ignore_index={ignore_index}",
        )
    invalid = ~in_range if ignored is None else ~in_range & ~ignored
    keep = None if ignored is None else ~ignored
    safe = jnp.where(in_range, labels, 0)
    return safe, keep, invalid


def take_last(x: jax.Array, ids: jax.Array) -> jax.Array:
    """``x[..., ids]`` per example: the entry of each example's class id on the last axis."""
    return jnp.take_along_axis(x, ids[..., None], axis=-1)[..., 0]


def check_soft_labels(labels: jax.Array) -> None:
    """One-hot/soft labels are per-class probabilities: concrete entries must lie in [0, 1]."""
    check_array_values(
        labels, "labels", lambda v: (v >= 0) & (v <= 1), "one-hot/soft label values in [0, 1]"
    )


def signed_labels(scores: Any, labels: Any, reduction: str):
    s, y = paired_inputs(scores, labels, "scores", "labels", reduction)
    _check_label_values(
        y, "labels", lambda v: (v == 1) | (v == -1), "labels in {-1, +1} (map 0/1 labels by 2y - 1)"
    )
    return s, y
