"""What sharing one compiled program between a config's losses buys `lossopt run`.

``lossopt run`` compiles the groups of one solver setting on one dataset -- the config's losses --
as one program that switches on a traced loss index (``lossopt/experiment/_runner.py``,
``_programs``). This benchmark traces and compiles every program of a config both ways, in one
fresh process per (config, way), interleaved over ``--repeats`` rounds, as a user's first run
meets them: each group on its own ("separate": one program per group, as before) and the groups
together ("shared"); no persistent cache. (In one process, JAX's tracing caches would serve a
loss traced before.) It prints, per program and in total, the min and median of trace and
compile seconds and the ratio shared / separate of the medians of trace + compile.

Usage::

    python experiments/benchmarks/bench_shared_programs.py --repeats 3
    python experiments/benchmarks/bench_shared_programs.py --configs quickstart,classification
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
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


def _child(name: str, kind: str, full: bool) -> None:
    """Trace and compile every program of config ``name`` one way; print JSON per program."""
    cfg, base = load_config(ROOT / "configs" / f"{name}.toml", quick=not full)
    groups, problems, datasets, mesh = runner._prepare(cfg, base)
    out = []
    for members in runner._programs(groups, problems):
        gs, ps = [groups[i] for i in members], [problems[i] for i in members]
        parts = ([([g], [p]) for g, p in zip(gs, ps, strict=True)]
                 if kind == "separate" else [(gs, ps)])
        trace = comp = 0.0
        for sub_groups, sub_problems in parts:
            t, c = _trace_and_compile(cfg, sub_groups, sub_problems, datasets, mesh)
            trace, comp = trace + t, comp + c
        out.append([gs[0].solver_name, len(gs), trace, comp])
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="quickstart,robust_regression,classification")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="full size (default: --quick)")
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "WAY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(*args.child, args.full)
    print(f"{'config / program':34s} {'groups':>6s}  {'trace sep / shared, min (med)':>31s}  "
          f"{'compile sep / shared, min (med)':>32s}  {'shared/sep':>10s}")
    for name in args.configs.split(","):
        runs: dict[str, list] = {"separate": [], "shared": []}
        for _ in range(args.repeats):
            for kind in runs:
                command = [sys.executable, __file__, "--child", name, kind,
                           *(["--full"] if args.full else [])]
                proc = subprocess.run(command, capture_output=True, text=True, check=True)
                runs[kind].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        rows = []
        for k, (solver, n_groups, _, _) in enumerate(runs["shared"][0]):
            cell = {kind: ([r[k][2] for r in runs[kind]], [r[k][3] for r in runs[kind]])
                    for kind in runs}
            rows.append((f"{name} / {solver}", n_groups, cell))
        total = {kind: ([sum(r[k][2] for k in range(len(r))) for r in runs[kind]],
                        [sum(r[k][3] for k in range(len(r))) for r in runs[kind]])
                 for kind in runs}
        rows.append((f"{name} (all)", sum(n for _, n, _ in rows), total))
        for label, n_groups, cell in rows:
            med = {kind: [statistics.median(v) for v in cell[kind]] for kind in cell}
            ratio = sum(med["shared"]) / sum(med["separate"])
            print(f"{label[:34]:34s} {n_groups:6d}  "
                  f"{min(cell['separate'][0]):6.2f} ({med['separate'][0]:4.2f}) / "
                  f"{min(cell['shared'][0]):5.2f} ({med['shared'][0]:4.2f})  "
                  f"{min(cell['separate'][1]):7.2f} ({med['separate'][1]:4.2f}) / "
                  f"{min(cell['shared'][1]):5.2f} ({med['shared'][1]:4.2f})  {ratio:9.2f}x")


if __name__ == "__main__":
    main()
