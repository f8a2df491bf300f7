"""Benchmark the cost of running minimize in host-driven chunks (progress bars, checkpoints).

The chunked loop runs the same compiled body as the one-call loop, and the host reads four
scalars between chunks. This script measures, in one run on the current machine, the wall time
of the one-call solve against the chunked solve (adaptive chunks, as ``progress=True`` uses,
with a no-op callback so no terminal drawing is timed; and fixed chunk sizes), and checks that
every chunked result is bit-identical to the one-call result. Every timing excludes
compilation (one warm-up call of each variant first) and is the median of ``--repeats`` runs,
interleaved so that machine noise hits every variant alike.

Problems:

1. ``logistic``: full-batch gradient descent on L2 logistic regression (float32), a fixed
   number of iterations (gtol=0).
2. ``mlp``: minibatch Adam on a ReLU MLP with dropout (a key per iteration), regression.

Usage::

    python experiments/benchmarks/bench_chunking.py            # 20000 iterations each
    python experiments/benchmarks/bench_chunking.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lossopt
from lossopt.models import MLP
from lossopt.solvers import GradientDescent, Optax


def logistic(w, X, y):
    return lossopt.losses.sigmoid_binary_cross_entropy(X @ w, y) + 1e-3 * jnp.sum(w * w)


MODEL = MLP(hidden=(64, 64), dropout=0.1)


def mlp_loss(params, X, y, *, key):
    return lossopt.losses.mse(MODEL.apply(params, X, key=key, train=True), y)


def problems(n: int, d: int, iters: int):
    X = jax.random.normal(jax.random.key(0), (n, d), jnp.float32)
    w = jax.random.normal(jax.random.key(1), (d,), jnp.float32)
    y_bin = (X @ w > 0).astype(jnp.float32)
    y_reg = jnp.sin(X[:, 0]) + X[:, 1] * X[:, 2]
    return {
        "logistic": (logistic, jnp.zeros(d, jnp.float32), GradientDescent(0.5),
                     dict(args=(X, y_bin), max_iters=iters, gtol=0.0)),
        "mlp": (mlp_loss, MODEL.init(jax.random.key(2), d, jnp.float32),
                Optax(optax.adam(1e-3)),
                dict(args=(X, y_reg), max_iters=iters, gtol=0.0, batch_size=64,
                     key=jax.random.key(3))),
    }


def make_variants(fun, p0, solver, options, chunks):
    """The one-call solve and three chunked ones; the chunked ones count their chunks."""

    def run(label=None, **long_run):
        def call():
            if label is not None:
                long_run["progress"] = lambda p: chunks.__setitem__(label, p.chunks)
            return lossopt.minimize(fun, p0, solver, **long_run, **options)
        return call

    return {
        "one call": run(),
        "adaptive (progress)": run("adaptive (progress)"),
        "chunk_size=1000": run("chunk_size=1000", chunk_size=1000),
        "chunk_size=100": run("chunk_size=100", chunk_size=100),
    }


def timed(fn):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    return time.perf_counter() - t0, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=20000)
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--d", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    a = parser.parse_args(argv)
    if a.quick:
        a.iters, a.n, a.d, a.repeats = 500, 256, 8, 2
    print(f"# chunking overhead: {platform.node()} {jax.default_backend()} "
          f"({jax.devices()[0].device_kind}), jax {jax.__version__}, {a.iters} iterations, "
          f"median of {a.repeats}")
    print(f"{'problem':10s} {'variant':22s} {'time (s)':>9s} {'ratio':>7s} {'chunks':>7s}"
          f" {'identical':>9s}")
    worst = 0.0
    for name, (fun, p0, solver, options) in problems(a.n, a.d, a.iters).items():
        chunks: dict[str, int] = {}
        variants = make_variants(fun, p0, solver, options, chunks)
        results = {label: timed(fn)[1] for label, fn in variants.items()}  # warm-up: compile
        times: dict[str, list[float]] = {label: [] for label in variants}
        for _ in range(a.repeats):
            for label, fn in variants.items():
                times[label].append(timed(fn)[0])
        base = statistics.median(times["one call"])
        reference = jax.tree.leaves(results["one call"])
        for label in variants:
            t = statistics.median(times[label])
            same = all(np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
                       for x, y in zip(jax.tree.leaves(results[label]), reference, strict=True))
            ratio = t / base
            if label == "adaptive (progress)":
                worst = max(worst, ratio)
            print(f"{name:10s} {label:22s} {t:9.4f} {ratio:7.3f} {chunks.get(label, 1):7d}"
                  f" {same!s:>9s}")
            if not same:
                print(f"MISMATCH: {name} {label} differs from the one-call result")
                return 1
    print(f"adaptive chunking (progress=True) costs at most {100 * (worst - 1):+.1f}% here")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
