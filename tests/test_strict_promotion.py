"""The library is clean under JAX's "strict" dtype promotion (no implicit int32/int64 or
float32/float64 mixing): every registered loss (value and gradient, float32 and float64) and
every solver in the loop, with the loop's optional features on.

Strict promotion turns a silent upcast -- a float32 GPU run promoted to float64 by one float64
constant, an int64 iteration counter mixed with int32 -- into an error at trace time. The rest
of the suite runs with standard promotion because it compares against optax, whose own code
(optax.lbfgs, ctc_loss, ntxent) mixes int32 counts with Python floats; lossopt's ``Optax``
solver runs optax's update under standard promotion for that reason, so it is checked here too.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import RECIPES

import lossopt
from lossopt import losses
from lossopt.solvers import (
    LBFGS,
    GaussNewton,
    GradientDescent,
    LevenbergMarquardt,
    Newton,
    Optax,
    ProximalGradient,
    Subgradient,
)

DTYPES = (jnp.float32, jnp.float64)


def _cast(tree, dtype):
    return jax.tree.map(
        lambda v: v if isinstance(v, str) else (
            jnp.asarray(v, dtype) if np.asarray(v).dtype.kind == "f" else jnp.asarray(v)),
        tree)


def test_every_loss_value_and_gradient_under_strict_promotion():
    # float32 inputs under x64 (the suite's mode) meet both kinds of mixing at once: float64
    # constants against float32 data, and int64 default indices against int32 ones. (Eager:
    # one pass over ~70 losses without compiling each; float64 inputs add nothing here.)
    dtype = jnp.float32
    failures = {}
    for entry in losses.catalog():
        recipe = RECIPES[entry.name]
        first, rest, kwargs = recipe.draw(np.random.default_rng(0), None)
        first, rest, kwargs = _cast(first, dtype), _cast(rest, dtype), _cast(kwargs, dtype)
        fn = losses.get(entry.name, **recipe.hyper)
        extra = {"reduction": "sum"} if recipe.reduce else {}

        def total(x, fn=fn, rest=rest, kwargs=kwargs, extra=extra):
            return jnp.sum(fn(x, *rest, **kwargs, **extra))

        try:
            with jax.numpy_dtype_promotion("strict"):
                value, grad = jax.value_and_grad(total)(first)  # eager: no compile per loss
        except Exception as err:  # collected, so one run names every loss that fails
            failures[entry.name] = f"{type(err).__name__}: {str(err)[:160]}"
            continue
        # The loss keeps the inputs' precision: no silent promotion to float64.
        assert jnp.asarray(value).dtype == dtype, entry.name
        assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(grad)), entry.name
    assert not failures, failures


def _objective(w, X, y):
    return lossopt.losses.mse(X @ w, y)


def _residuals(w, X, y):
    return X @ w - y


SOLVERS = {
    "gd": (GradientDescent(0.1), {}),
    "gd_momentum_minibatch": (GradientDescent(0.1, momentum=0.9),
                              {"batch_size": 5, "max_epochs": 2}),
    "gd_armijo_metrics": (GradientDescent(1.0, line_search="armijo"),
                          {"metrics": {"m": _objective}, "record_every": 2}),
    "newton": (Newton(), {}),
    "newton_cg": (Newton(linear_solver="cg"), {}),
    "lbfgs": (LBFGS(), {}),
    "lbfgs_armijo": (LBFGS(line_search="armijo"), {}),
    "subgradient": (Subgradient(step_size=0.1), {}),
    "optax_adam": (Optax(optax.adam(0.1)), {}),
    "optax_lbfgs": (Optax(optax.lbfgs()), {}),
    "proximal": (ProximalGradient(1.0, prox=lossopt.prox.l1(0.1)), {}),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_every_solver_runs_under_strict_promotion(dtype):
    X = jax.random.normal(jax.random.key(0), (20, 3), dtype)
    y = X @ jnp.array([1.0, -2.0, 0.5], dtype)
    with jax.numpy_dtype_promotion("strict"):
        for name, (solver, options) in SOLVERS.items():
            if "metrics" in options:
                options = {**options, "metric_args": (X, y)}
            res = lossopt.minimize(_objective, jnp.zeros(3, dtype), solver, args=(X, y),
                                   max_iters=15, compile="fast", **options)
            assert res.params.dtype == dtype and res.value.dtype == dtype, name
        for solver in (LevenbergMarquardt(), GaussNewton()):
            res = lossopt.minimize_least_squares(_residuals, jnp.zeros(3, dtype), solver,
                                                 args=(X, y), max_iters=15, compile="fast")
            assert res.params.dtype == dtype
        swept = lossopt.sweep(_objective, jnp.zeros(3, dtype), GradientDescent,
                              {"learning_rate": jnp.array([0.05, 0.1], dtype)}, args=(X, y),
                              max_iters=15, compile="fast")
        assert swept.params.dtype == dtype

        def ridge_solution_sum(lam):
            fun = lambda w, X, y, lam: _objective(w, X, y) + lam * jnp.sum(w ** 2)
            return lossopt.minimize(fun, jnp.zeros(3, dtype), Newton(), args=(X, y, lam),
                                    compile="fast").params.sum()

        derivative = jax.grad(ridge_solution_sum)(jnp.asarray(0.1, dtype))
        assert derivative.dtype == dtype
