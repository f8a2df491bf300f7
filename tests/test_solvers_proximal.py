"""lossopt.prox penalties and solvers.ProximalGradient (ISTA/FISTA) against independent references.

Least-squares objectives use scikit-learn's scaling throughout: ``f(w) = (1/(2n)) ||y - X w||^2``,
so ``Lasso(alpha)`` minimises ``f + alpha ||w||_1`` and ``ElasticNet(alpha=A, l1_ratio=R)``
minimises ``f + A R ||w||_1 + A (1 - R) / 2 ||w||^2``, which is lossopt's
``elastic_net(a, r)`` (``a (r |w|_1 + (1 - r) ||w||^2)``) with ``a r = A R`` and
``a (1 - r) = A (1 - R) / 2``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import scipy.stats
from sklearn.linear_model import ElasticNet, Lasso, MultiTaskLasso

import lossopt
from lossopt import prox, regularizers
from lossopt.solvers import ProximalGradient, Status

MAX_ITERS = 20_000  # one value everywhere: compiled loops are shared between tests
N, P = 60, 12  # one problem shape: compiled loops are shared between tests
GTOL = 1e-10  # gradient-mapping tolerance of the known-answer solves


def least_squares(w, X, y):
    return 0.5 * jnp.mean((X @ w - y) ** 2)


def np_soft(x, a):
    return np.sign(x) * np.maximum(np.abs(x) - a, 0.0)


def lipschitz(X):
    return float(np.linalg.eigvalsh(X.T @ X / X.shape[0]).max())


def solve(solver, X, y, w0=None, **kwargs):
    w0 = jnp.zeros(X.shape[1]) if w0 is None else w0
    options = {"max_iters": MAX_ITERS, "gtol": GTOL, **kwargs}
    return lossopt.minimize(least_squares, w0, solver, args=(jnp.asarray(X), jnp.asarray(y)),
                            **options)


@pytest.fixture(scope="module")
def lasso_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, P))
    w = np.zeros(P)
    w[:4] = [3.0, -2.0, 1.5, 0.8]  # a sparse ground truth
    y = X @ w + 0.3 * rng.standard_normal(N)
    return X, y


def sklearn_fit(model, X, y):
    # tol=1e-13 and a large max_iter: coordinate descent to far below the 1e-6 compared.
    return model.set_params(fit_intercept=False, tol=1e-13, max_iter=1_000_000).fit(X, y).coef_


# --- prox operators against their closed forms -----------------------------------------------

RNG = np.random.default_rng(1)
X_VEC = np.concatenate([RNG.standard_normal(6) * 2, [0.1, -0.3, 0.0]])  # small entries too
X_MAT = RNG.standard_normal((4, 3))


def _group_rows(x, t, s):
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x * np.maximum(0.0, 1.0 - t * s / np.maximum(norms, 1e-300))


CLOSED_FORMS = [
    ("l1", prox.l1(0.7), X_VEC, lambda x, t: np_soft(x, 0.7 * t)),
    ("l1_zero_strength", prox.l1(0.0), X_VEC, lambda x, t: x),
    ("elastic_net", prox.elastic_net(0.8, 0.3), X_VEC,
     lambda x, t: np_soft(x, t * 0.8 * 0.3) / (1 + 2 * t * 0.8 * 0.7)),
    ("elastic_net_pure_l2", prox.elastic_net(0.8, 0.0), X_VEC, lambda x, t: x / (1 + 1.6 * t)),
    ("group_lasso_rows", prox.group_lasso(0.9, groups=0), X_MAT, lambda x, t: _group_rows(x, t, 0.9)),
    ("group_lasso_cols", prox.group_lasso(0.9, groups=-1), X_MAT,
     lambda x, t: _group_rows(x.T, t, 0.9).T),
    ("group_lasso_leaf", prox.group_lasso(0.9), X_MAT,
     lambda x, t: x * max(0.0, 1 - t * 0.9 / np.linalg.norm(x))),
    ("nonnegative", prox.nonnegative(), X_VEC, lambda x, t: np.maximum(x, 0.0)),
    ("box", prox.box(-0.5, 1.2), X_VEC, lambda x, t: np.clip(x, -0.5, 1.2)),
    ("box_array", prox.box(np.full(9, -1.0), np.linspace(0, 2, 9)), X_VEC,
     lambda x, t: np.clip(x, -1.0, np.linspace(0, 2, 9))),
    ("box_one_sided", prox.box(-np.inf, 0.25), X_VEC, lambda x, t: np.minimum(x, 0.25)),
    ("zero", prox.zero(), X_VEC, lambda x, t: x),
]


@pytest.mark.parametrize("step", [0.3, 1.7])
@pytest.mark.parametrize(("name", "penalty", "x", "closed_form"), CLOSED_FORMS,
                         ids=[c[0] for c in CLOSED_FORMS])
def test_prox_matches_closed_form(name, penalty, x, closed_form, step):
    got = np.asarray(penalty.prox(jnp.asarray(x), step))
    # Elementwise closed forms in float64: a few rounding units.
    np.testing.assert_allclose(got, closed_form(x, step), rtol=1e-14, atol=1e-15)


VALUES = [
    (prox.l1(0.7), lambda x: 0.7 * np.abs(x).sum()),
    (prox.elastic_net(0.8, 0.3), lambda x: 0.8 * (0.3 * np.abs(x).sum() + 0.7 * (x ** 2).sum())),
    (prox.group_lasso(0.9, groups=0), lambda x: 0.9 * np.linalg.norm(x, axis=1).sum()),
    (prox.group_lasso(0.9), lambda x: 0.9 * np.linalg.norm(x)),
    (prox.nonnegative(), lambda x: 0.0 if (x >= 0).all() else np.inf),
    (prox.box(-0.5, 1.2), lambda x: 0.0 if ((x >= -0.5) & (x <= 1.2)).all() else np.inf),
    (prox.zero(), lambda x: 0.0),
]


@pytest.mark.parametrize(("penalty", "reference"), VALUES, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("x", [X_MAT, np.abs(X_MAT) * 0.3], ids=["signed", "feasible"])
def test_penalty_value(penalty, reference, x):
    np.testing.assert_allclose(float(penalty.value(jnp.asarray(x))), reference(x), rtol=1e-14)


def test_values_share_the_regularizers_scaling():
    x = jnp.asarray(X_VEC)
    # Same formulas summed in a different order: rounding only.
    np.testing.assert_allclose(prox.l1(0.7).value(x), regularizers.l1(x, 0.7), rtol=1e-14)
    np.testing.assert_allclose(prox.elastic_net(0.8, 0.3).value(x),
                               regularizers.elastic_net(x, alpha=0.8, l1_ratio=0.3), rtol=1e-14)


@pytest.mark.parametrize(("name", "penalty", "x", "closed_form"), CLOSED_FORMS,
                         ids=[c[0] for c in CLOSED_FORMS])
def test_prox_is_the_minimiser_of_its_problem(name, penalty, x, closed_form):
    # prox_{tg}(x) = argmin_z g(z) + ||z - x||^2 / (2t): no random perturbation of the output
    # (feasible ones: projected back by clipping to the set where g is finite) does better.
    t = 0.6
    z = np.asarray(penalty.prox(jnp.asarray(x), t))

    def phi(v):
        return float(penalty.value(jnp.asarray(v))) + np.sum((v - x) ** 2) / (2 * t)

    best = phi(z)
    rng = np.random.default_rng(2)
    for scale in (1e-1, 1e-3, 1e-6):
        for _ in range(20):
            v = z + scale * rng.standard_normal(z.shape)
            if name.startswith("nonneg"):
                v = np.maximum(v, 0.0)
            if name.startswith("box"):
                v = np.asarray(penalty.prox(jnp.asarray(v), 1.0))
            # A strongly convex problem: every v is at least as bad (slack: rounding of phi).
            assert phi(v) >= best - 1e-13 * max(1.0, abs(best))


def test_l1_prox_optimality_condition():
    # (x - z)/t is a subgradient of s|.|_1 at z: s sign(z_i) where z_i != 0, |.| <= s at 0.
    s, t = 0.7, 0.8
    x = jnp.asarray(X_VEC)
    z = np.asarray(prox.l1(s).prox(x, t))
    u = (X_VEC - z) / t
    nz = z != 0
    assert nz.any() and (~nz).any()  # both cases are exercised
    np.testing.assert_allclose(u[nz], s * np.sign(z[nz]), rtol=1e-13)
    assert np.all(np.abs(u[~nz]) <= s + 1e-14)
    assert np.all(z[~nz] == 0.0)  # exact zeros, not tiny numbers


def test_prox_over_a_pytree_and_pytree_bounds():
    params = {"a": jnp.asarray(X_VEC[:4]), "b": jnp.asarray(X_MAT)}
    out = prox.l1(0.5).prox(params, 1.0)
    np.testing.assert_allclose(out["a"], np_soft(X_VEC[:4], 0.5), rtol=1e-14)
    np.testing.assert_allclose(out["b"], np_soft(X_MAT, 0.5), rtol=1e-14)
    # group_lasso over leaves: each leaf is one group
    out = prox.group_lasso(1.0).prox(params, 1.0)
    na = np.linalg.norm(X_VEC[:4])
    np.testing.assert_allclose(out["a"], X_VEC[:4] * max(0, 1 - 1 / na), rtol=1e-14)
    # box with one bound per leaf
    g = prox.box({"a": -0.1, "b": jnp.zeros((4, 3))}, {"a": 0.1, "b": jnp.ones((4, 3))})
    out = g.prox(params, 1.0)
    np.testing.assert_array_equal(out["a"], np.clip(X_VEC[:4], -0.1, 0.1))
    np.testing.assert_array_equal(out["b"], np.clip(X_MAT, 0, 1))
    assert float(g.value(out)) == 0.0 and float(g.value(params)) == np.inf


# --- ProximalGradient against independent solvers ----------------------------------------------

FISTA_BT = ProximalGradient(learning_rate=1.0, restart="gradient", line_search="backtracking")


def with_penalty(solver, penalty):
    import dataclasses

    return dataclasses.replace(solver, prox=penalty)


@pytest.mark.parametrize("config", ["ista", "fista", "fista_function_restart", "fista_bt",
                                    "ista_bt"])
def test_lasso_equals_sklearn_coordinate_descent(lasso_data, config):
    X, y = lasso_data
    alpha = 0.15
    t = 1.0 / lipschitz(X)
    g = prox.l1(alpha)
    solver = {
        "ista": ProximalGradient(t, prox=g, acceleration=None),
        "fista": ProximalGradient(t, prox=g),
        "fista_function_restart": ProximalGradient(t, prox=g, restart="function"),
        "fista_bt": with_penalty(FISTA_BT, g),
        "ista_bt": ProximalGradient(1.0, prox=g, acceleration=None, line_search="backtracking"),
    }[config]
    res = solve(solver, X, y)
    ref = sklearn_fit(Lasso(alpha=alpha), X, y)
    assert int(res.status) == Status.CONVERGED
    w = np.asarray(res.params)
    # Both solvers stop far below 1e-6 from the (unique: X has full column rank) minimiser.
    np.testing.assert_allclose(w, ref, atol=1e-6)
    np.testing.assert_array_equal(w == 0, ref == 0)  # exact zeros, the same pattern
    assert 0 < (w == 0).sum() < P
    # The reported value is F = f + g at the returned point.
    F = 0.5 * np.mean((X @ w - y) ** 2) + alpha * np.abs(w).sum()
    np.testing.assert_allclose(float(res.value), F, rtol=1e-12)


def test_elastic_net_equals_sklearn(lasso_data):
    X, y = lasso_data
    A, R = 0.2, 0.6
    a = A * R + A * (1 - R) / 2  # our scaling (see the module docstring)
    r = A * R / a
    res = solve(with_penalty(FISTA_BT, prox.elastic_net(a, r)), X, y)
    ref = sklearn_fit(ElasticNet(alpha=A, l1_ratio=R), X, y)
    assert int(res.status) == Status.CONVERGED
    w = np.asarray(res.params)
    np.testing.assert_allclose(w, ref, atol=1e-6)  # strongly convex: unique minimiser
    np.testing.assert_array_equal(w == 0, ref == 0)
    assert (w == 0).any()


def test_group_lasso_equals_sklearn_multitask_lasso(lasso_data):
    X, _ = lasso_data
    rng = np.random.default_rng(3)
    W = np.zeros((P, 3))
    W[:3] = rng.standard_normal((3, 3))
    Y = X @ W + 0.1 * rng.standard_normal((N, 3))
    alpha = 0.1

    def f(W, X, Y):
        return 0.5 * jnp.sum((X @ W - Y) ** 2) / X.shape[0]

    solver = with_penalty(FISTA_BT, prox.group_lasso(alpha, groups=0))  # one group per feature
    res = lossopt.minimize(f, jnp.zeros((P, 3)), solver, args=(jnp.asarray(X), jnp.asarray(Y)),
                           max_iters=MAX_ITERS, gtol=GTOL)
    # MultiTaskLasso: (1/(2n)) ||Y - X W||_F^2 + alpha sum_features ||W_feature||_2.
    ref = sklearn_fit(MultiTaskLasso(alpha=alpha), X, Y).T
    assert int(res.status) == Status.CONVERGED
    Wh = np.asarray(res.params)
    np.testing.assert_allclose(Wh, ref, atol=1e-6)
    zero_rows = np.all(Wh == 0, axis=1)
    np.testing.assert_array_equal(zero_rows, np.all(ref == 0, axis=1))
    assert zero_rows.sum() > 0


def test_nonnegative_least_squares_equals_scipy_nnls(lasso_data):
    X, _ = lasso_data
    rng = np.random.default_rng(4)
    y = X @ rng.standard_normal(P) + 0.1 * rng.standard_normal(N)  # some weights negative
    res = solve(with_penalty(FISTA_BT, prox.nonnegative()), X, y)
    ref, _ = scipy.optimize.nnls(X, y)
    assert int(res.status) == Status.CONVERGED
    w = np.asarray(res.params)
    np.testing.assert_allclose(w, ref, atol=1e-8)  # scipy's active set solve is exact to ~1e-12
    assert np.all(w >= 0)
    np.testing.assert_array_equal(w == 0, ref == 0)
    assert (ref == 0).sum() > 0


def test_box_constraints_against_the_closed_form():
    # X = Q diag(d) with orthonormal Q: f is separable, so the constrained minimiser is the
    # clip of the unconstrained one, c_i = (Q^T y)_i / d_i.
    rng = np.random.default_rng(5)
    Q, _ = np.linalg.qr(rng.standard_normal((N, P)))
    d = np.logspace(0, 1, P)
    X = Q * d
    y = rng.standard_normal(N) * 3
    c = (Q.T @ y) / d
    lo, hi = -0.2, 0.3
    res = solve(with_penalty(FISTA_BT, prox.box(lo, hi)), X, y)
    assert int(res.status) == Status.CONVERGED
    np.testing.assert_allclose(res.params, np.clip(c, lo, hi), atol=1e-9)  # to gtol / curvature
    assert ((c < lo) | (c > hi)).any() and ((c > lo) & (c < hi)).any()


def test_l1_logistic_regression_equals_a_bound_constrained_lbfgsb_solve(lasso_data):
    # A smooth part that is not quadratic. Independent reference: w = u - v with u, v >= 0
    # turns min mean log-loss + alpha |w|_1 into a smooth bound-constrained problem, solved by
    # scipy's L-BFGS-B in float64 with its tolerances near zero.
    X, _ = lasso_data
    rng = np.random.default_rng(7)
    w_true = np.zeros(P)
    w_true[:3] = [2.0, -1.5, 1.0]
    labels = (rng.uniform(size=N) < 1 / (1 + np.exp(-X @ w_true))).astype(float)
    alpha = 0.02

    def f(w, X, y):
        z = X @ w
        return jnp.mean(jax.nn.softplus(z) - y * z)

    res = lossopt.minimize(f, jnp.zeros(P), with_penalty(FISTA_BT, prox.l1(alpha)),
                           args=(jnp.asarray(X), jnp.asarray(labels)), max_iters=MAX_ITERS,
                           gtol=GTOL)

    def split(uv):
        u, v = uv[:P], uv[P:]
        z = X @ (u - v)
        sig = 1 / (1 + np.exp(-z))
        g = X.T @ (sig - labels) / N
        value = np.mean(np.logaddexp(0, z) - labels * z) + alpha * uv.sum()
        return value, np.concatenate([g + alpha, -g + alpha])

    ref = scipy.optimize.minimize(split, np.zeros(2 * P), jac=True, method="L-BFGS-B",
                                  bounds=[(0, None)] * (2 * P),
                                  options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000})
    w_ref = ref.x[:P] - ref.x[P:]
    assert int(res.status) == Status.CONVERGED
    w = np.asarray(res.params)
    # L-BFGS-B stops at a projected gradient of ~1e-10; the curvature here is >~ 1e-2.
    np.testing.assert_allclose(w, w_ref, atol=1e-6)
    # Its zeros are not exact (u = v ~ 0 within rounding): compare where it is clearly 0.
    np.testing.assert_array_equal(w == 0, np.abs(w_ref) < 1e-7)
    assert (w == 0).sum() > 0
    assert float(res.value) <= ref.fun + 1e-12  # F at ours is no worse than the reference's


def test_infeasible_start_stops_nonfinite_at_once(lasso_data):
    X, y = lasso_data
    res = solve(with_penalty(FISTA_BT, prox.nonnegative()), X, y, w0=-jnp.ones(P))
    assert int(res.status) == Status.NONFINITE and int(res.iterations) == 0


def test_lasso_with_an_unpenalised_intercept_equals_sklearn(lasso_data):
    X, y = lasso_data
    y = y + 4.0  # an intercept to find
    alpha = 0.15

    def f(params, X, y):
        return 0.5 * jnp.mean((X @ params["w"] + params["b"] - y) ** 2)

    solver = with_penalty(FISTA_BT, prox.partition({"w": prox.l1(alpha), "b": None}))
    res = lossopt.minimize(f, {"w": jnp.zeros(P), "b": jnp.zeros(())}, solver,
                           args=(jnp.asarray(X), jnp.asarray(y)), max_iters=MAX_ITERS,
                           gtol=GTOL)
    model = Lasso(alpha=alpha, fit_intercept=True, tol=1e-13, max_iter=1_000_000).fit(X, y)
    assert int(res.status) == Status.CONVERGED
    w = np.asarray(res.params["w"])
    np.testing.assert_allclose(w, model.coef_, atol=1e-6)  # unique minimiser, both converged
    np.testing.assert_allclose(float(res.params["b"]), model.intercept_, atol=1e-6)
    np.testing.assert_array_equal(w == 0, model.coef_ == 0)
    assert (w == 0).any() and float(res.params["b"]) != 0.0


# --- acceleration, stopping rule, sweeps --------------------------------------------------------


def test_fista_needs_fewer_iterations_than_ista_on_an_ill_conditioned_lasso():
    rng = np.random.default_rng(6)
    # Correlated columns: X^T X / n has condition number ~1e4 over its span.
    rotation = scipy.stats.ortho_group.rvs(P, random_state=rng)
    X = rng.standard_normal((N, P)) @ np.diag(np.logspace(0, -2, P)) @ rotation
    w = np.zeros(P)
    w[:6] = rng.standard_normal(6)
    y = X @ w + 0.01 * rng.standard_normal(N)
    alpha = 1e-4
    t = 1.0 / lipschitz(X)
    g = prox.l1(alpha)
    gtol = 1e-8
    ista = solve(ProximalGradient(t, prox=g, acceleration=None), X, y, gtol=gtol)
    fista = solve(ProximalGradient(t, prox=g, restart="gradient"), X, y, gtol=gtol)
    assert int(fista.status) == Status.CONVERGED
    # ISTA's rate is (1 - mu/L)^k, FISTA's with restart about (1 - sqrt(mu/L))^k: with
    # mu/L ~ 1e-4 the gap is far wider than the factor 5 asserted.
    assert int(fista.iterations) * 5 < int(ista.iterations)


def gradient_mapping(w, X, y, alpha, t):
    """(w - prox(w - t grad f(w), t)) / t for the Lasso, in numpy."""
    grad = X.T @ (X @ w - y) / X.shape[0]
    return (w - np_soft(w - t * grad, t * alpha)) / t


def test_stopping_rule_uses_the_gradient_mapping(lasso_data):
    X, y = lasso_data
    alpha, t = 0.15, 1.0 / lipschitz(X)
    solver = ProximalGradient(t, prox=prox.l1(alpha))
    res = solve(solver, X, y)
    w = np.asarray(res.params)
    G = gradient_mapping(w, X, y, alpha, t)
    assert int(res.status) == Status.CONVERGED
    # The reported norm is the gradient mapping's max-abs norm at the returned point.
    np.testing.assert_allclose(float(res.grad_norm), np.abs(G).max(), rtol=1e-6, atol=1e-15)
    assert float(res.grad_norm) <= GTOL
    # ... while grad f itself is of the order of alpha there: a gtol on it would never fire.
    assert np.abs(X.T @ (X @ w - y) / N).max() > 0.5 * alpha
    # Not before: every earlier record is above gtol (the loop stops at the first hit).
    trace = res.trace.to_numpy()
    assert len(trace["grad_norm"]) == int(res.iterations) + 1
    assert np.all(trace["grad_norm"][:-1] > GTOL)
    # The trace's loss is F along the run and its first record is F(0) = f(0).
    np.testing.assert_allclose(trace["loss"][0], 0.5 * np.mean(y ** 2), rtol=1e-14)


def test_starting_at_the_solution_converges_in_zero_iterations(lasso_data):
    X, y = lasso_data
    alpha = 0.15
    ref = sklearn_fit(Lasso(alpha=alpha), X, y)
    t = 1.0 / lipschitz(X)
    # sklearn's tol=1e-13 dual gap leaves a gradient mapping of ~1e-9 at most.
    res = solve(ProximalGradient(t, prox=prox.l1(alpha)), X, y, w0=jnp.asarray(ref), gtol=1e-7)
    assert int(res.status) == Status.CONVERGED and int(res.iterations) == 0
    # A point slightly off the solution does not stop at once.
    off = solve(ProximalGradient(t, prox=prox.l1(alpha)), X, y, w0=jnp.asarray(ref + 1e-3),
                gtol=1e-7)
    assert int(off.status) == Status.CONVERGED and int(off.iterations) > 0


def test_sweep_over_the_strength_compiles_once(lasso_data):
    X, y = lasso_data
    traces = []

    def counted(w, X, y):
        traces.append(1)  # runs only while JAX traces the objective
        return 0.5 * jnp.mean((X @ w - y) ** 2)

    t = 1.0 / lipschitz(X)

    def make(strength):
        return ProximalGradient(t, prox=prox.l1(strength), restart="gradient")

    args = (jnp.asarray(X), jnp.asarray(y))
    strengths = jnp.array([0.05, 0.15, 0.5, 2.0])
    res = lossopt.sweep(counted, jnp.zeros(P), make, strengths, args=args,
                        max_iters=MAX_ITERS, gtol=GTOL)
    first = len(traces)
    again = lossopt.sweep(counted, jnp.zeros(P), make, strengths * 1.1, args=args,
                          max_iters=MAX_ITERS, gtol=GTOL)
    assert len(traces) == first  # new strengths are traced values: no retrace
    for batch, scale in ((res, 1.0), (again, 1.1)):
        zeros = []
        for i, s in enumerate(np.asarray(strengths) * scale):
            ref = sklearn_fit(Lasso(alpha=float(s)), X, y)
            w = np.asarray(batch.params[i])
            assert int(batch.status[i]) == Status.CONVERGED
            np.testing.assert_allclose(w, ref, atol=1e-6)
            np.testing.assert_array_equal(w == 0, ref == 0)
            zeros.append(int((w == 0).sum()))
        assert zeros == sorted(zeros) and zeros[0] < zeros[-1]  # sparser with strength
    # each lane stops on its own rule
    assert len(set(np.asarray(res.iterations).tolist())) > 1


def test_jit_and_float32(lasso_data):
    X, y = lasso_data
    solver = with_penalty(FISTA_BT, prox.l1(0.15))
    X32, y32 = jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32)
    res = lossopt.minimize(least_squares, jnp.zeros(P, jnp.float32), solver, args=(X32, y32),
                           max_iters=2000, gtol=1e-5)
    assert res.params.dtype == jnp.float32 and res.value.dtype == jnp.float32
    ref = sklearn_fit(Lasso(alpha=0.15), X, y)
    assert int(res.status) == Status.CONVERGED
    # float32: the minimiser to ~1e-5 (gtol over the smallest curvature), zeros exact.
    np.testing.assert_allclose(res.params, ref, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(res.params) == 0, ref == 0)
    jitted = jax.jit(lambda X, y: lossopt.minimize(
        least_squares, jnp.zeros(P, jnp.float32), solver, args=(X, y), max_iters=2000,
        gtol=1e-5))(X32, y32)
    np.testing.assert_allclose(jitted.params, res.params, rtol=1e-5, atol=1e-6)


def test_backtracking_recovers_from_a_far_too_long_step(lasso_data):
    X, y = lasso_data
    L = lipschitz(X)
    res = solve(ProximalGradient(1e4 / L, prox=prox.l1(0.15), acceleration=None,
                                 line_search="backtracking"), X, y)
    assert int(res.status) == Status.CONVERGED
    np.testing.assert_allclose(res.params, sklearn_fit(Lasso(alpha=0.15), X, y), atol=1e-6)
    # ISTA with backtracking is monotone in F: the trace never rises (beyond rounding).
    loss = res.trace.to_numpy()["loss"]
    assert np.all(np.diff(loss) <= 1e-14 * np.abs(loss[:-1]))
    # Backtracking trials are counted: more evaluations than iterations.
    assert int(res.num_fun_evals) > int(res.iterations) + 1


# --- bad arguments ------------------------------------------------------------------------------

BAD = [
    (lambda: prox.l1(-0.1), ValueError, "`strength` must be a finite number >= 0; got -0.1"),
    (lambda: prox.elastic_net(-1.0, 0.5), ValueError, "`alpha` must be a finite number >= 0"),
    (lambda: prox.elastic_net(1.0, 1.5), ValueError, r"`l1_ratio` must be in \[0.0, 1.0\]; got 1.5"),
    (lambda: prox.group_lasso(-1.0), ValueError, "`strength` must be"),
    (lambda: prox.group_lasso(1.0, groups="rows"), ValueError, "`groups` must be 'leaves'"),
    (lambda: prox.box(1.0, 0.0), ValueError, "`lower` must be <= `upper` everywhere"),
    (lambda: prox.box(np.zeros(3), np.array([1.0, -1.0, 1.0])), ValueError, "`lower` must be <="),
    (lambda: prox.box(np.nan, 1.0), ValueError, "`lower` must hold real numbers"),
    (lambda: prox.l1(0.1).prox(jnp.ones(3), 0.0), ValueError, "`step` must be > 0; got"),
    (lambda: prox.group_lasso(1.0, groups=2).prox(jnp.ones((2, 2)), 1.0), ValueError,
     "axis 2 is out of range for a params leaf of shape"),
    (lambda: ProximalGradient(0.0), ValueError, "`learning_rate` must be a finite number > 0"),
    (lambda: ProximalGradient(0.1, acceleration="nesterov"), ValueError, "`acceleration` must be one of"),
    (lambda: ProximalGradient(0.1, restart="always"), ValueError, "`restart` must be one of"),
    (lambda: ProximalGradient(0.1, acceleration=None, restart="gradient"), ValueError,
     "needs acceleration='fista'"),
    (lambda: ProximalGradient(0.1, line_search="armijo"), ValueError, "`line_search` must be one of"),
    (lambda: ProximalGradient(0.1, line_search="backtracking", shrink=1.0), ValueError, "`shrink`"),
    (lambda: ProximalGradient(0.1, max_backtracks=0), ValueError, "`max_backtracks` must be an int >= 1"),
    (lambda: ProximalGradient(0.1, prox=0.5), TypeError, "`prox` must be a penalty with value"),
    (lambda: ProximalGradient(0.1, prox=prox.L1), TypeError, "got the class L1 itself"),
    (lambda: prox.l1(0.1).value(jnp.arange(3)), TypeError, "leaves must be real floating"),
    (lambda: prox.partition({"w": 0.1}), TypeError, "`partition's parts` must be a penalty"),
    (lambda: prox.partition({"w": prox.l1(0.1)}).prox({"v": jnp.ones(2)}, 1.0), ValueError,
     "must have a prefix of the structure of `params`"),
]


@pytest.mark.parametrize(("make", "error", "message"), BAD, ids=[b[2][:30] for b in BAD])
def test_bad_arguments_raise_clear_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


# --- the loop's measure hook --------------------------------------------------------------------


def test_an_identity_measure_hook_changes_nothing(lasso_data):
    # A solver whose measure returns the objective's own value and gradient runs the hook's
    # code path and must give the same run, bit for bit, as the solver without it.
    from lossopt.solvers import GradientDescent
    from lossopt.solvers._protocol import pytree_dataclass

    @pytree_dataclass
    class Measured:
        inner: object

        @property
        def monotone(self):
            return self.inner.monotone

        def init(self, objective, params, value, grad):
            return self.inner.init(objective, params, value, grad)

        def step(self, objective, params, value, grad, state):
            return self.inner.step(objective, params, value, grad, state)

        def measure(self, objective, params, value, grad, state):
            return value, grad

    X, y = lasso_data
    gd = GradientDescent(learning_rate=0.1, line_search="armijo")
    plain = solve(gd, X, y, gtol=1e-6, max_iters=300)
    hooked = solve(Measured(gd), X, y, gtol=1e-6, max_iters=300)
    assert int(plain.iterations) == int(hooked.iterations) > 0
    np.testing.assert_array_equal(plain.params, hooked.params)
    np.testing.assert_array_equal(plain.trace.to_numpy()["loss"], hooked.trace.to_numpy()["loss"])
    np.testing.assert_array_equal(plain.trace.to_numpy()["grad_norm"],
                                  hooked.trace.to_numpy()["grad_norm"])
