"""Test-suite configuration: float64, strict rank promotion and strict dtype promotion.

Library code never flips global JAX configuration; the tests do, once, here. Float32 behaviour
is tested in scoped contexts (``jax.enable_x64(False)``) or with explicit
float32 inputs.

Every test runs with ``jax_numpy_dtype_promotion="strict"``: an implicit int32/int64 or
float32/float64 mix -- in lossopt or in a test's own reference -- raises at trace time. The
one exception is a call into optax's own functions, whose internals mix dtypes: it runs under
standard promotion through ``helpers.third_party()`` (tests/test_strict_promotion.py adds
float32 inputs under x64 for every loss and solver).
"""

import contextlib
import fcntl
import gc
import importlib.metadata
import os
import shutil
import tempfile

# Test-time XLA:CPU flags (see _faster_cpu_compiles); tests that need XLA's own defaults
# (the fast-vs-optimized comparison) strip them from their subprocess's XLA_FLAGS.
TEST_XLA_FLAGS = ("--xla_cpu_use_fusion_emitters=false", "--xla_backend_optimization_level=0",
                  "--xla_cpu_parallel_codegen_split_count=1",
                  "--xla_disable_hlo_passes=while-loop-invariant-code-motion")


def xla_flags_without_test_flags() -> str:
    """This process's XLA_FLAGS without TEST_XLA_FLAGS: for a subprocess that must compile
    with XLA's own defaults, as a user's script does."""
    return " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if f not in TEST_XLA_FLAGS)


def _faster_cpu_compiles() -> None:
    """Compile with XLA:CPU's cheapest settings (before JAX starts its backend).

    Compilation is most of this suite's time: XLA:CPU compiles every fusion of a program as
    its own small module. The classic kernel emitters, LLVM optimisation level 0, one
    codegen module and no while-loop invariant code motion -- the options of
    ``lossopt.minimize(compile="fast")``, here for every program the tests
    compile (losses under jax.jit/jax.hessian, the runner's calls, "optimized" solves) --
    cut that about threefold (measured on 2 cores with jaxlib 0.10.2: the whole suite in
    4m27 instead of 5m25). The compiled programs compute the same operations (results agree
    to rounding); the comparison of "fast" with XLA's real defaults runs in a subprocess
    without these flags (tests/test_compile.py). A test-time setting only, never the
    library's. Set only for the jaxlib series it was measured on (XLA aborts on a flag it
    does not know) and unless XLA_FLAGS already chooses; LOSSOPT_TESTS_XLA_DEFAULTS=1 runs
    the suite with XLA's defaults.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if (os.environ.get("LOSSOPT_TESTS_XLA_DEFAULTS") == "1"
            or "xla_cpu_use_fusion_emitters" in flags
            or "xla_backend_optimization_level" in flags
            or not importlib.metadata.version("jaxlib").startswith("0.10.")):
        return
    os.environ["XLA_FLAGS"] = " ".join([flags, *TEST_XLA_FLAGS]).strip()


_faster_cpu_compiles()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

# `lossopt run` called in-process must not switch this process to the user's persistent
# compilation cache; tests that want a cache pass LOSSOPT_CACHE_DIR to their subprocess.
os.environ["LOSSOPT_CACHE_DIR"] = ""


_CACHE_ENV = "LOSSOPT_TESTS_JAX_CACHE"


def pytest_configure(config):
    # One persistent compilation cache for this session, shared by the xdist workers (they
    # start after this hook, with this environment): a program that two workers compile --
    # the same solver on the same shapes -- is compiled once. A fresh folder every session.
    if not os.environ.get("PYTEST_XDIST_WORKER") and not os.environ.get(_CACHE_ENV):
        os.environ[_CACHE_ENV] = tempfile.mkdtemp(prefix="lossopt-tests-jax-cache-")
        config._lossopt_cache_owner = True
    jax.config.update("jax_compilation_cache_dir", os.environ[_CACHE_ENV])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    # Subprocesses that the tests start (scripts, the CLI, the multi-device runs) read JAX's
    # own variables: the kill-and-resume children, for one, then compile their chunk once.
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ[_CACHE_ENV]
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.1"
    config.addinivalue_line(
        "markers",
        "slow(seconds): a test that takes about this long on a 2-core CPU; such tests are "
        "scheduled first, longest first, so that pytest-xdist's workers share them out and the "
        "short tests fill the end of the run",
    )


def pytest_collection_modifyitems(config, items):
    # Every xdist worker collects and sorts alike (the controller checks that they agree).
    def seconds(item):
        mark = item.get_closest_marker("slow")
        return mark.args[0] if mark and mark.args else 0

    items.sort(key=lambda item: -seconds(item))  # stable: ties keep the collection order


def pytest_collection_finish(session):
    # What collection built -- every test module, JAX, SciPy, scikit-learn, hypothesis, torch
    # where installed: ~270,000 tracked objects that live until the session ends -- is
    # frozen, so that Python's full garbage collections walk only what the tests themselves
    # allocate (a full collection of the collected heap took 0.16 s, measured with
    # `pytest --collect-only -n 0`; objects made later are collected as before). A test-time
    # setting, like the XLA flags above.
    gc.freeze()


@pytest.fixture(scope="session")
def across_workers(tmp_path_factory):
    """``with across_workers(name) as folder:`` a folder that every pytest-xdist worker of this
    session shares, held under an exclusive lock. An expensive module fixture computes into it
    once; a second worker that needs it too waits for the lock and finds it done, instead of
    computing it again (xdist spreads a module's tests over the workers)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # pytest-N/, the parent of every worker's popen-gwK/
    root = base / "across-workers"
    root.mkdir(exist_ok=True)

    @contextlib.contextmanager
    def shared(name: str):
        folder = root / name
        with open(root / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
            folder.mkdir(exist_ok=True)
            yield folder

    return shared


def pytest_unconfigure(config):
    if getattr(config, "_lossopt_cache_owner", False):
        shutil.rmtree(os.environ.pop(_CACHE_ENV), ignore_errors=True)
