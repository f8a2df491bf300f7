"""The iteration of :func:`lossopt.minimize`: its carry, one step, and the result it builds.

:class:`Loop` holds the three pieces -- the initial carry, the loop body and the final
:class:`Result` -- so that the same body runs both as one ``lax.while_loop`` over the whole
solve (:data:`solve`, the default) and as a chain of compiled chunks driven from the host
(:data:`init_chunks`, :data:`run_chunk`, :data:`finish_chunks`, used for progress bars and
checkpoints). The body is the same traced function in both, so a chunked run is bit-identical
to an unchunked one.

Every entry point takes a :class:`~lossopt.solvers._spec.LoopSpec` (static: the jit cache
key with the input shapes and the solver's static fields), the solver, and the traced
:class:`~lossopt.solvers._spec.LoopInputs`: ``solve(mode, spec, solver, inputs)``,
``init_chunks(mode, spec, solver, inputs)``, ``run_chunk(mode, spec, solver, carry, inputs,
stop_at)`` and ``finish_chunks(mode, spec, interrupted, solver, carry, inputs)`` (the last two
with ``inputs.without_params()``: the carry holds the iterate).
"""

from __future__ import annotations

import functools
import operator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from lossopt.solvers._compile import Entry, iteration_bound
from lossopt.solvers._protocol import Objective
from lossopt.solvers._result import Result, Status, Trace, status_array
from lossopt.solvers._spec import LoopInputs, LoopSpec
from lossopt.solvers._tree import tree_l2_norm, tree_max_abs, tree_sub, tree_where


class Carry(NamedTuple):
    """The state of the loop between iterations (and what a checkpoint stores)."""

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


class Loop:
    """minimize's loop for one spec, solver and set of traced inputs; built inside a trace."""

    def __init__(self, spec: LoopSpec, solver: Any, inputs: LoopInputs):
        self.fun = spec.fun
        self.metric_items = spec.metrics
        self.max_iters = spec.max_iters
        self.record_every = spec.record_every
        self.rules_enabled = spec.rules_enabled
        self.stochastic = spec.stochastic
        self.has_key, self.batch_size = spec.has_key, spec.batch_size
        self.solver = solver
        self.args = inputs.args
        self.metric_args = inputs.metric_args
        self.tolerances = (inputs.gtol, inputs.ftol, inputs.xtol)
        self.key = inputs.key
        self.n_records = spec.n_records
        self.track_best = not solver.monotone
        # Optional hook (see Solver): what the loop reports and tests at an iterate.
        self.measure = getattr(solver, "measure", None)
        if self.batch_size is not None:
            self.num_examples = jax.tree.leaves(self.args)[0].shape[0]
            self.steps_per_epoch = self.num_examples // self.batch_size

    # --- the objective of each iteration -------------------------------------------------------

    def epoch_permutation(self, epoch):
        shuffle_key = jax.random.fold_in(
            self.key if self.has_key else jax.random.key(0), _SHUFFLE_STREAM
        )
        return jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), self.num_examples)

    def next_perm(self, k, perm):
        # A new permutation only at an epoch boundary (a cond: the sort is skipped on the
        # other steps; under vmap it becomes a select).
        return lax.cond(
            k % self.steps_per_epoch == 0,
            lambda: self.epoch_permutation(k // self.steps_per_epoch),
            lambda: perm,
        )

    def objective_at(self, k, perm) -> Objective:
        """The objective of iteration ``k``: its minibatch and its key."""
        if not self.stochastic:
            return Objective(self.fun, self.args)
        data = self.args
        if self.batch_size is not None:
            start = (k % self.steps_per_epoch) * self.batch_size
            rows = lax.dynamic_slice_in_dim(perm, start, self.batch_size)
            data = jax.tree.map(lambda a: jnp.take(a, rows, axis=0), self.args)
        if not self.has_key:
            return Objective(self.fun, data)
        k_key = jax.random.fold_in(self.key, k)
        fun = self.fun
        return Objective(lambda p, *a: fun(p, *a, key=k_key), data)

    # --- helpers -------------------------------------------------------------------------------

    def evaluate_metrics(self, params):
        out = {}
        for name, metric in self.metric_items:
            m = jnp.asarray(metric(params, *self.metric_args))
            if m.shape != () or not jnp.issubdtype(m.dtype, jnp.floating):
                raise TypeError(
                    f"metric {name!r} must return a real floating scalar; got shape "
                    f"{m.shape} and dtype {m.dtype}"
                )
            out[name] = m
        return out

    def measured(self, objective, params, value, grad, state):
        """The solver's ``measure`` hook: the reported value and the residual's max-abs norm."""
        reported, residual = self.measure(objective, params, value, grad, state)
        dtype = value.dtype
        return jnp.asarray(reported).astype(dtype), tree_max_abs(residual).astype(dtype)

    @staticmethod
    def is_finite(value, grad_norm, params):
        # The max-abs norms propagate NaN and Inf, so one reduction per tree suffices.
        return jnp.isfinite(value) & jnp.isfinite(grad_norm) & jnp.isfinite(tree_max_abs(params))

    def gtol_hit(self, grad_norm):
        # Every test is a `<=` on non-negative quantities, so a NaN anywhere makes it False.
        if not self.rules_enabled[0]:
            return jnp.asarray(False)
        gtol = jnp.asarray(self.tolerances[0], grad_norm.dtype)
        return (gtol > 0) & (grad_norm <= gtol)

    # --- the three pieces ----------------------------------------------------------------------

    def initial(self, init_params) -> Carry:
        """The carry at the initial point (iteration 0, its trace record written)."""
        perm0 = self.epoch_permutation(0) if self.batch_size is not None else None
        objective = self.objective_at(jnp.asarray(0, jnp.int32), perm0)
        value0, grad0 = objective.value_and_grad(init_params)
        dtype = value0.dtype
        metrics0 = self.evaluate_metrics(init_params)
        nan_buf = jnp.full((self.n_records,), jnp.nan, dtype)
        state0 = self.solver.init(objective, init_params, value0, grad0)
        if self.measure is None:
            grad_norm0 = tree_max_abs(grad0).astype(dtype)
        else:  # the solver's own measure (a composite objective's value and gradient mapping)
            value0, grad_norm0 = self.measured(objective, init_params, value0, grad0, state0)
        finite0 = self.is_finite(value0, grad_norm0, init_params)
        converged0 = self.gtol_hit(grad_norm0)
        status0 = jnp.where(
            ~finite0,
            status_array(Status.NONFINITE),
            jnp.where(converged0, status_array(Status.CONVERGED),
                      status_array(Status.MAX_ITERS)),
        )
        return Carry(
            k=jnp.asarray(0, jnp.int32),
            params=init_params,
            value=value0,
            grad=grad0,
            grad_norm=grad_norm0,
            state=state0,
            accepted=jnp.asarray(True),  # the initial point is returned even when not finite
            prev_params=init_params,
            prev_value=value0,
            prev_grad_norm=grad_norm0,
            done=~finite0 | converged0 | (self.max_iters == 0),
            status=status0,
            counts=(_as_count(1), _as_count(1), _as_count(0), _as_count(0)),
            loss_buf=nan_buf.at[0].set(value0),
            grad_norm_buf=nan_buf.at[0].set(grad_norm0),
            step_buf=nan_buf,
            metric_bufs={
                name: jnp.full((self.n_records,), jnp.nan, m.dtype).at[0].set(m)
                for name, m in metrics0.items()
            },
            best_params=init_params if self.track_best else None,
            best_value=value0,
            perm=perm0,
        )

    def body(self, c: Carry) -> Carry:
        """One iteration: a solver step, the new iterate's evaluation, stopping rules, records."""
        # The loop only continues from an accepted iterate, so a rejected step (non-finite, or
        # a failed line search) always ends it: instead of selecting between the old and new
        # iterate on every step, the carry keeps the previous iterate and the choice is made
        # once, in `finish`.
        solver, record_every, n_records = self.solver, self.record_every, self.n_records
        dtype = c.value.dtype
        use_gtol, use_ftol, use_xtol = self.rules_enabled
        _, ftol, xtol = (jnp.asarray(t, dtype) for t in self.tolerances)
        tiny = jnp.asarray(jnp.finfo(dtype).tiny, dtype)
        if not self.stochastic:
            out = solver.step(self.objective_at(None, None), c.params, c.value, c.grad, c.state)
            new_value, new_grad, perm = out.value, out.grad, None
        else:
            # The step sees iteration k-1's objective (minibatch and key; line-search trials
            # share it). The new iterate is then evaluated on iteration k's objective, which
            # the next step needs: the step's own final evaluation of the new point on the old
            # minibatch is unused and compiled away (unless a line search consumed it), so
            # this evaluation stands in for it in the counts.
            out = solver.step(self.objective_at(c.k, c.perm), c.params, c.value, c.grad, c.state)
            next_k = c.k + 1
            perm = None if c.perm is None else self.next_perm(next_k, c.perm)
            new_value, new_grad = self.objective_at(next_k, perm).value_and_grad(out.params)
        if self.measure is None:
            value = new_value.astype(dtype)
            grad_norm = tree_max_abs(new_grad).astype(dtype)
        else:
            # The new iterate's objective (iteration k + 1's minibatch and key, if any).
            value, grad_norm = self.measured(self.objective_at(c.k + 1, perm), out.params,
                                             new_value, new_grad, out.state)
        finite = self.is_finite(value, grad_norm, out.params)
        failed = jnp.asarray(out.failed)
        k = c.k + 1
        step = tree_l2_norm(tree_sub(out.params, c.params)).astype(dtype)

        hits = [(failed, Status.LINE_SEARCH_FAILED), (~finite, Status.NONFINITE)]
        if use_gtol:
            hits.append((self.gtol_hit(grad_norm), Status.CONVERGED))
        if use_ftol:
            scale = jnp.maximum(jnp.maximum(jnp.abs(c.value), jnp.abs(value)), tiny)
            hits.append(((ftol > 0) & (jnp.abs(c.value - value) <= ftol * scale),
                         Status.CONVERGED_FTOL))
        if use_xtol:
            xnorm = tree_l2_norm(out.params).astype(dtype)
            hits.append(((xtol > 0) & (step <= xtol * (xnorm + xtol)), Status.CONVERGED_XTOL))
        hits.append((k >= self.max_iters, Status.MAX_ITERS))
        status = c.status
        for hit, code in reversed(hits):  # the earliest rule in the list wins
            status = jnp.where(hit, status_array(code), status)
        done = functools.reduce(operator.or_, (hit for hit, _ in hits))

        # Records of a rejected step land past the final count and are reset to NaN in
        # `finish`. With record_every > 1, the out-of-bounds slot n_records is dropped.
        if record_every == 1:
            slot = k
        else:
            slot = jnp.where(k % record_every == 0, k // record_every, n_records)
        metric_values = self._record_metrics(k, out.params, c.metric_bufs)

        def write(buf, v):
            return buf.at[slot].set(v.astype(buf.dtype), mode="drop")

        accepted = finite & ~failed
        if self.track_best:
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
        return Carry(
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

    def _record_metrics(self, k, params, bufs):
        if not self.metric_items:
            return {}
        if self.record_every == 1:
            return self.evaluate_metrics(params)
        return lax.cond(
            k % self.record_every == 0,
            self.evaluate_metrics,
            lambda p: {n: jnp.full((), jnp.nan, b.dtype) for n, b in bufs.items()},
            params,
        )

    def finish(self, final: Carry, interrupted: bool = False) -> Result:
        """The :class:`Result` of a stopped carry (or, ``interrupted``, of a running one)."""
        ok = final.accepted
        params = tree_where(ok, final.params, final.prev_params)
        value = jnp.where(ok, final.value, final.prev_value)
        iterations = jnp.where(ok, final.k, final.k - 1)
        count = iterations // self.record_every + 1
        valid = jnp.arange(self.n_records, dtype=count.dtype) < count
        status = final.status
        if interrupted:  # a run that had already stopped keeps its own status
            status = jnp.where(final.done, status, status_array(Status.INTERRUPTED))

        def trim(buf):
            return jnp.where(valid, buf, jnp.nan)

        trace = Trace(
            loss=trim(final.loss_buf),
            grad_norm=trim(final.grad_norm_buf),
            step_size=trim(final.step_buf),
            metrics={n: trim(b) for n, b in final.metric_bufs.items()},
            count=count,
            record_every=self.record_every,
        )
        return Result(
            params=params,
            value=value,
            grad_norm=jnp.where(ok, final.grad_norm, final.prev_grad_norm),
            iterations=iterations,
            status=status,
            trace=trace,
            num_fun_evals=final.counts[0],
            num_grad_evals=final.counts[1],
            num_hess_evals=final.counts[2],
            num_hvp_evals=final.counts[3],
            best_params=final.best_params if self.track_best else params,
            best_value=final.best_value if self.track_best else value,
        )

    def run(self, init_params) -> Result:
        """The whole solve as one ``lax.while_loop``."""
        final = lax.while_loop(lambda c: ~c.done, self.body, self.initial(init_params))
        return self.finish(final)


def _solve_entry(spec: LoopSpec, solver, inputs: LoopInputs) -> Result:
    return Loop(spec, solver, inputs).run(inputs.init_params)


def _init_entry(spec: LoopSpec, solver, inputs: LoopInputs) -> Carry:
    return Loop(spec, solver, inputs).initial(inputs.init_params)


def _chunk_entry(spec: LoopSpec, solver, carry: Carry, inputs: LoopInputs, stop_at) -> Carry:
    # Iterate until the run stops or reaches iteration `stop_at` (traced: chunks of any length
    # share one compilation). The body is the very function the one-loop solve runs; the
    # carry holds the iterate, so `inputs` come without init_params.
    loop = Loop(spec, solver, inputs)
    return lax.while_loop(lambda c: ~c.done & (c.k < stop_at), loop.body, carry)


def _finish_entry(spec: LoopSpec, interrupted: bool, solver, carry: Carry,
                  inputs: LoopInputs) -> Result:
    return Loop(spec, solver, inputs).finish(carry, interrupted)


def record_bytes(spec: LoopSpec, params: Any, lanes: int = 1) -> int:
    """The size of the trace buffers: loss, gradient norm, step and one per metric (the
    itemsize is that of the first floating leaf of ``params``, or of a carry)."""
    floats = [x for x in jax.tree.leaves(params) if jnp.issubdtype(x.dtype, jnp.floating)]
    itemsize = floats[0].dtype.itemsize if floats else 8
    return spec.n_records * (3 + len(spec.metrics)) * itemsize * lanes


def _work(spec: LoopSpec, solver, *rest) -> int:
    return iteration_bound(solver, spec.max_iters)


def _solve_record_bytes(spec: LoopSpec, solver, inputs: LoopInputs) -> int:
    return record_bytes(spec, inputs.init_params)


def _chunk_record_bytes(spec: LoopSpec, solver, carry: Carry, *rest) -> int:
    return record_bytes(spec, carry)


# Each entry point compiles per the compile policy (lossopt.solvers._compile): called as
# entry(mode, spec, solver, ...), the spec (argument 0) static; the spec's max_iters (or the
# solver's iteration_estimate) bounds the loops' runs for "auto" (the initial point and the
# result are one pass each).
solve = Entry(_solve_entry, (0,), work_iters=_work, record_bytes=_solve_record_bytes)
init_chunks = Entry(_init_entry, (0,))
run_chunk = Entry(_chunk_entry, (0,), work_iters=_work, record_bytes=_chunk_record_bytes)
finish_chunks = Entry(_finish_entry, (0, 1))
