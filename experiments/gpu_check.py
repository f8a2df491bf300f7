"""Time lossopt training runs on the accelerator and check them against the CPU.

Runs three workloads, each one compiled ``lossopt.minimize`` loop:

- **MLP regression, minibatch Adam**: a ReLU :class:`lossopt.models.MLP` fitted with
  ``Optax(optax.adam(1e-3))`` and ``batch_size=`` minibatches (reshuffled every epoch inside the
  loop) for ``--iters`` iterations, the full-data MSE of the result evaluated at the end;
- **logistic regression, Newton**: full-batch, L2-regularised (strongly convex), Newton steps;
- **logistic regression, gradient descent**: the same problem, ``GradientDescent``.

on three targets: the default backend (``jax.default_backend()``: the GPU or TPU when present),
the CPU (``jax.devices("cpu")[0]``) and the CPU again with **reordered sums**: the same problem
with its features and hidden units permuted (and, for the full-batch logistic problems, its
examples), which leaves the mathematics unchanged but makes every matrix product and reduction
add its terms in a different order. On a CPU-only machine the first two targets are the same
device and agree exactly; the reordered run still exercises the tolerances below with real
float32 rounding differences, which is what an accelerator's different reduction order causes.

For each target it prints the compile time (``jax.jit(...).lower(...).compile()``), the run time
of the compiled program, iterations per second and the final loss, then compares each target
with the CPU run. Exit status 1 if any comparison fails, 0 otherwise.

**Tolerances** (relative; float32 unit roundoff is 6e-8, float64's 1e-16). Matrix products use
``jax.default_matmul_precision("highest")``: by default recent NVIDIA GPUs compute float32
matmuls in TensorFloat-32 (10-bit mantissa) and TPUs in bfloat16, which no float32 tolerance
would fit.

- Logistic regression (convex, a unique minimiser, gradient descent a contraction): the
  parameters must agree to ``1e-4 * max(1, max|w|)`` in float32 (1e-10 in float64). Measured on
  the CPU at the default sizes: the float32 solutions differ from the float64 ones by 1.2e-7
  (Newton) and 5e-7 (GD), and reordering the sums moves them by 1.5e-7, so two float32 runs
  differ by about 1e-6 at most: the tolerance leaves 100x headroom, while a real fault (a
  wrong gradient, different data) moves the solution on the scale of the weights themselves.
- MLP (nonconvex): minibatch Adam amplifies rounding differences, so two float32 runs that
  differ only in summation order drift apart. Measured on the CPU with reordered sums: the
  minibatch losses agree to 2e-7 over the first 100 iterations, 2e-5 by iteration 300, 2e-2
  by 1000 and 1e-1 by 3000, where the parameters differ by 0.06-0.26 and the final full-data
  losses by 0.3%-2.2% (8 different reorderings). In float64 everything agrees to 1e-15. Hence,
  in float32, no parameter check (the difference is reported) but two others: the minibatch
  losses of the first 20 iterations (which pin down the data, the minibatch order and the
  arithmetic) agree to 1e-4, and the final full-data loss to 10%, i.e. the runs reach the
  same quality (a broken run is off by orders of magnitude). In float64: 1e-10 for the early
  losses, 1e-6 for the final loss and the parameters. Much longer runs (``--iters`` well
  above 3000) can need a looser final tolerance (``--tol-scale``).

Run: ``python experiments/gpu_check.py`` (``--quick``: small sizes, a few seconds on a CPU;
``--dtype float64``; ``--iters N`` for the MLP run).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lossopt
from lossopt.models import MLP, Linear
from lossopt.solvers import GradientDescent, Newton, Optax

# Tolerances and their reasons: see the module docstring.
TOLERANCES = {
    # nonconvex_params None: reported, not checked (the float32 MLP trajectories diverge).
    "float32": {"convex_params": 1e-4, "early_loss": 1e-4, "final_loss": 0.1,
                "nonconvex_params": None},
    "float64": {"convex_params": 1e-10, "early_loss": 1e-10, "final_loss": 1e-6,
                "nonconvex_params": 1e-6},
}
WORKLOADS = ("mlp", "newton", "gd")  # the order of make_workloads' list
EARLY_ITERS = 20  # the window of the MLP's tight early-trajectory check
L2 = 1e-2  # ridge penalty of the logistic problem: strongly convex, a unique minimiser


@dataclasses.dataclass(frozen=True)
class Sizes:
    n_mlp: int
    d_mlp: int
    hidden: int
    batch_size: int
    mlp_iters: int
    n_logistic: int
    d_logistic: int
    newton_iters: int
    gd_iters: int


FULL = Sizes(8192, 16, 128, 256, 3000, 8192, 64, 10, 300)
QUICK = Sizes(1024, 8, 32, 128, 200, 1024, 8, 8, 100)


@dataclasses.dataclass
class Workload:
    """A problem and how to run it; ``run(*inputs) -> (Result, final full-data loss)`` is
    jit-compiled per device."""

    name: str
    run: Callable[..., tuple[lossopt.Result, Any]]
    inputs: tuple[Any, ...]
    reordered: tuple[Any, ...]  # the same problem with permuted features/units/examples
    unpermute: Callable[[Any], Any]  # maps reordered params back to the original layout
    convex: bool


def _mse_objective(net: MLP):
    def fun(params, X, y):
        return lossopt.losses.mse(net.apply(params, X), y)

    return fun


def _logistic_objective(params, X, y):
    logits = Linear().apply(params, X)
    return (lossopt.losses.sigmoid_binary_cross_entropy(logits, y)
            + 0.5 * L2 * jnp.sum(params["w"] ** 2))


def make_workloads(sizes: Sizes, dtype: Any, seed: int = 0) -> list[Workload]:
    # Data and permutations come from numpy (each eager JAX op would compile on its own); the
    # MLP's initial weights from lossopt.models.MLP.init, in one compiled call.
    rng = np.random.default_rng(seed)
    # MLP regression: y = sin(2 x0) + x1 x2 + noise.
    n, d, h = sizes.n_mlp, sizes.d_mlp, sizes.hidden
    X = rng.standard_normal((n, d))
    y = np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2] + 0.1 * rng.standard_normal(n)
    X, y = X.astype(dtype), y.astype(dtype)
    net = MLP(hidden=(h, h), activation="relu")
    p0 = jax.device_get(jax.jit(net.init, static_argnums=(1, 2))(jax.random.key(seed), d, dtype))
    mse = _mse_objective(net)
    adam = Optax(optax.adam(1e-3))

    def run_mlp(params, X, y):
        # The trace records every iteration's minibatch loss (cheap); the full-data loss is
        # computed once, at the end (as a per-iteration metric it would dominate the run time).
        res = lossopt.minimize(mse, params, adam, args=(X, y), batch_size=sizes.batch_size,
                               max_iters=sizes.mlp_iters, gtol=0.0)
        return res, mse(res.params, X, y)

    # Reordered sums: permute input features and both hidden layers' units (a symmetry of the
    # network; Adam is elementwise, so the run is mathematically the same).
    pf, p1, p2 = rng.permutation(d), rng.permutation(h), rng.permutation(h)
    L = p0["layers"]
    p0_perm = {"layers": [
        {"w": L[0]["w"][pf][:, p1], "b": L[0]["b"][p1]},
        {"w": L[1]["w"][p1][:, p2], "b": L[1]["b"][p2]},
        {"w": L[2]["w"][p2], "b": L[2]["b"]},
    ]}
    i0, i1, i2 = np.argsort(pf), np.argsort(p1), np.argsort(p2)

    def unpermute_mlp(params):
        L = params["layers"]
        return {"layers": [
            {"w": L[0]["w"][i0][:, i1], "b": L[0]["b"][i1]},
            {"w": L[1]["w"][i1][:, i2], "b": L[1]["b"][i2]},
            {"w": L[2]["w"][i2], "b": L[2]["b"]},
        ]}

    # Logistic regression with labels drawn from a logistic model.
    n, d = sizes.n_logistic, sizes.d_logistic
    Xl = rng.standard_normal((n, d))
    w_true = 3.0 * rng.standard_normal(d) / np.sqrt(d)
    yl = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-Xl @ w_true))).astype(dtype)
    Xl = Xl.astype(dtype)
    w0 = {"w": np.zeros(d, dtype), "b": np.zeros((), dtype)}  # as Linear().init
    rows, cols = rng.permutation(n), rng.permutation(d)
    logistic_perm = (w0, Xl[rows][:, cols], yl[rows])
    inv_cols = np.argsort(cols)

    def unpermute_linear(params):
        return {"w": params["w"][inv_cols], "b": params["b"]}

    newton, gd = Newton(line_search=None), GradientDescent(learning_rate=1.0)

    def run_newton(params, X, y):
        res = lossopt.minimize(_logistic_objective, params, newton, args=(X, y),
                               max_iters=sizes.newton_iters, gtol=0.0)
        return res, res.value  # full batch: the final value is the full-data loss

    def run_gd(params, X, y):
        res = lossopt.minimize(_logistic_objective, params, gd, args=(X, y),
                               max_iters=sizes.gd_iters, gtol=0.0)
        return res, res.value

    return [
        Workload(f"MLP {d_str(sizes)}, minibatch Adam", run_mlp, (p0, X, y),
                 (p0_perm, X[:, pf], y), unpermute_mlp, convex=False),
        Workload(f"logistic {n}x{d}, Newton", run_newton, (w0, Xl, yl), logistic_perm,
                 unpermute_linear, convex=True),
        Workload(f"logistic {n}x{d}, GD", run_gd, (w0, Xl, yl), logistic_perm,
                 unpermute_linear, convex=True),
    ]


def d_str(sizes: Sizes) -> str:
    return f"{sizes.n_mlp}x{sizes.d_mlp}-{sizes.hidden}-{sizes.hidden}-1"


@dataclasses.dataclass
class Timed:
    result: Any  # the Result of the first execution, fetched to the host (numpy leaves)
    full_loss: float  # the final parameters' loss on the full data
    compile_s: float | None  # None: the executable compiled for an earlier target was reused
    run_s: float  # the fastest of the timed executions


def run_timed(workload: Workload, device: Any, inputs: tuple[Any, ...],
              cache: dict[Any, Any], repeats: int) -> Timed:
    """Compile ``workload.run`` for ``device`` (once per device); time ``repeats`` executions.

    The first execution also pays one-time costs (buffer allocation, a GPU's module load);
    with ``repeats > 1`` the reported run time is the fastest execution.
    """
    with jax.default_device(device), jax.default_matmul_precision("highest"):
        inputs = jax.device_put(inputs, device)
        compile_s = None
        if device not in cache:
            start = time.perf_counter()
            cache[device] = jax.jit(workload.run).lower(*inputs).compile()
            compile_s = time.perf_counter() - start
        result, times = None, []
        for _ in range(repeats):
            start = time.perf_counter()
            out = jax.block_until_ready(cache[device](*inputs))
            times.append(time.perf_counter() - start)
            result = out if result is None else result
    result, full_loss = jax.device_get(result)
    return Timed(result, float(full_loss), compile_s, min(times))


def _max_abs(tree: Any) -> float:
    return max(float(np.max(np.abs(np.asarray(a)))) for a in jax.tree.leaves(tree))


def _max_abs_diff(a: Any, b: Any) -> float:
    return max(float(np.max(np.abs(np.asarray(u, np.float64) - np.asarray(v, np.float64))))
               for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def compare(workload: Workload, ref_timed: Timed, other_timed: Timed, tol: dict[str, float],
            unpermute: bool) -> list[tuple[str, float, float | None]]:
    """``[(what, value, tolerance or None for report-only)]`` comparing ``other`` with ``ref``."""
    ref, other = ref_timed.result, other_timed.result
    params = workload.unpermute(other.params) if unpermute else other.params
    checks: list[tuple[str, float, float | None]] = [
        ("|iterations diff|", float(abs(int(ref.iterations) - int(other.iterations))), 0.0),
        ("status differs (0/1)", float(int(ref.status) != int(other.status)), 0.0),
    ]
    scale = max(1.0, _max_abs(ref.params))
    if workload.convex:
        checks.append(("max |params diff| / max(1, max|params|)",
                       _max_abs_diff(ref.params, params) / scale, tol["convex_params"]))
        return checks
    ta, tb = ref.trace.to_numpy(), other.trace.to_numpy()
    k = min(EARLY_ITERS + 1, len(ta["loss"]))
    early = np.max(np.abs(ta["loss"][:k] - tb["loss"][:k]) / np.abs(ta["loss"][:k]))
    fa, fb = ref_timed.full_loss, other_timed.full_loss
    checks += [
        (f"minibatch loss, first {k - 1} iterations, max rel diff", float(early),
         tol["early_loss"]),
        ("final full-data loss, rel diff", float(abs(fa - fb) / abs(fa)), tol["final_loss"]),
        ("max |params diff| / max(1, max|params|)", _max_abs_diff(ref.params, params) / scale,
         tol["nonconvex_params"]),
    ]
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=None,
                        help="MLP iterations (default 3000, 200 with --quick)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: a few seconds on a CPU (a smoke test)")
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS),
                        help="which workloads to run (default: all)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="timed executions per target; the fastest is reported")
    parser.add_argument("--tol-scale", type=float, default=1.0,
                        help="multiply every tolerance by this factor (0: demand bitwise "
                             "equality)")
    parser.add_argument("--seed", type=int, default=0)
    a = parser.parse_args(argv)
    if a.repeats < 1 or a.tol_scale < 0:
        parser.error("--repeats must be >= 1 and --tol-scale >= 0")
    if a.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    sizes = QUICK if a.quick else FULL
    if a.iters is not None:
        if a.iters < EARLY_ITERS:
            parser.error(f"--iters must be >= {EARLY_ITERS}")
        sizes = dataclasses.replace(sizes, mlp_iters=a.iters)
    tol = {k: None if v is None else a.tol_scale * v for k, v in TOLERANCES[a.dtype].items()}

    accel = jax.devices()[0]
    cpu = jax.devices("cpu")[0]
    print(f"lossopt {lossopt.__version__}, jax {jax.__version__}; default backend "
          f"{jax.default_backend()!r}: {accel.device_kind} ({accel}); reference: {cpu}")
    print(f"dtype {a.dtype}, matmul precision 'highest'"
          + (", quick sizes" if a.quick else "")
          + ("" if accel != cpu else "; no accelerator: both runs are on the CPU"))
    workloads = [w for key, w in zip(WORKLOADS, make_workloads(sizes, jnp.dtype(a.dtype),
                                                                 a.seed), strict=True)
                 if key in a.workloads]

    # (label, device, reordered); every other target is compared with the "cpu" one.
    targets = [(f"default ({accel.platform})", accel, False), ("cpu", cpu, False),
               ("cpu, reordered sums", cpu, True)]
    print(f"{'workload':<34} {'target':<20} {'compile s':>9} {'run s':>8} {'iters':>6} "
          f"{'it/s':>9} {'final loss':>12}")
    failures = 0
    reports = []
    for w in workloads:
        cache: dict[Any, Any] = {}
        timed = {}
        for label, device, reordered in targets:
            t = run_timed(w, device, w.reordered if reordered else w.inputs, cache, a.repeats)
            timed[label] = t
            iters = int(t.result.iterations)
            compile_s = "reused" if t.compile_s is None else f"{t.compile_s:.2f}"
            print(f"{w.name:<34} {label:<20} {compile_s:>9} {t.run_s:>8.3f} {iters:>6} "
                  f"{iters / t.run_s:>9.0f} {t.full_loss:>12.6g}")
        ref = timed["cpu"]
        for label, _, reordered in targets:
            if label == "cpu":
                continue
            for what, value, limit in compare(w, ref, timed[label], tol, reordered):
                ok = limit is None or value <= limit
                failures += not ok
                verdict = "(reported only)" if limit is None else (
                    f"<= {limit:.0e} ok" if ok else f"> {limit:.0e} MISMATCH")
                reports.append(f"  {w.name} | {label} vs cpu | {what}: {value:.3g} {verdict}")
    print("checks (each target against the CPU run):")
    print("\n".join(reports))
    if failures:
        print(f"FAILED: {failures} check(s) outside tolerance")
        return 1
    print("OK: all results agree with the CPU within tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
