"""The one helper for per-entry class masks: the ``where=`` argument of the class-axis losses.

``where`` is a boolean array that says which entries of the class axis take part in the loss
(True) and which do not (False): padding in a ranking list, classes that are impossible for an
example, the ``-inf`` logits of a masked softmax. Semantics, shared by every loss that takes it:

* A masked entry contributes nothing: the loss equals the same loss computed by hand on the
  kept classes alone (the softmax, the sparsemax projection, label smoothing's ``1/K`` and the
  runner-up of a hinge run over the kept classes only). Its logit and its label are never
  read: ``-inf``, NaN or any other value there gives the same finite value, and the gradient
  (and Hessian) with respect to a masked entry is exactly 0.
* An example whose entries are all masked has loss 0 and is left out of ``"mean"`` (like an
  ``ignore_index`` entry: it adds 0 to the numerator and 0 to the denominator); ``"none"``
  returns 0 for it. ``optax`` also gives 0 for such rows (``softmax_cross_entropy``,
  ``ranking_softmax_loss``, whose mean skips them too).
* ``where`` has the input's shape (one flag per entry), or the input's shape without the class
  axis (one flag per example, broadcast over the classes: optax's rule too). Anything else, or
  a non-boolean dtype, raises.
* Integer class ids that point at a masked class of a kept example are an error: concrete
  labels and masks raise ValueError; under ``jit`` such an example gets a NaN loss (visible,
  never silently scored). optax instead reads the masked raw logit there.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lossopt._validation import check_probabilities, describe, when_concrete
from lossopt.losses._reduce import reduce_loss

__all__ = ["ClassMask", "class_mask", "reduce_masked"]


@dataclasses.dataclass(frozen=True)
class ClassMask:
    """A validated ``where`` mask with the class axis last.

    Attributes:
        keep: boolean ``(..., K)``: the entries that take part.
        rows: boolean ``(...)``: the examples with at least one kept entry.
    """

    keep: jax.Array
    rows: jax.Array

    def logits(self, x: jax.Array) -> jax.Array:
        """Logits with masked entries at ``-inf`` (softmax weight 0); all-masked rows all 0.

        A select, not arithmetic: whatever a masked entry held (``-inf``, NaN), its value is
        never read and its gradient is 0. An all-masked row becomes a finite dummy row whose
        loss :meth:`values` sets to 0.
        """
        dummy = jnp.where(self.rows[..., None], -jnp.inf, 0.0).astype(x.dtype)
        return jnp.where(self.keep, x, dummy)

    def fill(self, x: jax.Array, value: Any) -> jax.Array:
        """``x`` with every masked entry replaced by ``value`` (a select: gradient 0 there)."""
        return jnp.where(self.keep, x, jnp.asarray(value, x.dtype))

    def values(self, per_example: jax.Array) -> jax.Array:
        """Per-example losses with the all-masked examples set to exactly 0."""
        return jnp.where(self.rows, per_example, jnp.zeros_like(per_example))

    def count(self, dtype: Any) -> jax.Array:
        """Number of kept classes per example ``(..., 1)``, at least 1 (dummy rows)."""
        return jnp.maximum(jnp.sum(self.keep, axis=-1, keepdims=True), 1).astype(dtype)

    def reduce_mask(self, other: jax.Array | None = None) -> jax.Array:
        """The mask for :func:`~lossopt.losses._reduce.reduce_loss` (``rows``, and ``other``)."""
        return self.rows if other is None else self.rows & other

    def ids_on_masked(self, ids: jax.Array, labels: Any, among: Any = None) -> jax.Array:
        """True where a kept example's class id points at a masked class.

        ``ids`` are in-range class ids; ``among`` (optional boolean) limits the check to the
        examples it marks (``ignore_index`` entries are not read).

        Raises:
            ValueError: when labels and mask are concrete and such an id exists.
        """
        hit = jnp.take_along_axis(self.keep, ids[..., None], axis=-1)[..., 0]
        bad = self.rows & ~hit if among is None else self.rows & ~hit & among
        when_concrete(_check_no_masked_target, bad, labels)
        return bad

    def check_distributions(self, x: jax.Array, name: str, axis: int) -> None:
        """Concrete ``x`` (class axis last) must hold probabilities on the kept entries that
        sum to 1 over them, for every kept example (masked entries are not read)."""
        def check(v: np.ndarray, keep: np.ndarray, rows: np.ndarray) -> None:
            dummy = np.eye(v.shape[-1])[0]  # an all-masked example is not read: a valid dummy
            shown = np.where(rows[..., None], np.where(keep, v, 0.0), dummy)
            check_probabilities(np.moveaxis(shown, -1, axis), name, sum_axis=axis)

        when_concrete(check, x, self.keep, self.rows)


def _check_no_masked_target(concrete: np.ndarray, labels: np.ndarray) -> None:
    if concrete.any():
        first = tuple(int(i) for i in np.argwhere(concrete)[0])
        shown = labels[first].item()
        raise ValueError(
            f"`labels` must not point at a class that `where` masks out; got "
            f"labels[{', '.join(map(str, first))}] = {shown!r} with where False there "
            f"({int(concrete.sum())} of {concrete.size} examples). Keep the target class in "
            "`where`, or mask the whole example."
        )


def class_mask(where: Any, shape: tuple[int, ...], axis: int = -1) -> ClassMask | None:
    """Validate ``where`` against an input of ``shape`` whose class axis is ``axis``.

    Args:
        where: None, or a boolean array of ``shape`` (one flag per entry) or of ``shape``
            without the class axis (one flag per example).
        shape: the input's shape, in the caller's layout (class axis at ``axis``).
        axis: the class axis of ``shape`` and of a full-shape ``where``.

    Returns:
        None for ``where=None``; else a :class:`ClassMask` with the class axis moved last.

    Raises:
        TypeError: ``where`` not boolean.
        ValueError: ``where`` of another shape (expected and received shapes named).
    """
    if where is None:
        return None
    try:
        m = jnp.asarray(where)
    except TypeError as err:
        raise TypeError(f"`where` must be a boolean array; got {describe(where)}") from err
    if m.dtype != jnp.bool_:
        raise TypeError(
            f"`where` must be a boolean array (True = the entry takes part); got "
            f"{describe(where)}. Use where=mask.astype(bool)."
        )
    shape = tuple(shape)
    axis = axis % len(shape)
    row_shape = shape[:axis] + shape[axis + 1 :]
    if tuple(m.shape) == shape:
        keep = jnp.moveaxis(m, axis, -1)
    elif tuple(m.shape) == row_shape:
        keep = jnp.broadcast_to(m[..., None], (*row_shape, shape[axis]))
    else:
        raise ValueError(
            f"`where` must have the input's shape {shape} (one flag per entry) or {row_shape} "
            f"(one flag per example, without the class axis {axis}); got {describe(where)}"
        )
    return ClassMask(keep=keep, rows=jnp.any(keep, axis=-1))


def reduce_masked(
    values: jax.Array, weights: Any, reduction: str, mask: ClassMask | None
) -> jax.Array:
    """:func:`~lossopt.losses._reduce.reduce_loss` that sets all-masked examples to 0 and
    leaves them out of ``"mean"`` (plain ``reduce_loss`` without a mask)."""
    if mask is None:
        return reduce_loss(values, weights, reduction)
    return reduce_loss(mask.values(values), weights, reduction, mask=mask.rows)
