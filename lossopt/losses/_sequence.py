"""Sequence losses: connectionist temporal classification (CTC).

Layout and padding conventions follow ``optax.losses.ctc_loss``: ``logits (B, T, K)``,
``logit_paddings (B, T)``, ``labels (B, N)`` and ``label_paddings (B, N)``, where a padding of
1 marks a padded entry (PyTorch's ``CTCLoss`` takes lengths instead:
``paddings = (arange(T) >= length)``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lossopt._validation import (
    as_float_array,
    as_integer_labels,
    check_bool,
    describe,
    when_concrete,
)
from lossopt.losses._numerics import positive_part
from lossopt.losses._reduce import check_reduction, reduce_loss
from lossopt.losses._registry import register

__all__ = ["ctc"]

# log(0) stand-in for the forward recursion: finite, so that logaddexp's derivative never
# meets inf - inf (an exact -inf makes jnp.logaddexp's JVP weigh unreachable states by
# exp(0) = 1); exp(_LOG_ZERO - x) is exactly 0 for any reachable log-probability x.
_LOG_ZERO = -1e30


def _check_paddings(value, name: str) -> None:
    def check(v: np.ndarray) -> None:
        if not np.all((v == 0) | (v == 1)):
            raise ValueError(
                f"`{name}` must hold only 0 (valid) and 1 (padded); got {describe(v)}")

    when_concrete(check, value)


def _check_labels(labels, label_valid, num_classes: int, blank_id: int) -> None:
    when_concrete(lambda lab, valid: _check_labels_now(lab, valid, num_classes, blank_id),
                  labels, label_valid)


def _check_labels_now(lab: np.ndarray, valid: np.ndarray, num_classes: int,
                      blank_id: int) -> None:
    if np.any(valid[:, 1:] & ~valid[:, :-1]):
        raise ValueError("`label_paddings` must be right-padded: rows of 0s followed by 1s")
    bad = valid & ((lab < 0) | (lab >= num_classes) | (lab == blank_id))
    if np.any(bad):
        raise ValueError(
            f"`labels` (unpadded entries) must be class ids in [0, {num_classes}) other than "
            f"blank_id={blank_id}; got {np.unique(lab[bad]).tolist()}"
        )


@functools.partial(jax.jit, static_argnums=(4, 5))
def _ctc_values(x, frame_pad, lab, label_valid, blank_id, zero_infinity):
    """Per-sequence CTC losses ``(B,)`` from validated inputs (jitted: one compile per shape)."""
    batch, frames, num_classes = x.shape
    n = lab.shape[1]
    states = 2 * n + 1
    in_range = (lab >= 0) & (lab < num_classes) & (lab != blank_id)
    bad_label = jnp.any(label_valid & ~in_range, axis=1)
    lab = jnp.where(label_valid & in_range, lab, blank_id)
    blanks = jnp.full((batch, 1), blank_id, lab.dtype)
    ext = jnp.concatenate(
        [jnp.stack([jnp.broadcast_to(blanks, lab.shape), lab], -1).reshape(batch, 2 * n), blanks],
        axis=1,
    )
    # s = 2i + 1 may skip the blank from s - 2 when label i differs from label i - 1.
    skip = jnp.zeros((batch, states), bool)
    if n >= 2:
        skip = skip.at[:, 3::2].set(lab[:, 1:] != lab[:, :-1])

    log_probs = jax.nn.log_softmax(x, axis=-1)
    log_zero = jnp.asarray(_LOG_ZERO, x.dtype)
    start = jnp.full((batch, states), log_zero).at[:, 0].set(0)  # virtual frame before t = 0

    # Emission log-probabilities of every extended-label state at every frame, gathered once
    # outside the loop: (B, T, S).
    index = jnp.broadcast_to(ext[:, None, :], (batch, frames, states))
    emissions = jnp.take_along_axis(log_probs, index, axis=2)

    def step(prev, inputs):
        emit, pad_t = inputs
        from_prev = jnp.concatenate([jnp.full((batch, 1), log_zero), prev[:, :-1]], axis=1)
        new = jnp.logaddexp(prev, from_prev)
        if n >= 2:  # static: skips exist only between two labels (none for an empty target)
            from_skip = jnp.concatenate([jnp.full((batch, 2), log_zero), prev[:, :-2]], axis=1)
            new = jnp.logaddexp(new, jnp.where(skip, from_skip, log_zero))
        new = new + emit
        return jnp.where(pad_t[:, None] != 0, prev, new), None

    alpha, _ = jax.lax.scan(step, start, (jnp.swapaxes(emissions, 0, 1), frame_pad.T))

    length = jnp.sum(label_valid, axis=1)
    last = jnp.take_along_axis(alpha, (2 * length)[:, None], axis=1)[:, 0]
    before = jnp.take_along_axis(alpha, jnp.maximum(2 * length - 1, 0)[:, None], axis=1)[:, 0]
    log_likelihood = jnp.logaddexp(last, jnp.where(length > 0, before, log_zero))
    nll = positive_part(-log_likelihood)  # never negative; a NaN stays NaN

    repeats = jnp.sum(label_valid[:, 1:] & (lab[:, 1:] == lab[:, :-1]), axis=1)
    num_frames = jnp.sum(frame_pad == 0, axis=1)
    feasible = num_frames >= length + repeats
    impossible = jnp.zeros((), x.dtype) if zero_infinity else jnp.asarray(jnp.inf, x.dtype)
    values = jnp.where(feasible, nll, impossible)
    values = jnp.where(bad_label, jnp.nan, values)
    return values


@register(
    task="sequence",
    input_kind="logits",
    convex=False,
    smooth=True,
    robust=True,
    probabilistic=True,
    reference="Graves et al. (2006), ICML; torch.nn.CTCLoss; optax.losses.ctc_loss",
)
def ctc(
    logits: ArrayLike,
    logit_paddings: ArrayLike,
    labels: ArrayLike,
    label_paddings: ArrayLike,
    *,
    blank_id: int = 0,
    zero_infinity: bool = False,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Connectionist temporal classification loss: ``-log p(labels | logits)``.

    ``p(l | x) = sum over alignments pi of prod_t softmax(logits_t)[pi_t]``, the sum running
    over every frame-level path ``pi`` (over the unpadded frames) that collapses to ``l`` when
    repeats are merged and blanks removed. Computed by the forward algorithm in log space over
    the blank-extended label ``(blank, l_1, blank, ..., l_L, blank)`` inside ``lax.scan``;
    padded frames leave the recursion unchanged (any padding pattern works for the frames;
    labels must be right-padded). Logits are normalised with ``log_softmax`` (PyTorch's
    ``CTCLoss`` expects log-probabilities: passing them here is equivalent, as
    ``log_softmax`` leaves them unchanged).

    Semantics at the edges:

    * never negative: rounding can make ``-log p`` slightly negative when ``p ~ 1`` (optax and
      Keras return about ``-8e-8`` in float32); it is clamped at 0 (gradient 0 there);
    * an empty target (label length 0, or labels of shape ``(B, 0)``) has one alignment, all
      blanks: the loss is ``-sum_t log softmax(logits_t)[blank]`` over the unpadded frames, as
      in PyTorch (0 when every frame is padded);
    * an impossible target (fewer unpadded frames than ``L + number of repeated consecutive
      labels``) gives ``+inf``, or 0 with ``zero_infinity=True``; in both cases its gradient is
      0 (PyTorch's semantics; optax returns a large finite number instead);
    * ``reduction="mean"`` is the plain mean over the batch (lossopt's convention); PyTorch's
      ``'mean'`` first divides each loss by its target length: use
      ``jnp.mean(ctc(..., reduction="none") / lengths)`` for that.

    Args:
        logits: ``(B, T, K)`` unnormalised scores (or log-probabilities).
        logit_paddings: ``(B, T)``, 1 for padded frames, 0 otherwise.
        labels: ``(B, N)`` integer class ids (unpadded entries in ``[0, K)``, not ``blank_id``).
        label_paddings: ``(B, N)``, 1 for padded label positions (right-padded).
        blank_id: the blank class, a Python int in ``[0, K)``.
        zero_infinity: return 0 (and gradient 0) for impossible targets instead of ``+inf``.
        weights: optional per-sequence weights ``(B,)``; reduction: "mean", "sum" or "none".

    Returns:
        The reduced loss, or per-sequence losses ``(B,)`` with "none".

    Raises:
        ValueError: wrong ranks or mismatched shapes, paddings other than 0/1, labels not
            right-padded, concrete unpadded labels out of range or equal to ``blank_id``,
            ``blank_id`` outside ``[0, K)``, unknown reduction.
        TypeError: float labels, non-integer ``blank_id``, ``zero_infinity`` not a bool.

    Under ``jit`` the label checks cannot run; an invalid unpadded label then gives NaN.

    Example (one frame per label and no choice left: ``p = 0.5 * 0.5``):
        >>> import jax.numpy as jnp
        >>> logits = jnp.log(jnp.array([[[0.5, 0.5], [0.5, 0.5]]]))  # blank = class 0
        >>> labels, pads = jnp.array([[1, 1]]), jnp.zeros((1, 2))
        >>> round(float(ctc(logits, jnp.zeros((1, 2)), labels, pads)), 4)  # inf: needs 3 frames
        inf
        >>> round(float(ctc(logits, jnp.zeros((1, 2)), labels[:, :1], pads[:, :1])), 4)
        0.2877

    References:
        Graves, A., Fernandez, S., Gomez, F. & Schmidhuber, J. (2006). Connectionist temporal
        classification: labelling unsegmented sequence data with recurrent neural networks.
        ICML, 369-376.
    """
    check_reduction(reduction)
    check_bool(zero_infinity, "zero_infinity")
    x = as_float_array(logits, "logits")
    if x.ndim != 3:
        raise ValueError(f"`logits` must have shape (B, T, K); got {describe(x)}")
    batch, frames, num_classes = x.shape
    if not isinstance(blank_id, (int, np.integer)) or isinstance(blank_id, bool):
        raise TypeError(f"`blank_id` must be a Python int; got {describe(blank_id)}")
    if not 0 <= blank_id < num_classes:
        raise ValueError(f"`blank_id` must be in [0, {num_classes}); got {blank_id}")
    frame_pad = as_float_array(logit_paddings, "logit_paddings")
    if tuple(frame_pad.shape) != (batch, frames):
        raise ValueError(
            f"`logit_paddings` must have shape (B, T) = {(batch, frames)}; got "
            f"{describe(frame_pad)}"
        )
    lab = as_integer_labels(labels, "labels")
    if lab.ndim != 2 or lab.shape[0] != batch:
        raise ValueError(f"`labels` must have shape (B, N) with B = {batch}; got {describe(lab)}")
    label_pad = as_float_array(label_paddings, "label_paddings")
    if tuple(label_pad.shape) != tuple(lab.shape):
        raise ValueError(
            f"`label_paddings` must have the shape of labels {tuple(lab.shape)}; got "
            f"{describe(label_pad)}"
        )
    _check_paddings(logit_paddings, "logit_paddings")
    _check_paddings(label_paddings, "label_paddings")
    label_valid = label_pad == 0
    _check_labels(lab, label_valid, num_classes, blank_id)

    values = _ctc_values(x, frame_pad, lab, label_valid, int(blank_id), bool(zero_infinity))
    return reduce_loss(values, weights, reduction)
