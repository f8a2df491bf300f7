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

import functools

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


@functools.cache
def _derivatives(name, scalar_kwargs):
    """``(program, f)``: ``f(x, template, rest, kwargs)`` is the summed loss ``name`` in its
    flattened first argument, ``program`` (same arguments) its ``(gradient, Hessian)`` as one
    jitted program.

    Built once per loss and scalar keyword arguments (a witness's hyperparameters, closed over
    as the concrete values the loss saw when these tests called it eagerly); the data -- the
    first argument's template, the other arguments and array keyword arguments -- are
    arguments, so every draw of one shape shares one compile across this file's tests.
    (Evaluated eagerly, every primitive and jitted helper of a loss compiled on its own.) The
    Hessian is ``jax.hessian``'s ``jacfwd(jacrev(f))``; the gradient is its inner
    ``jacrev(f)``, returned as the forward pass's auxiliary output.
    """
    recipe = RECIPES[name]
    fn = losses.get(name, **recipe.hyper)
    scalars = _as_jax(dict(scalar_kwargs))
    extra = {"reduction": "sum"} if recipe.reduce else {}

    def f(x, template, rest, kwargs):
        _, unravel = ravel_pytree(template)
        return jnp.sum(fn(unravel(x), *rest, **kwargs, **scalars, **extra))

    def twice(x, *data):
        g = jax.jacrev(f)(x, *data)
        return g, g

    def grad_and_hessian(x, *data):
        h, g = jax.jacfwd(twice, has_aux=True)(x, *data)
        return g, h

    return jax.jit(grad_and_hessian), f


def _flat_problem(entry, first, rest, kwargs):
    """``(x0, grad, hessian)``: the summed loss's derivatives in the flattened first argument."""
    scalar = {k: v for k, v in kwargs.items() if isinstance(v, (str, bool, int, float))}
    arrays = _as_jax({k: v for k, v in kwargs.items() if k not in scalar})
    both, f = _derivatives(entry.name, tuple(sorted(scalar.items())))
    template, rest = _as_jax(first), _as_jax(rest)
    x0 = np.concatenate([np.ravel(np.asarray(leaf, np.float64))
                         for leaf in jax.tree.leaves(template)])
    # The loss's value checks on the other arguments, concrete here (closed over), as when
    # these tests closed over them: a trace only, nothing is compiled.
    jax.eval_shape(lambda x: f(x, template, rest, arrays), x0)
    return (x0, lambda x: both(x, template, rest, arrays)[0],
            lambda x: both(x, template, rest, arrays)[1])


def test_every_registered_loss_has_a_recipe():
    missing = missing_recipes()
    assert not missing, f"add recipes to tests/helpers.py RECIPES for: {missing}"


@pytest.mark.parametrize("entry", _entries(), ids=lambda e: e.name)
def test_convexity_claim(entry):
    recipe = RECIPES[entry.name]
    rng = np.random.default_rng(11)
    if entry.convex:
        for _ in range(3):
            x, _, hessian = _flat_problem(entry, *recipe.draw(rng, None))
            h = np.asarray(hessian(x))
            eig = np.linalg.eigvalsh(0.5 * (h + h.T))
            # PSD up to float64 round-off relative to the largest curvature.
            assert eig.min() >= -1e-9 * max(1.0, np.abs(eig).max()), (entry.name, eig)
    else:
        assert recipe.witness is not None, f"{entry.name} claims non-convexity: give a witness"
        x, _, hessian = _flat_problem(entry, *recipe.witness())
        h = np.asarray(hessian(x))
        assert np.linalg.eigvalsh(0.5 * (h + h.T)).min() < -1e-6, entry.name


@pytest.mark.parametrize("entry", _entries(), ids=lambda e: e.name)
def test_robustness_claim(entry):
    recipe = RECIPES[entry.name]

    def grad_norm(scale):
        x, grad, _ = _flat_problem(entry, *recipe.draw(np.random.default_rng(5), scale))
        return float(np.max(np.abs(np.asarray(grad(x)))))

    moderate, huge = grad_norm(1e2), grad_norm(1e6)
    if entry.robust:
        # Bounded influence: 10^4 times the error, at most a constant factor more gradient.
        assert np.isfinite(huge) and huge <= 2.0 * moderate + 1e-12, (entry.name, moderate, huge)
    else:
        assert not np.isfinite(huge) or huge > 100.0 * moderate, (entry.name, moderate, huge)


@pytest.mark.parametrize("entry", [e for e in _entries() if e.smooth], ids=lambda e: e.name)
def test_smooth_losses_have_hessians_matching_gradient_differences(entry):
    draw = RECIPES[entry.name].draw(np.random.default_rng(3), None)
    x, grad, hessian = _flat_problem(entry, *draw)
    h = np.asarray(hessian(x))
    fd = central_difference(grad, x, step=1e-6).reshape(h.shape)
    # Central differences of the gradient: error ~ step^2 * |f''''| + eps / step ~ 1e-9.
    np.testing.assert_allclose(h, fd, rtol=1e-5, atol=1e-6 * max(1.0, np.abs(h).max()))
