"""What a new user waits for: import, first call (trace + compile + solve) and warm call.

Every measurement runs in a FRESH Python process (``sys.executable``, one case per process),
in float64 (``JAX_ENABLE_X64=1``) and with no persistent compilation cache
(``JAX_COMPILATION_CACHE_DIR`` unset, ``LOSSOPT_CACHE_DIR=""``), so nothing compiled by an
earlier run is reused. Each child reports:

- ``import``: wall time of ``import jax`` + the library the case uses (``import lossopt``,
  ``import optimistix``, ...; scipy's case imports numpy + ``scipy.optimize`` only). The
  operating system's file cache is warm: a probe process imports every library first.
- ``setup`` (JSON only): building the seeded numpy data and putting it on the device (this is
  where JAX starts its backend).
- ``first``: the first solve, until ``block_until_ready`` returns: tracing, lowering, XLA
  compilation and the run itself. This is the number a new user feels. ``of it GC``: the
  seconds Python's garbage collector ran during it (``gc.callbacks``).
- ``warm``: the minimum of up to ``--warm`` further identical calls (stopped early once they
  add up to 5 s): the run alone, from the in-memory cache. ``first - warm`` is about the
  compile cost.
- ``HLO``: line count of the optimized HLO text of the compiled program,
  ``jax.jit(solve).lower(...).compile().as_text()``, measured in the same child AFTER the
  timings (only in the first repeat), so it does not touch the first-call time.
- ``XLA``: for lossopt cases under ``compile="auto"`` (the default), the mode it chose
  (``lossopt.solvers.compile_choice``, asked after the timings), where lossopt has it.
- ``iters``, ``loss``, ``|g|inf``, ``status``: iterations, and the objective and max-abs
  gradient of the returned point recomputed by one float64 numpy function for every case, to
  show that the solvers solved the same problem to a comparable accuracy.

Cases (``--cases``, comma separated keys):

- lossopt (``lossopt.minimize(..., gtol=1e-6)``; gtol is ``max_i |g_i| <= gtol``):
  ``gd`` GradientDescent (fixed learning rate), ``gd-momentum`` (momentum 0.9), ``newton``
  (Cholesky, Armijo line search), ``newton-cg`` (``linear_solver="cg"``), ``optax-lbfgs``
  (``Optax(optax.lbfgs())``), ``optax-adam``, ``subgradient`` (constant step: on these smooth
  problems it is gradient descent with best-iterate tracking), ``lbfgs``
  (``lossopt.solvers.LBFGS()`` with its defaults, only if the library has it).
- ``optx-bfgs``: ``optimistix.minimise(fn, optimistix.BFGS(rtol=1e-8, atol=1e-8), ...)``.
  Optimistix has no gradient rule: BFGS stops when both the step and the change of f are
  small (``max|dy| < atol + rtol |y|`` and ``|df| < atol + rtol |f|``). With 1e-8 it ends
  well below ``|g|inf = 1e-6`` on these problems (a few iterations more than a gtol rule
  would take; compare the ``|g|inf`` column).
- ``jaxopt-lbfgs``: ``jax.jit(jaxopt.LBFGS(fun, tol=1e-6).run)``; jaxopt stops when the
  Euclidean norm of the gradient is ``<= tol`` (a little stricter than max-abs).
- ``optax-loop-lbfgs`` / ``optax-loop-adam``: a hand-written ``jax.jit(lax.while_loop(...))``
  around ``optax.lbfgs()`` / ``optax.adam`` updates, stopping on ``max|g| <= 1e-6`` -- what
  a user writes without a solver library.
- ``scipy-lbfgsb``: ``scipy.optimize.minimize(method="L-BFGS-B", jac=True)`` on a numpy
  objective and gradient, ``gtol=1e-6`` (max-abs projected gradient) and ``ftol=1e-15`` (its
  relative-decrease rule, made negligible). No compilation: its first call is its run.

Every solver gets the same ``max_iters`` per problem (and L-BFGS memory 10 everywhere). A run
that stops on ``max_iters`` (Adam with a constant learning rate can hover around the optimum)
says so in ``status``: its waiting time is then that of ``max_iters`` iterations.

Problems (``--problems``): ``small`` = L2-regularised logistic regression 500 x 10 (seeded
data, ``mean(softplus(Xw) - y Xw) + 1e-2 ||w||^2``), ``rosenbrock`` = 2-D Rosenbrock from
(-1.2, 1), ``medium`` = the logistic problem at 50,000 x 200 (slow: a warm call of GD is
seconds).

``lossopt.minimize(..., compile="auto"|"fast"|"optimized")``: with ``--lossopt-compile
auto,fast,optimized`` and a ``minimize`` whose signature has ``compile``, each lossopt case
runs once per mode (labelled ``lossopt GD [fast]``). Without the option lossopt is called
with its defaults. The HLO column of a mode is measured through an outer ``jax.jit``, i.e.
with XLA's default options, so it is the same for every mode; the first-call time is what
shows the mode.

``--features``: what each loop feature costs in compile time. For lossopt GD on the small
problem, fresh processes time ``jax.jit(lambda ...: minimize(...)).lower(...)`` + ``.compile()``
of a minimal run (gtol only, no metrics, record_every=1, momentum 0) and of each feature
turned on alone; the table shows lower+compile seconds (min / median over repeats), HLO lines
and the differences to the minimal run. The outer ``jax.jit`` compiles with XLA's default
options (``compile=`` has no effect there), so these are "optimized" compile times. Reading
the rows: a feature with the minimal run's HLO line count compiled to the same program (its
seconds differ by noise only); ``Optax(adam)`` and ``armijo`` change the solver, so they
measure its update (and, where the solver is monotone or not, lossopt's best-iterate
tracking: fixed-step GD, the minimal run, is not monotone); the ``key`` objective ignores
its key, so that row is the loop's key plumbing only; ``batch_size`` adds the in-loop
shuffling and gathering.

Usage::

    python experiments/benchmarks/bench_first_call.py   # small + rosenbrock, 3 repeats: ~4 min
    python experiments/benchmarks/bench_first_call.py --repeats 5 --problems small,medium \
        --cases gd,newton,optx-bfgs,scipy-lbfgsb --json first_call.json
    python experiments/benchmarks/bench_first_call.py --lossopt-compile auto,fast,optimized
    python experiments/benchmarks/bench_first_call.py --features --repeats 5

How to read it: repeats are interleaved (round-robin over every problem x case, so machine
noise hits all cases alike); each column shows ``min / median`` over repeats. Read ``first``
min as the best case a user sees, and ``x optx`` as the first-call min of the case divided by
optimistix BFGS's first-call min on the same problem in the same run (< 1: the user waits
less than with optimistix). On a shared machine trust the mins more than the medians.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

# Only the standard library at the top: the child must time `import jax` itself.

ROOT = Path(__file__).resolve().parents[2]
RESULT_MARK = "BENCH_FIRST_CALL_RESULT "
GTOL = 1e-6
WARM_BUDGET_S = 5.0

# ---------------------------------------------------------------------------- problems
# Data and reference objective in numpy (float64): the same numbers for every library, and the
# one function that recomputes every case's final loss and gradient.

LAMBDA = 1e-2
PROBLEMS = {
    # name: (kind, n, d, max_iters, GD learning rate, Adam learning rate)
    "small": ("logistic", 500, 10, 5_000, 2.0, 0.05),
    "rosenbrock": ("rosenbrock", None, 2, 50_000, 1e-3, 0.02),
    "medium": ("logistic", 50_000, 200, 1_000, 2.0, 0.05),
}


def problem_data(name):
    """``(x0, args)`` as numpy float64 arrays; ``args`` is what the objective takes after x."""
    import numpy as np

    kind, n, d, *_ = PROBLEMS[name]
    if kind == "rosenbrock":
        return np.array([-1.2, 1.0]), ()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d))
    w_true = 3.0 * rng.standard_normal(d) / np.sqrt(d)
    y = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-X @ w_true))).astype(np.float64)
    return np.zeros(d), (X, y)


def numpy_value_and_grad(name, x, *args):
    """The objective and its gradient in numpy float64 (scipy's case and every final check)."""
    import numpy as np

    x = np.asarray(x, np.float64)
    if PROBLEMS[name][0] == "rosenbrock":
        a, b = x
        value = (1.0 - a) ** 2 + 100.0 * (b - a * a) ** 2
        grad = np.array([-2.0 * (1.0 - a) - 400.0 * a * (b - a * a), 200.0 * (b - a * a)])
        return float(value), grad
    X, y = args
    z = X @ x
    value = np.mean(np.logaddexp(0.0, z) - y * z) + LAMBDA * x @ x
    sigmoid = 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic function
    grad = X.T @ (sigmoid - y) / len(y) + 2.0 * LAMBDA * x
    return float(value), grad


def jax_objective(name):
    """The same objective as a JAX function ``fun(x, *args)``."""
    import jax
    import jax.numpy as jnp

    if PROBLEMS[name][0] == "rosenbrock":
        def rosenbrock(x):
            return (1.0 - x[0]) ** 2 + 100.0 * (x[1] - x[0] ** 2) ** 2
        return rosenbrock

    def logistic(w, X, y):
        z = X @ w
        return jnp.mean(jax.nn.softplus(z) - y * z) + LAMBDA * jnp.sum(w * w)

    return logistic


# ---------------------------------------------------------------------------- cases
# Each builder returns (run, solve, info): `run()` does one full solve the way the library's
# user calls it and returns host values {x, iterations, status}; `solve` is a function of
# (x0, *args) that jax.jit can lower, for the HLO count (None for scipy); `info()` (or None)
# returns extra fields, asked after the timings.


def _lossopt_builder(make_solver):
    def build(problem, fun, x0, args, compile_mode):
        import jax

        import lossopt

        _, _, _, max_iters, lr, adam_lr = PROBLEMS[problem]
        solver = make_solver(lr, adam_lr)
        options = dict(max_iters=max_iters, gtol=GTOL)
        if compile_mode is not None:
            options["compile"] = compile_mode

        def run():
            res = jax.block_until_ready(
                lossopt.minimize(fun, x0, solver, args=args, **options))
            return dict(x=res.best_params, iterations=int(res.iterations),
                        status=lossopt.Status(int(res.status)).name)

        def solve(x0, *args):
            return lossopt.minimize(fun, x0, solver, args=args, **options)

        def info():  # what compile="auto" chose, where this lossopt can say
            if compile_mode not in (None, "auto") or not hasattr(lossopt.solvers,
                                                                  "compile_choice"):
                return {}
            choice = lossopt.solvers.compile_choice(fun, x0, solver, args=args, **options)
            return dict(compile_chosen=choice.mode, compile_reason=choice.reason,
                        compile_estimated_run_s=choice.estimated_run_s)

        return run, solve, info

    return build


def _gd(lr, adam_lr):
    from lossopt.solvers import GradientDescent
    return GradientDescent(learning_rate=lr)


def _gd_momentum(lr, adam_lr):
    from lossopt.solvers import GradientDescent
    return GradientDescent(learning_rate=lr, momentum=0.9)


def _newton(lr, adam_lr):
    from lossopt.solvers import Newton
    return Newton()


def _newton_cg(lr, adam_lr):
    from lossopt.solvers import Newton
    return Newton(linear_solver="cg")


def _optax_lbfgs(lr, adam_lr):
    import optax

    from lossopt.solvers import Optax
    return Optax(optax.lbfgs())


def _optax_adam(lr, adam_lr):
    import optax

    from lossopt.solvers import Optax
    return Optax(optax.adam(adam_lr))


def _subgradient(lr, adam_lr):
    from lossopt.solvers import Subgradient
    return Subgradient(step_size=lr, schedule="constant")


def _lbfgs(lr, adam_lr):
    from lossopt.solvers import LBFGS
    return LBFGS()


def _build_optx_bfgs(problem, fun, x0, args, compile_mode):
    import jax
    import optimistix as optx

    max_iters = PROBLEMS[problem][3]
    solver = optx.BFGS(rtol=1e-8, atol=1e-8)

    def fn(x, args):  # optimistix's objective signature: fn(y, args)
        return fun(x, *args)

    def solve(x0, *args):
        sol = optx.minimise(fn, solver, x0, args, max_steps=max_iters, throw=False)
        return sol.value, sol.stats["num_steps"], sol.result == optx.RESULTS.successful

    def run():
        x, steps, ok = jax.block_until_ready(solve(x0, *args))  # optx.minimise is filter_jit
        return dict(x=x, iterations=int(steps), status="successful" if ok else "not converged")

    return run, solve, None


def _build_jaxopt_lbfgs(problem, fun, x0, args, compile_mode):
    import jax
    import jaxopt

    max_iters = PROBLEMS[problem][3]
    solver = jaxopt.LBFGS(fun=fun, tol=GTOL, maxiter=max_iters, history_size=10)
    jitted = jax.jit(solver.run)

    def solve(x0, *args):
        return solver.run(x0, *args)

    def run():
        x, state = jax.block_until_ready(jitted(x0, *args))
        converged = float(state.error) <= GTOL
        return dict(x=x, iterations=int(state.iter_num),
                    status="converged" if converged else "not converged")

    return run, solve, None


def _optax_loop_builder(kind):
    def build(problem, fun, x0, args, compile_mode):
        import jax
        import jax.numpy as jnp
        import optax
        from jax import lax

        max_iters, adam_lr = PROBLEMS[problem][3], PROBLEMS[problem][5]
        opt = optax.lbfgs() if kind == "lbfgs" else optax.adam(adam_lr)

        def solve(x0, *args):
            f = lambda x: fun(x, *args)  # noqa: E731
            # L-BFGS's line search leaves the new point's value and gradient in its state.
            value_and_grad = (optax.value_and_grad_from_state(f) if kind == "lbfgs"
                              else lambda x, state: jax.value_and_grad(f)(x))

            def cond(carry):
                _, _, k, _, g = carry
                return (k < max_iters) & (jnp.max(jnp.abs(g)) > GTOL)

            def body(carry):
                x, state, k, value, g = carry
                updates, state = opt.update(g, state, x, value=value, grad=g, value_fn=f)
                x = optax.apply_updates(x, updates)
                value, g = value_and_grad(x, state=state)
                return x, state, k + 1, value, g

            state = opt.init(x0)
            value, g = value_and_grad(x0, state=state)
            x, _, k, _, g = lax.while_loop(cond, body, (x0, state, 0, value, g))
            return x, k, jnp.max(jnp.abs(g)) <= GTOL

        jitted = jax.jit(solve)

        def run():
            x, k, ok = jax.block_until_ready(jitted(x0, *args))
            return dict(x=x, iterations=int(k), status="converged" if ok else "max_iters")

        return run, solve, None

    return build


def _build_scipy(problem, fun, x0, args, compile_mode):
    import scipy.optimize

    max_iters = PROBLEMS[problem][3]

    def value_and_grad(x):
        return numpy_value_and_grad(problem, x, *args)

    def run():
        res = scipy.optimize.minimize(
            value_and_grad, x0, jac=True, method="L-BFGS-B",
            options=dict(gtol=GTOL, ftol=1e-15, maxiter=max_iters, maxcor=10))
        return dict(x=res.x, iterations=int(res.nit),
                    status="converged" if res.success else res.message)

    return run, None, None


# key: (label, library modules timed by `import`, builder, is a lossopt case)
CASES = {
    "gd": ("lossopt GD", ("jax", "lossopt"), _lossopt_builder(_gd), True),
    "gd-momentum": ("lossopt GD momentum", ("jax", "lossopt"), _lossopt_builder(_gd_momentum),
                    True),
    "newton": ("lossopt Newton", ("jax", "lossopt"), _lossopt_builder(_newton), True),
    "newton-cg": ("lossopt Newton-CG", ("jax", "lossopt"), _lossopt_builder(_newton_cg), True),
    "optax-lbfgs": ("lossopt Optax(lbfgs)", ("jax", "lossopt", "optax"),
                    _lossopt_builder(_optax_lbfgs), True),
    "optax-adam": ("lossopt Optax(adam)", ("jax", "lossopt", "optax"),
                   _lossopt_builder(_optax_adam), True),
    "subgradient": ("lossopt Subgradient", ("jax", "lossopt"), _lossopt_builder(_subgradient),
                    True),
    "lbfgs": ("lossopt LBFGS", ("jax", "lossopt"), _lossopt_builder(_lbfgs), True),
    "optx-bfgs": ("optimistix BFGS", ("jax", "optimistix"), _build_optx_bfgs, False),
    "jaxopt-lbfgs": ("jaxopt LBFGS", ("jax", "jaxopt"), _build_jaxopt_lbfgs, False),
    "optax-loop-lbfgs": ("optax loop (lbfgs)", ("jax", "optax"), _optax_loop_builder("lbfgs"),
                         False),
    "optax-loop-adam": ("optax loop (adam)", ("jax", "optax"), _optax_loop_builder("adam"),
                        False),
    "scipy-lbfgsb": ("scipy L-BFGS-B", ("numpy", "scipy.optimize"), _build_scipy, False),
}
BASELINE = "optx-bfgs"

# ---------------------------------------------------------------------------- --features
# Each feature: the minimize options (and solver) it changes from the minimal run.

FEATURES = ("minimal", "ftol", "xtol", "metric", "record_every=10", "momentum=0.9",
            "armijo", "key", "batch_size=50", "Optax(adam)")


def _feature_call(feature, fun):
    """``solve(x0, X, y, Xv, yv)``: minimize on the small problem with ``feature`` turned on."""
    import jax
    import optax

    import lossopt
    from lossopt.solvers import GradientDescent, Optax

    _, _, _, max_iters, lr, adam_lr = PROBLEMS["small"]
    solver = GradientDescent(learning_rate=lr)
    options = dict(max_iters=max_iters, gtol=GTOL)  # ftol = xtol = 0: their rules compile out
    objective = fun
    if feature == "ftol":
        options["ftol"] = 1e-12
    elif feature == "xtol":
        options["xtol"] = 1e-12
    elif feature == "record_every=10":
        options["record_every"] = 10
    elif feature == "momentum=0.9":
        solver = GradientDescent(learning_rate=lr, momentum=0.9)
    elif feature == "armijo":
        solver = GradientDescent(learning_rate=lr, line_search="armijo")
    elif feature == "key":
        def objective(w, X, y, *, key):
            del key  # unused: the row measures the loop's key plumbing, not random numbers
            return fun(w, X, y)
        options["key"] = jax.random.key(0)
    elif feature == "batch_size=50":
        options["batch_size"] = 50
    elif feature == "Optax(adam)":
        solver = Optax(optax.adam(adam_lr))
    elif feature not in ("metric", "minimal"):
        raise ValueError(f"unknown feature {feature!r}; choose from {FEATURES}")

    def solve(x0, X, y, Xv, yv):
        extra = {}
        if feature == "metric":
            extra = dict(metrics={"val_loss": fun}, metric_args=(Xv, yv))
        return lossopt.minimize(objective, x0, solver, args=(X, y), **options, **extra)

    return solve


# ---------------------------------------------------------------------------- the child


def _timed_imports(modules):
    import importlib

    t0 = time.perf_counter()
    for name in modules:
        importlib.import_module(name)
    return time.perf_counter() - t0


def _count_hlo_lines(solve, x0, args):
    import jax

    return len(jax.jit(solve).lower(x0, *args).compile().as_text().splitlines())


def _environment():
    info = {"python": platform.python_version()}
    if "jax" in sys.modules:
        import jax
        info.update(jax=jax.__version__, backend=jax.default_backend(),
                    x64=bool(jax.config.jax_enable_x64),
                    compilation_cache_dir=jax.config.jax_compilation_cache_dir)
    return info


def child_case(spec):
    """Run one case of the main benchmark in this (fresh) process; return its record."""
    import numpy as np

    label, modules, build, _ = CASES[spec["case"]]
    problem = spec["problem"]
    record = dict(spec, label=label)
    record["import_s"] = _timed_imports(modules)

    t0 = time.perf_counter()
    x0_np, args_np = problem_data(problem)
    if modules[0] == "jax":
        import jax
        import jax.numpy as jnp
        x0, args = jax.block_until_ready((jnp.asarray(x0_np), tuple(map(jnp.asarray, args_np))))
        fun = jax_objective(problem)
    else:
        x0, args, fun = x0_np, args_np, None
    if spec["case"] == "lbfgs":
        import lossopt.solvers
        if not hasattr(lossopt.solvers, "LBFGS"):
            return dict(record, error="lossopt.solvers has no LBFGS", skipped=True)
    run, solve, info = build(problem, fun, x0, args, spec.get("compile"))
    record["setup_s"] = time.perf_counter() - t0

    gc_time = _GcTime()
    t0 = time.perf_counter()
    out = run()
    record["first_s"] = time.perf_counter() - t0
    record["first_gc_s"] = gc_time.stop()
    warm = []
    while len(warm) < spec["warm"] and sum(warm) < WARM_BUDGET_S:
        t0 = time.perf_counter()
        run()
        warm.append(time.perf_counter() - t0)
    record["warm_s"] = min(warm) if warm else None

    value, grad = numpy_value_and_grad(problem, out["x"], *args_np)
    record.update(iterations=out["iterations"], status=out["status"], final_loss=value,
                  grad_inf=float(np.max(np.abs(grad))))
    if spec.get("hlo") and solve is not None:
        try:
            record["hlo_lines"] = _count_hlo_lines(solve, x0, args)
        except Exception as exc:  # reported in the table; the timings stand
            record["hlo_error"] = f"{type(exc).__name__}: {exc}"
    if info is not None:
        try:
            record.update(info())
        except Exception as exc:
            record["info_error"] = f"{type(exc).__name__}: {exc}"
    record["env"] = _environment()
    return record


def child_feature(spec):
    """Lower and compile lossopt GD on the small problem with one feature; return its record."""
    record = dict(spec, import_s=_timed_imports(("jax", "lossopt", "optax")))
    import jax
    import jax.numpy as jnp
    import numpy as np

    x0_np, (X, y) = problem_data("small")
    rng = np.random.default_rng(1)  # validation data for the metric (its shapes are what count)
    Xv = rng.standard_normal(X.shape)
    yv = (rng.uniform(size=len(y)) < 0.5).astype(float)
    data = jax.block_until_ready(tuple(jnp.asarray(a) for a in (x0_np, X, y, Xv, yv)))
    solve = _feature_call(spec["feature"], jax_objective("small"))
    t0 = time.perf_counter()
    lowered = jax.jit(solve).lower(*data)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    record.update(lower_s=t1 - t0, compile_s=t2 - t1, total_s=t2 - t0,
                  hlo_lines=len(compiled.as_text().splitlines()))
    res = jax.block_until_ready(compiled(*data))  # it runs (not timed)
    record.update(iterations=int(res.iterations), env=_environment())
    return record


def child_probe(spec):
    """Import every library (warming the file cache); report what this lossopt offers."""
    import importlib.metadata
    import inspect

    import jax  # noqa: F401
    import jaxopt  # noqa: F401
    import optax  # noqa: F401
    import optimistix  # noqa: F401
    import scipy.optimize  # noqa: F401

    import lossopt
    import lossopt.solvers

    compile_param = inspect.signature(lossopt.minimize).parameters.get("compile")
    return dict(
        has_lbfgs=hasattr(lossopt.solvers, "LBFGS"),
        has_compile=compile_param is not None,
        compile_default=None if compile_param is None else repr(compile_param.default),
        versions={name: importlib.metadata.version(name)
                  for name in ("lossopt", "optax", "optimistix", "jaxopt", "scipy")},
        env=_environment(),
    )


class _GcTime:
    """Seconds Python's garbage collector runs from now until ``stop()`` (``gc.callbacks``)."""

    def __init__(self):
        import gc

        self.total, self.started = 0.0, None
        self.gc = gc
        gc.callbacks.append(self._callback)

    def _callback(self, phase, info):
        if phase == "start":
            self.started = time.perf_counter()
        elif self.started is not None:
            self.total += time.perf_counter() - self.started

    def stop(self):
        self.gc.callbacks.remove(self._callback)
        return self.total


def _child_main(spec_json):
    os.environ["JAX_ENABLE_X64"] = "1"  # also when a child is started by hand (run_child sets it)
    spec = json.loads(spec_json)
    handler = {"case": child_case, "feature": child_feature, "probe": child_probe}[spec["mode"]]
    print(RESULT_MARK + json.dumps(handler(spec)), flush=True)


# ---------------------------------------------------------------------------- the parent


def child_env():
    """This process's environment without any persistent compilation cache, in float64."""
    env = dict(os.environ)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env.pop("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", None)
    env["LOSSOPT_CACHE_DIR"] = ""
    env["JAX_ENABLE_X64"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_child(spec, timeout=900):
    """Run ``spec`` in a fresh Python process; return its record (``error`` set on failure).

    ``spec`` is ``{"mode": "case", "case": key, "problem": name, "warm": N, "hlo": bool,
    "compile": None | mode}``, ``{"mode": "feature", "feature": name}`` or
    ``{"mode": "probe"}``.
    """
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(command, env=child_env(), capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return dict(spec, error=f"timed out after {timeout} s")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            record = json.loads(line[len(RESULT_MARK):])
            record["process_s"] = time.perf_counter() - t0
            return record
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return dict(spec, error=f"exit {proc.returncode}: " + " | ".join(tail))


def _min_med(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return dict(min=min(values), median=statistics.median(values), n=len(values))


def aggregate(records, group_keys, fields):
    """Group child records by ``group_keys``; min/median of each timing field per group.

    Returns ``{group: {"records": [...], field: {"min", "median", "n"} or None, "last": the
    last successful record (iterations, loss, HLO ...), "errors": [...]}}`` in first-seen
    order.
    """
    groups = {}
    for record in records:
        key = tuple(record.get(k) for k in group_keys)
        groups.setdefault(key, []).append(record)
    out = {}
    for key, rs in groups.items():
        ok = [r for r in rs if "error" not in r]
        entry = {"records": rs, "errors": sorted({r["error"] for r in rs if "error" in r})}
        for field in fields:
            entry[field] = _min_med([r.get(field) for r in ok])
        with_hlo = [r for r in ok if "hlo_lines" in r or "hlo_error" in r]
        entry["last"] = (with_hlo or ok or [{}])[-1]
        out[key] = entry
    return out


def _seconds(x):
    return f"{x:.2f}" if x >= 0.995 else f"{x:#.3g}"


def _fmt_time(stat):
    if stat is None:
        return "-"
    return f"{_seconds(stat['min'])} / {_seconds(stat['median'])}"


def print_table(header, rows):
    """Plain aligned text: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]

    def line(cells):
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def case_plan(case_keys, problems, compile_modes, probe):
    """The (problem, case, compile mode) list for one repeat, in the order they run."""
    plan = []
    for problem in problems:
        for key in case_keys:
            if key == "lbfgs" and not probe.get("has_lbfgs"):
                continue
            lossopt_case = CASES[key][3]
            modes = compile_modes if (lossopt_case and compile_modes
                                      and probe.get("has_compile")) else [None]
            for mode in modes:
                plan.append((problem, key, mode))
    return plan


def run_cases(case_keys, problems, repeats, compile_modes, warm, probe, log=print):
    plan = case_plan(case_keys, problems, compile_modes, probe)
    records = []
    for r in range(repeats):  # round-robin: one child per case, then the next repeat
        for problem, key, mode in plan:
            spec = dict(mode="case", case=key, problem=problem, compile=mode, warm=warm,
                        hlo=(r == 0), repeat=r)
            record = run_child(spec)
            records.append(record)
            status = record.get("error") or f"first {record['first_s']:.2f} s"
            log(f"  [{r + 1}/{repeats}] {problem:10s} {_case_label(key, mode):28s} {status}",
                file=sys.stderr)
    return records


def _case_label(key, mode):
    return CASES[key][0] + (f" [{mode}]" if mode else "")


def report_cases(records, problems):
    """Print one table per problem; return the per-case summary (min/median, the last record)."""
    groups = aggregate(records, ("problem", "case", "compile"),
                       ("import_s", "first_s", "first_gc_s", "warm_s", "process_s"))
    summary = []
    for problem in problems:
        kind, n, d, max_iters, *_ = PROBLEMS[problem]
        shape = "2-D" if kind == "rosenbrock" else f"{n} x {d}"
        print(f"\n## {problem}: {kind} {shape}, gtol {GTOL:g}, max_iters {max_iters} "
              "(seconds, min / median over repeats)\n")
        base = groups.get((problem, BASELINE, None), {}).get("first_s")
        rows, notes = [], []
        for (p, key, mode), g in groups.items():
            if p != problem:
                continue
            label, last = _case_label(key, mode), g["last"]
            ratio = g["first_s"]["min"] / base["min"] if base and g["first_s"] else None
            summary.append(dict(
                problem=problem, case=key, compile=mode, label=label, ratio_to_optx=ratio,
                **{f: g[f] for f in ("import_s", "first_s", "first_gc_s", "warm_s",
                                     "process_s")},
                **{f: last.get(f) for f in ("compile_chosen", "hlo_lines", "hlo_error",
                                            "iterations", "final_loss", "grad_inf",
                                            "status")},
                errors=g["errors"]))
            notes += [f"  {label}: {e[:300]}" for e in g["errors"]]
            if last.get("hlo_error"):
                notes.append(f"  {label}, HLO: {last['hlo_error'][:300]}")
            if not g["first_s"]:
                rows.append([label, *["-"] * 10, "FAILED (below)"])
                continue
            rows.append([
                label, _fmt_time(g["import_s"]), _fmt_time(g["first_s"]),
                _fmt_time(g["first_gc_s"]) if g.get("first_gc_s") else "-", _fmt_time(g["warm_s"]),
                "-" if ratio is None else f"{ratio:.2f}", last.get("compile_chosen", "-"),
                last.get("hlo_lines", "err" if "hlo_error" in last else "-"),
                last["iterations"], f"{last['final_loss']:.10g}", f"{last['grad_inf']:.1e}",
                last["status"],
            ])
        print_table(["case", "import", "first call", "of it GC", "warm", "x optx", "XLA",
                     "HLO lines",
                     "iters", "final loss", "|g|inf", "status"], rows)
        if notes:
            print("errors:\n" + "\n".join(notes))
    return summary


def run_features(features, repeats, log=print):
    records = []
    for r in range(repeats):
        for feature in features:
            record = run_child(dict(mode="feature", feature=feature, repeat=r))
            records.append(record)
            status = record.get("error") or f"lower+compile {record['total_s']:.2f} s"
            log(f"  [{r + 1}/{repeats}] {feature:16s} {status}", file=sys.stderr)
    return records


def report_features(records):
    groups = aggregate(records, ("feature",), ("lower_s", "compile_s", "total_s"))
    base = groups.get(("minimal",))
    base_total = base["total_s"]["min"] if base and base["total_s"] else None
    base_hlo = base["last"].get("hlo_lines") if base else None
    max_iters = PROBLEMS["small"][3]
    print(f"\n## What each loop feature costs: lossopt GD on small (500 x 10 logistic), "
          f"max_iters {max_iters}, jax.jit(...).lower().compile() in fresh processes "
          "(seconds, min / median)\n")
    rows, summary = [], []
    for (feature,), g in groups.items():
        last = g["last"]
        if not g["total_s"]:
            rows.append([feature, "-", "-", "-", "-", "-", "FAILED: " + g["errors"][0][:60]])
            continue
        hlo = last.get("hlo_lines")
        d_s = g["total_s"]["min"] - base_total if base_total is not None else None
        d_hlo = hlo - base_hlo if base_hlo is not None else None
        rows.append([feature, _fmt_time(g["lower_s"]), _fmt_time(g["compile_s"]),
                     _fmt_time(g["total_s"]), hlo,
                     "-" if d_s is None else f"{d_s:+.2f}",
                     "-" if d_hlo is None else f"{d_hlo:+d}"])
        summary.append(dict(feature=feature, lower_s=g["lower_s"], compile_s=g["compile_s"],
                            total_s=g["total_s"], hlo_lines=hlo, delta_total_min_s=d_s,
                            delta_hlo_lines=d_hlo, iterations=last.get("iterations"),
                            errors=g["errors"]))
    print_table(["feature", "trace+lower", "XLA compile", "lower+compile", "HLO lines",
                 "d compile (min)", "d HLO lines"], rows)
    return summary


def _split(text):
    return [t.strip() for t in text.split(",") if t.strip()]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _child_main(argv[1])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default="small,rosenbrock",
                        help=f"comma separated, from {', '.join(PROBLEMS)}")
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma separated, from {', '.join(CASES)}")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per case")
    parser.add_argument("--warm", type=int, default=5, help="warm calls per process (max)")
    parser.add_argument("--lossopt-compile", default=None,
                        help="comma separated minimize(compile=...) modes for lossopt cases, "
                             "e.g. auto,fast,optimized (default: minimize's own default)")
    parser.add_argument("--features", action="store_true",
                        help="the compile cost of each loop feature instead of the cases")
    parser.add_argument("--feature-list", default=",".join(FEATURES),
                        help=f"with --features: comma separated, from {', '.join(FEATURES)}")
    parser.add_argument("--json", default=None, help="write the raw numbers to this path")
    a = parser.parse_args(argv)

    problems, case_keys = _split(a.problems), _split(a.cases)
    for name, known, what in ((problems, PROBLEMS, "problem"), (case_keys, CASES, "case")):
        unknown = [x for x in name if x not in known]
        if unknown:
            parser.error(f"unknown {what}(s) {unknown}; choose from {list(known)}")
    compile_modes = _split(a.lossopt_compile) if a.lossopt_compile else []

    probe = run_child(dict(mode="probe"))
    if "error" in probe:
        print(f"probe process failed: {probe['error']}", file=sys.stderr)
        return 1
    env = probe["env"]
    print(f"date: {datetime.datetime.now().isoformat(timespec='minutes')}; "
          f"machine: {platform.platform()}, {os.cpu_count()} CPUs; load average at start: "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"children: python {env['python']}, JAX {env['jax']} on {env['backend']}, "
          f"x64={env['x64']}, compilation cache dir={env['compilation_cache_dir']}, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; "
          + ", ".join(f"{k} {v}" for k, v in probe["versions"].items()))
    print(f"lossopt.solvers.LBFGS: {'present' if probe['has_lbfgs'] else 'absent (skipped)'}; "
          f"minimize(compile=...): "
          + (f"present (default {probe['compile_default']})" if probe["has_compile"]
             else "absent" + (" -- --lossopt-compile ignored" if compile_modes else "")))

    out = dict(probe=probe, argv=argv, repeats=a.repeats)
    if a.features:
        features = _split(a.feature_list)
        unknown = [f for f in features if f not in FEATURES]
        if unknown:
            parser.error(f"unknown feature(s) {unknown}; choose from {list(FEATURES)}")
        if "minimal" not in features:
            features.insert(0, "minimal")
        records = run_features(features, a.repeats)
        out.update(records=records, summary=report_features(records))
    else:
        records = run_cases(case_keys, problems, a.repeats, compile_modes, a.warm, probe)
        out.update(records=records, summary=report_cases(records, problems))
    print(f"\nload average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1, default=str))
        print(f"raw numbers: {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
