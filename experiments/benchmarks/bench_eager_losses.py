"""Losses called eagerly, as a user does in a notebook: first call (compile) and warm call.

Each measurement is a FRESH Python process (float64, no persistent compilation cache) that
calls eight losses one after the other on concrete numpy data (256 examples, 10 classes) and
times each loss's first call (every compile it needs, plus the run) and the minimum of 20 warm
calls, each until ``block_until_ready``. With ``--grad`` each call is ``jax.grad`` of the loss
with respect to its first argument (predictions, logits, probabilities), itself called eagerly
(no ``jit``), as a user checking a hand-derived gradient does. Three sides, interleaved round
by round:

- ``lossopt``: the library as it is (a loss on concrete arrays, or under eager ``grad``/``vmap``,
  runs as one compiled program, ``lossopt/losses/_eager.py``);
- ``lossopt op-by-op``: the same code with ``LOSSOPT_EAGER_JIT=0`` (JAX's eager path: each
  operation compiled and dispatched on its own, as before the seventh round);
- ``optax``: optax's corresponding losses where it has one (``squared_error``, ``huber_loss``,
  ``softmax_cross_entropy_with_integer_labels``, ``sigmoid_binary_cross_entropy``,
  ``kl_divergence``, ``sigmoid_focal_loss``; plain functions, eager op by op), the mean taken
  by the caller.

Prints, per side, the sum of the first calls (of all eight losses, and of the six that optax
has) with its ratio to ``lossopt op-by-op``, then each loss's first and warm time (min and
median over the rounds). The op-by-op side's ``mae`` first call is ~0 ms: every operation it
needs was compiled for the losses before it.

Usage::

    python experiments/benchmarks/bench_eager_losses.py [--rounds 3] [--grad]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np
import jax, jax.numpy as jnp
side, mode = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
n, k = 256, 10
pred, y = rng.standard_normal(n), rng.standard_normal(n)
logits, ids = rng.standard_normal((n, k)), rng.integers(0, k, n)
probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
target = np.eye(k)[ids] * 0.9 + 0.01
lab01 = (y > 0).astype(float)
# name: (the loss as a function of its first argument -- the one differentiated --, that argument)
if side == "optax":
    import optax
    calls = {
        "mse": (lambda p: jnp.mean(optax.squared_error(p, y)), pred),
        "huber": (lambda p: jnp.mean(optax.huber_loss(p, y, delta=1.0)), pred),
        "softmax_cross_entropy": (lambda z: jnp.mean(
            optax.softmax_cross_entropy_with_integer_labels(z, ids)), logits),
        "sigmoid_bce": (lambda p: jnp.mean(optax.sigmoid_binary_cross_entropy(p, lab01)), pred),
        "kl_divergence": (lambda q: jnp.mean(optax.kl_divergence(jnp.log(q), target)), probs),
        "focal": (lambda p: jnp.mean(optax.sigmoid_focal_loss(p, lab01)), pred),
    }
else:
    import lossopt
    L = lossopt.losses
    calls = {
        "mse": (lambda p: L.mse(p, y), pred),
        "huber": (lambda p: L.huber(p, y, delta=1.0), pred),
        "mae": (lambda p: L.mae(p, y), pred),
        "softmax_cross_entropy": (lambda z: L.softmax_cross_entropy(z, ids), logits),
        "sigmoid_bce": (lambda p: L.sigmoid_binary_cross_entropy(p, lab01), pred),
        "multiclass_hinge": (lambda z: L.multiclass_hinge(z, ids), logits),
        "kl_divergence": (lambda q: L.kl_divergence(target, q), probs),
        "focal": (lambda p: L.sigmoid_focal(p, lab01), pred),
    }
out = {}
for name, (fn, x) in calls.items():
    call = (lambda: fn(x)) if mode == "value" else (lambda: jax.grad(fn)(x))
    t = time.perf_counter(); jax.block_until_ready(call()); first = time.perf_counter() - t
    warm = []
    for _ in range(20):
        t = time.perf_counter(); jax.block_until_ready(call()); warm.append(time.perf_counter() - t)
    out[name] = (first, min(warm))
print(json.dumps(out))
"""

SIDES = ("lossopt", "lossopt op-by-op", "optax")


def run_child(side: str, mode: str) -> dict[str, tuple[float, float]]:
    env = {**os.environ, "JAX_ENABLE_X64": "1", "LOSSOPT_CACHE_DIR": "",
           "LOSSOPT_EAGER_JIT": "0" if side == "lossopt op-by-op" else "1"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    proc = subprocess.run([sys.executable, "-c", CHILD, side.split()[0], mode], env=env,
                          capture_output=True, text=True, timeout=600, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mm(values: list[float], scale: float, unit: str, digits: int = 0) -> str:
    low, mid = min(values) * scale, statistics.median(values) * scale
    return f"{low:.{digits}f} / {mid:.{digits}f} {unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--grad", action="store_true",
                        help="time jax.grad of each loss (eager, no jit) instead of its value")
    args = parser.parse_args()
    mode = "grad" if args.grad else "value"
    results: dict[str, list[dict]] = {side: [] for side in SIDES}
    for r in range(args.rounds):
        for side in SIDES:
            results[side].append(run_child(side, mode))
            print(f"  round {r + 1}/{args.rounds}: {side}", file=sys.stderr)
    names = list(results["lossopt"][0])
    common = list(results["optax"][0])  # the six losses optax has

    def firsts(side: str, which: list[str]) -> list[float]:
        return [sum(run[n][0] for n in which) for run in results[side]]

    what = "Gradients of losses (jax.grad, no jit)" if args.grad else "Losses called eagerly"
    print(f"\n## {what} in a fresh process, {args.rounds} rounds (min / median)\n")
    print(f"{'side':18s} {'first calls, 8 losses':>22s} {'the 6 optax has':>18s} "
          f"{'x op-by-op (6, min)':>20s}")
    base = min(firsts("lossopt op-by-op", common))
    for side in SIDES:
        eight = "-" if side == "optax" else _mm(firsts(side, names), 1, "s", 2)
        six = firsts(side, common)
        print(f"{side:18s} {eight:>22s} {_mm(six, 1, 's', 2):>18s} {min(six) / base:>20.2f}")
    print(f"\n{'loss':22s}" + "".join(f"{side + ' first':>26s}{'warm':>20s}" for side in SIDES))
    for name in names:
        row = f"{name:22s}"
        for side in SIDES:
            runs = [run[name] for run in results[side] if name in run]
            if not runs:
                row += f"{'-':>26s}{'-':>20s}"
                continue
            row += (f"{_mm([f for f, _ in runs], 1e3, 'ms'):>26s}"
                    f"{_mm([w for _, w in runs], 1e6, 'us'):>20s}")
        print(row)


if __name__ == "__main__":
    main()
