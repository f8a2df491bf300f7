"""XLA compile time of every program of shipped configs under sets of compile options.

``lossopt run --quick`` compiles each program with ``compile="fast"``'s XLA:CPU options
(``lossopt.solvers._compile.fast_options``). This benchmark traces and lowers every program of
the given configs once (``--quick`` sizes, as ``lossopt run`` does), then compiles each of them
under the fast options and under the fast options plus each extra option set given on the
command line -- interleaved program by program, ``--repeats`` rounds, in one process. A no-op
option (``xla_dump_max_hlo_modules``, a new value every compile) keeps JAX from reusing an
executable it compiled before. It prints, per option set, the total seconds of all programs
(min and median over the rounds) and the ratio of the minima to the fast options.

An option set is ``name=value`` pairs separated by ``;``, values ``true``/``false``, integers
or strings, e.g. ``"xla_disable_hlo_passes=while-loop-invariant-code-motion,simplify-while-loops"``.
``--without NAME`` drops one of the fast options from the baseline (to measure what it buys).

Usage::

    python experiments/benchmarks/bench_config_compiles.py
    python experiments/benchmarks/bench_config_compiles.py --configs real_data,optimizers \\
        --without xla_disable_hlo_passes "xla_cpu_scheduler_type=1"
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

from lossopt.experiment import _runner as runner  # noqa: E402
from lossopt.experiment._config import load_config  # noqa: E402
from lossopt.solvers._compile import fast_options  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _parse(spec: str) -> dict[str, object]:
    options: dict[str, object] = {}
    for pair in filter(None, spec.split(";")):
        name, _, text = pair.partition("=")
        value: object = {"true": True, "false": False}.get(text, text)
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                pass
        options[name] = value
    return options


def _lowered(config: str) -> list:
    cfg, base = load_config(ROOT / "configs" / f"{config}.toml", quick=True)
    out = Path(tempfile.mkdtemp()) / "out"
    groups, problems, datasets, mesh = runner._prepare(cfg, base, out)
    return [runner._trace_program(cfg, [groups[i] for i in members],
                                  [problems[i] for i in members], datasets, mesh).lowered
            for members in runner._programs(groups, problems)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="quickstart,optimizers,real_data,classification,"
                        "robust_regression,mlp_dropout")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--without", action="append", default=[],
                        help="a fast option left out of the baseline (repeatable)")
    parser.add_argument("sets", nargs="*", help="extra option sets (see the module docstring)")
    args = parser.parse_args()
    baseline = {k: v for k, v in fast_options("cpu") if k not in args.without}
    sets = {"fast" + "".join(f" - {w}" for w in args.without): {}}
    sets.update({spec: _parse(spec) for spec in args.sets})
    programs = [low for config in args.configs.split(",") for low in _lowered(config)]
    seconds = {name: [0.0] * args.repeats for name in sets}
    compiles = 0
    for round_ in range(args.repeats):
        for lowered in programs:
            for name, extra in sets.items():
                compiles += 1
                options = {**baseline, **extra, "xla_dump_max_hlo_modules": 10_000 + compiles}
                t0 = time.perf_counter()
                lowered.compile(options)
                seconds[name][round_] += time.perf_counter() - t0
    print(f"{len(programs)} programs of {args.configs} (--quick), {args.repeats} interleaved "
          f"rounds; baseline options {baseline}\n")
    first = min(next(iter(seconds.values())))
    print(f"{'options':72s} {'total min / median s':>22s} {'x':>6s}")
    for name, totals in seconds.items():
        print(f"{name[:72]:72s} {min(totals):9.2f} / {statistics.median(totals):7.2f} "
              f"{min(totals) / first:6.2f}")


if __name__ == "__main__":
    main()
