"""lossopt: loss functions and the solvers that minimise them, in JAX.

Public names only; everything else lives in private modules.
"""

from lossopt import comparison, distributed, losses, problems, prox, regularizers, solvers
from lossopt._cache import enable_compile_cache
from lossopt.comparison import Comparison, compare
from lossopt.derivatives import grad, hessian, hessian_matrix, hvp
from lossopt.gradcheck import GradientReport, check_gradient, check_hessian
from lossopt.solvers import Result, Status, Trace, minimize, minimize_least_squares, sweep

__version__ = "0.1.0"

__all__ = [
    "Comparison",
    "GradientReport",
    "Result",
    "Status",
    "Trace",
    "__version__",
    "check_gradient",
    "check_hessian",
    "compare",
    "comparison",
    "distributed",
    "enable_compile_cache",
    "grad",
    "hessian",
    "hessian_matrix",
    "hvp",
    "losses",
    "minimize",
    "minimize_least_squares",
    "problems",
    "prox",
    "regularizers",
    "solvers",
    "sweep",
]
