"""Where the test suite's time goes: XLA compiles, compile seconds and tracing per test.

A pytest plugin: with it, every test's XLA compiles (count and seconds), its JAX tracing and
lowering seconds, the seconds Python's cyclic garbage collector ran during it, its CPU
seconds (the worker's threads and the subprocesses it waited for) and its wall time are
recorded, and each process (each xdist worker) writes
them to ``compile_counts_<worker>.json`` in ``$LOSSOPT_COMPILE_COUNTS_DIR`` (default: the
current folder) at the end. Run as a script on that folder it prints the totals and the files
that cost most::

    PYTHONPATH=experiments/benchmarks LOSSOPT_COMPILE_COUNTS_DIR=/tmp/cc pytest -p pytest_compile_counts
    python experiments/benchmarks/pytest_compile_counts.py /tmp/cc --most 20

The numbers come from JAX's monitoring events (``/jax/core/compile/backend_compile_duration``
and the tracing and lowering durations); subprocesses that tests start are not counted.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import resource
import sys
import time
from pathlib import Path

import pytest

_EVENTS_TRACE = ("/jax/core/compile/jaxpr_trace_duration",
                 "/jax/core/compile/jaxpr_to_mlir_module_duration")
_current: dict[str, str | None] = {"test": None}
# test id -> [compiles, compile s, trace and lowering s, wall s, start (epoch s), gc s, cpu s]
_stats: dict[str, list[float]] = collections.defaultdict(
    lambda: [0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
_gc_start: list[float] = [0.0]


def _listener(event: str, duration: float, **_: object) -> None:
    test = _current["test"]
    if test is None:
        return
    if event == "/jax/core/compile/backend_compile_duration":
        _stats[test][0] += 1
        _stats[test][1] += duration
    elif event in _EVENTS_TRACE:
        _stats[test][2] += duration


def _gc_callback(phase: str, info: dict) -> None:
    if phase == "start":
        _gc_start[0] = time.perf_counter()
    elif _current["test"] is not None:
        _stats[_current["test"]][5] += time.perf_counter() - _gc_start[0]


def pytest_configure(config):
    from jax._src import monitoring

    monitoring.register_event_duration_secs_listener(_listener)
    gc.callbacks.append(_gc_callback)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _current["test"] = item.nodeid
    start, cpu = time.time(), _cpu_seconds()
    yield
    _stats[item.nodeid][3] += time.time() - start
    _stats[item.nodeid][4] = start
    _stats[item.nodeid][6] += _cpu_seconds() - cpu
    _current["test"] = None


def _cpu_seconds() -> float:
    """CPU seconds of this process's threads and of its waited-for subprocesses."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def pytest_sessionfinish(session):
    folder = Path(os.environ.get("LOSSOPT_COMPILE_COUNTS_DIR", "."))
    folder.mkdir(parents=True, exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    (folder / f"compile_counts_{worker}.json").write_text(json.dumps(dict(_stats)))


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Summarise compile_counts_*.json files.")
    parser.add_argument("folder")
    parser.add_argument("--most", type=int, default=15)
    args = parser.parse_args()
    stats: dict[str, list[float]] = {}
    for path in sorted(Path(args.folder).glob("compile_counts_*.json")):
        stats.update(json.loads(path.read_text()))
    if not stats:
        sys.exit(f"no compile_counts_*.json in {args.folder}")
    files: dict[str, list[float]] = collections.defaultdict(
        lambda: [0, 0.0, 0.0, 0.0, 0, 0.0, 0.0])
    for test, (n, compile_s, trace_s, wall, _, *later) in stats.items():
        row = files[test.split("::")[0]]
        row[0] += n
        row[1] += compile_s
        row[2] += trace_s
        row[3] += wall
        row[4] += 1
        for i, value in enumerate(later, start=5):  # gc s, cpu s: 0 in older files
            row[i] += value
    total = [sum(r[i] for r in files.values()) for i in range(7)]
    print(f"{int(total[4])} tests: {int(total[0])} XLA compiles, {total[1]:.0f} s compiling, "
          f"{total[2]:.0f} s tracing and lowering, {total[5]:.0f} s in the garbage collector, "
          f"{total[3]:.0f} s of test time in all, {total[6]:.0f} CPU-s")
    print(f"{'wall s':>8s} {'cpu s':>6s} {'compile s':>9s} {'compiles':>8s} {'trace s':>8s} "
          f"{'gc s':>6s} {'tests':>5s}  file")
    for name, (n, compile_s, trace_s, wall, tests, gc_s, cpu_s) in sorted(
            files.items(), key=lambda kv: -kv[1][3])[: args.most]:
        print(f"{wall:8.1f} {cpu_s:6.1f} {compile_s:9.1f} {int(n):8d} {trace_s:8.1f} "
              f"{gc_s:6.1f} {int(tests):5d}  {name}")


if __name__ == "__main__":
    main()
