"""Training runs in `lossopt run`: minibatches, epochs, dropout, the nonlinear data kind, devices."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lossopt
from lossopt.experiment import (
    ConfigError,
    build_problem,
    load_config,
    load_dataset,
    plan,
    resolve_config,
    run_experiment,
)
from lossopt.experiment._runner import TRAIN_KEY_STREAM

ROOT = Path(__file__).resolve().parents[1]
TIMING = {"wall_time_s", "compile_time_s"}

# 40 examples, validation_fraction 0.2: 32 training examples, 8 validation examples.
MINIBATCH = """
name = "minibatch"
seed = 3
[data]
kind = "nonlinear_regression"
n_samples = 40
n_features = 3
noise = 0.1
[[losses]]
name = "mse"
[[solvers]]
name = "gradient_descent"
learning_rate = 0.05
momentum = 0.5
[run]
max_iters = 1000
gtol = 0.0
batch_size = 8
max_epochs = 5
seeds = [0, 1]
[output]
plots = false
"""


def _cfg(text: str, **run) -> dict:
    raw = tomllib.loads(text)
    raw["run"].update(run)
    return resolve_config(raw)


def _numbers(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in TIMING}


def _trace(out: Path, run_id: str) -> dict[str, np.ndarray]:
    with (out / "traces" / f"{run_id}.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


# --- config validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("run", "message"),
    [
        ({"batch_size": 0}, r"`run.batch_size` must be an integer >= 1.*got 0"),
        ({"batch_size": 2.5}, r"`run.batch_size` must be an integer; got 2.5"),
        ({"batch_size": 33},
         r"`run.batch_size` \(33\) exceeds the 32 training examples of `data` \(40 examples "
         r"with data.validation_fraction = 0.2\)"),
        ({"max_epochs": -1}, r"`run.max_epochs` must be an integer >= 0; got -1"),
        ({"devices": "gpu"}, r'`run.devices` must be "all" or an integer >= 1; got \'gpu\''),
        ({"devices": 0}, r'`run.devices` must be "all" or an integer >= 1; got 0'),
        ({"devices": True}, r"`run.devices` must be a string or an integer; got True"),
        # 40 examples: 32 train (not a multiple of 3); 38 examples give 30 = 3 x 10.
        ({"devices": 3, "batch_size": None},
         r"`run.devices` = 3 must divide the 32 training examples of `data`.*"
         r"set data.n_samples = 38 \(30 training examples\)"),
    ],
)
def test_training_options_are_validated_naming_the_key(run, message):
    raw = tomllib.loads(MINIBATCH)
    raw["run"].update({k: v for k, v in run.items() if v is not None})
    for k in [k for k, v in run.items() if v is None]:
        del raw["run"][k]
    with pytest.raises(ConfigError, match=message):
        resolve_config(raw)


def test_the_suggested_device_fix_is_valid_and_defaults_are_left_open():
    cfg = _cfg(MINIBATCH)
    assert cfg.run.devices is None
    raw = tomllib.loads(MINIBATCH)
    del raw["run"]["batch_size"], raw["run"]["max_epochs"]
    resolved = resolve_config(raw)
    assert (resolved.run.batch_size, resolved.run.max_epochs) == (None, None)
    raw["data"]["n_samples"] = 38
    raw["run"]["devices"] = 3
    assert resolve_config(raw).run.devices == 3  # the fix the error message suggests


def test_sizes_of_loaded_data_and_the_device_count_are_checked_before_running(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", X=rng.standard_normal((20, 2)), y=rng.standard_normal(20))
    text = MINIBATCH.replace('kind = "nonlinear_regression"', 'kind = "npz"\npath = "d.npz"')
    # 20 rows, validation_fraction 0.2: 16 training examples (known only once loaded).
    with pytest.raises(ConfigError, match=r"`run.batch_size` \(17\) exceeds the 16 training"):
        run_experiment(_cfg(text, batch_size=17), tmp_path, out_dir=tmp_path / "a")
    with pytest.raises(ConfigError, match=r"`run.devices` = 10000 exceeds the \d+ cpu device"):
        run_experiment(_cfg(text, devices=10_000), tmp_path, out_dir=tmp_path / "b")
    assert not (tmp_path / "a" / "runs").exists() and not (tmp_path / "b" / "runs").exists()


def test_quick_mode_caps_the_batch_size_at_the_shrunk_training_set(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(MINIBATCH.replace("n_samples = 40", "n_samples = 500")
                    .replace("batch_size = 8", "batch_size = 100"))
    assert load_config(path)[0].run.batch_size == 100
    # --quick: 60 examples, 48 of them for training.
    assert load_config(path, quick=True)[0].run.batch_size == 48


def test_fingerprints_follow_what_changes_results():
    def fingerprints(cfg):
        return [lane.fingerprint for g in plan(cfg) for lane in g.lanes]

    base = fingerprints(_cfg(MINIBATCH))
    assert fingerprints(_cfg(MINIBATCH, batch_size=16)) != base
    assert fingerprints(_cfg(MINIBATCH, max_epochs=6)) != base
    # A sharded run equals the single-device one up to float summation order: same records.
    assert fingerprints(_cfg(MINIBATCH, devices=1)) == base
    assert fingerprints(_cfg(MINIBATCH, devices="all")) == base


# --- the nonlinear synthetic target ---------------------------------------------------------------


def _reference_target(X: np.ndarray) -> np.ndarray:
    # The documented formula, written out term by term.
    n, d = X.shape
    y = np.zeros(n)
    for i in range(n):
        for j in range(d):
            y[i] += np.sin(2.0 * X[i, j]) + X[i, j] * X[i, (j + 1) % d]
    return y


def _nonlinear(n_samples=50, n_features=4, noise=0.0, fraction=0.2):
    return {"kind": "nonlinear_regression", "n_samples": n_samples, "n_features": n_features,
            "noise": noise, "outlier_fraction": 0.0, "validation_fraction": fraction}


def test_nonlinear_regression_follows_its_formula():
    ds = load_dataset(_nonlinear(), seed=4)
    assert ds.task == "regression" and ds.X_train.shape == (40, 4) and ds.true_params is None
    np.testing.assert_allclose(ds.y_train, _reference_target(ds.X_train), rtol=1e-12)
    np.testing.assert_allclose(ds.y_val, _reference_target(ds.X_val), rtol=1e-12)
    one = load_dataset(_nonlinear(n_features=1), seed=4)  # d = 1: sin(2x) + x^2
    x = one.X_train[:, 0]
    np.testing.assert_allclose(one.y_train, np.sin(2 * x) + x**2, rtol=1e-12)


def test_nonlinear_regression_noise_seeds_and_linear_fit():
    a, b = load_dataset(_nonlinear(), seed=4), load_dataset(_nonlinear(), seed=4)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.X_train, load_dataset(_nonlinear(), seed=5).X_train)
    big = load_dataset(_nonlinear(n_samples=20_000, n_features=5, noise=0.3, fraction=0.0), 0)
    residual = big.y_train - _reference_target(big.X_train)
    # The sample std of 20000 N(0, 0.3^2) draws is within 3% of 0.3 (its standard error: 0.5%).
    assert np.std(residual) == pytest.approx(0.3, rel=0.03)
    # The best affine fit explains about 5% of the variance for d = 5 (the docstring's
    # 5 * 0.0733 / (5 * 0.5 + 5 * 1 + 0.09)); 10% leaves room for sampling error.
    A = np.c_[big.X_train, np.ones(len(big.y_train))]
    w, *_ = np.linalg.lstsq(A, big.y_train, rcond=None)
    r2 = 1 - np.mean((A @ w - big.y_train) ** 2) / np.var(big.y_train)
    assert 0.0 < r2 < 0.10


# --- dropout in the objective, not in the metrics -------------------------------------------------


def _forward_numpy(params, X):
    # Evaluation-mode forward pass of the MLP, in numpy.
    h = X
    layers = [{k: np.asarray(v) for k, v in layer.items()} for layer in params["layers"]]
    for layer in layers[:-1]:
        h = np.maximum(h @ layer["w"] + layer["b"], 0.0)
    return (h @ layers[-1]["w"] + layers[-1]["b"])[:, 0]


def test_dropout_is_active_in_the_training_objective_only():
    ds = load_dataset(_nonlinear(), seed=0)
    model_cfg = {"kind": "mlp", "hidden": [16], "activation": "relu", "dropout": 0.5}
    problem = build_problem({"name": "mse"}, model_cfg, None, "regression", 4, 0)
    assert problem.needs_key
    params = problem.model.init(jax.random.key(0), 4)
    X, y = jnp.asarray(ds.X_train), jnp.asarray(ds.y_train)
    pred = _forward_numpy(params, ds.X_train)
    eval_mse = np.mean((pred - ds.y_train) ** 2)
    # Evaluation mode (no key, or train_loss) is the deterministic network, checked in numpy.
    assert float(problem.train_loss(params, X, y)) == pytest.approx(eval_mse, rel=1e-12)
    assert float(problem.objective(params, X, y)) == pytest.approx(eval_mse, rel=1e-12)
    # Training mode with a key drops units: each key its own mask, the same key the same mask.
    k1, k2 = jax.random.key(1), jax.random.key(2)
    assert float(problem.objective(params, X, y, key=k1)) != pytest.approx(eval_mse, rel=1e-3)
    assert float(problem.objective(params, X, y, key=k1)) != float(
        problem.objective(params, X, y, key=k2))
    assert float(problem.objective(params, X, y, key=k1)) == float(
        problem.objective(params, X, y, key=k1))
    r2 = 1 - np.sum((pred - ds.y_train) ** 2) / np.sum((ds.y_train - ds.y_train.mean()) ** 2)
    assert float(problem.metric(params, X, y)) == pytest.approx(r2, rel=1e-12)
    linear = build_problem({"name": "mse"}, {"kind": "linear"}, None, "regression", 4, 0)
    assert not linear.needs_key
    no_dropout = build_problem({"name": "mse"}, {**model_cfg, "dropout": 0.0}, None,
                               "regression", 4, 0)
    assert not no_dropout.needs_key


# --- runs ------------------------------------------------------------------------------------------


def test_minibatch_run_records_traces_and_matches_minimize(tmp_path):
    cfg = _cfg(MINIBATCH)
    res = run_experiment(cfg, out_dir=tmp_path)
    assert res.ran == 2 and len(res.rows) == 2
    for row in res.rows:
        # 32 training examples in minibatches of 8: 4 steps per epoch, 5 epochs.
        assert row["iterations"] == 20 and row["status"] == "MAX_ITERS"
        assert row["devices"] == 1 and row["lanes_in_call"] == 2
        trace = _trace(tmp_path, row["run_id"])
        assert list(trace) == ["iteration", "loss", "grad_norm", "step_size", "train_loss",
                               "val_metric"]
        assert len(trace["loss"]) == 21
        assert trace["train_loss"][-1] == pytest.approx(row["train_loss"], rel=1e-12)
        assert trace["loss"][-1] == pytest.approx(row["final_loss"], rel=1e-12)
        record = json.loads((tmp_path / "runs" / f"{row['run_id']}.json").read_text())
        assert record["row"] == row

    # Lane seed 1 equals minimize called directly with the documented training key.
    row = res.rows[1]
    ds = load_dataset(cfg.data[0], 1)
    X, y = jnp.asarray(ds.X_train), jnp.asarray(ds.y_train)

    def objective(p, X, y, *, key=None):
        return lossopt.losses.mse(X @ p["w"] + p["b"], y)

    lane_key = jax.random.key(cfg.seed + 1)
    ref = lossopt.minimize(
        objective, {"w": jnp.zeros(3), "b": jnp.zeros(())},
        lossopt.solvers.GradientDescent(learning_rate=0.05, momentum=0.5), args=(X, y),
        max_iters=1000, gtol=0.0, key=jax.random.fold_in(lane_key, TRAIN_KEY_STREAM),
        batch_size=8, max_epochs=5,
    )
    # Same float64 arithmetic, batched (vmapped lanes) vs unbatched: agreement to round-off.
    assert row["final_loss"] == pytest.approx(float(ref.value), rel=1e-10)
    full = np.mean((ds.X_train @ np.asarray(ref.params["w"]) + float(ref.params["b"])
                    - ds.y_train) ** 2)
    assert row["train_loss"] == pytest.approx(full, rel=1e-10)
    # A different shuffle stream (the lane's seed) gives a different run on the same data.
    other = lossopt.minimize(
        objective, {"w": jnp.zeros(3), "b": jnp.zeros(())},
        lossopt.solvers.GradientDescent(learning_rate=0.05, momentum=0.5), args=(X, y),
        max_iters=1000, gtol=0.0, key=jax.random.key(99), batch_size=8, max_epochs=5,
    )
    assert float(other.value) != pytest.approx(row["final_loss"], rel=1e-6)

    again = run_experiment(cfg, out_dir=tmp_path)  # complete records are reused
    assert (again.ran, again.skipped) == (0, 2) and again.rows == res.rows


NONLINEAR = """
name = "nonlinear"
[data]
kind = "nonlinear_regression"
n_samples = 300
n_features = 3
noise = 0.1
[model]
kind = "mlp"
hidden = [32]
dropout = 0.1
[[losses]]
name = "mse"
[[solvers]]
name = "optax:adam"
learning_rate = 0.01
[run]
max_iters = 100000
gtol = 0.0
batch_size = 16
max_epochs = 150
record_every = 15
seeds = [0, 1]
[output]
plots = false
"""


@pytest.fixture(scope="module")
def nonlinear_run(across_workers):
    """One run of NONLINEAR (MLP with dropout, minibatches), shared: compiling costs seconds.
    A second xdist worker finds the runs complete in the shared folder and reads them back."""
    cfg = _cfg(NONLINEAR)
    with across_workers("nonlinear_run") as out:
        return cfg, run_experiment(cfg, out_dir=out), out


@pytest.mark.slow(9)
def test_mlp_learns_the_nonlinear_target_far_below_the_best_linear_model(nonlinear_run):
    cfg, result, _ = nonlinear_run
    for row in result.rows:
        assert row["iterations"] == 150 * 15  # 240 training examples, 15 minibatches per epoch
        ds = load_dataset(cfg.data[0], row["seed"])
        # The least-squares optimum of the affine model (the best any linear model can reach).
        A = np.c_[ds.X_train, np.ones(len(ds.y_train))]
        w, *_ = np.linalg.lstsq(A, ds.y_train, rcond=None)
        linear_mse = np.mean((A @ w - ds.y_train) ** 2)
        assert linear_mse > 0.8 * np.var(ds.y_train)  # the linear model explains little of it
        # The MLP's training loss is a fraction of the linear optimum (about a tenth in
        # practice; a quarter leaves room for the seed-to-seed spread of a nonconvex run).
        assert row["train_loss"] < 0.25 * linear_mse
        A_val = np.c_[ds.X_val, np.ones(len(ds.y_val))]
        ss_val = np.sum((ds.y_val - ds.y_val.mean()) ** 2)
        linear_r2 = 1 - np.sum((A_val @ w - ds.y_val) ** 2) / ss_val
        assert row["val_metric"] > linear_r2 + 0.5


def test_dropout_run_is_reproducible(nonlinear_run, tmp_path):
    cfg, first, out = nonlinear_run
    again = run_experiment(cfg, out_dir=tmp_path)  # a fresh folder: computed again
    assert again.ran == 2
    assert [_numbers(r) for r in again.rows] == [_numbers(r) for r in first.rows]
    for row in first.rows:
        name = f"{row['run_id']}.csv"
        assert (out / "traces" / name).read_text() == (tmp_path / "traces" / name).read_text()
        trace = _trace(out, row["run_id"])
        # The minibatch objective with dropout is noisy; the evaluation-mode training loss at
        # the same parameters is a different quantity.
        assert not np.allclose(trace["loss"], trace["train_loss"], rtol=1e-3)
    assert first.rows[0]["final_loss"] != first.rows[1]["final_loss"]


# --- several devices ------------------------------------------------------------------------------


DEVICES_SCRIPT = textwrap.dedent('''
    import json, sys, tomllib
    import jax, jax.numpy as jnp
    from lossopt.experiment import resolve_config, run_experiment
    from lossopt.experiment._runner import device_mesh, place_group_inputs

    assert jax.device_count() == 4, jax.devices()
    mesh = device_mesh(4)
    placed = place_group_inputs(mesh, {"lr": jnp.ones(2)}, jax.random.split(jax.random.key(0)),
                                jnp.ones((2, 8, 3)), jnp.ones((2, 8)), jnp.ones((2, 4, 3)),
                                jnp.ones((2, 4)))
    out = {"placement": [
        ("replicated" if leaf.sharding.is_fully_replicated else str(tuple(leaf.sharding.spec)),
         len(leaf.sharding.device_set)) for leaf in jax.tree.leaves(placed)
    ], "runs": {}}
    for name, model in (("mlp_dropout_minibatch", None), ("linear_full_batch", "linear")):
        for devices in (1, 4):
            raw = tomllib.loads(sys.argv[1])
            raw["run"]["devices"] = devices
            if model:
                raw["model"] = {"kind": model}
                del raw["run"]["batch_size"], raw["run"]["max_epochs"]
                raw["run"]["max_iters"] = 50
            res = run_experiment(resolve_config(raw), out_dir=f"{sys.argv[2]}/{name}{devices}")
            out["runs"][f"{name}/{devices}"] = res.rows
    print(json.dumps(out))
''')

# 45 examples: 36 training examples (9 per device), 9 validation examples (not a multiple of
# 4: the validation set is replicated).
DEVICES = """
[data]
kind = "nonlinear_regression"
n_samples = 45
n_features = 3
noise = 0.1
[model]
kind = "mlp"
hidden = [8]
dropout = 0.3
[[losses]]
name = "mse"
[[solvers]]
name = "gradient_descent"
learning_rate = [0.05, 0.1]
momentum = 0.5
[run]
max_iters = 1000
gtol = 0.0
batch_size = 12
max_epochs = 3
seeds = [0, 1]
[output]
plots = false
"""


@pytest.mark.slow(22)
def test_devices_shard_the_examples_and_match_one_device(tmp_path):
    env = {**os.environ, "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")
           + " --xla_force_host_platform_device_count=4",
           "JAX_ENABLE_X64": "1", "LOSSOPT_CACHE_DIR": ""}
    proc = subprocess.run([sys.executable, "-c", DEVICES_SCRIPT, DEVICES, str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    # lr and keys on every device; X, y and (4 rows: divisible) X_val, y_val split along the
    # examples axis.
    split = str((None, "data"))
    assert out["placement"] == [["replicated", 4]] * 2 + [[split, 4]] * 4
    for name in ("mlp_dropout_minibatch", "linear_full_batch"):
        one, four = out["runs"][f"{name}/1"], out["runs"][f"{name}/4"]
        assert len(one) == len(four) == 4
        for a, b in zip(one, four, strict=True):
            assert (a["devices"], b["devices"]) == (1, 4)
            assert (a["run_id"], a["iterations"], a["status"]) == (
                b["run_id"], b["iterations"], b["status"])
            # Sharding changes only the order of float64 summation (rounding ~1e-16 per sum),
            # which a dozen to a few dozen smooth iterations amplify far less than 1e4.
            for key in ("final_loss", "train_loss", "val_metric", "grad_norm"):
                assert b[key] == pytest.approx(a[key], rel=1e-12, abs=1e-12), key
