"""lossopt.compare: f* and gaps against a closed-form minimum, time to tolerance recomputed from
the tidy rows, profiles against hand computations, the table's width, the figure's data, export.

One module-scoped comparison (two solvers x three seeds on a 5-dimensional quadratic) serves
most tests: each distinct solver compiles its loop once (about a second on 2 cores).
"""

from __future__ import annotations

import csv
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from rich.console import Console

import lossopt
from lossopt.comparison import (
    Comparison,
    compare,
    data_profile,
    performance_profile,
    plot_data_profile,
    plot_performance_profile,
    profile_costs,
)
from lossopt.solvers import LBFGS, GradientDescent

SEEDS = [0, 1, 2]
MAX_ITERS = 150


def quadratic(w, A, b):
    return 0.5 * w @ A @ w - b @ w


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(20240607)
    M = rng.normal(size=(5, 5))
    A = M @ M.T + 0.5 * np.eye(5)
    b = rng.normal(size=5)
    w_star = np.linalg.solve(A, b)
    f_star = float(0.5 * w_star @ A @ w_star - b @ w_star)  # = -b' A^{-1} b / 2
    lr = 1.0 / np.linalg.eigvalsh(A).max()  # stable, but too slow to converge in 150 steps
    return {"A": jnp.asarray(A), "b": jnp.asarray(b), "f_star": f_star, "lr": float(lr)}


@pytest.fixture(scope="module")
def cmp(problem):
    return compare(quadratic, lambda key: jax.random.normal(key, (5,)),
                   {"gd": GradientDescent(learning_rate=problem["lr"]), "lbfgs": LBFGS()},
                   args=(problem["A"], problem["b"]), seeds=SEEDS, max_iters=MAX_ITERS,
                   gtol=1e-9)


@pytest.fixture(scope="module")
def single(problem):
    # Same objective, solvers and shapes: reuses the compiled loops; f* given (no reference).
    return compare(quadratic, jnp.ones(5),
                   {"gd": GradientDescent(learning_rate=problem["lr"]), "lbfgs": LBFGS()},
                   args=(problem["A"], problem["b"]), reference=problem["f_star"],
                   max_iters=MAX_ITERS, gtol=1e-9)


def _rows_by_run(rows):
    runs: dict = {}
    for row in rows:
        runs.setdefault((row["solver"], row["start"]), []).append(row)
    return runs


# ---- f* and gaps ----------------------------------------------------------------------------


def test_f_star_matches_closed_form_minimum(cmp, problem):
    # The L-BFGS reference stops at |g|max <= 1e-12, so its value is within ~1e-24 of the
    # minimum; what remains is float64 rounding of f (a few ulps of the terms, ~1e-15).
    assert cmp.f_star == pytest.approx(problem["f_star"], rel=1e-12, abs=1e-14)
    info = cmp.reference_info
    assert info["kind"] == "auto" and "LBFGS" in info["solver"]
    assert info["gtol"] == 1e-12 and info["dtype"] == "float64"
    assert cmp.f_star == min(info["value"], info["best_run_value"])
    assert isinstance(lossopt.compare, type(compare)) and lossopt.Comparison is Comparison


def test_the_function_and_its_module_are_both_reachable():
    # `lossopt.compare` is the function; its module is `lossopt.comparison` (a module named
    # `compare` was hidden by the function: `import lossopt.compare as m` gave the function).
    import importlib

    import lossopt.comparison as module
    from lossopt import compare as function
    from lossopt import comparison

    assert callable(function) and function is lossopt.compare is module.compare
    assert comparison is module is importlib.import_module("lossopt.comparison")
    assert module.performance_profile is performance_profile and module.Comparison is Comparison
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("lossopt.compare")


def test_gaps_are_nonnegative_and_measured_from_f_star(cmp, problem):
    rows = cmp.to_rows()
    assert len(rows) == sum(len(r.trace["iteration"]) for r in cmp.runs)
    for row in rows:
        # f* is the minimum of every value any run reached (and the reference), so the gap
        # f - f* is >= 0 exactly; against the closed-form minimum it is >= 0 to rounding.
        assert row["f_minus_f_star"] >= 0.0
        assert row["f_minus_f_star"] == row["f"] - cmp.f_star
        assert row["f"] - problem["f_star"] >= -1e-14
    # Initial values are the objective at the seeded starts, computed independently here.
    for r in cmp.runs:
        x0 = np.asarray(jax.random.normal(jax.random.key(r.start), (5,)))
        f0 = 0.5 * x0 @ np.asarray(problem["A"]) @ x0 - np.asarray(problem["b"]) @ x0
        assert r.trace["f"][0] == pytest.approx(f0, rel=1e-12)


def test_run_rows_statuses_counts_and_derived_columns(cmp):
    statuses = {(r.solver, r.status) for r in cmp.runs}
    assert statuses == {("gd", "MAX_ITERS"), ("lbfgs", "CONVERGED")}
    assert [(r.solver, r.start) for r in cmp.runs] == [(s, k) for s in ("gd", "lbfgs")
                                                        for k in SEEDS]
    for r in cmp.runs:
        assert r.run_seconds > 0 and r.compile_seconds >= 0
        it = r.trace["iteration"]
        assert it[-1] == r.iterations
        # seconds are derived uniformly from the measured warm run time
        np.testing.assert_allclose(r.trace["seconds"], r.run_seconds * it / r.iterations)
        assert r.trace["fun_evals"][-1] == r.fun_evals  # totals are exact
        if r.solver == "gd":  # one evaluation per iteration: exact cumulative counts
            assert r.evals_exact and r.fun_evals == r.iterations + 1
            np.testing.assert_array_equal(r.trace["fun_evals"], it + 1)
        assert r.evals_exact == (r.fun_evals == r.iterations + 1 == r.grad_evals)
        with pytest.raises(ValueError):  # read-only
            r.trace["f"][0] = 0.0
    assert cmp.run("lbfgs", 1).start == 1
    with pytest.raises(KeyError, match="no run"):
        cmp.run("newton", 0)


# ---- time to tolerance ----------------------------------------------------------------------

EPS = (1e-2, 1e-6, 1e-14)


def test_time_to_tolerance_agrees_with_the_tidy_rows(cmp):
    ttt = cmp.time_to_tolerance(EPS)
    runs = _rows_by_run(cmp.to_rows())
    reached_any = missed_any = False
    for eps in EPS:
        threshold = eps * (abs(cmp.f_star) + 1.0)
        for solver in ("gd", "lbfgs"):
            firsts = []
            for start in SEEDS:
                hit = next((row for row in runs[(solver, start)]
                            if row["f_minus_f_star"] <= threshold), None)
                firsts.append(hit)
                mine = next(row for row in ttt.runs if row["solver"] == solver
                            and row["start"] == start and row["eps"] == eps)
                if hit is None:
                    missed_any = True
                    assert mine["iteration"] is None and mine["seconds"] is None
                else:
                    reached_any = True
                    assert (mine["iteration"], mine["fun_evals"], mine["seconds"]) == (
                        hit["iteration"], hit["fun_evals"], hit["seconds"])
            summary = next(row for row in ttt.summary
                           if row["solver"] == solver and row["eps"] == eps)
            assert summary["reached"] == sum(h is not None for h in firsts)
            for column, field in (("iterations", "iteration"), ("fun_evals", "fun_evals"),
                                  ("seconds", "seconds")):
                values = sorted(math.inf if h is None else h[field] for h in firsts)
                median = values[1]  # three seeds: the middle one
                assert summary[column] == (None if median == math.inf else median)
    # The table holds both cases, so neither branch above is vacuous: gradient descent at
    # 1/L needs far more than 150 steps for a 1e-14 gap on this conditioning; L-BFGS does not.
    assert reached_any and missed_any
    gd_tight = next(row for row in ttt.summary if row["solver"] == "gd" and row["eps"] == 1e-14)
    lbfgs_tight = next(row for row in ttt.summary
                       if row["solver"] == "lbfgs" and row["eps"] == 1e-14)
    assert gd_tight["iterations"] is None and lbfgs_tight["iterations"] is not None


def test_time_to_tolerance_table_shows_a_dash_when_not_reached(cmp):
    console = Console(width=100, record=True)
    console.print(cmp.time_to_tolerance(EPS).table())
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 100
    assert any(line.split("│")[1].strip() == "gd" and "1e-14" in line
               and line.split("│")[4].strip() == "-" for line in text.splitlines()
               if line.count("│") > 4)


# ---- profiles -------------------------------------------------------------------------------

# 3 solvers x 4 problems; None and inf are unsolved.
PERF_COSTS = {
    ("A", "p1"): 10, ("B", "p1"): 20, ("C", "p1"): 40,
    ("A", "p2"): 30, ("B", "p2"): 15, ("C", "p2"): None,
    ("A", "p3"): math.inf, ("B", "p3"): 8, ("C", "p3"): 4,
    ("A", "p4"): None, ("B", "p4"): None, ("C", "p4"): None,
}


def test_performance_profile_equals_a_hand_computation():
    # Ratios r = t / min_s t by hand:  p1: A 1, B 2, C 4;  p2: A 2, B 1, C inf;
    # p3: A inf, B 2, C 1;  p4: all inf (nobody solved it). Breakpoints: 1, 2, 4.
    taus, rho = performance_profile(PERF_COSTS)
    assert taus.tolist() == [1.0, 2.0, 4.0]
    assert rho["A"].tolist() == [1 / 4, 2 / 4, 2 / 4]
    assert rho["B"].tolist() == [1 / 4, 3 / 4, 3 / 4]
    assert rho["C"].tolist() == [1 / 4, 1 / 4, 2 / 4]
    taus, rho = performance_profile(PERF_COSTS, taus=[0.5, 1.5, 100.0])
    assert rho["B"].tolist() == [0.0, 1 / 4, 3 / 4]


def test_data_profile_equals_a_hand_computation():
    # n = 1 (units of 2 evaluations) and n = 3 (units of 4):
    # A: 4/2 = 2, 8/4 = 2;  B: 6/2 = 3, unsolved.
    costs = {("A", "q1"): 4, ("B", "q1"): 6, ("A", "q2"): 8, ("B", "q2"): float("nan")}
    alphas, d = data_profile(costs, {"q1": 1, "q2": 3})
    assert alphas.tolist() == [2.0, 3.0]
    assert d["A"].tolist() == [1.0, 1.0] and d["B"].tolist() == [0.0, 0.5]
    alphas, d = data_profile(costs, {"q1": 1, "q2": 3}, alphas=[1.0, 2.5])
    assert d["A"].tolist() == [0.0, 1.0] and d["B"].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("costs, match", [
    ({}, "non-empty"),
    ({("A", "p"): 1, ("B", "q"): 2}, "no entry for solver 'B' on problem 'p'"),
    ({("A", "p"): 0}, "must be > 0"),
    ({"A": 1}, "pair"),
])
def test_profiles_reject_bad_tables(costs, match):
    with pytest.raises(ValueError, match=match):
        performance_profile(costs)


def test_data_profile_needs_every_dimension():
    with pytest.raises(ValueError, match="no entry for problem 'q'"):
        data_profile({("A", "p"): 1, ("A", "q"): 2}, {"p": 2})


def test_profile_plots_draw_the_profiles():
    taus, rho = performance_profile(PERF_COSTS)
    fig = plot_performance_profile(PERF_COSTS)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    for solver in "ABC":
        (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == f"profile:{solver}"]
        np.testing.assert_array_equal(line.get_xdata(), taus)
        np.testing.assert_array_equal(line.get_ydata(), rho[solver])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["A", "B", "C"]
    costs = {("A", "q1"): 4, ("B", "q1"): 6, ("A", "q2"): 8, ("B", "q2"): None}
    fig = plot_data_profile(costs, {"q1": 1, "q2": 3})
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "profile:B"]
    assert line.get_xdata().tolist() == [2.0, 3.0] and line.get_ydata().tolist() == [0.0, 0.5]


def test_profile_costs_are_the_median_time_to_tolerance(cmp, single):
    costs = profile_costs({"seeded": cmp, "ones": single}, eps=1e-6, measure="fun_evals")
    assert set(costs) == {(s, p) for s in ("gd", "lbfgs") for p in ("seeded", "ones")}
    for problem, comparison in (("seeded", cmp), ("ones", single)):
        for row in comparison.time_to_tolerance(1e-6).summary:
            assert costs[(row["solver"], problem)] == row["fun_evals"]
    _, rho = performance_profile(costs)
    assert rho["lbfgs"][0] == 1.0  # L-BFGS needs fewer evaluations than GD on both


# ---- table, figure, export ------------------------------------------------------------------


@pytest.mark.parametrize("per", ["run", "solver"])
def test_table_fits_100_columns(cmp, per):
    console = Console(width=100, record=True)
    console.print(cmp.table(per=per))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 100
    text = "\n".join(lines)
    assert "MAX_ITERS" in text and "CONVERGED" in text and "lbfgs" in text
    body = [line for line in lines if line.startswith("│")]
    assert len(body) == (len(cmp.runs) if per == "run" else 2)


def _held(x, y, grid):  # the value at the last recorded x <= each grid point
    out = []
    for g in grid:
        idx = [i for i, xi in enumerate(x) if xi <= g]
        out.append(y[idx[-1]])
    return np.array(out)


def test_plot_medians_bands_markers_and_legend(cmp):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection

    fig = cmp.plot()
    gap_ax, evals_ax, time_ax, grad_ax = fig.axes
    floor = 1e-16 * (abs(cmp.f_star) + 1.0)
    for ax in fig.axes:
        assert ax.get_yscale() == "log" and ax.get_legend() is None
    assert gap_ax.get_xlabel() == "iteration" and "evaluations" in evals_ax.get_xlabel()
    assert "wall time" in time_ax.get_xlabel() and "gradient" in grad_ax.get_ylabel()
    runs = _rows_by_run(cmp.to_rows())
    for solver in ("gd", "lbfgs"):
        # the median line over seeds, recomputed from the tidy rows
        grid = sorted({row["iteration"] for start in SEEDS for row in runs[(solver, start)]})
        held = np.stack([_held([r["iteration"] for r in runs[(solver, s)]],
                               [max(r["f_minus_f_star"], floor) for r in runs[(solver, s)]],
                               grid) for s in SEEDS])
        (line,) = [ln for ln in gap_ax.get_lines() if ln.get_gid() == f"median:{solver}"]
        np.testing.assert_array_equal(line.get_xdata(), grid)
        np.testing.assert_allclose(line.get_ydata(), np.median(held, axis=0), rtol=1e-12)
        assert min(line.get_ydata()) >= floor
        bands = [c for c in gap_ax.collections if c.get_gid() == f"band:{solver}"]
        assert len(bands) == 1 and isinstance(bands[0], PolyCollection)
        band_y = bands[0].get_paths()[0].vertices[:, 1]
        assert band_y.min() == pytest.approx(held.min()) and band_y.max() == pytest.approx(
            held.max())
        # stop markers at each run's last iteration, on every panel's own x axis
        status = "MAX_ITERS" if solver == "gd" else "CONVERGED"
        solver_runs = [r for r in cmp.runs if r.solver == solver]
        for ax, x_of in ((gap_ax, lambda r: r.iterations), (evals_ax, lambda r: r.fun_evals),
                         (time_ax, lambda r: r.run_seconds)):
            (marker,) = [ln for ln in ax.get_lines() if ln.get_gid() == f"stop:{solver}:{status}"]
            assert marker.get_linestyle() == "None" and marker.get_marker() != "None"
            np.testing.assert_array_equal(marker.get_xdata(), [x_of(r) for r in solver_runs])
            np.testing.assert_array_equal(marker.get_ydata(),
                                          [max(r.f_minus_f_star, floor) for r in solver_runs])
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts[:2] == ["gd", "lbfgs"]
    assert "stop: MAX_ITERS" in texts and "stop: CONVERGED" in texts
    assert any("min-max" in t for t in texts) and any("floor" in t for t in texts)
    # the legend sits outside (to the right of) every axes
    FigureCanvasAgg(fig)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    legend_box = fig.legends[0].get_window_extent(renderer)
    assert legend_box.x0 >= max(ax.get_window_extent(renderer).x1 for ax in fig.axes)


def test_plot_iqr_band_and_single_start(cmp, single):
    fig = cmp.plot(band="iqr")
    assert any("IQR" in t.get_text() for t in fig.legends[0].get_texts())
    fig = single.plot()
    ax = fig.axes[0]
    gids = {ln.get_gid() for ln in ax.get_lines()}
    assert {"line:gd", "line:lbfgs"} <= gids and not any(c.get_gid() for c in ax.collections)
    (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == "line:lbfgs"]
    r = single.runs[1]
    np.testing.assert_array_equal(line.get_xdata(), r.trace["iteration"])
    np.testing.assert_array_equal(line.get_ydata(),
                                  np.maximum(r.trace["f_minus_f_star"],
                                             1e-16 * (abs(single.f_star) + 1)))
    with pytest.raises(ValueError, match="band"):
        cmp.plot(band="sd")


def test_to_csv_round_trips(cmp, tmp_path):
    path = cmp.to_csv(tmp_path / "iterations.csv")
    with open(path, newline="") as fh:
        read = list(csv.DictReader(fh))
    rows = cmp.to_rows()
    assert len(read) == len(rows) and list(read[0]) == list(rows[0])
    for mine, theirs in zip(rows, read, strict=True):
        assert theirs["solver"] == mine["solver"] and int(theirs["start"]) == mine["start"]
        assert int(theirs["iteration"]) == mine["iteration"]
        for column in ("f", "f_minus_f_star", "grad_norm", "fun_evals", "seconds"):
            assert float(theirs[column]) == mine[column]  # repr round-trips floats exactly
    path = cmp.to_csv(tmp_path / "runs.csv", kind="runs")
    with open(path, newline="") as fh:
        read = list(csv.DictReader(fh))
    assert [(r["solver"], int(r["start"]), r["status"]) for r in read] == [
        (r.solver, r.start, r.status) for r in cmp.runs]
    assert [float(r["run_seconds"]) for r in read] == [r.run_seconds for r in cmp.runs]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iterations.csv", "runs.csv"]


def test_to_pandas_without_pandas_says_what_to_do(cmp, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    with pytest.raises(ImportError, match="pip install pandas"):
        cmp.to_pandas()


def test_to_pandas_with_pandas(cmp):
    pd = pytest.importorskip("pandas")
    frame = cmp.to_pandas("runs")
    assert isinstance(frame, pd.DataFrame) and len(frame) == len(cmp.runs)


# ---- starts and validation --------------------------------------------------------------------


def test_inits_give_one_run_per_start_point(problem):
    starts = [jnp.zeros(5), jnp.full(5, 2.0)]
    gd = GradientDescent(learning_rate=problem["lr"])
    out = compare(quadratic, None, {"gd": gd}, inits=starts, args=(problem["A"], problem["b"]),
                  reference=problem["f_star"], max_iters=MAX_ITERS, gtol=1e-9)
    assert out.starts == (0, 1) and out.reference_info["kind"] == "given"
    direct = lossopt.minimize(quadratic, starts[1], gd, args=(problem["A"], problem["b"]),
                              max_iters=MAX_ITERS, gtol=1e-9)
    np.testing.assert_array_equal(out.run("gd", 1).trace["f"], direct.trace.to_numpy()["loss"])
    assert out.runs[0].trace["f_minus_f_star"][0] == pytest.approx(-problem["f_star"])


@pytest.mark.parametrize("kwargs, error, match", [
    ({"init_params": jnp.zeros(2), "seeds": [0]}, TypeError, "callable init"),
    ({"init_params": lambda k: jnp.zeros(2)}, TypeError, "seeds"),
    ({"init_params": lambda k: jnp.zeros(2), "seeds": [0, 0]}, ValueError, "repeats"),
    ({"init_params": None, "seeds": [0], "inits": [jnp.zeros(2)]}, ValueError, "not both"),
    ({"init_params": jnp.zeros(2), "inits": [jnp.zeros(2)]}, TypeError, "init_params=None"),
    ({"init_params": jnp.zeros(2), "reference": "best"}, ValueError, "reference"),
    ({"init_params": jnp.zeros(2), "batch_size": 2}, TypeError, "batch_size"),
    ({"init_params": jnp.zeros(2), "checkpoint_dir": "x"}, TypeError, "checkpoint_dir"),
    ({"init_params": jnp.zeros(2), "repeat": 0}, ValueError, "repeat"),
    ({"init_params": jnp.zeros(2), "solvers": {}}, TypeError, "non-empty dict"),
])
def test_compare_rejects_bad_arguments(kwargs, error, match):
    kwargs = {"solvers": {"gd": GradientDescent(0.1)}, **kwargs}
    with pytest.raises(error, match=match):
        compare(lambda w: jnp.sum(w ** 2), kwargs.pop("init_params"), kwargs.pop("solvers"),
                **kwargs)
