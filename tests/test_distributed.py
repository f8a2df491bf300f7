"""Data-parallel minimize over a device mesh: sharded runs equal single-device runs.

The multi-device part runs in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=4
(four CPU devices), so the rest of the suite keeps its single device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import pytest

import lossopt
from lossopt.distributed import data_mesh, replicate, shard_batch

CHILD = textwrap.dedent(
    """
    import json, sys, tempfile
    import jax, jax.numpy as jnp, numpy as np, optax
    jax.config.update("jax_enable_x64", True)
    import lossopt
    from lossopt.distributed import data_mesh, replicate, shard_batch
    from lossopt.solvers import GradientDescent, Newton, Optax

    assert jax.device_count() == 4, jax.devices()
    n, d = 64, 5
    X = jax.random.normal(jax.random.key(0), (n, d))
    w_true = jnp.linspace(-1.0, 1.0, d)
    y = (X @ w_true + 0.5 * jax.random.normal(jax.random.key(1), (n,)) > 0).astype(X.dtype)

    def logistic(w, X, y):
        return lossopt.losses.sigmoid_binary_cross_entropy(X @ w, y) + 1e-2 * jnp.sum(w ** 2)

    def noisy(w, X, y, *, key):
        return logistic(w + 0.01 * jax.random.normal(key, w.shape, w.dtype), X, y)

    mesh = data_mesh("all")
    Xs, ys = shard_batch((X, y), mesh)
    w0 = jnp.zeros(d)
    report = {"shard_rows": [s.data.shape[0] for s in Xs.addressable_shards]}
    runs = {
        "gd_full_batch": (logistic, GradientDescent(1.0), dict(max_iters=200, gtol=1e-10)),
        "newton": (logistic, Newton(), dict(max_iters=30, gtol=1e-9)),
        "adam_minibatch_key": (noisy, Optax(optax.adam(0.05)), dict(
            max_iters=120, gtol=0.0, batch_size=16, key=jax.random.key(5))),
    }
    for name, (fun, solver, options) in runs.items():
        single = lossopt.minimize(fun, w0, solver, args=(X, y), **options)
        sharded = lossopt.minimize(fun, replicate(w0, mesh), solver, args=(Xs, ys), **options)
        report[name] = {
            "params_diff": float(jnp.max(jnp.abs(single.params - sharded.params))),
            "value_diff": float(jnp.abs(single.value - sharded.value)),
            "iterations": [int(single.iterations), int(sharded.iterations)],
            "status": [int(single.status), int(sharded.status)],
            "replicated": bool(sharded.params.sharding.is_fully_replicated),
            "devices": len(sharded.params.sharding.device_set),
        }
    # One SPMD program whose gradient is summed across devices by XLA.
    hlo = jax.jit(lambda X, y: lossopt.minimize(logistic, w0, GradientDescent(1.0), args=(X, y),
                                                 max_iters=5).params).lower(Xs, ys).compile()
    report["all_reduce"] = "all-reduce" in hlo.as_text()
    # Chunks and checkpoints work on sharded data, and stay bit-identical.
    with tempfile.TemporaryDirectory() as folder:
        fun, solver, options = runs["adam_minibatch_key"]
        one = lossopt.minimize(fun, replicate(w0, mesh), solver, args=(Xs, ys), **options)
        chunked = lossopt.minimize(fun, replicate(w0, mesh), solver, args=(Xs, ys),
                                   chunk_size=25, checkpoint_dir=folder, **options)
        report["chunked_identical"] = bool(jnp.array_equal(one.params, chunked.params))
    # A mesh made by jax.make_mesh has Explicit axes in current JAX; minimize runs on it too
    # (L-BFGS's history update and the minibatch gather are what failed on them).
    explicit = jax.make_mesh((4,), ("data",))
    report["explicit_axis_types"] = [t.name for t in explicit.axis_types]
    Xe, ye = shard_batch((X, y), explicit)
    runs["lbfgs"] = (logistic, lossopt.solvers.LBFGS(), dict(max_iters=50, gtol=1e-9))
    report["explicit"] = {}
    for name, (fun, solver, options) in runs.items():
        single = lossopt.minimize(fun, w0, solver, args=(X, y), **options)
        on_explicit = lossopt.minimize(fun, replicate(w0, explicit), solver, args=(Xe, ye),
                                       **options)
        report["explicit"][name] = [float(jnp.max(jnp.abs(single.params - on_explicit.params))),
                                    int(single.status), int(on_explicit.status)]
    print(json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def four_devices(across_workers):
    with across_workers("four_devices") as folder:  # one subprocess per session
        result = folder / "result.json"
        if not result.exists():
            script = folder / "child.py"
            script.write_text(CHILD)
            env = {**os.environ, "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")
                   + " --xla_force_host_platform_device_count=4",
                   "JAX_PLATFORMS": "cpu"}
            proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                                  env=env, timeout=300)
            assert proc.returncode == 0, proc.stderr[-3000:]
            result.write_text(proc.stdout.strip().splitlines()[-1])
        return json.loads(result.read_text())


@pytest.mark.slow(27)
def test_batch_is_split_over_four_devices(four_devices):
    assert four_devices["shard_rows"] == [16, 16, 16, 16]
    assert four_devices["all_reduce"]  # the gradient is all-reduced inside the compiled loop


@pytest.mark.parametrize("name", ["gd_full_batch", "newton", "adam_minibatch_key"])
def test_sharded_run_equals_single_device_run(four_devices, name):
    run = four_devices[name]
    # Same stopping iteration and status; the values differ only by the order of the float64
    # sums across four shards (a few ulps per reduction, amplified by at most ~200 steps).
    assert run["iterations"][0] == run["iterations"][1]
    assert run["status"][0] == run["status"][1]
    assert run["params_diff"] < 1e-10 and run["value_diff"] < 1e-12
    assert run["replicated"] and run["devices"] == 4


def test_chunked_sharded_run_is_bit_identical(four_devices):
    assert four_devices["chunked_identical"]


def test_meshes_with_explicit_axes_run_like_auto_ones(four_devices):
    assert four_devices["explicit_axis_types"] == ["Explicit"]
    assert set(four_devices["explicit"]) == {"gd_full_batch", "newton", "adam_minibatch_key",
                                             "lbfgs"}
    for name, (params_diff, status_single, status_explicit) in four_devices["explicit"].items():
        # As for the auto mesh above: the order of the sharded sums only.
        assert status_single == status_explicit, name
        assert params_diff < 1e-10, name


# --- single-process API checks (one CPU device here) ------------------------------------------


def test_data_mesh_and_errors():
    assert data_mesh().devices.shape == (jax.device_count(),)
    assert data_mesh(1, axis_name="batch").axis_names == ("batch",)
    with pytest.raises(ValueError, match="`devices` must be between 1 and"):
        data_mesh(jax.device_count() + 1)
    with pytest.raises(TypeError, match="`devices` must be"):
        data_mesh(2.5)
    with pytest.raises(TypeError, match=r"sequence of jax\.Device"):
        data_mesh(["gpu0"])


def test_shard_batch_validates():
    mesh = data_mesh(1)
    X, y = shard_batch((jnp.ones((6, 2)), jnp.arange(6.0)), mesh)
    assert X.shape == (6, 2) and float(y[5]) == 5.0
    with pytest.raises(ValueError, match="share its leading size"):
        shard_batch((jnp.ones((6, 2)), jnp.ones(5)), mesh)
    with pytest.raises(TypeError, match=r"`mesh` must be a jax\.sharding\.Mesh"):
        shard_batch((jnp.ones(3),), "mesh")
    with pytest.raises(ValueError, match="`axis` must be one of"):
        shard_batch((jnp.ones(3),), mesh, axis="model")
    w = replicate({"w": jnp.ones(2)}, mesh)
    assert w["w"].sharding.is_fully_replicated
    res = lossopt.minimize(lambda w, X, y: jnp.mean((X @ w - y) ** 2), jnp.zeros(2),
                           lossopt.solvers.Newton(), args=(X, y))
    assert bool(res.converged)


# --- two processes (two "hosts") of two CPU devices each, over jax.distributed ----------------

HOST = textwrap.dedent(
    """
    import json, sys
    import jax
    process_id, port, folder = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.config.update("jax_enable_x64", True)
    jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2,
                               process_id=process_id)
    import jax.numpy as jnp, numpy as np
    import lossopt
    from lossopt.distributed import data_mesh, replicate, shard_batch
    from lossopt.solvers import GradientDescent

    n, d = 64, 5
    X = jax.random.normal(jax.random.key(0), (n, d))
    y = (X @ jnp.linspace(-1.0, 1.0, d) > 0).astype(X.dtype)

    def logistic(w, X, y):
        return lossopt.losses.sigmoid_binary_cross_entropy(X @ w, y) + 1e-2 * jnp.sum(w ** 2)

    mesh = data_mesh()
    rows = slice(process_id * n // 2, (process_id + 1) * n // 2)   # this host's own rows
    Xs, ys = shard_batch((np.asarray(X[rows]), np.asarray(y[rows])), mesh)
    w0 = replicate(jnp.zeros(d), mesh)
    options = dict(args=(Xs, ys), max_iters=100, gtol=0.0)
    res = lossopt.minimize(logistic, w0, GradientDescent(1.0), **options)
    chunked = lossopt.minimize(logistic, w0, GradientDescent(1.0), chunk_size=30,
                               progress=lambda p: None, checkpoint_dir=folder, **options)
    resumed = lossopt.minimize(logistic, w0, GradientDescent(1.0), checkpoint_dir=folder,
                               resume=True, **options)
    local = jax.local_devices()[0]
    single = lossopt.minimize(logistic, jax.device_put(jnp.zeros(d), local), GradientDescent(1.0),
                              args=jax.device_put((X, y), local), max_iters=100, gtol=0.0)
    params = lambda r: np.asarray(r.params.addressable_data(0))
    print(json.dumps({
        "devices": jax.device_count(), "global_rows": Xs.shape[0],
        "diff": float(np.abs(params(res) - np.asarray(single.params)).max()),
        "chunked_identical": bool((params(res) == params(chunked)).all()),
        "resumed_identical": bool((params(res) == params(resumed)).all()),
    }))
    """
)


@pytest.mark.slow(14)
def test_two_processes_over_jax_distributed(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = str(s.getsockname()[1])
    script = tmp_path / "host.py"
    script.write_text(HOST)
    env = {**os.environ, "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")
           + " --xla_force_host_platform_device_count=2",
           "JAX_PLATFORMS": "cpu"}
    procs = [subprocess.Popen([sys.executable, str(script), str(i), port, str(tmp_path / "ckpt")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for i in range(2)]
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err[-3000:]
            outputs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            proc.kill()
    for report in outputs:
        assert report["devices"] == 4 and report["global_rows"] == 64  # 2 hosts x 32 rows
        # float64 sums in another order over 4 devices: ulps, amplified over 100 steps.
        assert report["diff"] < 1e-12
        assert report["chunked_identical"] and report["resumed_identical"]
    assert (tmp_path / "ckpt" / "checkpoint.npz").exists()  # written by process 0
