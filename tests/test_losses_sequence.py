"""CTC: brute-force enumeration of alignments, optax parity, PyTorch edge semantics, derivatives."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import third_party

from lossopt import losses


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _collapse(path, blank):
    merged = [k for i, k in enumerate(path) if i == 0 or k != path[i - 1]]
    return [k for k in merged if k != blank]


def _brute_force(logits, frame_valid, label, blank):
    """-log p(label) and the posterior occupancy gamma[t, k], summing over every path."""
    log_probs = _log_softmax(logits)
    frames = np.flatnonzero(frame_valid)
    total, occupancy = 0.0, np.zeros_like(logits)
    for path in itertools.product(range(logits.shape[-1]), repeat=len(frames)):
        if _collapse(list(path), blank) == list(label):
            p = np.exp(sum(log_probs[t, k] for t, k in zip(frames, path, strict=True)))
            total += p
            occupancy[frames, list(path)] += p
    if total == 0:
        return np.inf, occupancy
    return -np.log(total), occupancy / total


T, K, N = 4, 3, 3
# (label, number of unpadded frames): repeats, empty labels, exact fits, impossible targets.
CASES = [
    ([1], 4),
    ([2, 1], 4),
    ([1, 1], 4),  # a repeat needs a blank between: 3 frames minimum
    ([1, 2, 1], 3),  # exactly one alignment
    ([], 4),  # only blanks
    ([2, 2], 3),
    ([1, 1, 2], 3),  # impossible: needs 4 frames
    ([2], 0),  # impossible: no frames
    ([], 0),  # empty target, empty input: p = 1
    ([1, 2], 2),
]


def _batch(blank, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(CASES), T, K)) * 1.5
    classes = [k for k in range(K) if k != blank]
    labels = np.zeros((len(CASES), N), int)
    label_pad = np.ones((len(CASES), N))
    frame_pad = np.ones((len(CASES), T))
    for b, (label, frames) in enumerate(CASES):
        mapped = [classes[k - 1] for k in label]  # class ids 1, 2 -> the non-blank classes
        labels[b, : len(mapped)] = mapped
        labels[b, len(mapped):] = rng.integers(0, K, size=N - len(mapped))  # junk in padding
        label_pad[b, : len(mapped)] = 0
        # Pad frames at alternating ends: the recursion skips padded frames wherever they are.
        valid = np.arange(T) < frames if b % 2 == 0 else np.arange(T) >= T - frames
        frame_pad[b] = ~valid
    return logits.astype(dtype), frame_pad, labels, label_pad


@functools.partial(jax.jit, static_argnames="zero_infinity")
def _ctc_value_and_grad(logits, frame_pad, labels, label_pad, zero_infinity=False):
    f = lambda x: losses.ctc(x, frame_pad, labels, label_pad, zero_infinity=zero_infinity,
                             reduction="none")
    value, vjp = jax.vjp(f, logits)
    # Per-sequence gradients: rows are independent, so one VJP with ones gives them all.
    return value, vjp(jnp.ones_like(value))[0]


def test_registered_with_properties():
    e = losses.info("ctc")
    assert (e.task, e.input_kind, e.convex, e.smooth, e.robust, e.probabilistic) == (
        "sequence", "logits", False, True, True, True)


@pytest.mark.parametrize("blank", [0, 2])
def test_matches_brute_force_enumeration_of_alignments(blank):
    logits, frame_pad, labels, label_pad = _batch(blank)
    got = losses.ctc(*map(jnp.asarray, (logits, frame_pad, labels, label_pad)), blank_id=blank,
                     reduction="none")
    classes = [k for k in range(K) if k != blank]
    for b, (label, _) in enumerate(CASES):
        expected, _ = _brute_force(logits[b], frame_pad[b] == 0, [classes[k - 1] for k in label],
                                   blank)
        if np.isinf(expected):
            assert np.isposinf(float(got[b])), (b, label)
        else:
            # Log-space forward algorithm vs explicit sum over <= 81 paths: float64 round-off.
            assert float(got[b]) == pytest.approx(expected, rel=1e-12, abs=1e-14), (b, label)


@pytest.mark.parametrize("zero_infinity", [False, True])
def test_gradient_is_softmax_minus_posterior_occupancy(zero_infinity):
    logits, frame_pad, labels, label_pad = _batch(0, seed=1)
    value, grad = _ctc_value_and_grad(*map(jnp.asarray, (logits, frame_pad, labels, label_pad)),
                                      zero_infinity=zero_infinity)
    probs = np.exp(_log_softmax(logits))
    for b, (label, _) in enumerate(CASES):
        nll, occupancy = _brute_force(logits[b], frame_pad[b] == 0, label, 0)
        if np.isinf(nll):
            # PyTorch semantics: +inf, or 0 with zero_infinity; no gradient either way.
            assert float(value[b]) == (0.0 if zero_infinity else np.inf)
            expected = np.zeros((T, K))
        else:
            # d(-log p)/d logits[t] = softmax(logits[t]) - gamma[t] on unpadded frames, 0 else.
            expected = (probs[b] - occupancy) * (frame_pad[b] == 0)[:, None]
        np.testing.assert_allclose(grad[b], expected, atol=1e-12, err_msg=str(label))  # round-off


def test_optax_parity_on_feasible_targets():
    args = tuple(map(jnp.asarray, _batch(0, seed=3)))
    ours = losses.ctc(*args, reduction="none")
    with third_party():  # optax's ctc_loss adds float32 constants to float64 log-probs
        theirs = jax.jit(optax.losses.ctc_loss)(*args)
    feasible = np.isfinite(np.asarray(ours))
    assert feasible.sum() == len(CASES) - 2
    # Same forward algorithm; optax's log(0) = -1e5 only perturbs by exp(-1e5) = 0. (On the
    # impossible rows optax returns ~1e5 instead of inf.)
    np.testing.assert_allclose(np.asarray(ours)[feasible], np.asarray(theirs)[feasible],
                               rtol=1e-12)
    assert np.all(np.asarray(theirs)[~feasible] > 1e4)


def test_never_negative_in_float32():
    # A near-certain alignment: -log p is ~0 and rounding can make it negative (optax and
    # Keras return about -8e-8); the loss is clamped at 0.
    logits = np.full((1, 3, 3), -30.0, np.float32)
    logits[0, [0, 1, 2], [1, 0, 2]] = 30.0  # path 1, blank, 2 -> label (1, 2)
    args = (jnp.asarray(logits), jnp.zeros((1, 3), jnp.float32), jnp.asarray([[1, 2]]),
            jnp.zeros((1, 2), jnp.float32))
    value = losses.ctc(*args, reduction="none")
    assert value.dtype == jnp.float32 and 0.0 <= float(value[0]) < 1e-6


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_finite_hessian_at_moderate_and_extreme_logits(dtype):
    logits = np.random.default_rng(5).normal(size=(1, 3, 3))
    extreme = np.where(np.arange(3)[None, None, :] == 1, 1e4, -1e4) * np.ones((1, 3, 3))
    labels, pads = jnp.asarray([[1, 2]]), jnp.zeros((1, 2), dtype)
    f = lambda x: losses.ctc(x, jnp.zeros((1, 3), dtype), labels, pads, reduction="sum")
    hess = jax.jit(jax.hessian(f))
    for x in (logits, extreme):
        h = np.asarray(hess(jnp.asarray(x, dtype)))
        assert h.dtype == dtype and np.all(np.isfinite(h))


def test_reductions_weights_and_jit():
    args = tuple(map(jnp.asarray, _batch(0, seed=6)))
    per_seq = losses.ctc(*args, zero_infinity=True, reduction="none")
    assert float(losses.ctc(*args, zero_infinity=True)) == pytest.approx(
        float(per_seq.mean()), rel=1e-14)
    assert float(losses.ctc(*args, zero_infinity=True, reduction="sum")) == pytest.approx(
        float(per_seq.sum()), rel=1e-14)
    # Zero weights drop the impossible rows (6, 7) even without zero_infinity: inf * 0 -> 0.
    w = jnp.asarray([1.0, 0, 0, 2, 0, 0, 0, 0, 0, 1])
    expected = (per_seq[0] + 2 * per_seq[3] + per_seq[9]) / 4
    assert float(losses.ctc(*args, weights=w)) == pytest.approx(float(expected), rel=1e-14)
    assert np.isposinf(float(losses.ctc(*args)))  # an impossible row makes the mean inf
    value, _ = _ctc_value_and_grad(*args, zero_infinity=True)
    np.testing.assert_allclose(value, per_seq, rtol=1e-14)  # jit and eager: same arithmetic


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"logits": jnp.zeros((2, 3))}, ValueError, "logits"),
        ({"logit_paddings": jnp.zeros((2, 4))}, ValueError, "logit_paddings"),
        ({"logit_paddings": jnp.full((2, 3), 0.5)}, ValueError, "logit_paddings"),
        ({"labels": jnp.ones((2, 2))}, TypeError, "labels"),
        ({"labels": jnp.asarray([[1, 0], [1, 1]])}, ValueError, "blank_id"),
        ({"labels": jnp.asarray([[1, 5], [1, 1]])}, ValueError, "labels"),
        ({"label_paddings": jnp.asarray([[1.0, 0.0], [0.0, 0.0]])}, ValueError, "right-padded"),
        ({"label_paddings": jnp.zeros((2, 3))}, ValueError, "label_paddings"),
        ({"blank_id": 4}, ValueError, "blank_id"),
        ({"blank_id": 1.0}, TypeError, "blank_id"),
        ({"reduction": "batchmean"}, ValueError, "reduction"),
    ],
)
def test_invalid_inputs_raise_naming_the_argument(change, error, match):
    kwargs = {"logits": jnp.zeros((2, 3, 4)), "logit_paddings": jnp.zeros((2, 3)),
              "labels": jnp.asarray([[1, 2], [3, 1]]), "label_paddings": jnp.zeros((2, 2))}
    kwargs.update(change)
    with pytest.raises(error, match=match):
        losses.ctc(**kwargs)
