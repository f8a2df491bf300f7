"""Segmentation losses: float64 references, optax parity, Tversky conventions, edge cases."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lossopt import losses

SHAPE = (3, 4, 5, 2)  # (batch, H, W, classes)


def _maps(seed=0, shape=SHAPE):
    rng = np.random.default_rng(seed)
    probs = jax.nn.softmax(jnp.asarray(rng.normal(size=shape) * 2), axis=-1)
    targets = np.eye(shape[-1])[rng.integers(0, shape[-1], size=shape[:-1])]
    return np.asarray(probs), targets


# Independent float64 references: explicit per-example (and per-class) sums.


def _overlap_ref(p, t, class_axis):
    if class_axis is None:
        axes = tuple(range(1, p.ndim))
        return (p * t).sum(axes), (p * (1 - t)).sum(axes), ((1 - p) * t).sum(axes)
    p, t = np.moveaxis(p, class_axis, -1), np.moveaxis(t, class_axis, -1)
    axes = tuple(range(1, p.ndim - 1))
    return (p * t).sum(axes), (p * (1 - t)).sum(axes), ((1 - p) * t).sum(axes)


def _average(per_class, class_axis, class_weights):
    if class_axis is None:
        return per_class
    w = np.ones(per_class.shape[-1]) if class_weights is None else np.asarray(class_weights)
    return (per_class * w).sum(-1) / w.sum()


def _dice_ref(p, t, smooth, class_axis=None, class_weights=None):
    tp, fp, fn = _overlap_ref(p, t, class_axis)
    size_p, size_t = tp + fp, tp + fn  # sum(p), sum(t)
    return _average(1 - (2 * tp + smooth) / (size_p + size_t + smooth), class_axis, class_weights)


def _tversky_ref(p, t, alpha, beta, smooth, gamma=1.0, class_axis=None, class_weights=None):
    tp, fp, fn = _overlap_ref(p, t, class_axis)
    per_class = (1 - (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)) ** gamma
    return _average(per_class, class_axis, class_weights)


CASES = {
    "dice": (lambda p, t, **kw: _dice_ref(p, t, 0.5, **kw), {"smooth": 0.5}),
    "tversky": (lambda p, t, **kw: _tversky_ref(p, t, 0.7, 0.3, 1.0, **kw),
                {"alpha": 0.7, "beta": 0.3}),
    "focal_tversky": (lambda p, t, **kw: _tversky_ref(p, t, 0.3, 0.7, 1.0, 0.75, **kw),
                      {"alpha": 0.3, "beta": 0.7, "gamma": 0.75}),
}


def test_registered_with_properties():
    for name, smooth in [("dice", True), ("tversky", True), ("focal_tversky", False)]:
        e = losses.info(name)
        assert (e.task, e.input_kind, e.convex, e.smooth, e.robust) == (
            "segmentation", "probabilities", False, smooth, True)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize(
    ("class_axis", "class_weights"), [(None, None), (-1, None), (3, [0.2, 1.0])]
)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_float64_reference(name, class_axis, class_weights, reduction):
    ref, hyper = CASES[name]
    p, t = _maps()
    expected = ref(p, t, class_axis=class_axis, class_weights=class_weights)
    expected = {"mean": expected.mean(), "sum": expected.sum(), "none": expected}[reduction]
    cw = None if class_weights is None else jnp.asarray(class_weights)
    got = losses.get(name, **hyper)(jnp.asarray(p), jnp.asarray(t), class_axis=class_axis,
                                    class_weights=cw, reduction=reduction)
    # Same float64 sums in a different order: round-off only.
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_seed_document_dice_on_one_example():
    p, t = _maps(1, shape=(1, 6, 6))
    p = p / p.max()  # any values in [0, 1]
    # The seed's dice_loss flattens everything into one sum (here: one example).
    inter = np.sum(p * t)
    seed = 1 - (2 * inter + 1.0) / (t.sum() + p.sum() + 1.0)
    assert float(losses.dice(jnp.asarray(p), jnp.asarray(t))) == pytest.approx(seed, rel=1e-13)


def test_optax_parity_per_class():
    p, t = map(jnp.asarray, _maps(2))
    # optax adds smooth to the intersection as well: optax(smooth=s) is dice(smooth=2s).
    theirs = optax.losses.dice_loss(p, t, smooth=0.5, apply_softmax=False)
    ours = losses.dice(p, t, smooth=1.0, class_axis=-1, reduction="none")
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)  # same float64 quantity
    # optax's alpha weighs false positives, beta false negatives: the same as ours.
    theirs = optax.losses.dice_loss(p, t, alpha=0.8, beta=0.2, smooth=0.5, apply_softmax=False)
    ours = losses.tversky(p, t, alpha=0.8, beta=0.2, smooth=0.5, class_axis=-1,
                          reduction="none")
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_tversky_conventions():
    p, t = map(jnp.asarray, _maps(3))
    # alpha = beta = 1/2 is Dice with twice the smoothing; alpha = beta = 1 is soft Jaccard.
    np.testing.assert_allclose(losses.tversky(p, t, smooth=0.3, reduction="none"),
                               losses.dice(p, t, smooth=0.6, reduction="none"), rtol=1e-13)
    tp, fp, fn = _overlap_ref(np.asarray(p), np.asarray(t), None)
    jaccard = 1 - (tp + 1) / (tp + fp + fn + 1)
    np.testing.assert_allclose(
        losses.tversky(p, t, alpha=1.0, beta=1.0, reduction="none"), jaccard, rtol=1e-13)
    # alpha weighs false positives (Salehi et al.; Keras <= 3.15 swapped them): a prediction
    # with false positives only is penalised by alpha and not at all by beta.
    target = jnp.asarray([[1.0, 1.0, 0.0, 0.0]])
    over = jnp.asarray([[1.0, 1.0, 1.0, 1.0]])  # TP = 2, FP = 2, FN = 0
    loss = lambda a, b: float(losses.tversky(over, target, alpha=a, beta=b, smooth=1e-9))
    assert loss(0.9, 0.1) == pytest.approx(1 - 2 / (2 + 0.9 * 2), rel=1e-9)
    assert loss(0.1, 0.9) == pytest.approx(1 - 2 / (2 + 0.1 * 2), rel=1e-9)
    assert loss(0.5, 0.0) == pytest.approx(loss(0.5, 1.0), rel=1e-12)
    # gamma = 1 focal Tversky is Tversky.
    np.testing.assert_allclose(losses.focal_tversky(p, t, gamma=1.0, reduction="none"),
                               losses.tversky(p, t, reduction="none"), rtol=1e-13)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_finite_derivatives_at_empty_and_perfect_masks(name, dtype):
    _, hyper = CASES[name]
    t = jnp.asarray([[0.0, 0.0, 0.0], [1.0, 0.0, 1.0]], dtype)
    p = jnp.asarray([[0.0, 0.0, 0.0], [1.0, 0.0, 1.0]], dtype)  # empty mask; perfect mask
    f = lambda x: losses.get(name, **hyper)(x, t, reduction="sum")
    value, grad, hess = jax.jit(lambda x: (f(x), jax.grad(f)(x), jax.hessian(f)(x)))(p)
    assert float(value) == pytest.approx(0.0, abs=1e-6)  # both examples are perfect
    for leaf in (value, grad, hess):
        assert leaf.dtype == dtype and np.all(np.isfinite(np.asarray(leaf)))
    if name == "focal_tversky":
        # gamma < 1: a cusp at the perfect prediction; the minimum-norm subgradient is 0.
        assert np.all(np.asarray(grad) == 0)


def test_jittable_with_probability_inputs_and_weights():
    p, t = map(jnp.asarray, _maps(4))
    jitted = jax.jit(lambda p, t: losses.dice(p, t, class_axis=-1, reduction="none"))
    eager = losses.dice(p, t, class_axis=-1, reduction="none")
    np.testing.assert_allclose(jitted(p, t), eager, rtol=1e-14)  # same arithmetic
    w = jnp.asarray([2.0, 0.0, 1.0])
    expected = (2 * eager[0] + eager[2]) / 3
    assert float(losses.dice(p, t, class_axis=-1, weights=w)) == pytest.approx(
        float(expected), rel=1e-14)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda p, t: losses.dice(p, t[..., :1]), ValueError, "same shape"),
        (lambda p, t: losses.dice(p, t, smooth=0.0), ValueError, "smooth"),
        (lambda p, t: losses.dice(p, t, class_axis=0), ValueError, "class_axis"),
        (lambda p, t: losses.dice(p, t, class_axis=7), ValueError, "class_axis"),
        (lambda p, t: losses.dice(p, t, class_axis=1.5), TypeError, "class_axis"),
        (lambda p, t: losses.dice(p, t, class_weights=jnp.ones(2)), ValueError, "class_axis"),
        (lambda p, t: losses.dice(p, t, class_axis=-1, class_weights=jnp.ones(3)),
         ValueError, "class_weights"),
        (lambda p, t: losses.dice(p, t, class_axis=-1, class_weights=jnp.zeros(2)),
         ValueError, "class_weights"),
        (lambda p, t: losses.tversky(p, t, alpha=-0.1), ValueError, "alpha"),
        (lambda p, t: losses.tversky(p, t, beta=jnp.nan), ValueError, "beta"),
        (lambda p, t: losses.focal_tversky(p, t, gamma=0.0), ValueError, "gamma"),
        (lambda p, t: losses.dice(jnp.asarray(1.0), jnp.asarray(1.0)), ValueError, "batch"),
    ],
)
def test_invalid_inputs_raise_naming_the_argument(call, error, match):
    p, t = map(jnp.asarray, _maps(5, shape=(2, 3, 2)))
    with pytest.raises(error, match=match):
        call(p, t)
