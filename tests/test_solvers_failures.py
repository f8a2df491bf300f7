"""Failure modes, stopping rules, validation and trace I/O of lossopt.minimize.

Small problems and module-level objectives so that compiled loops are shared between tests.
"""

from __future__ import annotations

import csv
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lossopt
from lossopt.solvers import GradientDescent, Newton, Optax, Status, Subgradient

MAX_ITERS = 500


def least_squares(w, X, y):
    return jnp.mean((X @ w - y) ** 2)


def sqrt_barrier(w):
    # Finite for w[0] >= 0.5 only: descent from w[0] = 1 towards the unconstrained minimiser
    # at 0 crosses into NaN territory.
    return jnp.sum(w**2) + jnp.sqrt(w[0] - 0.5)


@jax.custom_jvp
def _wrong_gradient_square(w):
    return jnp.sum(w**2)


@_wrong_gradient_square.defjvp
def _wrong_gradient_square_jvp(primals, tangents):
    (w,), (dw,) = primals, tangents
    return jnp.sum(w**2), jnp.sum(-2.0 * w * dw)  # sign flipped: an ascent "gradient"


def wrong_gradient(w):
    return _wrong_gradient_square(w)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(10)
    X = rng.normal(size=(30, 3))
    y = X @ np.array([1.0, -1.0, 2.0]) + 0.1 * rng.normal(size=30)
    return jnp.asarray(X), jnp.asarray(y)


# ---------------------------------------------------------------------------- failure modes


def test_too_large_learning_rate_is_nonfinite_with_the_trace_kept(data):
    X, y = data
    res = lossopt.minimize(least_squares, jnp.zeros(3), GradientDescent(learning_rate=5.0),
                           args=(X, y), max_iters=MAX_ITERS)
    assert res.status == Status.NONFINITE and not bool(res.converged)
    assert "NaN or Inf" in res.message
    n = int(res.iterations)
    assert n > 10  # it diverged geometrically for a while before overflowing
    trace = res.trace.to_numpy()
    assert len(trace["loss"]) == n + 1 and np.all(np.isfinite(trace["loss"]))
    assert np.all(np.diff(trace["loss"][1:]) > 0)  # diverging: the kept trace shows it
    assert np.all(np.isnan(np.asarray(res.trace.loss)[n + 1:]))
    # the returned iterate is the last finite one and matches the last trace record
    assert np.all(np.isfinite(res.params))
    assert float(res.value) == float(least_squares(res.params, X, y)) == trace["loss"][-1]
    assert int(res.num_fun_evals) == n + 2  # initial point, n accepted, 1 rejected


@pytest.mark.parametrize(
    "solver", [GradientDescent(learning_rate=0.1), Optax(optax.sgd(0.1))], ids=["gd", "optax"]
)
def test_nan_objective_stops_with_the_last_finite_iterate(solver):
    res = lossopt.minimize(sqrt_barrier, jnp.array([1.0, 1.0]), solver, max_iters=MAX_ITERS)
    assert res.status == Status.NONFINITE, res.message
    assert float(res.params[0]) >= 0.5 and np.isfinite(float(res.value))
    assert float(res.value) == pytest.approx(float(sqrt_barrier(res.params)), rel=1e-15)
    trace = res.trace.to_numpy()
    assert len(trace["loss"]) == int(res.iterations) + 1 and np.all(np.isfinite(trace["loss"]))


def test_nonfinite_initial_point():
    res = lossopt.minimize(sqrt_barrier, jnp.array([0.0, 1.0]), GradientDescent(0.1),
                           max_iters=MAX_ITERS)
    assert res.status == Status.NONFINITE and int(res.iterations) == 0
    np.testing.assert_array_equal(res.params, [0.0, 1.0])


def mean_absolute(w, X, y):
    return lossopt.losses.mae(X @ w, y)


@pytest.mark.parametrize("linear_solver", ["cholesky", "cg"])
def test_newton_without_curvature_falls_back_to_gradient_steps(data, linear_solver):
    # The MAE's Hessian is exactly zero: the shifted Cholesky has no scale to shift by (and CG
    # meets zero curvature at once), so Newton must take Armijo gradient steps, not fail.
    X, y = data
    res = lossopt.minimize(mean_absolute, jnp.zeros(3), Newton(linear_solver=linear_solver),
                           args=(X, y), max_iters=50, gtol=0.0)
    loss = res.trace.to_numpy()["loss"]
    assert int(res.iterations) >= 10
    assert np.all(np.diff(loss) < 0)  # a monotone method: every accepted step decreases
    assert loss[-1] < 0.5 * loss[0]


def test_max_iters(data):
    X, y = data
    res = lossopt.minimize(least_squares, jnp.zeros(3), GradientDescent(learning_rate=1e-4),
                           args=(X, y), max_iters=MAX_ITERS)
    assert res.status == Status.MAX_ITERS and int(res.iterations) == MAX_ITERS
    assert "max_iters" in res.message
    assert len(res.trace.to_numpy()["loss"]) == MAX_ITERS + 1
    assert int(res.num_fun_evals) == int(res.num_grad_evals) == MAX_ITERS + 1


def test_max_iters_zero_and_gtol_at_the_start(data):
    X, y = data
    res = lossopt.minimize(least_squares, jnp.zeros(3), GradientDescent(0.1), args=(X, y),
                           max_iters=0)
    assert res.status == Status.MAX_ITERS and int(res.iterations) == 0
    assert len(res.trace.to_numpy()["loss"]) == 1
    w_ols = jnp.asarray(np.linalg.lstsq(np.asarray(X), np.asarray(y), rcond=None)[0])
    res = lossopt.minimize(least_squares, w_ols, GradientDescent(0.1), args=(X, y),
                           max_iters=MAX_ITERS)
    assert res.status == Status.CONVERGED and int(res.iterations) == 0


@pytest.mark.parametrize("solver", [GradientDescent(1.0, line_search="armijo"), Newton()],
                         ids=["gd_armijo", "newton"])
def test_wrong_gradient_makes_the_line_search_fail(solver):
    res = lossopt.minimize(wrong_gradient, jnp.array([1.0, -2.0]), solver, max_iters=MAX_ITERS)
    assert res.status == Status.LINE_SEARCH_FAILED, res.message
    assert "check_gradient" in res.message
    assert int(res.iterations) == 0
    np.testing.assert_array_equal(res.params, [1.0, -2.0])  # the last accepted iterate
    # the initial evaluation plus every trial of the failed search, none accepted: with the
    # default scale budget the search runs past max_steps to the first trial t = 2**-k with
    # t ||d|| <= eps ||x||. Along d = -g = 2w (gradient descent), or d = 1000 w for Newton
    # (Hessian -2 I shifted by 2 + 1e-3 * 2, the documented first shift, leaves 0.002 I).
    trials = int(res.num_fun_evals) - 1
    assert trials > solver.line_search.max_steps
    ratio = 2.0 if isinstance(solver, GradientDescent) else 1000.0  # ||d|| / ||x||
    t_last, eps = 0.5 ** (trials - 1), np.finfo(np.float64).eps
    assert t_last * ratio <= eps * (1 + 1e-9) < 2 * t_last * ratio


def test_line_search_retreats_from_overflow(data):
    X, y = data
    # Trials near lr = 1e160 overflow to Inf/NaN; backtracking treats them as failed trials
    # (2**-530 * 1e160 ~ 1e0, hence the long search).
    search = lossopt.solvers.Armijo(max_steps=600)
    res = lossopt.minimize(least_squares, jnp.zeros(3),
                           GradientDescent(learning_rate=1e160, line_search=search),
                           args=(X, y), max_iters=MAX_ITERS, gtol=1e-7)
    assert res.status == Status.CONVERGED, res.message
    assert int(res.num_fun_evals) > 2 * int(res.iterations)  # it backtracked


# ---------------------------------------------------------------------------- stopping rules


def test_ftol_rule(data):
    X, y = data
    ftol = 1e-6
    res = lossopt.minimize(least_squares, jnp.zeros(3), GradientDescent(learning_rate=0.1),
                           args=(X, y), max_iters=MAX_ITERS, gtol=0.0, ftol=ftol)
    assert res.status == Status.CONVERGED_FTOL and bool(res.converged)
    loss = res.trace.to_numpy()["loss"]
    rel = np.abs(np.diff(loss)) / np.maximum(np.abs(loss[:-1]), np.abs(loss[1:]))
    assert rel[-1] <= ftol and np.all(rel[:-1] > ftol)  # it stopped at the first such step


def test_xtol_rule(data):
    X, y = data
    xtol = 1e-4
    res = lossopt.minimize(least_squares, jnp.zeros(3), GradientDescent(learning_rate=0.1),
                           args=(X, y), max_iters=MAX_ITERS, gtol=0.0, xtol=xtol)
    assert res.status == Status.CONVERGED_XTOL
    step = res.trace.to_numpy()["step_size"]
    assert step[-1] <= xtol * (float(jnp.linalg.norm(res.params)) + xtol)
    assert step[-2] > xtol * (float(jnp.linalg.norm(res.params)) + xtol)


def test_gradient_clipping_bounds_the_step(data):
    X, y = data
    res = lossopt.minimize(least_squares, jnp.full(3, 5.0),
                           GradientDescent(learning_rate=0.1, clip_norm=1.0),
                           args=(X, y), max_iters=MAX_ITERS, gtol=1e-6)
    assert res.status == Status.CONVERGED
    steps = res.trace.to_numpy()["step_size"][1:]
    assert np.all(steps <= 0.1 * 1.0 * (1 + 1e-12))  # lr * clip_norm, up to rounding
    assert steps[0] == pytest.approx(0.1)  # the first gradient is long: clipped


# ---------------------------------------------------------------------------- trace


def test_trace_records_metrics_every_k_iterations(data):
    X, y = data
    Xv, yv = X[:10] * 2.0, y[:10]

    def val_loss(params, Xv, yv):
        return least_squares(params, Xv, yv)

    def train_loss(params, Xv, yv):
        return least_squares(params, X, y)  # closed over: baked into the program (fine here)

    res = lossopt.minimize(least_squares, jnp.zeros(3), GradientDescent(0.05), args=(X, y),
                           max_iters=MAX_ITERS, metrics={"val": val_loss, "train": train_loss},
                           metric_args=(Xv, yv), record_every=3)
    n = int(res.iterations)
    trace = res.trace.to_numpy()
    # metrics follow the core columns, in sorted name order (a dict pytree's order)
    assert list(trace) == ["iteration", "loss", "grad_norm", "step_size", "train", "val"]
    assert len(trace["loss"]) == n // 3 + 1 == int(res.trace.count)
    np.testing.assert_array_equal(trace["iteration"], np.arange(n // 3 + 1) * 3)
    # the metric evaluated at the recorded iterates equals the recorded loss on the same data
    np.testing.assert_allclose(trace["train"], trace["loss"], rtol=1e-14)
    assert trace["val"][0] == pytest.approx(float(val_loss(jnp.zeros(3), Xv, yv)), rel=1e-15)
    assert np.all(np.isnan(np.asarray(res.trace.metrics["val"])[n // 3 + 1:]))
    assert res.trace.loss.shape == (MAX_ITERS // 3 + 1,)


def test_trace_to_csv_and_dict(data, tmp_path):
    X, y = data
    res = lossopt.minimize(least_squares, jnp.zeros(3), GradientDescent(0.05), args=(X, y),
                           max_iters=MAX_ITERS)
    path = tmp_path / "trace.csv"
    res.trace.to_csv(path)
    assert os.listdir(tmp_path) == ["trace.csv"]  # the temporary file was moved into place
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    expected = res.trace.to_numpy()
    assert rows[0] == list(expected)
    assert len(rows) == int(res.iterations) + 2
    got = np.array([[float(v) for v in row] for row in rows[1:]])
    for j, name in enumerate(expected):  # repr() round-trips floats exactly
        np.testing.assert_array_equal(got[:, j], expected[name])
    as_dict = res.trace.to_dict()
    assert json.loads(json.dumps(as_dict))["loss"] == expected["loss"].tolist()


def test_batched_trace_asks_for_a_lane(data):
    X, y = data
    res = lossopt.sweep(least_squares, jnp.zeros(3), GradientDescent,
                        {"learning_rate": jnp.array([0.05, 0.1])}, args=(X, y),
                        max_iters=MAX_ITERS)
    with pytest.raises(ValueError, match="lane"):
        res.trace.to_numpy()
    assert len(res.lane(1).trace.to_numpy()["loss"]) == int(res.iterations[1]) + 1


def test_every_status_has_an_actionable_message():
    for status in Status:
        assert len(status.message) > 40
    assert [s.converged for s in Status] == [True, True, True, False, False, False, False]


def test_result_is_a_pytree_and_prints(data):
    X, y = data
    res = lossopt.minimize(least_squares, jnp.zeros(3), GradientDescent(0.05), args=(X, y),
                           max_iters=MAX_ITERS)
    leaves = jax.tree.leaves(res)
    # Arrays, plus (on the host, issue 18) the status as a Status and the counts as ints:
    # every leaf is numeric, so the Result still maps, stacks and returns through jax.jit.
    assert all(hasattr(leaf, "shape") or type(leaf) in (int, lossopt.Status) for leaf in leaves)
    assert all(np.asarray(leaf).dtype.kind in "fiu" for leaf in leaves)
    assert repr(res).startswith("Result(status=CONVERGED, iterations=")
    np.testing.assert_array_equal(res.best_params, res.params)  # fixed-step GD tracks best


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: GradientDescent(learning_rate=0.0), ValueError, "learning_rate"),
        (lambda: GradientDescent(0.1, momentum=1.0), ValueError, "momentum"),
        (lambda: GradientDescent(0.1, line_search="wolfe"), ValueError, "line_search"),
        (lambda: GradientDescent(0.1, clip_norm=-1.0), ValueError, "clip_norm"),
        (lambda: Newton(damping=-1.0), ValueError, "damping"),
        (lambda: Newton(linear_solver="qr"), ValueError, "linear_solver"),
        (lambda: Newton(cg_max_iters=0), ValueError, "cg_max_iters"),
        (lambda: Subgradient(schedule="polyak"), ValueError, "step_size"),
        (lambda: Subgradient(0.1, schedule="cosine"), ValueError, "schedule"),
        (lambda: Subgradient(0.1, f_star=0.0), ValueError, "f_star"),
        (lambda: Optax("adam"), TypeError, "optimizer"),
        (lambda: lossopt.solvers.Armijo(c1=1.5), ValueError, "c1"),
    ],
)
def test_invalid_hyperparameters_name_the_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(args=jnp.ones(3)), TypeError, "args"),
        (dict(max_iters=-1), ValueError, "max_iters"),
        (dict(record_every=0), ValueError, "record_every"),
        (dict(gtol=-1e-3), ValueError, "gtol"),
        (dict(metrics={"loss": lambda p: p.sum()}), ValueError, "collides"),
        (dict(init_params=jnp.zeros(3, jnp.int32)), TypeError, "init_params"),
        (dict(solver="gd"), TypeError, "solver"),
    ],
)
def test_invalid_minimize_arguments(kwargs, error, match):
    call = dict(init_params=jnp.zeros(3), solver=GradientDescent(0.1))
    call.update(kwargs)
    with pytest.raises(error, match=match):
        lossopt.minimize(jnp.sum, call.pop("init_params"), call.pop("solver"), **call)


def test_objective_must_return_a_scalar():
    with pytest.raises(TypeError, match="scalar"):
        lossopt.minimize(lambda w: w**2, jnp.zeros(3), GradientDescent(0.1), max_iters=5)


def test_vmapped_hyperparameters_skip_eager_validation():
    # Under vmap the learning rate is a tracer: validation runs only on concrete values.
    lrs = jnp.array([0.1, 0.2])
    solvers = jax.vmap(lambda lr: GradientDescent(learning_rate=lr))(lrs)
    np.testing.assert_array_equal(solvers.learning_rate, lrs)
