"""``minimize``: the one compiled loop that drives every solver; ``sweep``: a vmapped grid of it."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import operator
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from lossopt._validation import check_nonnegative, concrete_value, describe
from lossopt.solvers._protocol import Objective, Solver
from lossopt.solvers._result import Result, Status, Trace, status_array
from lossopt.solvers._tree import tree_l2_norm, tree_max_abs, tree_sub, tree_where

__all__ = ["minimize", "sweep"]

_RESERVED = ("iteration", "loss", "grad_norm", "step_size")


def minimize(
    fun: Callable[..., Any],
    init_params: Any,
    solver: Solver,
    *,
    args: tuple[Any, ...] = (),
    max_iters: int = 1000,
    gtol: Any = 1e-6,
    ftol: Any = 0.0,
    xtol: Any = 0.0,
    metrics: Mapping[str, Callable[..., Any]] | None = None,
    metric_args: tuple[Any, ...] = (),
    record_every: int = 1,
    key: Any = None,
    batch_size: int | None = None,
    max_epochs: int | None = None,
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

    Compilation is cached on ``fun`` (by identity: define it once, pass data through
    ``args``), the metric callables and names, ``max_iters``, ``record_every``, the solver's
    static fields and the shapes/dtypes of everything else. Data in ``args``, numeric solver
    hyperparameters and the tolerances are traced, so new data of the same shape, a new
    learning rate or a new ``gtol`` reuse the compiled loop.

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
            ``fold_in(fold_in(key, 2**32 - 1), e)``, so it is independent of the keys ``fun``
            receives; without ``key`` the shuffle uses ``jax.random.key(0)`` and ``fun`` gets
            no key.
        max_epochs: with ``batch_size``, stop after this many epochs (>= 0, static): the
            iteration cap is ``min(max_iters, max_epochs * (n // batch_size))``. Without
            ``batch_size`` an epoch is one iteration.

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
            (with ``batch_size``) or ``max_epochs < 0``.

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
        >>> print(jnp.round(res.params, 3), res.status.item() == lossopt.Status.CONVERGED)
        [ 1.  -2.   0.5] True
        >>> trace = res.trace.to_numpy()  # iterations + 1 records, the initial point first
        >>> len(trace["loss"]) == int(res.iterations) + 1
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
    """
    static, traced = _prepare(
        fun, init_params, solver, args, max_iters, gtol, ftol, xtol, metrics, metric_args,
        record_every, key, batch_size, max_epochs,
    )
    return _solve(*static, solver, *traced)


def _prepare(
    fun, init_params, solver, args, max_iters, gtol, ftol, xtol, metrics, metric_args,
    record_every, key=None, batch_size=None, max_epochs=None,
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """Validate minimize's arguments; split them into static (cache key) and traced parts."""
    if not callable(fun):
        raise TypeError(f"`fun` must be callable as fun(params, *args); got {describe(fun)}")
    if not isinstance(args, tuple):
        raise TypeError(
            f"`args` must be a tuple of extra arguments for fun; got {describe(args)}. "
            "For a single argument write args=(X,)."
        )
    if not isinstance(metric_args, tuple):
        raise TypeError(f"`metric_args` must be a tuple; got {describe(metric_args)}")
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
    # None on the deterministic path: nothing stochastic is traced into the loop.
    stochastic = None if key is None and batch_size is None else (key is not None, batch_size)
    static = (fun, metric_items, max_iters, record_every, rules_enabled, stochastic)
    traced = (init_params, args, metric_args, gtol, ftol, xtol, key)
    return static, traced


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
    return jax.tree.map(check, init_params)


class _Carry(NamedTuple):
    k: jax.Array  # iteration number of `params`
    params: Any  # the newest iterate; on the final iteration it may be a rejected one
    value: jax.Array
    grad: Any
    grad_norm: jax.Array
    state: Any
    accepted: jax.Array  # `params` is finite and its line search succeeded
    prev_params: Any  # the iterate before `params` (always accepted)
    prev_value: jax.Array
    prev_grad_norm: jax.Array
    done: jax.Array
    status: jax.Array
    counts: tuple[jax.Array, jax.Array, jax.Array, jax.Array]
    loss_buf: jax.Array
    grad_norm_buf: jax.Array
    step_buf: jax.Array
    metric_bufs: dict[str, jax.Array]
    best_params: Any
    best_value: jax.Array
    perm: Any = None  # with batch_size: this epoch's permutation of the examples


# Folded into the user's key to derive the shuffling key; iterations (the other fold_in data)
# never reach it, so the shuffle is independent of the keys that `fun` receives.
_SHUFFLE_STREAM = 0xFFFFFFFF


def _as_count(x: Any) -> jax.Array:
    return jnp.asarray(x, dtype=jnp.int32)


def _is_concrete_zero(x: Any) -> bool:
    value = concrete_value(x)
    return value is not None and bool(np.all(value == 0))


def _solve_impl(
    fun,
    metric_items,
    max_iters,
    record_every,
    rules_enabled,
    solver,
    init_params,
    args,
    metric_args,
    gtol,
    ftol,
    xtol,
    key=None,
    stochastic=None,
) -> Result:
    if stochastic is None:
        objective = Objective(fun, args)
        perm0 = None
    else:
        has_key, batch_size = stochastic
        if batch_size is not None:
            num_examples = jax.tree.leaves(args)[0].shape[0]
            steps_per_epoch = num_examples // batch_size
            shuffle_key = jax.random.fold_in(
                key if has_key else jax.random.key(0), _SHUFFLE_STREAM
            )

            def epoch_permutation(epoch):
                return jax.random.permutation(
                    jax.random.fold_in(shuffle_key, epoch), num_examples
                )

            def next_perm(k, perm):
                # A new permutation only at an epoch boundary (a cond: the sort is skipped on
                # the other steps; under vmap it becomes a select).
                return lax.cond(
                    k % steps_per_epoch == 0,
                    lambda: epoch_permutation(k // steps_per_epoch),
                    lambda: perm,
                )

            perm0 = epoch_permutation(0)
        else:
            perm0 = None

        def objective_at(k, perm):
            """The objective of iteration ``k``: its minibatch and its key."""
            data = args
            if batch_size is not None:
                start = (k % steps_per_epoch) * batch_size
                rows = lax.dynamic_slice_in_dim(perm, start, batch_size)
                data = jax.tree.map(lambda a: jnp.take(a, rows, axis=0), args)
            if not has_key:
                return Objective(fun, data)
            k_key = jax.random.fold_in(key, k)
            return Objective(lambda p, *a: fun(p, *a, key=k_key), data)

        objective = objective_at(jnp.asarray(0, jnp.int32), perm0)
    value0, grad0 = objective.value_and_grad(init_params)
    dtype = value0.dtype
    use_gtol, use_ftol, use_xtol = rules_enabled
    gtol, ftol, xtol = (jnp.asarray(t, dtype) for t in (gtol, ftol, xtol))
    tiny = jnp.asarray(jnp.finfo(dtype).tiny, dtype)
    n_records = max_iters // record_every + 1
    track_best = not solver.monotone

    def evaluate_metrics(params):
        out = {}
        for name, metric in metric_items:
            m = jnp.asarray(metric(params, *metric_args))
            if m.shape != () or not jnp.issubdtype(m.dtype, jnp.floating):
                raise TypeError(
                    f"metric {name!r} must return a real floating scalar; got shape "
                    f"{m.shape} and dtype {m.dtype}"
                )
            out[name] = m
        return out

    def is_finite(value, grad_norm, params):
        # The max-abs norms propagate NaN and Inf, so one reduction per tree suffices.
        return jnp.isfinite(value) & jnp.isfinite(grad_norm) & jnp.isfinite(tree_max_abs(params))

    def gtol_hit(grad_norm):
        # Every test is a `<=` on non-negative quantities, so a NaN anywhere makes it False.
        return (gtol > 0) & (grad_norm <= gtol) if use_gtol else jnp.asarray(False)

    metrics0 = evaluate_metrics(init_params)
    nan_buf = jnp.full((n_records,), jnp.nan, dtype)
    grad_norm0 = tree_max_abs(grad0).astype(dtype)
    finite0 = is_finite(value0, grad_norm0, init_params)
    converged0 = gtol_hit(grad_norm0)
    status0 = jnp.where(
        ~finite0,
        status_array(Status.NONFINITE),
        jnp.where(converged0, status_array(Status.CONVERGED), status_array(Status.MAX_ITERS)),
    )
    carry = _Carry(
        k=jnp.asarray(0, jnp.int32),
        params=init_params,
        value=value0,
        grad=grad0,
        grad_norm=grad_norm0,
        state=solver.init(objective, init_params, value0, grad0),
        accepted=jnp.asarray(True),  # the initial point is returned even when not finite
        prev_params=init_params,
        prev_value=value0,
        prev_grad_norm=grad_norm0,
        done=~finite0 | converged0 | (max_iters == 0),
        status=status0,
        counts=(_as_count(1), _as_count(1), _as_count(0), _as_count(0)),
        loss_buf=nan_buf.at[0].set(value0),
        grad_norm_buf=nan_buf.at[0].set(grad_norm0),
        step_buf=nan_buf,
        metric_bufs={
            name: jnp.full((n_records,), jnp.nan, m.dtype).at[0].set(m)
            for name, m in metrics0.items()
        },
        best_params=init_params if track_best else None,
        best_value=value0,
        perm=perm0,
    )

    def record_metrics(k, params):
        if not metric_items:
            return {}
        if record_every == 1:
            return evaluate_metrics(params)
        return lax.cond(
            k % record_every == 0,
            evaluate_metrics,
            lambda p: {n: jnp.full((), jnp.nan, m.dtype) for n, m in metrics0.items()},
            params,
        )

    def body(c: _Carry) -> _Carry:
        # The loop only continues from an accepted iterate, so a rejected step (non-finite, or
        # a failed line search) always ends it: instead of selecting between the old and new
        # iterate on every step, the carry keeps the previous iterate and the choice is made
        # once, after the loop.
        if stochastic is None:
            out = solver.step(objective, c.params, c.value, c.grad, c.state)
            new_value, new_grad, perm = out.value, out.grad, None
        else:
            # The step sees iteration k-1's objective (minibatch and key; line-search trials
            # share it). The new iterate is then evaluated on iteration k's objective, which
            # the next step needs: the step's own final evaluation of the new point on the old
            # minibatch is unused and compiled away (unless a line search consumed it), so
            # this evaluation stands in for it in the counts.
            out = solver.step(objective_at(c.k, c.perm), c.params, c.value, c.grad, c.state)
            next_k = c.k + 1
            perm = None if c.perm is None else next_perm(next_k, c.perm)
            new_value, new_grad = objective_at(next_k, perm).value_and_grad(out.params)
        value = new_value.astype(dtype)
        grad_norm = tree_max_abs(new_grad).astype(dtype)
        finite = is_finite(value, grad_norm, out.params)
        failed = jnp.asarray(out.failed)
        k = c.k + 1
        step = tree_l2_norm(tree_sub(out.params, c.params)).astype(dtype)

        hits = [(failed, Status.LINE_SEARCH_FAILED), (~finite, Status.NONFINITE)]
        if use_gtol:
            hits.append((gtol_hit(grad_norm), Status.CONVERGED))
        if use_ftol:
            scale = jnp.maximum(jnp.maximum(jnp.abs(c.value), jnp.abs(value)), tiny)
            hits.append(((ftol > 0) & (jnp.abs(c.value - value) <= ftol * scale),
                         Status.CONVERGED_FTOL))
        if use_xtol:
            xnorm = tree_l2_norm(out.params).astype(dtype)
            hits.append(((xtol > 0) & (step <= xtol * (xnorm + xtol)), Status.CONVERGED_XTOL))
        hits.append((k >= max_iters, Status.MAX_ITERS))
        status = c.status
        for hit, code in reversed(hits):  # the earliest rule in the list wins
            status = jnp.where(hit, status_array(code), status)
        done = functools.reduce(operator.or_, (hit for hit, _ in hits))

        # Records of a rejected step land past the final count and are reset to NaN after the
        # loop. With record_every > 1, the out-of-bounds slot n_records is dropped.
        if record_every == 1:
            slot = k
        else:
            slot = jnp.where(k % record_every == 0, k // record_every, n_records)
        metric_values = record_metrics(k, out.params)

        def write(buf, v):
            return buf.at[slot].set(v.astype(buf.dtype), mode="drop")

        accepted = finite & ~failed
        if track_best:
            better = accepted & (value < c.best_value)
            best_params = tree_where(better, out.params, c.best_params)
            best_value = jnp.where(better, value, c.best_value)
        else:
            best_params, best_value = None, c.best_value

        counts = tuple(
            total + _as_count(n)
            for total, n in zip(
                c.counts,
                (out.fun_evals, out.grad_evals, out.hess_evals, out.hvp_evals),
                strict=True,
            )
        )
        return _Carry(
            k=k,
            params=out.params,
            value=value,
            grad=new_grad,
            grad_norm=grad_norm,
            state=out.state,
            accepted=accepted,
            prev_params=c.params,
            prev_value=c.value,
            prev_grad_norm=c.grad_norm,
            done=done,
            status=status,
            counts=counts,
            loss_buf=write(c.loss_buf, value),
            grad_norm_buf=write(c.grad_norm_buf, grad_norm),
            step_buf=write(c.step_buf, step),
            metric_bufs={n: write(c.metric_bufs[n], metric_values[n]) for n in c.metric_bufs},
            best_params=best_params,
            best_value=best_value,
            perm=perm,
        )

    final = lax.while_loop(lambda c: ~c.done, body, carry)
    ok = final.accepted
    params = tree_where(ok, final.params, final.prev_params)
    value = jnp.where(ok, final.value, final.prev_value)
    iterations = jnp.where(ok, final.k, final.k - 1)
    count = iterations // record_every + 1
    valid = jnp.arange(n_records) < count

    def trim(buf):
        return jnp.where(valid, buf, jnp.nan)

    trace = Trace(
        loss=trim(final.loss_buf),
        grad_norm=trim(final.grad_norm_buf),
        step_size=trim(final.step_buf),
        metrics={n: trim(b) for n, b in final.metric_bufs.items()},
        count=count,
        record_every=record_every,
    )
    return Result(
        params=params,
        value=value,
        grad_norm=jnp.where(ok, final.grad_norm, final.prev_grad_norm),
        iterations=iterations,
        status=final.status,
        trace=trace,
        num_fun_evals=final.counts[0],
        num_grad_evals=final.counts[1],
        num_hess_evals=final.counts[2],
        num_hvp_evals=final.counts[3],
        best_params=final.best_params if track_best else params,
        best_value=final.best_value if track_best else value,
    )


def _solve_entry(fun, metric_items, max_iters, record_every, rules_enabled, stochastic, solver,
                 init_params, args, metric_args, gtol, ftol, xtol, key):
    return _solve_impl(fun, metric_items, max_iters, record_every, rules_enabled, solver,
                       init_params, args, metric_args, gtol, ftol, xtol, key, stochastic)


_solve = jax.jit(_solve_entry, static_argnums=(0, 1, 2, 3, 4, 5))


def sweep(
    fun: Callable[..., Any],
    init_params: Any,
    solver: Any,
    grid: Any,
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
    static, traced = _prepare(fun, init_params, solvers[0], **_minimize_options(minimize_kwargs))
    return _sweep(kind, factory, *static, base, grid, *traced)


def _minimize_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    defaults = {
        name: p.default
        for name, p in inspect.signature(minimize).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    unknown = set(kwargs) - set(defaults)
    if unknown:
        raise TypeError(f"unexpected keyword arguments for minimize: {sorted(unknown)}")
    return {**defaults, **kwargs}


def _build_solver(kind: str, factory: Any, base: Any, point: Any) -> Any:
    if kind == "replace":
        return dataclasses.replace(base, **point)
    if kind == "kwargs":
        return factory(**point)
    return factory(point)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5, 6, 7))
def _sweep(kind, factory, fun, metric_items, max_iters, record_every, rules_enabled, stochastic,
           base, grid, init_params, args, metric_args, gtol, ftol, xtol, key):
    # One jitted program for the whole sweep, cached like minimize's (the factory is part of
    # the key: pass a class or a function defined once, not a new lambda per call).
    def one(point):
        solver = _build_solver(kind, factory, base, point)
        return _solve_impl(fun, metric_items, max_iters, record_every, rules_enabled, solver,
                           init_params, args, metric_args, gtol, ftol, xtol, key, stochastic)

    return jax.vmap(one)(grid)
