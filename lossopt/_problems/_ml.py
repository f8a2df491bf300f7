"""Machine-learning test problems whose f* comes from a tight reference solve.

Each objective is a mean loss over the data plus ``0.5 * lam * ||w||^2`` (the intercept ``b`` is
not penalised); parameters are the pytree ``{"w": (d,), "b": ()}`` and the data ``args`` are
``(X, y, lam)``. ``f_star`` and ``x_star`` come from :func:`_reference_solve`: lossopt's
:class:`~lossopt.solvers.Newton` (shifted Cholesky, Armijo) run to a max-abs gradient of
``1e-12`` in float64 (a scoped ``jax.enable_x64(True)``, whatever the caller's precision;
finished by full Newton steps should the Armijo search stop first on the rounding floor of
``f``), on the first ``get`` of the problem in a process, then cached. The test-suite checks
each against an independent solver (scikit-learn, scipy).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lossopt._problems._core import Problem, register
from lossopt.losses import huber, poisson_nll, sigmoid_binary_cross_entropy
from lossopt.solvers import Newton, Status, minimize

__all__: list[str] = []

_GTOL = 1e-12
_SOLVE = (f"reference solve: lossopt.minimize(..., Newton(), gtol={_GTOL:g}) (max-abs gradient) "
          "in float64, on first use, cached in-process")


def _float64():
    """A scoped float64 context (``jax.experimental.enable_x64`` on old JAX)."""
    ctx = getattr(jax, "enable_x64", None)
    if ctx is not None:
        return ctx(True)
    from jax.experimental import enable_x64  # pragma: no cover - JAX < 0.5

    return enable_x64(True)  # pragma: no cover


def _reference_solve(name, fun, x0, args):
    """(f*, x*) by Newton in float64 to ``max|grad| <= 1e-12``; raises if it gets no closer.

    Newton with its Armijo search first; should the search stop on the rounding floor of ``f``
    (LINE_SEARCH_FAILED) above the tolerance, as on the Poisson problem at about 2e-10, full
    Newton steps (no line search) from there finish it -- safe that close to the minimiser.
    """
    with _float64():
        params = jax.tree.map(jnp.asarray, x0)
        data = tuple(jnp.asarray(a) for a in args)
        result = minimize(fun, params, Newton(), args=data, max_iters=100, gtol=_GTOL)
        if Status(int(result.status)) is not Status.CONVERGED and result.grad_norm < 1e-6:
            result = minimize(fun, result.params, Newton(line_search=None), args=data,
                              max_iters=5, gtol=_GTOL)
        if Status(int(result.status)) is not Status.CONVERGED:  # pragma: no cover - guard
            raise RuntimeError(
                f"the reference solve of problem {name!r} did not converge: "
                f"{Status(int(result.status)).name}, max|grad| = {float(result.grad_norm):.3g}"
            )
        x_star = jax.tree.map(lambda v: np.asarray(v, dtype=np.float64), result.params)
        f_star = float(fun(x_star, *data))
    return f_star, x_star


def _linear(params, X):
    return X @ params["w"] + params["b"]


def _ridge(params, lam):
    return 0.5 * lam * jnp.sum(jnp.square(params["w"]))


def _ml_problem(name, fun, X, y, lam, tags, data_source):
    X = np.asarray(X, dtype=np.float64)
    x0 = {"w": np.zeros(X.shape[1]), "b": np.float64(0.0)}
    args = (X, np.asarray(y, dtype=np.float64), np.asarray(lam, dtype=np.float64))
    f_star, x_star = _reference_solve(name, fun, x0, args)
    return Problem(name=name, fun=fun, x0=x0, args=args, f_star=f_star, x_star=x_star,
                   source=f"{data_source}; {_SOLVE}", residuals=None, n=X.shape[1] + 1,
                   tags=("ml", *tags))


def _logistic_objective(params, X, y, lam):
    return sigmoid_binary_cross_entropy(_linear(params, X), y) + _ridge(params, lam)


def breast_cancer_standardized():
    """scikit-learn's breast_cancer (569 x 30), features standardised (mean 0, std 1, ddof 0)."""
    try:
        from sklearn.datasets import load_breast_cancer
    except ImportError as err:
        raise ImportError(
            "problem 'logistic_breast_cancer' needs scikit-learn's breast_cancer data set; "
            "install it with `pip install scikit-learn` (or `pip install lossopt[test]`)"
        ) from err
    data = load_breast_cancer()
    X = np.asarray(data.data, dtype=np.float64)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X, np.asarray(data.target, dtype=np.float64)


@register("logistic_breast_cancer", ("ml", "convex", "smooth", "classification"))
def logistic_breast_cancer():
    """L2-regularised logistic regression on scikit-learn's breast_cancer (569 x 30).

    ``f(w, b) = mean_i [log(1 + exp(z_i)) - y_i z_i] + (lam / 2) ||w||^2``, ``z = X w + b``,
    features standardised, ``y`` in {0, 1}, ``lam = 1e-2`` (scikit-learn's
    ``LogisticRegression(C=1 / (lam * 569))`` with an unpenalised intercept). Start ``w = 0,
    b = 0`` (``f = log 2``). Strictly convex; f* from a float64 Newton solve. Needs
    scikit-learn (loaded on first use).
    """
    X, y = breast_cancer_standardized()
    return _ml_problem("logistic_breast_cancer", _logistic_objective, X, y, 1e-2,
                       ("convex", "smooth", "classification"),
                       "scikit-learn load_breast_cancer, standardised; lam = 1e-2")


def _poisson_objective(params, X, y, lam):
    return poisson_nll(_linear(params, X), y) + _ridge(params, lam)


def poisson_data(n=500, d=5, seed=0):
    """Seeded synthetic counts: ``X ~ N(0, 1/d)``, ``y ~ Poisson(exp(X w + 1))``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) / np.sqrt(d)
    w = np.array([0.8, -0.6, 0.4, 0.2, -0.4])[:d]
    y = rng.poisson(np.exp(X @ w + 1.0)).astype(np.float64)
    return X, y


@register("poisson_synthetic", ("ml", "convex", "smooth", "regression"))
def poisson_synthetic():
    """Poisson regression (log link) on seeded synthetic counts (500 x 5).

    ``f(w, b) = mean_i [exp(z_i) - y_i z_i] + (lam / 2) ||w||^2``, ``z = X w + b``,
    ``X ~ N(0, 1/5)`` and ``y ~ Poisson(exp(X w_true + 1))`` drawn with
    ``numpy.random.default_rng(0)``, ``lam = 1e-3`` (scikit-learn's
    ``PoissonRegressor(alpha=lam)`` up to a constant). Start ``w = 0, b = 0``. Strictly convex;
    f* from a float64 Newton solve.
    """
    X, y = poisson_data()
    return _ml_problem("poisson_synthetic", _poisson_objective, X, y, 1e-3,
                       ("convex", "smooth", "regression"),
                       "synthetic counts, numpy default_rng(0); lam = 1e-3")


def _huber_objective(params, X, y, lam):
    return huber(_linear(params, X), y, delta=1.0) + _ridge(params, lam)


def huber_data(n=200, d=5, seed=1):
    """Seeded linear data with 10% outliers: ``y = X w + 0.5 + 0.1 e``, then 20 points moved
    by +-U(10, 20)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w = np.array([1.0, -2.0, 0.5, 0.0, 1.5])[:d]
    y = X @ w + 0.5 + 0.1 * rng.normal(size=n)
    outliers = rng.choice(n, size=n // 10, replace=False)
    y[outliers] += rng.choice([-1.0, 1.0], size=n // 10) * rng.uniform(10.0, 20.0, size=n // 10)
    return X, y


@register("huber_outliers", ("ml", "convex", "robust", "regression"))
def huber_outliers():
    """Robust (Huber, ``delta = 1``) linear regression on seeded data with 10% outliers (200 x 5).

    ``f(w, b) = mean_i huber_1(x_i . w + b - y_i) + (lam / 2) ||w||^2``, ``lam = 1e-4``; data
    from ``numpy.random.default_rng(1)``: ``y = X w_true + 0.5 + 0.1 e``, then 20 responses
    moved by ``+-U(10, 20)``. Start ``w = 0, b = 0``. Convex and C1 (the Hessian jumps where a
    residual crosses +-delta: not tagged smooth); f* from a float64 Newton solve.
    """
    X, y = huber_data()
    return _ml_problem("huber_outliers", _huber_objective, X, y, 1e-4,
                       ("convex", "robust", "regression"),
                       "synthetic data, numpy default_rng(1), 10% outliers; lam = 1e-4")

