"""Test problems with known minima: the More-Garbow-Hillstrom set and small ML problems.

Each :class:`Problem` bundles an objective ``fun(params, *args)`` in lossopt's convention (data
in ``args``), its standard starting point ``x0``, the known minimum ``f_star`` (and the
minimiser ``x_star`` where it is known and unique), and ``source``, which says where ``f_star``
comes from. Least-squares problems also carry ``residuals`` with
``fun(x, *args) == sum(residuals(x, *args)^2)`` exactly (no factor 1/2: MGH's convention).

- **MGH** (tag ``"mgh"``): all 35 problems of More, Garbow & Hillstrom (1981), written from the
  paper's definitions, with its standard starting points. ``f_star`` is the paper's value;
  where it is not zero, the stored value has more digits (from a float64 Levenberg-Marquardt
  solve) that agree with the paper's six truncated ones. Variable-dimension problems take
  ``n`` (and some ``m``); where the paper publishes f* only for some dimensions (Watson,
  penalty I/II, Jennrich-Sampson, Brown-Dennis, Chebyquad) only those are accepted. Where the
  paper lists several local minima, ``f_star`` is the global one and ``source`` names the
  others (a solver may legitimately stop at one: Freudenstein-Roth, Bard, Kowalik-Osborne,
  Biggs EXP6, trigonometric).
- **ML** (tag ``"ml"``): ``logistic_breast_cancer`` (needs scikit-learn), ``poisson_synthetic``
  and ``huber_outliers``; parameters ``{"w", "b"}``, data ``(X, y, lam)``. ``f_star`` comes
  from a float64 Newton solve run on the first :func:`get` in a process (then cached).

Tags: ``mgh``, ``ml``, ``least_squares``, ``zero_residual`` (f* = 0), ``smooth`` (C2),
``convex``, ``linear``, ``badly_scaled``, ``singular`` (singular Hessian at the minimiser),
``multiple_minima``, ``variable_dimension``, ``classification``, ``regression``, ``robust``.

Example:
    >>> from lossopt import problems
    >>> p = problems.get("rosenbrock")
    >>> p
    Problem(name='rosenbrock', n=2, f_star=0.0,
            tags=('mgh', 'least_squares', 'smooth', 'zero_residual'))
    >>> round(float(p.value(p.x0)), 4)  # 10^2 (1 - 1.44)^2 + 2.2^2
    24.2
    >>> problems.names("badly_scaled")
    ['brown_badly_scaled', 'meyer', 'powell_badly_scaled']
    >>> problems.get("extended_rosenbrock", n=4).x0
    array([-1.2,  1. , -1.2,  1. ])

References:
    More, J. J., Garbow, B. S. and Hillstrom, K. E. (1981). Testing unconstrained optimization
    software. ACM Transactions on Mathematical Software 7(1), 17-41.
"""

from lossopt._problems import _mgh, _ml  # noqa: F401  (they register the problems)
from lossopt._problems._core import Problem, ProblemInfo, catalog, get, names

__all__ = ["Problem", "ProblemInfo", "catalog", "get", "names"]
