"""Nonlinear least squares: lossopt GaussNewton / LevenbergMarquardt against scipy and optimistix.

Problems: MGH residual problems from ``lossopt.problems`` and a curve fit (a sum of two
decaying exponentials plus an offset, ``--fit-m`` noisy points, five parameters). Solvers:

- lossopt ``LevenbergMarquardt()`` and ``GaussNewton()`` through
  ``lossopt.minimize_least_squares`` (one compiled loop per problem; ``gtol=1e-8`` on
  ``max|J^T r|``, ``ftol=1e-12``);
- ``scipy.optimize.least_squares`` with ``method="trf"`` and ``method="lm"`` (MINPACK), given
  the residuals and the forward-mode Jacobian as jitted JAX functions (so scipy pays one
  dispatch per evaluation, as a JAX user's scipy call does; default tolerances 1e-8);
- ``optimistix.least_squares`` with ``optimistix.LevenbergMarquardt(rtol=1e-8, atol=1e-8)``.

For every (problem, solver): the first call in this process (tracing + compilation + run;
for scipy the jit of the residual and Jacobian), then ``--repeats`` warm calls interleaved
across solvers (round-robin), reported as min and median; the iterations (lossopt: accepted
steps; scipy: residual evaluations ``nfev``; optimistix: steps) and the final value
``sum(r**2)`` (MGH's convention: twice lossopt's ``F = 1/2 ||r||^2``). The ratio column is
warm median time over lossopt LM's.

Usage::

    python experiments/benchmarks/bench_least_squares.py                 # all, 7 repeats
    python experiments/benchmarks/bench_least_squares.py --quick         # 3 problems, 3 repeats
    python experiments/benchmarks/bench_least_squares.py --problems bard,meyer --repeats 11
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time

import jax

jax.config.update("jax_enable_x64", True)  # a script, not the library: float64 throughout

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optimistix as optx  # noqa: E402
from scipy.optimize import least_squares  # noqa: E402

import lossopt  # noqa: E402
from lossopt import problems  # noqa: E402
from lossopt.solvers import GaussNewton, LevenbergMarquardt  # noqa: E402

MGH = ["rosenbrock", "freudenstein_roth", "powell_singular", "bard", "box_3d", "meyer",
       "kowalik_osborne", "osborne_1", "osborne_2", "watson"]


def curve_residuals(p, t, y):
    return p[0] * jnp.exp(-p[1] * t) + p[2] * jnp.exp(-p[3] * t) + p[4] - y


def curve_problem(m: int):
    rng = np.random.default_rng(0)
    t = np.linspace(0.0, 10.0, m)
    truth = np.array([3.0, 0.4, 1.5, 2.5, 0.2])
    y = np.asarray(curve_residuals(truth, t, 0.0)) + 0.01 * rng.normal(size=m)
    return f"curve_fit(m={m})", curve_residuals, np.array([1.0, 0.1, 1.0, 1.0, 0.0]), (t, y)


def cases(names, fit_m):
    out = []
    for name in names:
        if name == "curve_fit":
            out.append(curve_problem(fit_m))
            continue
        p = problems.get(name)
        out.append((name, p.residuals, np.asarray(p.x0, np.float64), p.args))
    return out


def make_runners(residuals, x0, args):
    """``{solver: call() -> (value sum r^2, iterations)}``; every call blocks."""
    x0j = jnp.asarray(x0)

    def lossopt_run(solver):
        def call():
            res = lossopt.minimize_least_squares(residuals, x0j, solver, args=args,
                                                 max_iters=1000, gtol=1e-8, ftol=1e-12)
            return 2.0 * float(res.value), int(res.iterations), res.status.name
        return call

    r_jit = jax.jit(residuals)
    j_jit = jax.jit(jax.jacfwd(residuals))

    def scipy_run(method):
        def call():
            out = least_squares(lambda x: np.asarray(r_jit(x, *args)), x0, method=method,
                                jac=lambda x: np.asarray(j_jit(x, *args)), max_nfev=10_000)
            return float(np.sum(out.fun ** 2)), int(out.nfev), "ok" if out.success else "fail"
        return call

    optx_solver = optx.LevenbergMarquardt(rtol=1e-8, atol=1e-8)

    def optx_fn(y, a):
        return residuals(y, *a)

    def optx_run():
        sol = optx.least_squares(optx_fn, optx_solver, x0j, args=args, max_steps=1000,
                                 throw=False)
        value = float(jnp.sum(optx_fn(sol.value, args) ** 2))
        ok = "ok" if sol.result == optx.RESULTS.successful else "fail"
        return value, int(sol.stats["num_steps"]), ok

    return {
        "lossopt LM": lossopt_run(LevenbergMarquardt()),
        "lossopt GN": lossopt_run(GaussNewton()),
        "scipy trf": scipy_run("trf"),
        "scipy lm": scipy_run("lm"),
        "optimistix LM": optx_run,
    }


def bench(case, repeats):
    name, residuals, x0, args = case
    runners = make_runners(residuals, x0, args)
    first, outcome = {}, {}
    for label, call in runners.items():
        t0 = time.perf_counter()
        outcome[label] = call()
        first[label] = time.perf_counter() - t0
    warm = {label: [] for label in runners}
    for _ in range(repeats):  # interleaved: one call of each solver per round
        for label, call in runners.items():
            t0 = time.perf_counter()
            call()
            warm[label].append(time.perf_counter() - t0)
    base = statistics.median(warm["lossopt LM"])
    print(f"\n### {name} (n={x0.size})\n")
    print("| solver | first call (s) | warm min / median (ms) | vs lossopt LM | iterations | "
          "sum r^2 | status |")
    print("|---|---|---|---|---|---|---|")
    for label in runners:
        med = statistics.median(warm[label])
        value, iters, status = outcome[label]
        print(f"| {label} | {first[label]:.2f} | {1e3 * min(warm[label]):.2f} / {1e3 * med:.2f}"
              f" | {med / base:.2f}x | {iters} | {value:.10g} | {status} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default=",".join([*MGH, "curve_fit"]))
    parser.add_argument("--fit-m", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true")
    opts = parser.parse_args()
    names = opts.problems.split(",")
    repeats = opts.repeats
    if opts.quick:
        names, repeats = ["rosenbrock", "bard", "curve_fit"], 3
    print(f"# bench_least_squares {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
          f"{platform.machine()}, {jax.devices()[0].platform}, jax {jax.__version__}, "
          f"optimistix {optx.__version__}, repeats {repeats}")
    for case in cases(names, opts.fit_m):
        bench(case, repeats)


if __name__ == "__main__":
    main()
