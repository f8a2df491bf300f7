"""Compare optimizers on one objective: ``lossopt.compare(fun, x0, {name: solver})``.

The module is ``lossopt.comparison`` (``from lossopt import comparison``); its function
:func:`compare` and :class:`Comparison` are also ``lossopt.compare`` and
``lossopt.Comparison``. (The module is not named ``compare``: the function of that name on the
package would hide it, and ``import lossopt.compare as m`` would give the function.)

:func:`compare` runs every solver from every start (one per seed, or each given start point),
measures each run's warm wall time and compile time, fixes the optimal value ``f*`` (a tight
reference solve, or a value you give) and returns a :class:`Comparison`: per-run rows,
per-iteration tidy rows, a rich table, time to tolerance, CSV/pandas export and a figure.
Across problems, :func:`performance_profile` (Dolan & More 2002) and :func:`data_profile`
(More & Wild 2009) summarise cost tables, which :func:`profile_costs` builds from comparisons.

Definitions used throughout:

- **gap** ``f_k - f*``. With ``reference="auto"``, ``f* = min(f_ref, min of every value any
  run reached)``, so every gap is >= 0; a float reference is used as given (gaps below 0 are
  then possible and are kept in the rows).
- **tolerance** ``eps``: a run has reached it at the first recorded iteration ``k`` with
  ``f_k - f* <= eps (|f*| + 1)`` (relative for large ``|f*|``, absolute near 0).
- **run time**: the wall time of a warm call, measured (see :func:`compare`); the time of
  iteration ``k`` is derived from it as ``run_time * k / iterations`` (uniform per iteration),
  not measured per iteration.
- **evaluations**: cumulative objective (``fun_evals``) and gradient (``grad_evals``)
  evaluations, the initial point included. Exact per iteration when the run made one
  evaluation per iteration (its total is ``iterations + 1``: no line-search trials), which the
  run row's ``evals_exact`` says; otherwise derived uniformly, ``1 + (total - 1) k /
  iterations``. Totals are always exact.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
import time
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lossopt._compare._profiles import data_profile, performance_profile
from lossopt._compare._tolerance import (
    DEFAULT_EPS,
    derived_columns,
    first_reached,
    median_over_starts,
)
from lossopt._compare._tolerance import threshold as _threshold
from lossopt._validation import describe
from lossopt.solvers import LBFGS, Result, Status, minimize

#: ``matplotlib.figure.Figure``: matplotlib is optional and imported only when a figure is drawn.
MatplotlibFigure = Any
#: A ``rich.table.Table`` and a ``pandas.DataFrame`` (named, not imported: both load on use).
RichTable = Any
PandasDataFrame = Any

__all__ = [
    "Comparison",
    "Run",
    "TimeToTolerance",
    "compare",
    "data_profile",
    "performance_profile",
    "plot_data_profile",
    "plot_performance_profile",
    "profile_costs",
]

# Options that make the objective stochastic (then f - f* is not defined by one f*) or that
# make a second call differ from the first (checkpoints resume); compare refuses them.
_REFUSED = ("key", "batch_size", "max_epochs", "progress", "chunk_size", "checkpoint_dir",
            "checkpoint_every", "resume")
_DEFAULT_EPS = DEFAULT_EPS
_MEASURES = ("iterations", "fun_evals", "grad_evals", "seconds")
# Tidy per-iteration columns, in order (user metrics follow).
_ITER_COLUMNS = ("solver", "start", "iteration", "f", "f_minus_f_star", "grad_norm",
                 "fun_evals", "grad_evals", "seconds")
_RUN_COLUMNS = ("solver", "start", "status", "iterations", "f", "f_minus_f_star", "grad_norm",
                "fun_evals", "grad_evals", "hess_evals", "hvp_evals", "evals_exact",
                "run_seconds", "compile_seconds")


@dataclasses.dataclass(frozen=True)
class Run:
    """One solver from one start.

    Attributes:
        solver: the solver's name (a key of ``compare``'s ``solvers``).
        start: the seed (with ``seeds``), else the index of the start point (``inits``; 0 for
            a single ``init_params``).
        status: the :class:`~lossopt.Status` name.
        iterations, f, f_minus_f_star, grad_norm: the final iterate's (``grad_norm``: max-abs).
        fun_evals, grad_evals, hess_evals, hvp_evals: total evaluation counts.
        evals_exact: whether the per-iteration evaluation counts are exact (one evaluation per
            iteration) or derived uniformly.
        run_seconds: measured wall time of the warm call.
        compile_seconds: first-call wall time minus warm-call wall time (tracing, lowering and
            compiling; about 0 when an earlier start of the same solver compiled the loop).
        trace: read-only columns ``iteration, f, f_minus_f_star, grad_norm, fun_evals,
            grad_evals, seconds`` and any user metrics, one entry per recorded iteration (the
            final iterate always included).
        result: the :class:`~lossopt.Result` of the warm call.
    """

    solver: str
    start: int
    status: str
    iterations: int
    f: float
    f_minus_f_star: float
    grad_norm: float
    fun_evals: int
    grad_evals: int
    hess_evals: int
    hvp_evals: int
    evals_exact: bool
    run_seconds: float
    compile_seconds: float
    trace: Mapping[str, np.ndarray] = dataclasses.field(repr=False)
    result: Result = dataclasses.field(repr=False)

    def row(self) -> dict[str, Any]:
        """This run as a flat dict (the columns of ``Comparison.to_rows("runs")``)."""
        return {name: getattr(self, name) for name in _RUN_COLUMNS}

    def reached(self, threshold: float) -> dict[str, Any] | None:
        """The first recorded point with ``f - f* <= threshold`` (a row of the trace), or None."""
        i = first_reached(self.trace["f_minus_f_star"], threshold)
        if i is None:
            return None
        return {name: self.trace[name][i].item() for name in
                ("iteration", "fun_evals", "grad_evals", "seconds")}


@dataclasses.dataclass(frozen=True)
class TimeToTolerance:
    """What :meth:`Comparison.time_to_tolerance` returns.

    Attributes:
        eps: the tolerances.
        runs: one dict per (solver, start, eps): ``solver, start, eps, threshold`` (``eps
            (|f*| + 1)``) and ``iteration, fun_evals, grad_evals, seconds`` at the first
            recorded point with ``f - f* <= threshold`` (``None`` when never reached).
        summary: one dict per (solver, eps): ``solver, eps, threshold, reached`` (runs that
            reached it), ``starts`` and the medians over starts of ``iterations, fun_evals,
            grad_evals, seconds``, where a start that never reached it counts as infinite (so
            the median is ``None`` when at most half of the starts reached it).
    """

    eps: tuple[float, ...]
    runs: tuple[dict[str, Any], ...]
    summary: tuple[dict[str, Any], ...]

    def table(self) -> RichTable:
        """A ``rich.table.Table`` of :attr:`summary` ("-": not reached by the median start)."""
        from rich.table import Table

        table = Table(title="time to tolerance: f - f* <= eps (|f*| + 1); median over starts")
        for name, justify in (("solver", "left"), ("eps", "right"), ("reached", "right"),
                              ("iterations", "right"), ("f evals", "right"),
                              ("seconds", "right")):
            table.add_column(name, justify=justify)
        for row in self.summary:
            table.add_row(row["solver"], f"{row['eps']:.0e}", f"{row['reached']}/{row['starts']}",
                          _fmt(row["iterations"], "{:g}"), _fmt(row["fun_evals"], "{:g}"),
                          _fmt(row["seconds"], "{:.2e}"))
        return table


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Solvers compared on one objective (what :func:`compare` returns). Read-only.

    Attributes:
        f_star: the optimal value ``f*`` the gaps are measured from.
        reference_info: how ``f*`` was obtained: ``kind`` ("auto" or "given") and, for "auto",
            the reference ``solver``, ``gtol``, ``max_iters``, ``dtype``, the run it started
            from (``start_run``), its ``status``, ``iterations`` and ``value``, the lowest value
            any run reached (``best_run_value``) and which of the two ``f*`` is (``source``).
        runs: the :class:`Run` records, solver by solver in the order given, starts in order.
        solvers: the solver names, in the order given.
        starts: the start labels (seeds, or start indices).
        metrics: names of user metric columns in the traces.
    """

    f_star: float
    reference_info: Mapping[str, Any]
    runs: tuple[Run, ...]
    solvers: tuple[str, ...]
    starts: tuple[int, ...]
    metrics: tuple[str, ...] = ()

    # ---- rows and export -------------------------------------------------------------------

    def run(self, solver: str, start: int) -> Run:
        """The run of ``solver`` from ``start``."""
        for r in self.runs:
            if r.solver == solver and r.start == start:
                return r
        raise KeyError(f"no run of solver {solver!r} from start {start!r}; solvers "
                       f"{list(self.solvers)}, starts {list(self.starts)}")

    def to_rows(self, kind: str = "iterations") -> list[dict[str, Any]]:
        """Tidy rows: ``kind="iterations"`` (one per recorded iteration of every run: columns
        ``solver, start, iteration, f, f_minus_f_star, grad_norm, fun_evals, grad_evals,
        seconds`` and the metrics) or ``kind="runs"`` (one per run: ``solver, start, status,
        iterations, f, f_minus_f_star, grad_norm, fun_evals, grad_evals, hess_evals,
        hvp_evals, evals_exact, run_seconds, compile_seconds``). ``seconds`` and derived
        evaluation counts follow the module's definitions (uniform per iteration)."""
        if kind == "runs":
            return [r.row() for r in self.runs]
        if kind != "iterations":
            raise ValueError(f"`kind` must be 'iterations' or 'runs'; got {kind!r}")
        columns = (*_ITER_COLUMNS[2:], *self.metrics)
        rows = []
        for r in self.runs:
            lists = [r.trace[c].tolist() for c in columns]
            for values in zip(*lists, strict=True):
                rows.append({"solver": r.solver, "start": r.start,
                             **dict(zip(columns, values, strict=True))})
        return rows

    def to_csv(self, path: Any, kind: str = "iterations") -> Any:
        """Write :meth:`to_rows` as CSV (header row; floats as ``repr``, so they read back
        exactly; ``None`` as an empty field), atomically (lossopt._io); return the path."""
        import io

        from lossopt._io import atomic_write

        rows = self.to_rows(kind)
        columns = list(_RUN_COLUMNS) if kind == "runs" else [*_ITER_COLUMNS, *self.metrics]
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row[c] is None else
                             repr(row[c]) if isinstance(row[c], float) else row[c]
                             for c in columns])
        return atomic_write(path, buffer.getvalue())

    def to_pandas(self, kind: str = "iterations") -> PandasDataFrame:
        """:meth:`to_rows` as a ``pandas.DataFrame``.

        Raises:
            ImportError: pandas is not installed (``to_rows`` gives the same rows as dicts).
        """
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError(
                "Comparison.to_pandas needs pandas, which is not installed: `pip install "
                "pandas`, or use Comparison.to_rows() (the same rows as dicts)"
            ) from err
        columns = list(_RUN_COLUMNS) if kind == "runs" else [*_ITER_COLUMNS, *self.metrics]
        return pd.DataFrame(self.to_rows(kind), columns=columns)

    # ---- summaries -------------------------------------------------------------------------

    def table(self, per: str = "run") -> RichTable:
        """A ``rich.table.Table``: one row per run (``per="run"``) or per solver (``per="solver"``:
        status counts and medians over starts). Fits a 100-column console."""
        from rich.table import Table

        if per not in ("run", "solver"):
            raise ValueError(f"`per` must be 'run' or 'solver'; got {per!r}")
        title = f"f* = {self.f_star:.10g} ({self.reference_info.get('source', 'given')})"
        table = Table(title=title)
        table.add_column("solver", overflow="fold")
        table.add_column("start" if per == "run" else "runs", justify="right")
        table.add_column("status", overflow="fold")
        for name in ("iters", "f - f*", "|g|max", "f evals", "run s", "compile s"):
            table.add_column(name, justify="right")
        if per == "run":
            for r in self.runs:
                table.add_row(r.solver, str(r.start), r.status, str(r.iterations),
                              f"{r.f_minus_f_star:.2e}", f"{r.grad_norm:.2e}", str(r.fun_evals),
                              f"{r.run_seconds:.2e}", f"{r.compile_seconds:.2f}")
            return table
        for name in self.solvers:
            runs = [r for r in self.runs if r.solver == name]
            counts: dict[str, int] = {}
            for r in runs:
                counts[r.status] = counts.get(r.status, 0) + 1
            med = {attr: float(np.median([getattr(r, attr) for r in runs])) for attr in
                   ("iterations", "f_minus_f_star", "grad_norm", "fun_evals", "run_seconds")}
            table.add_row(name, str(len(runs)),
                          " ".join(f"{k} x{v}" if v > 1 else k for k, v in counts.items()),
                          f"{med['iterations']:g}", f"{med['f_minus_f_star']:.2e}",
                          f"{med['grad_norm']:.2e}", f"{med['fun_evals']:g}",
                          f"{med['run_seconds']:.2e}",
                          f"{max(r.compile_seconds for r in runs):.2f}")
        table.caption = "medians over starts; compile s: the largest"
        return table

    def threshold(self, eps: float) -> float:
        """``eps (|f*| + 1)``: the gap at which tolerance ``eps`` counts as reached."""
        return _threshold(eps, self.f_star)

    def time_to_tolerance(self, eps: float | Sequence[float] = _DEFAULT_EPS) -> TimeToTolerance:
        """Iterations, evaluations and seconds each run and each solver needs to reach
        ``f - f* <= eps (|f*| + 1)``.

        A run reaches a tolerance at its first recorded iteration below it (with
        ``record_every > 1``, the first recorded one); seconds and derived evaluation counts
        are those of the tidy rows (see the module's definitions). Per solver, the median over
        starts counts a start that never reached it as infinite: ``None`` (shown "-") when at
        most half of them reached it.
        """
        eps_values = (eps,) if isinstance(eps, (int, float)) else tuple(eps)
        if not eps_values or any(not (float(e) > 0) for e in eps_values):
            raise ValueError(f"`eps` must be positive tolerances; got {eps!r}")
        runs, summary = [], []
        for e in eps_values:
            thr = self.threshold(e)
            for name in self.solvers:
                hits = []
                for r in (r for r in self.runs if r.solver == name):
                    hit = r.reached(thr)
                    hits.append(hit)
                    runs.append({"solver": name, "start": r.start, "eps": float(e),
                                 "threshold": thr,
                                 **{m: None if hit is None else hit[m] for m in
                                    ("iteration", "fun_evals", "grad_evals", "seconds")}})
                row = {"solver": name, "eps": float(e), "threshold": thr,
                       "reached": sum(h is not None for h in hits), "starts": len(hits)}
                for column, field in (("iterations", "iteration"), ("fun_evals", "fun_evals"),
                                      ("grad_evals", "grad_evals"), ("seconds", "seconds")):
                    row[column] = median_over_starts(
                        [None if h is None else h[field] for h in hits])
                summary.append(row)
        return TimeToTolerance(tuple(float(e) for e in eps_values), tuple(runs), tuple(summary))

    # ---- figures ---------------------------------------------------------------------------

    def plot(self, *, band: str = "minmax", floor: float | None = None) -> MatplotlibFigure:
        """A matplotlib ``Figure`` of the comparison (see :func:`lossopt._compare._figures.
        plot_comparison` for what each panel shows).

        Four panels: ``f - f*`` (log scale) against iterations, against objective evaluations
        and against wall time, and the gradient's max-abs norm against iterations. Several
        starts are drawn as the median over starts with a band (``band="minmax"``: min to max;
        ``"iqr"``: 25th to 75th percentile); a run that has stopped holds its final value.
        Each run's stop is a marker whose shape names its status in the legend. Gaps below
        ``floor`` (default ``1e-16 (|f*| + 1)``; zero gaps included) are drawn at the floor
        so the log axes stay readable. Legends sit outside the axes.
        """
        from lossopt._compare._figures import plot_comparison

        return plot_comparison(self, band=band, floor=floor)


def _fmt(value: Any, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


# ---- compare ---------------------------------------------------------------------------------


def compare(
    fun: Callable[..., Any],
    init_params: Any,
    solvers: Mapping[str, Any],
    *,
    args: tuple[Any, ...] = (),
    seeds: Sequence[int] | None = None,
    inits: Sequence[Any] | None = None,
    reference: str | float = "auto",
    reference_solver: Any = None,
    reference_max_iters: int = 2000,
    repeat: int = 1,
    max_iters: int = 1000,
    gtol: float = 1e-6,
    **minimize_kwargs: Any,
) -> Comparison:
    """Run every solver from every start on ``fun(params, *args)`` and compare them.

    Starts: ``init_params`` alone (start 0); or ``seeds=[s, ...]`` with ``init_params`` a
    callable ``init(key) -> params``, called with ``jax.random.key(s)`` (start ``s``); or
    ``init_params=None`` and ``inits=[x0, x1, ...]`` (start ``i``). Each solver runs once per
    start, with :func:`lossopt.minimize` and the same options.

    Timing: every run is called ``1 + repeat`` times with identical inputs. The warm calls'
    wall time (the median over the ``repeat`` calls after the first), measured around each
    call with ``jax.block_until_ready`` on its result, is the run time; the first call's wall
    time minus it is the compile time (tracing, lowering and XLA compilation; about 0 for later
    starts of a solver, which reuse the loop). The last warm call's result is the one reported
    (every call computes the same thing). The time
    of iteration ``k`` is derived, not measured: ``run_time * k / iterations``.

    ``f*``: ``reference="auto"`` runs a reference solve -- ``reference_solver`` (default
    ``lossopt.solvers.LBFGS()``, strong-Wolfe L-BFGS) in float64 (parameters and floating
    arrays in ``args`` cast; under a scoped ``jax.enable_x64`` when 64-bit mode is off) with
    ``gtol=1e-12`` and ``reference_max_iters`` iterations, from the best point of the run that
    reached the lowest value -- and takes ``f* = min(reference value, lowest value any run
    reached)`` (its trace values and best value). ``Comparison.reference_info`` records all of
    it. A float ``reference`` is used as ``f*`` as given (gaps may then be negative).

    Args:
        fun: the objective ``fun(params, *args) -> scalar``.
        init_params: the start point (any pytree), an ``init(key)`` callable with ``seeds``,
            or ``None`` with ``inits``.
        solvers: ``{name: solver instance}``, names as they appear in rows and figures.
        args: data for ``fun``, a tuple (shared by every run).
        seeds: integer seeds, one start each (needs a callable ``init_params``).
        inits: start points, one start each (with ``init_params=None``).
        reference: ``"auto"`` or the value of ``f*``.
        reference_solver: the solver of the reference solve (default ``LBFGS()``).
        reference_max_iters: iteration budget of the reference solve.
        repeat: warm calls per run (>= 1); the run time is their median.
        max_iters, gtol, **minimize_kwargs: passed to :func:`lossopt.minimize` (``ftol``,
            ``xtol``, ``metrics``, ``metric_args``, ``record_every``, ``compile``); the
            stochastic and long-run options (``key``, ``batch_size``, ``max_epochs``,
            ``progress``, ``chunk_size``, ``checkpoint_dir``, ``checkpoint_every``, ``resume``)
            are refused: a stochastic objective has no single ``f*``, and a checkpointed second
            call would resume instead of re-running.

    Returns:
        A :class:`Comparison`.

    Raises:
        TypeError: ``solvers`` not a non-empty dict of named solvers, a refused option, an
            ``init_params`` that does not fit ``seeds``/``inits``, or what
            :func:`lossopt.minimize` raises.
        ValueError: both ``seeds`` and ``inits``, empty or repeated seeds, an empty ``inits``,
            ``repeat < 1``, a ``reference`` that is neither "auto" nor a finite number.

    Example:
        >>> import jax.numpy as jnp
        >>> import lossopt
        >>> from lossopt.solvers import GradientDescent
        >>> f = lambda w: jnp.sum((w - 1.0) ** 2)
        >>> cmp = lossopt.compare(f, jnp.zeros(2), {"gd": GradientDescent(0.25)},
        ...                       reference=0.0, gtol=1e-6)
        >>> r = cmp.runs[0]  # w_k = 1 - 0.5**k: f - f* = 2 * 4**-k, |g|max = 2 * 0.5**k
        >>> r.status, r.iterations, r.trace["f_minus_f_star"][:3].tolist()
        ('CONVERGED', 21, [2.0, 0.5, 0.125])
        >>> cmp.time_to_tolerance(1e-4).summary[0]["iterations"]  # 2 * 4**-k <= 1e-4
        8.0
    """
    names, solver_list = _check_solvers(solvers)
    refused = [name for name in _REFUSED if name in minimize_kwargs]
    if refused:
        raise TypeError(
            f"compare does not take {refused}: it compares deterministic solves of one "
            "objective (one f*), each called twice for timing; use lossopt.minimize for "
            "stochastic, minibatch or checkpointed runs"
        )
    if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
        raise ValueError(f"`repeat` must be an int >= 1 (warm calls per run); got {repeat!r}")
    starts, points = _starts(init_params, seeds, inits)
    if not (reference == "auto" or (isinstance(reference, (int, float))
                                    and not isinstance(reference, bool)
                                    and math.isfinite(reference))):
        raise ValueError(f"`reference` must be 'auto' or a finite number; got {reference!r}")
    options = {"args": args, "max_iters": max_iters, "gtol": gtol, **minimize_kwargs}
    raw = []
    for name, solver in zip(names, solver_list, strict=True):
        for start, x0 in zip(starts, points, strict=True):
            first = time.perf_counter()
            jax.block_until_ready(minimize(fun, x0, solver, **options))
            cold = time.perf_counter() - first
            times = []
            for _ in range(repeat):
                begin = time.perf_counter()
                result = jax.block_until_ready(minimize(fun, x0, solver, **options))
                times.append(time.perf_counter() - begin)
            warm = float(np.median(times))
            raw.append((name, start, result, warm, max(cold - warm, 0.0)))
    if reference == "auto":
        f_star, info = _reference(fun, args, raw, reference_solver, reference_max_iters)
    else:
        f_star, info = float(reference), {"kind": "given", "value": float(reference),
                                          "source": "given"}
    metric_names = tuple(sorted((minimize_kwargs.get("metrics") or {}).keys()))
    runs = tuple(_make_run(name, start, result, warm, compile_s, f_star)
                 for name, start, result, warm, compile_s in raw)
    return Comparison(f_star=f_star, reference_info=types.MappingProxyType(info), runs=runs,
                      solvers=tuple(names), starts=tuple(starts), metrics=metric_names)


def _check_solvers(solvers: Any) -> tuple[list[str], list[Any]]:
    if not isinstance(solvers, Mapping) or not solvers:
        raise TypeError(
            "`solvers` must be a non-empty dict {name: solver}, e.g. {'gd': GradientDescent(0.1)"
            f", 'lbfgs': LBFGS()}}; got {describe(solvers)}"
        )
    for name in solvers:
        if not isinstance(name, str):
            raise TypeError(f"solver names must be strings; got {name!r}")
    return list(solvers), list(solvers.values())


def _starts(init_params: Any, seeds: Any, inits: Any) -> tuple[list[int], list[Any]]:
    if seeds is not None and inits is not None:
        raise ValueError("give `seeds` (with an init(key) callable) or `inits`, not both")
    if seeds is not None:
        seeds = list(seeds)
        if not seeds or any(not isinstance(s, (int, np.integer)) or isinstance(s, bool)
                            for s in seeds):
            raise ValueError(f"`seeds` must be a non-empty list of ints; got {seeds!r}")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"`seeds` repeats a seed (identical runs); got {seeds!r}")
        if not callable(init_params):
            raise TypeError(
                "with `seeds`, `init_params` must be a callable init(key) -> params, called "
                f"with jax.random.key(seed); got {describe(init_params)}. For fixed start "
                "points pass inits=[...]"
            )
        return [int(s) for s in seeds], [init_params(jax.random.key(int(s))) for s in seeds]
    if inits is not None:
        if init_params is not None:
            raise TypeError("with `inits`, pass init_params=None (the starts are the inits)")
        inits = list(inits)
        if not inits:
            raise ValueError("`inits` must hold at least one start point")
        return list(range(len(inits))), inits
    if callable(init_params):
        raise TypeError(
            "`init_params` is a callable init(key): give `seeds=[...]` to draw the starts"
        )
    return [0], [init_params]


def _lowest(result: Result) -> float:
    """The lowest finite objective value the run reached (trace and best value)."""
    values = np.concatenate([
        np.asarray(result.trace.to_numpy()["loss"], dtype=np.float64),
        np.asarray([result.value, result.best_value], dtype=np.float64),
    ])
    values = values[np.isfinite(values)]
    return float(values.min()) if values.size else math.inf


def _reference(fun, args, raw, reference_solver, max_iters) -> tuple[float, dict[str, Any]]:
    lowest = [(_lowest(result), name, start, result) for name, start, result, *_ in raw]
    best_value, best_name, best_start, best = min(lowest, key=lambda item: item[0])
    solver = LBFGS() if reference_solver is None else reference_solver
    gtol = 1e-12
    x64 = contextlib.nullcontext() if jax.config.jax_enable_x64 else jax.enable_x64(True)
    with x64:
        start = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), best.best_params)
        args64 = jax.tree.map(
            lambda a: jnp.asarray(a, jnp.float64)
            if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating) else a, args)
        ref = minimize(fun, start, solver, args=args64, max_iters=max_iters, gtol=gtol)
        ref_value = float(ref.value)
        ref_status = Status(int(ref.status)).name
        ref_iters = int(ref.iterations)
        dtype = str(jnp.asarray(ref.value).dtype)
    candidates = [v for v in (ref_value, best_value) if math.isfinite(v)]
    if not candidates:
        raise ValueError(
            "no run reached a finite objective value and the reference solve did not either: "
            "f* is undefined; pass reference=<the optimal value>"
        )
    f_star = min(candidates)
    source = "reference" if math.isfinite(ref_value) and ref_value <= best_value else (
        f"run {best_name!r} start {best_start}")
    info = {"kind": "auto", "solver": repr(solver), "gtol": gtol, "max_iters": max_iters,
            "dtype": dtype, "start_run": (best_name, best_start), "status": ref_status,
            "iterations": ref_iters, "value": ref_value, "best_run_value": best_value,
            "source": source}
    return f_star, info


def _make_run(name: str, start: int, result: Result, warm: float, compile_s: float,
              f_star: float) -> Run:
    tr = result.trace.to_numpy()
    iterations = int(result.iterations)
    fun_total, grad_total = int(result.num_fun_evals), int(result.num_grad_evals)
    iteration = tr["iteration"].astype(np.int64)
    values = np.asarray(tr["loss"], dtype=np.float64)
    grad_norm = np.asarray(tr["grad_norm"], dtype=np.float64)
    extra = {m: np.asarray(v, dtype=np.float64) for m, v in tr.items()
             if m not in ("iteration", "loss", "grad_norm", "step_size")}
    if iteration[-1] != iterations:  # record_every does not divide: add the final iterate
        iteration = np.append(iteration, iterations)
        values = np.append(values, float(result.value))
        grad_norm = np.append(grad_norm, float(result.grad_norm))
        extra = {m: np.append(v, np.nan) for m, v in extra.items()}
    fun_evals, grad_evals, seconds, exact = derived_columns(iteration, iterations, fun_total,
                                                            grad_total, warm)
    trace = {"iteration": iteration, "f": values, "f_minus_f_star": values - f_star,
             "grad_norm": grad_norm, "fun_evals": fun_evals, "grad_evals": grad_evals,
             "seconds": seconds, **extra}
    for column in trace.values():
        column.setflags(write=False)
    value = float(result.value)
    return Run(solver=name, start=start, status=Status(int(result.status)).name,
               iterations=iterations, f=value, f_minus_f_star=value - f_star,
               grad_norm=float(result.grad_norm), fun_evals=fun_total, grad_evals=grad_total,
               hess_evals=int(result.num_hess_evals), hvp_evals=int(result.num_hvp_evals),
               evals_exact=exact, run_seconds=warm, compile_seconds=compile_s,
               trace=types.MappingProxyType(trace), result=result)


# ---- across problems ----------------------------------------------------------------------


def profile_costs(
    comparisons: Mapping[Any, Comparison], eps: float = 1e-4, measure: str = "fun_evals"
) -> dict[tuple[str, Any], float | None]:
    """A cost table ``{(solver, problem): cost}`` for :func:`performance_profile` and
    :func:`data_profile`, from one :class:`Comparison` per problem.

    The cost is the median over starts of ``measure`` (``"iterations"``, ``"fun_evals"``,
    ``"grad_evals"`` or ``"seconds"``) needed to reach ``f - f* <= eps (|f*| + 1)``, as in
    :meth:`Comparison.time_to_tolerance`; ``None`` (unsolved) when the median start never
    reached it. Iteration counts can be 0 (a start that already meets the tolerance), which
    the profiles reject: profile evaluations (>= 1) instead.
    """
    if measure not in _MEASURES:
        raise ValueError(f"`measure` must be one of {_MEASURES}; got {measure!r}")
    costs: dict[tuple[str, Any], float | None] = {}
    for problem, comparison in comparisons.items():
        for row in comparison.time_to_tolerance((eps,)).summary:
            costs[(row["solver"], problem)] = row[measure]
    return costs


def plot_performance_profile(costs: Mapping[tuple[Any, Any], Any], *,
                             taus: Sequence[float] | None = None,
                             title: str = "") -> MatplotlibFigure:
    """A ``Figure`` of :func:`performance_profile`: ``rho_s(tau)`` as steps, ``tau`` on a log2
    axis, one line per solver (legend outside the axes)."""
    from lossopt._compare._figures import plot_profile

    grid, rho = performance_profile(costs, taus=taus)
    return plot_profile(grid, rho, xlabel="performance ratio tau (cost / best cost)",
                        ylabel="fraction of problems with ratio <= tau", log2=True,
                        title=title or "performance profile (Dolan & More 2002)")


def plot_data_profile(costs: Mapping[tuple[Any, Any], Any], dims: Mapping[Any, int], *,
                      alphas: Sequence[float] | None = None,
                      title: str = "") -> MatplotlibFigure:
    """A ``Figure`` of :func:`data_profile`: ``d_s(alpha)`` as steps against the budget in
    simplex gradients (``n_p + 1`` evaluations), one line per solver."""
    from lossopt._compare._figures import plot_profile

    grid, d = data_profile(costs, dims, alphas=alphas)
    return plot_profile(grid, d, xlabel="budget alpha (evaluations / (n + 1))",
                        ylabel="fraction of problems solved", log2=False,
                        title=title or "data profile (More & Wild 2009)")
