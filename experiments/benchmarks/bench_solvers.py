"""Benchmark lossopt's compiled solver loop against what users write today.

Measured side by side, in one run, on the current machine (CPU unless JAX finds an
accelerator). Every JAX timing excludes compilation (one warm-up call first) and is the median
of ``--repeats`` runs; compile times are reported separately where they matter.

1. Least squares (float32), fixed iteration count: lossopt GradientDescent (trace recorded
   every iteration, and every ``iters`` iterations as a "no trace" proxy) vs a hand-written
   ``jit(lax.fori_loop)`` recording the loss (the floor), vs a jitted optax step driven from a
   Python loop, vs the seed document's numpy loop (float64, as written there).
2. Learning-rate sweep (float32): ``lossopt.sweep`` over ``--lanes`` learning rates (one
   vmapped call) vs the same number of sequential ``minimize`` calls (already compiled).
3. L2 logistic regression (float64): time to ``|grad|_inf <= 1e-8`` for lossopt Newton
   (Cholesky), Newton-CG and Optax(lbfgs) vs scikit-learn's lbfgs and newton-cholesky; the
   gradient norm reached is recomputed by one JAX function for every solver.

Usage::

    python experiments/benchmarks/bench_solvers.py            # the full sizes of issue 3
    python experiments/benchmarks/bench_solvers.py --quick    # small sizes, a smoke run
    python experiments/benchmarks/bench_solvers.py --ls 100x5:1000 --sweep 10000x50 \
        --logistic 20000x100 --repeats 3
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time

import jax

jax.config.update("jax_enable_x64", True)  # a script, not the library: float64 for part 3

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax import lax  # noqa: E402

import lossopt  # noqa: E402
from lossopt.solvers import GradientDescent, Newton, Optax  # noqa: E402

LR = 0.1


def least_squares(w, X, y):
    return jnp.mean((X @ w - y) ** 2)


def logistic(w, X, y, lam):
    z = X @ w
    return jnp.mean(jax.nn.softplus(z) - y * z) + lam * jnp.sum(w * w)


STAT = statistics.median  # --stat min: the best run, less sensitive to a shared machine


def median_time(fn, repeats):
    """Median (or, with --stat min, minimum) wall time of ``fn()``, which must block."""
    fn()  # warm-up: compilation and caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return STAT(times)


def parse_size(text):
    """'10000x50' -> (10000, 50); '100x5:1000' -> (100, 5, 1000)."""
    shape, _, iters = text.partition(":")
    n, d = (int(v) for v in shape.lower().split("x"))
    return (n, d, int(iters)) if iters else (n, d)


def ls_data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = (X @ rng.standard_normal(d) + 0.5 * rng.standard_normal(n)).astype(np.float32)
    return X, y


# ---------------------------------------------------------------------------- 1. least squares


def make_floor(iters):
    @jax.jit
    def floor(w, X, y):
        def body(i, carry):
            w, losses = carry
            value, g = jax.value_and_grad(least_squares)(w, X, y)
            return w - LR * g, losses.at[i].set(value)

        return lax.fori_loop(0, iters, body, (w, jnp.full(iters, jnp.nan, w.dtype)))

    return floor


def optax_python_loop(w0, X, y, iters):
    opt = optax.sgd(LR)

    @jax.jit
    def step(w, state, X, y):
        value, g = jax.value_and_grad(least_squares)(w, X, y)
        updates, state = opt.update(g, state, w)
        return optax.apply_updates(w, updates), state, value

    def run():
        w, state, losses = w0, opt.init(w0), []
        for _ in range(iters):
            w, state, value = step(w, state, X, y)
            losses.append(value)  # kept on device; converted once at the end
        return w, np.asarray(jnp.stack(losses))

    return run


def numpy_seed_loop(X, y, iters):
    # The seed document's gradient_descent with its MSE loss and gradient (float64 numpy).
    X = X.astype(np.float64)
    y = y.astype(np.float64)

    def run():
        w = np.zeros(X.shape[1])
        losses = []
        for _ in range(iters):
            y_pred = X.dot(w)
            losses.append(np.mean((y - y_pred) ** 2))
            gradient = X.T.dot(-2 * (y - y_pred)) / len(y)
            w -= LR * gradient
        return w, losses

    return run


def bench_least_squares(sizes, repeats):
    rows = []
    for n, d, iters in sizes:
        X, y = (jnp.asarray(a) for a in ls_data(n, d))
        w0 = jnp.zeros(d, jnp.float32)
        solver = GradientDescent(learning_rate=LR)
        floor = make_floor(iters)

        def lossopt_run(record_every, X=X, y=y, w0=w0, solver=solver, iters=iters):
            res = lossopt.minimize(least_squares, w0, solver, args=(X, y), max_iters=iters,
                                   gtol=0.0, record_every=record_every)
            return jax.block_until_ready(res)

        # the numpy loop is slow on large sizes: fewer repeats there
        np_repeats = repeats if n * d <= 1_000_000 else 1
        t = {
            "floor": median_time(
                lambda f=floor, w0=w0, X=X, y=y: jax.block_until_ready(f(w0, X, y)), repeats
            ),
            "lossopt": median_time(lambda: lossopt_run(1), repeats),
            "lossopt_notrace": median_time(lambda it=iters: lossopt_run(it), repeats),
            "optax_python": median_time(optax_python_loop(w0, X, y, iters), repeats),
            "numpy_seed": median_time(numpy_seed_loop(np.asarray(X), np.asarray(y), iters),
                                      np_repeats),
        }
        # sanity: lossopt and the floor compute the same trace
        res = lossopt_run(1)
        floor_losses = np.asarray(floor(w0, X, y)[1])
        np.testing.assert_allclose(res.trace.to_numpy()["loss"][:iters], floor_losses,
                                   rtol=1e-4)
        rows.append(((n, d, iters), t))
    return rows


# ---------------------------------------------------------------------------- 2. sweep


def bench_sweep(sizes, lanes, iters, repeats):
    rows = []
    for n, d in sizes:
        X, y = (jnp.asarray(a) for a in ls_data(n, d, seed=1))
        w0 = jnp.zeros(d, jnp.float32)
        lrs = jnp.asarray(np.geomspace(1e-3, 0.5, lanes), jnp.float32)
        kwargs = dict(args=(X, y), max_iters=iters, gtol=0.0)

        def vmapped(lrs=lrs, w0=w0, kwargs=kwargs):
            return jax.block_until_ready(
                lossopt.sweep(least_squares, w0, GradientDescent, {"learning_rate": lrs},
                              **kwargs)
            )

        def sequential(lrs=lrs, w0=w0, kwargs=kwargs):
            out = [lossopt.minimize(least_squares, w0, GradientDescent(lr), **kwargs)
                   for lr in lrs]
            return jax.block_until_ready(out)

        t_v = median_time(vmapped, repeats)
        t_s = median_time(sequential, max(1, repeats // 2))
        batched, single = vmapped(), sequential()
        np.testing.assert_allclose(batched.params[-1], single[-1].params, rtol=1e-3, atol=1e-5)
        rows.append(((n, d), t_v, t_s))
    return rows


# ---------------------------------------------------------------------------- 3. logistic


def logistic_data(n, d, seed=2):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w_true = rng.standard_normal(d) / np.sqrt(d) * 3.0
    y = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-X @ w_true))).astype(np.float64)
    return X, y


def bench_logistic(n, d, repeats, gtol=1e-8):
    from sklearn.linear_model import LogisticRegression

    X_np, y_np = logistic_data(n, d)
    X, y = jnp.asarray(X_np), jnp.asarray(y_np)
    C = 1.0
    lam = 1.0 / (2.0 * C * n)  # scikit-learn's objective divided by C n
    grad_inf = jax.jit(lambda w: jnp.max(jnp.abs(jax.grad(logistic)(w, X, y, lam))))
    rows = []
    w0 = jnp.zeros(d)
    for name, solver in [
        ("lossopt Newton (Cholesky)", Newton()),
        ("lossopt Newton-CG", Newton(linear_solver="cg")),
        ("lossopt Optax(lbfgs)", Optax(optax.lbfgs())),
    ]:
        def run(solver=solver):
            res = lossopt.minimize(logistic, w0, solver, args=(X, y, lam), max_iters=1000,
                                   gtol=gtol)
            return jax.block_until_ready(res)

        t0 = time.perf_counter()
        res = run()
        first = time.perf_counter() - t0
        t = median_time(run, repeats)
        rows.append(dict(name=name, time=t, compile=first - t, iters=int(res.iterations),
                         status=lossopt.Status(int(res.status)).name,
                         grad=float(grad_inf(res.params))))
    for sk_solver in ("lbfgs", "newton-cholesky"):
        model = LogisticRegression(C=C, fit_intercept=False, tol=gtol, max_iter=10_000,
                                   solver=sk_solver)

        def fit(model=model):
            model.fit(X_np, y_np)

        t = median_time(fit, repeats)
        rows.append(dict(name=f"scikit-learn {sk_solver}", time=t, compile=0.0,
                         iters=int(np.max(model.n_iter_)), status="-",
                         grad=float(grad_inf(jnp.asarray(model.coef_.ravel())))))
    return rows


# ---------------------------------------------------------------------------- report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--ls", nargs="*", help="least-squares sizes NxD:ITERS")
    parser.add_argument("--sweep", nargs="*", help="sweep sizes NxD")
    parser.add_argument("--lanes", type=int, default=None, help="learning rates in the sweep")
    parser.add_argument("--sweep-iters", type=int, default=None)
    parser.add_argument("--logistic", default=None, help="logistic size NxD ('none' skips)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--stat", choices=["median", "min"], default="median",
                        help="statistic over repeats (min suits a shared machine)")
    args = parser.parse_args(argv)
    global STAT
    STAT = min if args.stat == "min" else statistics.median

    if args.quick:
        defaults = dict(ls=["100x5:1000", "2000x20:200"], sweep=["2000x20"], lanes=8,
                        sweep_iters=100, logistic="2000x20", repeats=3)
    else:
        defaults = dict(ls=["100x5:1000", "10000x50:200", "200000x100:50"],
                        sweep=["10000x50", "50000x100"], lanes=32, sweep_iters=100,
                        logistic="50000x200", repeats=5)
    ls_sizes = [parse_size(s) for s in (args.ls if args.ls is not None else defaults["ls"])]
    sweep_sizes = [parse_size(s) for s in (args.sweep if args.sweep is not None
                                           else defaults["sweep"])]
    lanes = args.lanes or defaults["lanes"]
    sweep_iters = args.sweep_iters or defaults["sweep_iters"]
    logistic_size = args.logistic or defaults["logistic"]
    repeats = args.repeats or defaults["repeats"]

    print(f"date: {datetime.datetime.now().isoformat(timespec='minutes')}")
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; JAX {jax.__version__} on {jax.devices()[0].platform}, "
          f"optax {optax.__version__}")
    print(f"load average at start: {os.getloadavg()}; statistic: {args.stat}")

    print("\n## 1. Least squares, gradient descent (float32, ms per full run)\n")
    print("| n x d, iters | floor jit(fori_loop) | lossopt | lossopt / floor | lossopt "
          "trace off | trace cost | optax Python loop | speed-up vs optax | numpy seed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (n, d, iters), t in bench_least_squares(ls_sizes, repeats):
        print(f"| {n}x{d}, {iters} | {t['floor'] * 1e3:.2f} | {t['lossopt'] * 1e3:.2f} | "
              f"{t['lossopt'] / t['floor']:.2f} | {t['lossopt_notrace'] * 1e3:.2f} | "
              f"{100 * (t['lossopt'] / t['lossopt_notrace'] - 1):+.1f}% | "
              f"{t['optax_python'] * 1e3:.1f} | {t['optax_python'] / t['lossopt']:.1f}x | "
              f"{t['numpy_seed'] * 1e3:.1f} |")

    print(f"\n## 2. Learning-rate sweep, {lanes} lanes x {sweep_iters} iterations "
          "(float32, ms)\n")
    print("| n x d | vmapped sweep | sequential minimize | speed-up |")
    print("|---|---|---|---|")
    for (n, d), t_v, t_s in bench_sweep(sweep_sizes, lanes, sweep_iters, repeats):
        print(f"| {n}x{d} | {t_v * 1e3:.1f} | {t_s * 1e3:.1f} | {t_s / t_v:.1f}x |")

    if logistic_size.lower() != "none":
        n, d = parse_size(logistic_size)
        print(f"\n## 3. L2 logistic regression {n}x{d} (float64), to |grad|_inf <= 1e-8 "
              "(s)\n")
        print("| solver | time (s) | compile (s) | iterations | status | |grad|_inf reached |")
        print("|---|---|---|---|---|---|")
        for row in bench_logistic(n, d, max(1, repeats // 2)):
            print(f"| {row['name']} | {row['time']:.3f} | {row['compile']:.2f} | "
                  f"{row['iters']} | {row['status']} | {row['grad']:.1e} |")
    print(f"\nload average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
