"""Proximal gradient (ISTA) and its accelerated form (FISTA) for ``f(x) + g(x)``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from lossopt._pytree import PyTree
from lossopt._validation import check_choice, check_in_interval, check_positive
from lossopt.prox import Penalty, as_penalty
from lossopt.solvers._protocol import Objective, StepResult, pytree_dataclass, static_field
from lossopt.solvers._tree import tree_add_scaled, tree_scale, tree_sub, tree_vdot

__all__ = ["ProximalGradient"]

_ACCELERATIONS = (None, "fista")
_RESTARTS = (None, "gradient", "function")
_LINE_SEARCHES = (None, "backtracking")
# The value-based backtracking test is trusted only when its margin ||z - y||^2 / (2t) exceeds
# this many rounding units of the values it compares; below that, the gradient-based test
# decides (see `_accept`).
_ROUNDING_UNITS = 100.0


class ProximalGradientState(NamedTuple):
    step_size: Any  # the step of the last step (the warm start of the next backtracking)
    prev_params: Any  # FISTA: the previous iterate x_{k-1}; None for ISTA
    momentum: Any  # FISTA: theta_k (1 at the start and after a restart); None for ISTA


@pytree_dataclass
class ProximalGradient:
    """Proximal gradient descent (ISTA) and FISTA for ``F(x) = f(x, *args) + g(x)``.

    ``f`` is the smooth objective given to :func:`lossopt.minimize`; ``g`` is a penalty
    with a proximal operator from :mod:`lossopt.prox` (L1, elastic net, group lasso,
    nonnegativity, box constraints). With step ``t`` (``prox_{tg}(v) = argmin_z g(z) +
    ||z - v||^2 / (2t)``):

    - ISTA: ``x_{k+1} = prox_{t g}(x_k - t grad f(x_k))``;
    - FISTA: ``y_k = x_k + ((theta_{k-1} - 1) / theta_k) (x_k - x_{k-1})``,
      ``x_{k+1} = prox_{t g}(y_k - t grad f(y_k))`` and
      ``theta_k = (1 + sqrt(1 + 4 theta_{k-1}^2)) / 2``, from ``theta_0 = 1``.

    The returned iterate is always a prox output ``x_{k+1}`` (never the extrapolated
    ``y_k``), so the exact zeros of a soft-threshold and the feasibility of a projection hold
    in ``Result.params``.

    What the loop reports (through the solver protocol's ``measure`` hook): ``Result.value``
    and the trace's ``loss`` are ``F = f + g``, and ``Result.grad_norm``, the trace's
    ``grad_norm`` and the ``gtol`` rule use the gradient mapping
    ``G_t(x) = (x - prox_{tg}(x - t grad f(x))) / t`` at the returned iterate (max-abs norm),
    which is 0 exactly at a minimiser of ``F`` (``grad f`` is not). ``t`` is the step of the
    last iteration.

    - ``line_search="backtracking"``: Beck & Teboulle's test on the smooth part,
      ``f(x_{k+1}) <= f(y) + <grad f(y), x_{k+1} - y> + ||x_{k+1} - y||^2 / (2t)``, starting
      from the last accepted step (``learning_rate`` on the first iteration) and multiplying by
      ``shrink`` until it holds (steps never grow again). When that margin is below the
      rounding of ``f`` (near the solution) the test ``<grad f(x_{k+1}) - grad f(y),
      x_{k+1} - y> <= ||x_{k+1} - y||^2 / (2t)`` decides instead; for convex ``f`` it implies
      the first (Becker, Candès & Grant's remedy). ``max_backtracks`` failures in one
      iteration stop the run with ``LINE_SEARCH_FAILED``. Without it, ``t = learning_rate``
      (converges for ``t <= 1/L``, ``L`` the Lipschitz constant of ``grad f``).
    - ``restart`` (FISTA only; O'Donoghue & Candès' adaptive restart) resets ``theta`` to 1
      (the next step is a plain prox-gradient step) when the momentum points uphill:
      ``"gradient"`` when ``<y_k - x_{k+1}, x_{k+1} - x_k> > 0`` (the gradient-mapping
      scheme; costs nothing), ``"function"`` when ``F(x_{k+1}) > F(x_k)``.

    Cost per iteration (``value_and_grad`` calls): ISTA 1, FISTA 2 (at ``y_k`` and at
    ``x_{k+1}``), plus one per rejected backtracking trial. ISTA with backtracking is
    monotone; FISTA is not (``Result.best_params`` holds the best iterate seen).

    Start from a point where ``g`` is finite: for a constraint (``nonnegative``, ``box``)
    project the start first (``penalty.prox(x0, 1.0)``); at an infeasible point ``F = +inf``
    and the run stops at once with status ``NONFINITE``.

    Args:
        learning_rate: the step ``t`` (> 0), or the first trial step with backtracking; a
            pytree leaf (sweepable).
        prox: the penalty ``g`` (:mod:`lossopt.prox`; its strengths are leaves, so
            :func:`lossopt.sweep` can vary them), or ``None`` for ``g = 0``.
        acceleration: ``"fista"`` (default) or ``None`` (ISTA); static.
        restart: ``None`` (default), ``"gradient"`` or ``"function"``; FISTA only; static.
        line_search: ``None`` (default) or ``"backtracking"``; static.
        shrink: backtracking factor in (0, 1); a leaf.
        max_backtracks: trials per iteration before the search gives up (>= 1; static).

    Raises:
        ValueError: a hyperparameter outside its range, an unknown option, or ``restart``
            without ``acceleration="fista"``.
        TypeError: ``prox`` that is not a penalty.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import lossopt
        >>> from lossopt.solvers import ProximalGradient
        >>> X = jax.random.normal(jax.random.key(0), (40, 5))
        >>> y = X @ jnp.array([2.0, 0.0, 0.0, -1.0, 0.0])
        >>> def f(w, X, y):  # (1/(2n)) ||y - X w||^2
        ...     return 0.5 * jnp.mean((X @ w - y) ** 2)
        >>> solver = ProximalGradient(learning_rate=1.0, prox=lossopt.prox.l1(0.1),
        ...                           restart="gradient", line_search="backtracking")
        >>> res = lossopt.minimize(f, jnp.zeros(5), solver, args=(X, y), gtol=1e-6)
        >>> print(int(res.status) == 0, jnp.round(res.params, 1), int((res.params == 0).sum()))
        True [ 1.9  0.   0.  -0.9  0. ] 3

    References:
        Beck, A. and Teboulle, M. (2009). A fast iterative shrinkage-thresholding algorithm
        for linear inverse problems. *SIAM J. Imaging Sciences* 2(1), 183-202 (FISTA with
        backtracking).
        O'Donoghue, B. and Candès, E. (2015). Adaptive restart for accelerated gradient
        schemes. *Foundations of Computational Mathematics* 15, 715-732.
        Becker, S., Candès, E. and Grant, M. (2011). Templates for convex cone problems with
        applications to sparse signal recovery. *Math. Prog. Computation* 3, 165-218
        (Section 5.3: the backtracking test in finite precision).
        Parikh, N. and Boyd, S. (2014). Proximal algorithms. *Foundations and Trends in
        Optimization* 1(3) (the gradient mapping, Section 4.2).
    """

    learning_rate: ArrayLike
    prox: Penalty | None = None
    acceleration: str | None = static_field("fista")
    restart: str | None = static_field(None)
    line_search: str | None = static_field(None)
    shrink: ArrayLike = 0.5
    max_backtracks: int = static_field(30)

    def __post_init__(self) -> None:
        check_positive(self.learning_rate, "learning_rate")
        object.__setattr__(self, "prox", as_penalty(self.prox, "prox"))
        check_choice(self.acceleration, "acceleration", _ACCELERATIONS)
        check_choice(self.restart, "restart", _RESTARTS)
        if self.restart is not None and self.acceleration is None:
            raise ValueError(
                f"`restart` resets FISTA's momentum and needs acceleration='fista'; got "
                f"restart={self.restart!r} with acceleration=None"
            )
        check_choice(self.line_search, "line_search", _LINE_SEARCHES)
        check_in_interval(self.shrink, "shrink", 0.0, 1.0)
        if (not isinstance(self.max_backtracks, int) or isinstance(self.max_backtracks, bool)
                or self.max_backtracks < 1):
            raise ValueError(f"`max_backtracks` must be an int >= 1; got {self.max_backtracks!r}")

    @property
    def monotone(self) -> bool:
        """True for ISTA with backtracking: every accepted step decreases ``F``."""
        return self.acceleration is None and self.line_search is not None

    def init(
        self, objective: Objective, params: PyTree, value: jax.Array, grad: PyTree
    ) -> ProximalGradientState:
        step = jnp.asarray(self.learning_rate, value.dtype)
        if self.acceleration is None:
            return ProximalGradientState(step, None, None)
        return ProximalGradientState(step, params, jnp.ones((), value.dtype))

    def measure(
        self, objective: Objective, params: PyTree, value: jax.Array, grad: PyTree,
        state: ProximalGradientState,
    ) -> tuple[jax.Array, PyTree]:
        """``(F(x), G_t(x))``: the composite value and the gradient mapping at ``params``."""
        t = state.step_size
        total = value + self.prox.value(params).astype(value.dtype)
        forward = self.prox.prox(tree_add_scaled(params, -t, grad), t)
        return total, tree_scale(1 / t, tree_sub(params, forward))

    def step(
        self, objective: Objective, params: PyTree, value: jax.Array, grad: PyTree,
        state: ProximalGradientState,
    ) -> StepResult:
        dtype = value.dtype
        g = self.prox
        if self.acceleration is None:
            # `value` is the measured F(x_k); f(x_k) = F - g is known to the rounding of both.
            g_x = g.value(params).astype(dtype)
            y, f_y, grad_y, y_evals = params, value - g_x, grad, 0
            noise = jnp.abs(value) + jnp.abs(g_x)
        else:
            theta = state.momentum
            theta_next = (1 + jnp.sqrt(1 + 4 * theta * theta)) / 2
            beta = (theta - 1) / theta_next
            y = tree_add_scaled(params, beta, tree_sub(params, state.prev_params))
            f_y, grad_y = objective.value_and_grad(y)
            f_y = f_y.astype(dtype)
            y_evals, noise = 1, jnp.zeros((), dtype)

        def trial(t):
            z = g.prox(tree_add_scaled(y, -t, grad_y), t)
            z = jax.tree.map(lambda a, b: a.astype(b.dtype), z, params)
            f_z, grad_z = objective.value_and_grad(z)
            grad_z = jax.tree.map(lambda a, b: a.astype(b.dtype), grad_z, grad)
            return z, f_z.astype(dtype), grad_z

        if self.line_search is None:
            t = jnp.asarray(self.learning_rate, dtype)
            z, f_z, grad_z = trial(t)
            trials, failed = 1, jnp.asarray(False)
        else:
            t0 = state.step_size
            shrink = jnp.asarray(self.shrink, dtype)

            def cond(s):
                return ~s[5] & (s[4] < self.max_backtracks)

            def body(s):
                t = jnp.where(s[4] == 0, t0, s[0] * shrink)
                z, f_z, grad_z = trial(t)
                ok = _accept(y, f_y, grad_y, z, f_z, grad_z, t, noise)
                return (t, z, f_z, grad_z, s[4] + 1, ok)

            start = (t0, params, f_y, grad, jnp.asarray(0, jnp.int32), jnp.asarray(False))
            t, z, f_z, grad_z, trials, ok = lax.while_loop(cond, body, start)
            failed = ~ok

        if self.acceleration is None:
            new_state = ProximalGradientState(t, None, None)
        else:
            if self.restart == "gradient":
                restart = tree_vdot(tree_sub(y, z), tree_sub(z, params)) > 0
            elif self.restart == "function":
                restart = f_z + g.value(z).astype(dtype) > value
            else:
                restart = jnp.asarray(False)
            momentum = jnp.where(restart, jnp.ones((), dtype), theta_next).astype(dtype)
            new_state = ProximalGradientState(t, params, momentum)
        evals = y_evals + trials
        return StepResult(z, f_z, grad_z, new_state, fun_evals=evals, grad_evals=evals,
                          failed=failed)


def _accept(y, f_y, grad_y, z, f_z, grad_z, t, noise) -> jax.Array:
    """Beck & Teboulle's sufficient-decrease test on ``f``, robust to rounding near the end.

    ``margin = ||z - y||^2 / (2t)``. The value test ``f(z) - f(y) - <grad f(y), z - y> <=
    margin`` decides while ``margin`` exceeds the rounding of the values compared; below, the
    gradient test ``<grad f(z) - grad f(y), z - y> <= margin`` does (for convex ``f`` it
    implies the value test, and it does not cancel catastrophically). ``z == y`` (a fixed
    point) passes. A NaN anywhere fails.
    """
    d = tree_sub(z, y)
    sq = tree_vdot(d, d)
    margin = sq / (2 * t)
    value_ok = f_z - f_y - tree_vdot(grad_y, d) <= margin
    grad_ok = tree_vdot(tree_sub(grad_z, grad_y), d) <= margin
    eps = jnp.finfo(f_y.dtype).eps
    reliable = margin > _ROUNDING_UNITS * eps * (jnp.abs(f_y) + jnp.abs(f_z) + noise)
    return jnp.isfinite(f_z) & ((sq == 0) | jnp.where(reliable, value_ok, grad_ok))
