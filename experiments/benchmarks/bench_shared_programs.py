"""What sharing one compiled program between a config's losses buys `lossopt run`.

``lossopt run`` compiles the groups of one solver setting on one dataset -- the config's losses --
as one program that switches on a traced loss index (``lossopt/experiment/_runner.py``,
``_programs``). This benchmark traces and compiles every program of a config both ways, in one
process, interleaved over ``--repeats`` rounds: each group on its own ("separate": one program
per group, as before) and the groups together ("shared"). Every round traces afresh (new
closures) and compiles the new lowering; no persistent cache. It prints, per program and in
total, the min and median of trace and compile seconds and the ratio shared / separate of the
medians.

Usage::

    python experiments/benchmarks/bench_shared_programs.py --repeats 3
    python experiments/benchmarks/bench_shared_programs.py --configs quickstart,classification
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import lossopt.experiment._runner as runner  # noqa: E402
from lossopt.experiment import load_config  # noqa: E402
from lossopt.solvers._compile import compile_lowered  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _trace_and_compile(cfg, groups, problems, datasets, mesh) -> tuple[float, float]:
    t0 = time.perf_counter()
    traced = runner._trace_program(cfg, groups, problems, datasets, mesh)
    t1 = time.perf_counter()
    compile_lowered(traced.lowered, cfg.run.compile, cfg.run.max_iters)
    return t1 - t0, time.perf_counter() - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="quickstart,robust_regression,classification")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="full size (default: --quick)")
    args = parser.parse_args()
    print(f"{'config / program':34s} {'groups':>6s}  {'trace sep / shared (med)':>26s}  "
          f"{'compile sep / shared (med)':>28s}  {'total shared/sep':>16s}")
    for name in args.configs.split(","):
        cfg, base = load_config(ROOT / "configs" / f"{name}.toml", quick=not args.full)
        groups, problems, datasets, mesh = runner._prepare(cfg, base)
        totals = {"separate": [[], []], "shared": [[], []]}
        for members in runner._programs(groups, problems):
            gs, ps = [groups[i] for i in members], [problems[i] for i in members]
            times = {"separate": ([], []), "shared": ([], [])}
            for _ in range(args.repeats):
                for kind in ("separate", "shared"):
                    parts = ([([g], [p]) for g, p in zip(gs, ps, strict=True)]
                             if kind == "separate" else [(gs, ps)])
                    trace = comp = 0.0
                    for sub_groups, sub_problems in parts:
                        t, c = _trace_and_compile(cfg, sub_groups, sub_problems, datasets, mesh)
                        trace, comp = trace + t, comp + c
                    times[kind][0].append(trace)
                    times[kind][1].append(comp)
            med = {k: [statistics.median(v) for v in times[k]] for k in times}
            for k in totals:
                totals[k][0].append(med[k][0])
                totals[k][1].append(med[k][1])
            ratio = sum(med["shared"]) / sum(med["separate"])
            label = f"{name} / {gs[0].solver_name}"
            print(f"{label[:34]:34s} {len(gs):6d}  "
                  f"{min(times['separate'][0]):5.2f} ({med['separate'][0]:4.2f}) / "
                  f"{min(times['shared'][0]):5.2f} ({med['shared'][0]:4.2f})  "
                  f"{min(times['separate'][1]):6.2f} ({med['separate'][1]:4.2f}) / "
                  f"{min(times['shared'][1]):5.2f} ({med['shared'][1]:4.2f})  {ratio:15.2f}x")
        sep, shared = (sum(map(sum, totals[k])) for k in ("separate", "shared"))
        print(f"{name + ' (all programs, medians)':34s} {len(groups):6d}  "
              f"{sum(totals['separate'][0]):13.2f} / {sum(totals['shared'][0]):4.2f}  "
              f"{sum(totals['separate'][1]):15.2f} / {sum(totals['shared'][1]):4.2f}  "
              f"{shared / sep:15.2f}x")


if __name__ == "__main__":
    main()
