"""Tests of lossopt.gradcheck: planted bugs with known answers, no false alarms, precision.

Every planted bug is applied to a correct hand gradient, for a numpy function (JAX cannot trace
``np.sin``: the reference is finite differences) and for the same function in JAX (reference:
autodiff), with an array argument and with a pytree argument; the test asserts the verdict AND
the diagnosis (kind, and the numbers the text must name).
"""

from __future__ import annotations

import functools
import importlib.util
import pathlib
import sys
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import RECIPES, gradcheck_feeds, missing_recipes

import lossopt
from lossopt import GradientReport, check_gradient, check_hessian
from lossopt.gradcheck import PrecisionWarning
from lossopt.testing import assert_gradient_correct, assert_hessian_correct

N, D = 4, 3  # the point has N = 4 rows (the "batch size" the diagnosis should name) of D = 3


# --------------------------------------------------------------------------------------------
# Base problems: f(p, t) = sum((p - t)**2 + sin(p) / 2) / N, as numpy and as JAX.
# --------------------------------------------------------------------------------------------


def f_array_np(p, t):
    return np.sum((p - t) ** 2 + 0.5 * np.sin(p)) / p.shape[0]


def f_array_jax(p, t):
    return jnp.sum((p - t) ** 2 + 0.5 * jnp.sin(p)) / p.shape[0]


def grad_array(p, t):
    return (2 * (p - t) + 0.5 * np.cos(p)) / p.shape[0]


def f_tree_np(params, t):
    z = params["w"] + params["b"]
    return np.sum((z - t) ** 2 + 0.5 * np.sin(params["w"])) / t.shape[0]


def f_tree_jax(params, t):
    z = params["w"] + params["b"]
    return jnp.sum((z - t) ** 2 + 0.5 * jnp.sin(params["w"])) / t.shape[0]


def grad_tree(params, t):
    r = params["w"] + params["b"] - t
    return {
        "w": (2 * r + 0.5 * np.cos(params["w"])) / t.shape[0],
        "b": 2 * r.sum(axis=0, keepdims=True) / t.shape[0],
    }


def _point(kind: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(N, D))
    if kind == "array":
        return rng.normal(size=(N, D)), t
    return {"w": rng.normal(size=(N, D)), "b": rng.normal(size=(1, D))}, t


PROBLEMS = {
    ("numpy", "array"): (f_array_np, grad_array),
    ("jax", "array"): (f_array_jax, grad_array),
    ("numpy", "pytree"): (f_tree_np, grad_tree),
    ("jax", "pytree"): (f_tree_jax, grad_tree),
}
EXPECTED_REFERENCE = {"numpy": "finite_difference", "jax": "autodiff"}
BACKENDS = [(b, a) for b in ("numpy", "jax") for a in ("array", "pytree")]


def _scaled(c):
    return lambda g: jax.tree_util.tree_map(lambda a: c * a, g)


def _flip_some(g):
    """Sign flipped at (0, 1), (2, 2), (3, 0) of the (N, D) array (of leaf "w" in a pytree)."""
    mask = np.ones((N, D))
    mask[0, 1] = mask[2, 2] = mask[3, 0] = -1.0
    if isinstance(g, dict):
        return {**g, "w": g["w"] * mask}
    return g * mask


def _nan_one(g):
    if isinstance(g, dict):
        b = g["b"].copy()
        b[0, 1] = np.inf
        return {**g, "b": b}
    g = g.copy()
    g[1, 2] = np.nan
    return g


def _transpose(g):
    if isinstance(g, dict):
        return {**g, "w": g["w"].T}
    return g.T


# bug name -> (planted change, expected kind, fragments the diagnosis must contain per argtype)
PLANTED = {
    "sign flip": (_scaled(-1.0), "sign_flip", ["sign flip", "hand = -1 x reference"]),
    "missing 1/n": (_scaled(float(N)), "constant_factor",
                    ["hand = 4.000 x reference", "a missing 1/n with n = 4"]),
    "extra 1/n": (_scaled(1.0 / N), "constant_factor",
                  ["hand = 0.250 x reference", "an extra 1/n with n = 4"]),
    "missing 2": (_scaled(0.5), "constant_factor",
                  ["hand = 0.500 x reference", "a missing factor 2"]),
    "extra 2": (_scaled(2.0), "constant_factor", ["hand = 2.000 x reference", "an extra factor 2"]),
    "sign flip and missing 1/n": (_scaled(-float(N)), "constant_factor",
                                  ["hand = -4.000 x reference",
                                   "a sign flip and a missing 1/n with n = 4"]),
    "offset": (lambda g: jax.tree_util.tree_map(lambda a: a + 0.125, g), "offset",
               ["hand = reference + 0.125 on every entry"]),
    "zero": (_scaled(0.0), "zero", ["zero"]),
    "transposed": (_transpose, "transposed", ["transposed"]),
    "some entries": (_flip_some, "some_entries", None),
    "nonfinite": (_nan_one, "nonfinite", None),
}
SOME_ENTRIES_TEXT = {
    "array": ["3 of 12 entries wrong: indices [(0, 1), (2, 2), (3, 0)]", "sign flip"],
    "pytree": ["3 of 15 entries wrong", "['w'][0, 1], ['w'][2, 2], ['w'][3, 0]", "sign flip"],
}
NONFINITE_TEXT = {
    "array": ["NaN/Inf in the hand value: 1 of 12 entries [(1, 2)]"],
    "pytree": ["NaN/Inf in the hand value: 1 of 15 entries [['b'][0, 1]]"],
}


@pytest.mark.parametrize(("backend", "argtype"), BACKENDS)
def test_correct_gradient_passes(backend, argtype):
    f, g = PROBLEMS[backend, argtype]
    report = check_gradient(f, g, *_point(argtype))
    assert report.ok, str(report)
    assert report.diagnosis is None and report.kind is None
    assert report.reference == EXPECTED_REFERENCE[backend]
    # FD estimated error: float64 Richardson differences reach ~1e-9 on this O(1) problem.
    assert report.reference_error < 1e-8
    # The reference comes back in the argument's own layout (same pytree, same shapes) and
    # equals the closed form: to rounding for autodiff, to the FD error bound asserted above.
    atol = 1e-12 if backend == "jax" else 1e-8
    chex.assert_trees_all_close(report.expected, g(*_point(argtype)), rtol=0, atol=atol)


@pytest.mark.parametrize("bug", list(PLANTED))
@pytest.mark.parametrize(("backend", "argtype"), BACKENDS)
def test_planted_bug_is_caught_and_diagnosed(backend, argtype, bug):
    f, g = PROBLEMS[backend, argtype]
    plant, kind, fragments = PLANTED[bug]
    point = _point(argtype)
    with np.errstate(invalid="ignore"):
        report = check_gradient(f, lambda *a: plant(g(*a)), *point)
    assert not report.ok
    assert report.kind == kind, str(report)
    if bug == "some entries":
        fragments = SOME_ENTRIES_TEXT[argtype]
        assert report.num_wrong == 3
    if bug == "nonfinite":
        fragments = NONFINITE_TEXT[argtype]
    for fragment in fragments:
        assert fragment in report.diagnosis, report.diagnosis
    assert report.reference == EXPECTED_REFERENCE[backend]
    assert report.diagnosis in str(report)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_square_transpose_is_diagnosed(backend):
    rng = np.random.default_rng(1)
    A, B = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    W = rng.normal(size=(3, 3))
    xp = np if backend == "numpy" else jnp

    def f(W, A, B):
        r = A @ W - B
        return xp.sum(xp.tanh(r) ** 2) if backend == "jax" else np.sum(np.tanh(r) ** 2)

    def g(W, A, B):
        r = A @ W - B
        return A.T @ (2 * np.tanh(r) * (1 - np.tanh(r) ** 2))

    assert check_gradient(f, g, W, A, B).ok
    report = check_gradient(f, lambda *a: g(*a).T, W, A, B)
    assert report.kind == "transposed", str(report)
    assert "hand[i, j] = reference[j, i]" in report.diagnosis


def test_each_leaf_with_its_own_error():
    params, t = _point("pytree")

    def hand(params, t):
        g = grad_tree(params, t)
        return {"w": 2.0 * g["w"], "b": -g["b"]}

    for f in (f_tree_np, f_tree_jax):
        report = check_gradient(f, hand, params, t)
        assert report.kind == "per_leaf", str(report)
        assert "['b'] (all 3 entries): sign flip" in report.diagnosis
        assert "['w'] (all 12 entries): hand = 2.000 x reference" in report.diagnosis


def test_no_simple_pattern_is_unexplained():
    p, t = _point("array")
    noise = np.random.default_rng(8).normal(size=(N, D))
    report = check_gradient(f_array_jax, lambda *a: grad_array(*a) + noise, p, t)
    assert report.kind == "unexplained" and "cosine similarity" in report.diagnosis
    assert report.num_wrong == N * D


def test_offset_per_row_softmax_style():
    # Cross-entropy over softmax rows: hand = true gradient + a different constant per row.
    rng = np.random.default_rng(9)
    z = rng.normal(size=(N, D))
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    labels = np.eye(D)[rng.integers(0, D, N)]

    def cce(p, y):
        return -jnp.sum(y * jnp.log(p)) / p.shape[0]

    shift = np.arange(1.0, N + 1.0)[:, None]
    report = check_gradient(cce, lambda p, y: -y / (N * p) + shift, probs, labels)
    assert report.kind == "offset" and "on each row i" in report.diagnosis, str(report)


def test_jax_derivative_that_is_not_the_derivative_of_the_values():
    # x * stop_gradient(x): its values are x**2 but JAX differentiates it to x.
    def f(x):
        return jnp.sum(x * jax.lax.stop_gradient(x))

    x = np.array([0.5, -1.5, 2.0])
    report = check_gradient(f, lambda x: 2 * x, x)
    assert report.kind == "reference_disagrees", str(report)
    assert "agrees with finite differences" in report.diagnosis
    assert check_gradient(f, lambda x: 2 * x, x, reference="finite_difference").ok


def test_reference_not_finite():
    # sqrt at 0: the derivative is infinite there.
    report = check_gradient(lambda x: jnp.sum(jnp.sqrt(x)), lambda x: np.zeros(2),
                            np.array([0.0, 1.0]))
    assert report.kind == "reference_nonfinite" and "[0]" in report.diagnosis


def test_indices_are_in_the_arguments_own_shape():
    p, t = _point("array")
    hand = grad_array(p, t)
    hand[2, 1] *= 3.0
    report = check_gradient(f_array_jax, lambda *a: hand, p, t)
    assert report.worst_index == (2, 1) and report.worst_path == ""
    assert report.hand_value == pytest.approx(hand[2, 1], rel=1e-15)
    assert report.reference_value == pytest.approx(hand[2, 1] / 3.0, rel=1e-12)
    assert report.wrong_entries == ("(2, 1)",)
    params, t = _point("pytree")
    hand = grad_tree(params, t)
    hand["b"][0, 2] += 1.0
    report = check_gradient(f_tree_jax, lambda *a: hand, params, t)
    assert (report.worst_path, report.worst_index) == ("['b']", (0, 2))
    assert report.worst_location == "['b'][0, 2]"


# --------------------------------------------------------------------------------------------
# Kinks: no false alarm near them, a "nonsmooth" diagnosis at them.
# --------------------------------------------------------------------------------------------


def mae_np(p, t):
    return np.mean(np.abs(p - t))


def mae_jax(p, t):
    return jnp.mean(jnp.abs(p - t))  # jax.grad(jnp.abs)(0.0) == 1: JAX picks a subgradient


def mae_grad(p, t):
    return np.sign(p - t) / p.size


def huber_np(p, t, delta=1.0):
    r = p - t
    return np.mean(np.where(np.abs(r) <= delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta)))


def huber_jax(p, t, delta=1.0):
    r = p - t
    return jnp.mean(jnp.where(jnp.abs(r) <= delta, 0.5 * r**2, delta * (jnp.abs(r) - 0.5 * delta)))


def huber_grad(p, t, delta=1.0):
    return np.clip(p - t, -delta, delta) / p.size


T8 = np.linspace(-1.0, 1.0, 8)


@pytest.mark.parametrize("f", [mae_np, mae_jax], ids=["numpy", "jax"])
def test_mae_near_kinks_passes(f):
    # Residuals 1e-6, -3e-9, 1e-10 from the kink: smooth points, however close; finite
    # differences shrink their step below the distance (8 levels of 1/8: down to ~2e-11 here).
    r = np.array([1e-6, -3e-9, 1e-10, 0.5, -0.7, 1.1, -2.0, 0.3])
    report = check_gradient(f, mae_grad, T8 + r, T8)
    assert report.ok, str(report)


@pytest.mark.parametrize("f", [huber_np, huber_jax], ids=["numpy", "jax"])
def test_huber_at_and_near_its_c1_kink_passes(f):
    # |r| = delta: Huber is C1 there (only f'' jumps), so the gradient exists and must pass.
    r = np.array([1.0, -1.0, 1.0 + 1e-7, 1.0 - 1e-7, 0.3, -2.5, 4.0, 0.0])
    assert check_gradient(f, huber_grad, T8 + r, T8).ok


def test_nonsmooth_point_numpy_valid_subgradient():
    r = np.array([0.5, -0.7, 0.0, 1.1])  # the seed's MAE example has such a zero residual
    t = np.array([3.0, -0.5, 2.0, 7.0])
    report = check_gradient(mae_np, mae_grad, t + r, t)
    assert not report.ok and report.kind == "nonsmooth", str(report)
    assert "kink along 1 entry [2]" in report.diagnosis
    assert "left -0.25, right 0.25" in report.diagnosis
    assert "a valid subgradient" in report.diagnosis
    assert report.wrong_entries == ("2",) and report.worst_index == (2,)


def test_nonsmooth_point_numpy_value_outside_the_subdifferential():
    r = np.array([0.5, -0.7, 0.0, 1.1])
    t = np.array([3.0, -0.5, 2.0, 7.0])

    def hand(p, t):
        g = mae_grad(p, t)
        g[2] = 0.5  # the one-sided derivatives are -0.25 and 0.25
        return g

    report = check_gradient(mae_np, hand, t + r, t)
    assert report.kind == "nonsmooth"
    assert "lies outside that interval at [2]" in report.diagnosis


def test_nonsmooth_point_jax_autodiff_picks_another_subgradient():
    r = np.array([0.5, -0.7, 0.0, 1.1])
    t = np.array([3.0, -0.5, 2.0, 7.0])
    # jax.grad gives 1/4 at the kink, the hand sign(0)/4 = 0: both valid, neither "the" gradient.
    report = check_gradient(mae_jax, mae_grad, t + r, t)
    assert report.reference == "autodiff"
    assert report.kind == "nonsmooth", str(report)
    assert "a valid subgradient" in report.diagnosis


def test_kink_and_a_real_error_reports_the_error_first():
    r = np.array([0.5, -0.7, 0.0, 1.1, 0.2, -0.4, 0.9, -1.3])

    def hand(p, t):
        g = mae_grad(p, t)
        g[5] *= -1.0
        return g

    report = check_gradient(mae_np, hand, T8 + r, T8)
    assert report.kind == "some_entries", str(report)
    assert "1 of 7 entries wrong: indices [5]" in report.diagnosis
    assert "Also a nonsmooth point" in report.diagnosis and "[2]" in report.diagnosis


# --------------------------------------------------------------------------------------------
# Precision: float64 always, scoped; float32 inputs warn; FD resolves 1e-6.
# --------------------------------------------------------------------------------------------


def test_float32_inputs_warn_and_the_verdict_is_float64():
    rng = np.random.default_rng(2)
    with jax.enable_x64(False):
        p = jnp.asarray(rng.normal(size=(N, D)), dtype=jnp.float32)
        t = jnp.asarray(rng.normal(size=(N, D)), dtype=jnp.float32)
        with pytest.warns(PrecisionWarning, match=r"p \(float32\), t \(float32\)"):
            good = check_gradient(f_array_jax, grad_array, p, t)
        # A 1e-6 relative error is below what float32 can resolve (eps 1.2e-7, times the
        # round-off growth of the formula); the check still sees it because it runs in float64.
        with pytest.warns(PrecisionWarning):
            bad = check_gradient(f_array_jax, lambda *a: grad_array(*a) * (1 + 1e-6), p, t)
        # The global setting is untouched: still float32 inside this scope.
        assert jnp.zeros(1).dtype == jnp.float32
    assert good.ok, str(good)
    assert not bad.ok and bad.kind == "constant_factor"
    assert bad.factor == pytest.approx(1 + 1e-6, abs=1e-12)  # autodiff in float64: exact
    assert "hand = 1.000001 x reference" in bad.diagnosis
    assert jnp.zeros(1).dtype == jnp.float64  # conftest's global x64 is back


def test_float64_inputs_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)
        assert check_gradient(f_array_np, grad_array, *_point("array")).ok


def test_function_computing_in_float32_warns():
    def f32(p):
        return jnp.sum(jnp.asarray(p, jnp.float32) ** 2)

    with pytest.warns(PrecisionWarning, match="float32"):
        check_gradient(f32, lambda p: 2 * p, np.array([1.0, 2.0]))


def softplus_mix(x):
    """A numpy-only f (ufuncs: JAX cannot trace it) with curvature and mixed scales."""
    return np.sum(np.log1p(np.exp(x))) + 0.1 * np.sum(x**2 * np.sin(x))


def softplus_mix_grad(x):
    return 1 / (1 + np.exp(-x)) + 0.1 * (2 * x * np.sin(x) + x**2 * np.cos(x))


def _mixed_scale_point():
    rng = np.random.default_rng(3)
    return rng.normal(size=20) * np.logspace(-2, 1, 20)  # entries from ~1e-2 to ~10


def test_finite_difference_reference_is_accurate_to_1e_9():
    x = _mixed_scale_point()
    report = check_gradient(softplus_mix, softplus_mix_grad, x)
    assert report.ok and report.reference == "finite_difference", str(report)
    exact = softplus_mix_grad(x)
    # Richardson (O(h^4)) with a round-off-optimal step: ~1e-10 relative to the gradient scale;
    # 1e-9 leaves a margin and is still 1000x below the 1e-6 errors it must resolve.
    assert np.max(np.abs(report.expected - exact)) < 1e-9 * np.max(np.abs(exact))
    # and its own error estimate is an upper bound
    assert np.max(np.abs(report.expected - exact)) <= report.reference_error


def test_finite_difference_reference_resolves_a_1e_6_relative_error():
    x = _mixed_scale_point()
    scaled = check_gradient(softplus_mix, lambda x: softplus_mix_grad(x) * (1 + 1e-6), x)
    assert not scaled.ok and scaled.kind == "constant_factor"
    assert scaled.factor == pytest.approx(1 + 1e-6, abs=1e-8)

    def one_entry(x):
        g = softplus_mix_grad(x)
        g[7] *= 1 + 1e-6
        return g

    single = check_gradient(softplus_mix, one_entry, x)
    assert not single.ok and single.kind == "some_entries"
    assert "1 of 20 entries wrong: indices [7]" in single.diagnosis


def test_forced_finite_differences_on_jax_code():
    report = check_gradient(f_tree_jax, grad_tree, *_point("pytree"),
                            reference="finite_difference")
    assert report.ok and report.reference == "finite_difference"


# --------------------------------------------------------------------------------------------
# Shapes, bad input, the report, lossopt.testing
# --------------------------------------------------------------------------------------------


def test_shape_problems_are_reported():
    p, t = _point("array")
    reshaped = check_gradient(f_array_np, lambda *a: grad_array(*a).ravel(), p, t)
    assert reshaped.kind == "shape" and "match after reshaping" in reshaped.diagnosis
    wrong = check_gradient(f_array_np, lambda *a: grad_array(*a)[:2], p, t)
    assert wrong.kind == "shape" and "(2, 3)" in wrong.diagnosis and "(4, 3)" in wrong.diagnosis
    params, t = _point("pytree")
    structure = check_gradient(f_tree_np, lambda *a: grad_tree(*a)["w"], params, t)
    assert structure.kind == "shape" and "wrong structure" in structure.diagnosis


def test_bad_input_raises_naming_the_argument():
    p, t = _point("array")
    with pytest.raises(ValueError, match="argnum"):
        check_gradient(f_array_np, grad_array, p, t, argnum=2)
    with pytest.raises(ValueError, match="reference"):
        check_gradient(f_array_np, grad_array, p, t, reference="complex_step")
    with pytest.raises(ValueError, match="rtol"):
        check_gradient(f_array_np, grad_array, p, t, rtol=-1.0)
    with pytest.raises(TypeError, match="grad_f"):
        check_gradient(f_array_np, "not a function", p, t)
    with pytest.raises(ValueError, match="must return a scalar"):
        check_gradient(lambda p, t: (p - t) ** 2, grad_array, p, t)
    with pytest.raises(TypeError, match=r"`labels` must hold floating-point"):
        check_gradient(lambda labels: 0.0, lambda labels: labels, np.arange(3))
    with pytest.raises(TypeError, match="JAX-traceable"):
        check_gradient(f_array_np, grad_array, p, t, reference="autodiff")
    with pytest.raises(ValueError, match="calling `grad_f`"):
        check_gradient(f_array_np, lambda p, t: 1 / 0, p, t)


def test_argnum_selects_the_argument():
    p, t = _point("array")
    report = check_gradient(f_array_jax, lambda p, t: -2 * (p - t) / N, p, t, argnum=-1)
    assert report.ok and report.argument == "t"


def test_report_text():
    report = check_gradient(f_array_np, lambda *a: grad_array(*a) * N, *_point("array"))
    assert isinstance(report, GradientReport)
    text = str(report).splitlines()
    assert text[0] == "gradient check: WRONG"
    assert any(line.startswith("  worst entry [") for line in text)
    assert any(line.startswith("  diagnosis: hand = 4.000 x reference") for line in text)
    assert any("not JAX-traceable" in line for line in text)  # why finite differences


def test_testing_assertions():
    p, t = _point("array")
    assert assert_gradient_correct(f_array_np, grad_array, p, t).ok
    with pytest.raises(AssertionError, match="sign flip"):
        assert_gradient_correct(f_array_np, lambda *a: -grad_array(*a), p, t)
    X = np.random.default_rng(4).normal(size=(6, 3))
    w = np.ones(3)

    def quad(w, X):
        return np.mean((X @ w) ** 2)

    assert assert_hessian_correct(quad, lambda w, X: 2 * X.T @ X / 6, w, X).ok
    with pytest.raises(AssertionError, match="missing 1/n with n = 6"):
        assert_hessian_correct(quad, lambda w, X: 2 * X.T @ X, w, X)


def test_top_level_exports():
    assert lossopt.check_gradient is check_gradient
    assert lossopt.check_hessian is check_hessian
    assert lossopt.GradientReport is GradientReport
    assert {"check_gradient", "check_hessian", "GradientReport"} <= set(lossopt.__all__)


def test_checking_again_compiles_nothing():
    """The compiled reference is cached per function and shapes: another point, other data of
    the same shapes and another hand gradient trace f no more (chex counts f's traces: one to
    read its output shape, one for the compiled value_and_grad; a wrong hand gradient adds the
    compiled batch of finite differences that probes the disagreeing entries, once)."""

    @chex.assert_max_traces(n=2)
    def f(w, X, y):
        return jnp.mean((X @ w - y) ** 2)

    @chex.assert_max_traces(n=3)
    def f_probed(w, X, y):
        return jnp.mean((X @ w - y) ** 2)

    def grad(w, X, y):
        return 2 * X.T @ (X @ w - y) / len(y)

    for seed in range(3):
        rng = np.random.default_rng(seed)
        w, X, y = rng.normal(size=3), rng.normal(size=(6, 3)), rng.normal(size=6)
        reports = [check_gradient(f, grad, w, X, y),
                   check_gradient(f, lambda w, X, y: -grad(w, X, y), w, X, y),
                   check_gradient(f_probed, lambda w, X, y: -grad(w, X, y), w, X, y)]
        # A trace past chex's limit raises inside f: the checker would fall back to finite
        # differences (and then fail), so the reference must still be autodiff.
        assert [r.reference for r in reports] == ["autodiff"] * 3, [str(r) for r in reports]
        assert [r.kind for r in reports] == [None, "sign_flip", "sign_flip"]


def test_gradcheck_modules_import_no_private_names_of_each_other():
    """lossopt/gradcheck/ is a package whose modules share only their internal API (each
    private module's ``__all__``): no ``from lossopt.gradcheck._x import _name``, and every
    imported name is in the source module's ``__all__``."""
    import ast
    import importlib

    folder = pathlib.Path(lossopt.gradcheck.__file__).parent
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "lossopt.gradcheck."):
                exported = importlib.import_module(node.module).__all__
                for alias in node.names:
                    assert not alias.name.startswith("_"), (path.name, node.module, alias.name)
                    assert alias.name in exported, (path.name, node.module, alias.name)
    outside = [p for p in pathlib.Path(lossopt.__file__).parent.rglob("*.py")
               if folder not in p.parents and "lossopt.gradcheck._" in p.read_text()]
    assert not outside, outside
    assert set(lossopt.gradcheck.__all__) == {
        "REFERENCES", "GradientReport", "PrecisionWarning", "check_gradient", "check_hessian"}


# --------------------------------------------------------------------------------------------
# Hessians
# --------------------------------------------------------------------------------------------


def logistic_np(w, X, y):
    z = X.dot(w)
    return float(np.mean(np.log1p(np.exp(-y * z))))


def logistic_jax(w, X, y):
    return jnp.mean(jnp.log1p(jnp.exp(-y * (X @ w))))


def logistic_hessian(w, X, y):
    s = 1 / (1 + np.exp(-X.dot(w)))
    return (X.T * (s * (1 - s))) @ X / len(y)


def _logistic_point():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(10, 3))
    return rng.normal(size=3), X, rng.choice([-1.0, 1.0], size=10)


@pytest.mark.parametrize("f", [logistic_np, logistic_jax], ids=["numpy", "jax"])
def test_hessian_correct_and_planted_bugs(f):
    point = _logistic_point()
    good = check_hessian(f, logistic_hessian, *point)
    assert good.ok, str(good)
    assert good.reference == ("finite_difference" if f is logistic_np else "autodiff")
    factor = check_hessian(f, lambda *a: logistic_hessian(*a) * 10, *point)
    assert factor.kind == "constant_factor" and "missing 1/n with n = 10" in factor.diagnosis
    flipped = check_hessian(f, lambda *a: -logistic_hessian(*a), *point)
    assert flipped.kind == "sign_flip"

    def asymmetric(*a):
        H = logistic_hessian(*a)
        return H + np.triu(H, 1) - np.tril(H, -1)  # upper doubled, lower zeroed

    asym = check_hessian(f, asymmetric, *point)
    assert asym.kind == "asymmetric", str(asym)
    assert "symmetric part (H + H.T) / 2 matches" in asym.diagnosis

    def one_entry(*a):
        H = logistic_hessian(*a)
        H[1, 1] *= 2
        return H

    entry = check_hessian(f, one_entry, *point)
    assert entry.kind == "some_entries" and "indices [(1, 1)]" in entry.diagnosis


def test_hessian_of_a_matrix_argument_accepts_both_layouts():
    rng = np.random.default_rng(6)
    W = rng.normal(size=(2, 3))

    def f(W):
        return jnp.sum(W**4) / 4

    flat = check_hessian(f, lambda W: np.diag(3 * W.ravel() ** 2), W)
    paired = check_hessian(f, lambda W: np.diag(3 * W.ravel() ** 2).reshape(2, 3, 2, 3), W)
    assert flat.ok and paired.ok
    bad = check_hessian(f, lambda W: np.eye(5), W)
    assert bad.kind == "shape" and "(6, 6)" in bad.diagnosis


def test_hessian_at_a_curvature_kink_is_nonsmooth():
    # Huber's second derivative jumps from 1 to 0 at |r| = delta.
    r = np.array([0.3, 1.0, -2.0])
    zero = np.zeros(3)

    def hand(p, t):
        return np.diag((np.abs(p - t) < 1.0).astype(float)) / 3

    report = check_hessian(huber_np, hand, r, zero)
    assert report.kind == "nonsmooth", str(report)
    assert "second derivative does not exist" in report.diagnosis
    assert report.wrong_entries == ("(1, 1)",)


# --------------------------------------------------------------------------------------------
# The catalogue: autodiff gradients of every registered loss agree with finite differences
# --------------------------------------------------------------------------------------------

# The inputs come from the one catalogue, tests/helpers.py RECIPES (random valid points, away
# from kinks with probability 1); a registered loss without a recipe fails here, it is not
# skipped. Every registered loss is checked: none is excluded.
CATALOGUE_CHECKS = [
    (name, argnum) for name in sorted(RECIPES)
    for argnum in (0, *RECIPES[name].gradcheck_argnums)
]


def test_every_registered_loss_has_catalogue_inputs():
    missing = missing_recipes()
    assert not missing, f"add recipes to tests/helpers.py RECIPES for: {missing}"


@pytest.mark.parametrize(("name", "argnum"), CATALOGUE_CHECKS,
                         ids=[f"{n}-arg{a}" for n, a in CATALOGUE_CHECKS])
def test_autodiff_gradient_of_every_catalogue_loss_passes(name, argnum):
    rng = np.random.default_rng(sum(map(ord, name)))  # a seed per loss
    feeds = {a: (args, kwargs) for args, kwargs, a in gradcheck_feeds(name, rng)}
    args, kwargs = feeds[argnum]
    f = functools.partial(lossopt.losses.get(name), **kwargs)
    report = check_gradient(f, jax.jit(jax.grad(f, argnums=argnum)), *args, argnum=argnum,
                            reference="finite_difference")
    assert report.ok, str(report)


# --------------------------------------------------------------------------------------------
# The seed document's hand-derived gradients (experiments/verify_seed_gradients.py)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_script():
    path = pathlib.Path(__file__).parents[1] / "experiments" / "verify_seed_gradients.py"
    spec = importlib.util.spec_from_file_location("verify_seed_gradients", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


# The answers worked out by hand from the seed's formulas (each is the gradient w.r.t. y_pred,
# or the parameters, of the mean loss the seed defines): (name, point) -> (ok, kind, fragments)
SEED_ANSWERS = {
    ("mse_gradient", "seed example"): (True, None, []),
    ("bce_gradient", "seed example"): (True, None, []),
    # (p - y) / (n p) = -y / (n p) + 1/n: the true gradient plus 1/n = 1/3 on every entry.
    ("cce_gradient", "seed example"): (False, "offset", ["+ 0.3333333 on every entry",
                                                         "1/n with n = 3"]),
    ("mae_subgradient", "random, n = 8"): (True, None, []),
    ("mae_subgradient", "MSE example (y = ŷ at [2])"): (
        False, "nonsmooth", ["kink along 1 entry [2]", "valid subgradient"]),
    # mse_gradient already divides by n; the loop divides by len(y) again.
    ("gradient_descent: X.T.dot(mse_gradient(y, X.dot(w))) / len(y)", "random, n = 100"): (
        False, "constant_factor", ["hand = 0.010 x reference", "an extra 1/n with n = 100"]),
    ("gradient_descent: X.T.dot(mae_subgradient(y, X.dot(w))) / len(y)", "random, n = 100"): (
        False, "constant_factor", ["an extra 1/n with n = 100"]),
    ("mse_hessian (Newton)", "random, n = 100"): (True, None, []),
    # dL_dy = y_pred - y is half of d mean((y_pred - y)^2) / d y_pred = 2 (y_pred - y) / m.
    ("SimpleNN.backward (dL_dy = y_pred - y)", "random, m = 16"): (
        False, "constant_factor", ["hand = 0.500 x reference", "a missing factor 2"]),
    ("∇MSE = 2/n (y - ŷ)", "random, n = 8"): (False, "sign_flip", ["sign flip"]),
    ("∇MAE = sign(y - ŷ)", "random, n = 8"): (
        False, "constant_factor", ["hand = -8.000 x reference",
                                   "a sign flip and a missing 1/n with n = 8"]),
    ("∇BCE = (ŷ - y) / (ŷ (1 - ŷ))", "random, n = 8"): (
        False, "constant_factor", ["hand = 8.000 x reference", "a missing 1/n with n = 8"]),
}


@pytest.fixture(scope="module")
def seed_rows(seed_script):
    return seed_script.verify()


def test_seed_script_sorts_the_seed_gradients(seed_rows):
    rows = seed_rows
    assert {(row.name, row.point) for row in rows} == set(SEED_ANSWERS)
    for row in rows:
        ok, kind, fragments = SEED_ANSWERS[row.name, row.point]
        assert (row.ok, row.kind) == (ok, kind), (row.name, row.diagnosis)
        for fragment in fragments:
            assert fragment in row.diagnosis, (row.name, row.diagnosis)


def test_seed_script_quotes_the_training_loop_faithfully(seed_script):
    # One epoch of the verbatim gradient_descent (learning rate 1) moves w by exactly the
    # gradient the script checks.
    rng = np.random.default_rng(7)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    # gradient_descent draws its start from numpy's legacy global RNG: seed it, then restore.
    state = np.random.get_state()  # noqa: NPY002
    try:
        np.random.seed(11)  # noqa: NPY002
        w0 = np.random.randn(3)  # noqa: NPY002
        np.random.seed(11)  # noqa: NPY002
        w1, _ = seed_script.gradient_descent(X, y, seed_script.mean_squared_error,
                                             seed_script.mse_gradient, learning_rate=1.0,
                                             epochs=1)
    finally:
        np.random.set_state(state)  # noqa: NPY002
    step = seed_script.loop_gradient(seed_script.mse_gradient)(w0, X, y)
    np.testing.assert_allclose(w0 - w1, step, rtol=1e-12)


def test_seed_script_prints_the_table(seed_script, seed_rows, capsys):
    seed_script.print_table(seed_rows[:2])
    out = capsys.readouterr().out
    assert "mse_gradient" in out and "correct" in out
