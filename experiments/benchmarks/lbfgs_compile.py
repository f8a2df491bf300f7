"""Compile and warm time of lossopt's LBFGS vs Optax(optax.lbfgs()), one fresh process per run.

500 x 10 L2-regularised logistic regression in float64, no compilation cache. Each child
prints the first call of ``lossopt.minimize`` (trace + compile + run) and the best of five
warm calls; the parent repeats each case and prints min and median.

    python experiments/benchmarks/lbfgs_compile.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp, numpy as np, optax
import lossopt
from lossopt.solvers import LBFGS, Optax

solver_name, mode = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
X = jnp.asarray(rng.normal(size=(500, 10)))
y = jnp.asarray((rng.random(500) < 1 / (1 + np.exp(-np.asarray(X) @ rng.normal(size=10)))).astype(float))

def objective(w, X, y):
    z = X @ w
    return jnp.mean(jax.nn.softplus(z) - y * z) + 1e-2 * jnp.sum(w ** 2)

solver = LBFGS() if solver_name == "lbfgs" else Optax(optax.lbfgs())
run = lambda: lossopt.minimize(objective, jnp.zeros(10), solver, args=(X, y), gtol=1e-6,
                               compile=mode)
t = time.perf_counter(); res = run(); jax.block_until_ready(res.params)
first = time.perf_counter() - t
warm = []
for _ in range(5):
    t = time.perf_counter(); jax.block_until_ready(run().params); warm.append(time.perf_counter() - t)
print(json.dumps({"first": first, "warm": min(warm), "iters": int(res.iterations),
                  "status": lossopt.Status(int(res.status)).name, "value": float(res.value)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for mode in ("auto", "optimized"):
        for solver in ("lbfgs", "optax_lbfgs"):
            runs = []
            for _ in range(args.repeats):
                out = subprocess.run([sys.executable, "-c", CHILD, solver, mode], check=True,
                                     capture_output=True, text=True).stdout
                runs.append(json.loads(out.strip().splitlines()[-1]))
            first = [r["first"] for r in runs]
            warm = [r["warm"] * 1e3 for r in runs]
            print(f"{solver:12s} compile={mode:9s} first call min {min(first):.2f} s median "
                  f"{statistics.median(first):.2f} s | warm min {min(warm):.2f} ms median "
                  f"{statistics.median(warm):.2f} ms | {runs[0]['status']} in "
                  f"{runs[0]['iters']} iterations, f = {runs[0]['value']:.10f}", flush=True)


if __name__ == "__main__":
    main()
