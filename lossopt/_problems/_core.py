"""The :class:`Problem` record and the name -> builder registry behind ``lossopt.problems``."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lossopt._validation import did_you_mean

__all__ = [
    "Problem",
    "ProblemInfo",
    "catalog",
    "check_int",
    "get",
    "names",
    "register",
    "sum_of_squares",
]


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """A test problem with a known minimum: objective, data, start and the value to reach.

    Attributes:
        name: registry name (``lossopt.problems.get(name)``).
        fun: the objective ``fun(params, *args) -> scalar``; pure JAX, traceable, computed in
            the dtype of ``params`` (float32 or float64).
        x0: the standard starting point: a numpy float64 array, or a pytree of them.
        args: the data, a tuple of numpy arrays passed as ``fun(params, *args)`` (empty when the
            problem has none); never closed over, so one compilation serves every problem of
            the same shapes.
        f_star: the known minimum value (or the best known local minimum, as ``source`` says).
        x_star: the minimiser where it is known and unique (numpy float64, same structure as
            ``x0``), else None.
        source: where ``f_star`` comes from (paper and problem number, or the reference solve).
        residuals: for least-squares problems ``residuals(params, *args) -> (m,)`` with
            ``fun == sum(residuals^2)`` exactly (no factor 1/2, MGH's convention); None
            otherwise.
        n: number of parameters (the size of ``x0``).
        tags: labels such as ``"mgh"``, ``"least_squares"``, ``"zero_residual"``,
            ``"variable_dimension"``, ``"ml"``, ``"convex"``, ``"smooth"``.
    """

    name: str
    fun: Callable[..., Any]
    x0: Any
    args: tuple[Any, ...]
    f_star: float
    x_star: Any
    source: str
    residuals: Callable[..., Any] | None
    n: int
    tags: tuple[str, ...]

    def value(self, params: Any) -> jax.Array:
        """``fun(params, *args)``: the objective on this problem's data."""
        return self.fun(params, *self.args)

    def __repr__(self) -> str:
        return (f"Problem(name={self.name!r}, n={self.n}, f_star={self.f_star!r}, "
                f"tags={self.tags!r})")


@dataclasses.dataclass(frozen=True)
class ProblemInfo:
    """A registered problem, described without building it (no data is loaded).

    Attributes:
        name: registry name.
        summary: first line of the problem's description.
        tags: as :attr:`Problem.tags`.
        parameters: keyword arguments ``get`` accepts and their defaults (``n``, ``m``, ...).
        description: the full description (formula, start, minima, reference).
    """

    name: str
    summary: str
    tags: tuple[str, ...]
    parameters: dict[str, Any]
    description: str


@dataclasses.dataclass(frozen=True)
class _Entry:
    builder: Callable[..., Problem]
    tags: tuple[str, ...]


_REGISTRY: dict[str, _Entry] = {}


def register(name: str, tags: tuple[str, ...]) -> Callable[[Callable[..., Problem]], Any]:
    """Decorator registering ``builder(**kwargs) -> Problem`` under ``name``."""

    def decorator(builder: Callable[..., Problem]) -> Callable[..., Problem]:
        if name in _REGISTRY:
            raise ValueError(f"a problem named {name!r} is already registered")
        _REGISTRY[name] = _Entry(functools.cache(builder), tuple(tags))
        return builder

    return decorator


@functools.cache
def sum_of_squares(residuals: Callable[..., Any]) -> Callable[..., Any]:
    """The objective ``sum(residuals(x, *args)^2)`` of a least-squares problem."""

    def fun(x, *args):
        return jnp.sum(jnp.square(residuals(x, *args)))

    fun.__name__ = fun.__qualname__ = f"sum_of_squares_{residuals.__name__.lstrip('_')}"
    fun.__doc__ = f"``sum({residuals.__name__}(x, *args) ** 2)``."
    return fun


def _parameters(builder: Callable[..., Problem]) -> dict[str, Any]:
    return {p.name: p.default for p in inspect.signature(builder).parameters.values()}


def names(tag: str | None = None) -> list[str]:
    """Sorted names of the registered problems, optionally only those carrying ``tag``.

    Args:
        tag: keep only problems with this tag (``"mgh"``, ``"ml"``, ``"zero_residual"``, ...).

    Returns:
        A sorted list of names.

    Raises:
        ValueError: ``tag`` is not a tag of any problem (the known tags are listed).

    Example:
        >>> from lossopt import problems
        >>> problems.names("ml")
        ['huber_outliers', 'logistic_breast_cancer', 'poisson_synthetic']
    """
    if tag is not None and not any(tag in e.tags for e in _REGISTRY.values()):
        known = sorted({t for e in _REGISTRY.values() for t in e.tags})
        raise ValueError(f"`tag` must be one of {known}; got {tag!r}{did_you_mean(tag, known)}")
    return sorted(k for k, e in _REGISTRY.items() if tag is None or tag in e.tags)


def _entry(name: str) -> _Entry:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise KeyError(
            f"`name` must be a registered problem; got {name!r}{did_you_mean(name, names())}. "
            "Known problems: "
            f"{', '.join(names())}"
        )
    return _REGISTRY[name]


def catalog(tag: str | None = None) -> list[ProblemInfo]:
    """A :class:`ProblemInfo` for every registered problem (optionally one tag), by name.

    Nothing is built: no data set is loaded and no reference solve runs.

    Args:
        tag: as in :func:`names`.

    Returns:
        A list of :class:`ProblemInfo`, sorted by name.

    Example:
        >>> from lossopt import problems
        >>> info = {i.name: i for i in problems.catalog()}["watson"]
        >>> info.summary, info.parameters
        ('Watson (MGH 20): ...', {'n': 6})
    """
    out = []
    for key in names(tag):
        entry = _REGISTRY[key]
        builder = entry.builder.__wrapped__
        doc = inspect.getdoc(builder) or ""
        out.append(ProblemInfo(key, doc.splitlines()[0] if doc else "", entry.tags,
                               _parameters(builder), doc))
    return out


def get(name: str, **kwargs: Any) -> Problem:
    """Build (once per process and arguments; then cached) the problem registered as ``name``.

    Args:
        name: a name from :func:`names`.
        **kwargs: the problem's integer parameters (``n``, ``m`` for variable-dimension
            problems; :attr:`ProblemInfo.parameters` lists them with their defaults).

    Returns:
        The :class:`Problem`; the same object for the same arguments (defaults filled in), so
        ``lossopt.minimize`` reuses one compilation for repeated solves of it.

    Raises:
        KeyError: unknown ``name`` (the known names are listed).
        TypeError: an argument the problem does not take (the accepted ones are listed).
        ValueError: an argument value outside what the problem defines.

    Example:
        >>> import lossopt
        >>> from lossopt import problems
        >>> p = problems.get("penalty_1", n=4)
        >>> print(p.source)
        More, Garbow & Hillstrom (1981), problem 23: f* = 2.24997...e-5 (n = 4); further ...
        >>> res = lossopt.minimize(p.fun, p.x0, lossopt.solvers.Newton(), args=p.args)
        >>> bool(abs(float(res.value) - p.f_star) < 1e-6 * p.f_star + 1e-9)
        True
    """
    entry = _entry(name)
    accepted = _parameters(entry.builder.__wrapped__)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(
            f"problem {name!r} got unknown argument(s) {unknown}"
            f"{did_you_mean(unknown[0], accepted)}; accepted: "
            f"{', '.join(accepted) or 'none'}"
        )
    for key, value in kwargs.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
            raise TypeError(f"`{key}` of problem {name!r} must be an int; got {value!r}")
    # Defaults filled in, so get(name) and get(name, n=<default>) are the same cached object.
    return entry.builder(**{**accepted, **{k: int(v) for k, v in kwargs.items()}})


def check_int(value: int, name: str, problem: str, ok: Callable[[int], bool],
              expected: str) -> None:
    """Raise ValueError unless ``ok(value)``, naming the argument, the problem and the rule."""
    if not ok(value):
        raise ValueError(f"`{name}` of problem {problem!r} must be {expected}; got {value!r}")
