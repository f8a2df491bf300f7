"""The registry's property claims, checked numerically for every registered loss.

* convex=True  -> the Hessian in the first argument is positive semi-definite at random points;
* convex=False -> a point with a clearly negative Hessian eigenvalue exists (a witness);
* robust=True  -> the gradient in the first argument stays bounded as the error grows;
* robust=False -> the gradient grows (or overflows) as the error grows;
* smooth=True  -> the Hessian is continuous: it matches finite differences of the gradient.

Each loss needs a *recipe* (tests/helpers.py, shared with the other catalogue tests): how to
draw valid inputs at a given error scale. A registered loss without a recipe fails
`test_every_registered_loss_has_a_recipe`, so a new loss cannot slip through unchecked.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import RECIPES, central_difference, missing_recipes
from helpers import as_jax as _as_jax
from jax.flatten_util import ravel_pytree

from lossopt import losses


def _entries():
    return [e for e in losses.catalog() if e.name in RECIPES]


def _flat_problem(entry, first, rest, kwargs):
    """``(x0, f)`` with ``f(x)`` the summed loss as a function of the flattened first argument."""
    recipe = RECIPES[entry.name]
    fn = losses.get(entry.name, **recipe.hyper)
    rest, kwargs = _as_jax(rest), _as_jax(kwargs)
    x0, unravel = ravel_pytree(_as_jax(first))
    extra = {"reduction": "sum"} if recipe.reduce else {}

    def f(x):
        return jnp.sum(fn(unravel(x), *rest, **kwargs, **extra))

    return x0, f


def test_every_registered_loss_has_a_recipe():
    missing = missing_recipes()
    assert not missing, f"add recipes to tests/helpers.py RECIPES for: {missing}"


@pytest.mark.parametrize("entry", _entries(), ids=lambda e: e.name)
def test_convexity_claim(entry):
    recipe = RECIPES[entry.name]
    rng = np.random.default_rng(11)
    if entry.convex:
        for _ in range(3):
            x, f = _flat_problem(entry, *recipe.draw(rng, None))
            h = np.asarray(jax.hessian(f)(x))
            eig = np.linalg.eigvalsh(0.5 * (h + h.T))
            # PSD up to float64 round-off relative to the largest curvature.
            assert eig.min() >= -1e-9 * max(1.0, np.abs(eig).max()), (entry.name, eig)
    else:
        assert recipe.witness is not None, f"{entry.name} claims non-convexity: give a witness"
        x, f = _flat_problem(entry, *recipe.witness())
        h = np.asarray(jax.hessian(f)(x))
        assert np.linalg.eigvalsh(0.5 * (h + h.T)).min() < -1e-6, entry.name


@pytest.mark.parametrize("entry", _entries(), ids=lambda e: e.name)
def test_robustness_claim(entry):
    recipe = RECIPES[entry.name]

    def grad_norm(scale):
        x, f = _flat_problem(entry, *recipe.draw(np.random.default_rng(5), scale))
        g = jax.grad(f)(x)
        return float(jnp.max(jnp.abs(g)))

    moderate, huge = grad_norm(1e2), grad_norm(1e6)
    if entry.robust:
        # Bounded influence: 10^4 times the error, at most a constant factor more gradient.
        assert np.isfinite(huge) and huge <= 2.0 * moderate + 1e-12, (entry.name, moderate, huge)
    else:
        assert not np.isfinite(huge) or huge > 100.0 * moderate, (entry.name, moderate, huge)


@pytest.mark.parametrize("entry", [e for e in _entries() if e.smooth], ids=lambda e: e.name)
def test_smooth_losses_have_hessians_matching_gradient_differences(entry):
    x0, f = _flat_problem(entry, *RECIPES[entry.name].draw(np.random.default_rng(3), None))
    x = np.asarray(x0)
    grad = jax.jit(jax.grad(f))
    h = np.asarray(jax.hessian(f)(x0))
    fd = central_difference(grad, x, step=1e-6).reshape(h.shape)
    # Central differences of the gradient: error ~ step^2 * |f''''| + eps / step ~ 1e-9.
    np.testing.assert_allclose(h, fd, rtol=1e-5, atol=1e-6 * max(1.0, np.abs(h).max()))
