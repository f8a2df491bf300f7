"""Reliability of minimize's inputs and checkpoints: clear errors, no stale or wrong resume.

Classes (the Reliability issue): bad solver arguments, damaged checkpoint files (fuzzed),
checkpoints of a different run (edited code, changed globals), and extending a finished run.
"""

import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lossopt
from lossopt.solvers import GradientDescent, Optax, Status

RNG = np.random.default_rng(16)
X = jnp.asarray(RNG.normal(size=(40, 3)))
Y = X @ jnp.array([1.0, -1.0, 2.0]) + 0.1 * jnp.asarray(RNG.normal(size=40))


def mse(w, X, y):
    return jnp.mean((X @ w - y) ** 2)


GD = GradientDescent(0.05)


def run(folder, max_iters=30, resume=False, fun=mse, solver=GD, **kw):
    return lossopt.minimize(fun, jnp.zeros(3), solver, args=(X, Y), max_iters=max_iters,
                            gtol=0.0, checkpoint_dir=folder, chunk_size=10, resume=resume,
                            **kw)


def assert_identical(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# --- bad arguments ----------------------------------------------------------------------------

def test_zero_size_params_and_a_solver_class_are_clear_errors():
    with pytest.raises(ValueError, match=r"`init_params` has no elements \(leaf shapes \[\(0,\)\]\)"):
        lossopt.minimize(lambda w: jnp.sum(w), jnp.zeros(0), GradientDescent(0.1))
    with pytest.raises(ValueError, match="no elements"):
        lossopt.minimize(lambda p: jnp.sum(p["a"]), {"a": jnp.zeros((2, 0))}, GradientDescent(0.1))
    with pytest.raises(TypeError, match=r"solver instance, e.g. GradientDescent\(\.\.\.\).*"
                                        r"got the class GradientDescent itself"):
        lossopt.minimize(mse, jnp.zeros(3), GradientDescent, args=(X, Y))


# --- damaged checkpoints ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("good")
    result = run(folder)
    return (folder / "checkpoint.npz").read_bytes(), result


def _resume_from(folder, data):
    (folder / "checkpoint.npz").write_bytes(data)
    return run(folder, resume=True)


CLEAN = r"checkpoint '.*checkpoint\.npz' cannot be read \((?P<reason>.*)\); delete it to start afresh"


@pytest.mark.parametrize("data, reason", [
    (b"", "the file is empty"),
    (b"step,loss\n1,0.5\n", "not a checkpoint archive"),
    (b"\x80\x04\x95 pickled-looking bytes", "not a checkpoint archive"),
])
def test_unreadable_files_name_the_reason(tmp_path, data, reason):
    with pytest.raises(ValueError, match=CLEAN) as info:
        _resume_from(tmp_path, data)
    assert reason in str(info.value)
    assert "pickled" not in str(info.value)


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0.0, 0.999), flips=st.lists(st.floats(0.0, 0.999), min_size=0, max_size=3))
def test_a_damaged_checkpoint_resumes_exactly_or_fails_cleanly(tmp_path, checkpoint, cut, flips):
    good, reference = checkpoint
    data = bytearray(good)
    if not flips:  # truncation
        data = data[: int(cut * len(good))]
    for f in flips:  # flipped bytes anywhere: headers, metadata, arrays, the zip directory
        data[int(f * len(data))] ^= 0xFF
    try:
        resumed = _resume_from(tmp_path, bytes(data))
    except ValueError as err:  # the one clean error, never BadZipFile / EOFError / KeyError
        assert "cannot be read" in str(err) or "different run" in str(err), str(err)
        assert isinstance(err.__cause__, Exception) or "different run" in str(err)
    else:  # a flip that zip's checks cannot see (a timestamp): the same run, bit for bit
        assert_identical(resumed, reference)


def test_partial_temporary_files_are_cleaned_up(tmp_path):
    stale = tmp_path / ".checkpoint-abc123.npz.tmp"
    stale.write_bytes(b"half a checkpoint")
    run(tmp_path)
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz"]


# --- a checkpoint of a different run is never continued ---------------------------------------

def _function(source, name="objective", **globals_):
    """A module-level function named ``name`` compiled from ``source`` (an edited body)."""
    namespace = {"jnp": jnp, **globals_}
    exec(compile(source, "<user module>", "exec"), namespace)
    return namespace[name]


BODY = "def objective(w, X, y):\n    return jnp.mean((X @ w - y) ** {power}) * SCALE\n"


def test_resume_refuses_an_edited_body_or_a_changed_global(tmp_path):
    original = _function(BODY.format(power=2), SCALE=1.0)
    run(tmp_path, fun=original)
    edited = _function(BODY.format(power=4), SCALE=1.0)  # same name, another body
    assert edited.__qualname__ == original.__qualname__
    with pytest.raises(ValueError, match=r"different run.*\(fun: checkpoint has"):
        run(tmp_path, resume=True, fun=edited)
    rescaled = _function(BODY.format(power=2), SCALE=2.0)  # the constant it reads changed
    with pytest.raises(ValueError, match="different run"):
        run(tmp_path, resume=True, fun=rescaled)
    same = _function(BODY.format(power=2), SCALE=1.0)  # an identical re-definition resumes
    run(tmp_path, resume=True, fun=same)


# --- extending a finished run -----------------------------------------------------------------

@pytest.mark.parametrize("solver, options", [
    (GradientDescent(0.05, momentum=0.5), {}),
    (Optax(optax.adam(0.05)), dict(batch_size=8, key=jax.random.key(3))),
])
def test_a_larger_budget_continues_and_equals_the_longer_run(tmp_path, solver, options):
    def f(w, X, y, *, key=None):
        return mse(w, X, y)

    short = run(tmp_path, max_iters=30, fun=f, solver=solver, **options)
    assert int(short.status) == Status.MAX_ITERS and int(short.iterations) == 30
    extended = run(tmp_path, max_iters=70, resume=True, fun=f, solver=solver, **options)
    longer = run(tmp_path / "fresh", max_iters=70, fun=f, solver=solver, **options)
    assert int(extended.iterations) == 70
    assert_identical(extended, longer)
    with pytest.raises(ValueError, match=r"at iteration 70, past this call's max_iters=50"):
        run(tmp_path, max_iters=50, resume=True, fun=f, solver=solver, **options)


def test_a_converged_run_stays_converged_with_a_larger_budget(tmp_path):
    options = dict(gtol=1e-6)
    first = lossopt.minimize(mse, jnp.zeros(3), GradientDescent(0.2), args=(X, Y),
                             max_iters=500, checkpoint_dir=tmp_path, chunk_size=10, **options)
    assert int(first.status) == Status.CONVERGED
    again = lossopt.minimize(mse, jnp.zeros(3), GradientDescent(0.2), args=(X, Y),
                             max_iters=900, checkpoint_dir=tmp_path, chunk_size=10,
                             resume=True, **options)
    assert int(again.iterations) == int(first.iterations)
    np.testing.assert_array_equal(again.params, first.params)


def test_a_recreated_function_with_the_same_code_and_globals_resumes(tmp_path):
    run(tmp_path)
    other = types.FunctionType(mse.__code__, {"jnp": jnp, "__name__": mse.__module__}, "mse")
    # Same code, same globals it reads (jnp): the same objective, so it resumes.
    run(tmp_path, resume=True, fun=other)
    assert os.listdir(tmp_path) == ["checkpoint.npz"]
