"""Long runs of minimize: chunked loop, progress reports, checkpoints, resume and interruption.

The chunked loop runs the very body of the one-call loop, so every comparison below is exact
(bit-for-bit, NaN positions included): a tolerance would hide a change of the computation.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lossopt
from lossopt.solvers import GradientDescent, Newton, Optax, Progress, Status, Subgradient

X = jax.random.normal(jax.random.key(0), (60, 3), jnp.float64)
W_TRUE = jnp.array([1.0, -2.0, 0.5])
Y_BIN = (X @ W_TRUE + 0.3 * jax.random.normal(jax.random.key(1), (60,)) > 0).astype(jnp.float64)
Y_REG = X @ W_TRUE + 0.1 * jax.random.normal(jax.random.key(2), (60,))


def logistic(w, X, y):
    return lossopt.losses.sigmoid_binary_cross_entropy(X @ w, y) + 1e-3 * jnp.sum(w**2)


def mae(w, X, y):
    return lossopt.losses.mae(X @ w, y)


def noisy_mse(w, X, y, *, key):
    # A stochastic objective: input noise drawn from the per-iteration key.
    return lossopt.losses.mse((X + 0.05 * jax.random.normal(key, X.shape, X.dtype)) @ w, y)


def full_mse(w, X, y):
    return lossopt.losses.mse(X @ w, y)


def assert_identical(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))  # NaN == NaN here


CASES = {
    # name: (objective, solver, minimize options); each stops off a chunk boundary or on its cap
    "gd_momentum_gtol": (logistic, GradientDescent(0.5, momentum=0.9), dict(
        args=(X, Y_BIN), max_iters=400, gtol=1e-8)),
    "newton": (logistic, Newton(), dict(args=(X, Y_BIN), max_iters=50, gtol=1e-12)),
    "subgradient_best": (mae, Subgradient(step_size=0.5, schedule="inverse_sqrt"), dict(
        args=(X, Y_REG), max_iters=123, gtol=0.0)),
    "adam_minibatch_key_metrics": (noisy_mse, Optax(optax.adam(0.05)), dict(
        args=(X, Y_REG), batch_size=16, max_epochs=30, gtol=0.0, key=jax.random.key(7),
        record_every=3, metrics={"full": full_mse}, metric_args=(X, Y_REG))),
    "nonfinite": (full_mse, GradientDescent(5.0), dict(args=(X, Y_REG), max_iters=500)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_chunked_is_bit_identical_to_one_call(name):
    fun, solver, options = CASES[name]
    reference = lossopt.minimize(fun, jnp.zeros(3), solver, **options)
    for chunk_size in (1, 7):
        chunked = lossopt.minimize(fun, jnp.zeros(3), solver, chunk_size=chunk_size, **options)
        assert_identical(chunked, reference)
    adaptive = lossopt.minimize(fun, jnp.zeros(3), solver, progress=lambda p: None, **options)
    assert_identical(adaptive, reference)
    if name == "nonfinite":
        assert int(reference.status) == Status.NONFINITE


def test_progress_callback_reports_every_chunk():
    fun, solver, options = CASES["gd_momentum_gtol"]
    reports: list[Progress] = []
    res = lossopt.minimize(fun, jnp.zeros(3), solver, chunk_size=25, progress=reports.append,
                           **options)
    its = [p.iteration for p in reports]
    n = int(res.iterations)
    assert 0 < n < options["max_iters"]  # gtol fires mid-run, off a chunk boundary
    assert its == [*range(25, n, 25), n]
    assert [p.done for p in reports] == [False] * (len(its) - 1) + [True]
    assert reports[-1].chunks == len(reports) and reports[-1].max_iters == options["max_iters"]
    assert reports[-1].value == float(res.value) and reports[-1].grad_norm == float(res.grad_norm)
    assert all(p.rate > 0 and p.elapsed > 0 for p in reports)


def test_progress_bar_draws_on_stderr(capfd):
    fun, solver, options = CASES["newton"]
    res = lossopt.minimize(fun, jnp.zeros(3), solver, progress=True, **options)
    err = capfd.readouterr().err
    assert "it/s" in err and "loss" in err
    assert f"{int(res.iterations)}/{int(res.iterations)}" in err  # an early stop fills the bar


def test_interrupt_checkpoint_and_resume_reproduce_the_uninterrupted_run(tmp_path):
    fun, solver, options = CASES["adam_minibatch_key_metrics"]
    reference = lossopt.minimize(fun, jnp.zeros(3), solver, **options)

    def stop_at_60(p):
        if p.iteration >= 60:
            raise KeyboardInterrupt

    partial = lossopt.minimize(fun, jnp.zeros(3), solver, chunk_size=20, progress=stop_at_60,
                               checkpoint_dir=tmp_path, checkpoint_every=100, **options)
    assert int(partial.status) == Status.INTERRUPTED and not bool(partial.converged)
    assert "resume=True" in partial.message
    assert int(partial.iterations) == 60
    # Nothing computed is lost: the partial trace is the reference's first 60 iterations.
    got, want = partial.trace.to_numpy(), reference.trace.to_numpy()
    assert len(got["loss"]) == 60 // 3 + 1
    for column in want:
        np.testing.assert_array_equal(got[column], want[column][: len(got[column])])
    with np.load(tmp_path / "checkpoint.npz") as data:  # the Ctrl-C checkpoint (every=100)
        assert json.loads(str(data["meta"]))["iteration"] == 60

    resumed = lossopt.minimize(fun, jnp.zeros(3), solver, checkpoint_dir=tmp_path, resume=True,
                               **options)
    assert_identical(resumed, reference)
    # The finished run's checkpoint is final: resuming it again returns it without iterating.
    calls = []
    again = lossopt.minimize(fun, jnp.zeros(3), solver, checkpoint_dir=tmp_path, resume=True,
                             progress=calls.append, **options)
    assert_identical(again, reference) and calls == []


def test_ctrl_c_stops_at_the_end_of_the_chunk_and_restores_the_handler():
    # A real SIGINT raised inside the progress callback (between chunks): the run stops
    # before the next chunk, keeps every finished one, and puts Python's handler back.
    fun, solver, options = CASES["gd_momentum_gtol"]
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # xdist may ignore it
    try:
        seen = []

        def ctrl_c_at_30(p):
            seen.append(p.iteration)
            if p.iteration == 30:
                signal.raise_signal(signal.SIGINT)

        res = lossopt.minimize(fun, jnp.zeros(3), solver, chunk_size=10, progress=ctrl_c_at_30,
                               **options)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen == [10, 20, 30]
    assert int(res.status) == Status.INTERRUPTED and int(res.iterations) == 30
    reference = lossopt.minimize(fun, jnp.zeros(3), solver, **options)
    np.testing.assert_array_equal(res.trace.to_numpy()["loss"],
                                  reference.trace.to_numpy()["loss"][:31])


def test_resume_without_a_checkpoint_starts_afresh(tmp_path):
    fun, solver, options = CASES["newton"]
    res = lossopt.minimize(fun, jnp.zeros(3), solver, checkpoint_dir=tmp_path / "new",
                           resume=True, **options)
    assert_identical(res, lossopt.minimize(fun, jnp.zeros(3), solver, **options))
    assert (tmp_path / "new" / "checkpoint.npz").exists()


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path):
    fun, solver, options = CASES["gd_momentum_gtol"]
    lossopt.minimize(fun, jnp.zeros(3), solver, checkpoint_dir=tmp_path, **options)
    with pytest.raises(ValueError, match="solver_hyperparameters"):
        lossopt.minimize(fun, jnp.zeros(3), GradientDescent(0.4, momentum=0.9),
                         checkpoint_dir=tmp_path, resume=True, **options)
    with pytest.raises(ValueError, match=r"args: checkpoint has"):
        lossopt.minimize(fun, jnp.zeros(3), solver, checkpoint_dir=tmp_path, resume=True,
                         **{**options, "args": (X[:50], Y_BIN[:50])})
    (tmp_path / "checkpoint.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"cannot be read \(it is not a checkpoint archive"):
        lossopt.minimize(fun, jnp.zeros(3), solver, checkpoint_dir=tmp_path, resume=True,
                         **options)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        (dict(resume=True), ValueError, "give `checkpoint_dir`"),
        (dict(chunk_size=0), ValueError, "`chunk_size` must be None"),
        (dict(checkpoint_dir="x", checkpoint_every=0), ValueError, "`checkpoint_every`"),
        (dict(progress="yes"), TypeError, "`progress` must be"),
        (dict(checkpoint_dir=3), TypeError, "`checkpoint_dir` must be a path"),
        (dict(checkpoint_dir="x", resume=1), TypeError, "`resume` must be"),
    ],
)
def test_long_run_option_errors(options, error, match):
    with pytest.raises(error, match=match):
        lossopt.minimize(full_mse, jnp.zeros(3), GradientDescent(0.1), args=(X, Y_REG),
                         **options)


def test_long_run_options_refuse_transformations():
    with pytest.raises(TypeError, match=r"cannot then run inside jax\.jit"):
        jax.jit(lambda w: lossopt.minimize(full_mse, w, GradientDescent(0.1), args=(X, Y_REG),
                                           progress=True).params)(jnp.zeros(3))
    with pytest.raises(TypeError, match="sweep runs every lane"):
        lossopt.sweep(full_mse, jnp.zeros(3), GradientDescent, jnp.array([0.1, 0.2]),
                      args=(X, Y_REG), progress=True)


# --- a real process: SIGINT, then SIGKILL, then resume to the end -----------------------------

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    import lossopt
    from lossopt.solvers import GradientDescent

    mode, folder, out = sys.argv[1], sys.argv[2], sys.argv[3]
    # A terminal's process has Python's default Ctrl-C handler; a child of a pytest-xdist
    # worker may inherit SIGINT ignored (then Ctrl-C never reaches a process at all).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    X = jax.random.normal(jax.random.key(0), (96, 4))
    y = X @ jnp.array([1.0, -1.0, 2.0, 0.5]) + 0.1 * jax.random.normal(jax.random.key(1), (96,))

    def objective(w, X, y, *, key):
        noise = 0.05 * jax.random.normal(key, X.shape, X.dtype)
        return lossopt.losses.huber((X + noise) @ w, y, delta=1.0)

    def on_progress(p):
        if mode == "sigint" and p.iteration >= 30:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, delivered to this process
        if mode == "kill" and p.iteration >= 70:
            os.kill(os.getpid(), signal.SIGKILL)  # no clean-up at all

    solver = GradientDescent(0.05, momentum=0.9)
    options = dict(args=(X, y), batch_size=16, key=jax.random.key(3), max_iters=150, gtol=0.0)
    res = lossopt.minimize(objective, jnp.zeros(4), solver, chunk_size=10, progress=on_progress,
                           checkpoint_dir=folder, checkpoint_every=2,
                           resume=(mode != "sigint"), **options)
    print(json.dumps({"status": lossopt.Status(int(res.status)).name,
                      "iterations": int(res.iterations)}))
    if mode == "final":
        ref = lossopt.minimize(objective, jnp.zeros(4), solver, **options)
        np.savez(out, **{f"res_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(res))},
                 **{f"ref_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(ref))})
    """
)


def _checkpoint_iteration(folder: Path) -> int:
    with np.load(folder / "checkpoint.npz") as data:
        return json.loads(str(data["meta"]))["iteration"]


@pytest.mark.slow(20)
def test_sigint_then_kill_then_resume_in_a_subprocess(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    folder, out = tmp_path / "ckpt", tmp_path / "out.npz"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}

    def child(mode):
        return subprocess.run([sys.executable, str(script), mode, str(folder), str(out)],
                              capture_output=True, text=True, env=env, timeout=300)

    first = child("sigint")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout.strip().splitlines()[-1])
    # The signal lands in the callback after the chunk ending at 30, or at the latest during
    # the next chunk, which is then discarded.
    assert report["status"] == "INTERRUPTED" and report["iterations"] in (30, 40)
    assert _checkpoint_iteration(folder) == report["iterations"]

    second = child("kill")
    assert second.returncode == -signal.SIGKILL, second.stderr
    killed_at = _checkpoint_iteration(folder)
    assert report["iterations"] < killed_at <= 70  # periodic checkpoints were written

    third = child("final")
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout.strip().splitlines()[-1]) == {
        "status": "MAX_ITERS", "iterations": 150}
    with np.load(out) as data:
        n = sum(name.startswith("res_") for name in data.files)
        assert n > 10
        for i in range(n):
            np.testing.assert_array_equal(data[f"res_{i}"], data[f"ref_{i}"])


def test_chunks_of_any_length_share_one_compilation():
    from lossopt.solvers import _loop

    fun, solver, options = CASES["gd_momentum_gtol"]
    before = _loop.run_chunk._cache_size()
    lossopt.minimize(fun, jnp.zeros(3), solver, chunk_size=5, **options)
    sizes = (_loop.init_chunks._cache_size(), _loop.run_chunk._cache_size(),
             _loop.finish_chunks._cache_size())
    # One chunk program per problem (the zero-length warm-up chunk included), unless another
    # test in this worker compiled the same one first.
    assert sizes[1] - before <= 1
    for chunk_size in (3, 11, None):  # None: adaptive lengths
        lossopt.minimize(fun, jnp.zeros(3), solver, chunk_size=chunk_size,
                         progress=lambda p: None, **options)
    assert (_loop.init_chunks._cache_size(), _loop.run_chunk._cache_size(),
            _loop.finish_chunks._cache_size()) == sizes


def test_resume_sees_closed_over_hyperparameters(tmp_path):
    # An optax learning rate and a lambda's regularisation strength live in closures, not in
    # pytree leaves; resuming with other values must be refused, with the same ones accepted.
    def objective(lam):
        return lambda w, X, y: full_mse(w, X, y) + lam * jnp.sum(w**2)

    options = dict(args=(X, Y_REG), max_iters=7, gtol=0.0)
    reference = lossopt.minimize(objective(0.1), jnp.zeros(3), Optax(optax.adam(0.05)),
                                 checkpoint_dir=tmp_path, **options)
    with pytest.raises(ValueError, match=r"solver_static: checkpoint has .*'-0\.05'"):
        lossopt.minimize(objective(0.1), jnp.zeros(3), Optax(optax.adam(0.01)),
                         checkpoint_dir=tmp_path, resume=True, **options)
    with pytest.raises(ValueError, match=r"fun: checkpoint has .*'0\.1'.*this call has .*'0\.2'"):
        lossopt.minimize(objective(0.2), jnp.zeros(3), Optax(optax.adam(0.05)),
                         checkpoint_dir=tmp_path, resume=True, **options)
    # A new optimizer object and a new closure with the same numbers are the same run.
    again = lossopt.minimize(objective(0.1), jnp.zeros(3), Optax(optax.adam(0.05)),
                             checkpoint_dir=tmp_path, resume=True, **options)
    assert_identical(again, reference)
