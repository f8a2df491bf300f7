"""`lossopt run` outputs: per-dataset summary rows, f - f* for test problems, the 100-column
summary, time-to-tolerance and profiles across problems, figures (checked through their data),
and plotting that never imports the runner."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from lossopt.cli import main, summary_table

# Two synthetic datasets of the same shape (the second one noisier), one loss, one solver, two
# seeds: 4 runs in 2 compiled calls (figures drawn from the files by the tests).
TWO_DATASETS = """
name = "two"
[[data]]
name = "quiet"
kind = "linear_regression"
n_samples = 30
n_features = 2
noise = 0.1
[[data]]
name = "noisy"
kind = "linear_regression"
n_samples = 30
n_features = 2
noise = 2.0
[[losses]]
name = "mse"
[[solvers]]
name = "gradient_descent"
learning_rate = 0.05
[run]
max_iters = 15
seeds = [0, 1]
compile = "fast"
[output]
plots = false
"""

# Two test problems with known minima x two gradient-descent step sizes (the lanes of one
# compiled call per problem): 4 runs, 2 compiled calls. linear_full_rank (MGH 32) with n = 3,
# m = 5 is linear least squares; on Rosenbrock the large step diverges (NONFINITE) and the
# small one reaches no tolerance (the "-" entries).
PROBLEMS = """
name = "problems"
[problems]
linear_full_rank = { n = 3, m = 5 }
rosenbrock = {}
[[solvers]]
name = "gradient_descent"
learning_rate = [0.001, 0.1]
[run]
max_iters = 60
gtol = 1e-12
compile = "fast"
"""


def _run(tmp: Path, text: str) -> tuple[Path, str]:
    """`lossopt run` in-process in a 100-column terminal: (results folder, what it printed)."""
    config, out = tmp / "c.toml", tmp / "out"
    config.write_text(text)
    printed, errors = io.StringIO(), io.StringIO()
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # rich reads the width from it when not on a terminal
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
            rc = main(["run", str(config), "--out", str(out), "--no-compile-cache"])
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
    assert rc == 0, errors.getvalue()[-3000:]
    return out, printed.getvalue()


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _trace(out: Path, run_id: str) -> dict[str, np.ndarray]:
    rows = _csv(out / "traces" / f"{run_id}.csv")
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


@pytest.fixture(scope="module")
def two_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("two"), TWO_DATASETS)


@pytest.fixture(scope="module")
def problems_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("problems"), PROBLEMS)


def test_two_datasets_print_and_write_one_row_per_dataset_never_merged(two_run):
    out, printed = two_run
    rows = _csv(out / "summary.csv")
    # One row per (dataset, loss, solver configuration, seed): 2 x 1 x 1 x 2.
    assert sorted((r["data"], r["seed"]) for r in rows) == [
        ("noisy", "0"), ("noisy", "1"), ("quiet", "0"), ("quiet", "1")]
    table_lines = [line for line in printed.splitlines() if "gradient_descent" in line]
    assert [line.split()[0] for line in table_lines] == ["quiet", "noisy"]
    for data, line in zip(("quiet", "noisy"), table_lines, strict=True):
        losses = [float(r["train_loss"]) for r in rows if r["data"] == data]
        assert f"{float(np.median(losses)):.5g}" in line  # the median of this dataset's seeds
        assert line.split()[3] == "2"  # runs: this dataset's two seeds only
    merged = float(np.median([float(r["train_loss"]) for r in rows]))
    assert f"{merged:.5g}" not in printed
    # Records store values as values: the hyperparameters are an object, not a JSON string.
    record = json.loads(next((out / "runs").glob("*.json")).read_text())
    assert record["row"]["hyperparameters"] == {"learning_rate": 0.05}
    assert record["row"]["f_star"] is None and rows[0]["f_minus_f_star"] == ""


def test_f_minus_f_star_matches_an_independent_least_squares_minimum(problems_run):
    out, _ = problems_run
    # MGH 32 (n = 3, m = 5) is linear least squares: r(x) = A x - 1 with A = [I; 0] - (2/m) 1 1^T.
    n, m = 3, 5
    A = np.vstack([np.eye(n), np.zeros((m - n, n))]) - 2.0 / m
    x, *_ = np.linalg.lstsq(A, np.ones(m), rcond=None)
    f_star = float(np.sum((A @ x - 1.0) ** 2))
    assert f_star == pytest.approx(m - n, rel=1e-12)  # the paper's value, from numpy alone
    rows = [r for r in _csv(out / "summary.csv") if r["data"] == "linear_full_rank"]
    assert len(rows) == 2
    for r in rows:
        # f - f* of the summary is the final value minus the independent minimum (float64
        # round-off of values near 2: a few 1e-15).
        assert float(r["f_minus_f_star"]) == pytest.approx(float(r["final_loss"]) - f_star,
                                                           abs=1e-12)
        trace = _trace(out, r["run_id"])
        assert np.all(trace["loss"] - f_star >= -1e-12)  # never below the minimum
    fast = next(r for r in rows if json.loads(r["hyperparameters"])["learning_rate"] == 0.1)
    assert float(fast["f_minus_f_star"]) < 1e-10


def test_time_to_tolerance_and_profiles_agree_with_the_records(problems_run):
    from lossopt.plotting import profile_figures

    out, printed = problems_run
    assert (out / "performance_profile.png").is_file() and (out / "data_profile.png").is_file()
    table = _csv(out / "time_to_tolerance.csv")
    rows = {r["run_id"]: r for r in _csv(out / "summary.csv")}
    assert len(table) == 4 * 3  # runs x eps
    for r in rows.values():
        trace = _trace(out, r["run_id"])
        f_star = float(r["f_star"])
        label = r["solver"] + "".join(
            f" {k}={v}" for k, v in json.loads(r["hyperparameters"]).items())
        for eps in (1e-2, 1e-4, 1e-8):
            entry = next(t for t in table if t["problem"] == r["data"]
                         and t["solver"] == label and float(t["eps"]) == eps)
            hits = np.flatnonzero(trace["loss"] - f_star <= eps * (abs(f_star) + 1))
            if hits.size == 0:
                assert entry["iterations"] == entry["fun_evals"] == "-"
            else:
                assert int(entry["iterations"]) == int(trace["iteration"][hits[0]])
                # ... and the printed table shows it (iterations / evaluations).
                cell = f"{int(entry['iterations'])} / {float(entry['fun_evals']):.0f}"
                assert any(cell in line and line.split()[0] == r["data"]
                           for line in printed.splitlines()), cell
    assert "time to tolerance" in printed
    # The performance profile by hand from the table's evaluation counts at eps = 1e-4.
    costs = {}
    for t in table:
        if float(t["eps"]) == 1e-4:
            costs[t["solver"], t["problem"]] = math.inf if t["fun_evals"] == "-" else float(
                t["fun_evals"])
    problems = sorted({p for _, p in costs})
    solvers = sorted({s for s, _ in costs})
    best = {p: min(costs[s, p] for s in solvers) for p in problems}
    perf, data = profile_figures(out / "time_to_tolerance.csv")
    ax = perf.axes[0]
    for s in solvers:
        line = next(ln for ln in ax.get_lines() if ln.get_gid() == f"profile:{s}")
        for tau, rho in zip(line.get_xdata(), line.get_ydata(), strict=True):
            expected = np.mean([math.isfinite(best[p]) and costs[s, p] / best[p] <= tau
                                for p in problems])
            assert rho == pytest.approx(expected)
    assert ax.get_xscale() == "log" and data.axes[0].get_lines()


def test_convergence_figure_shows_gaps_stops_and_derived_time(problems_run):
    from lossopt.plotting import convergence_figure, read_trace

    out, _ = problems_run
    rows = json.loads((out / "summary.json").read_text())
    traces = {r["run_id"]: read_trace(out / "traces" / f"{r['run_id']}.csv") for r in rows}
    fig = convergence_figure(rows, traces)
    axes = fig.axes
    assert [a.get_title() for a in axes[:2]] == ["linear_full_rank", "rosenbrock"]
    assert all(a.get_yscale() == "log" and a.get_ylabel() == "f - f*" for a in axes)
    assert "derived" in axes[2].get_xlabel() and axes[0].get_xlabel() == "iteration"
    assert all(a.get_legend() is None for a in axes) and fig.legends  # legend outside
    for r in rows:
        ax = axes[0 if r["data"] == "linear_full_rank" else 1]
        config = r["solver"] + "".join(f" {k}={v}" for k, v in r["hyperparameters"].items())
        line = next(ln for ln in ax.get_lines() if ln.get_gid() == f"line:{config}")
        gap = traces[r["run_id"]]["loss"] - r["f_star"]
        gap = gap[np.isfinite(gap)]  # a diverged run's line ends at its last finite value
        floor = 1e-16 * (max(abs(x["f_star"]) for x in rows if x["data"] == r["data"]) + 1)
        np.testing.assert_allclose(line.get_ydata(), np.maximum(gap, floor), rtol=1e-12)
        stop = next(ln for ln in ax.get_lines()
                    if ln.get_gid() == f"stop:{config}:{r['status']}")
        assert stop.get_xdata()[0] == traces[r["run_id"]]["iteration"][-1]
    # The diverged Rosenbrock run does not stretch its panel: the top is 100x the largest
    # starting gap, and its NONFINITE stop sits within the axes.
    rosen = [r for r in rows if r["data"] == "rosenbrock"]
    assert any(r["status"] == "NONFINITE" for r in rosen)
    top = 100 * max(traces[r["run_id"]]["loss"][0] - r["f_star"] for r in rosen)
    assert axes[1].get_ylim()[1] == pytest.approx(top)
    stops = [ln for ln in axes[1].get_lines() if ln.get_gid().endswith(":NONFINITE")]
    assert stops and all(y <= top for ln in stops for y in ln.get_ydata())


def test_seeds_are_a_median_line_with_a_band(two_run):
    from lossopt.plotting import convergence_figure, read_trace

    out, _ = two_run
    rows = [r for r in json.loads((out / "summary.json").read_text()) if r["data"] == "quiet"]
    traces = {r["run_id"]: read_trace(out / "traces" / f"{r['run_id']}.csv") for r in rows}
    fig = convergence_figure(rows, traces)
    ax = fig.axes[0]
    median = next(ln for ln in ax.get_lines() if ln.get_gid().startswith("median:"))
    # f_best per seed is the run's own lowest value (one solver); the median of the seeds' gaps
    # (all traces have the same iterations here, no holding needed), floored at 1e-16 (|f| + 1).
    gaps = [traces[r["run_id"]]["loss"] - traces[r["run_id"]]["loss"].min() for r in rows]
    floor = 1e-16 * (max(traces[r["run_id"]]["loss"].min() for r in rows) + 1)
    np.testing.assert_allclose(median.get_ydata(), np.median(np.maximum(gaps, floor), axis=0),
                               rtol=1e-12)
    assert any(c.get_gid() and c.get_gid().startswith("band:") for c in ax.collections)


def test_the_summary_renders_within_100_columns():
    long = "a_dataset_with_a_rather_long_name"
    rows = [{"data": f"{long}_{d}", "loss": "huber delta=1.0", "solver": "gradient_descent",
             "hyperparameters": {"learning_rate": 0.001, "momentum": 0.9, "nesterov": True},
             "seed": s, "status": "LINE_SEARCH_FAILED", "iterations": 12345,
             "final_loss": 1.23456789e-3, "train_loss": 1.23456789e-3, "val_metric_name": "r2",
             "val_metric": 0.987654, "wall_time_s": 0.0123, "compile_time_s": 12.5,
             "compile_mode": "optimized", "f_star": None} for d in range(2) for s in range(3)]
    console = Console(width=100, record=True, file=io.StringIO(), markup=False, emoji=False)
    console.print(summary_table(rows))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 100
    # Nothing is dropped or cut: each column's folded text, read down the column, holds every
    # cell in full (the header rule's dashes give the columns' spans).
    rule = next(i for i, line in enumerate(lines) if set(line.strip()) == {"─"})
    header, body = lines[rule - 1], lines[rule + 1:]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    names = header.split()
    assert names == ["data", "loss", "solver", "n", "status", "iters", "objective",
                     "validation", "run", "compile"]
    # Text columns are left-aligned (the header starts where the column does) and each is
    # followed by another column's header start.
    spans = dict(zip(names, zip(starts, [*starts[1:], 101], strict=True), strict=True))

    def column(name: str) -> str:
        lo, hi = spans[name]
        return "".join("".join(line[lo:hi].split()) for line in body)

    assert column("data") == f"{long}_0{long}_1"
    assert column("solver") == 2 * "gradient_descentlearning_rate=0.001momentum=0.9nesterov=True"
    assert column("status") == 2 * "LINE_SEARCH_FAILEDx3"
    assert column("loss") == 2 * "huberdelta=1.0"
    # Numbers never wrap: each on the first line of its row.
    first_lines = [line for line in body if line.strip().startswith(long[:5])]
    assert len(first_lines) == 2
    for line in first_lines:
        for cell in ("12345", "0.0012346", "r2 0.9877", "12.3 ms", "12.50 s o", " 3 "):
            assert cell in line, (cell, line)


def test_plotting_imports_no_runner(problems_run):
    out, _ = problems_run
    code = ("import sys; import lossopt.plotting as p; p.plot_results(sys.argv[1]); "
            "print(sorted(m for m in sys.modules if m.startswith('lossopt.experiment')))")
    proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = proc.stdout.strip()
    assert "lossopt.experiment._runner" not in loaded and "lossopt.experiment._tables" in loaded


LASSO = """
name = "lasso"
[data]
kind = "linear_regression"
n_samples = 40
n_features = 5
[[losses]]
name = "mse"
[regularizer]
kind = "l1"
strength = 0.3
[[solvers]]
name = "proximal_gradient"
learning_rate = 0.1
[run]
max_iters = 500
gtol = 1e-9
compile = "fast"
[output]
plots = false
"""


def test_proximal_gradient_applies_an_l1_regularizer_through_its_prox(tmp_path):
    import tomllib

    from lossopt.experiment import load_dataset, resolve_config, run_experiment

    cfg = resolve_config(tomllib.loads(LASSO))
    (row,) = run_experiment(cfg, out_dir=tmp_path).rows
    # The gradient mapping (what grad_norm and gtol measure for a prox method) reaches 1e-9:
    # the L1 term went through the soft-threshold, not a subgradient (which never gets there).
    assert row["status"] == "CONVERGED" and row["grad_norm"] <= 1e-9
    # F = mean((X w + b - y)^2) + 0.3 (|w|_1 + |b|) minimised by an independent numpy ISTA
    # with step 1/L and 20000 iterations (linear convergence: F - F* far below 1e-12).
    ds = load_dataset(cfg.data[0], cfg.run.seeds[0])
    A = np.hstack([ds.X_train, np.ones((len(ds.y_train), 1))])
    n = len(ds.y_train)
    step = 1.0 / (2.0 / n * np.linalg.eigvalsh(A.T @ A).max())
    theta = np.zeros(A.shape[1])
    for _ in range(20000):
        v = theta - step * (2.0 / n) * A.T @ (A @ theta - ds.y_train)
        theta = np.sign(v) * np.maximum(np.abs(v) - step * 0.3, 0.0)
    f_ref = np.mean((A @ theta - ds.y_train) ** 2) + 0.3 * np.abs(theta).sum()
    # |G| <= 1e-9 at a distance O(1) from the minimiser: F - F* of order 1e-9 at most.
    assert row["final_loss"] == pytest.approx(f_ref, abs=1e-8)
    assert row["final_loss"] >= f_ref - 1e-12


BASE = """
[[data]]
kind = "linear_regression"
n_samples = 30
[[data]]
kind = "problem:extended_rosenbrock"
kwargs = { n = 4 }
[[losses]]
name = "mse"
[[solvers]]
name = "gradient_descent"
learning_rate = [0.01, 0.1]
"""


def test_problem_data_in_a_config_and_the_plan_it_gives():
    import tomllib

    from lossopt import problems
    from lossopt.experiment import dump_toml, plan, resolve_config

    spec = resolve_config(tomllib.loads(BASE))
    data, problem = spec.data
    assert (problem.problem, problem.name, problem.kwargs) == (
        "extended_rosenbrock", "extended_rosenbrock", {"n": 4})
    assert data.problem is None and data.name == "linear_regression"
    groups = plan(spec)
    # The dataset: one group (mse x gradient descent, 2 learning rates as lanes) per seed set;
    # the problem: no loss, one run per learning rate (its start does not depend on the seed).
    assert [(g.data_name, g.loss_label, len(g.lanes)) for g in groups] == [
        ("linear_regression", "mse", 2), ("extended_rosenbrock", "-", 2)]
    assert problems.get("extended_rosenbrock", n=4).n == 4
    assert dump_toml(resolve_config(tomllib.loads(dump_toml(spec)))) == dump_toml(spec)


def test_problems_table_errors_name_the_problem():
    from lossopt.experiment import ConfigError, resolve_config

    solvers = [{"name": "lbfgs"}]
    for problems, message in (({"rosenbrock": {"n": "2"}}, "`problems.rosenbrock.n` must be an "
                               "integer; got '2'"),
                              ({"rosenbrock": 3}, "`problems.rosenbrock` must be a table"),
                              ({"nope": {}}, "`data.kind`: unknown problem 'nope'")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            resolve_config({"problems": problems, "solvers": solvers})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("problem:extended_rosenbrock", "problem:nope"),
         r"`data\[1\].kind`: unknown problem 'nope'; known problems: bard, "),
        (("n = 4", "q = 4"), r"unknown key `data\[1\].kwargs.q` for problem 'extended_rosenbrock'"
                             r"; accepted: n"),
        (("n = 4", "n = 3"), r"`data\[1\].kwargs` \(problem 'extended_rosenbrock'\): .*even"),
        (("n = 4", 'n = "4"'), r"`data\[1\].kwargs.n` must be an integer; got '4'"),
        (("n_samples = 30", "n_samples = 0"), r"`data\[0\].n_samples` must be >= 1; got 0"),
        (("n_samples = 30", "n_samples = 30\nnoise = inf"),
         r"`data\[0\].noise` must be finite; got inf"),
        (("[[losses]]", "[run]\ndtype = 'float16'\n[[losses]]"),
         r"`run.dtype` must be one of float32, float64; got 'float16'"),
        (("[[losses]]", "[model]\nkind = 'mlp'\nhidden = [8, 0]\n[[losses]]"),
         r"`model.hidden\[1\]` must be >= 1; got 0"),
        (("[[losses]]", "[run]\nseeds = [0, -1]\n[[losses]]"),
         r"`run.seeds\[1\]` must be >= 0; got -1"),
        (("[[losses]]", "[regularizer]\nstrength = 1.0\n[[losses]]"),
         r"`regularizer.kind` is required"),
        (("[[losses]]", "[output]\nplots = 'yes'\n[[losses]]"),
         r"`output.plots` must be true/false; got 'yes'"),
    ],
)
def test_schema_errors_name_the_key_path_expected_and_received(change, message):
    import tomllib

    from lossopt.experiment import ConfigError, resolve_config

    old, new = change
    with pytest.raises(ConfigError) as err:
        resolve_config(tomllib.loads(BASE.replace(old, new, 1)))
    assert re.search(message, str(err.value)), str(err.value)


@pytest.mark.parametrize("low, high", [(1e-16, 10.0), (0.15, 0.9)])  # 0.15-0.9: minor labels
def test_log_axes_label_the_ticks_matplotlib_labels_in_plain_text(low, high):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from lossopt._compare._figures import log_axis

    def labels(plain: bool) -> dict[float, str]:
        fig = Figure()
        ax = fig.subplots()
        ax.plot([0, 1], [low, high])
        log_axis(ax) if plain else ax.set_yscale("log")
        FigureCanvasAgg(fig).draw()
        return {round(float(t.get_loc()), 20): t.label1.get_text()
                for t in ax.yaxis.get_major_ticks() + ax.yaxis.get_minor_ticks()
                if t.label1.get_text() and low / 10 <= t.get_loc() <= high * 10}

    ours, matplotlibs = labels(True), labels(False)
    assert set(ours) == set(matplotlibs) and len(ours) >= 2  # the same ticks labelled
    digits = str.maketrans("\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079",
                           "-0123456789")
    for value, text in ours.items():
        assert "$" not in text and "$" in matplotlibs[value]  # plain text, not mathtext
        coefficient, _, power = text.rpartition("\u00d7")
        assert power.startswith("10")
        shown = float(coefficient or 1) * 10.0 ** int(power[2:].translate(digits))
        assert shown == pytest.approx(value, rel=1e-12), (text, value)
