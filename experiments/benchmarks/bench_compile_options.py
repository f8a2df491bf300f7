"""What each XLA:CPU compile option of ``compile="fast"`` buys: compile time and warm run time.

``lossopt.minimize(compile="fast")`` compiles with a set of per-call XLA:CPU options
(``lossopt.solvers._compile._FAST_CANDIDATES``). This benchmark lowers the solver loop of one
problem afresh before every compile (so nothing is reused from JAX's in-memory caches; no
persistent cache), compiles it under each option set in turn -- interleaved, ``--repeats``
rounds, so the machine's drift hits every set alike -- and times the compiled program's warm
run (the minimum of 20 calls). It prints min and median of each and the ratios to the first
option set.

Usage::

    python experiments/benchmarks/bench_compile_options.py --repeats 5
    python experiments/benchmarks/bench_compile_options.py --cases newton,lbfgs --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

import lossopt  # noqa: E402
from lossopt import losses  # noqa: E402
from lossopt.solvers import LBFGS, GradientDescent, Newton, Optax  # noqa: E402

LEVEL0 = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
ONE_MODULE = {**LEVEL0, "xla_cpu_parallel_codegen_split_count": 1}
NO_LICM = {"xla_disable_hlo_passes": "while-loop-invariant-code-motion"}
OPTION_SETS = {
    "level 0 + classic emitters": LEVEL0,
    "... + one codegen module": ONE_MODULE,
    "... + no while-loop LICM": {**ONE_MODULE, **NO_LICM},  # compile="fast" now
    "XLA defaults (optimized)": {},
    "defaults + one codegen module": {"xla_cpu_parallel_codegen_split_count": 1},
    "defaults + no while-loop LICM": NO_LICM,
}


def _solvers():
    import optax

    return {"gd": GradientDescent(1.0), "newton": Newton(), "lbfgs": LBFGS(),
            "optax-lbfgs": Optax(optax.lbfgs())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="gd,newton,lbfgs,optax-lbfgs")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    solvers = {k: v for k, v in _solvers().items() if k in args.cases.split(",")}
    X = jax.random.normal(jax.random.key(0), (500, 10))
    y = (X @ jnp.linspace(-1.0, 1.0, 10) + 0.5 * jax.random.normal(jax.random.key(1), (500,))
         > 0).astype(X.dtype)

    def objective(w, X, y):
        return losses.sigmoid_binary_cross_entropy(X @ w, y) + 1e-3 * jnp.sum(w ** 2)

    def lowered(solver):  # a new function object each time: JAX reuses nothing
        fn = jax.jit(lambda X, y: lossopt.minimize(objective, jnp.zeros(10), solver,
                                                   args=(X, y), gtol=1e-6).params)
        return fn.lower(X, y)

    compile_s: dict[tuple[str, str], list[float]] = {}
    warm_s: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeats):
        for case, solver in solvers.items():
            for name, options in OPTION_SETS.items():
                low = lowered(solver)
                t0 = time.perf_counter()
                compiled = low.compile(compiler_options=options)
                compile_s.setdefault((case, name), []).append(time.perf_counter() - t0)
                runs = []
                for _ in range(20):
                    t0 = time.perf_counter()
                    jax.block_until_ready(compiled(X, y))
                    runs.append(time.perf_counter() - t0)
                warm_s.setdefault((case, name), []).append(min(runs))
    print(f"500 x 10 L2 logistic regression, float64, gtol 1e-6; {args.repeats} interleaved "
          "rounds; seconds min / median; ratios of the minima to the first option set\n")
    print(f"{'case':12s} {'options':30s} {'compile':>15s} {'x':>5s} {'warm [ms]':>15s} {'x':>5s}")
    first = next(iter(OPTION_SETS))
    for case in solvers:
        for name in OPTION_SETS:
            c, w = compile_s[case, name], warm_s[case, name]
            c0, w0 = min(compile_s[case, first]), min(warm_s[case, first])
            print(f"{case:12s} {name:30s} {min(c):6.3f} / {statistics.median(c):6.3f} "
                  f"{min(c) / c0:5.2f} {1e3 * min(w):6.2f} / {1e3 * statistics.median(w):6.2f} "
                  f"{min(w) / w0:5.2f}")


if __name__ == "__main__":
    main()
