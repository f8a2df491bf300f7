"""Solvers that minimise ``fun(params, *args)`` in one compiled loop, with convergence traces.

:func:`minimize` drives any solver below inside one ``jax.jit``-compiled ``lax.while_loop``
and returns a :class:`Result` with the solution, a :class:`Status`, evaluation counts and a
:class:`Trace` of the loss, gradient norm, step length and user metrics. :func:`sweep` vmaps
it over a grid of hyperparameters.

Solvers are frozen dataclasses registered as pytrees: numeric hyperparameters are leaves
(sweepable by ``jax.vmap``), choices are static fields. Each has pure ``init`` and ``step``
methods and a ``monotone`` property; only :func:`minimize` loops.

- :class:`GradientDescent` -- momentum, Nesterov, gradient clipping, Armijo line search.
- :class:`Newton` -- exact Hessian with a shifted Cholesky, or matrix-free Newton-CG; always
  descends.
- :class:`LBFGS` -- limited-memory BFGS with a strong-Wolfe or Armijo line search; compiles
  to a compact program.
- :class:`Subgradient` -- constant, 1/sqrt(k) and Polyak step sizes for nonsmooth objectives.
- :class:`Optax` -- any optax optimizer, including ``optax.lbfgs()``.
- :class:`ProximalGradient` -- ISTA/FISTA for ``f + g`` with a penalty from
  :mod:`lossopt.prox` (L1, elastic net, group lasso, constraints): exact zeros.
- :class:`GaussNewton`, :class:`LevenbergMarquardt` -- nonlinear least squares
  ``1/2 ||r(x)||^2`` from a residual function, driven by :func:`minimize_least_squares`.
"""

from lossopt.solvers._chunked import Progress
from lossopt.solvers._compile import CompileChoice
from lossopt.solvers._driver import compile_choice, minimize, sweep
from lossopt.solvers._gradient_descent import GradientDescent
from lossopt.solvers._implicit import Implicit, Unroll
from lossopt.solvers._lbfgs import LBFGS
from lossopt.solvers._least_squares import least_squares_objective, minimize_least_squares
from lossopt.solvers._least_squares_solvers import GaussNewton, LevenbergMarquardt
from lossopt.solvers._linesearch import Armijo
from lossopt.solvers._newton import Newton
from lossopt.solvers._optax import Optax
from lossopt.solvers._protocol import Solver, StepResult
from lossopt.solvers._proximal import ProximalGradient
from lossopt.solvers._result import Result, Status, Trace
from lossopt.solvers._subgradient import Subgradient

__all__ = [
    "LBFGS",
    "Armijo",
    "CompileChoice",
    "GaussNewton",
    "GradientDescent",
    "Implicit",
    "LevenbergMarquardt",
    "Newton",
    "Optax",
    "Progress",
    "ProximalGradient",
    "Result",
    "Solver",
    "Status",
    "StepResult",
    "Subgradient",
    "Trace",
    "Unroll",
    "compile_choice",
    "least_squares_objective",
    "minimize",
    "minimize_least_squares",
    "sweep",
]
