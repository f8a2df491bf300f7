"""Newton, Newton-CG, gradient descent (Armijo) and L-BFGS over the More-Garbow-Hillstrom set.

Every problem of ``lossopt.problems.names("mgh")`` (35, default dimensions) is solved from its
standard start in float64 with ``compile="fast"``, ``max_iters`` iterations (2000 by default)
and ``gtol`` (1e-8 by default; ftol and xtol off). A run counts as **solved** when
``f - f* <= 1e-6 * (|f*| + 1)`` with ``f*`` the problem's published minimum (``Problem.f_star``);
a run that stops at a different local minimum (MGH lists several for Freudenstein-Roth, Bard,
Kowalik-Osborne, Biggs EXP6 and the trigonometric function) is not solved.

The script prints one row per problem and solver (status, iterations, objective evaluations,
``f - f*``, solved) and a summary per solver (problems solved, total and median evaluations,
mean evaluations per iteration). To compare against another revision, run it twice with
``PYTHONPATH`` pointing at each checkout::

    git worktree add /tmp/base <rev>
    PYTHONPATH=/tmp/base python experiments/benchmarks/bench_mgh.py --json /tmp/mgh_base.json
    python experiments/benchmarks/bench_mgh.py --json /tmp/mgh_new.json --compare /tmp/mgh_base.json

``--compare`` adds the other run's status, evaluations and solved columns next to this run's.
Timing is not the point here (the machine is shared): the numbers are iterations, evaluations
and final accuracy, which do not depend on the load.
"""

from __future__ import annotations

import argparse
import json
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import lossopt  # noqa: E402
from lossopt import problems  # noqa: E402
from lossopt.solvers import LBFGS, GradientDescent, Newton  # noqa: E402

SOLVERS = {
    "newton": lambda: Newton(),
    "newton_cg": lambda: Newton(linear_solver="cg"),
    "gd_armijo": lambda: GradientDescent(learning_rate=1.0, line_search="armijo"),
    "lbfgs": lambda: LBFGS(),
}


def solved(gap: float, f_star: float) -> bool:
    """The benchmark's success rule: ``f - f* <= 1e-6 (|f*| + 1)`` (NaN is not solved)."""
    return bool(gap <= 1e-6 * (abs(f_star) + 1.0))


def run_one(problem, solver_name: str, max_iters: int, gtol: float) -> dict:
    res = lossopt.minimize(
        problem.fun,
        jnp.asarray(problem.x0),
        SOLVERS[solver_name](),
        args=tuple(jnp.asarray(a) for a in problem.args),
        max_iters=max_iters,
        gtol=gtol,
        compile="fast",
        record_every=max_iters,
    )
    gap = float(res.value) - problem.f_star
    return {
        "problem": problem.name,
        "solver": solver_name,
        "status": lossopt.Status(int(res.status)).name,
        "iterations": int(res.iterations),
        "fun_evals": int(res.num_fun_evals),
        "gap": gap,
        "solved": solved(gap, problem.f_star),
    }


def summarise(rows: list[dict]) -> dict[str, dict]:
    out = {}
    for name in SOLVERS:
        mine = [r for r in rows if r["solver"] == name]
        if not mine:
            continue
        evals = [r["fun_evals"] for r in mine]
        iters = [r["iterations"] for r in mine]
        out[name] = {
            "solved": sum(r["solved"] for r in mine),
            "problems": len(mine),
            "total_evals": int(sum(evals)),
            "median_evals": float(np.median(evals)),
            "evals_per_iter": float(sum(evals) / max(sum(iters), 1)),
            "line_search_failed": sum(r["status"] == "LINE_SEARCH_FAILED" for r in mine),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-iters", type=int, default=2000)
    parser.add_argument("--gtol", type=float, default=1e-8)
    parser.add_argument("--solvers", default=",".join(SOLVERS),
                        help="comma-separated subset of " + ", ".join(SOLVERS))
    parser.add_argument("--problems", default="", help="comma-separated subset (default: all)")
    parser.add_argument("--json", help="write the rows and summary here")
    parser.add_argument("--compare", help="a --json file of another run to show alongside")
    opts = parser.parse_args(argv)

    names = opts.problems.split(",") if opts.problems else problems.names("mgh")
    solver_names = opts.solvers.split(",")
    other = {}
    if opts.compare:
        with open(opts.compare) as fh:
            other = {(r["problem"], r["solver"]): r for r in json.load(fh)["rows"]}

    print(f"# MGH set: max_iters={opts.max_iters}, gtol={opts.gtol:g}, float64, "
          "compile='fast'; solved: f - f* <= 1e-6 (|f*| + 1)")
    head = f"{'problem':28s} {'solver':10s} {'status':19s} {'iters':>6s} {'evals':>7s} " \
           f"{'f - f*':>10s} {'solved':>6s}"
    if other:
        head += f" | {'before':19s} {'evals':>7s} {'solved':>6s}"
    print(head)
    rows = []
    for pname in names:
        problem = problems.get(pname)
        for sname in solver_names:
            r = run_one(problem, sname, opts.max_iters, opts.gtol)
            rows.append(r)
            line = (f"{pname:28s} {sname:10s} {r['status']:19s} {r['iterations']:6d} "
                    f"{r['fun_evals']:7d} {r['gap']:10.2e} {'yes' if r['solved'] else 'no':>6s}")
            o = other.get((pname, sname))
            if o is not None:
                line += (f" | {o['status']:19s} {o['fun_evals']:7d} "
                         f"{'yes' if o['solved'] else 'no':>6s}")
            print(line, flush=True)

    print("\n# summary")
    summary = summarise(rows)
    before = summarise(list(other.values())) if other else {}
    for name, s in summary.items():
        line = (f"{name:10s} solved {s['solved']:2d}/{s['problems']}, evals total "
                f"{s['total_evals']:8d}, median {s['median_evals']:7.0f}, per iteration "
                f"{s['evals_per_iter']:5.2f}, LINE_SEARCH_FAILED {s['line_search_failed']}")
        b = before.get(name)
        if b is not None:
            line += (f" | before: solved {b['solved']:2d}, evals total {b['total_evals']:8d}, "
                     f"per iteration {b['evals_per_iter']:5.2f}, "
                     f"LINE_SEARCH_FAILED {b['line_search_failed']}")
        print(line)
    if opts.json:
        with open(opts.json, "w") as fh:
            json.dump({"rows": rows, "summary": summary,
                       "max_iters": opts.max_iters, "gtol": opts.gtol}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
