"""`lossopt run`: shipped configs end to end, config validation, resume, interruption, data files."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import msgspec
import numpy as np
import pytest

import lossopt
from lossopt._io import atomic_path
from lossopt.cli import main
from lossopt.experiment import (
    DEFAULT_CONFIG_TOML,
    ConfigError,
    check_experiment,
    dump_toml,
    load_config,
    load_dataset,
    plan,
    resolve_config,
    run_experiment,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.toml"))
# Shipped configs run end to end here (--quick): the training one (minibatches, dropout keys,
# train_loss); every config is checked at full size below (data, plan, every call traced), the
# default one runs through the console script, and sweeps, seeds and a binary classification
# (against scipy) run end to end in-process on small configs in this file.
END_TO_END = {"mlp_dropout"}
STATUSES = {s.name for s in lossopt.Status}


def _run_cli(*args: str, cwd: Path, cache: Path | None = None) -> subprocess.CompletedProcess:
    # Each test gets its own compilation cache: tests never read or write the user's cache.
    env = {**os.environ, "LOSSOPT_CACHE_DIR": str(cache or cwd / "jax-cache")}
    return subprocess.run(
        [sys.executable, "-m", "lossopt.cli", "run", *args],
        capture_output=True, text=True, cwd=cwd, timeout=600, env=env,
    )


def _check_results(out: Path, expected_runs: int) -> list[dict]:
    record_every = tomllib.loads((out / "config.toml").read_text())["run"]["record_every"]
    rows = json.loads((out / "summary.json").read_text())
    with (out / "summary.csv").open(newline="") as fh:
        csv_rows = list(csv.DictReader(fh))
    assert len(rows) == len(csv_rows) == expected_runs
    for row, csv_row in zip(rows, csv_rows, strict=True):
        assert row["run_id"] == csv_row["run_id"]
        assert row["status"] in STATUSES
        assert row["iterations"] >= 0
        trace = list(csv.DictReader((out / "traces" / f"{row['run_id']}.csv").open()))
        assert {"iteration", "loss", "grad_norm", "step_size", "val_metric"} <= set(trace[0])
        # The initial point and every record_every-th accepted step.
        assert len(trace) == row["iterations"] // record_every + 1
        if row["iterations"] % record_every == 0:  # the final iterate was recorded
            assert float(trace[-1]["loss"]) == pytest.approx(row["final_loss"], rel=1e-9)
    assert (out / "convergence.png").stat().st_size > 10_000
    assert (out / "losses.png").stat().st_size > 10_000
    written = (out / "config.toml").read_text()
    # The written config is valid, complete, and reads back to itself.
    assert dump_toml(resolve_config(tomllib.loads(written))) == written
    assert not list(out.rglob("*.tmp"))
    return rows


def _expected_runs(config: Path | None) -> int:
    cfg, base = load_config(config, quick=True)
    if len(cfg.data) == 1:
        return sum(len(g.lanes) for g in plan(cfg))
    tasks = {d.name: load_dataset(d, cfg.run.seeds[0], base).task for d in cfg.data}
    return sum(len(g.lanes) for g in plan(cfg, tasks))


def test_shipped_quickstart_is_the_embedded_default():
    assert tomllib.loads((ROOT / "configs" / "quickstart.toml").read_text()) == tomllib.loads(
        DEFAULT_CONFIG_TOML
    )


@pytest.mark.slow(25)
def test_default_run_through_the_console_script(tmp_path):
    proc = _run_cli("--quick", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "summary" in proc.stdout and "mse" in proc.stdout
    rows = _check_results(tmp_path / "out", _expected_runs(None))
    # Newton on least squares converges in one step (the objective is quadratic).
    newton = [r for r in rows if r["loss"] == "mse" and r["solver"] == "newton"]
    assert newton and all(r["status"] == "CONVERGED" and r["iterations"] <= 2 for r in newton)
    # The compiled solver loops went to the persistent cache for the next run to reuse: one
    # program per solver setting (--quick: one learning rate), its three losses switching
    # inside it: three programs, each called once per loss.
    assert len(list((tmp_path / "jax-cache").iterdir())) >= 3
    programs = {}
    for r in rows:
        programs.setdefault(r["compile_id"], set()).add((r["loss"], r["solver"]))
    assert sorted(programs.values(), key=sorted) == [
        {(loss, solver) for loss in ("mse", "mae", "huber delta=1.0")}
        for solver in ("gradient_descent", "newton", "subgradient")]
    assert all(r["calls_per_compile"] == 3 for r in rows)


def test_compile_cache_location(monkeypatch, tmp_path):
    from lossopt.cli import compile_cache_dir

    monkeypatch.setenv("LOSSOPT_CACHE_DIR", str(tmp_path / "c"))
    assert compile_cache_dir() == tmp_path / "c"
    assert compile_cache_dir(disabled=True) is None
    monkeypatch.setenv("LOSSOPT_CACHE_DIR", "")
    assert compile_cache_dir() is None
    monkeypatch.delenv("LOSSOPT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache_dir() == tmp_path / "xdg" / "lossopt" / "jax"


@pytest.mark.slow(20)
@pytest.mark.parametrize("config", [c for c in CONFIGS if c.stem in END_TO_END],
                         ids=lambda c: c.stem)
def test_shipped_config_runs_end_to_end(config, tmp_path):
    proc = _run_cli(str(config), "--quick", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_results(tmp_path / "out", _expected_runs(config))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.stem)
def test_every_shipped_config_checks_at_full_size_without_compiling(config, monkeypatch):
    # Every shipped config, as a user runs it (not --quick): data loaded, every check made,
    # every group's call traced and lowered. Compiling would fail the test.
    def no_compile(*args, **kwargs):
        raise AssertionError("check_experiment compiled a call")

    monkeypatch.setattr(jax.stages.Lowered, "compile", no_compile)
    cfg, base = load_config(config)
    checks = check_experiment(cfg, base)
    descriptions = [c.description for c in checks]
    assert len(set(descriptions)) == len(descriptions) >= 2
    assert all(c.runs >= 1 and c.lower_time_s > 0 for c in checks)
    if config.stem == "quickstart":
        # 3 losses x (gradient descent at 2 learning rates, Newton, subgradient) x 3 seeds;
        # the two learning rates share one call per loss.
        assert (len(checks), sum(c.runs for c in checks)) == (9, 36)


def test_check_names_the_group_whose_call_cannot_be_traced(tiny_cfg, monkeypatch):
    import lossopt.experiment._runner as runner

    real = runner._program_call

    def broken(cfg, group, problems):
        if group.solver_name == "subgradient":
            def fails(*args):
                raise ValueError("shapes (3,) and (4,) do not match")
            return jax.jit(fails)
        return real(cfg, group, problems)

    monkeypatch.setattr(runner, "_program_call", broken)
    with pytest.raises(ConfigError, match=r"group '.*subgradient.*' cannot be traced: ValueError: "
                                          r"shapes \(3,\) and \(4,\)"):
        check_experiment(tiny_cfg)


def test_a_shared_program_that_fails_only_together_is_a_config_error(monkeypatch):
    import lossopt.experiment._runner as runner

    cfg = resolve_config(tomllib.loads(TINY.replace(
        '[[solvers]]\nname = "gradient_descent"', '[[losses]]\nname = "huber"\n'
        '[[solvers]]\nname = "gradient_descent"', 1)))
    real = runner._program_call

    def broken(cfg, group, problems):
        if len(problems) > 1:  # each loss traces alone; the shared program does not
            raise ValueError("branch outputs differ")
        return real(cfg, group, problems)

    monkeypatch.setattr(runner, "_program_call", broken)
    with pytest.raises(ConfigError, match=r"`solvers\[0\]` \(gradient_descent\): group .* cannot be "
                                          r"traced: ValueError: branch outputs differ"):
        check_experiment(cfg)


@pytest.mark.slow(8)
def test_check_command_writes_nothing_and_exits_2_on_a_bad_config(tmp_path):
    # The embedded default (every shipped config is checked in-process above).
    proc = _run_cli("--quick", "--check", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "config OK: 9 calls of 3 compiled programs, 9 runs" in " ".join(proc.stderr.split())
    assert "linear_regression | huber delta=1.0 | newton" in proc.stdout
    assert [p.name for p in tmp_path.iterdir()] == []  # no results folder, no cache
    bad = _run_cli("--check", "--set", "run.batch_size=1000", cwd=tmp_path)
    assert bad.returncode == 2 and "run.batch_size" in bad.stderr


# --- config errors: exit status 2 and a message naming the key -----------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return path


BASE = """
[data]
kind = "linear_regression"
n_samples = 30
[[losses]]
name = "mse"
[[solvers]]
name = "gradient_descent"
learning_rate = 0.1
[run]
max_iters = 5
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BASE + "\n[output]\ndirectory = 'x'\n", r"unknown key `output.directory`"),
        (BASE.replace('name = "mse"', 'name = "msee"'),
         r"`losses\[0\].name`: unknown loss 'msee'"),
        (BASE.replace("n_samples = 30", 'n_samples = "30"'),
         r"`data.n_samples` must be an integer"),
        (BASE.replace("max_iters = 5", "max_iters = 0"), r"`run.max_iters` must be >= 1"),
        (BASE.replace("learning_rate = 0.1", "learning_rate = -0.1"),
         r"`solvers\[0\]` \(gradient_descent\).*learning_rate"),
        (BASE.replace("learning_rate = 0.1", "lr = 0.1"), r"unknown key `solvers\[0\].lr`"),
        (BASE.replace('name = "gradient_descent"', 'name = "adam"'),
         r"`solvers\[0\].name`: unknown solver 'adam'.*optax:adam"),
        (BASE.replace('kind = "linear_regression"', 'kind = "csv"\npath = "missing.csv"'),
         r"`data.path`: no such file"),
        (BASE.replace('kind = "linear_regression"', 'kind = "multiclass"'),
         r"loss 'mse' does not fit data of task 'multiclass'.*softmax_cross_entropy"),
        (BASE.replace('kind = "linear_regression"', 'kind = "logistic"')
         .replace('name = "mse"', 'name = "hinge"') + "\n[model]\nkind = 'softmax'\n",
         r"loss 'hinge' takes one score per example.*model.kind = 'logistic'.*multiclass_hinge"),
        (BASE.replace('name = "gradient_descent"\nlearning_rate = 0.1', 'name = "newton"')
         + "\n[model]\nkind = 'mlp'\nhidden = [300, 300]\n",
         r"'newton' with a dense Hessian needs .* MB.*linear_solver = 'cg'"),
        ("name = 1\n" + BASE, r"`name` must be a string; got 1"),
    ],
)
def test_bad_config_exits_2_naming_the_key(tmp_path, capsys, text, message):
    path = _write(tmp_path, text)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "config error" in err
    import re

    assert re.search(message, " ".join(err.split())), err


def test_set_overrides_and_their_errors():
    cfg, _ = load_config(None, ["run.max_iters=7", "data.noise=1.5", "losses.2.delta=2",
                                "model.kind=linear"])
    assert cfg.run.max_iters == 7
    assert cfg.data[0].noise == 1.5
    assert cfg.losses[2].to_dict() == {"name": "huber", "delta": 2}
    with pytest.raises(ConfigError, match=r"key\.path=value"):
        load_config(None, ["run.max_iters"])
    with pytest.raises(ConfigError, match="must index the array"):
        load_config(None, ["losses.9.delta=1"])


def test_missing_config_file_is_a_usage_error(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err


# --- resume, interruption, vmapped groups ----------------------------------------------------------


TINY = """
name = "tiny"
[data]
kind = "linear_regression"
n_samples = 40
noise = 0.3
[[losses]]
name = "mse"
[[solvers]]
name = "gradient_descent"
learning_rate = [0.05, 0.2]
[[solvers]]
name = "subgradient"
step_size = 0.1
[run]
max_iters = 40
gtol = 1e-10
seeds = [0, 1]
[output]
plots = false
"""


@pytest.fixture
def tiny_cfg():
    return resolve_config(tomllib.loads(TINY))


def test_sweep_lanes_run_in_one_call_and_equal_independent_runs(tiny_cfg, tmp_path):
    res = run_experiment(tiny_cfg, out_dir=tmp_path)
    assert res.ran == 6 and res.skipped == 0
    gd = [r for r in res.rows if r["solver"] == "gradient_descent"]
    assert len(gd) == 4 and all(r["lanes_in_call"] == 4 for r in gd)
    # The lane (learning rate 0.2, seed 1) equals an independent minimize on the same data.
    row = next(r for r in gd if r["seed"] == 1 and r["hyperparameters"] == {"learning_rate": 0.2})
    data = load_dataset(tiny_cfg.data[0], 1)
    X, y = jnp.asarray(data.X_train), jnp.asarray(data.y_train)

    def objective(p, X, y):
        return lossopt.losses.mse(X @ p["w"] + p["b"], y)

    p0 = {"w": jnp.zeros(X.shape[1]), "b": jnp.zeros(())}
    ref = lossopt.minimize(objective, p0, lossopt.solvers.GradientDescent(learning_rate=0.2),
                           args=(X, y), max_iters=40, gtol=1e-10)
    assert row["iterations"] == int(ref.iterations)
    # Same float64 arithmetic, batched vs unbatched matrix products: agreement to round-off.
    assert row["final_loss"] == pytest.approx(float(ref.value), rel=1e-10)


def test_cpu_lanes_run_mapped_and_each_gets_its_share_of_the_call_time(tmp_path):
    from lossopt.experiment._runner import _lanes_mapped

    cfg = resolve_config(tomllib.loads(TINY.replace("[0.05, 0.2]", "[0.02, 0.4]")
                                       .replace("gtol = 1e-10", "gtol = 1e-6")
                                       .replace("max_iters = 40", "max_iters = 400")))
    # On the CPU the lanes run one after another (each stops on its own), for every group.
    assert jax.default_backend() == "cpu" and _lanes_mapped(cfg, object())
    res = run_experiment(cfg, out_dir=tmp_path)
    gd = [r for r in res.rows if r["solver"] == "gradient_descent"]
    fast = [r for r in gd if r["hyperparameters"]["learning_rate"] == 0.4]
    slow = [r for r in gd if r["hyperparameters"]["learning_rate"] == 0.02]
    assert all(r["status"] == "CONVERGED" for r in fast)
    assert min(r["iterations"] for r in slow) > 3 * max(r["iterations"] for r in fast)
    # The call's time is split by evaluations: a lane that stopped early took less of it.
    evals = [r["num_fun_evals"] + r["num_grad_evals"] for r in gd]
    walls = [r["wall_time_s"] for r in gd]
    for e, w in zip(evals, walls, strict=True):
        assert w / sum(walls) == pytest.approx(e / sum(evals), rel=1e-9)
    assert max(r["wall_time_s"] for r in fast) < min(r["wall_time_s"] for r in slow)


def test_vmapped_lanes_share_the_call_time_equally():
    from lossopt.experiment._runner import _time_shares

    counts = types.SimpleNamespace(num_fun_evals=np.array([3, 30]), num_grad_evals=np.array([3, 30]))
    np.testing.assert_allclose(_time_shares(counts, 2, mapped=False), [0.5, 0.5])
    np.testing.assert_allclose(_time_shares(counts, 2, mapped=True), [1 / 11, 10 / 11])
    none = types.SimpleNamespace(num_fun_evals=np.zeros(2), num_grad_evals=np.zeros(2))
    np.testing.assert_allclose(_time_shares(none, 2, mapped=True), [0.5, 0.5])


@pytest.mark.parametrize("data, losses, solver, lanes", [
    ("linear_regression", ("mse", "huber delta=0.5", "quantile tau=0.3"),
     '"gradient_descent"\nlearning_rate = [0.05, 0.2]', 4),
    # counts: poisson_nll's R^2 is of exp(outputs), mse's of the outputs: two metric branches
    ("poisson", ("mse", "poisson_nll"), '"gradient_descent"\nlearning_rate = [0.05, 0.2]', 4),
    # second derivatives of the switch: Newton's Hessians
    ("linear_regression", ("mse", "huber delta=0.5"), '"newton"', 2),
], ids=["regression-gd", "counts-gd", "regression-newton"])
def test_the_losses_of_a_solver_setting_share_one_program_and_equal_a_program_each(
        data, losses, solver, lanes, tmp_path, monkeypatch):
    import lossopt.experiment._runner as runner

    entries = "".join(
        f'[[losses]]\nname = "{name}"\n' + "".join(f"{opt.replace('=', ' = ')}\n" for opt in rest)
        for name, *rest in (loss.split() for loss in losses[1:]))
    cfg = resolve_config(tomllib.loads(TINY.replace(
        '[[solvers]]\nname = "gradient_descent"\nlearning_rate = [0.05, 0.2]',
        f"{entries}[[solvers]]\nname = {solver}", 1)
        .replace('kind = "linear_regression"', f'kind = "{data}"')
        .replace('[[solvers]]\nname = "subgradient"\nstep_size = 0.1\n', "")))
    shared = run_experiment(cfg, out_dir=tmp_path / "shared")
    # One program (the solver's lanes: its learning rates x two seeds), called once per loss.
    programs = {r["compile_id"] for r in shared.rows}
    assert len(shared.rows) == lanes * len(losses) and len(programs) == 1
    assert all(r["calls_per_compile"] == len(losses) for r in shared.rows)
    for compile_id in programs:
        rows = [r for r in shared.rows if r["compile_id"] == compile_id]
        assert {r["loss"] for r in rows} == set(losses)
        assert len({r["solver"] for r in rows}) == 1

    monkeypatch.setattr(runner, "_program_key", lambda group, problem: None)
    alone = run_experiment(cfg, out_dir=tmp_path / "alone")  # a program per group, as before
    assert len({r["compile_id"] for r in alone.rows}) == len(losses)
    assert all(r["calls_per_compile"] == 1 for r in alone.rows)
    # The same operations in one branch of a switch: the same results, run for run.
    skip = {"wall_time_s", "compile_time_s", "compile_id", "calls_per_compile"}
    by_id = {r["run_id"]: r for r in alone.rows}
    for r in shared.rows:
        other = by_id[r["run_id"]]
        for key, value in r.items():
            if key in skip:
                continue
            if isinstance(value, float):
                assert value == pytest.approx(other[key], rel=1e-12, abs=1e-300), (key, r)
            else:
                assert value == other[key], (key, r)


@pytest.fixture(scope="module")
def switched_derivatives():
    """Value, gradient and Hessian in w of the runner's loss switch over two branches, each
    jitted once, as a solver differentiates it (index 0 and 1)."""
    from lossopt.experiment._runner import _switched

    def squares(w, X, *, scale):
        return scale * 0.5 * jnp.sum((X @ w) ** 2)

    def log_cosh(w, X, *, scale):
        return scale * jnp.sum(jnp.log(jnp.cosh(X @ w)))

    @jax.jit
    def derivatives(index, w, X, scale):
        f = _switched(index, [jax.jit(squares), jax.jit(log_cosh)])
        return (f(w, X, scale=scale), jax.grad(f)(w, X, scale=scale),
                jax.hessian(f)(w, X, scale=scale))

    return derivatives


def test_the_loss_switch_differentiates_as_its_branches_to_second_order(switched_derivatives):
    rng = np.random.default_rng(7)
    X, w, scale = rng.normal(size=(6, 3)), rng.normal(size=3), 1.7
    z = X @ w
    # Closed forms, in numpy (float64): 0.5 s |Xw|^2 and s sum log cosh(Xw).
    expected = {
        0: (0.5 * scale * z @ z, scale * X.T @ z, scale * X.T @ X),
        1: (scale * np.sum(np.log(np.cosh(z))), scale * X.T @ np.tanh(z),
            scale * X.T @ (X / np.cosh(z)[:, None] ** 2)),
    }
    for index, reference in expected.items():
        got = switched_derivatives(jnp.int32(index), jnp.asarray(w), jnp.asarray(X), scale)
        for name, a, b in zip(("value", "gradient", "Hessian"), got, reference, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=f"{index}: {name}")


CLASSIFICATION = """
name = "binary"
[data]
kind = "logistic"
n_samples = 160
n_features = 3
noise = 0.5
positive_fraction = 0.3
validation_fraction = 0.25
[model]
kind = "logistic"
[[losses]]
name = "sigmoid_binary_cross_entropy"
[[losses]]
name = "hinge"
[regularizer]
kind = "l2"
strength = 0.01
[[solvers]]
name = "newton"
[[solvers]]
name = "gradient_descent"
learning_rate = 0.5
[run]
max_iters = 60
gtol = 1e-9
[output]
plots = false
"""


def test_binary_classification_run_matches_an_independent_scipy_fit(tmp_path):
    # The classification path of the runner end to end in-process (logistic model, a smooth
    # and a nonsmooth loss, validation accuracy), against scipy on the same split.
    from scipy.optimize import minimize as scipy_minimize
    from scipy.special import expit

    cfg = resolve_config(tomllib.loads(CLASSIFICATION))
    res = run_experiment(cfg, out_dir=tmp_path)
    assert res.ran == 4
    rows = {(r["loss"], r["solver"]): r for r in res.rows}
    data = load_dataset(cfg.data[0], cfg.run.seeds[0])
    X, y, Xv, yv = data.X_train, data.y_train.astype(float), data.X_val, data.y_val

    def f(theta):  # mean logistic loss + 0.01 * (|w|^2 + b^2), with its gradient
        z = X @ theta[:-1] + theta[-1]
        loss = np.mean(np.logaddexp(0.0, z) - y * z) + 0.01 * theta @ theta
        r = (expit(z) - y) / len(y)
        return loss, np.append(X.T @ r, r.sum()) + 0.02 * theta

    ref = scipy_minimize(f, np.zeros(X.shape[1] + 1), jac=True, method="BFGS",
                         options={"gtol": 1e-12})
    newton = rows[("sigmoid_binary_cross_entropy", "newton")]
    assert newton["status"] == "CONVERGED" and newton["iterations"] <= 10
    assert newton["final_loss"] == pytest.approx(ref.fun, rel=1e-10)
    accuracy = np.mean(((Xv @ ref.x[:-1] + ref.x[-1]) > 0) == (yv == 1))
    assert newton["val_metric_name"] == "accuracy"
    assert newton["val_metric"] == pytest.approx(accuracy, abs=1e-12)
    # Gradient descent heads for the same optimum; hinge runs report a finite loss/accuracy.
    gd = rows[("sigmoid_binary_cross_entropy", "gradient_descent")]
    assert ref.fun - 1e-12 <= gd["final_loss"] < 1.05 * ref.fun
    for solver in ("newton", "gradient_descent"):
        hinge = rows[("hinge", solver)]
        assert np.isfinite(hinge["final_loss"]) and 0.5 <= hinge["val_metric"] <= 1.0


def test_programs_start_compiling_when_traced_and_at_most_a_window_ahead(monkeypatch):
    import threading

    import lossopt.experiment._runner as runner

    gate = threading.Event()  # the fake compiles wait here, so none finishes early
    started = []

    def fake_compile(lowered, mode, max_iters):
        started.append(lowered)
        gate.wait(timeout=30)
        return f"compiled {lowered}", types.SimpleNamespace(mode="fast")

    monkeypatch.setattr(runner, "compile_lowered", fake_compile)
    cfg = types.SimpleNamespace(run=types.SimpleNamespace(compile="fast", max_iters=3))
    ahead = runner._AheadOfTime(cfg, 2)
    window = runner._AheadOfTime.WINDOW
    try:
        for k in range(window + 2):  # traced one by one: each starts compiling when traced
            ahead.add(runner._Traced(f"p{k}", 0.0), f"id{k}", 1)
            assert len(ahead.pending) == min(k + 1, window)
        assert sorted(ahead.pending) == list(range(window))
        gate.set()
        assert ahead.get(0).compiled == "compiled p0"
        ahead.release(0)  # program 0 has run: the window moves on to the next program
        assert window in ahead.pending and window + 1 not in ahead.pending
        assert ahead.get(window + 1).compiled == f"compiled p{window + 1}"
        ahead.release(window + 1)
        assert ahead.get(1).compiled == "compiled p1"
        ahead.pool.shutdown(wait=True)  # every started compile has finished
        # Each program compiled exactly once (a released one is not compiled again).
        assert sorted(started) == sorted(f"p{k}" for k in range(window + 2))
    finally:
        gate.set()
        ahead.close()


def test_a_group_whose_program_is_compiled_runs_before_one_still_compiling():
    import lossopt.experiment._runner as runner

    class Compiler:  # programs 1 and 2 are compiled, program 0 is not
        def done(self, k):
            return k in {1, 2}

    program_of = {0: (0, 0), 1: (0, 1), 2: (1, 0), 3: (2, 0)}  # group -> (program, loss index)
    waiting = [0, 1, 2, 3]
    order = [runner._next_group(waiting, program_of, Compiler()) for _ in range(2)]
    assert order == [2, 3] and waiting == [0, 1]  # the ready ones, in the config's order
    # None ready: the first waiting group (its program is waited for), as without a pool.
    waiting = [0, 1]
    assert runner._next_group(waiting, {0: (0, 0), 1: (0, 1)}, Compiler()) == 0
    no_pool = runner._AheadOfTime(types.SimpleNamespace(run=None), 0)
    no_pool.add(runner._Traced("p0", 0.0), "id0", 1)
    assert not no_pool.done(0)  # without a pool nothing is compiled before its turn


def test_a_failed_compile_is_not_ready_and_raises_in_its_turn(monkeypatch):
    import lossopt.experiment._runner as runner

    def fake_compile(lowered, mode, max_iters):
        if lowered == "bad":
            raise RuntimeError("XLA failed")
        return f"compiled {lowered}", types.SimpleNamespace(mode="fast")

    monkeypatch.setattr(runner, "compile_lowered", fake_compile)
    cfg = types.SimpleNamespace(run=types.SimpleNamespace(compile="fast", max_iters=3))
    ahead = runner._AheadOfTime(cfg, 2)
    try:
        for k, name in enumerate(["good", "bad"]):
            ahead.add(runner._Traced(name, 0.0), f"id{k}", 1)
        ahead.pool.shutdown(wait=True)  # both compiles have ended
        assert ahead.done(0) and not ahead.done(1)
        # The failed program's group is not picked ahead of the config's order ...
        waiting = [0, 1]
        assert runner._next_group(waiting, {0: (1, 0), 1: (0, 0)}, ahead) == 1
        # ... and its error comes out when its turn comes.
        with pytest.raises(RuntimeError, match="XLA failed"):
            ahead.get(1)
    finally:
        ahead.close()


def test_compiling_ahead_changes_nothing_and_a_later_group_error_comes_first(
        tiny_cfg, tmp_path, monkeypatch):
    import lossopt.experiment._runner as runner

    monkeypatch.setenv("LOSSOPT_COMPILE_AHEAD", "0")
    one_by_one = run_experiment(tiny_cfg, out_dir=tmp_path / "a")
    monkeypatch.setenv("LOSSOPT_COMPILE_AHEAD", "2")  # both groups compile while the first runs
    ahead = run_experiment(tiny_cfg, out_dir=tmp_path / "b")
    timing = {"wall_time_s", "compile_time_s"}
    assert [{k: v for k, v in r.items() if k not in timing} for r in ahead.rows] == [
        {k: v for k, v in r.items() if k not in timing} for r in one_by_one.rows]

    # The second group's call fails to trace: every group is traced before anything is
    # written, so the error names the group and nothing runs or is written (not even the
    # first group's records, as an error raised in the second group's turn would leave).
    real = runner._program_call

    def broken(cfg, group, problems):
        if group.solver_name == "subgradient":
            raise ValueError("shapes (3,) and (4,) do not match")
        return real(cfg, group, problems)

    monkeypatch.setattr(runner, "_program_call", broken)
    seen = []
    with pytest.raises(ConfigError, match=r"`solvers\[1\]` \(subgradient\): group .* cannot be "
                                          r"traced: ValueError: shapes"):
        run_experiment(tiny_cfg, out_dir=tmp_path / "c", progress=lambda *a: seen.append(a))
    assert seen == []
    assert not (tmp_path / "c").exists()

    monkeypatch.setenv("LOSSOPT_COMPILE_AHEAD", "many")
    with pytest.raises(ConfigError, match="LOSSOPT_COMPILE_AHEAD must be a non-negative integer; "
                                          "got 'many'"):
        run_experiment(tiny_cfg, out_dir=tmp_path / "d")


@pytest.mark.slow(10)
def test_rerun_skips_completed_runs_and_force_redoes_them(tiny_cfg, tmp_path):
    first = run_experiment(tiny_cfg, out_dir=tmp_path)
    second = run_experiment(tiny_cfg, out_dir=tmp_path)
    assert (second.ran, second.skipped) == (0, 6)
    assert second.rows == first.rows
    forced = run_experiment(tiny_cfg, out_dir=tmp_path, force=True)
    assert (forced.ran, forced.skipped) == (6, 0)
    changed = tiny_cfg.replace(run=msgspec.structs.replace(tiny_cfg.run, max_iters=20))
    assert run_experiment(changed, out_dir=tmp_path).ran == 6  # a new fingerprint


def test_interrupted_run_keeps_completed_runs_and_leaves_no_partial_file(tiny_cfg, tmp_path):
    def interrupt_after_first_group(done, total, description):
        if done == 1:
            raise KeyboardInterrupt

    res = run_experiment(tiny_cfg, out_dir=tmp_path, progress=interrupt_after_first_group)
    assert res.interrupted and res.ran == 4
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary) == 4
    assert not list(tmp_path.rglob("*.tmp"))
    assert len(list((tmp_path / "traces").glob("*.csv"))) == 4
    resumed = run_experiment(tiny_cfg, out_dir=tmp_path)
    assert (resumed.ran, resumed.skipped) == (2, 4)


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "summary.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half written")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_library_refuses_float64_without_x64(tiny_cfg, tmp_path):
    with jax.enable_x64(False), pytest.raises(ConfigError, match="jax_enable_x64"):
        run_experiment(tiny_cfg, out_dir=tmp_path)


# --- data files ----------------------------------------------------------------------------------


def test_csv_loading_with_target_and_feature_columns(tmp_path):
    rng = np.random.default_rng(0)
    table = rng.normal(size=(20, 3))
    lines = ["a,b,y,c"] + [f"{r[0]},{r[1]},{i},{r[2]}" for i, r in enumerate(table)]
    (tmp_path / "d.csv").write_text("\n".join(lines))
    cfg = {"kind": "csv", "path": "d.csv", "target": "y", "features": ["c", "a"],
           "validation_fraction": 0.25, "standardize": False}
    ds = load_dataset(cfg, seed=3, base=tmp_path)
    assert ds.X_train.shape == (15, 2) and ds.X_val.shape == (5, 2)
    X = np.vstack([ds.X_train, ds.X_val])
    y = np.concatenate([ds.y_train, ds.y_val]).astype(int)
    np.testing.assert_array_equal(X, table[y][:, [2, 0]])  # rows follow their target index
    with pytest.raises(ValueError, match=r"`data.target` must name a column"):
        load_dataset({**cfg, "target": "z"}, seed=0, base=tmp_path)
    with pytest.raises(ValueError, match=r"`data.features` names unknown columns \['q'\]"):
        load_dataset({**cfg, "features": ["q"]}, seed=0, base=tmp_path)


def test_npz_loading_and_classification_labels(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 4))
    y = rng.choice([3, 7, 9], size=30)
    np.savez(tmp_path / "d.npz", features=X, labels=y)
    cfg = {"kind": "npz", "path": str(tmp_path / "d.npz"), "x_key": "features",
           "y_key": "labels", "task": "multiclass", "validation_fraction": 0.2}
    ds = load_dataset(cfg, seed=0)
    assert ds.task == "multiclass" and ds.n_classes == 3
    assert set(np.unique(ds.y_train)) <= {0, 1, 2}
    # Standardised with the training statistics.
    np.testing.assert_allclose(ds.X_train.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(ds.X_train.std(0), 1, atol=1e-12)
    with pytest.raises(ValueError, match=r"`data.x_key` = 'X' is not in d\.npz"):
        load_dataset({**cfg, "x_key": "X"}, seed=0)


def test_seed_experiment_data_and_least_squares_answer():
    cfg, _ = load_config(None)
    ds = load_dataset(cfg.data[0], seed=0)
    assert ds.X_train.shape == (80, 5)
    np.testing.assert_array_equal(ds.true_params, [1.5, -2.0, 0.5, 3.0, -1.0])
    A = np.hstack([ds.X_train, np.ones((80, 1))])
    coef, *_ = np.linalg.lstsq(A, ds.y_train, rcond=None)
    # noise 0.5 and 80 examples: the estimate is within a few standard errors (~0.06) of truth.
    np.testing.assert_allclose(coef[:5], ds.true_params, atol=0.3)


def test_plot_command_redraws_the_figures(tiny_cfg, tmp_path, capsys):
    run_experiment(tiny_cfg, out_dir=tmp_path)  # the runner draws no figures
    assert not (tmp_path / "convergence.png").exists()
    assert main(["plot", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "convergence.png"), str(tmp_path / "losses.png")]
    assert (tmp_path / "convergence.png").stat().st_size > 10_000
    assert main(["plot", str(tmp_path / "missing")]) == 2
    assert "no summary.json" in capsys.readouterr().err
    # `lossopt run` draws losses.png during the runs and then only the rest.
    from lossopt.plotting import plot_results

    (tmp_path / "losses.png").unlink()
    assert plot_results(tmp_path, loss_shapes=False) == [tmp_path / "convergence.png"]
    assert not (tmp_path / "losses.png").exists()


def test_loss_shapes_figure_covers_every_kind_of_supervised_loss(tmp_path):
    from lossopt.experiment._problem import loss_tasks
    from lossopt.plotting import plot_loss_shapes

    usable = [e.name for e in lossopt.losses.catalog() if loss_tasks(e.name)]
    # Every supervised loss that `lossopt run` accepts can be drawn (with its defaults).
    assert {"mse", "hinge", "softmax_cross_entropy", "poisson_nll", "tukey"} <= set(usable)
    path = plot_loss_shapes([{"name": n} for n in usable], tmp_path / "losses.png")
    assert path.stat().st_size > 20_000


def test_summary_keeps_datasets_apart():
    import io

    from rich.console import Console

    from lossopt.cli import _print_summary

    def row(data, seed, final):
        return {"data": data, "loss": "huber delta=1.0", "solver": "gradient_descent",
                "hyperparameters": '{"learning_rate": 0.1}', "status": "CONVERGED",
                "iterations": 10 + seed, "final_loss": final, "train_loss": final,
                "val_metric_name": "r2", "val_metric": 0.9, "wall_time_s": 0.001,
                "compile_time_s": 0.4, "compile_mode": "fast"}

    # Two datasets, two seeds each: the medians are per dataset (0.25 and 2.5), never the
    # median of all four (1.15).
    rows = [row("synthetic", 0, 0.2), row("synthetic", 1, 0.3),
            row("breast_cancer", 0, 2.0), row("breast_cancer", 1, 3.0)]
    out = io.StringIO()
    _print_summary(rows, Console(file=out, width=160, markup=False, emoji=False))
    text = out.getvalue()
    assert "data" in text and "synthetic" in text and "breast_cancer" in text
    assert "0.25" in text and "2.5" in text and "1.15" not in text


@pytest.mark.parametrize("kind", ["sklearn:diabetes", "sklearn:breast_cancer", "sklearn:iris",
                                  "sklearn:wine", "sklearn:digits"])
def test_scikit_learn_datasets_are_read_from_its_files_as_its_loaders_return_them(kind):
    import sklearn.datasets as skd

    from lossopt.experiment import _data

    X, y = _data._read_sklearn_files(kind)
    bunch = getattr(skd, _data.SKLEARN[kind][0])()
    np.testing.assert_array_equal(y, bunch.target)
    # diabetes: centred and scaled here with numpy, there with sklearn.preprocessing.scale
    np.testing.assert_allclose(X, bunch.data, rtol=0, atol=1e-15)
    assert X.dtype == np.float64


def test_scikit_learn_datasets_fall_back_to_the_loader_when_the_files_are_elsewhere(monkeypatch):
    import importlib.util

    from lossopt.experiment import _data

    read = _data._load_sklearn("sklearn:iris")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert _data._read_sklearn_files("sklearn:iris") is None
    loaded = _data._load_sklearn("sklearn:iris")
    assert loaded[2] == read[2] == "multiclass"
    np.testing.assert_array_equal(loaded[0], read[0])
    np.testing.assert_array_equal(loaded[1], read[1])
