"""``minimize``: the one compiled loop that drives every solver; ``sweep``: a vmapped grid of it."""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lossopt._functions import Function
from lossopt._pytree import PyTree
from lossopt._validation import check_nonnegative, concrete_value, describe
from lossopt.distributed import as_auto_axes
from lossopt.solvers import _implicit, _loop
from lossopt.solvers._chunked import Progress, run_chunked
from lossopt.solvers._compile import CompileChoice, Entry, check_mode
from lossopt.solvers._implicit import Implicit, Unroll
from lossopt.solvers._loop import Loop
from lossopt.solvers._protocol import Solver
from lossopt.solvers._result import Result, host_result
from lossopt.solvers._spec import LoopInputs, LoopSpec

__all__ = ["compile_choice", "minimize", "sweep"]

_RESERVED = ("iteration", "loss", "grad_norm", "step_size")
_LONG_RUN_OPTIONS = ("progress", "chunk_size", "checkpoint_dir", "checkpoint_every", "resume")


def minimize(
    fun: Callable[..., Any],
    init_params: PyTree,
    solver: Solver,
    *,
    args: tuple[Any, ...] = (),
    max_iters: int = 1000,
    gtol: ArrayLike = 1e-6,
    ftol: ArrayLike = 0.0,
    xtol: ArrayLike = 0.0,
    metrics: Mapping[str, Callable[..., Any]] | None = None,
    metric_args: tuple[Any, ...] = (),
    record_every: int = 1,
    key: jax.Array | None = None,
    batch_size: int | None = None,
    max_epochs: int | None = None,
    progress: bool | Callable[[Progress], Any] = False,
    chunk_size: int | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 40,
    resume: bool = False,
    compile: str = "auto",
    differentiate: str | Implicit | Unroll = "implicit",
) -> Result:
    """Minimise ``fun(params, *args)`` with ``solver`` in one compiled ``lax.while_loop``.

    The whole solve -- every step, stopping test and trace write -- runs inside one
    ``jax.jit``-compiled ``lax.while_loop``: no host round trip per iteration. ``minimize`` can
    itself be called inside ``jax.jit`` and ``jax.vmap`` (see :func:`sweep`).

    Stopping rules, tested after every accepted step ``x_k -> x_{k+1}`` (``f`` the objective,
    ``g`` its gradient); each tolerance set to 0 disables its rule, and every comparison is
    written so that a NaN fails it:

    - ``gtol`` (status ``CONVERGED``): ``max_i |g_i(x_{k+1})| <= gtol`` -- the max-abs norm,
      scikit-learn's convention. Also tested at the initial point (0 iterations).
    - ``ftol`` (``CONVERGED_FTOL``): ``|f_k - f_{k+1}| <= ftol * max(|f_k|, |f_{k+1}|, tiny)``.
    - ``xtol`` (``CONVERGED_XTOL``): ``||x_{k+1} - x_k||_2 <= xtol * (||x_{k+1}||_2 + xtol)``.
    - ``max_iters`` (``MAX_ITERS``): ``k + 1 == max_iters``.
    - A NaN or Inf in the new loss, gradient or parameters (``NONFINITE``): the step is
      discarded and the last finite iterate, its trace and its counts are returned.
    - A line search that finds no sufficient decrease (``LINE_SEARCH_FAILED``): likewise.

    If several rules fire on the same step the first in the order ``LINE_SEARCH_FAILED``,
    ``NONFINITE``, ``CONVERGED``, ``CONVERGED_FTOL``, ``CONVERGED_XTOL``, ``MAX_ITERS`` wins.

    Compilation is cached on what ``fun`` computes -- its code and the values it reads (what it
    closes over, its defaults, the module-level names its code uses; see below) -- the metric
    callables and names, ``max_iters``, ``record_every``, the solver's static fields and the
    shapes/dtypes of everything else. Data in ``args``, numeric solver hyperparameters and
    the tolerances are traced, so new data of the same shape, a new learning rate or a new
    ``gtol`` reuse the compiled loop. A ``lambda`` re-created in a loop or a notebook cell
    with the same code and equal closed-over values (numbers, strings, small numpy arrays by
    value; JAX arrays and other objects by identity) reuses the loop compiled for the first
    one; a changed global constant that ``fun`` reads compiles anew (``jax.jit`` would reuse
    the stale value). State read through an object's attributes (a callable object's
    ``self.scale``) is keyed on the object's identity only.

    How hard XLA optimises the loop is ``compile``'s choice (see "Compile time" below).

    Under ``jax.vmap`` each lane stops on its own rule: ``lax.while_loop`` then runs until
    every lane has stopped and freezes the finished lanes (their params, counters and traces
    keep the values they stopped with; JAX's batching of a loop with a batched predicate
    selects the old carry for those lanes).

    Args:
        fun: ``fun(params, *args) -> scalar``, a JAX-traceable objective.
        init_params: the starting point, any pytree of floating arrays (its dtype sets the
            precision of the solve).
        solver: a solver from :mod:`lossopt.solvers` (``GradientDescent``, ``Newton``,
            ``Subgradient``, ``Optax``), or any object with the same ``init``/``step``/
            ``monotone`` protocol.
        args: extra positional arguments for ``fun`` (the data); a tuple.
        max_iters: maximum number of iterations (>= 0, static: it sizes the trace).
        gtol, ftol, xtol: tolerances (>= 0) of the rules above.
        metrics: ``{name: metric}`` with ``metric(params, *metric_args) -> scalar``, evaluated
            every ``record_every`` iterations into ``result.trace.metrics[name]`` (e.g. a
            validation loss). Pass validation data in ``metric_args`` to avoid baking it into
            the compiled program.
        metric_args: extra positional arguments for every metric; a tuple.
        record_every: record the trace every this many iterations (>= 1, static).
        key: a PRNG key (``jax.random.key(seed)``) for a stochastic objective. Then ``fun`` is
            called as ``fun(params, *args, key=k)`` with ``k = jax.random.fold_in(key, i)`` on
            iteration ``i`` (the initial point is evaluated with ``i = 0``): a fresh key every
            iteration, the same key for every line-search trial of one iteration, and the same
            run for the same key. Metrics are called without a key (evaluation mode). Under
            ``jax.vmap`` over keys each lane draws its own keys. ``None`` (the default) calls
            ``fun(params, *args)`` and compiles nothing extra into the loop.
        batch_size: minibatch size (>= 1, static). Each iteration then evaluates ``fun`` on
            ``batch_size`` rows drawn along axis 0 of every array in ``args`` (all must share
            the leading size ``n`` >= ``batch_size``): without replacement within an epoch and
            reshuffled each epoch, inside the compiled loop. An epoch is ``n // batch_size``
            steps; the last ``n % batch_size`` rows of each epoch's permutation are dropped
            (different rows each epoch). The shuffle of epoch ``e`` is a permutation from
            ``fold_in(fold_in(key, 2^32 - 1), e)``, so it is independent of the keys ``fun``
            receives; without ``key`` the shuffle uses ``jax.random.key(0)`` and ``fun`` gets
            no key.
        max_epochs: with ``batch_size``, stop after this many epochs (>= 0, static): the
            iteration cap is ``min(max_iters, max_epochs * (n // batch_size))``. Without
            ``batch_size`` an epoch is one iteration.
        progress: ``True`` draws a progress bar on stderr (rich: iterations, loss, gradient
            norm, it/s, elapsed and remaining time); a callable is called instead with a
            :class:`~lossopt.solvers.Progress` after every chunk (for logging, or to stop the
            run by raising ``KeyboardInterrupt``). Either runs the loop in chunks (below).
        chunk_size: iterations per compiled chunk (>= 1). ``None`` (the default) adapts it
            so that each chunk takes about 0.25 s (1000 in a multi-process run, where every
            process must run the same chunks). Giving it alone also runs chunked.
        checkpoint_dir: a folder; the loop then runs in chunks and writes
            ``checkpoint_dir/checkpoint.npz`` every ``checkpoint_every`` chunks, on Ctrl-C
            and at the end (atomically: a reader sees the old file or the new one, never a
            partial one). It holds the parameters, the solver state, the trace so far, the
            counters and the PRNG position (iteration number and epoch permutation), with a
            fingerprint of the run. In a multi-process run, process 0 writes it (use a
            folder every process can read).
        checkpoint_every: chunks between checkpoints (>= 1; with adaptive chunks, 40 chunks
            are about 10 s).
        resume: with ``checkpoint_dir``, continue from its checkpoint when there is one (and
            start afresh when there is none). The checkpoint's fingerprint must match this
            call -- the objective's name and the numbers it closes over, the solver and its
            hyperparameters (an optax optimizer's closed-over ones included), the stopping
            tolerances, the shapes of the parameters and data, and the key -- or a
            ``ValueError`` names what differs. The objective is compared by its code and the
            values it reads (closed-over values, defaults, the module-level names its code
            uses), so an edited body or a changed global constant is a different run. Pass
            the same data: of arrays with more than 64 elements only the shapes are checked.
            A resumed run reproduces the uninterrupted one bit for bit. ``max_iters`` (and
            ``max_epochs``) may grow: a run that stopped on its budget continues to the new
            one and equals the run made with the larger budget from the start (every
            solver's step is independent of the budget; an optax schedule built from a total
            step count is part of the optimizer and resumes as it was built). A checkpoint
            past a smaller ``max_iters`` is refused.
        differentiate: how ``jax.grad``/``jax.jvp``/``jax.jacrev`` of anything computed from
            the result see it as a function of ``args`` (static). ``"implicit"`` (default,
            or :class:`~lossopt.solvers.Implicit` with options): the implicit function
            theorem at the solution, ``dx*/dargs = -H^{-1} d_args grad_x f``, and the
            envelope theorem for ``value``; NaN when the solve did not converge or the
            Hessian is not positive definite. ``"unroll"`` (or
            :class:`~lossopt.solvers.Unroll`): reverse mode through the iterations that ran.
            A call that is not differentiated runs and compiles the same loop either way
            (``"unroll"`` compiles a scan once tracers reach it). See
            ``docs/differentiating.md``.

    Long runs: with ``progress``, ``chunk_size`` or ``checkpoint_dir`` the host drives the
    loop in compiled chunks -- one compilation for the initial point, one for a chunk of any
    length, one for the result -- and reads four scalars between chunks. Each chunk runs the
    same loop body as the one-call solve, so the result is bit-identical to it; the host round
    trip per chunk costs well under 1% with adaptive chunks (``experiments/benchmarks/
    bench_chunking.py``). Ctrl-C stops the loop when the running chunk ends (a second Ctrl-C,
    or a ``KeyboardInterrupt`` raised by a ``progress`` callback, stops it at once and drops the
    unfinished chunk), writes a final checkpoint, and returns a partial result with status
    ``INTERRUPTED``. These options need concrete inputs: they raise ``TypeError`` inside
    ``jax.jit`` or ``jax.vmap``, and :func:`sweep` does not take them.

    With ``key`` or ``batch_size`` every quantity the loop sees is a minibatch one: iteration
    ``i``'s step uses objective ``f_i`` (minibatch ``i``, key ``i``), and the new iterate is
    then evaluated on ``f_{i+1}``, which the next step needs. That value and gradient are what
    the trace records (``loss``: the minibatch loss of each iterate on the minibatch it is
    about to step on), what ``result.value``/``grad_norm`` report and what the ``gtol``/``ftol``
    rules and the NONFINITE check test: stochastic quantities, so ``gtol`` rarely fires; set
    ``gtol=0`` and bound the run with ``max_epochs``, and use ``metrics`` (e.g. the full
    training or validation loss via ``metric_args``, every ``record_every`` steps) to monitor
    it. The solver's own evaluation of the new point on the old minibatch is unused (compiled
    away) and the re-evaluation stands in for it in ``num_fun_evals``/``num_grad_evals``.

    Compile time: a small problem's solve runs in milliseconds but compiles in seconds at
    XLA's full optimisation, so ``compile`` chooses:

    - ``"auto"`` (default): ``"fast"`` when XLA's cost estimate of the loop, taken as if all
      ``max_iters`` iterations ran, is at most 0.25 s; ``"optimized"`` otherwise (large
      problems never run slower than under plain ``jax.jit``). Decided once per compiled
      program; :func:`~lossopt.solvers.compile_choice` says what it chooses and why.
    - ``"fast"``: XLA:CPU with a cheap backend pipeline (about 3x less compile time; the
      compiled code runs 2-5x slower). Same operations, so results agree with
      ``"optimized"`` to rounding. On GPU/TPU it is ``"optimized"``. A small solve called
      thousands of times in a Python loop is better compiled ``"optimized"`` (or batched
      with ``jax.vmap``/:func:`sweep`).
    - ``"optimized"``: XLA's defaults.

    Inside an outer ``jax.jit``/``jax.vmap`` the caller's compile applies and ``compile`` has
    no effect. Measured trade-offs: ``experiments/benchmarks/RESULTS.md``.

    Returns:
        A :class:`~lossopt.Result` (params in ``init_params``'s structure, status, trace and
        evaluation counts).

    Raises:
        TypeError: ``args``/``metric_args`` not tuples, non-floating ``init_params``, a
            non-callable metric, an object that is not a solver, a ``key`` that is not a PRNG
            key, or (while tracing) a ``fun`` that does not return a real scalar.
        ValueError: a negative tolerance, ``max_iters < 0``, ``record_every < 1``, a metric
            name that collides with a trace column, ``batch_size < 1``, ``batch_size`` larger
            than the number of examples, arrays in ``args`` without a common leading size
            (with ``batch_size``), ``max_epochs < 0``, ``chunk_size < 1``,
            ``checkpoint_every < 1``, ``resume`` without ``checkpoint_dir``, or a checkpoint
            written by a different run.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import lossopt
        >>> from lossopt.solvers import GradientDescent
        >>> def objective(w, X, y):
        ...     return lossopt.losses.mse(X @ w, y)
        >>> X = jax.random.normal(jax.random.key(0), (50, 3))
        >>> y = X @ jnp.array([1.0, -2.0, 0.5])
        >>> res = lossopt.minimize(objective, jnp.zeros(3), GradientDescent(learning_rate=0.2),
        ...                        args=(X, y), gtol=1e-5)
        >>> print(jnp.round(res.params, 3), res.status.name, res.converged)
        [ 1.  -2.   0.5] CONVERGED True
        >>> res  # doctest: +ELLIPSIS
        Result(status=CONVERGED, iterations=..., value=..., grad_norm=...)
        >>> len(res.trace["loss"]) == res.iterations + 1  # the initial point first
        True

        Minibatch SGD with momentum (10 rows per step, 40 epochs of 5 steps, monitored by the
        full-data loss), then a stochastic objective that receives a key (noisy inputs):

        >>> sgd = GradientDescent(learning_rate=0.05, momentum=0.5)
        >>> res = lossopt.minimize(objective, jnp.zeros(3), sgd, args=(X, y), batch_size=10,
        ...                        max_epochs=40, gtol=0.0,
        ...                        metrics={"full_loss": objective}, metric_args=(X, y))
        >>> print(int(res.iterations), jnp.round(res.params, 2))
        200 [ 1.  -2.   0.5]
        >>> bool(res.trace.to_numpy()["full_loss"][-1] < 1e-6)
        True
        >>> def noisy(w, X, y, *, key):
        ...     return objective(w, X + 0.01 * jax.random.normal(key, X.shape, X.dtype), y)
        >>> run = lambda key: lossopt.minimize(noisy, jnp.zeros(3), sgd, args=(X, y),
        ...                                    batch_size=10, max_epochs=40, gtol=0.0, key=key)
        >>> a, b = run(jax.random.key(1)), run(jax.random.key(1))
        >>> bool((a.params == b.params).all()), bool(jnp.allclose(a.params, res.params, atol=0.05))
        (True, True)

        The minibatch run again in chunks, with a progress callback and checkpoints; it is
        bit-identical to the one-call run:

        >>> import tempfile
        >>> seen = []
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     long = lossopt.minimize(objective, jnp.zeros(3), sgd, args=(X, y), batch_size=10,
        ...                             max_epochs=40, gtol=0.0,
        ...                             metrics={"full_loss": objective}, metric_args=(X, y),
        ...                             chunk_size=50, progress=lambda p: seen.append(p.iteration),
        ...                             checkpoint_dir=folder)
        >>> seen
        [50, 100, 150, 200]
        >>> bool((long.params == res.params).all())
        True
    """
    mode = check_mode(compile)
    how = _implicit.check_differentiate(differentiate)
    spec, inputs = _prepare(
        fun, init_params, solver, args, max_iters, gtol, ftol, xtol, metrics, metric_args,
        record_every, key, batch_size, max_epochs,
    )
    if _check_long_run(progress, chunk_size, checkpoint_dir, checkpoint_every, resume, inputs):
        return host_result(run_chunked(
            spec, solver, inputs, progress=progress, chunk_size=chunk_size,
            checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, resume=resume,
            compile=mode,
        ))
    return host_result(_implicit.solve(mode, spec, solver, inputs, how))


def compile_choice(
    fun: Callable[..., Any], init_params: PyTree, solver: Solver, **minimize_kwargs: Any
) -> CompileChoice:
    """How :func:`minimize` with these arguments compiles its loop, and why.

    Takes :func:`minimize`'s arguments (``compile`` included, default ``"auto"``) and
    returns a :class:`~lossopt.solvers.CompileChoice`: the mode (``"fast"`` or
    ``"optimized"``), XLA's cost analysis of the loop, the run-time estimate ``"auto"``
    compares with its 0.25 s budget, and the reason. ``"auto"`` traces and lowers the loop
    (which a later ``minimize`` reuses) but compiles nothing.

    Example:
        >>> import jax.numpy as jnp
        >>> import lossopt
        >>> from lossopt.solvers import GradientDescent, compile_choice
        >>> f = lambda w: jnp.sum((w - 1.0) ** 2)
        >>> compile_choice(f, jnp.zeros(3), GradientDescent(0.1)).mode  # a tiny run, on a CPU
        'fast'
    """
    mode, options = _loop_options(minimize_kwargs)
    spec, inputs = _prepare(fun, init_params, solver, **options)
    return _loop.solve.choice(mode, spec, solver, inputs)


def _check_long_run(progress, chunk_size, checkpoint_dir, checkpoint_every, resume, inputs):
    """Validate the long-run options; return whether the loop runs in host-driven chunks."""
    if not (isinstance(progress, bool) or callable(progress)):
        raise TypeError(
            f"`progress` must be True, False or a callable taking a lossopt.solvers.Progress; "
            f"got {describe(progress)}"
        )
    if chunk_size is not None and (
        not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1
    ):
        raise ValueError(
            f"`chunk_size` must be None (adaptive) or an int >= 1; got {chunk_size!r}"
        )
    if checkpoint_dir is not None and not isinstance(checkpoint_dir, (str, os.PathLike)):
        raise TypeError(
            f"`checkpoint_dir` must be a path or None; got {describe(checkpoint_dir)}"
        )
    if (not isinstance(checkpoint_every, int) or isinstance(checkpoint_every, bool)
            or checkpoint_every < 1):
        raise ValueError(f"`checkpoint_every` must be an int >= 1; got {checkpoint_every!r}")
    if not isinstance(resume, bool):
        raise TypeError(f"`resume` must be True or False; got {describe(resume)}")
    if resume and checkpoint_dir is None:
        raise ValueError("`resume=True` continues from a checkpoint: give `checkpoint_dir` too")
    chunked = bool(progress) or checkpoint_dir is not None or chunk_size is not None
    if chunked and any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(inputs)):
        raise TypeError(
            "`progress`, `chunk_size` and `checkpoint_dir` drive the loop from the host "
            "between compiled chunks, so minimize cannot then run inside jax.jit or jax.vmap; "
            "call it outside the transformation (or drop these options)"
        )
    return chunked


def _prepare(
    fun, init_params, solver, args, max_iters, gtol, ftol, xtol, metrics, metric_args,
    record_every, key=None, batch_size=None, max_epochs=None,
) -> tuple[LoopSpec, LoopInputs]:
    """Validate minimize's arguments; split them into the static spec (the cache key, with
    the shapes) and the traced inputs."""
    if not callable(fun):
        raise TypeError(f"`fun` must be callable as fun(params, *args); got {describe(fun)}")
    if not isinstance(args, tuple):
        raise TypeError(
            f"`args` must be a tuple of extra arguments for fun; got {describe(args)}. "
            "For a single argument write args=(X,)."
        )
    if not isinstance(metric_args, tuple):
        raise TypeError(f"`metric_args` must be a tuple; got {describe(metric_args)}")
    if isinstance(solver, type):
        raise TypeError(
            f"`solver` must be a solver instance, e.g. {solver.__name__}(...) with its "
            f"hyperparameters; got the class {solver.__name__} itself"
        )
    for name, what in (("init", "init(objective, params, value, grad)"), ("step", "step(...)")):
        if not callable(getattr(solver, name, None)):
            raise TypeError(
                f"`solver` must be a lossopt solver (GradientDescent, Newton, Subgradient, "
                f"Optax) with {what}; got {type(solver).__name__}"
            )
    if not hasattr(solver, "monotone"):
        raise TypeError(f"`solver` must define `monotone`; got {type(solver).__name__}")
    if not isinstance(max_iters, int) or isinstance(max_iters, bool) or max_iters < 0:
        raise ValueError(f"`max_iters` must be an int >= 0; got {max_iters!r}")
    if not isinstance(record_every, int) or isinstance(record_every, bool) or record_every < 1:
        raise ValueError(f"`record_every` must be an int >= 1; got {record_every!r}")
    for tol_name, tol in (("gtol", gtol), ("ftol", ftol), ("xtol", xtol)):
        check_nonnegative(tol, tol_name)
    metric_items = _check_metrics(metrics)
    init_params = _check_params(init_params)
    # Meshes with Explicit axes (jax.make_mesh's) become Auto: jit's partitioner decides.
    init_params, args, metric_args = as_auto_axes((init_params, args, metric_args))
    # A tolerance that is a concrete 0 compiles its rule out; any other value (a traced one
    # included) is tested in the loop.
    rules_enabled = tuple(not _is_concrete_zero(t) for t in (gtol, ftol, xtol))
    key = _check_key(key)
    if key is not None:
        _check_accepts_key(fun)
    steps_per_epoch = _check_batching(args, batch_size)
    if max_epochs is not None:
        if not isinstance(max_epochs, int) or isinstance(max_epochs, bool) or max_epochs < 0:
            raise ValueError(f"`max_epochs` must be an int >= 0; got {max_epochs!r}")
        max_iters = min(max_iters, max_epochs * steps_per_epoch)
    # Keyed on what the callables compute, not on their identity (lossopt._functions).
    spec = LoopSpec(
        fun=Function(fun),
        metrics=tuple((name, Function(metric)) for name, metric in metric_items),
        max_iters=max_iters,
        record_every=record_every,
        rules_enabled=rules_enabled,
        has_key=key is not None,  # without key and batch_size nothing stochastic is traced
        batch_size=batch_size,
    )
    inputs = LoopInputs(init_params=init_params, args=args, metric_args=metric_args,
                        gtol=gtol, ftol=ftol, xtol=xtol, key=key)
    return spec, inputs


def _check_key(key: Any) -> Any:
    if key is None:
        return None
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(
                f"`key` must be a single PRNG key (shape ()); got shape {key.shape}. To give "
                "each run its own key, jax.vmap minimize over a batch of keys."
            )
        return key
    if dtype == jnp.uint32 and getattr(key, "shape", None) == (2,):
        return jax.random.wrap_key_data(key)  # a legacy jax.random.PRNGKey
    raise TypeError(f"`key` must be a PRNG key such as jax.random.key(0); got {describe(key)}")


def _check_accepts_key(fun: Callable[..., Any]) -> None:
    try:
        signature = inspect.signature(fun)
    except (TypeError, ValueError):  # no signature to inspect (a builtin): let the call decide
        return
    params = signature.parameters.values()
    if not any(
        (p.name == "key" and p.kind is not inspect.Parameter.POSITIONAL_ONLY)
        or p.kind is inspect.Parameter.VAR_KEYWORD
        for p in params
    ):
        raise TypeError(
            "with `key`, fun is called as fun(params, *args, key=k) with a fresh key every "
            f"iteration, but {getattr(fun, '__name__', 'fun')}{signature} takes no `key`: add "
            "a keyword argument `key`, or pass key=None (minibatches alone need no key)"
        )


def _check_batching(args: tuple[Any, ...], batch_size: Any) -> int:
    """Validate ``batch_size`` against ``args``; return the steps per epoch (1 without it)."""
    if batch_size is None:
        return 1
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an int >= 1 or None; got {batch_size!r}")
    leaves = jax.tree.leaves(args)
    if not leaves:
        raise ValueError(
            "`batch_size` draws minibatches from the arrays in `args`, but `args` is empty"
        )
    shapes = [tuple(jnp.shape(leaf)) for leaf in leaves]
    sizes = {shape[0] if shape else None for shape in shapes}
    if None in sizes or len(sizes) != 1:
        raise ValueError(
            "with `batch_size`, every array in `args` is sliced along axis 0, so all must be "
            f"arrays sharing the same leading size (the number of examples); got shapes {shapes}"
        )
    (n,) = sizes
    if batch_size > n:
        raise ValueError(
            f"`batch_size` ({batch_size}) exceeds the number of examples in `args` ({n})"
        )
    return n // batch_size


def _check_metrics(metrics: Any) -> tuple[tuple[str, Callable[..., Any]], ...]:
    if metrics is None:
        return ()
    if not isinstance(metrics, Mapping):
        raise TypeError(f"`metrics` must be a dict {{name: metric}}; got {describe(metrics)}")
    for name, metric in metrics.items():
        if not isinstance(name, str):
            raise TypeError(f"`metrics` keys must be strings; got {name!r}")
        if name in _RESERVED:
            raise ValueError(
                f"metric name {name!r} collides with a trace column; choose a name not in "
                f"{list(_RESERVED)}"
            )
        if not callable(metric):
            raise TypeError(f"`metrics[{name!r}]` must be callable; got {describe(metric)}")
    return tuple(metrics.items())


def _check_params(init_params: Any) -> Any:
    def check(leaf):
        arr = jnp.asarray(leaf)
        if not jnp.issubdtype(arr.dtype, jnp.floating):
            raise TypeError(
                "`init_params` leaves must be real floating arrays; got a leaf that is "
                f"{describe(leaf)}. Use e.g. jnp.zeros(n) or .astype(float)."
            )
        return arr

    leaves = jax.tree.leaves(init_params)
    if not leaves:
        raise ValueError("`init_params` has no array leaves; there is nothing to optimise")
    checked = jax.tree.map(check, init_params)
    if sum(int(np.prod(jnp.shape(leaf))) for leaf in jax.tree.leaves(checked)) == 0:
        shapes = [tuple(jnp.shape(leaf)) for leaf in jax.tree.leaves(checked)]
        raise ValueError(
            f"`init_params` has no elements (leaf shapes {shapes}); there is nothing to "
            "optimise"
        )
    return checked


def _is_concrete_zero(x: Any) -> bool:
    value = concrete_value(x)
    return value is not None and bool(np.all(value == 0))


def sweep(
    fun: Callable[..., Any],
    init_params: PyTree,
    solver: Solver | Callable[..., Solver],
    grid: ArrayLike | Mapping[str, ArrayLike],
    **minimize_kwargs: Any,
) -> Result:
    """Run :func:`minimize` once per hyperparameter value of ``grid``, vmapped into one call.

    This is ``jax.vmap(lambda h: minimize(fun, init_params, make_solver(h), ...))(grid)``
    inside one cached ``jax.jit``: the lanes share one compiled loop, the data's matrix-vector
    products become matrix-matrix products across lanes, and each lane stops on its own rule
    (finished lanes freeze; their ``iterations`` are their own). The loop runs until the
    slowest lane stops. Every run's solver is first built on the host, so each grid value is
    validated eagerly. The compiled sweep is cached on ``fun`` and the solver class or factory
    (by identity: pass a class, or a function defined once, rather than a new lambda per call)
    besides :func:`minimize`'s static options.

    ``solver`` and ``grid`` combine in three ways (``grid``'s leaves are arrays sharing a
    leading axis of length ``L``, the number of runs):

    - a solver class or factory and an array: ``sweep(f, p0, lambda lr:
      GradientDescent(learning_rate=lr), jnp.logspace(-3, 0, 8))`` calls the factory with each
      element;
    - a class or factory and a dict: ``sweep(f, p0, GradientDescent, {"learning_rate": lrs,
      "momentum": ms})`` calls ``factory(**point)`` (zip, not product: build a product grid
      with ``jnp.meshgrid`` and ravel it);
    - a solver instance and a dict of field overrides: ``sweep(f, p0, GradientDescent(0.1,
      momentum=0.9), {"learning_rate": lrs})`` uses ``dataclasses.replace``.

    To sweep data or starting points instead, vmap :func:`minimize` directly:
    ``jax.vmap(lambda p0: minimize(f, p0, solver, args=(X, y)))(starts)``.

    Args:
        fun: the objective, as in :func:`minimize`.
        init_params: the common starting point.
        solver: a solver class, a factory returning a solver, or a solver instance.
        grid: an array, or a dict of arrays, with a common leading axis.
        **minimize_kwargs: passed to :func:`minimize` (``args``, ``max_iters``, ``gtol``, ...).

    Returns:
        A batched :class:`~lossopt.Result`: every field has a leading axis of length ``L``;
        ``result.lane(i)`` is run ``i``.

    Raises:
        ValueError: an empty grid or leaves with different leading lengths.
        TypeError: a solver instance with a grid that is not a dict of field names.

    Example:
        >>> import jax.numpy as jnp
        >>> import lossopt
        >>> from lossopt.solvers import GradientDescent
        >>> f = lambda w: jnp.sum((w - 1.0) ** 2)
        >>> res = lossopt.sweep(f, jnp.zeros(2), GradientDescent,
        ...                     {"learning_rate": jnp.array([0.1, 0.2, 0.4])}, gtol=1e-3)
        >>> res.iterations.tolist()  # each lane stops on its own: |g_k| = 2 (1 - 2 lr)^k
        [35, 15, 5]
    """
    grid = jax.tree.map(jnp.asarray, grid)
    leaves = jax.tree.leaves(grid)
    if not leaves:
        raise ValueError("`grid` is empty: give an array or a dict of arrays of grid values")
    lengths = {leaf.shape[0] if leaf.ndim else None for leaf in leaves}
    if None in lengths or len(lengths) != 1:
        raise ValueError(
            "every `grid` leaf must be an array with the same leading length (one entry per "
            f"run); got shapes {[leaf.shape for leaf in leaves]}"
        )
    (num_runs,) = lengths
    is_instance = dataclasses.is_dataclass(solver) and not isinstance(solver, type)
    if is_instance:
        if not isinstance(grid, Mapping):
            raise TypeError(
                "with a solver instance, `grid` must be a dict {field name: values}; got "
                f"{describe(grid)}. Or pass a factory: lambda h: GradientDescent(learning_rate=h)"
            )
        kind, factory, base = "replace", None, solver
    elif callable(solver):
        kind = "kwargs" if isinstance(grid, Mapping) else "call"
        factory, base = solver, None
    else:
        raise TypeError(
            "`solver` must be a solver class, a factory returning a solver, or a solver "
            f"instance; got {describe(solver)}"
        )
    # Build every run's solver once on the host (from numpy copies: cheap), which validates
    # each grid value eagerly. Under an outer jax.jit the grid is traced and this is skipped.
    host_grid = jax.tree.map(concrete_value, grid)
    if all(leaf is not None for leaf in jax.tree.leaves(host_grid, is_leaf=lambda x: x is None)):
        solvers = [
            _build_solver(kind, factory, base, jax.tree.map(lambda x, i=i: x[i], host_grid))
            for i in range(num_runs)
        ]
    else:
        solvers = [_build_solver(kind, factory, base, jax.tree.map(lambda x: x[0], grid))]
    mode, options = _loop_options(minimize_kwargs)
    long_run = [name for name in _LONG_RUN_OPTIONS if name in minimize_kwargs]
    if long_run:
        raise TypeError(
            f"sweep runs every lane in one compiled call and does not take {long_run}; call "
            "minimize for a run with a progress bar or checkpoints"
        )
    if "differentiate" in minimize_kwargs:
        raise TypeError(
            "sweep does not take `differentiate`; to differentiate solves over a grid, "
            "jax.vmap a function of minimize(..., differentiate=...)"
        )
    spec, inputs = _prepare(fun, init_params, solvers[0], **options)
    if factory is not None and not isinstance(factory, type):
        factory = Function(factory)
    return _sweep(mode, kind, factory, spec, base, grid, inputs)


def _loop_options(kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``minimize``'s keyword options, defaults filled in: the compile mode and what
    ``_prepare`` takes (the long-run options, which do not change the loop, left out)."""
    defaults = {
        name: p.default
        for name, p in inspect.signature(minimize).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    unknown = set(kwargs) - set(defaults)
    if unknown:
        raise TypeError(f"unexpected keyword arguments for minimize: {sorted(unknown)}")
    options = {**defaults, **kwargs}
    mode = check_mode(options.pop("compile"))
    _implicit.check_differentiate(options.pop("differentiate"))  # the loop is the same
    for name in _LONG_RUN_OPTIONS:
        options.pop(name)
    return mode, options


def _build_solver(kind: str, factory: Any, base: Any, point: Any) -> Any:
    if kind == "replace":
        return dataclasses.replace(base, **point)
    if kind == "kwargs":
        return factory(**point)
    return factory(point)


def _sweep_entry(kind, factory, spec: LoopSpec, base, grid, inputs: LoopInputs):
    # One compiled program for the whole sweep, cached like minimize's (the factory is part of
    # the key, by what it computes, as `fun` is).
    def one(point):
        solver = _build_solver(kind, factory, base, point)
        return Loop(spec, solver, inputs).run(inputs.init_params)

    return jax.vmap(one)(grid)


def _sweep_work(kind, factory, spec: LoopSpec, *rest) -> int:
    return spec.max_iters


def _sweep_record_bytes(kind, factory, spec: LoopSpec, base, grid, inputs: LoopInputs) -> int:
    lanes = jax.tree.leaves(grid)[0].shape[0]
    return _loop.record_bytes(spec, inputs.init_params, lanes)


# kind, factory and the spec are static; the spec's max_iters bounds the run, and the cost
# analysis sees every lane.
_sweep = Entry(_sweep_entry, static_argnums=(0, 1, 2), work_iters=_sweep_work,
               record_bytes=_sweep_record_bytes)
