"""Matplotlib figures of a results folder: suboptimality traces, loss shapes, profiles.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot, no global backend
change), so they render headless and never open a window. They are drawn from the files
``lossopt run`` writes (records, traces, ``time_to_tolerance.csv``); this module never
imports the runner. The convergence panels share their drawing code (median line, band,
status markers) with :meth:`lossopt.comparison.Comparison.plot`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lossopt.comparison import MatplotlibFigure

__all__ = ["convergence_figure", "plot_convergence", "plot_loss_shapes", "plot_profiles",
           "plot_results", "profile_figures", "read_trace"]


def _figure(n_panels: int, *, width: float = 5.0, height: float = 3.8):
    from matplotlib.figure import Figure

    cols = min(n_panels, 3)
    rows = -(-n_panels // cols)
    fig = Figure(figsize=(width * cols, height * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    _margins(fig, rows, cols, left=0.7, right=0.15, bottom=0.6, top=0.4, gap_x=0.75, gap_y=1.0)
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _margins(fig: Any, rows: int, cols: int, *, left: float, right: float, bottom: float,
             top: float, gap_x: float, gap_y: float) -> None:
    """Place the ``rows x cols`` panels with margins and gaps between panels given in inches
    (room for tick labels, axis labels and titles), for the figure's current size.

    Instead of a layout engine: matplotlib's constrained layout measures every text (each log
    axis's tick labels) several times per save, about a second for a convergence figure.
    """
    width, height = fig.get_size_inches()
    panel_w = (width - left - right - (cols - 1) * gap_x) / cols
    panel_h = (height - bottom - top - (rows - 1) * gap_y) / rows
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, wspace=gap_x / panel_w, hspace=gap_y / panel_h)


def _save(fig, path: Path) -> Path:
    from lossopt._io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=110)
    return path


def read_trace(path: str | Path) -> dict[str, np.ndarray]:
    """Read a ``traces/<run_id>.csv`` file into columns of floats."""
    with Path(path).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return {}
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


GAP_FLOOR = 1e-16  # gaps below GAP_FLOOR (|reference| + 1) are drawn at it (log axes)
TIME_LABEL = "wall time [s] (derived: run time x k / iterations)"


def _panel_key(rows: Sequence[dict[str, Any]]):
    several = len({r.get("data") for r in rows}) > 1

    def key(r: dict[str, Any]) -> str:
        if r.get("loss", "-") == "-":  # a test problem: no loss
            return str(r["data"])
        return f"{r['data']} | {r['loss']}" if several else str(r["loss"])

    return key


def _references(rows, traces) -> tuple[dict[str, float], dict[str, str]]:
    """Each run's reference value and its kind: the problem's known f* ("f*"), else the
    lowest value any run reached on the same data, loss and seed ("best")."""
    best: dict[tuple, float] = {}
    for r in rows:
        tr = traces.get(r["run_id"])
        values = [r.get("train_loss", r["final_loss"])]
        if tr:
            values += list(tr[_objective_column(tr)])
        finite = [v for v in values if v is not None and np.isfinite(v)]
        key = (r.get("data"), r["loss"], r.get("seed"))
        if finite:
            best[key] = min(best.get(key, np.inf), min(finite))
    refs, kinds = {}, {}
    for r in rows:
        if r.get("f_star") is not None:
            refs[r["run_id"]], kinds[r["run_id"]] = float(r["f_star"]), "f*"
        else:
            refs[r["run_id"]] = best.get((r.get("data"), r["loss"], r.get("seed")), np.nan)
            kinds[r["run_id"]] = "best"
    return refs, kinds


def convergence_figure(
    rows: Sequence[dict[str, Any]],
    traces: dict[str, dict[str, np.ndarray]],
    *,
    title: str = "",
    band: str = "minmax",
) -> MatplotlibFigure:
    """The suboptimality of every run, against iterations (top row) and wall time (bottom).

    One column of panels per dataset x loss (per problem for test problems). The y axis is
    ``f - f*`` on a log scale where the problem's ``f*`` is known, else ``f - f_best``, with
    ``f_best`` the lowest value any run reached on the same data, loss and seed (so seeds,
    which draw different data, share one scale instead of plateauing at their own levels).
    ``f`` is the training objective (``train_loss`` for minibatch or dropout runs). Runs of one
    solver configuration over several seeds are drawn as the median line with a band
    (``band="minmax"`` or ``"iqr"``); each run's stop is a marker whose shape names its status.
    Gaps below ``1e-16 (|reference| + 1)`` are drawn at that floor. The wall time of iteration
    ``k`` is derived (the run's measured time x ``k / iterations``), as the axis says. Legends
    sit outside the axes.

    Returns:
        A ``matplotlib.figure.Figure`` (artists tagged ``line:<config>``,
        ``median:<config>``, ``band:<config>``, ``stop:<config>:<STATUS>``).
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from lossopt._compare._figures import _BANDS, draw_runs, legend_handles, log_axis

    panel = _panel_key(rows)
    panels = list(dict.fromkeys(panel(r) for r in rows))
    configs = list(dict.fromkeys(_config(r) for r in rows))
    colours = {c: f"C{i % 10}" for i, c in enumerate(configs)}
    refs, kinds = _references(rows, traces)
    # Up to three panels a row; each panel is a pair: iterations above, wall time below.
    cols = min(max(len(panels), 1), 3)
    pairs = -(-max(len(panels), 1) // cols)
    fig = Figure(figsize=(4.6 * cols, 3.6 * 2 * pairs))
    grid = fig.subplots(2 * pairs, cols, squeeze=False)
    axes = {(row, j): grid[2 * (j // cols) + row, j % cols]
            for j in range(len(panels)) for row in (0, 1)}
    for k in range(len(panels), pairs * cols):  # unused cells of the last row of pairs
        for row in (0, 1):
            grid[2 * (k // cols) + row, k % cols].set_visible(False)
    statuses: list[str] = []
    several_seeds = False
    for j, name in enumerate(panels):
        members = [r for r in rows if panel(r) == name and traces.get(r["run_id"])]
        scale = max([abs(refs[r["run_id"]]) for r in members
                     if np.isfinite(refs[r["run_id"]])] + [0.0])
        floor = GAP_FLOOR * (scale + 1.0)
        known = members and all(kinds[r["run_id"]] == "f*" for r in members)
        # A diverging run would stretch the axis over hundreds of decades: the top is 100x
        # the largest starting gap (the run's line leaves the panel; its stop marker stays).
        starts = [_first_gap(traces[r["run_id"]], refs[r["run_id"]]) for r in members]
        starts = [v for v in starts if np.isfinite(v) and v > 0]
        top = 100.0 * max(starts) if starts else None
        for row_axis, x_kind in ((0, "iteration"), (1, "seconds")):
            ax = axes[row_axis, j]
            for config in configs:
                runs = []
                for r in (r for r in members if _config(r) == config):
                    tr = traces[r["run_id"]]
                    it = tr["iteration"]
                    x = it if x_kind == "iteration" else (
                        r["wall_time_s"] * it / r["iterations"] if r["iterations"] else it * 0.0)
                    stop = x[-1] if len(x) else 0.0
                    runs.append((x, tr[_objective_column(tr)] - refs[r["run_id"]],
                                 r["status"], stop))
                several_seeds |= len(runs) > 1
                for s in draw_runs(ax, config, colours[config], runs, band=band, floor=floor):
                    if s not in statuses:
                        statuses.append(s)
            log_axis(ax)
            if top is not None and ax.get_ylim()[1] > top:
                ax.set_ylim(top=top)
                for line in ax.get_lines():  # stops beyond the top are drawn at it
                    if (line.get_gid() or "").startswith("stop:"):
                        line.set_ydata(np.minimum(line.get_ydata(), top))
            ax.grid(True, which="major", alpha=0.3)
            ax.set_xlabel("iteration" if x_kind == "iteration" else TIME_LABEL)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5))  # wall times' labels stay apart
            ax.set_ylabel("f - f*" if known else "f - f_best (same data and seed)")
            if row_axis == 0:  # y given: matplotlib need not measure the axes to place it
                ax.set_title(name, y=1.0)
    handles = legend_handles(
        colours, statuses,
        band_label=f"median line, band: {_BANDS[band]}" if several_seeds else None)
    legend_width = _legend_at_the_right(fig, handles, fontsize=7)
    _margins(fig, 2 * pairs, cols, left=0.75, right=legend_width + 0.1, bottom=0.55, top=0.7,
             gap_x=0.85, gap_y=0.95)
    if title:
        fig.suptitle(title, x=0.01, y=1 - 0.1 / fig.get_size_inches()[1], ha="left", va="top")
    return fig


def _legend_at_the_right(fig: Any, handles: Sequence[Any], *, fontsize: float) -> float:
    """The figure's legend beside its panels, the figure widened by the legend's measured
    width (the one text measured: see :func:`_margins`); returns that width in inches."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    legend = fig.legend(handles=handles, loc="upper left", fontsize=fontsize)
    renderer = FigureCanvasAgg(fig).get_renderer()
    legend_width = legend.get_window_extent(renderer).width / fig.dpi + 0.2
    panels_width, height = fig.get_size_inches()
    width = panels_width + legend_width
    fig.set_size_inches(width, height)
    legend.set_bbox_to_anchor((1 - legend_width / width, 1 - 0.3 / height), fig.transFigure)
    return legend_width


def plot_convergence(
    rows: Sequence[dict[str, Any]],
    traces: dict[str, dict[str, np.ndarray]],
    path: str | Path,
    *,
    title: str = "",
) -> Path:
    """Save :func:`convergence_figure` of the runs to ``path``; return the path."""
    return _save(convergence_figure(rows, traces, title=title), Path(path))


def _first_gap(trace: dict[str, np.ndarray], reference: float) -> float:
    values = trace[_objective_column(trace)]
    return float(values[0] - reference) if len(values) else float("nan")


def _config(row: dict[str, Any]) -> str:
    """A run's solver configuration: the solver and its hyperparameters."""
    from lossopt.experiment._tables import solver_label

    return solver_label(row)


def _objective_column(trace: dict[str, np.ndarray]) -> str:
    return "train_loss" if "train_loss" in trace else "loss"


def plot_loss_shapes(loss_entries: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """The shapes of the losses used, as in the seed document's figures.

    Regression losses are drawn against the residual ``prediction - target``; binary
    classification losses against the logit (or score) for a positive example; multiclass
    losses against the true class's logit with the other logits at 0.
    """
    import jax.numpy as jnp

    from lossopt import losses
    from lossopt.experiment._problem import shape_inputs, shape_kind

    groups: dict[str, list[tuple[str, Any]]] = {}
    for entry in loss_entries:
        name = entry["name"]
        hyper = {k: v for k, v in entry.items() if k != "name" and not isinstance(v, list)}
        label = name + "".join(f" {k}={v}" for k, v in hyper.items())
        kind = shape_kind(name)
        if kind is not None:
            groups.setdefault(kind, []).append((label, name, losses.get(name, **hyper)))
    if not groups:
        groups = {"regression": [("mse", "mse", losses.mse)]}
    def curves(grids):  # every loss along its panel's axis, in one program
        return {kind: [fn(*shape_inputs(kind, name, grids[kind]), reduction="none")
                       for _, name, fn in items] for kind, items in groups.items()}

    grids = {kind: jnp.asarray(_SHAPE_AXES[kind][0]) for kind in groups}
    values = _run_fast(curves, grids)
    fig, axes = _figure(len(groups))
    for ax, (kind, items) in zip(axes, groups.items(), strict=True):
        x, xlabel = _SHAPE_AXES[kind]
        for (label, _, _), y in zip(items, values[kind], strict=True):
            ax.plot(x, np.asarray(y), label=label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("loss")
        ax.set_title(f"{kind} losses")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, Path(path))


def _run_fast(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` as one ``jax.jit`` program compiled with ``compile="fast"``'s options:
    evaluated op by op, each new operation would be compiled on its own at XLA's full
    optimisation (a few tens of milliseconds each, dozens for a figure's losses)."""
    import jax

    from lossopt.solvers._compile import compile_lowered

    compiled, _ = compile_lowered(jax.jit(fn).lower(*args), "fast", 1)
    return jax.device_get(compiled(*args))


# kind -> (x grid, axis label) of the loss-shape panels
_SHAPE_AXES = {
    "regression": (np.linspace(-3.0, 3.0, 301), "residual (prediction - target)"),
    "binary": (np.linspace(-4.0, 4.0, 301), "logit / score of a positive example"),
    "counts": (np.linspace(-2.0, 3.0, 301), "log-rate (count = 3)"),
    "multiclass": (np.linspace(-4.0, 4.0, 301), "true-class logit (3 classes, others 0)"),
}


def plot_results(out_dir: str | Path, cfg: Any = None, *, figures: bool = True,
                 loss_shapes: bool = True) -> list[Path]:
    """(Re)draw the figures of a results folder from its files; return the paths written.

    Reads ``summary.json`` and ``traces/*.csv``, and ``config.toml`` when ``cfg`` (an
    :class:`~lossopt.experiment.ExperimentSpec` or its dict) is not given. Draws
    ``convergence.png`` and ``losses.png`` (when ``figures``; ``loss_shapes=False`` leaves
    ``losses.png`` out) and, for a results folder with ``time_to_tolerance.csv`` (several
    test problems), the performance and data profiles.

    Raises:
        FileNotFoundError: ``out_dir`` has no ``summary.json``.
    """
    out = Path(out_dir)
    summary = out / "summary.json"
    if not summary.is_file():
        raise FileNotFoundError(f"no summary.json in {str(out)!r}: is it a lossopt results folder?")
    rows = json.loads(summary.read_text())
    if cfg is None:
        import tomllib

        cfg = tomllib.loads((out / "config.toml").read_text())
    elif hasattr(cfg, "to_dict"):
        cfg = cfg.to_dict()
    if not figures:
        return []
    traces = {}
    for r in rows:
        path = out / "traces" / f"{r['run_id']}.csv"
        if path.is_file():
            traces[r["run_id"]] = read_trace(path)
    written = [plot_convergence(rows, traces, out / "convergence.png", title=cfg.get("name", ""))]
    if cfg.get("losses") and loss_shapes:
        written.append(plot_loss_shapes(cfg["losses"], out / "losses.png"))
    if (out / "time_to_tolerance.csv").is_file():
        written += plot_profiles(out / "time_to_tolerance.csv", out)
    return written


PROFILE_EPS = 1e-4
PROFILE_MEASURE = "fun_evals"


def plot_profiles(table_path: str | Path, out_dir: str | Path) -> list[Path]:
    """``performance_profile.png`` and ``data_profile.png`` from ``time_to_tolerance.csv``.

    The cost of a (solver configuration, problem) pair is the number of objective evaluations
    it needed to reach ``f - f* <= 1e-4 (|f*| + 1)``; unsolved pairs never count. Drawn by
    :func:`lossopt.comparison.plot_performance_profile` (Dolan & More 2002) and
    :func:`lossopt.comparison.plot_data_profile` (More & Wild 2009; budgets in units of
    ``n + 1`` evaluations).
    """
    figures = profile_figures(table_path)
    if not figures:
        return []
    out = Path(out_dir)
    return [_save(figures[0], out / "performance_profile.png"),
            _save(figures[1], out / "data_profile.png")]


def profile_figures(
    table_path: str | Path,
) -> tuple[MatplotlibFigure, MatplotlibFigure] | tuple[()]:
    """The (performance profile, data profile) Figures of :func:`plot_profiles`, or ``()``
    when the table covers fewer than two problems."""
    from lossopt.comparison import plot_data_profile, plot_performance_profile
    from lossopt.experiment._tables import profile_costs, read_tolerance_table

    table = read_tolerance_table(table_path)
    costs = profile_costs(table, PROFILE_EPS, PROFILE_MEASURE)
    if len({p for _, p in costs}) < 2:
        return ()
    dims = {r["problem"]: r["n"] for r in table}
    what = f"cost: objective evaluations to f - f* <= {PROFILE_EPS:g} (|f*| + 1)"
    return (plot_performance_profile(costs, title=f"performance profile (Dolan & More)\n{what}"),
            plot_data_profile(costs, dims, title=f"data profile (More & Wild)\n{what}"))
