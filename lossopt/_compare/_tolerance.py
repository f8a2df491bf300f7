"""Time to tolerance, shared by :mod:`lossopt.comparison` and ``lossopt run``'s problem tables.

A run reaches tolerance ``eps`` at its first recorded iteration ``k`` with
``f_k - f* <= eps (|f*| + 1)``. Evaluation counts and seconds per iteration are derived from a
run's totals where they were not recorded (see :func:`derived_columns`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["DEFAULT_EPS", "derived_columns", "first_reached", "median_over_starts", "threshold"]

DEFAULT_EPS = (1e-2, 1e-4, 1e-8)


def threshold(eps: float, f_star: float) -> float:
    """``eps (|f*| + 1)``: the gap at which tolerance ``eps`` counts as reached.

    Example:
        >>> threshold(1e-2, -3.0)
        0.04
    """
    return float(eps) * (abs(float(f_star)) + 1.0)


def first_reached(gaps: np.ndarray, limit: float) -> int | None:
    """Index of the first entry of ``gaps`` (``f_k - f*``) that is ``<= limit``, or None.

    Example:
        >>> first_reached(np.array([3.0, 0.5, 0.01, 0.2]), 0.1), first_reached(np.ones(2), 0.1)
        (2, None)
    """
    hits = np.flatnonzero(np.asarray(gaps, dtype=float) <= limit)
    return int(hits[0]) if hits.size else None


def median_over_starts(values: Sequence[float | None]) -> float | None:
    """The median of per-start costs where a start that never reached the tolerance (None)
    counts as infinite; None when that median is infinite (at most half reached it).

    Example:
        >>> median_over_starts([4, None, 6]), median_over_starts([4, None, None])
        (6.0, None)
    """
    median = float(np.median([math.inf if v is None else float(v) for v in values]))
    return median if math.isfinite(median) else None


def derived_columns(iteration: np.ndarray, iterations: int, fun_total: int, grad_total: int,
                    run_seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Cumulative evaluations and seconds at each recorded ``iteration`` of a run.

    Evaluations are exact when the run made one evaluation per iteration (its totals are
    ``iterations + 1``: no line-search trials); otherwise they are derived uniformly,
    ``1 + (total - 1) k / iterations``. Seconds are always derived: ``run_seconds * k /
    iterations`` (the run's wall time spread uniformly over its iterations).

    Returns:
        ``(fun_evals, grad_evals, seconds, exact)``.
    """
    iteration = np.asarray(iteration, dtype=np.float64)
    frac = iteration / iterations if iterations else np.zeros(iteration.shape)
    exact = fun_total == iterations + 1 and grad_total == iterations + 1
    if exact:
        fun_evals = grad_evals = iteration + 1.0
    else:
        fun_evals = 1.0 + (fun_total - 1) * frac
        grad_evals = 1.0 + (grad_total - 1) * frac
    return fun_evals, grad_evals, run_seconds * frac, exact
