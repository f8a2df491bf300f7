"""The compile policy (``compile="auto" | "fast" | "optimized"``), compile reuse, and the
persistent cache helper.

Every solve here is small (tens of parameters), so every compile is a fast one unless a test
asks for "optimized".
"""

import functools
import gc
import json
import os
import subprocess
import sys
import textwrap
import threading

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize

import lossopt
from lossopt import _collector
from lossopt._functions import Function, function_key, portable_description
from lossopt.solvers import (
    LBFGS,
    GradientDescent,
    Newton,
    Status,
    Subgradient,
    _compile,
    _loop,
    compile_choice,
)
from lossopt.solvers._driver import _prepare

RNG = np.random.default_rng(20261201)
A_ROOT = RNG.normal(size=(6, 6))
A = jnp.asarray(A_ROOT @ A_ROOT.T + 6 * np.eye(6))  # SPD, condition number ~ 10
B = jnp.asarray(RNG.normal(size=6))
X = jnp.asarray(RNG.normal(size=(80, 4)))
Y_BIN = jnp.asarray((X @ np.array([1.0, -2.0, 0.5, 0.0]) + RNG.normal(size=80) > 0)
                    .astype(float))


def quadratic(w, A, b):
    return 0.5 * w @ A @ w - b @ w


def rosenbrock(p):
    return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2


def logistic(w, X, y):
    return lossopt.losses.sigmoid_binary_cross_entropy(X @ w, y) + 0.05 * jnp.sum(w ** 2)


def _scipy_logistic():
    Xn, yn = np.asarray(X), np.asarray(Y_BIN)

    def f(w):
        z = Xn @ w
        return np.mean(np.logaddexp(0, z) - yn * z) + 0.05 * w @ w

    def g(w):
        return Xn.T @ (1 / (1 + np.exp(-(Xn @ w))) - yn) / len(yn) + 0.1 * w

    return scipy.optimize.minimize(f, np.zeros(4), jac=g, method="BFGS", tol=1e-12).x


# name: (objective, start, solver, minimize options, independent float64 reference)
KNOWN = {
    "gd_quadratic": (quadratic, jnp.zeros(6), GradientDescent(0.05), dict(args=(A, B)),
                     np.linalg.solve(np.asarray(A), np.asarray(B))),
    "newton_quadratic": (quadratic, jnp.zeros(6), Newton(), dict(args=(A, B)),
                         np.linalg.solve(np.asarray(A), np.asarray(B))),
    "newton_rosenbrock": (rosenbrock, jnp.array([-1.2, 1.0]), Newton(), dict(max_iters=200),
                          np.array([1.0, 1.0])),
    # lossopt's L-BFGS: a third of Optax(optax.lbfgs())'s program, so its optimized compile
    # costs the suite a few seconds less (Optax's loop runs fast vs optimized elsewhere too).
    "lbfgs_logistic": (logistic, jnp.zeros(4), LBFGS(), dict(args=(X, Y_BIN)), None),
    "cg_logistic": (logistic, jnp.zeros(4), Newton(linear_solver="cg"),
                    dict(args=(X, Y_BIN)), None),
}


@functools.cache
def solved(name, mode):
    fun, x0, solver, options, _ = KNOWN[name]
    return lossopt.minimize(fun, x0, solver, compile=mode, **options)


TABLE_CHILD = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import jax
    jax.config.update("jax_enable_x64", True)
    import test_compile as t
    out = {}
    for name in t.KNOWN:
        for mode in ("fast", "optimized"):
            r = t.solved(name, mode)
            out[f"{name}/{mode}"] = [[float(x) for x in r.params], int(r.status),
                                     int(r.iterations)]
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def table_with_xla_defaults():
    """The known-answer table solved fast and optimized in a process with XLA's own defaults
    (the suite's conftest makes every compile of this process a cheap one, "optimized" too)."""
    from conftest import xla_flags_without_test_flags

    env = {**os.environ, "XLA_FLAGS": xla_flags_without_test_flags(), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", TABLE_CHILD, os.path.dirname(__file__)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow(12)
@pytest.mark.parametrize("name", list(KNOWN))
def test_fast_and_optimized_agree_on_the_known_answer_table(name, table_with_xla_defaults):
    (fast, fast_status, fast_iters), (opt, opt_status, opt_iters) = (
        table_with_xla_defaults[f"{name}/{mode}"] for mode in ("fast", "optimized"))
    reference = KNOWN[name][4] if KNOWN[name][4] is not None else _scipy_logistic()
    assert fast_status == opt_status == Status.CONVERGED
    # Both meet gtol=1e-6 on well-conditioned problems: within ~1e-6 / lambda_min of the
    # minimiser, so 1e-5 of the reference; and of each other (same operations, rounding only).
    np.testing.assert_allclose(fast, reference, atol=1e-5)
    np.testing.assert_allclose(opt, reference, atol=1e-5)
    np.testing.assert_allclose(fast, opt, atol=1e-7)
    # Iteration counts of the same method agree but for rounding at the stopping test.
    assert abs(fast_iters - opt_iters) <= 1


def _choice(fun, x0, solver, **options):
    return compile_choice(fun, x0, solver, **options)


def test_auto_picks_fast_for_a_small_problem_and_optimized_for_a_large_one():
    small = _choice(logistic, jnp.zeros(4), Newton(), args=(X, Y_BIN))
    assert (small.mode, small.requested, small.platform) == ("fast", "auto", "cpu")
    assert 0 < small.estimated_run_s <= _compile.FAST_BUDGET_S
    # 50,000 x 200 logistic regression: lowering only (nothing is compiled or run). Shape
    # structs are enough to trace, so no 80 MB array is built.
    X_big = jax.ShapeDtypeStruct((50_000, 200), jnp.float64)
    y_big = jax.ShapeDtypeStruct((50_000,), jnp.float64)
    spec, inputs = _prepare(logistic, jnp.zeros(200), GradientDescent(0.1), (X_big, y_big),
                            1000, 1e-6, 0.0, 0.0, None, (), 1)
    large = _loop.solve.choice("auto", spec, GradientDescent(0.1), inputs)
    assert large.mode == "optimized"
    # One gradient over 1e7 entries costs >= 2e7 flops; 1000 iterations are seconds.
    assert large.flops > 2e7 and large.estimated_run_s > _compile.FAST_BUDGET_S
    assert "(1000 iterations)" in large.reason
    # Newton states that 100 iterations bound its runs: a generous max_iters does not make a
    # small Newton solve compile at full optimisation.
    newton = _choice(logistic, jnp.zeros(4), Newton(), args=(X, Y_BIN), max_iters=100_000)
    assert newton.mode == "fast" and "(100 iterations)" in newton.reason


def test_the_trace_buffers_do_not_count_as_per_iteration_work():
    # 2-D Rosenbrock for 50,000 iterations: XLA's unoptimised cost counts the 50,001-record
    # trace buffers as if every iteration copied them (quadratic in max_iters); the loop is
    # microseconds per iteration, so it still compiles fast.
    long = _choice(rosenbrock, jnp.array([-1.2, 1.0]), GradientDescent(1e-3), max_iters=50_000)
    assert long.mode == "fast", long
    assert long.bytes_accessed > 5 * 50_001 * 3 * 8  # the artefact (~5.8x) is there to remove


def test_explicit_modes_and_other_backends():
    assert _choice(logistic, jnp.zeros(4), Newton(), args=(X, Y_BIN),
                   compile="optimized").mode == "optimized"
    assert _choice(logistic, jnp.zeros(4), Newton(), args=(X, Y_BIN),
                   compile="fast").mode == "fast"
    # The fast options are XLA:CPU's: elsewhere every mode compiles with XLA's defaults.
    assert _compile.fast_options("gpu") == ()
    for mode in ("auto", "fast"):
        choice = _compile.choose(mode, lambda: pytest.fail("must not lower"), 1000, "gpu")
        assert choice.mode == "optimized" and "gpu" in choice.reason
    assert dict(_compile.fast_options("cpu")) == _compile._FAST_CANDIDATES  # jaxlib 0.10
    with pytest.raises(ValueError, match=r"`compile` must be one of \['auto', 'fast', "
                                         r"'optimized'\]; got 'quick'"):
        lossopt.minimize(rosenbrock, jnp.zeros(2), Newton(), compile="quick")


def test_a_fast_option_this_jaxlib_does_not_know_is_left_out(monkeypatch):
    candidates = {**_compile._FAST_CANDIDATES, "xla_cpu_no_such_option_for_the_test": True}
    monkeypatch.setattr(_compile, "_FAST_CANDIDATES", candidates)
    _compile.fast_options.cache_clear()
    try:
        assert dict(_compile.fast_options("cpu")) == {
            k: v for k, v in candidates.items() if k != "xla_cpu_no_such_option_for_the_test"}
    finally:
        _compile.fast_options.cache_clear()


def test_sweep_takes_compile_and_agrees_across_modes():
    lrs = jnp.array([0.02, 0.05])
    runs = {mode: lossopt.sweep(quadratic, jnp.zeros(6), GradientDescent, {"learning_rate": lrs},
                                args=(A, B), compile=mode) for mode in ("fast", "optimized")}
    np.testing.assert_array_equal(runs["fast"].status, runs["optimized"].status)
    np.testing.assert_allclose(runs["fast"].params, runs["optimized"].params, atol=1e-9)


def _hlo_ops(fun, x0, solver, **options):
    """The number of operations of minimize's unoptimised (StableHLO) program."""
    spec, inputs = _prepare(fun, x0, solver, options.pop("args", ()), options.pop("max_iters", 50),
                            options.pop("gtol", 1e-6), options.pop("ftol", 0.0),
                            options.pop("xtol", 0.0), options.pop("metrics", None),
                            options.pop("metric_args", ()), options.pop("record_every", 1),
                            options.pop("key", None), options.pop("batch_size", None))
    assert not options
    text = _loop.solve.optimized.lower(spec, solver, inputs).as_text()
    return sum(1 for line in text.splitlines() if " = " in line)


def test_features_that_are_off_add_nothing_to_the_program():
    def lsq(w, X, y, *, key=None):
        return jnp.mean((X @ w - y) ** 2)

    y = X @ jnp.array([1.0, 2.0, 3.0, 4.0])
    minimal = _hlo_ops(lsq, jnp.zeros(4), GradientDescent(0.1), args=(X, y))
    # Every feature spelled out as off compiles to the very same program.
    assert _hlo_ops(lsq, jnp.zeros(4), GradientDescent(0.1, momentum=0.0, line_search=None,
                                                       clip_norm=None),
                    args=(X, y), ftol=0.0, xtol=0, metrics={}, record_every=1) == minimal
    # Each feature on adds operations of its own; all together, more than each alone.
    features = {
        "ftol": dict(ftol=1e-9),
        "xtol": dict(xtol=1e-9),
        "metric": dict(metrics={"val": lambda w, X, y: lsq(w, X, y)}, metric_args=(X, y)),
        "record_every": dict(record_every=5),
        "key": dict(key=jax.random.key(0)),
        "batch_size": dict(batch_size=20),
    }
    counts = {name: _hlo_ops(lsq, jnp.zeros(4), GradientDescent(0.1), args=(X, y), **opts)
              for name, opts in features.items()}
    counts["momentum"] = _hlo_ops(lsq, jnp.zeros(4), GradientDescent(0.1, momentum=0.9),
                                  args=(X, y))
    counts["line_search"] = _hlo_ops(lsq, jnp.zeros(4), GradientDescent(0.1, line_search="armijo"),
                                     args=(X, y))
    counts["best_iterate"] = _hlo_ops(lsq, jnp.zeros(4), Subgradient(0.1), args=(X, y))
    for name, count in counts.items():
        assert count > minimal, name
    everything = _hlo_ops(
        lsq, jnp.zeros(4), GradientDescent(0.1, momentum=0.9, line_search="armijo"), args=(X, y),
        ftol=1e-9, xtol=1e-9, metrics={"val": lambda w, X, y: lsq(w, X, y)}, metric_args=(X, y),
        record_every=5, key=jax.random.key(0), batch_size=20)
    assert everything > max(counts.values())


def test_momentum_zero_carries_no_buffer_but_a_swept_momentum_still_works():
    solver = GradientDescent(0.05)
    assert solver.init(None, jnp.zeros(3), None, None).velocity is None
    assert jax.tree.leaves(solver) == [0.05]  # the literal 0.0 momentum is static
    # A grid that includes 0 is traced: one program, the lane with momentum 0 is plain GD.
    res = lossopt.sweep(quadratic, jnp.zeros(6), GradientDescent,
                        {"learning_rate": jnp.array([0.05, 0.05]),
                         "momentum": jnp.array([0.0, 0.5])}, args=(A, B))
    plain = solved("gd_quadratic", "fast")
    assert int(res.iterations[0]) == int(plain.iterations)
    np.testing.assert_allclose(res.params[0], plain.params, atol=1e-12)  # (as below)
    heavy = lossopt.minimize(quadratic, jnp.zeros(6), GradientDescent(0.05, momentum=0.5),
                             args=(A, B), compile="fast")
    assert int(res.iterations[1]) == int(heavy.iterations)
    # Lanes of a vmapped loop compute as the solo run but for the batched reductions' order.
    np.testing.assert_allclose(res.params[1], heavy.params, atol=1e-12)


def test_a_recreated_identical_lambda_does_not_recompile():
    Xs, ys = X, Y_BIN
    chex.clear_trace_counter()

    def make(lam):
        # A new function object per call, as a loop or a notebook cell makes. chex counts the
        # traces of every such object together (same source, same call stack): one Newton
        # compilation traces the objective 3 times (measured), so a retrace goes over.
        return chex.assert_max_traces(lambda w: logistic(w, Xs, ys) + lam * jnp.sum(w ** 4),
                                      n=3)

    first = lossopt.minimize(make(0.01), jnp.zeros(4), Newton())
    again = lossopt.minimize(make(0.01), jnp.zeros(4), Newton())  # no retrace: reused
    np.testing.assert_array_equal(again.params, first.params)
    with pytest.raises(AssertionError, match="traced > 3 times"):
        lossopt.minimize(make(0.02), jnp.zeros(4), Newton())  # another closed-over value
    other = lossopt.minimize(lambda w: logistic(w, Xs, ys) + 0.02 * jnp.sum(w ** 4),
                             jnp.zeros(4), Newton())
    assert not np.allclose(other.params, first.params)  # the closed-over value matters


LAM = 0.01


def _reads_a_global(w):
    return jnp.sum((w - LAM) ** 2)


def test_a_changed_global_constant_is_seen():
    global LAM
    before = lossopt.minimize(_reads_a_global, jnp.zeros(2), Newton())
    LAM = 0.5
    try:
        after = lossopt.minimize(_reads_a_global, jnp.zeros(2), Newton())
    finally:
        LAM = 0.01
    # jax.jit alone would have reused the program with the old constant baked in.
    np.testing.assert_allclose(before.params, [0.01, 0.01], atol=1e-9)
    np.testing.assert_allclose(after.params, [0.5, 0.5], atol=1e-9)


def test_function_keys_follow_code_and_values():
    def make(scale, offset=1.0):
        return lambda w: scale * w + offset

    assert function_key(make(2.0)) == function_key(make(2.0))
    assert function_key(make(2.0)) != function_key(make(3.0))
    assert function_key(make(2.0)) != function_key(make(2.0, offset=2.0))
    assert function_key(make(1)) != function_key(make(1.0))  # int and float trace differently
    # Different code with the same values differs.
    assert function_key(lambda w: w + 1.0) != function_key(lambda w: w - 1.0)
    # Partials and optax optimizers: their bound values count.
    assert Function(functools.partial(logistic, X=X)) == Function(functools.partial(logistic, X=X))
    assert Function(optax.adam(1e-3).update) == Function(optax.adam(1e-3).update)
    assert Function(optax.adam(1e-3).update) != Function(optax.adam(1e-2).update)
    # Small numpy arrays by value, JAX arrays by identity (immutable), lists by identity.
    small = np.arange(3.0)
    assert function_key(make(small)) == function_key(make(small.copy()))
    jx = jnp.arange(3.0)
    assert function_key(make(jx)) == function_key(make(jx))
    assert function_key(make(jx)) != function_key(make(jnp.arange(3.0)))
    assert function_key(make([1.0])) != function_key(make([1.0]))


def test_portable_descriptions_see_code_globals_and_hyperparameters():
    import json

    d = portable_description(_reads_a_global)
    json.dumps(d)  # serialisable
    assert ["LAM", "0.01"] in d[-1]
    assert portable_description(lambda w: w + 1.0) != portable_description(lambda w: w - 1.0)
    assert "0x" not in json.dumps(portable_description(optax.adam(1e-3)))
    assert (portable_description(optax.adam(1e-3)) != portable_description(optax.adam(2e-3)))


def test_enable_compile_cache_in_a_subprocess(tmp_path):
    script = textwrap.dedent("""
        import sys, jax, jax.numpy as jnp, lossopt
        from lossopt.solvers import Newton
        folder = lossopt.enable_compile_cache(sys.argv[1])
        res = lossopt.minimize(lambda w: jnp.sum((w - 2.0) ** 4) + jnp.sum(w ** 2), jnp.zeros(3),
                               Newton(), compile="optimized")
        print(folder, float(res.params[0]))
    """)
    from conftest import xla_flags_without_test_flags

    # XLA's own defaults, as a user's script has them: the suite's cheap-compile flags can
    # bring the optimized compile of this small loop under the cache's MIN_COMPILE_TIME_S.
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env["XLA_FLAGS"] = xla_flags_without_test_flags()
    cache = tmp_path / "cache"
    out = subprocess.run([sys.executable, "-c", script, str(cache)], env=env, check=True,
                         capture_output=True, text=True, timeout=120)
    folder, x = out.stdout.split()
    assert folder == str(cache)
    # The minimiser of (x - 2)^4 + x^2 solves 4 (x - 2)^3 + 2 x = 0 (one real root in (0, 2)).
    # The child runs in float32 (JAX's default): 1e-5 is a few float32 roundings of 1.16.
    assert abs(float(x) - scipy.optimize.brentq(lambda t: 4 * (t - 2) ** 3 + 2 * t, 0, 2)) < 1e-5
    written = [p for p in cache.rglob("*") if p.is_file()]
    assert written, "the solver loop was not written to the cache"
    # Library import alone never turns the cache on.
    out = subprocess.run([sys.executable, "-c", "import jax, lossopt; "
                          "print(jax.config.jax_compilation_cache_dir)"],
                         env=env, check=True, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "None"



def test_a_resumed_run_compiles_in_its_checkpoints_mode(tmp_path):
    def objective(w, A, b):  # a program of its own
        return quadratic(w, A, b) + 1e-3 * jnp.sum(w ** 4)

    run = functools.partial(lossopt.minimize, objective, jnp.zeros(6), Newton(), args=(A, B))
    half = run(max_iters=2, checkpoint_dir=tmp_path, chunk_size=1, compile="fast")
    assert int(half.iterations) == 2
    # Asked for "optimized", the resumed chunks still compile as the checkpoint's did: the
    # run is bit-identical to the uninterrupted fast one.
    resumed = run(checkpoint_dir=tmp_path, chunk_size=1, resume=True, compile="optimized")
    np.testing.assert_array_equal(resumed.params, run(compile="fast").params)
    assert int(resumed.status) == Status.CONVERGED


def test_the_garbage_collector_is_paused_while_a_loop_is_built_and_restored_after():
    collections = []

    def watch(phase, info):
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(watch)
    try:
        # A new objective: its Newton loop is traced, lowered and compiled here. The trace
        # makes tens of thousands of objects, which with the collector on start dozens of
        # collections (49 young and one full one measured in a fresh process).
        res = lossopt.minimize(lambda w: quadratic(w, A, B) + 1e-3 * jnp.sum(w ** 4),
                               jnp.zeros(6), Newton())
    finally:
        gc.callbacks.remove(watch)
    assert int(res.status) == Status.CONVERGED
    # Paused while the loop is built: what is left is a young collection or two of what the
    # build left, once the collector is back on.
    assert len(collections) <= 2, collections
    assert gc.isenabled()


def test_collector_paused_nests_across_threads_and_keeps_a_disabled_collector_off(monkeypatch):
    assert gc.isenabled()
    outer_in, inner_out = threading.Event(), threading.Event()

    def other_build():
        with _collector.collector_paused():
            outer_in.set()
            inner_out.wait(10)

    thread = threading.Thread(target=other_build)
    thread.start()
    outer_in.wait(10)
    with _collector.collector_paused():
        with _collector.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other thread's build is still going on
    inner_out.set()
    thread.join(10)
    assert gc.isenabled()
    # A program that turned the collector off keeps it off.
    gc.disable()
    try:
        with _collector.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
    # LOSSOPT_GC_PAUSE=0 leaves the collector alone.
    monkeypatch.setenv("LOSSOPT_GC_PAUSE", "0")
    with _collector.collector_paused():
        assert gc.isenabled()
