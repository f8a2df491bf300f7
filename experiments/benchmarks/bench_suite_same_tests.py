"""The test suite's speed-up on the same tests: a revision's tests on its own code and on today's.

Issue 13's suite target is "the suite (same coverage) in at most half the time". The suite has
grown since (every later issue added tests), so the whole suite's wall time compares unlike
things. This benchmark measures like with like: the test files of ``REVISION`` (default
57d5757, where the issue was measured) run twice, in one session:

- ``then``: ``REVISION``'s whole tree -- its tests, its conftest, its library;
- ``now``: the same tests and conftest on the working tree's library (``lossopt/``, configs,
  docs and README from the working tree), with the working tree's test-time XLA flags
  (``TEST_XLA_FLAGS`` of ``tests/conftest.py``: part of the suite's machinery, which the
  revision's conftest predates).

Each run is ``pytest <files> -p no:cacheprovider --durations=0 -rfE`` with the project's
pytest options (2 xdist workers on this machine); ``--rounds`` alternates them. It prints
each run's wall time and, over the tests that pass in both (a test the library's later API
changes broke is left out, and counted), the summed test time (setup + call + teardown) of
each side, per file and in all, with the ratio now / then. Test times are summed CPU-bound
work of two workers: read the ratio, which is less sensitive to the machine's other tenants
than the wall time.

Usage::

    python experiments/benchmarks/bench_suite_same_tests.py [REVISION] [--rounds N]
        [--files tests/test_solvers.py,tests/test_losses_regression.py]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DURATION = re.compile(r"^([\d.]+)s (setup|call|teardown)\s+(\S+)")
OUTCOME = re.compile(r"^(FAILED|ERROR) (\S+)")
SUMMARY = re.compile(r"^=*\s*(\d+ (passed|failed|error).*) in ([\d.]+)s")


def _archive(revision: str, paths: list[str], dest: Path) -> None:
    """Extract ``paths`` of ``revision`` (all of it when empty) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile() as fh:
        subprocess.run(["git", "-C", str(ROOT), "archive", revision, *paths], stdout=fh,
                       check=True)
        fh.seek(0)
        with tarfile.open(fileobj=fh) as tar:
            tar.extractall(dest, filter="data")


def _working_tree(dest: Path) -> None:
    """Copy the working tree's tracked and untracked-but-not-ignored files into ``dest``."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard"],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    for name in listed:
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def _test_xla_flags() -> str:
    code = ("import sys; sys.path.insert(0, 'tests'); import conftest; "
            "print(' '.join(conftest.TEST_XLA_FLAGS))")
    env = {**os.environ, "XLA_FLAGS": "--xla_cpu_use_fusion_emitters=false"}  # no side effect
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env=env)
    return out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout else ""


def _run(tree: Path, files: list[str], xla_flags: str | None) -> tuple[float, dict, set, str]:
    env = {**os.environ, "PYTHONPATH": str(tree), "LOSSOPT_CACHE_DIR": ""}
    if xla_flags is not None:
        env["XLA_FLAGS"] = xla_flags
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", *files, "-p", "no:cacheprovider",
                           "--durations=0", "-rfE"], cwd=tree, env=env, capture_output=True,
                          text=True)
    wall = time.perf_counter() - t0
    durations: dict[str, float] = collections.defaultdict(float)
    bad: set[str] = set()
    summary = ""
    for line in proc.stdout.splitlines():
        if m := DURATION.match(line):
            durations[m.group(3)] += float(m.group(1))
        elif m := OUTCOME.match(line):
            bad.add(m.group(2))
        elif m := SUMMARY.search(line):
            summary = m.group(1)
    return wall, dict(durations), bad, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision", nargs="?", default="57d5757")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--files", default="", help="comma-separated test files (default: "
                        "the revision's tests/ folder)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="lossopt-same-tests-"))
    then_tree, now_tree = work / "then", work / "now"
    _archive(args.revision, [], then_tree)
    _working_tree(now_tree)
    shutil.rmtree(now_tree / "tests")
    _archive(args.revision, ["tests"], now_tree)
    files = [f for f in args.files.split(",") if f] or ["tests"]
    flags = _test_xla_flags()
    print(f"{args.revision}'s tests ({', '.join(files)}): then = on {args.revision}'s code, "
          f"now = on the working tree's code with XLA_FLAGS={flags!r}; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    runs: dict[str, list] = {"then": [], "now": []}
    for _ in range(args.rounds):
        for side, tree, xla in (("now", now_tree, flags), ("then", then_tree, None)):
            wall, durations, bad, summary = _run(tree, files, xla)
            runs[side].append((wall, durations, bad))
            print(f"{side:5s} wall {wall:7.1f} s  {summary}")
    then_d, now_d = runs["then"][-1][1], runs["now"][-1][1]
    bad = set().union(*(b for side in runs.values() for _, _, b in side))
    common = [t for t in then_d if t in now_d and t not in bad]
    left_out = [t for t in then_d if t not in common]
    by_file: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for t in common:
        entry = by_file[t.split("::")[0]]
        entry[0] += then_d[t]
        entry[1] += now_d[t]
    print(f"\n{'file':48s} {'then s':>8s} {'now s':>8s} {'now/then':>9s}")
    for name, (a, b) in sorted(by_file.items(), key=lambda kv: -kv[1][0]):
        print(f"{name:48s} {a:8.1f} {b:8.1f} {b / a if a else float('nan'):8.2f}x")
    total_then = sum(then_d[t] for t in common)
    total_now = sum(now_d[t] for t in common)
    print(f"\n{len(common)} tests pass in both (of the {len(then_d)} timed then; "
          f"{len(left_out)} left out: failing now, or not run): summed test time then "
          f"{total_then:.1f} s, now {total_now:.1f} s, {total_now / total_then:.2f}x")
    dropped = collections.Counter(t.split("::")[0] for t in left_out)
    if dropped:
        print("left out, by file: " + ", ".join(f"{f} {n}" for f, n in dropped.most_common()))
    walls = {side: [w for w, _, _ in v] for side, v in runs.items()}
    print(f"wall min: then {min(walls['then']):.1f} s, now {min(walls['now']):.1f} s")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
