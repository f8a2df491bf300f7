"""What :func:`lossopt.minimize` returns: :class:`Result`, its :class:`Trace` and :class:`Status`.

``Result`` and ``Trace`` are pytrees of arrays, so a solve can be returned from ``jax.jit`` and
batched by ``jax.vmap`` (every field gains a leading axis; pick one run with
``result.lane(i)``). On the host a single run's status is a :class:`Status` and its counts are
ints (:func:`host_result`); host-side conveniences (``message``, ``summary``, ``to_numpy``,
``trace["loss"]``, ``to_csv``) read the concrete arrays.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lossopt._io import atomic_path
from lossopt._pytree import PyTree
from lossopt._validation import did_you_mean
from lossopt.solvers._protocol import pytree_dataclass, static_field

__all__ = ["Result", "Status", "Trace"]


class Status(enum.IntEnum):
    """Why a solve stopped. Each member carries an actionable :attr:`message`.

    The three ``CONVERGED*`` members say which stopping rule fired; :attr:`converged` is true
    for all three. Only ``CONVERGED`` (the gradient rule) certifies first-order optimality.
    """

    CONVERGED = 0
    CONVERGED_FTOL = 1
    CONVERGED_XTOL = 2
    MAX_ITERS = 3
    NONFINITE = 4
    LINE_SEARCH_FAILED = 5
    INTERRUPTED = 6

    @property
    def converged(self) -> bool:
        """True for the ``CONVERGED*`` members."""
        return bool(is_converged(self))

    @property
    def message(self) -> str:
        """What happened and what to do about it."""
        return _MESSAGES[self]


_MESSAGES = {
    Status.CONVERGED: (
        "Converged: the gradient's max-abs norm fell to gtol or below (first-order optimality)."
    ),
    Status.CONVERGED_FTOL: (
        "Converged on ftol: the relative decrease of the loss fell to ftol or below. The "
        "gradient may still exceed gtol: check result.grad_norm, or lower ftol to run on."
    ),
    Status.CONVERGED_XTOL: (
        "Converged on xtol: the relative step length fell to xtol or below. The gradient may "
        "still exceed gtol: check result.grad_norm, or lower xtol to run on."
    ),
    Status.MAX_ITERS: (
        "Stopped after max_iters iterations before any tolerance was met: raise max_iters, "
        "take larger steps (a larger learning_rate, line_search='armijo', or Newton), or "
        "loosen gtol."
    ),
    Status.NONFINITE: (
        "Stopped on a NaN or Inf in the loss, gradient or parameters; the last finite iterate "
        "is returned. Lower the learning rate, add line_search='armijo' or clip_norm, check "
        "the objective for log(0) or division by zero, and verify a hand-written gradient "
        "with lossopt.check_gradient."
    ),
    Status.LINE_SEARCH_FAILED: (
        "The line search found no step that decreases the loss enough, so the run stopped; the "
        "last accepted iterate is returned. Armijo backtracking (GradientDescent, Newton, "
        "LBFGS(line_search='armijo')) tried Armijo.max_steps trials (40 by default) and, with "
        "scale_budget=True (the default), went on halving until its last, smallest step no "
        "longer moved the parameters (t ||d|| <= eps ||x||); L-BFGS's strong-Wolfe search "
        "tried its max_line_search_steps trials (20 by default); other solvers' step searches "
        "ran out of trials likewise. A small result.grad_norm means the decrease left is below "
        "the rounding of the loss: the iterate is as accurate as this precision allows (use "
        "float64, or set ftol to stop on the loss first). A large one usually means the "
        "gradient does not match the loss: check it with lossopt.check_gradient."
    ),
    Status.INTERRUPTED: (
        "Interrupted (Ctrl-C) before any stopping rule fired; params, trace and counts are "
        "those of the last completed chunk of iterations. With checkpoint_dir, call minimize "
        "again with resume=True to continue the run where it stopped."
    ),
}


def is_converged(status: Status | ArrayLike) -> bool | jax.Array:
    """Whether a status code is one of the ``CONVERGED*`` members: the one definition.

    Works on a :class:`Status`, a Python int, and an int array (traced or batched), where it
    returns a boolean array.
    """
    return status <= Status.CONVERGED_XTOL


_CORE_COLUMNS = ("iteration", "loss", "grad_norm", "step_size")


def _require_single(count: Any, what: str) -> int:
    arr = np.asarray(count)
    if arr.ndim != 0:
        raise ValueError(
            f"this {what} holds a batch of {arr.shape} runs (from jax.vmap or lossopt.sweep); "
            "select one run first with result.lane(i)"
        )
    return int(arr)


@pytree_dataclass
class Trace:
    """Convergence history, written inside the compiled loop.

    Buffers have length ``max_iters // record_every + 1``; record ``j`` holds iteration
    ``j * record_every`` (record 0 is the initial point) and records past the end of the run
    are NaN. ``step_size[j]`` is the Euclidean length ``||x_k - x_{k-1}||`` of the step that
    produced iteration ``k`` (NaN at the initial point).

    Attributes:
        loss, grad_norm, step_size: arrays of shape ``(num_records,)``; ``grad_norm`` is the
            max-abs norm, the quantity ``gtol`` tests.
        metrics: ``{name: array}``, one buffer per user metric.
        count: number of valid records (``iterations // record_every + 1``).
        record_every: iterations between records (static).
    """

    loss: jax.Array
    grad_norm: jax.Array
    step_size: jax.Array
    metrics: dict[str, jax.Array]
    count: jax.Array
    record_every: int = static_field(1)

    def to_numpy(self) -> dict[str, np.ndarray]:
        """The valid records as numpy arrays: ``iteration``, ``loss``, ``grad_norm``,
        ``step_size`` and the metrics (in sorted name order, as JAX orders dict pytrees),
        trimmed to the iterations run.

        Raises:
            ValueError: for a batched trace (from ``jax.vmap``/``sweep``): select a lane first.
        """
        n = _require_single(self.count, "trace")
        out = {"iteration": np.arange(n, dtype=np.int64) * self.record_every}
        out["loss"] = np.asarray(self.loss)[:n]
        out["grad_norm"] = np.asarray(self.grad_norm)[:n]
        out["step_size"] = np.asarray(self.step_size)[:n]
        for name, buf in self.metrics.items():
            out[name] = np.asarray(buf)[:n]
        return out

    def __getitem__(self, name: str) -> np.ndarray:
        """One column of :meth:`to_numpy`, trimmed to the iterations run: ``trace["loss"]``.

        Raises:
            KeyError: for a name that is not a column (the columns are listed).
            ValueError: for a batched trace: select a lane first.
        """
        columns = self.to_numpy()
        if name not in columns:
            raise KeyError(f"no trace column {name!r}{did_you_mean(name, columns)}; columns: "
                           f"{', '.join(columns)}")
        return columns[name]

    def to_dict(self) -> dict[str, list[float]]:
        """Like :meth:`to_numpy` but with Python lists (JSON-serialisable)."""
        return {k: v.tolist() for k, v in self.to_numpy().items()}

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write the valid records as CSV (header row, one row per record), atomically.

        The file is written through :func:`lossopt._io.atomic_path` (a temporary file in the
        same folder, synced, given the umask's permissions and moved into place), so a reader
        never sees a partial file.
        """
        columns = self.to_numpy()
        with atomic_path(path, prefix=".trace-", suffix=".csv.tmp") as tmp:
            with open(tmp, "w", newline="") as fh:
                writer = csv.writer(fh)
                names = list(columns)
                writer.writerow(names)
                for row in zip(*(columns[n].tolist() for n in names), strict=True):
                    writer.writerow([repr(v) for v in row])


@pytree_dataclass
class Result:
    """The outcome of :func:`lossopt.minimize`.

    Attributes:
        params: the final iterate, in the structure of ``init_params``. After ``NONFINITE`` it
            is the last finite iterate; after ``LINE_SEARCH_FAILED`` the last accepted one.
        value: the objective at ``params``.
        grad_norm: max-abs norm of the gradient at ``params``.
        iterations: accepted steps taken (``params`` is iterate number ``iterations``).
        status: why the run stopped: a :class:`Status` member on the host, an int32 array
            inside ``jax.jit``/``jax.vmap`` and for batched results (``Status(int(code))``).
        trace: the :class:`Trace`.
        num_fun_evals, num_grad_evals: objective values and gradients evaluated, the initial
            point and every line-search trial included (one ``value_and_grad`` counts one of
            each).
        num_hess_evals: full Hessians evaluated (``Newton(linear_solver="cholesky")``).
        num_hvp_evals: Hessian-vector products (``Newton(linear_solver="cg")``).
        best_params, best_value: the iterate with the lowest objective seen. For monotone
            solvers (``solver.monotone``: Armijo line searches) it is ``params``; the
            subgradient method, optax optimizers and fixed-step gradient descent track it.

    On the host (a call of :func:`lossopt.minimize` outside ``jax.jit``, or :meth:`lane`
    of a batched result) ``status`` is a :class:`Status` and ``iterations`` and the counts are
    Python ints, so ``result.status.name``, ``result.converged`` and
    ``range(result.iterations)`` read naturally; reading them waits for the run to finish.
    Inside ``jax.jit``/``jax.vmap``, and for a batched result, every field is an array.

    Properties ``converged`` (a bool on the host, an array under ``jit``) and ``message`` (a
    host string) derive from ``status``; :meth:`summary` prints the whole outcome.
    """

    params: PyTree
    value: jax.Array
    grad_norm: jax.Array
    iterations: jax.Array
    status: jax.Array
    trace: Trace
    num_fun_evals: jax.Array
    num_grad_evals: jax.Array
    num_hess_evals: jax.Array
    num_hvp_evals: jax.Array
    best_params: PyTree
    best_value: jax.Array

    @property
    def converged(self) -> bool | jax.Array:
        """The run stopped on gtol, ftol or xtol: a bool on the host, else a boolean array."""
        if isinstance(self.status, Status):
            return self.status.converged
        return is_converged(self.status)

    @property
    def message(self) -> str | list[str]:
        """The status's message (a list of messages for a batched result)."""
        if isinstance(self.status, jax.core.Tracer):
            raise TypeError(
                "Result.message is a host-side string: read it outside jax.jit/jax.vmap"
            )
        codes = np.asarray(self.status)
        if codes.ndim == 0:
            return Status(int(codes)).message
        return [Status(int(c)).message for c in codes.ravel()]

    def lane(self, i: int) -> Result:
        """Run ``i`` of a batched result (from ``jax.vmap`` or :func:`lossopt.sweep`)."""
        return host_result(jax.tree.map(lambda x: x[i], self))

    def summary(self) -> str:
        """A few lines saying how the run ended: status and its message, iterations, value,
        gradient norm, evaluations (and the best value where it differs from the last).

        Raises:
            ValueError: for a batched result: select a lane first.
            TypeError: inside ``jax.jit``/``jax.vmap`` (a host-side string).
        """
        if isinstance(self.status, jax.core.Tracer):
            raise TypeError("Result.summary() is a host-side string: call it outside jax.jit")
        _require_single(self.status, "result")
        status = Status(int(np.asarray(self.status)))
        value = float(np.asarray(self.value))
        best = float(np.asarray(self.best_value))
        counts = [f"{int(np.asarray(n))} {what}" for n, what in (
            (self.num_fun_evals, "values"), (self.num_grad_evals, "gradients"),
            (self.num_hess_evals, "Hessians"), (self.num_hvp_evals, "Hessian-vector products"),
        ) if int(np.asarray(n)) or what in ("values", "gradients")]
        lines = [
            f"{status.name} after {int(np.asarray(self.iterations))} iterations: "
            f"{status.message}",
            f"value {value:.10g}, grad_norm {float(np.asarray(self.grad_norm)):.3g} (max-abs "
            "gradient; a proximal solver's gradient mapping)",
            "evaluations: " + ", ".join(counts),
        ]
        if not (best == value or (np.isnan(best) and np.isnan(value))):
            lines.append(f"best value seen {best:.10g} (result.best_params)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        try:
            status = Status(int(np.asarray(self.status)))
            return (
                f"Result(status={status.name}, iterations={int(np.asarray(self.iterations))}, "
                f"value={float(np.asarray(self.value)):.6g}, "
                f"grad_norm={float(np.asarray(self.grad_norm)):.3g})"
            )
        except (TypeError, ValueError, jax.errors.ConcretizationTypeError):
            return f"Result(status={self.status}, iterations={self.iterations}, ...)"


_COUNTS = ("iterations", "num_fun_evals", "num_grad_evals", "num_hess_evals", "num_hvp_evals")


def host_result(result: Result) -> Result:
    """``result`` with its status a :class:`Status` and its counts Python ints, when it is one
    concrete run; a traced or batched result is returned as it is (every field an array)."""
    status = result.status
    if isinstance(status, (Status, jax.core.Tracer)) or np.ndim(status) != 0:
        return result
    if any(isinstance(getattr(result, n), jax.core.Tracer) for n in _COUNTS):
        return result
    return dataclasses.replace(
        result, status=Status(int(np.asarray(status))),
        **{n: int(np.asarray(getattr(result, n))) for n in _COUNTS},
    )


def status_array(status: Status) -> jax.Array:
    """A status code as the int32 scalar carried in the loop."""
    return jnp.asarray(int(status), dtype=jnp.int32)
