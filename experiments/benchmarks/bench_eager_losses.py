"""Losses called eagerly, as a user does in a notebook: first call (compile) and warm call.

Each measurement is a FRESH Python process (float64, no persistent compilation cache) that
calls eight losses one after the other on concrete numpy data (256 examples, 10 classes) and
times each loss's first call (every compile it needs, plus the run) and the minimum of 20 warm
calls, each until ``block_until_ready``. Three sides, interleaved round by round:

- ``lossopt``: the library as it is (a loss on concrete arrays runs as one compiled program,
  ``lossopt/losses/_eager.py``);
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

    python experiments/benchmarks/bench_eager_losses.py [--rounds 3]
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
side = sys.argv[1]
rng = np.random.default_rng(0)
n, k = 256, 10
pred, y = rng.standard_normal(n), rng.standard_normal(n)
logits, ids = rng.standard_normal((n, k)), rng.integers(0, k, n)
probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
target = np.eye(k)[ids] * 0.9 + 0.01
lab01 = (y > 0).astype(float)
if side == "optax":
    import optax
    calls = {
        "mse": lambda: jnp.mean(optax.squared_error(pred, y)),
        "huber": lambda: jnp.mean(optax.huber_loss(pred, y, delta=1.0)),
        "softmax_cross_entropy": lambda: jnp.mean(
            optax.softmax_cross_entropy_with_integer_labels(logits, ids)),
        "sigmoid_bce": lambda: jnp.mean(optax.sigmoid_binary_cross_entropy(pred, lab01)),
        "kl_divergence": lambda: jnp.mean(optax.kl_divergence(jnp.log(probs), target)),
        "focal": lambda: jnp.mean(optax.sigmoid_focal_loss(pred, lab01)),
    }
else:
    import lossopt
    L = lossopt.losses
    calls = {
        "mse": lambda: L.mse(pred, y),
        "huber": lambda: L.huber(pred, y, delta=1.0),
        "mae": lambda: L.mae(pred, y),
        "softmax_cross_entropy": lambda: L.softmax_cross_entropy(logits, ids),
        "sigmoid_bce": lambda: L.sigmoid_binary_cross_entropy(pred, lab01),
        "multiclass_hinge": lambda: L.multiclass_hinge(logits, ids),
        "kl_divergence": lambda: L.kl_divergence(target, probs),
        "focal": lambda: L.sigmoid_focal(pred, lab01),
    }
out = {}
for name, call in calls.items():
    t = time.perf_counter(); jax.block_until_ready(call()); first = time.perf_counter() - t
    warm = []
    for _ in range(20):
        t = time.perf_counter(); jax.block_until_ready(call()); warm.append(time.perf_counter() - t)
    out[name] = (first, min(warm))
print(json.dumps(out))
"""

SIDES = ("lossopt", "lossopt op-by-op", "optax")


def run_child(side: str) -> dict[str, tuple[float, float]]:
    env = {**os.environ, "JAX_ENABLE_X64": "1", "LOSSOPT_CACHE_DIR": "",
           "LOSSOPT_EAGER_JIT": "0" if side == "lossopt op-by-op" else "1"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    proc = subprocess.run([sys.executable, "-c", CHILD, side.split()[0]], env=env,
                          capture_output=True, text=True, timeout=600, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mm(values: list[float], scale: float, unit: str, digits: int = 0) -> str:
    low, mid = min(values) * scale, statistics.median(values) * scale
    return f"{low:.{digits}f} / {mid:.{digits}f} {unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {side: [] for side in SIDES}
    for r in range(args.rounds):
        for side in SIDES:
            results[side].append(run_child(side))
            print(f"  round {r + 1}/{args.rounds}: {side}", file=sys.stderr)
    names = list(results["lossopt"][0])
    common = list(results["optax"][0])  # the six losses optax has

    def firsts(side: str, which: list[str]) -> list[float]:
        return [sum(run[n][0] for n in which) for run in results[side]]

    print(f"\n## Losses called eagerly in a fresh process, {args.rounds} rounds (min / median)\n")
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
