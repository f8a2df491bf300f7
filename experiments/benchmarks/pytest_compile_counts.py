"""Where the test suite's time goes: XLA compiles, compile seconds and tracing per test.

A pytest plugin: with it, every test's XLA compiles (count and seconds), its JAX tracing and
lowering seconds and its wall time are recorded, and each process (each xdist worker) writes
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
import json
import os
import sys
import time
from pathlib import Path

import pytest

_EVENTS_TRACE = ("/jax/core/compile/jaxpr_trace_duration",
                 "/jax/core/compile/jaxpr_to_mlir_module_duration")
_current: dict[str, str | None] = {"test": None}
# test id -> [compiles, compile s, trace and lowering s, wall s, start (epoch s)]
_stats: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0, 0.0, 0.0])


def _listener(event: str, duration: float, **_: object) -> None:
    test = _current["test"]
    if test is None:
        return
    if event == "/jax/core/compile/backend_compile_duration":
        _stats[test][0] += 1
        _stats[test][1] += duration
    elif event in _EVENTS_TRACE:
        _stats[test][2] += duration


def pytest_configure(config):
    from jax._src import monitoring

    monitoring.register_event_duration_secs_listener(_listener)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _current["test"] = item.nodeid
    start = time.time()
    yield
    _stats[item.nodeid][3] += time.time() - start
    _stats[item.nodeid][4] = start
    _current["test"] = None


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
    files: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0, 0.0, 0])
    for test, (n, compile_s, trace_s, wall, _) in stats.items():
        row = files[test.split("::")[0]]
        row[0] += n
        row[1] += compile_s
        row[2] += trace_s
        row[3] += wall
        row[4] += 1
    total = [sum(r[i] for r in files.values()) for i in range(5)]
    print(f"{int(total[4])} tests: {int(total[0])} XLA compiles, {total[1]:.0f} s compiling, "
          f"{total[2]:.0f} s tracing and lowering, {total[3]:.0f} s of test time in all")
    print(f"{'wall s':>8s} {'compile s':>9s} {'compiles':>8s} {'trace s':>8s} {'tests':>5s}  file")
    for name, (n, compile_s, trace_s, wall, tests) in sorted(
            files.items(), key=lambda kv: -kv[1][3])[: args.most]:
        print(f"{wall:8.1f} {compile_s:9.1f} {int(n):8d} {trace_s:8.1f} {int(tests):5d}  {name}")


if __name__ == "__main__":
    main()
