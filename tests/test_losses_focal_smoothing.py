"""``label_smoothing`` of the logit-input focal losses, against a float64 numpy reference of
Keras' semantics (``binary_focal_crossentropy`` / ``categorical_focal_crossentropy`` with
``from_logits=True``): smooth the labels first, then every term uses the smoothed labels."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lossopt import losses

RNG = np.random.default_rng(18)
X_BIN = RNG.normal(scale=3.0, size=(5, 4))
Y_BIN = RNG.integers(0, 2, size=(5, 4)).astype(float)
X_CAT = RNG.normal(scale=2.0, size=(6, 4))
IDS = RNG.integers(0, 4, size=6)


def _np_sigmoid_focal(x, y, gamma, alpha, ls):
    y = (1 - ls) * y + ls / 2
    p = 1 / (1 + np.exp(-x))
    ce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    p_t = y * p + (1 - y) * (1 - p)
    out = (1 - p_t) ** gamma * ce
    return out if alpha is None else (alpha * y + (1 - alpha) * (1 - y)) * out


def _np_softmax_focal(x, t, gamma, alpha, ls, keep=None):
    keep = np.ones_like(x, bool) if keep is None else keep
    z = np.where(keep, x, -np.inf)
    log_p = z - np.log(np.sum(np.exp(z), -1, keepdims=True))
    p = np.exp(log_p)
    log_p = np.where(keep, log_p, 0.0)  # masked classes take no part (and no 0 * -inf)
    k = keep.sum(-1, keepdims=True)
    t = np.where(keep, (1 - ls) * t + ls / k, 0.0)
    a = 1.0 if alpha is None else np.asarray(alpha)
    terms = np.where(keep, a * t * (1 - p) ** gamma * log_p, 0.0)
    return -terms.sum(-1)


# One compiled function per loss, shared by every case (hyperparameters traced).
SIGMOID = jax.jit(
    lambda x, y, g, a, ls: losses.sigmoid_focal(
        x, y, gamma=g, alpha=a, label_smoothing=ls, reduction="none"
    )
)
SOFTMAX = jax.jit(
    lambda x, y, g, ls: losses.softmax_focal(x, y, gamma=g, label_smoothing=ls, reduction="none")
)


@pytest.mark.parametrize("ls", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_sigmoid_focal_label_smoothing_matches_numpy(ls, gamma):
    got = SIGMOID(jnp.asarray(X_BIN), jnp.asarray(Y_BIN), gamma, 0.25, ls)
    # float64 on both sides, logits within +-10: the reference's direct log(p) loses ~1e-12.
    np.testing.assert_allclose(got, _np_sigmoid_focal(X_BIN, Y_BIN, gamma, 0.25, ls), rtol=1e-10)


@pytest.mark.parametrize("ls", [0.0, 0.2, 1.0])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_softmax_focal_label_smoothing_matches_numpy_for_ids_and_one_hot(ls, gamma):
    one_hot = np.eye(4)[IDS]
    want = _np_softmax_focal(X_CAT, one_hot, gamma, None, ls)
    # float64, moderate logits: agreement to rounding of the log-softmax.
    np.testing.assert_allclose(SOFTMAX(jnp.asarray(X_CAT), jnp.asarray(IDS), gamma, ls), want,
                               rtol=1e-11)
    np.testing.assert_allclose(SOFTMAX(jnp.asarray(X_CAT), jnp.asarray(one_hot), gamma, ls),
                               want, rtol=1e-11)


def test_softmax_focal_label_smoothing_with_alpha_and_a_class_mask():
    keep = np.ones((6, 4), bool)
    keep[:, 3] = False  # class 3 masked out: the uniform part is ls / 3 over the kept classes
    ids = IDS % 3
    alpha = np.array([0.5, 1.0, 2.0, 7.0])
    # Jitted, inputs closed over (the eager value checks still run): one compile, not one per
    # operation.
    got = jax.jit(lambda: losses.softmax_focal(
        jnp.asarray(X_CAT), jnp.asarray(ids), gamma=1.5, alpha=alpha, label_smoothing=0.3,
        where=jnp.asarray(keep), reduction="none"))()
    want = _np_softmax_focal(X_CAT, np.eye(4)[ids], 1.5, alpha, 0.3, keep)
    np.testing.assert_allclose(got, want, rtol=1e-11)  # float64, as above


def test_zero_smoothing_is_the_default_and_bad_values_raise():
    x, y = jnp.asarray(X_BIN), jnp.asarray(Y_BIN)

    @jax.jit  # one compiled program (inputs closed over: the eager value checks still run)
    def program():
        xc, ids = jnp.asarray(X_CAT), jnp.asarray(IDS)
        return (losses.sigmoid_focal(x, y, label_smoothing=0.0, reduction="none"),
                losses.sigmoid_focal(x, y, reduction="none"),
                losses.softmax_focal(xc, ids, label_smoothing=0.0, reduction="none"),
                losses.softmax_focal(xc, ids, reduction="none"))

    sig_zero, sig_default, soft_zero, soft_default = program()
    assert np.array_equal(sig_zero, sig_default)
    assert np.array_equal(soft_zero, soft_default)
    for fn, args in [(losses.sigmoid_focal, (x, y)),
                     (losses.softmax_focal, (jnp.asarray(X_CAT), jnp.asarray(IDS)))]:
        with pytest.raises(ValueError, match="label_smoothing"):
            fn(*args, label_smoothing=1.5)
