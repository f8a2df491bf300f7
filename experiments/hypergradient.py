"""Tune L2 strengths of a logistic regression by hypergradient descent, against a grid search.

The inner problem: ``w*(lam) = argmin_w mean(logistic loss on train) + 0.5 sum_j lam_j w_j^2``
(an unpenalised intercept), solved by ``lossopt.minimize`` with Newton to ``gtol``. The outer
problem: minimise the validation log-loss ``V(lam) = val_loss(w*(lam))`` over ``lam``.

- **Grid search** (one strength for every feature): ``budget`` log-spaced values of ``lam``
  in ``[1e-4, 1e2]``, one inner solve each; keep the best validation loss. Run one solve per
  call, and as one ``jax.vmap``-ed call of all of them.
- **Hypergradient descent, scalar** and **per-feature** (``lam_j`` for each feature): Adam on
  ``log lam`` with ``jax.value_and_grad(V)``, whose gradient is lossopt's implicit derivative
  of the solve (``differentiate="implicit"``, the default): one inner solve and one Hessian
  solve per step, ``budget`` steps -- the same number of inner solves as the grid.

The data: ``n_features`` standardised Gaussian features of which only the first
``informative`` carry signal, so per-feature strengths (shrink the noise features, keep the
signal ones) can beat any single strength. A held-out test set checks that the tuned
strengths generalise (the validation set is what both methods optimise).

Timing: every method is one compiled function called ``budget`` times (the grid's solve, the
hypergradient's value-and-grad); "first call" is the first run's wall time (compilation
included), "warm" the wall time of a whole run once compiled. Repeats are interleaved
(grid, scalar, per-feature, grid, ...); min and median are reported.

Run: ``python experiments/hypergradient.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import lossopt
from lossopt.solvers import Newton


def make_data(n_train, n_val, n_test, n_features, informative, seed):
    rng = np.random.default_rng(seed)
    w_true = np.zeros(n_features)
    w_true[:informative] = rng.normal(scale=2.0, size=informative)

    def draw(n):
        X = rng.normal(size=(n, n_features))
        p = 1.0 / (1.0 + np.exp(-(X @ w_true + 0.25)))
        return X, (rng.uniform(size=n) < p).astype(np.float64)

    return draw(n_train), draw(n_val), draw(n_test)


def train_objective(params, X, y, lam):
    z = X @ params["w"] + params["b"]
    return jnp.mean(jax.nn.softplus(z) - y * z) + 0.5 * jnp.sum(lam * params["w"] ** 2)


def log_loss(params, X, y):
    z = X @ params["w"] + params["b"]
    return jnp.mean(jax.nn.softplus(z) - y * z)


def build(data, n_features, gtol):
    (X_tr, y_tr), (X_va, y_va), (X_te, y_te) = data
    p0 = {"w": jnp.zeros(n_features), "b": jnp.zeros(())}

    def solve(lam):
        return lossopt.minimize(train_objective, p0, Newton(), args=(X_tr, y_tr, lam),
                                gtol=gtol)

    def val_of_log_lam(log_lam):
        lam = jnp.broadcast_to(jnp.exp(log_lam), (n_features,))
        res = solve(lam)
        return log_loss(res.params, X_va, y_va), res

    @jax.jit
    def evaluate(log_lam):  # one inner solve: validation and test loss, status
        val, res = val_of_log_lam(log_lam)
        return val, log_loss(res.params, X_te, y_te), res.status

    value_and_grad = jax.jit(jax.value_and_grad(val_of_log_lam, has_aux=True))
    return evaluate, jax.jit(jax.vmap(evaluate)), value_and_grad


def grid_search(evaluate, budget, lo, hi):
    best = (np.inf, None, None)
    failures = 0
    for log_lam in np.linspace(np.log(lo), np.log(hi), budget):
        val, test, status = evaluate(jnp.asarray(log_lam))
        failures += int(status) != 0
        if float(val) < best[0]:
            best = (float(val), float(test), float(np.exp(log_lam)))
    return best, failures


def grid_search_vmapped(evaluate_batch, budget, lo, hi):
    """The same grid in one vmapped call (every solve in one compiled loop, lanes frozen as
    they converge): the fastest way to run a grid of this size."""
    log_lams = np.linspace(np.log(lo), np.log(hi), budget)
    vals, tests, statuses = evaluate_batch(jnp.asarray(log_lams))
    best = int(np.argmin(np.asarray(vals)))
    failures = int(np.sum(np.asarray(statuses) != 0))
    return (float(vals[best]), float(tests[best]), float(np.exp(log_lams[best]))), failures


def hypergradient_descent(value_and_grad, evaluate, log_lam0, budget, lr):
    """Adam on log lam; each step one solve + one implicit gradient. Returns the best iterate
    seen (validation loss), its test loss and its strengths."""
    log_lam = jnp.asarray(log_lam0)
    m = jnp.zeros_like(log_lam)
    v = jnp.zeros_like(log_lam)
    b1, b2, eps = 0.9, 0.999, 1e-8
    best = (np.inf, None, None)
    failures = 0
    for k in range(1, budget + 1):
        (val, res), g = value_and_grad(log_lam)
        failures += int(res.status) != 0
        if float(val) < best[0]:
            best = (float(val), log_lam, None)
        if not bool(jnp.all(jnp.isfinite(g))):
            break  # a failed solve: its NaN gradient stops the descent (never a silent step)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        log_lam = log_lam - lr * (m / (1 - b1**k)) / (jnp.sqrt(v / (1 - b2**k)) + eps)
    val, test, _ = evaluate(best[1])  # the test loss of the best iterate (not a solve counted
    return (float(val), float(test), np.exp(np.asarray(best[1]))), failures  # in the budget)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--n-val", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--informative", type=int, default=5)
    parser.add_argument("--budget", type=int, default=30, help="inner solves per method")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.3, help="Adam step on log lam")
    parser.add_argument("--gtol", type=float, default=1e-7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.features, args.informative, args.budget, args.repeats = 8, 3, 6, 1
    jax.config.update("jax_enable_x64", True)

    data = make_data(args.n_train, args.n_val, args.n_test, args.features, args.informative,
                     args.seed)
    evaluate, evaluate_batch, value_and_grad = build(data, args.features, args.gtol)
    lo, hi = 1e-4, 1e2
    start = float(np.log(np.sqrt(lo * hi)))  # the grid's geometric middle
    methods = {
        "grid search (scalar lam)": lambda: grid_search(evaluate, args.budget, lo, hi),
        "grid search, one vmapped call": lambda: grid_search_vmapped(
            evaluate_batch, args.budget, lo, hi),
        "hypergradient (scalar lam)": lambda: hypergradient_descent(
            value_and_grad, evaluate, jnp.asarray(start), args.budget, args.lr),
        "hypergradient (per-feature lam)": lambda: hypergradient_descent(
            value_and_grad, evaluate, jnp.full(args.features, start), args.budget, args.lr),
    }
    times = {name: [] for name in methods}
    outcome = {}
    for _ in range(args.repeats + 1):  # the first round includes compilation
        for name, run in methods.items():
            t0 = time.perf_counter()
            outcome[name] = run()
            times[name].append(time.perf_counter() - t0)

    print(f"logistic regression, {args.n_train} train / {args.n_val} validation / "
          f"{args.n_test} test rows, {args.features} features ({args.informative} informative); "
          f"{args.budget} inner solves per method (Newton, gtol {args.gtol:g}), float64, "
          f"{jax.default_backend()}")
    print(f"{'method':34s} {'val loss':>9s} {'test loss':>9s} {'first call s':>12s} "
          f"{'warm min s':>10s} {'warm med s':>10s} {'failed':>6s}  lam")
    grid_warm = min(times["grid search (scalar lam)"][1:] or [np.nan])
    for name in methods:
        (val, test, lam), failures = outcome[name]
        warm = times[name][1:] or [np.nan]
        lam = np.atleast_1d(lam)
        lam_text = (f"{lam[0]:.3g}" if lam.size == 1 else
                    f"informative median {np.median(lam[:args.informative]):.3g}, "
                    f"noise median {np.median(lam[args.informative:]):.3g}")
        print(f"{name:34s} {val:9.5f} {test:9.5f} {times[name][0]:12.2f} {min(warm):10.3f} "
              f"{statistics.median(warm):10.3f} {failures:6d}  {lam_text}")
        outcome[name] = (val, test, min(warm) / grid_warm)
    print("warm time / grid search's: " + ", ".join(
        f"{name}: {ratio:.2f}x" for name, (_, _, ratio) in outcome.items()))


if __name__ == "__main__":
    main()
