"""Lasso time to a tolerance: lossopt ProximalGradient vs scikit-learn and jaxopt.

Problem (float64): ``min_w (1/(2n)) ||y - X w||^2 + alpha ||w||_1`` with ``X`` of ``--size``
(default 10000 x 500) whose columns are AR(1)-correlated Gaussians (``corr(x_i, x_j) =
rho^|i-j|``, ``--rho`` 0.6), a sparse ground truth (``--nonzeros`` 25 nonzero weights of
size ~1, the rest 0), ``y = X w + 0.5 noise``, and ``alpha = --alpha-frac * alpha_max``
(``alpha_max = ||X^T y||_inf / n``: the smallest alpha whose solution is 0).

Cases (each solver's own stopping rule, with a tolerance chosen so that all reach about the
same accuracy; the accuracy reached is measured and printed for every run):

- ``lossopt``: ``ProximalGradient(1.0, prox=l1(alpha), restart="gradient",
  line_search="backtracking")`` in ``lossopt.minimize`` (``compile="auto"``), ``gtol`` on the
  gradient mapping's max-abs norm;
- ``lossopt-ista``: the same without acceleration (ISTA with backtracking);
- ``lossopt-gram``: ``lossopt`` on the same objective written with the Gram matrix,
  ``f(w) = w^T G w / 2 - b^T w + c`` (``G = X^T X / n``, ``b = X^T y / n``, computed inside
  the timed call, as scikit-learn's ``precompute=True`` does): iterations no longer read ``X``;
- ``jaxopt``: ``jaxopt.ProximalGradient(prox=prox_lasso, acceleration=True)`` with its default
  FISTA line search, ``tol`` on the gradient mapping's l2 norm at the extrapolated point,
  its ``run`` inside one ``jax.jit`` (without it every call re-traces);
- ``sklearn``: ``Lasso(fit_intercept=False)`` (coordinate descent, duality-gap ``tol``);
- ``sklearn-gram``: the same with ``precompute=True`` (the Gram matrix, which pays off when
  n >> p).

Every measurement runs in a fresh Python process (``--child``): it builds the data (untimed),
then times the first call (tracing + compilation + the solve: what a user waits for) and
``--warm`` further calls of the same solve (the compiled program reused). Repeats are
interleaved (round-robin over the cases), and the table reports ``min / median`` over
``--repeats``. Ratios are each case's time over scikit-learn's and jaxopt's in the same run
(< 1: lossopt is faster). Accuracy: ``max |w - w*|`` and ``F(w) - F(w*)`` against a reference
``w*`` from scikit-learn at ``tol=1e-14``, and whether the zero pattern matches.

Usage::

    python experiments/benchmarks/bench_lasso.py                 # 10000 x 500, 5 repeats
    python experiments/benchmarks/bench_lasso.py --quick         # 2000 x 100, 2 repeats
    python experiments/benchmarks/bench_lasso.py --repeats 7 --cases lossopt,jaxopt,sklearn
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

MARK = "BENCH_LASSO_RESULT "
CASES = ("lossopt", "lossopt-ista", "lossopt-gram", "jaxopt", "sklearn", "sklearn-gram")
# Tolerances: each chosen so that the solution reaches max|w - w*| of about 1e-7 or better on
# the default problem (measured and printed with every run).
LOSSOPT_GTOL = 1e-7
JAXOPT_TOL = 1e-7
SKLEARN_TOL = 1e-7
MAX_ITERS = 20_000


def make_data(n, p, rho, nonzeros, alpha_frac, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, p))
    X = np.empty_like(z)
    X[:, 0] = z[:, 0]
    for j in range(1, p):  # AR(1) columns: unit variance, corr rho^|i-j|
        X[:, j] = rho * X[:, j - 1] + np.sqrt(1 - rho**2) * z[:, j]
    w = np.zeros(p)
    support = rng.choice(p, size=nonzeros, replace=False)
    w[support] = rng.choice([-1.0, 1.0], nonzeros) * rng.uniform(0.5, 1.5, nonzeros)
    y = X @ w + 0.5 * rng.standard_normal(n)
    alpha = alpha_frac * np.abs(X.T @ y).max() / n
    return X, y, alpha


def objective_np(w, X, y, alpha):
    import numpy as np

    return 0.5 * np.mean((X @ w - y) ** 2) + alpha * np.abs(w).sum()


# ------------------------------------------------------------------------------ the child


def run_child(case, args):
    t_import = time.perf_counter()
    import numpy as np

    X, y, alpha = make_data(args.n, args.p, args.rho, args.nonzeros, args.alpha_frac)
    if case.startswith("sklearn"):
        from sklearn.linear_model import Lasso

        def solve():
            model = Lasso(alpha=alpha, fit_intercept=False, tol=SKLEARN_TOL,
                          max_iter=MAX_ITERS, precompute=case == "sklearn-gram")
            model.fit(X, y)
            return model.coef_, model.n_iter_
    else:
        import jax

        jax.config.update("jax_enable_x64", True)  # a script, not the library
        import jax.numpy as jnp

        Xj, yj = jnp.asarray(X), jnp.asarray(y)

        def f(w, X, y):
            return 0.5 * jnp.mean((X @ w - y) ** 2)

        w0 = jnp.zeros(args.p)
        if case.startswith("lossopt"):
            import lossopt
            from lossopt.solvers import ProximalGradient

            if case in ("lossopt", "lossopt-gram"):
                solver = ProximalGradient(1.0, prox=lossopt.prox.l1(alpha), restart="gradient",
                                          line_search="backtracking")
            else:
                solver = ProximalGradient(1.0, prox=lossopt.prox.l1(alpha), acceleration=None,
                                          line_search="backtracking")

            fun, data = f, lambda: (Xj, yj)
            if case == "lossopt-gram":
                gram = jax.jit(lambda X, y: (X.T @ X / X.shape[0], X.T @ y / X.shape[0],
                                             0.5 * jnp.mean(y * y)))

                def fun(w, G, b, c):  # the same f as `f`, expanded
                    return 0.5 * w @ (G @ w) - b @ w + c

                def data():
                    return gram(Xj, yj)

            def solve():
                res = lossopt.minimize(fun, w0, solver, args=data(), gtol=LOSSOPT_GTOL,
                                       max_iters=MAX_ITERS)
                return np.asarray(res.params), int(res.iterations)
        else:
            import jaxopt
            from jaxopt.prox import prox_lasso

            pg = jaxopt.ProximalGradient(fun=f, prox=prox_lasso, tol=JAXOPT_TOL,
                                         maxiter=MAX_ITERS, acceleration=True)

            # One jax.jit around run: jaxopt's own jit re-traces its loop on every run call
            # (measured: warm calls as slow as the first), which no user wants to time.
            run = jax.jit(lambda w0, X, y: pg.run(w0, hyperparams_prox=alpha, X=X, y=y))

            def solve():
                out = run(w0, Xj, yj)
                return np.asarray(out.params), int(out.state.iter_num)

    t0 = time.perf_counter()
    w, iters = solve()
    first = time.perf_counter() - t0
    warm = []
    for _ in range(args.warm):
        t0 = time.perf_counter()
        solve()
        warm.append(time.perf_counter() - t0)
    print(MARK + json.dumps({
        "case": case, "first": first, "warm": min(warm) if warm else None,
        "iterations": iters, "w": np.asarray(w).tolist(),
        "setup": t0 - t_import,
    }))


# ------------------------------------------------------------------------------ the parent


def child_command(case, args):
    return [sys.executable, str(Path(__file__).resolve()), "--child", case,
            "--size", f"{args.n}x{args.p}", "--rho", str(args.rho),
            "--nonzeros", str(args.nonzeros), "--alpha-frac", str(args.alpha_frac),
            "--warm", str(args.warm)]


def run_case(case, args):
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    out = subprocess.run(child_command(case, args), capture_output=True, text=True, env=env,
                         check=False)
    for line in out.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f"case {case} failed:\n{out.stdout}\n{out.stderr}")


def fmt(values, scale=1.0):
    return f"{min(values) * scale:.3f} / {statistics.median(values) * scale:.3f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="10000x500")
    parser.add_argument("--rho", type=float, default=0.6)
    parser.add_argument("--nonzeros", type=int, default=25)
    parser.add_argument("--alpha-frac", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warm", type=int, default=3, help="warm calls per process (min kept)")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--quick", action="store_true", help="2000x100, 2 repeats")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.repeats = "2000x100", 2
    args.n, args.p = (int(v) for v in args.size.lower().split("x"))
    if args.child:
        return run_child(args.child, args)

    import numpy as np
    from sklearn.linear_model import Lasso

    cases = [c for c in args.cases.split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; choose from {list(CASES)}")
    X, y, alpha = make_data(args.n, args.p, args.rho, args.nonzeros, args.alpha_frac)
    ref = Lasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=1_000_000).fit(X, y).coef_
    F_ref = objective_np(ref, X, y, alpha)
    print(f"Lasso {args.n} x {args.p} float64, rho={args.rho}, {args.nonzeros} true nonzeros, "
          f"alpha={alpha:.4g} ({args.alpha_frac} alpha_max); reference: {int((ref != 0).sum())} "
          f"nonzeros, F* = {F_ref:.12g}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; "
          f"tolerances: lossopt gtol={LOSSOPT_GTOL}, jaxopt tol={JAXOPT_TOL}, sklearn "
          f"tol={SKLEARN_TOL}; {args.repeats} interleaved repeats, fresh process each, "
          f"{args.warm} warm calls per process")
    runs = {c: [] for c in cases}
    for r in range(args.repeats):
        order = cases[r % len(cases):] + cases[:r % len(cases)]  # rotate the start
        for case in order:
            runs[case].append(run_case(case, args))
    firsts = {c: [run["first"] for run in runs[c]] for c in cases}
    warms = {c: [run["warm"] for run in runs[c]] for c in cases}
    header = ("| case | first call s (min / med) | warm s (min / med) | iterations | "
              "max abs err | F - F* | zeros match |"
              + "".join(f" warm x {b} |" for b in ("sklearn", "jaxopt") if b in cases))
    print()
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for c in cases:
        w = np.asarray(runs[c][-1]["w"])
        err = np.abs(w - ref).max()
        gap = objective_np(w, X, y, alpha) - F_ref
        zeros = bool(np.array_equal(w == 0, ref == 0))
        row = (f"| {c} | {fmt(firsts[c])} | {fmt(warms[c])} | {runs[c][-1]['iterations']} | "
               f"{err:.1e} | {gap:.1e} | {zeros} |")
        for base in ("sklearn", "jaxopt"):
            if base in cases:
                row += f" {min(warms[c]) / min(warms[base]):.2f} |"
        print(row)
    print()
    for base in ("sklearn", "jaxopt"):
        if base in cases:
            parts = [f"{c} {min(firsts[c]) / min(firsts[base]):.2f}" for c in cases]
            print(f"first call (min) over {base}'s: " + ", ".join(parts))


if __name__ == "__main__":
    main()
