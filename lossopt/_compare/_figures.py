"""Figures of :mod:`lossopt.comparison`: the comparison panels and the profile plots.

Built on ``matplotlib.figure.Figure`` directly (no pyplot, no global backend change), so they
render headless. Artists carry ``gid`` tags (``median:<solver>``, ``line:<solver>``,
``band:<solver>``, ``stop:<solver>:<STATUS>``, ``floor``) so that code and tests can find what
was drawn.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# A distinct marker per status, so a stop's shape says why the run stopped.
_STATUS_MARKERS = {
    "CONVERGED": "o",
    "CONVERGED_FTOL": "D",
    "CONVERGED_XTOL": "d",
    "MAX_ITERS": "s",
    "NONFINITE": "X",
    "LINE_SEARCH_FAILED": "v",
    "INTERRUPTED": "P",
}
# (panel's x column, x label, the run's stop position on that axis)
_PANELS = (
    ("iteration", "iteration", lambda r: r.iterations),
    ("fun_evals", "objective evaluations (cumulative)", lambda r: r.fun_evals),
    ("seconds", "wall time [s] (warm run; per iteration derived uniformly)",
     lambda r: r.run_seconds),
)
_BANDS = {"minmax": "min-max over starts", "iqr": "IQR (25th-75th percentile) over starts"}


def held(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``y`` at each grid point as a step function of ``x``: the value at the last ``x <=``
    the point (a stopped run holds its final value); NaN before the first ``x``."""
    idx = np.searchsorted(x, grid, side="right") - 1
    out = np.asarray(y, dtype=float)[np.clip(idx, 0, None)]
    return np.where(idx >= 0, out, np.nan)


def median_and_band(curves, band: str, floor: float):
    """Common grid, the median over ``curves`` (``(x, y)`` pairs) and the band's lower/upper
    edges, every value clipped at ``floor``."""
    grid = np.unique(np.concatenate([np.asarray(x, dtype=float) for x, _ in curves]))
    values = np.stack([np.maximum(held(np.asarray(x, dtype=float), y, grid), floor)
                       for x, y in curves])
    median = np.nanmedian(values, axis=0)
    if band == "iqr":
        lo, hi = np.nanpercentile(values, [25, 75], axis=0)
    else:
        lo, hi = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
    return grid, median, lo, hi


def draw_runs(ax, name: str, colour: str, runs, *, band: str = "minmax",
              floor: float = 0.0) -> list[str]:
    """Draw one solver's runs on ``ax``: the one line, or the median over runs with a band;
    then each run's stop, a marker whose shape names its status. The one figure code path of
    :meth:`lossopt.comparison.Comparison.plot` and :mod:`lossopt.plotting`.

    Args:
        runs: ``(x, y, status, stop_x)`` per run (``y`` clipped at ``floor``; non-finite
            values are left out); the stop is drawn at ``(stop_x, last finite y)``.

    Returns:
        The statuses drawn, in first-seen order.
    """
    curves = []
    for x, y, *_ in runs:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        ok = np.isfinite(y)
        curves.append((x[ok], y[ok]))
    drawn = [(c, r) for c, r in zip(curves, runs, strict=True) if c[0].size]
    if not drawn:
        return []
    if len(drawn) == 1:
        (x, y), _ = drawn[0]
        ax.plot(x, np.maximum(y, floor), color=colour, lw=1.4, gid=f"line:{name}")
    else:
        grid, median, lo, hi = median_and_band([c for c, _ in drawn], band, floor)
        ax.plot(grid, median, color=colour, lw=1.4, drawstyle="steps-post", gid=f"median:{name}")
        ax.fill_between(grid, lo, hi, color=colour, alpha=0.2, step="post", lw=0,
                        gid=f"band:{name}")
    by_status: dict[str, list[tuple[float, float]]] = {}
    for (_, y), (_, _, status, stop_x) in drawn:
        by_status.setdefault(status, []).append((float(stop_x), float(max(y[-1], floor))))
    for status, points in by_status.items():
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, linestyle="none", marker=_STATUS_MARKERS.get(status, "*"), ms=7,
                mec="black", mew=0.6, color=colour, gid=f"stop:{name}:{status}", zorder=3)
    return list(by_status)


# "-0123456789" as Unicode superscripts (U+207B, U+2070, U+00B9, U+00B2, U+00B3, U+2074-9)
_SUPERSCRIPT = str.maketrans("-0123456789", "".join(
    map(chr, (0x207B, 0x2070, 0xB9, 0xB2, 0xB3, 0x2074, 0x2075, 0x2076, 0x2077, 0x2078, 0x2079))))


def log_axis(ax: Any) -> None:
    """Put ``ax``'s y axis on a log scale labelled in plain text: ``10`` with the exponent in
    Unicode superscript characters, not matplotlib's mathtext ``$10^{-6}$``, which pyparsing
    parses label by label whenever a figure is drawn (about 0.1-0.2 s of a convergence figure).
    The ticks labelled are matplotlib's choice, as before."""
    import math

    from matplotlib.ticker import LogFormatterSciNotation

    class PlainPowers(LogFormatterSciNotation):
        def __call__(self, x: float, pos: Any = None) -> str:
            if not x > 0 or not super().__call__(x, pos):  # a tick matplotlib leaves blank
                return ""
            exponent = math.floor(math.log10(x) + 1e-9)
            power = "10" + str(exponent).translate(_SUPERSCRIPT)
            coefficient = x / 10.0**exponent
            return power if abs(coefficient - 1) < 1e-6 else f"{coefficient:.3g}\u00d7{power}"

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(PlainPowers())
    ax.yaxis.set_minor_formatter(PlainPowers(labelOnlyBase=False))  # as matplotlib's minor one


def legend_handles(colours: dict[str, str], statuses, *, band_label: str | None = None,
                   extra=()) -> list[Any]:
    """Legend entries: a line per solver, a marker per status seen, the band, ``extra``."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = [Line2D([], [], color=c, lw=1.6, label=n) for n, c in colours.items()]
    handles += [Line2D([], [], linestyle="none", marker=_STATUS_MARKERS.get(s, "*"),
                       color="white", mec="black", ms=7, label=f"stop: {s}")
                for s in statuses]
    if band_label:
        handles.append(Patch(color="grey", alpha=0.3, label=band_label))
    return handles + list(extra)


def plot_comparison(cmp: Any, *, band: str = "minmax", floor: float | None = None):
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    if band not in _BANDS:
        raise ValueError(f"`band` must be one of {list(_BANDS)}; got {band!r}")
    gap_floor = 1e-16 * (abs(cmp.f_star) + 1.0) if floor is None else float(floor)
    if not gap_floor > 0:
        raise ValueError(f"`floor` must be > 0 (log axes); got {floor!r}")
    first_norms = [r.trace["grad_norm"][0] for r in cmp.runs
                   if np.isfinite(r.trace["grad_norm"][0])]
    grad_floor = 1e-16 * max([1.0, *first_norms])
    fig = Figure(figsize=(13, 8), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    colours = {name: f"C{i % 10}" for i, name in enumerate(cmp.solvers)}
    panels = [(ax, x_col, xlabel, stop_x, "f_minus_f_star", gap_floor)
              for ax, (x_col, xlabel, stop_x) in zip(axes[:3], _PANELS, strict=True)]
    panels.append((axes[3], "iteration", "iteration", _PANELS[0][2], "grad_norm", grad_floor))
    statuses_seen: list[str] = []
    for ax, x_col, xlabel, stop_x, y_col, y_floor in panels:
        for name in cmp.solvers:
            runs = [(r.trace[x_col], r.trace[y_col], r.status, stop_x(r))
                    for r in cmp.runs if r.solver == name]
            for status in draw_runs(ax, name, colours[name], runs, band=band, floor=y_floor):
                if status not in statuses_seen:
                    statuses_seen.append(status)
        if y_col == "f_minus_f_star":
            ax.axhline(y_floor, color="grey", lw=0.8, ls=":", gid="floor")
            ax.set_ylabel("f - f*")
        else:
            ax.set_ylabel("gradient max-abs norm")
        log_axis(ax)
        ax.set_xlabel(xlabel)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_title("gap vs iterations")
    axes[1].set_title("gap vs evaluations")
    axes[2].set_title("gap vs wall time")
    axes[3].set_title("gradient norm vs iterations")
    extra = [Line2D([], [], color="grey", lw=0.8, ls=":",
                    label=f"floor {gap_floor:.1e}: smaller gaps drawn at it")]
    if any(not r.evals_exact for r in cmp.runs):
        extra.append(Line2D([], [], linestyle="none",
                            label="evaluations per iteration derived uniformly "
                                  "for line-search runs"))
    handles = legend_handles(
        colours, statuses_seen, extra=extra,
        band_label=f"median line, band: {_BANDS[band]}" if len(cmp.starts) > 1 else None)
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    source = cmp.reference_info.get("source", "given")
    fig.suptitle(f"f* = {cmp.f_star:.10g} ({source}); {len(cmp.starts)} start(s) per solver",
                 x=0.01, ha="left")
    return fig


def plot_profile(grid: np.ndarray, curves: dict[Any, np.ndarray], *, xlabel: str,
                 ylabel: str, log2: bool, title: str):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.subplots()
    for i, (solver, values) in enumerate(curves.items()):
        ax.step(grid, values, where="post", color=f"C{i % 10}", lw=1.6, label=str(solver),
                gid=f"profile:{solver}")
    if log2:
        ax.set_xscale("log", base=2)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8)
    return fig
