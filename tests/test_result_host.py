"""Result on the host: a Status, Python ints, a trimmed trace column, repr and summary;
every field stays an array inside jax.jit and jax.vmap (the pytree contract)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lossopt
from lossopt import Status
from lossopt.solvers import GradientDescent, Newton


def quadratic(w, A, b):
    # 0.5 w'Aw - b'w: minimiser A^{-1} b, computed independently below with numpy.
    return 0.5 * w @ A @ w - b @ w


A = jnp.array([[3.0, 0.5], [0.5, 1.0]])
b = jnp.array([1.0, -2.0])
GD = GradientDescent(learning_rate=0.3)


@pytest.fixture(scope="module")
def res():
    return lossopt.minimize(quadratic, jnp.zeros(2), GD, args=(A, b), gtol=1e-10,
                            compile="fast")


def test_host_fields_are_a_status_and_python_ints(res):
    assert type(res.status) is Status and res.status is Status.CONVERGED
    assert res.status.name == "CONVERGED" and res.converged is True
    for name in ("iterations", "num_fun_evals", "num_grad_evals", "num_hess_evals",
                 "num_hvp_evals"):
        assert type(getattr(res, name)) is int, name
    # Fixed-step GD: one value_and_grad per iteration plus the initial point.
    assert res.num_grad_evals == res.iterations + 1
    np.testing.assert_allclose(res.params, np.linalg.solve(np.asarray(A), np.asarray(b)),
                               rtol=1e-9)  # gtol 1e-10 on a condition number ~3.6 problem


def test_trace_column_is_trimmed_to_the_iterations_run(res):
    loss = res.trace["loss"]
    assert loss.shape == (res.iterations + 1,) and np.all(np.isfinite(loss))
    np.testing.assert_array_equal(res.trace["iteration"], np.arange(res.iterations + 1))
    with pytest.raises(KeyError, match=r"no trace column 'los' \(did you mean 'loss'\?\)"):
        res.trace["los"]


def test_repr_is_one_line_and_summary_says_why(res):
    text = repr(res)
    assert "\n" not in text and text.startswith("Result(status=CONVERGED, iterations=")
    summary = res.summary()
    assert summary.splitlines()[0].startswith(f"CONVERGED after {res.iterations} iterations:")
    assert Status.CONVERGED.message in summary
    assert f"{res.num_grad_evals} gradients" in summary and "Hessians" not in summary
    newton = lossopt.minimize(quadratic, jnp.zeros(2), Newton(), args=(A, b), compile="fast")
    assert newton.num_hess_evals >= 1  # Cholesky Newton: full Hessians, listed when used
    assert f"{newton.num_hess_evals} Hessians" in newton.summary()


def test_inside_jit_and_vmap_every_field_stays_an_array():
    @jax.jit
    def solve(b):
        return lossopt.minimize(quadratic, jnp.zeros(2), GD, args=(A, b), gtol=1e-10)

    inner = solve(b)
    assert isinstance(inner.status, jax.Array) and inner.status.dtype == jnp.int32
    assert isinstance(inner.converged, jax.Array) and bool(inner.converged)
    batched = jax.vmap(solve)(jnp.stack([b, 2 * b]))
    assert batched.status.shape == (2,) and batched.converged.shape == (2,)
    lane = batched.lane(1)  # one run picked from a batch is on the host again
    assert lane.status is Status.CONVERGED and type(lane.iterations) is int
    with pytest.raises(ValueError, match="select one run first"):
        batched.summary()


def test_converged_is_defined_once_for_every_status():
    codes = jnp.arange(len(Status))
    as_array = np.asarray(lossopt.solvers._result.is_converged(codes))
    assert as_array.tolist() == [s.converged for s in Status]
    assert [s.name for s in Status if s.converged] == [
        "CONVERGED", "CONVERGED_FTOL", "CONVERGED_XTOL"]
