"""One hypergradient by implicit differentiation: lossopt against jaxopt and optimistix.

The quantity: ``d V / d lam`` with ``V(lam) = val_loss(w*(lam))`` and
``w*(lam) = argmin_w mean(logistic loss on train) + 0.5 sum_j lam_j w_j^2`` (one L2 strength
per feature), as ``jax.jit(jax.value_and_grad(V))``. Every library differentiates its solve by
the implicit function theorem:

- lossopt: ``minimize(..., Newton())`` (``differentiate="implicit"``, the default: a dense
  Cholesky solve with the Hessian at ``w*``, Newton's own choice), and ``LBFGS()`` with
  ``Implicit(linear_solver="cholesky")`` and with ``"cg"`` (CG with Hessian-vector products;
  what ``"auto"`` picks above 100 parameters);
- jaxopt: ``jaxopt.LBFGS(implicit_diff=True)`` (its default: CG with Hessian-vector products
  through ``custom_root``);
- optimistix: ``optimistix.minimise(..., optimistix.BFGS(...), adjoint=ImplicitAdjoint())``
  (its default adjoint: a linear solve with the Hessian by lineax).

Solves run to a gradient of ~1e-8 in float64 (lossopt ``gtol=1e-8``, max-abs gradient;
jaxopt ``tol=1e-8``, its gradient norm; optimistix ``rtol=atol=1e-9`` on its Cauchy
criterion). (At ``gtol=1e-9`` lossopt's Newton, compiled optimised, ends
``LINE_SEARCH_FAILED`` here -- its Armijo test cannot certify a decrease below the rounding
of the loss -- and its hypergradient is NaN, as documented.) Reported per library: the first call
(trace + compile + run), then ``--repeats`` warm calls interleaved across libraries
(round-robin), min and median; the hypergradient's max deviation from lossopt Newton's (they
must agree: each is the derivative of the same minimiser); the ratio of warm medians to
lossopt Newton's.

Usage::

    python experiments/benchmarks/bench_hypergradient.py             # 2000 x 50, 9 repeats
    python experiments/benchmarks/bench_hypergradient.py --quick     # 300 x 10, 3 repeats
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

import lossopt  # noqa: E402
from lossopt.solvers import LBFGS, Implicit, Newton  # noqa: E402


def make_data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    w_true = np.where(np.arange(d) < max(d // 5, 1), rng.normal(scale=2.0, size=d), 0.0)

    def draw(m):
        X = rng.normal(size=(m, d))
        y = (rng.uniform(size=m) < 1 / (1 + np.exp(-X @ w_true))).astype(np.float64)
        return jnp.asarray(X), jnp.asarray(y)

    return draw(n), draw(n)


def train_loss(w, lam, X, y):
    z = X @ w
    return jnp.mean(jax.nn.softplus(z) - y * z) + 0.5 * jnp.sum(lam * w**2)


def val_loss(w, X, y):
    z = X @ w
    return jnp.mean(jax.nn.softplus(z) - y * z)


def make_hypergradients(train, val, d):
    (X_tr, y_tr), (X_va, y_va) = train, val
    w0 = jnp.zeros(d)

    def lossopt_v(solver, how="implicit"):
        def V(lam):
            res = lossopt.minimize(lambda w, lam, X, y: train_loss(w, lam, X, y), w0, solver,
                                   args=(lam, X_tr, y_tr), gtol=1e-8, max_iters=500,
                                   differentiate=how)
            return val_loss(res.params, X_va, y_va)
        return V

    def jaxopt_v():
        import jaxopt

        solver = jaxopt.LBFGS(fun=train_loss, tol=1e-8, maxiter=500, implicit_diff=True)

        def V(lam):
            return val_loss(solver.run(w0, lam, X_tr, y_tr).params, X_va, y_va)
        return V

    def optimistix_v():
        import optimistix as optx

        solver = optx.BFGS(rtol=1e-9, atol=1e-9)

        def V(lam):
            sol = optx.minimise(lambda w, lam: train_loss(w, lam, X_tr, y_tr), solver, w0,
                                args=lam, max_steps=500, adjoint=optx.ImplicitAdjoint(),
                                throw=False)
            return val_loss(sol.value, X_va, y_va)
        return V

    out = {"lossopt Newton": lossopt_v(Newton()),
           "lossopt LBFGS, chol": lossopt_v(LBFGS(), Implicit(linear_solver="cholesky")),
           "lossopt LBFGS, CG": lossopt_v(LBFGS(), Implicit(linear_solver="cg"))}
    for name, make in (("jaxopt LBFGS", jaxopt_v), ("optimistix BFGS", optimistix_v)):
        try:
            out[name] = make()
        except ImportError as err:  # an optional peer not installed
            print(f"skipping {name}: {err}")
    return {name: jax.jit(jax.value_and_grad(V)) for name, V in out.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--d", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.n, args.d, args.repeats = 300, 10, 3
    train, val = make_data(args.n, args.d)
    lam = jnp.full(args.d, 0.05)
    fns = make_hypergradients(train, val, args.d)
    first, warm, grads = {}, {name: [] for name in fns}, {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        _, grad = jax.block_until_ready(fn(lam))
        first[name] = time.perf_counter() - t0
        grads[name] = np.asarray(grad)
    for _ in range(args.repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn(lam))
            warm[name].append(time.perf_counter() - t0)

    print(f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
          f"{platform.machine()}, jax {jax.__version__} ({jax.default_backend()}), float64")
    print(f"hypergradient d val_loss / d lam of an L2 logistic regression, {args.n} x {args.d} "
          f"(train and validation), {args.d} strengths; {args.repeats} warm repeats")
    ref_name = "lossopt Newton"
    ref_med = statistics.median(warm[ref_name])
    scale = np.max(np.abs(grads[ref_name]))
    print(f"{'library':18s} {'first call s':>12s} {'warm min s':>10s} {'warm med s':>10s} "
          f"{'/ lossopt':>9s} {'max |grad - ref| / max|ref|':>28s}")
    for name in fns:
        med = statistics.median(warm[name])
        dev = np.max(np.abs(grads[name] - grads[ref_name])) / scale
        print(f"{name:18s} {first[name]:12.2f} {min(warm[name]):10.4f} {med:10.4f} "
              f"{med / ref_med:8.2f}x {dev:28.1e}")


if __name__ == "__main__":
    main()
