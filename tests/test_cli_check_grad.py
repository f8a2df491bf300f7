"""Tests of ``lossopt check-grad``: exit status 0 (correct), 1 (wrong), 2 (bad usage)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lossopt import cli
from lossopt._cli_check_grad import KINDS, UsageError, draw, parse_arg_spec

USER_FILE = textwrap.dedent(
    """
    import numpy as np

    def bce(y_true, y_pred):
        return -np.mean(y_true * np.log(y_pred) + (1 - y_true) * np.log(1 - y_pred))

    def bce_grad(y_true, y_pred):
        return (y_pred - y_true) / (y_pred * (1 - y_pred) * y_true.size)

    def bce_grad_sum(y_true, y_pred):  # the seed's text formula: no 1/n
        return (y_pred - y_true) / (y_pred * (1 - y_pred))

    def cce(labels, probs):
        return -np.sum(labels * np.log(probs)) / labels.shape[0]

    def cce_grad(labels, probs):
        return -labels / (labels.shape[0] * probs)

    def sq(w):
        return np.sum(w ** 3)

    def sq_hess(w):
        return np.diag(6 * w)
    """
)


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "user_losses.py"
    path.write_text(USER_FILE)
    return str(path)


def _run(argv, capsys):
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_correct_gradient_exits_0(user_file, capsys):
    code, out, _ = _run(["check-grad", f"{user_file}:bce", f"{user_file}:bce_grad",
                         "--arg", "y_true=labels01:8", "--arg", "y_pred=probs:8",
                         "--wrt", "y_pred", "--seed", "3"], capsys)
    assert code == 0, out
    assert "gradient check: OK" in out and "seed 3" in out


def test_wrong_gradient_exits_1_with_the_diagnosis(user_file, capsys):
    code, out, _ = _run(["check-grad", f"{user_file}:bce", f"{user_file}:bce_grad_sum",
                         "--arg", "y_true=labels01:8", "--arg", "y_pred=probs:8",
                         "--wrt", "y_pred"], capsys)
    assert code == 1
    assert "gradient check: WRONG" in out
    assert "hand = 8.000 x reference: a missing 1/n with n = 8" in out


def test_onehot_simplex_and_argnum(user_file, capsys):
    code, out, _ = _run(["check-grad", f"{user_file}:cce", f"{user_file}:cce_grad",
                         "--arg", "labels=onehot:3:5", "--arg", "probs=simplex:5,3",
                         "--argnum", "1"], capsys)
    assert code == 0, out
    assert "probs=simplex:5,3 (5, 3)" in out and "labels=onehot:3:5 (5, 3)" in out


def test_hessian_flag(user_file, capsys):
    code, out, _ = _run(["check-grad", f"{user_file}:sq", f"{user_file}:sq_hess",
                         "--arg", "w=normal:4", "--hessian"], capsys)
    assert code == 0 and "hessian check: OK" in out


def test_module_target(capsys, user_file):
    code, out, _ = _run(["check-grad", "lossopt.losses:mse", f"{user_file}:bce_grad",
                         "--arg", "predictions=normal:4", "--arg", "targets=normal:4"], capsys)
    assert code == 1 and "reference: JAX autodiff" in out


@pytest.mark.parametrize(
    ("argv_tail", "message"),
    [
        (["{f}:bce", "{f}:nope", "--arg", "y_true=labels01:4"], "has no function 'nope'"),
        (["{d}/missing.py:bce", "{f}:bce_grad", "--arg", "y_true=labels01:4"], "no such file"),
        (["bce", "{f}:bce_grad", "--arg", "y_true=labels01:4"], "FILE.py:FUNCTION"),
        (["{f}:bce", "{f}:bce_grad", "--arg", "y_true=prob:4"], "unknown kind 'prob'"),
        (["{f}:bce", "{f}:bce_grad", "--arg", "y_true=probs"], "expected NAME=probs:SHAPE"),
        (["{f}:bce", "{f}:bce_grad", "--arg", "y_true=probs:4;3"], "bad shape"),
        (["{f}:bce", "{f}:bce_grad", "--arg", "y_true=onehot:x:4"], "bad class count"),
        (["{f}:bce", "{f}:bce_grad", "--arg", "4=probs:4"], "expected NAME=KIND:SHAPE"),
        (["{f}:bce", "{f}:bce_grad"], "no --arg given"),
        (["{f}:bce", "{f}:bce_grad", "--arg", "y_pred=probs:4", "--arg", "y_true=labels01:4"],
         "differs from LOSS's parameter order (y_true, y_pred)"),
        (["{f}:bce", "{f}:bce_grad", "--arg", "y_true=labels01:4", "--arg", "y_pred=probs:4",
          "--wrt", "p"], "--wrt 'p' is not one of"),
        (["{f}:bce", "{f}:bce_grad", "--arg", "y_true=ints:2:4", "--arg", "y_pred=probs:4"],
         "integer-valued"),
        (["{f}:bce", "{f}:bce_grad", "--arg", "y_true=labels01:4", "--arg", "y_pred=probs:5",
          "--wrt", "y_pred"], "calling `f`"),
    ],
)
def test_bad_usage_exits_2_with_a_message(user_file, tmp_path, capsys, argv_tail, message):
    argv = ["check-grad", *[a.format(f=user_file, d=tmp_path) for a in argv_tail]]
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert message in err and err.startswith("lossopt check-grad: error:")


def test_file_that_fails_to_import_exits_2(tmp_path, capsys):
    bad = tmp_path / "broken.py"
    bad.write_text("def f(:\n")
    code, _, err = _run(["check-grad", f"{bad}:f", f"{bad}:g", "--arg", "x=normal:3"], capsys)
    assert code == 2 and "SyntaxError" in err


def test_console_script_subprocess(user_file):
    # One end-to-end run through a fresh interpreter (argument parsing, exit status, stdout).
    proc = subprocess.run(
        [sys.executable, "-m", "lossopt.cli", "check-grad", f"{user_file}:bce",
         f"{user_file}:bce_grad_sum", "--arg", "y_true=labels01:8", "--arg", "y_pred=probs:8",
         "--wrt", "y_pred"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "a missing 1/n with n = 8" in proc.stdout


def test_parse_arg_spec():
    assert parse_arg_spec("y=onehot:3:8,2") == ("y", "onehot", "3", (8, 2))
    assert parse_arg_spec("lam=const:0.5:()") == ("lam", "const", "0.5", ())
    assert parse_arg_spec("x=normal:2x3") == ("x", "normal", None, (2, 3))
    with pytest.raises(UsageError, match="known kinds"):
        parse_arg_spec("x=gaussian:3")


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_draws_valid_values(kind):
    rng = np.random.default_rng(0)
    param = {"onehot": "4", "ints": "4", "const": "2.5"}.get(kind)
    x = draw(kind, param, (50, 3), rng)
    checks = {
        "normal": lambda a: a.dtype == np.float64 and abs(a.mean()) < 0.5,  # 150 draws: mean ~ 0.08
        "uniform": lambda a: ((a >= 0) & (a < 1)).all(),
        "positive": lambda a: (a > 0).all(),
        "probs": lambda a: ((a >= 0.05) & (a <= 0.95)).all(),
        "simplex": lambda a: (a > 0).all() and np.allclose(a.sum(axis=-1), 1.0),
        "labels01": lambda a: set(np.unique(a)) <= {0.0, 1.0},
        "labels_pm1": lambda a: set(np.unique(a)) <= {-1.0, 1.0},
        "onehot": lambda a: a.shape == (50, 3, 4) and np.array_equal(a.sum(axis=-1),
                                                                    np.ones((50, 3))),
        "ints": lambda a: a.dtype == np.int64 and ((a >= 0) & (a < 4)).all(),
        "const": lambda a: (a == 2.5).all(),
    }
    assert checks[kind](x)
