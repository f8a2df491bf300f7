"""minimize with a PRNG key (stochastic objectives) and minibatches (batch_size, max_epochs)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.linear_model import LogisticRegression

import lossopt
from lossopt.solvers import GradientDescent, Optax, Subgradient

jax.config.update("jax_enable_x64", True)


def _logistic_data(n=200, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X @ rng.normal(size=d) + 0.5 * rng.normal(size=n) > 0).astype(float)
    return jnp.asarray(X), jnp.asarray(y)


LAM = 0.1


def logistic_l2(w, X, y):
    z = X @ w
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z) + 0.5 * LAM * jnp.sum(w**2)


# The full objective evaluated outside a solve: one compiled program (op by op it compiled
# each primitive on its own).
logistic_l2_value = jax.jit(logistic_l2)


def test_minibatch_sgd_reaches_the_full_batch_optimum():
    X, y = _logistic_data()
    n = X.shape[0]
    # scikit-learn's C-penalised sum equals n * our mean objective with C = 1 / (n * LAM).
    ref = LogisticRegression(C=1.0 / (n * LAM), fit_intercept=False, tol=1e-12, max_iter=10_000)
    w_star = ref.fit(np.asarray(X), np.asarray(y)).coef_.ravel()
    # Minibatch gradients are unbiased, so with a decaying step SGD converges to w*; with a
    # final step ~1e-3 it settles in a noise ball of radius ~ step (the objective is 0.1-strongly
    # convex, per-example gradients O(1)). Measured max error 1.8e-3 (Adam) and 4e-3 (SGD with
    # a constant 0.05 step): the tolerances are ~10x that and far below |w*| ~ 0.9.
    adam = Optax(optax.adam(optax.exponential_decay(0.05, 100, 0.7, end_value=1e-3)))
    res = lossopt.minimize(logistic_l2, jnp.zeros(4), adam, args=(X, y), batch_size=20,
                           max_epochs=100, gtol=0.0,
                           metrics={"full": logistic_l2}, metric_args=(X, y),
                           record_every=100)
    assert int(res.iterations) == 100 * (n // 20)
    np.testing.assert_allclose(res.params, w_star, atol=2e-2)
    # the full objective gap is second order in the parameter error: < 1e-4
    gap = logistic_l2_value(res.params, X, y) - logistic_l2_value(jnp.asarray(w_star), X, y)
    assert float(gap) < 1e-4
    # plain SGD with momentum and a small constant step gets close as well
    sgd = lossopt.minimize(logistic_l2, jnp.zeros(4), GradientDescent(0.05, momentum=0.5),
                           args=(X, y), batch_size=20, max_epochs=100, gtol=0.0)
    np.testing.assert_allclose(sgd.params, w_star, atol=5e-2)


def _dropout_objective(w, X, y, *, key):
    keep = jax.random.bernoulli(key, 0.8, X.shape)
    return logistic_l2(w, jnp.where(keep, X / 0.8, 0.0), y)


@pytest.mark.parametrize("solver", [GradientDescent(0.1, momentum=0.9),
                                    Subgradient(0.1, schedule="inverse_sqrt"),
                                    Optax(optax.adam(0.05))], ids=["sgd", "subgradient", "adam"])
def test_same_key_is_bit_identical_and_other_keys_differ(solver):
    X, y = _logistic_data()

    def run(key):
        return lossopt.minimize(_dropout_objective, jnp.zeros(4), solver, args=(X, y),
                                batch_size=32, max_epochs=3, gtol=0.0, key=key)

    a, b, c = run(jax.random.key(7)), run(jax.random.key(7)), run(jax.random.key(8))
    np.testing.assert_array_equal(a.params, b.params)
    for col, values in a.trace.to_numpy().items():
        np.testing.assert_array_equal(values, b.trace.to_numpy()[col], err_msg=col)
    assert not np.array_equal(a.params, c.params)
    assert not np.array_equal(a.trace.to_numpy()["loss"], c.trace.to_numpy()["loss"])


def test_each_epoch_visits_every_example_exactly_once():
    # The params are a visit counter: fun(w, idx) = -sum(w[idx]) has gradient -1 on the rows of
    # the minibatch, so one SGD step with learning rate 1 adds one to each visited row.
    n, batch, epochs = 23, 5, 4  # 3 rows per epoch are dropped
    steps = n // batch

    def counter(w, idx):
        return -jnp.sum(w[idx])

    idx = jnp.arange(n)
    per_epoch = []
    for e in range(1, epochs + 1):
        res = lossopt.minimize(counter, jnp.zeros(n), GradientDescent(1.0), args=(idx,),
                               batch_size=batch, max_epochs=e, gtol=0.0)
        assert int(res.iterations) == e * steps
        per_epoch.append(np.asarray(res.params))
    visits = np.diff(np.stack([np.zeros(n), *per_epoch]), axis=0)  # (epochs, n)
    for e, v in enumerate(visits):
        assert set(np.unique(v)) <= {0.0, 1.0}, f"epoch {e}: a row visited twice"
        assert v.sum() == steps * batch, f"epoch {e}"
    # reshuffled each epoch: not the same dropped rows every time
    assert len({tuple(np.flatnonzero(v == 0)) for v in visits}) > 1
    # the prefix of a longer run is the shorter run: the shuffle depends on the epoch only
    np.testing.assert_array_equal(per_epoch[0], visits[0])


def test_fun_receives_a_fresh_key_every_iteration_and_metrics_none():
    seen_metric_kwargs = []

    def noise(w, *, key):
        return jnp.sum(w * jax.random.normal(key, w.shape))

    def metric(w):  # evaluation mode: called without a key
        seen_metric_kwargs.append(True)
        return jnp.sum(w)

    # SGD step on f = w . z_k moves w by -lr * z_k, so the steps expose the draws z_k.
    res = lossopt.minimize(noise, jnp.zeros(3), GradientDescent(1.0), max_iters=5, gtol=0.0,
                           key=jax.random.key(11), metrics={"m": metric})
    draws = [np.asarray(jax.random.normal(jax.random.fold_in(jax.random.key(11), i), (3,)))
             for i in range(5)]
    np.testing.assert_allclose(res.params, -np.sum(draws, axis=0), rtol=1e-12)
    assert len({tuple(d) for d in draws}) == 5
    assert seen_metric_kwargs


def test_max_epochs_bounds_iterations():
    X, y = _logistic_data(n=50)
    kw = dict(args=(X, y), batch_size=8, gtol=0.0)  # 6 steps per epoch
    assert int(lossopt.minimize(logistic_l2, jnp.zeros(4), GradientDescent(0.1), max_epochs=3,
                                **kw).iterations) == 18
    res = lossopt.minimize(logistic_l2, jnp.zeros(4), GradientDescent(0.1), max_epochs=3,
                           max_iters=10, **kw)
    assert int(res.iterations) == 10 and res.status == lossopt.Status.MAX_ITERS
    assert res.trace.to_numpy()["loss"].shape == (11,)


def test_vmap_over_keys_gives_each_lane_its_own_run():
    X, y = _logistic_data(n=64)

    def run(key):
        return lossopt.minimize(_dropout_objective, jnp.zeros(4), GradientDescent(0.1),
                                args=(X, y), batch_size=16, max_epochs=2, gtol=0.0, key=key)

    keys = jax.random.split(jax.random.key(0), 3)
    batched = jax.vmap(run)(keys)
    for i in range(3):
        np.testing.assert_allclose(batched.params[i], run(keys[i]).params, rtol=1e-12)
    assert not np.allclose(batched.params[0], batched.params[1])


@pytest.mark.parametrize(
    ("kwargs", "args", "match"),
    [
        ({"batch_size": 0}, "ok", "batch_size"),
        ({"batch_size": -3}, "ok", "batch_size"),
        ({"batch_size": 2.0}, "ok", "batch_size"),
        ({"batch_size": 51}, "ok", "batch_size"),
        ({"batch_size": 5}, "ragged", "args"),
        ({"batch_size": 5}, "scalar", "args"),
        ({"batch_size": 5}, "empty", "args"),
        ({"batch_size": 5, "max_epochs": -1}, "ok", "max_epochs"),
    ],
)
def test_bad_minibatch_inputs_name_the_argument(kwargs, args, match):
    X, y = _logistic_data(n=50)
    data = {"ok": (X, y), "ragged": (X, y[:40]), "scalar": (X, 1.0), "empty": ()}[args]
    with pytest.raises(ValueError, match=match):
        lossopt.minimize(lambda w, *a: jnp.sum(w**2), jnp.zeros(4), GradientDescent(0.1),
                         args=data, **kwargs)


def test_bad_key_and_fun_without_key_parameter():
    with pytest.raises(TypeError, match="key"):
        lossopt.minimize(lambda w: jnp.sum(w**2), jnp.zeros(2), GradientDescent(0.1), key=3)
    with pytest.raises(TypeError, match="takes no `key`"):
        lossopt.minimize(lambda w: jnp.sum(w**2), jnp.zeros(2), GradientDescent(0.1),
                         key=jax.random.key(0))
    # a legacy uint32 key is accepted and means the same as the typed key
    f = lambda w, *, key: jnp.sum((w - jax.random.normal(key, w.shape)) ** 2)
    a = lossopt.minimize(f, jnp.zeros(2), GradientDescent(0.1), key=jax.random.PRNGKey(0),
                         max_iters=3, gtol=0.0)
    b = lossopt.minimize(f, jnp.zeros(2), GradientDescent(0.1),
                         key=jax.random.wrap_key_data(jax.random.PRNGKey(0)), max_iters=3,
                         gtol=0.0)
    np.testing.assert_array_equal(a.params, b.params)


def test_deterministic_and_stochastic_runs_do_not_recompile_on_new_data():
    def full(w, X, y):
        return jnp.mean((X @ w - y) ** 2)

    def batched(w, X, y):
        return jnp.mean((X @ w - y) ** 2)

    def keyed(w, X, y, *, key):
        return jnp.mean((X @ w - y) ** 2) + 0.0 * jax.random.normal(key)

    chex.clear_trace_counter()
    # Budgets are one compilation's traces of the objective (measured: 2 for the full-batch
    # loop, 3 for the minibatch loop); a recompilation traces again and goes over.
    full = chex.assert_max_traces(full, n=2)
    batched = chex.assert_max_traces(batched, n=3)
    keyed = chex.assert_max_traces(keyed, n=3)
    rng = np.random.default_rng(5)
    data = [(jnp.asarray(rng.normal(size=(40, 3))), jnp.asarray(rng.normal(size=40)))
            for _ in range(3)]
    solver = GradientDescent(learning_rate=0.1)
    lossopt.minimize(full, jnp.zeros(3), solver, args=data[0], max_iters=50)
    lossopt.minimize(full, jnp.zeros(3), solver, args=data[1], max_iters=50)  # the fast path
    lossopt.minimize(batched, jnp.zeros(3), solver, args=data[0], max_iters=50, batch_size=8)
    lossopt.minimize(batched, jnp.zeros(3), solver, args=data[2], max_iters=50, batch_size=8)
    with pytest.raises(AssertionError, match="traced > 2 times"):
        # minibatches compile their own loop (new data, no recompilation, above)
        lossopt.minimize(full, jnp.zeros(3), solver, args=data[0], max_iters=50, batch_size=8)
    lossopt.minimize(keyed, jnp.zeros(3), solver, args=data[0], max_iters=50, batch_size=8,
                     key=jax.random.key(0))
    lossopt.minimize(keyed, jnp.zeros(3), solver, args=data[1], max_iters=50, batch_size=8,
                     key=jax.random.key(1))  # a new key is traced too
