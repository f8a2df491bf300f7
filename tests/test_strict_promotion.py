"""Strict dtype promotion: the suite-wide setting, and float32 inputs under x64.

The whole suite runs with ``jax_numpy_dtype_promotion="strict"`` (tests/conftest.py): an
implicit int32/int64 or float32/float64 mix in lossopt code, or in a test's own reference, is a
``TypePromotionError`` at trace time, in every test. Calls into optax's own functions, whose
internals mix int32 counts with Python floats and int64 indices (optax.lbfgs,
projection_simplex, ctc_loss), run under standard promotion through ``helpers.third_party()``
and nowhere else; lossopt's ``Optax`` solver scopes optax's update the same way itself.

What the rest of the suite exercises less is float32 data in an x64 process, where both kinds
of mixing meet: float64 constants and int64 default indices against float32 arrays. This file
checks that case for every registered loss (value and gradient) and every solver in the loop
(with its optional features: minibatches, line searches, metrics, least squares, a sweep, an
implicit gradient), and that the outputs keep float32 -- no silent promotion to float64.
Promotion errors are raised while tracing, and output dtypes are known from the trace, so
everything here is *traced* (``jax.eval_shape``), never compiled or run.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import RECIPES, third_party

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

DTYPE = jnp.float32  # under x64: the mixing case (see the module docstring)


def test_the_suite_runs_strict_and_third_party_scopes_standard():
    assert jax.config.jax_enable_x64
    assert jax.config.jax_numpy_dtype_promotion == "strict"
    a, b = jnp.ones(2, jnp.float32), jnp.ones(2, jnp.float64)
    with pytest.raises(jax.dtypes.TypePromotionError):
        a + b
    with third_party():
        assert (a + b).dtype == jnp.float64
    with pytest.raises(jax.dtypes.TypePromotionError):  # strict again after the block
        a + b


def _cast(tree, dtype):
    return jax.tree.map(
        lambda v: v if isinstance(v, str) else (
            jnp.asarray(v, dtype) if np.asarray(v).dtype.kind == "f" else jnp.asarray(v)),
        tree)


def test_every_loss_value_and_gradient_keep_float32():
    failures = {}
    for entry in losses.catalog():
        recipe = RECIPES[entry.name]
        first, rest, kwargs = recipe.draw(np.random.default_rng(0), None)
        first, rest, kwargs = _cast(first, DTYPE), _cast(rest, DTYPE), _cast(kwargs, DTYPE)
        fn = losses.get(entry.name, **recipe.hyper)
        extra = {"reduction": "sum"} if recipe.reduce else {}

        def total(x, fn=fn, rest=rest, kwargs=kwargs, extra=extra):
            return jnp.sum(fn(x, *rest, **kwargs, **extra))

        try:  # traced only: the dtypes come with the shapes
            value, grad = jax.eval_shape(jax.value_and_grad(total), first)
        except Exception as err:  # collected, so one run names every loss that fails
            failures[entry.name] = f"{type(err).__name__}: {str(err)[:160]}"
            continue
        dtypes = {value.dtype, *(leaf.dtype for leaf in jax.tree.leaves(grad))}
        if dtypes != {jnp.dtype(DTYPE)}:
            failures[entry.name] = f"output dtypes {sorted(map(str, dtypes))}, not float32"
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


@pytest.fixture(scope="module")
def data():
    X = jax.random.normal(jax.random.key(0), (20, 3), DTYPE)
    return X, X @ jnp.array([1.0, -2.0, 0.5], DTYPE)


def _float_dtypes(result):
    return {leaf.dtype for leaf in jax.tree.leaves(result)
            if jnp.issubdtype(leaf.dtype, jnp.floating)}


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_every_solver_keeps_float32(name, data):
    solver, options = SOLVERS[name]

    def solve(X, y):
        extra = {"metric_args": (X, y)} if "metrics" in options else {}
        return lossopt.minimize(_objective, jnp.zeros(3, DTYPE), solver, args=(X, y),
                                max_iters=15, **options, **extra)

    result = jax.eval_shape(solve, *data)  # traces the whole loop; compiles nothing
    # Every float in the Result (params, value, grad_norm, the trace's buffers, best_value)
    # is float32.
    assert _float_dtypes(result) == {jnp.dtype(DTYPE)}, name


@pytest.mark.parametrize("solver", [LevenbergMarquardt(), GaussNewton()],
                         ids=lambda s: type(s).__name__)
def test_least_squares_keeps_float32(solver, data):
    result = jax.eval_shape(lambda X, y: lossopt.minimize_least_squares(
        _residuals, jnp.zeros(3, DTYPE), solver, args=(X, y), max_iters=15), *data)
    assert _float_dtypes(result) == {jnp.dtype(DTYPE)}


def test_sweep_and_implicit_gradient_keep_float32(data):
    swept = jax.eval_shape(lambda lr, X, y: lossopt.sweep(
        _objective, jnp.zeros(3, DTYPE), GradientDescent, {"learning_rate": lr}, args=(X, y),
        max_iters=15), jnp.array([0.05, 0.1], DTYPE), *data)
    assert _float_dtypes(swept) == {jnp.dtype(DTYPE)}
    assert swept.params.shape == (2, 3)

    def ridge_solution_sum(lam, X, y):
        fun = lambda w, X, y, lam: _objective(w, X, y) + lam * jnp.sum(w ** 2)
        return lossopt.minimize(fun, jnp.zeros(3, DTYPE), Newton(), args=(X, y, lam)
                                ).params.sum()

    # The backward pass (the implicit-function-theorem custom_vjp) is traced too.
    derivative = jax.eval_shape(jax.grad(ridge_solution_sum), jnp.asarray(0.1, DTYPE), *data)
    assert derivative.dtype == DTYPE
