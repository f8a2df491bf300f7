"""lossopt: loss functions and the solvers that minimise them, in JAX.

Public names only; everything else lives in private modules.
"""

from lossopt import losses, regularizers
from lossopt.derivatives import grad, hessian, hessian_matrix, hvp

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "grad",
    "hessian",
    "hessian_matrix",
    "hvp",
    "losses",
    "regularizers",
]
