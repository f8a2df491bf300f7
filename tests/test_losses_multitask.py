"""Multi-task objectives: fixed weights (the seed's example) and Kendall et al.'s learned
uncertainty weights."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lossopt import losses


def test_registered_under_multi_task():
    for name, probabilistic in [("combine", False), ("uncertainty_weighted", True)]:
        e = losses.info(name)
        assert (e.task, e.input_kind, e.convex, e.smooth, e.robust, e.probabilistic) == (
            "multi_task", "loss_values", True, True, True, probabilistic)
    assert losses.info("uncertainty_weighted").hyperparameters == {"kinds": None}


def test_combine_seed_document_example():
    rng = np.random.default_rng(0)
    y_reg, p_reg = rng.normal(size=8), rng.normal(size=8)
    labels = np.eye(3)[rng.integers(0, 3, size=8)]
    logits = rng.normal(size=(8, 3))
    # The seed: mean squared error + 0.5 * mean softmax cross-entropy, in numpy.
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = np.mean((y_reg - p_reg) ** 2) + 0.5 * np.mean(-(labels * log_softmax).sum(-1))

    @jax.jit  # one compiled program (inputs closed over: the eager value checks still run)
    def combined():
        task_losses = {
            "regression": losses.mse(jnp.asarray(p_reg), jnp.asarray(y_reg)),
            "classification": losses.softmax_cross_entropy(jnp.asarray(logits),
                                                           jnp.asarray(labels)),
        }
        return losses.combine(task_losses, task_weights={"regression": 1.0,
                                                         "classification": 0.5})

    got = combined()
    assert float(got) == pytest.approx(expected, rel=1e-13)  # float64, same sums


def test_combine_is_linear_and_differentiable_through_a_model():
    def task_losses(w, x, y):
        pred = x @ w
        return {"a": jnp.mean((pred - y) ** 2), "b": jnp.mean(jnp.abs(pred - y))}

    rng = np.random.default_rng(1)
    w, x, y = (jnp.asarray(rng.normal(size=s)) for s in [(3,), (10, 3), (10,)])
    weights = {"a": 0.3, "b": 2.0}
    total = lambda w: losses.combine(task_losses(w, x, y), task_weights=weights)
    values = {"a": jnp.asarray(1.5), "b": jnp.asarray(-0.25)}

    @jax.jit  # one compiled program, not one per operation
    def program(w, values):
        return (jax.grad(lambda w: task_losses(w, x, y)["a"])(w),
                jax.grad(lambda w: task_losses(w, x, y)["b"])(w),
                jax.grad(total)(w),
                losses.combine(values),
                jax.grad(lambda v: losses.combine(v, task_weights=weights))(values),
                jax.hessian(lambda v: losses.combine(v, task_weights=weights))(values))

    ga, gb, g_total, default_weights, g, h = program(w, values)
    # Linearity: the gradient of the combination is the combination of the gradients.
    np.testing.assert_allclose(g_total, 0.3 * np.asarray(ga) + 2.0 * np.asarray(gb), rtol=1e-13)
    assert float(default_weights) == 1.25  # default weights 1
    # The first argument is a pytree: gradient w.r.t. the loss values is the weights.
    assert {k: float(v) for k, v in g.items()} == weights
    assert all(float(v) == 0.0 for row in h.values() for v in row.values())


@pytest.mark.parametrize("kind", ["regression", "classification"])
def test_uncertainty_weighting_formula_and_optimal_log_variance(kind):
    values = {"depth": jnp.asarray(3.0), "seg": jnp.asarray(0.4)}
    kinds = {"depth": "regression", "seg": kind}
    s = {"depth": jnp.asarray(0.2), "seg": jnp.asarray(-0.7)}
    c_seg = 0.5 if kind == "regression" else 1.0
    # Kendall et al.: L/(2 sigma^2) + log sigma (regression), L/sigma^2 + log sigma
    # (classification), with s = log sigma^2, so log sigma = s/2.
    expected = (3.0 / (2 * math.exp(0.2)) + 0.1) + (c_seg * 0.4 / math.exp(-0.7) - 0.35)
    f = lambda s: losses.uncertainty_weighted(values, s, kinds=kinds)
    program = jax.jit(lambda s: (f(s), jax.grad(f)(s), jax.hessian(f)(s)))  # one compile
    got, _, _ = program(s)
    assert float(got) == pytest.approx(expected, rel=1e-14)
    # d/ds (c e^-s L + s/2) = 0 at s = log(2 c L): the learned weight 1/sigma^2 is 1/(2 c L).
    best = {"depth": jnp.asarray(np.log(2 * 0.5 * 3.0)),
            "seg": jnp.asarray(np.log(2 * c_seg * 0.4))}
    _, grad, hess = program(best)
    for v in grad.values():
        assert abs(float(v)) < 1e-14  # exact optimum up to round-off
    # ... and it is a minimum: d2/ds2 = c e^-s L = 1/2 > 0.
    assert float(hess["depth"]["depth"]) == pytest.approx(0.5, rel=1e-13)


def test_learning_log_variances_by_gradient_descent():
    values = {"big": jnp.asarray(10.0), "small": jnp.asarray(0.1)}
    objective = lambda s: losses.uncertainty_weighted(values, s)

    @jax.jit
    def descend(s):
        def step(s, _):
            g = jax.grad(objective)(s)
            return jax.tree_util.tree_map(lambda a, b: a - 0.5 * b, s, g), None

        return jax.lax.scan(step, s, None, length=200)[0]

    s = descend({"big": jnp.asarray(0.0), "small": jnp.asarray(0.0)})
    # Fixed point s = log L (regression: c = 1/2); step 0.5 x curvature 0.5 contracts by 3/4.
    assert float(s["big"]) == pytest.approx(math.log(10.0), abs=1e-9)
    assert float(s["small"]) == pytest.approx(math.log(0.1), abs=1e-9)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: losses.combine({}), TypeError, "losses"),
        (lambda: losses.combine([1.0, 2.0]), TypeError, "losses"),
        (lambda: losses.combine({"a": 1.0, "b": 2.0}, task_weights={"a": 1.0}), ValueError, "missing"),
        (lambda: losses.combine({"a": 1.0}, task_weights={"a": 1.0, "c": 2.0}), ValueError, "unknown"),
        (lambda: losses.combine({"a": 1.0}, task_weights={"a": -1.0}), ValueError, "weights"),
        (lambda: losses.combine({"a": jnp.ones(2), "b": jnp.ones(3)}), ValueError, "shape"),
        (lambda: losses.uncertainty_weighted({"a": 1.0}, {"b": 0.0}), ValueError, "log_vars"),
        (lambda: losses.uncertainty_weighted({"a": 1.0}, {"a": 0.0}, kinds={"a": "ranking"}),
         ValueError, "kinds"),
        (lambda: losses.uncertainty_weighted({"a": jnp.ones(2)}, {"a": jnp.zeros(3)}),
         ValueError, "log_vars"),
    ],
)
def test_invalid_inputs_raise_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
