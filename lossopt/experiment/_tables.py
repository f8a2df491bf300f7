"""Tables across test problems, from the records and traces of a results folder.

For a config with several test problems (``problem:<name>`` data) ``lossopt run`` writes
``time_to_tolerance.csv``: for every run and every ``eps`` in ``{1e-2, 1e-4, 1e-8}``, the
iterations, evaluations and seconds it needed to reach ``f - f* <= eps (|f*| + 1)`` ("-" when
it never did), computed by the same code as :meth:`lossopt.comparison.Comparison.
time_to_tolerance`. The profiles (:func:`lossopt.comparison.performance_profile`,
:func:`lossopt.comparison.data_profile`) are computed from this table by :func:`profile_costs`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lossopt._compare._tolerance import (
    DEFAULT_EPS,
    derived_columns,
    first_reached,
    median_over_starts,
    threshold,
)

__all__ = ["TOLERANCE_COLUMNS", "hyperparameter_text", "profile_costs", "read_tolerance_table",
           "solver_label", "tolerance_rows", "write_tolerance_table"]

TOLERANCE_COLUMNS = ("problem", "n", "solver", "eps", "threshold", "f_star", "iterations",
                     "fun_evals", "grad_evals", "seconds")
_MEASURES = ("iterations", "fun_evals", "grad_evals", "seconds")
NOT_REACHED = "-"


def hyperparameter_text(hyper: Any) -> str:
    """A record's hyperparameters as ``k=v k=v`` (an object; older records: its JSON text)."""
    if isinstance(hyper, str):
        try:
            hyper = json.loads(hyper)
        except ValueError:
            return hyper
    return " ".join(f"{k}={v}" for k, v in dict(hyper).items())


def solver_label(row: dict[str, Any]) -> str:
    """``solver k=v ...`` of a record row (the solver configuration)."""
    return f"{row['solver']} {hyperparameter_text(row['hyperparameters'])}".strip()


def _read_trace(path: Path) -> dict[str, np.ndarray]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]} if rows else {}


def tolerance_rows(out_dir: str | Path, rows: Sequence[dict[str, Any]],
                   eps: Sequence[float] = DEFAULT_EPS) -> list[dict[str, Any]]:
    """One dict per (test-problem run, eps): the cost of reaching the tolerance (None when
    never reached), read from the run's trace (``traces/<run_id>.csv``).

    Evaluations and seconds at an iteration are derived from the run's totals as in
    :func:`lossopt._compare._tolerance.derived_columns` (seconds always: the run's wall time
    spread uniformly over its iterations).
    """
    out, table = Path(out_dir), []
    for row in rows:
        if row.get("f_star") is None:
            continue
        trace = _read_trace(out / "traces" / f"{row['run_id']}.csv")
        if not trace:
            continue
        gaps = trace["loss"] - row["f_star"]
        fun, grad, seconds, _ = derived_columns(trace["iteration"], row["iterations"],
                                                row["num_fun_evals"], row["num_grad_evals"],
                                                row["wall_time_s"])
        for e in eps:
            limit = threshold(e, row["f_star"])
            i = first_reached(gaps, limit)
            table.append({
                "problem": row["data"], "n": row.get("n_params"), "solver": solver_label(row),
                "eps": float(e), "threshold": limit, "f_star": row["f_star"],
                **({m: None for m in _MEASURES} if i is None else {
                    "iterations": int(trace["iteration"][i]), "fun_evals": float(fun[i]),
                    "grad_evals": float(grad[i]), "seconds": float(seconds[i])}),
            })
    return table


def write_tolerance_table(out_dir: str | Path, table: Sequence[dict[str, Any]]) -> Path:
    """Write ``time_to_tolerance.csv`` (atomically; "-" where never reached)."""
    from lossopt._io import atomic_write

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(TOLERANCE_COLUMNS)
    for r in table:
        writer.writerow([NOT_REACHED if r[c] is None else
                         repr(r[c]) if isinstance(r[c], float) else r[c]
                         for c in TOLERANCE_COLUMNS])
    return atomic_write(Path(out_dir) / "time_to_tolerance.csv", buf.getvalue())


def read_tolerance_table(path: str | Path) -> list[dict[str, Any]]:
    """Read ``time_to_tolerance.csv`` back ("-" as None, numbers as numbers)."""
    with Path(path).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for r in rows:
        parsed: dict[str, Any] = {"problem": r["problem"], "solver": r["solver"],
                                  "n": int(r["n"]) if r["n"] else None}
        for c in ("eps", "threshold", "f_star", *_MEASURES):
            parsed[c] = None if r[c] == NOT_REACHED else float(r[c])
        out.append(parsed)
    return out


def profile_costs(table: Sequence[dict[str, Any]], eps: float = 1e-4,
                  measure: str = "fun_evals") -> dict[tuple[str, str], float | None]:
    """``{(solver, problem): cost}`` for the profiles: the median over a pair's runs of
    ``measure`` needed to reach ``eps`` (None: unsolved), as :func:`lossopt.compare.
    profile_costs` builds it from comparisons."""
    if measure not in _MEASURES:
        raise ValueError(f"`measure` must be one of {_MEASURES}; got {measure!r}")
    runs: dict[tuple[str, str], list[float | None]] = {}
    for r in table:
        if r["eps"] == eps:
            runs.setdefault((r["solver"], r["problem"]), []).append(r[measure])
    return {key: median_over_starts(values) for key, values in runs.items()}
