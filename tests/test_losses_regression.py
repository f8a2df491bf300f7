"""Regression losses: float64 references, optax parity, derivatives, edge cases, bad inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import central_difference

from lossopt import losses

# Independent float64 references, written from the textbook formulas (r = predictions - targets).
REFERENCES = {
    "mse": (lambda p, t: (p - t) ** 2, {}),
    "mae": (lambda p, t: np.abs(p - t), {}),
    "huber": (
        lambda p, t, delta=0.7: np.where(
            np.abs(p - t) <= delta, 0.5 * (p - t) ** 2, delta * (np.abs(p - t) - 0.5 * delta)
        ),
        {"delta": 0.7},
    ),
    "smooth_l1": (
        lambda p, t, beta=0.7: np.where(
            np.abs(p - t) < beta, 0.5 * (p - t) ** 2 / beta, np.abs(p - t) - 0.5 * beta
        ),
        {"beta": 0.7},
    ),
    "quantile": (
        lambda p, t, tau=0.8: np.maximum(tau * (t - p), (tau - 1) * (t - p)),
        {"tau": 0.8},
    ),
    "log_cosh": (lambda p, t: np.log(np.cosh(p - t)), {}),
    "epsilon_insensitive": (
        lambda p, t, epsilon=0.3: np.maximum(0.0, np.abs(p - t) - epsilon),
        {"epsilon": 0.3},
    ),
    "msle": (lambda p, t: (np.log(1 + p) - np.log(1 + t)) ** 2, {}),
    "mape": (lambda p, t: 100 * np.abs(p - t) / np.maximum(np.abs(t), 1e-7), {}),
}
NAMES = sorted(REFERENCES)


def _data(name: str, seed: int = 0, shape=(7, 3)):
    rng = np.random.default_rng(seed)
    if name == "msle":  # domain: predictions, targets > -1
        return rng.uniform(0.0, 3.0, shape), rng.uniform(0.0, 3.0, shape)
    return rng.normal(size=shape) * 2.0, rng.normal(size=shape) * 2.0


def test_every_core_regression_loss_has_a_reference():
    from lossopt.losses import _regression

    assert set(_regression.__all__) == set(REFERENCES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_float64_reference(name, reduction):
    ref, hyper = REFERENCES[name]
    p, t = _data(name)
    expected = ref(p, t, **hyper)
    expected = {"mean": expected.mean(), "sum": expected.sum(), "none": expected}[reduction]
    got = losses.get(name, **hyper)(jnp.asarray(p), jnp.asarray(t), reduction=reduction)
    # Same float64 formula evaluated two ways: agreement to a few ulps of the magnitudes.
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12, atol=1e-12)


def test_seed_document_mse_example():
    y_true = jnp.array([3.0, -0.5, 2.0, 7.0])
    y_pred = jnp.array([2.5, 0.0, 2.0, 8.0])
    # (0.25 + 0.25 + 0 + 1) / 4, by hand.
    assert float(losses.mse(y_pred, y_true)) == pytest.approx(0.375, abs=1e-15)


@pytest.mark.parametrize(
    ("name", "optax_fn", "hyper"),
    [
        ("mse", lambda p, t: optax.squared_error(p, t), {}),
        ("huber", lambda p, t: optax.huber_loss(p, t, delta=0.7), {"delta": 0.7}),
        ("log_cosh", lambda p, t: optax.log_cosh(p, t), {}),
    ],
)
def test_optax_parity(name, optax_fn, hyper):
    p, t = map(jnp.asarray, _data(name, seed=3))
    got = losses.get(name, **hyper)(p, t, reduction="none")
    # Both float64; different but equivalent formulas (optax's log_cosh is the logaddexp form).
    np.testing.assert_allclose(got, optax_fn(p, t), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_and_hessian_match_finite_differences(name):
    _, hyper = REFERENCES[name]
    p, t = _data(name, seed=1, shape=(5,))
    loss = losses.get(name, **hyper)
    value_fn = jax.jit(loss)
    f = lambda x: float(value_fn(jnp.asarray(x), jnp.asarray(t)))
    grad_fn = jax.jit(jax.grad(loss))  # jitted: eagerly every primitive compiles on its own
    g = grad_fn(jnp.asarray(p), jnp.asarray(t))
    # Random points are far (> 1e-3) from every kink, so the central difference with h = 1e-6
    # has truncation error ~h^2 * f''' and round-off ~eps * f / h ~ 1e-10.
    np.testing.assert_allclose(g, central_difference(f, p, step=1e-6), rtol=1e-6, atol=1e-8)
    hess = jax.jit(jax.hessian(loss))(jnp.asarray(p), jnp.asarray(t))
    # Rows d g_i / d x: central differences of the gradient, h = 1e-6 as above.
    fd_hess = central_difference(lambda x: grad_fn(jnp.asarray(x), jnp.asarray(t)), p,
                                 step=1e-6)
    np.testing.assert_allclose(hess, fd_hess, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    ("name", "hyper", "point", "expected_grad"),
    [
        # Minimum-norm subgradients at the kinks: 0 lies in each subdifferential.
        ("mae", {}, 0.0, 0.0),
        ("quantile", {"tau": 0.9}, 0.0, 0.0),
        ("quantile", {"tau": 0.1}, 0.0, 0.0),
        ("epsilon_insensitive", {"epsilon": 0.5}, 0.5, 0.0),
        ("epsilon_insensitive", {"epsilon": 0.5}, -0.5, 0.0),
        ("epsilon_insensitive", {"epsilon": 0.5}, 0.0, 0.0),
        ("mape", {}, 0.0, 0.0),
        # Smooth at 0: the true derivative.
        ("huber", {}, 0.0, 0.0),
        ("log_cosh", {}, 0.0, 0.0),
        # C1 kinks: the unique derivative clip(r, -delta, delta).
        ("huber", {"delta": 0.5}, 0.5, 0.5),
        ("smooth_l1", {"beta": 0.5}, -0.5, -1.0),
    ],
)
def test_subgradient_at_kinks(name, hyper, point, expected_grad):
    loss = losses.get(name, **hyper)
    target = jnp.ones(1)  # nonzero target so mape's scale is 1
    g = jax.jit(jax.grad(lambda p: loss(p, target)))(target + point)
    assert float(g[0]) == expected_grad


def test_log_cosh_hessian_is_exact_at_zero_and_large_residuals():
    r = jnp.array([0.0, 0.3, -2.0, 30.0])
    h = jax.jit(jax.vmap(jax.hessian(
        lambda x: losses.log_cosh(x, jnp.zeros(()), reduction="sum"))))(r)
    # d2/dr2 log cosh r = 1 - tanh(r)^2 (closed form).
    np.testing.assert_allclose(h, 1.0 - np.tanh(np.asarray(r)) ** 2, rtol=1e-12, atol=1e-300)


EXTREME_RESIDUALS = [0.0, 1e4, -1e4, 0.7, -0.3, 1.0, 0.5]  # 0, huge, and every kink used


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("name", NAMES)
def test_finite_value_gradient_hessian_at_extremes(name, dtype):
    _, hyper = REFERENCES[name]
    loss = losses.get(name, **hyper)
    t = jnp.asarray([1.0, 2.0], dtype=dtype)
    residuals = [r for r in EXTREME_RESIDUALS if not (name == "msle" and r < -1)]  # msle domain
    # Built in numpy (the same IEEE sums): eager jnp ops would compile one program each.
    points = jnp.asarray(np.asarray([1.0, 2.0], dtype)[None, :]
                         + np.asarray(residuals, dtype)[:, None])

    def value_grad_hess(p):
        return loss(p, t), jax.grad(loss)(p, t), jax.hessian(loss)(p, t)

    value, g, h = jax.jit(jax.vmap(value_grad_hess))(points)
    assert value.dtype == dtype and g.dtype == dtype and h.dtype == dtype
    for i, r in enumerate(residuals):
        assert np.isfinite(value[i]), f"value at r={r}"
        assert np.all(np.isfinite(g[i])), f"gradient at r={r}"
        assert np.all(np.isfinite(h[i])), f"Hessian at r={r}"


def test_msle_outside_domain_is_nan():
    # Documented: no silent clipping; a solver then reports NONFINITE.
    assert np.isnan(float(losses.msle(jnp.array([-2.0]), jnp.array([1.0]))))


def test_log_cosh_at_1e4_in_float32_is_accurate():
    p = jnp.asarray([1e4], dtype=jnp.float32)
    value = losses.log_cosh(p, jnp.zeros(1, jnp.float32))
    # log cosh x = x - log 2 for large x; float32 spacing at 1e4 is ~1e-3.
    assert float(value) == pytest.approx(1e4 - np.log(2.0), abs=2e-3)


def test_weights_mean_is_weighted_average():
    p, t = _data("mse", seed=4, shape=(6,))
    w = np.array([0.0, 1.0, 2.0, 0.5, 3.0, 1.0])
    got = losses.mse(jnp.asarray(p), jnp.asarray(t), weights=jnp.asarray(w))
    expected = np.sum(w * (p - t) ** 2) / np.sum(w)
    np.testing.assert_allclose(got, expected, rtol=1e-13)
    got_sum = losses.mse(jnp.asarray(p), jnp.asarray(t), weights=jnp.asarray(w), reduction="sum")
    np.testing.assert_allclose(got_sum, np.sum(w * (p - t) ** 2), rtol=1e-13)


def test_lower_rank_weights_align_with_leading_axis():
    p, t = _data("mse", seed=5, shape=(4, 3))
    w = np.array([1.0, 0.0, 2.0, 1.0])
    got = losses.mae(jnp.asarray(p), jnp.asarray(t), weights=jnp.asarray(w), reduction="none")
    np.testing.assert_allclose(got, w[:, None] * np.abs(p - t), rtol=1e-15)


def test_all_zero_weights_give_zero_value_and_finite_gradient():
    p, t = map(jnp.asarray, _data("huber", seed=6, shape=(5,)))
    w = jnp.zeros(5)
    assert float(losses.huber(p, t, weights=w)) == 0.0
    g = jax.jit(jax.grad(lambda x: losses.huber(x, t, weights=w)))(p)
    assert np.all(np.asarray(g) == 0.0)


def test_integer_targets_are_promoted_to_prediction_dtype():
    p = jnp.asarray([0.5, 1.5], dtype=jnp.float32)
    value = losses.mse(p, jnp.asarray([0, 2]))
    assert value.dtype == jnp.float32
    assert float(value) == pytest.approx(0.25)


@pytest.mark.parametrize("name", NAMES)
def test_jit_and_eager_agree(name):
    _, hyper = REFERENCES[name]
    p, t = map(jnp.asarray, _data(name, seed=7))
    loss = losses.get(name, **hyper)
    np.testing.assert_allclose(jax.jit(loss)(p, t), loss(p, t), rtol=1e-14)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: losses.mse(jnp.ones(3), jnp.ones(4)), ValueError, r"predictions.*targets.*\(3,\).*\(4,\)"),
        (lambda: losses.mse(jnp.ones((3, 1)), jnp.ones(3)), ValueError, "same shape"),
        (lambda: losses.huber(jnp.ones(3), jnp.ones(3), delta=0.0), ValueError, "delta.*> 0.*0.0"),
        (lambda: losses.huber(jnp.ones(3), jnp.ones(3), delta=-1.0), ValueError, "delta"),
        (lambda: losses.smooth_l1(jnp.ones(3), jnp.ones(3), beta=0), ValueError, "beta"),
        (lambda: losses.quantile(jnp.ones(3), jnp.ones(3), tau=1.0), ValueError, r"tau.*\(0.0, 1.0\).*1.0"),
        (lambda: losses.quantile(jnp.ones(3), jnp.ones(3), tau=0.0), ValueError, "tau"),
        (lambda: losses.epsilon_insensitive(jnp.ones(3), jnp.ones(3), epsilon=-0.1), ValueError, "epsilon"),
        (lambda: losses.mape(jnp.ones(3), jnp.ones(3), eps=0.0), ValueError, "eps"),
        (lambda: losses.mse(jnp.ones(3), jnp.ones(3), reduction="avg"), ValueError, r"reduction.*'mean'.*'avg'"),
        (lambda: losses.mse(np.array(["a", "b"]), jnp.ones(2)), TypeError, "predictions"),
        (lambda: losses.mse(jnp.ones(3), jnp.ones(3), weights=jnp.ones(4)), ValueError, "weights"),
        (lambda: losses.mse(jnp.ones(3), jnp.ones(3), weights=jnp.ones((3, 2))), ValueError, "weights"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_traced_hyperparameters_are_accepted_under_vmap():
    p, t = map(jnp.asarray, _data("huber", seed=8, shape=(5,)))
    deltas = jnp.array([0.5, 1.0, 2.0])
    got = jax.vmap(lambda d: losses.huber(p, t, delta=d))(deltas)
    for i, d in enumerate([0.5, 1.0, 2.0]):
        np.testing.assert_allclose(got[i], losses.huber(p, t, delta=d), rtol=1e-14)
