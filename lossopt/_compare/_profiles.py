"""Performance profiles (Dolan & More 2002) and data profiles (More & Wild 2009).

Both take a cost table ``{(solver, problem): cost}``: the cost of solving a problem (iterations,
evaluations, seconds -- anything where less is better), with ``None``, ``inf`` or NaN for a
problem the solver did not solve. Every (solver, problem) pair of the table's solvers and
problems must be present, so that a forgotten run is an error rather than a silent failure.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["data_profile", "performance_profile"]


def _cost_matrix(
    costs: Mapping[tuple[Hashable, Hashable], Any],
) -> tuple[list[Hashable], list[Hashable], np.ndarray]:
    """Solvers, problems (first-seen order) and the cost matrix ``t[p, s]`` (inf: unsolved)."""
    if not isinstance(costs, Mapping) or not costs:
        raise ValueError(
            "`costs` must be a non-empty dict {(solver, problem): cost}; got "
            f"{type(costs).__name__} {costs!r}"[:300]
        )
    for key in costs:
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"every key of `costs` must be a (solver, problem) pair; got {key!r}")
    solvers = list(dict.fromkeys(s for s, _ in costs))
    problems = list(dict.fromkeys(p for _, p in costs))
    t = np.empty((len(problems), len(solvers)))
    for i, p in enumerate(problems):
        for j, s in enumerate(solvers):
            if (s, p) not in costs:
                raise ValueError(
                    f"`costs` has no entry for solver {s!r} on problem {p!r}: give every "
                    "(solver, problem) pair, with None or inf for an unsolved problem"
                )
            value = costs[(s, p)]
            t[i, j] = math.inf if value is None else float(value)
            if math.isnan(t[i, j]):
                t[i, j] = math.inf
            if t[i, j] <= 0:
                raise ValueError(
                    f"costs must be > 0 (or None/inf for unsolved); solver {s!r} on problem "
                    f"{p!r} has {value!r}. Count evaluations (always >= 1) or iterations + 1."
                )
    return solvers, problems, t


def _step_values(values: np.ndarray, points: np.ndarray) -> np.ndarray:
    """For each point a, the fraction of ``values`` that are <= a (a right-continuous step)."""
    ordered = np.sort(values)
    return np.searchsorted(ordered, points, side="right") / len(values)


def performance_profile(
    costs: Mapping[tuple[Hashable, Hashable], Any], *, taus: Sequence[float] | None = None
) -> tuple[np.ndarray, dict[Hashable, np.ndarray]]:
    """Dolan & More's performance profile of each solver over a set of problems.

    With ``t[p, s]`` the cost of solver ``s`` on problem ``p`` (``inf`` when unsolved), the
    performance ratio and the profile are ``r[p, s] = t[p, s] / min_s' t[p, s']`` and
    ``rho_s(tau) = |{p in P : r[p, s] <= tau}| / |P|``.

    An unsolved pair has ``r = inf`` (it never counts; Dolan & More's ``r_M`` is any bound above
    every finite ratio), and so does every solver on a problem that no solver solved.
    ``rho_s(1)`` is the fraction of problems on which ``s`` was (one of) the cheapest;
    ``rho_s(tau)`` for large ``tau`` is the fraction it solved at all.

    Args:
        costs: ``{(solver, problem): cost}`` with cost > 0, or ``None``/``inf``/NaN when the
            solver did not solve the problem; every pair must be present.
        taus: where to evaluate ``rho``; default: every distinct finite ratio (including 1),
            sorted, which are the breakpoints of the step functions.

    Returns:
        ``(taus, {solver: rho})``: ``taus`` a sorted float array and each ``rho`` an array of
        the same length (non-decreasing, in [0, 1]).

    Raises:
        ValueError: an empty table, a key that is not a pair, a missing pair, or a cost <= 0.

    Example:
        >>> costs = {("a", "p1"): 10, ("b", "p1"): 20, ("a", "p2"): None, ("b", "p2"): 5}
        >>> taus, rho = performance_profile(costs)
        >>> taus.tolist(), rho["a"].tolist(), rho["b"].tolist()
        ([1.0, 2.0], [0.5, 0.5], [0.5, 1.0])

    References:
        Dolan, E. D. and More, J. J. (2002). Benchmarking optimization software with
        performance profiles. *Mathematical Programming* 91(2), 201-213.
    """
    solvers, _, t = _cost_matrix(costs)
    best = t.min(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):  # inf / inf on problems nobody solved
        ratios = np.where(np.isfinite(best), t / best, math.inf)
    if taus is None:
        finite = ratios[np.isfinite(ratios)]
        grid = np.unique(np.concatenate([[1.0], finite]))
    else:
        grid = np.sort(np.asarray(taus, dtype=float))
    return grid, {s: _step_values(ratios[:, j], grid) for j, s in enumerate(solvers)}


def data_profile(
    costs: Mapping[tuple[Hashable, Hashable], Any],
    dims: Mapping[Hashable, int],
    *,
    alphas: Sequence[float] | None = None,
) -> tuple[np.ndarray, dict[Hashable, np.ndarray]]:
    """More & Wild's data profile: the fraction of problems solved within a budget.

    With ``t[p, s]`` the number of evaluations solver ``s`` needed on problem ``p`` (``inf``
    when unsolved) and ``n_p`` the number of variables of ``p``, budgets are counted in
    simplex gradients (``n_p + 1`` evaluations, the cost of one forward-difference gradient):
    ``d_s(alpha) = |{p in P : t[p, s] / (n_p + 1) <= alpha}| / |P|``.

    Which test counts as "solved" is the caller's (More & Wild use
    ``f(x_0) - f(x) >= (1 - tau)(f(x_0) - f_L)``); :meth:`lossopt.comparison.Comparison.
    time_to_tolerance` and :func:`lossopt.comparison.profile_costs` give costs for
    ``f - f* <= eps (|f*| + 1)``.

    Args:
        costs: ``{(solver, problem): evaluations}`` (> 0, ``None``/``inf``/NaN when unsolved);
            every pair must be present.
        dims: ``{problem: n_p}``, the number of variables (>= 1) of each problem.
        alphas: budgets (in units of ``n_p + 1`` evaluations) at which to evaluate ``d``;
            default: every distinct finite ``t / (n_p + 1)``, sorted.

    Returns:
        ``(alphas, {solver: d})``: sorted budgets and, per solver, the fraction of problems
        solved within each.

    Raises:
        ValueError: as :func:`performance_profile`, or a problem missing from ``dims`` or with
            ``n_p < 1``.

    Example:
        >>> costs = {("a", "p1"): 6, ("a", "p2"): 30, ("b", "p1"): None, ("b", "p2"): 9}
        >>> alphas, d = data_profile(costs, {"p1": 2, "p2": 2})
        >>> alphas.tolist(), d["a"].tolist(), d["b"].tolist()
        ([2.0, 3.0, 10.0], [0.5, 0.5, 1.0], [0.0, 0.5, 0.5])

    References:
        More, J. J. and Wild, S. M. (2009). Benchmarking derivative-free optimization
        algorithms. *SIAM Journal on Optimization* 20(1), 172-191.
    """
    solvers, problems, t = _cost_matrix(costs)
    sizes = np.empty(len(problems))
    for i, p in enumerate(problems):
        if p not in dims:
            raise ValueError(f"`dims` has no entry for problem {p!r}: give its number of variables")
        n = dims[p]
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"`dims[{p!r}]` must be an int >= 1 (variables); got {n!r}")
        sizes[i] = n + 1
    budgets = t / sizes[:, None]
    if alphas is None:
        grid = np.unique(budgets[np.isfinite(budgets)])
    else:
        grid = np.sort(np.asarray(alphas, dtype=float))
    return grid, {s: _step_values(budgets[:, j], grid) for j, s in enumerate(solvers)}
