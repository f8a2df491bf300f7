"""Unknown names suggest the nearest valid ones, as well as listing them (one helper)."""

from __future__ import annotations

import pytest

import lossopt
from lossopt._validation import check_choice, did_you_mean


@pytest.mark.parametrize(
    ("call", "error", "suggestion", "listed"),
    [
        (lambda: lossopt.losses.get("hubber"), KeyError, "did you mean 'huber'?", "known losses"),
        (lambda: lossopt.losses.get("MSE"), KeyError, "did you mean 'mse'?", "known losses"),
        (lambda: lossopt.losses.get("huber", detla=1.0), TypeError, "did you mean 'delta'?",
         "accepted: delta"),
        (lambda: lossopt.problems.get("rosenbrok"), KeyError, "'rosenbrock'", "Known problems"),
        (lambda: lossopt.problems.get("penalty_1", nn=3), TypeError, "did you mean 'n'?",
         "accepted: n"),
        (lambda: lossopt.problems.names("mgj"), ValueError, "did you mean 'mgh'?", "one of"),
    ],
)
def test_unknown_names_suggest_and_list(call, error, suggestion, listed):
    with pytest.raises(error) as info:
        call()
    text = str(info.value)
    assert suggestion in text
    assert listed in text  # the suggestion comes on top of the full list, never instead of it


def test_check_choice_suggests_and_names_the_argument():
    with pytest.raises(ValueError, match=r"`reduction` must be one of .*got 'maen' \(did you "
                                         r"mean 'mean'\?\)"):
        check_choice("maen", "reduction", ("mean", "sum", "none"))


def test_no_suggestion_for_a_far_or_non_string_value():
    assert did_you_mean("zzzzzz", ["mse", "huber"]) == ""
    assert did_you_mean(3, ["mse"]) == ""
    # A best-first order: the closest name comes first.
    assert did_you_mean("hubr", ["hinge", "huber"]).startswith(" (did you mean 'huber'")


def _config(data=None, loss=None, solver=None):
    return {"data": {"kind": "linear_regression", **(data or {})},
            "losses": [{"name": "huber", **(loss or {})}],
            "solvers": [{"name": "newton", **(solver or {})}]}


@pytest.mark.parametrize(
    ("raw", "suggestion"),
    [
        (_config(loss={"name": "hubber"}), "unknown loss 'hubber' (did you mean 'huber'?)"),
        (_config(loss={"delt": 1.0}), "`losses[0].delt` for loss 'huber' (did you mean 'delta'?)"),
        (_config(solver={"name": "newtn"}), "unknown solver 'newtn' (did you mean 'newton'?)"),
        (_config(data={"kind": "linear_regresion"}), "(did you mean 'linear_regression'"),
        (_config(data={"n_sampels": 3}), "`data.n_sampels` in `data` (did you mean 'n_samples'"),
        (_config(data={"kind": "problem:rosenbrok"}), "(did you mean 'rosenbrock'"),
    ],
)
def test_config_errors_suggest_the_nearest_name(raw, suggestion):
    from lossopt.experiment import ConfigError, resolve_config

    with pytest.raises(ConfigError) as info:
        resolve_config(raw)
    assert suggestion in str(info.value)
