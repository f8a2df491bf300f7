"""experiments/interop_equinox.py and experiments/gpu_check.py do what they claim."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import lossopt

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow(25)
def test_equinox_model_params_are_optimised_directly_by_minimize():
    eqx = pytest.importorskip("equinox")
    interop = _load("interop_equinox")
    iters = 300
    out = interop.train_all(n_train=256, n_test=256, d=4, width=16, depth=2, dropout=0.05,
                            iters=iters, batch_size=32, seed=0)
    params0, fun = out["params0"], jax.jit(out["objective"])
    X, y, X_test, _ = out["data"]
    assert len(out["runs"]) == 3
    for run in out["runs"]:
        res = run.result
        # gtol=0: every run makes exactly `iters` steps and ends on MAX_ITERS, never NONFINITE.
        assert int(res.iterations) == iters
        assert res.status == lossopt.Status.MAX_ITERS
        # The result has the Equinox parameter tree's structure and recombines into the model.
        assert jax.tree.structure(res.params) == jax.tree.structure(params0)
        assert isinstance(run.model, interop.DropoutMLP)
        # Far below the linear least-squares baseline (about 2 on this target; the nonlinear
        # part is invisible to a linear model). Measured at these sizes, seeds 0-2: ratios
        # 0.04-0.11 without dropout, 0.17-0.22 with it (a 16-unit net at 300 steps).
        assert run.test_mse < 0.4 * out["linear_test_mse"], run.name
        # The training MSE fell by a large factor (measured: to 0.005-0.03 of its initial
        # value, 0.07-0.13 with dropout), and the trace recorded every iteration.
        assert run.train_mse < 0.25 * out["initial_train_mse"], run.name
        assert len(res.trace.to_numpy()["loss"]) == iters + 1
    # Independent implementation, same weights: lossopt.models.MLP's x @ w layout versus
    # Equinox's W x per example. The same float64 products summed in a different order.
    assert out["max_loss_difference_vs_lossopt_mlp"] < 1e-12
    # And directly: the trained parameters give the same predictions in both implementations.
    model = out["runs"][0].model
    net, mlp_params = interop.to_lossopt_mlp(model)
    np.testing.assert_allclose(np.asarray(net.apply(mlp_params, X_test)),
                               np.asarray(interop.predict(model, X_test)), rtol=1e-12,
                               atol=1e-12)
    # Dropout: active only with a key, reproducible for the same key, different across keys.
    trained = eqx.partition(out["runs"][-1].model, eqx.is_inexact_array)[0]
    k1, k2 = jax.random.key(1), jax.random.key(2)
    eval_loss = fun(trained, X, y)
    assert fun(trained, X, y, key=k1) == fun(trained, X, y, key=k1)
    assert fun(trained, X, y, key=k1) != fun(trained, X, y, key=k2)
    assert fun(trained, X, y, key=k1) != eval_loss
    assert fun(trained, X, y) == eval_loss


def _gpu_check(*args: str) -> subprocess.CompletedProcess:
    from conftest import TEST_XLA_FLAGS

    env = dict(os.environ)
    # One device per platform, whatever the caller set; the suite's cheap-compile flags stay.
    env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                                if f in TEST_XLA_FLAGS)
    return subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "gpu_check.py"), "--quick", *args],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env=env,
    )


@pytest.mark.slow(13)
def test_gpu_check_quick_agrees_with_cpu_and_reports_timings():
    proc = _gpu_check()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "OK: all results agree with the CPU within tolerance" in out
    assert "MISMATCH" not in out
    assert f"default backend '{jax.default_backend()}'" in out
    # One timing row per workload and target, with compile and run times.
    for workload in ("minibatch Adam", "Newton", "GD"):
        rows = [line for line in out.splitlines() if workload in line and "|" not in line]
        assert len(rows) == 3, (workload, out)
    # The reordered-sums CPU run is a real comparison: float32 rounding makes it differ from
    # the CPU run, by less than the tolerance (measured: about 1e-7).
    early = re.search(r"minibatch Adam \| cpu, reordered sums vs cpu \| minibatch loss, first "
                      r"20 iterations, max rel diff: (\S+) <= 1e-04 ok", out)
    assert early is not None, out
    assert 0.0 < float(early.group(1)) < 1e-4
    newton = re.search(r"Newton \| cpu, reordered sums vs cpu \| max \|params diff\| / "
                       r"max\(1, max\|params\|\): (\S+) <= 1e-04 ok", out)
    assert newton is not None, out
    assert 0.0 < float(newton.group(1)) < 1e-4


def test_gpu_check_exits_nonzero_on_mismatch():
    # Tolerances scaled to 0 demand bitwise equality, which the reordered-sums run cannot meet.
    proc = _gpu_check("--workloads", "gd", "--tol-scale", "0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "MISMATCH" in proc.stdout and "FAILED" in proc.stdout
    assert "Newton" not in proc.stdout  # only the selected workload ran
