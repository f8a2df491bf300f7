"""Public functions carry type hints (issue 18): ``ArrayLike`` in, ``jax.Array`` out.

Every function a public module's ``__all__`` lists, and the ``__init__`` / ``__call__`` of every
public class (the functions users call to build and apply them), annotates each parameter and
its return; so does every public method and property of the classes of :mod:`lossopt.solvers`
(``Result.summary``, ``Trace.to_csv``, ``Status.message``, each solver's ``init``/``step``).
The hints are resolved with :func:`typing.get_type_hints`, so a misspelled or unimported name
(the annotations are strings under ``from __future__ import annotations``) fails here instead
of in a user's type checker or on the documentation site.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import sys
import typing
from collections.abc import Callable, Mapping
from typing import Any

import jax
import pytest
from jax.typing import ArrayLike

import lossopt
from lossopt import losses, solvers

MODULES = [
    "lossopt",
    "lossopt.comparison",
    "lossopt.derivatives",
    "lossopt.distributed",
    "lossopt.experiment",
    "lossopt.gradcheck",
    "lossopt.losses",
    "lossopt.losses.robust",
    "lossopt.models",
    "lossopt.problems",
    "lossopt.prox",
    "lossopt.regularizers",
    "lossopt.solvers",
    "lossopt.testing",
    "lossopt.plotting",
]

# Qualified names the walk skips (none now: minimize, sweep and minimize_least_squares are
# annotated since the spec refactor landed).
EXCLUDED: set[str] = set()

# The classes defined here also have every public method and property checked. The other
# modules' classes are held to __init__/__call__ only.
METHODS_CHECKED_IN = ("lossopt.solvers", "lossopt.comparison")

_SKIP_PARAMS = {"self", "cls"}


def _public_callables(module_name: str) -> list[tuple[str, Callable[..., Any]]]:
    """``(qualified name, function)`` for each function and each public class's own
    ``__init__`` / ``__call__`` in ``module.__all__`` (and, for a class defined in
    :data:`METHODS_CHECKED_IN`, its own public methods and property getters). Inherited or
    ``typing``-made methods (a Protocol's placeholder ``__init__``, an Enum's) are not the
    class's own interface."""
    module = importlib.import_module(module_name)
    found = []
    for name in module.__all__:
        obj = getattr(module, name)
        qualified = f"{module_name}.{name}"
        if qualified in EXCLUDED or inspect.ismodule(obj):
            continue
        if inspect.isclass(obj):
            if typing.Protocol in obj.__mro__[1:] or not obj.__module__.startswith("lossopt"):
                continue
            methods = ["__init__", "__call__"]
            if obj.__module__.startswith(METHODS_CHECKED_IN):
                methods += [m for m in obj.__dict__ if not m.startswith("_")]
            for method in methods:
                fn = obj.__dict__.get(method)
                if isinstance(fn, property):
                    fn = fn.fget
                if inspect.isfunction(fn):
                    found.append((f"{qualified}.{method}", fn))
        elif inspect.isfunction(inspect.unwrap(obj)):
            found.append((qualified, obj))
    return found


def missing_hints(fn: Callable[..., Any]) -> list[str]:
    """The parameters (and ``"return"``) of ``fn`` that carry no annotation; raises what
    :func:`typing.get_type_hints` raises for an annotation that does not resolve."""
    hints = typing.get_type_hints(fn)
    params = [p for p in inspect.signature(fn).parameters if p not in _SKIP_PARAMS]
    return [p for p in [*params, "return"] if p not in hints]


CALLABLES = [item for module in MODULES for item in _public_callables(module)]


def test_the_walk_finds_the_public_api():
    # Guards the parametrization: the losses alone are over 60, and classes are included.
    names = {name for name, _ in CALLABLES}
    assert len(CALLABLES) > 100
    assert {"lossopt.losses.mse", "lossopt.check_gradient", "lossopt.prox.L1.__init__",
            "lossopt.models.MLP.__init__", "lossopt.regularizers.l2"} <= names
    assert {"lossopt.minimize", "lossopt.sweep", "lossopt.minimize_least_squares",
            "lossopt.solvers.compile_choice", "lossopt.solvers.GradientDescent.__init__",
            "lossopt.solvers.GradientDescent.step", "lossopt.solvers.ProximalGradient.measure",
            "lossopt.Result.summary", "lossopt.Result.converged", "lossopt.Trace.to_csv",
            "lossopt.Status.message", "lossopt.solvers.Implicit.__init__"} <= names
    assert not EXCLUDED & names


@pytest.mark.parametrize(("name", "fn"), CALLABLES, ids=[name for name, _ in CALLABLES])
def test_public_function_is_fully_annotated(name, fn):
    missing = missing_hints(fn)
    assert not missing, f"{name}: no annotation on {missing}"


@pytest.mark.parametrize("loss", losses.names())
def test_loss_takes_array_likes_and_returns_a_jax_array(loss):
    info = losses.info(loss)
    hints = typing.get_type_hints(info.fn)
    assert hints["return"] is jax.Array, f"{loss} returns {hints['return']}"
    positional = [p for p in inspect.signature(info.fn).parameters.values()
                  if p.kind is p.POSITIONAL_OR_KEYWORD]
    # Multi-task losses take {task: loss value}; every other loss takes arrays.
    expected = Mapping[str, ArrayLike] if info.input_kind == "loss_values" else ArrayLike
    wrong = {p.name: hints.get(p.name) for p in positional if hints.get(p.name) != expected}
    assert not wrong, f"{loss}: inputs {wrong} are not {expected}"
    if info.input_kind != "loss_values":
        assert hints["weights"] == ArrayLike | None, f"{loss}: weights is {hints['weights']}"


# --- the check itself fails where it should ---------------------------------------------------


def _unannotated_parameter(x: ArrayLike, y) -> jax.Array:
    return jax.numpy.asarray(x)


def _unannotated_return(x: ArrayLike):
    return x


def _misspelled(x: ArrayLke) -> jax.Array:  # noqa: F821 (the point: a name that does not resolve)
    return x


def _annotated(x: ArrayLike, *rest: Any, scale: float = 1.0, **extra: Any) -> jax.Array:
    return jax.numpy.asarray(x) * scale


def test_missing_hints_sees_a_missing_parameter_or_return_hint_and_a_misspelled_one():
    assert missing_hints(_unannotated_parameter) == ["y"]
    assert missing_hints(_unannotated_return) == ["return"]
    assert missing_hints(_annotated) == []
    with pytest.raises(NameError, match="ArrayLke"):
        missing_hints(_misspelled)


def test_the_walk_skips_only_what_it_says(monkeypatch):
    walked = {name for name, _ in _public_callables("lossopt")}
    assert {"lossopt.check_gradient", "lossopt.minimize"} <= walked
    # A name in EXCLUDED is skipped by name, and nothing else with it.
    monkeypatch.setattr(sys.modules[__name__], "EXCLUDED", {"lossopt.minimize"})
    assert walked - {name for name, _ in _public_callables("lossopt")} == {"lossopt.minimize"}
    # Methods are walked for the classes of METHODS_CHECKED_IN only.
    assert {"lossopt.Comparison.table", "lossopt.Result.lane"} <= walked


# --- the solvers: what the hints say -----------------------------------------------------------


def test_minimize_takes_array_like_tolerances_and_returns_a_result():
    for fn in (lossopt.minimize, lossopt.sweep, lossopt.minimize_least_squares):
        assert typing.get_type_hints(fn)["return"] is lossopt.Result, fn.__name__
    hints = typing.get_type_hints(lossopt.minimize)
    assert {hints[t] for t in ("gtol", "ftol", "xtol")} == {ArrayLike}
    assert hints["key"] == jax.Array | None
    assert typing.get_type_hints(lossopt.sweep)["grid"] == ArrayLike | Mapping[str, ArrayLike]


def _float_leaves() -> list[tuple[str, str]]:
    """``(solver class, field)`` for every numeric hyperparameter of the solvers' pytree
    dataclasses: a field that is not static and whose default is a float (a leaf that
    ``jax.vmap`` can sweep), or a learning rate."""
    found = []
    for name in solvers.__all__:
        cls = getattr(solvers, name)
        if not (inspect.isclass(cls) and dataclasses.is_dataclass(cls)):
            continue
        for field in dataclasses.fields(cls):
            if field.metadata.get("static"):
                continue
            if type(field.default) is float or field.name == "learning_rate":
                found.append((name, field.name))
    return found


FLOAT_LEAVES = _float_leaves()


def test_the_numeric_hyperparameters_are_found():
    assert {("GradientDescent", "learning_rate"), ("GradientDescent", "momentum"),
            ("Newton", "damping"), ("LBFGS", "c2"), ("Armijo", "shrink"),
            ("LevenbergMarquardt", "damping"), ("ProximalGradient", "learning_rate")
            } <= set(FLOAT_LEAVES)


@pytest.mark.parametrize(("cls", "field"), FLOAT_LEAVES, ids=[f"{c}.{f}" for c, f in FLOAT_LEAVES])
def test_a_solver_hyperparameter_is_array_like(cls, field):
    # Python floats, arrays and the tracers jax.vmap passes in a sweep all are ArrayLike.
    hint = typing.get_type_hints(getattr(solvers, cls))[field]
    assert hint == ArrayLike, f"{cls}.{field} is {hint}"
