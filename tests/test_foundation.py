"""Reduction helper, registry, regularizers, derivative helpers and the `lossopt losses` command."""

from __future__ import annotations

import json
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lossopt
from lossopt import losses, regularizers
from lossopt.cli import main
from lossopt.losses import reduce_loss

# --- reduce_loss -------------------------------------------------------------------------------


def test_reduce_loss_mask_excludes_entries_from_value_and_denominator():
    values = jnp.array([1.0, jnp.inf, 3.0, jnp.nan])
    mask = jnp.array([True, False, True, False])
    # Masked entries may hold inf/NaN (an ignored class id): they must not leak.
    mean, total, g = jax.jit(lambda v: (  # one compiled program, not one per operation
        reduce_loss(v, mask=mask), reduce_loss(v, mask=mask, reduction="sum"),
        jax.grad(lambda u: reduce_loss(u, mask=mask))(v)))(values)
    assert float(mean) == 2.0
    assert float(total) == 4.0
    np.testing.assert_array_equal(g, [0.5, 0.0, 0.5, 0.0])


def test_reduce_loss_weights_and_mask_combine():
    values = jnp.array([1.0, 2.0, 3.0])
    got = reduce_loss(values, jnp.array([2.0, 1.0, 1.0]), mask=jnp.array([True, True, False]))
    assert float(got) == pytest.approx((2 * 1 + 2) / 3)


def test_reduce_loss_none_returns_weighted_values():
    got = reduce_loss(jnp.array([1.0, 2.0]), jnp.array([3.0, 0.5]), "none")
    np.testing.assert_array_equal(got, [3.0, 1.0])


# --- registry ----------------------------------------------------------------------------------


def test_get_unknown_name_lists_known_losses():
    with pytest.raises(KeyError, match=r"unknown loss 'msee'.*mse"):
        losses.get("msee")


def test_get_unknown_hyperparameter_lists_accepted_ones():
    with pytest.raises(TypeError, match=r"'huber'.*\['dlta'\].*accepted: delta"):
        losses.get("huber", dlta=1.0)


def test_get_binds_hyperparameters():
    p, t = jnp.array([0.0, 3.0]), jnp.zeros(2)
    bound = losses.get("huber", delta=2.0)
    assert float(bound(p, t)) == float(losses.huber(p, t, delta=2.0))


def test_catalog_entries_are_complete_and_every_public_loss_is_registered():
    entries = list(losses.catalog())
    assert [e.name for e in entries] == sorted(e.name for e in entries)
    for e in entries:
        assert getattr(losses, e.name) is e.fn, e.name
        assert e.reference and e.summary, e.name
        assert isinstance(e.convex, bool) and isinstance(e.smooth, bool)
        assert "weights" not in e.hyperparameters and "reduction" not in e.hyperparameters
    registered = {e.name for e in entries}
    helpers = {"catalog", "get", "info", "names", "reduce_loss", "LossInfo", "REDUCTIONS",
               "robust"}  # `robust` is the namespace of rho/psi/weight triples
    exported = set(losses.__all__) - helpers
    assert exported <= registered, exported - registered


def test_core_catalogue_names_of_issue_2_are_all_registered():
    required = """mse mae huber smooth_l1 quantile log_cosh epsilon_insensitive msle mape
    binary_cross_entropy sigmoid_binary_cross_entropy categorical_cross_entropy
    softmax_cross_entropy hinge squared_hinge multiclass_hinge sigmoid_focal softmax_focal
    kl_divergence kl_divergence_with_logits nll gaussian_nll poisson_nll""".split()
    assert set(required) <= set(losses.names()), set(required) - set(losses.names())


# --- regularizers ------------------------------------------------------------------------------

PARAMS = {"w": np.array([[1.0, -2.0], [0.5, 0.0]]), "b": np.array([-3.0])}


def test_regularizers_over_pytrees_match_closed_forms():
    flat = np.concatenate([PARAMS["w"].ravel(), PARAMS["b"]])
    tree = jax.tree_util.tree_map(jnp.asarray, PARAMS)
    assert float(regularizers.l1(tree, 0.3)) == pytest.approx(0.3 * np.abs(flat).sum())
    assert float(regularizers.l2(tree, 0.3)) == pytest.approx(0.3 * (flat**2).sum())
    expected = 0.2 * (0.25 * np.abs(flat).sum() + 0.75 * (flat**2).sum())
    assert float(regularizers.elastic_net(tree, 0.2, 0.25)) == pytest.approx(expected)


def test_l1_subgradient_is_minimum_norm_at_zero():
    g = jax.jit(jax.grad(lambda p: regularizers.l1(p, 2.0)))(jnp.array([0.0, -1.0, 3.0]))
    np.testing.assert_array_equal(g, [0.0, -2.0, 2.0])


def test_l2_gradient_has_no_half_factor():
    w = jnp.array([1.0, -2.0])
    np.testing.assert_allclose(jax.grad(lambda p: regularizers.l2(p, 0.5))(w), [1.0, -2.0])


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: regularizers.l1(jnp.ones(2), -1.0), ValueError, "strength.*>= 0.*-1.0"),
        (lambda: regularizers.l2(jnp.ones(2), float("nan")), ValueError, "strength"),
        (lambda: regularizers.elastic_net(jnp.ones(2), 1.0, 1.5), ValueError, r"l1_ratio.*\[0.0, 1.0\]"),
        (lambda: regularizers.l2(jnp.array([1, 2]), 1.0), TypeError, "floating"),
    ],
)
def test_regularizer_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --- derivatives -------------------------------------------------------------------------------


def _objective(p, X, y):
    return jnp.sum((X @ p["w"] + p["b"] - y) ** 2) + jnp.sum(p["w"] ** 4)


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(6, 3)), rng.normal(size=6)
    params = {"w": rng.normal(size=3), "b": np.array(0.3)}
    return params, X, y


def _reference_gradient_and_hessian(params, X, y):
    # Closed form for f = |Xw + b - y|^2 + sum w^4, ravel order of a dict is sorted keys: b, w.
    r = X @ params["w"] + params["b"] - y
    A = np.hstack([np.ones((X.shape[0], 1)), X])
    g = 2 * A.T @ r + np.concatenate([[0.0], 4 * params["w"] ** 3])
    H = 2 * A.T @ A + np.diag(np.concatenate([[0.0], 12 * params["w"] ** 2]))
    return g, H


def test_grad_hessian_matrix_and_hvp_match_closed_forms(problem):
    params, X, y = problem
    g_ref, H_ref = _reference_gradient_and_hessian(params, X, y)
    # Tree comparisons (chex): the results keep the params' structure ({"b": (), "w": (3,)})
    # as well as matching the closed forms to float64 rounding.
    v = {"w": np.array([1.0, -1.0, 0.5]), "b": np.array(2.0)}

    @jax.jit  # the four helpers in one compiled program (eagerly: one per operation)
    def derivatives(params, v, X, y):
        return (lossopt.grad(_objective, params, X, y),
                lossopt.hessian_matrix(_objective, params, X, y),
                lossopt.hvp(_objective, params, v, X, y),
                lossopt.hessian(_objective, params, X, y))

    g, H, hv, hess_tree = derivatives(params, v, X, y)
    chex.assert_trees_all_close(g, {"b": g_ref[0], "w": g_ref[1:]}, rtol=1e-12)
    np.testing.assert_allclose(H, H_ref, rtol=1e-12)
    expected = H_ref @ np.concatenate([[2.0], v["w"]])
    chex.assert_trees_all_close(hv, {"b": expected[0], "w": expected[1:]}, rtol=1e-12)
    chex.assert_trees_all_close(
        hess_tree,
        {"b": {"b": H_ref[0, 0], "w": H_ref[0, 1:]}, "w": {"b": H_ref[1:, 0], "w": H_ref[1:, 1:]}},
        rtol=1e-12)


# --- the `lossopt losses` command --------------------------------------------------------------


def test_cli_losses_json_lists_every_registered_loss(capsys):
    assert main(["losses", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == losses.names()
    huber = next(r for r in rows if r["name"] == "huber")
    assert huber["convex"] is True and huber["smooth"] is False and huber["robust"] is True


def test_cli_losses_table_through_the_console_script():
    out = subprocess.run(
        [sys.executable, "-m", "lossopt.cli", "losses", "--task", "regression"],
        capture_output=True, text=True, check=True,
    ).stdout
    for name in ("mse", "huber", "log_cosh", "quantile"):
        assert name in out
    assert "hinge" not in out


def test_console_script_runs_exit_functions_flushes_and_exits_with_the_status():
    # console_main ends the process without the interpreter's teardown: what atexit holds
    # must still run, the output must be complete and the status the command's. `import
    # lossopt` alone does not import optax (~0.1 s of every command that does not use it).
    code = ("import atexit, sys; import lossopt; print('optax imported:', 'optax' in sys.modules)"
            "; atexit.register(print, 'exit functions ran'); sys.argv = ['lossopt']; "
            "from lossopt.cli import console_main; console_main(); print('not reached')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2  # no command: usage
    assert proc.stdout.splitlines() == ["optax imported: False", "exit functions ran"]
    assert proc.stderr.startswith("usage: lossopt")


def test_required_hyperparameters_are_marked():
    assert repr(losses.info("gaussian_nll").hyperparameters["variance"]) == "<required>"


def test_cli_without_command_is_usage_error(capsys):
    assert main([]) == 2
