"""First-call and warm time of lossopt now against an earlier revision, in one interleaved run.

A change to the loop or the compile policy must not make a warm solve slower, and the first
call is what it sets out to cut: this benchmark measures both for the working tree and for a
git revision (checked out into a temporary worktree), in fresh processes that alternate
between the two (``A B A B ...``), so the machine's drift hits both alike. It prints, per case,
min and median of each and the ratios now / then.

Each child process (float64, no persistent compilation cache) builds the problem, times the
first ``lossopt.minimize`` call (trace + compile + run) and the minimum of ``--warm`` further
calls. The problems: ``small`` (500 x 10 L2 logistic regression) and ``medium`` (50,000 x 200,
the same model), both seeded.

Usage::

    python experiments/benchmarks/bench_against_revision.py --revision 57d5757 --repeats 3
    python experiments/benchmarks/bench_against_revision.py --problems medium --cases gd,lbfgs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import json, sys, time
    import jax, jax.numpy as jnp, numpy as np, optax
    jax.config.update("jax_enable_x64", True)
    import lossopt
    from lossopt.solvers import GradientDescent, Newton, Optax

    problem, case, warm_calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
    n, d = {"small": (500, 10), "medium": (50_000, 200)}[problem]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)) / np.sqrt(d)
    y = (X @ rng.normal(size=d) + 0.5 * rng.normal(size=n) > 0).astype(float)
    X, y = jax.device_put(X), jax.device_put(y)

    def objective(w, X, y):
        z = X @ w
        return jnp.mean(jax.nn.softplus(z) - y * z) + 1e-2 * jnp.sum(w ** 2)

    solvers = {
        "gd": lambda: GradientDescent(2.0),
        "newton": lambda: Newton(),
        "newton-cg": lambda: Newton(linear_solver="cg"),
        "optax-lbfgs": lambda: Optax(optax.lbfgs()),
        "lbfgs": lambda: lossopt.solvers.LBFGS(),
    }
    solver = solvers[case]()
    options = dict(args=(X, y), max_iters=1000, gtol=1e-6)
    jax.block_until_ready((X, y))
    t0 = time.perf_counter()
    res = jax.block_until_ready(lossopt.minimize(objective, jnp.zeros(d), solver, **options))
    first = time.perf_counter() - t0
    warm = []
    for _ in range(warm_calls):
        t0 = time.perf_counter()
        jax.block_until_ready(lossopt.minimize(objective, jnp.zeros(d), solver, **options))
        warm.append(time.perf_counter() - t0)
    print(json.dumps({"first": first, "warm": min(warm), "iterations": int(res.iterations),
                      "value": float(res.value)}))
    """
)


def run_child(source: Path, problem: str, case: str, warm: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env.update(PYTHONPATH=str(source), LOSSOPT_CACHE_DIR="", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", CHILD, problem, case, str(warm)], env=env,
                          capture_output=True, text=True, timeout=900, cwd=source)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1][:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--revision", default="57d5757", help="the git revision to compare with")
    parser.add_argument("--problems", default="small,medium")
    parser.add_argument("--cases", default="gd,newton,optax-lbfgs,lbfgs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warm", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        then = Path(tmp) / "then"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(then),
                        args.revision], check=True, capture_output=True)
        try:
            results: dict = {}
            for rep in range(args.repeats):
                for problem in args.problems.split(","):
                    for case in args.cases.split(","):
                        for label, source in (("now", ROOT), ("then", then)):
                            r = run_child(source, problem, case, args.warm)
                            results.setdefault((problem, case, label), []).append(r)
                            print(f"  [{rep + 1}/{args.repeats}] {problem:6s} {case:12s} "
                                  f"{label:4s} {r}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(then)], capture_output=True)
    print(f"\nnow = working tree, then = {args.revision}; seconds, min / median over "
          f"{args.repeats} fresh processes; ratios of the minima\n")
    print(f"{'problem':8s} {'case':12s} {'first now':>15s} {'first then':>15s} {'ratio':>6s} "
          f"{'warm now':>17s} {'warm then':>17s} {'ratio':>6s}  iterations")
    for problem in args.problems.split(","):
        for case in args.cases.split(","):
            now, then_ = (results[(problem, case, k)] for k in ("now", "then"))
            if any("error" in r for r in now + then_):
                errors = {r.get("error") for r in now + then_ if "error" in r}
                print(f"{problem:8s} {case:12s} error: {errors}")
                continue

            def cell(rs, key):
                values = [r[key] for r in rs]
                return min(values), statistics.median(values)

            fn, ft = cell(now, "first"), cell(then_, "first")
            wn, wt = cell(now, "warm"), cell(then_, "warm")
            print(f"{problem:8s} {case:12s} {fn[0]:7.3f}/{fn[1]:7.3f} {ft[0]:7.3f}/{ft[1]:7.3f} "
                  f"{fn[0] / ft[0]:6.2f} {wn[0]:8.4f}/{wn[1]:8.4f} {wt[0]:8.4f}/{wt[1]:8.4f} "
                  f"{wn[0] / wt[0]:6.2f}  {now[0]['iterations']}/{then_[0]['iterations']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
