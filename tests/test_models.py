"""lossopt.models: shapes, initialisation, dropout only in training mode, validation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lossopt.models import MLP, Linear, make_model


def test_linear_is_affine_with_one_or_several_outputs():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)))
    params = {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array(0.25)}
    np.testing.assert_allclose(Linear().apply(params, x), np.asarray(x) @ [1.0, -2.0, 0.5] + 0.25)
    model = Linear(n_outputs=2)
    p = model.init(jax.random.key(0), 3)
    assert p["w"].shape == (3, 2) and p["b"].shape == (2,)
    assert model.apply(p, x).shape == (4, 2)


def test_mlp_dropout_is_active_in_training_mode_only():
    model = MLP(hidden=(16, 16), dropout=0.5)
    # init and apply jitted (n_features and train are Python choices: static): four small
    # programs instead of every primitive of the forward pass compiled on its own
    params = jax.jit(model.init, static_argnums=1)(jax.random.key(1), 3)
    apply = jax.jit(model.apply, static_argnames="train")
    x = jnp.ones((5, 3))
    eval_out = apply(params, x)
    np.testing.assert_array_equal(eval_out, apply(params, x, key=jax.random.key(2)))
    train_a = apply(params, x, key=jax.random.key(2), train=True)
    train_b = apply(params, x, key=jax.random.key(3), train=True)
    assert not np.allclose(train_a, eval_out) and not np.allclose(train_a, train_b)
    np.testing.assert_array_equal(train_a, apply(params, x, key=jax.random.key(2),
                                                 train=True))  # same key, same mask


def test_mlp_inverted_dropout_keeps_the_expected_activation():
    # With identity-like statistics: the mean over many masks matches the deterministic output
    # (inverted dropout rescales survivors by 1 / (1 - p)).
    model = MLP(hidden=(32,), activation="relu", dropout=0.3)
    params = jax.jit(model.init, static_argnums=1)(jax.random.key(4), 2)
    x = jnp.ones((1, 2))
    keys = jax.random.split(jax.random.key(5), 4000)
    # one compiled program for the 4000 masks and one for the deterministic output (and init)
    outs = jax.jit(jax.vmap(lambda k: model.apply(params, x, key=k, train=True)))(keys)
    # Monte Carlo standard error of the mean over 4000 masks is well below 0.05 here.
    np.testing.assert_allclose(outs.mean(), jax.jit(model.apply)(params, x)[0], atol=0.05)


def test_mlp_he_initialisation_scale():
    params = MLP(hidden=(256,), activation="relu").init(jax.random.key(6), 400)
    w = np.asarray(params["layers"][0]["w"])
    # He normal: std sqrt(2 / fan_in) = 0.0707; 102400 draws give a relative error ~0.2%.
    assert w.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: MLP(hidden=()), "hidden"),
        (lambda: MLP(activation="swish"), "activation"),
        (lambda: MLP(dropout=1.0), "dropout"),
        (lambda: Linear(n_outputs=0), "n_outputs"),
        (lambda: make_model("cnn"), "model.kind"),
        (lambda: make_model("linear", hidden=[3]), "takes no options"),
    ],
)
def test_bad_model_options(call, match):
    with pytest.raises(ValueError, match=match):
        call()
