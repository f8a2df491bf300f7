"""experiments/benchmarks/bench_first_call.py: its child processes run and solve the problem.

No timing is asserted (a shared machine makes any bound flaky); the test checks that one
cheap case of each kind runs in a fresh process through the benchmark's own ``run_child``,
reports every field, and reaches the optimum that scipy finds in this process.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import scipy.optimize

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ("import_s", "setup_s", "first_s", "warm_s", "iterations", "status", "final_loss",
          "grad_inf")


def _load():
    path = ROOT / "experiments" / "benchmarks" / "bench_first_call.py"
    spec = importlib.util.spec_from_file_location("bench_first_call", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load()


def _scipy_optimum(problem):
    """The optimal value by scipy's L-BFGS-B here, to a far tighter tolerance than the cases."""
    x0, args = bench.problem_data(problem)
    res = scipy.optimize.minimize(lambda x: bench.numpy_value_and_grad(problem, x, *args), x0,
                                  jac=True, method="L-BFGS-B",
                                  options=dict(gtol=1e-10, ftol=0.0, maxiter=10_000))
    return res.fun


@pytest.mark.parametrize(("case", "problem", "jax_child"), [
    ("scipy-lbfgsb", "small", False),
    ("gd", "rosenbrock", True),
])
def test_a_case_runs_in_a_fresh_process_and_solves_the_problem(case, problem, jax_child):
    record = bench.run_child(dict(mode="case", case=case, problem=problem, compile=None,
                                  warm=1, hlo=False, repeat=0), timeout=120)
    assert "error" not in record, record.get("error")
    for field in FIELDS:
        assert record[field] is not None, field
    assert record["first_s"] > 0 and record["warm_s"] > 0 and record["iterations"] > 0
    assert record["status"].lower() == "converged"
    # Both stop at max|g| <= 1e-6. For a mu-strongly convex f, f - f* <= ||g||_2^2 / (2 mu)
    # <= d |g|_inf^2 / (2 mu): 10 * 1e-12 / 0.04 = 2.5e-10 on the logistic problem (mu >= 2
    # lambda = 0.02), about 2e-12 at Rosenbrock's minimum (Hessian eigenvalues >= 0.4): far
    # inside 1e-6.
    assert abs(record["final_loss"] - _scipy_optimum(problem)) <= 1e-6
    assert record["grad_inf"] <= 1.01e-6  # the reported gradient matches the stopping rule
    if jax_child:  # the child ran in float64 with no persistent compilation cache
        assert record["env"]["x64"] is True
        assert record["env"]["compilation_cache_dir"] is None


def test_aggregate_takes_min_and_median_per_case():
    records = [dict(problem="p", case="c", compile=None, first_s=t) for t in (3.0, 1.0, 2.0)]
    records.append(dict(problem="p", case="c", compile=None, error="boom"))
    (group,) = bench.aggregate(records, ("problem", "case", "compile"), ("first_s",)).values()
    assert group["first_s"] == dict(min=1.0, median=2.0, n=3)
    assert group["errors"] == ["boom"]
