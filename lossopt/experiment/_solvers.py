"""The one table of solvers a config can name: used by the config checks, the runner and the CLI.

``gradient_descent``, ``newton``, ``lbfgs``, ``subgradient`` and ``proximal_gradient`` are
lossopt solver classes; ``optax:<name>`` is any optax optimizer constructor (``optax:adam``),
wrapped in :class:`lossopt.solvers.Optax`. Solver modules are imported on first use, so reading
a config does not import the solvers.

``proximal_gradient`` takes its penalty from the config's ``[regularizer]``: an ``l1`` or
``elastic_net`` regularizer is applied through its proximal operator (the solver's ``prox=``,
:func:`prox_penalty`) and left out of the smooth objective; an ``l2`` one stays in the smooth
objective. Every other solver minimises the penalised objective as a whole (its gradient, or
subgradient, includes the penalty's).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["NAMES", "OPTAX_PREFIX", "make_solver", "prox_penalty", "solver_class",
           "solver_parameters", "traced_fields"]

OPTAX_PREFIX = "optax:"
# Config name -> attribute of lossopt.solvers (the class).
_CLASSES = {
    "gradient_descent": "GradientDescent",
    "newton": "Newton",
    "lbfgs": "LBFGS",
    "subgradient": "Subgradient",
    "proximal_gradient": "ProximalGradient",
}
# Options the table sets itself, not the config: proximal_gradient's penalty ([regularizer]).
_NOT_OPTIONS = {"proximal_gradient": ("prox",)}
NAMES = (*_CLASSES, f"{OPTAX_PREFIX}<name>")


def solver_class(name: str) -> type:
    """The lossopt solver class of a config solver name.

    Raises:
        KeyError: not a lossopt solver name (``optax:<name>`` entries are not classes).
    """
    from lossopt import solvers

    return getattr(solvers, _CLASSES[name])


def _optax_constructor(name: str) -> Callable[..., Any]:
    """The optax constructor of ``optax:<name>``: the one place optax is looked up.

    Raises:
        KeyError: optax has no callable of that name.
    """
    import optax

    factory = getattr(optax, name[len(OPTAX_PREFIX):], None)
    if factory is None or not callable(factory) or isinstance(factory, type):
        raise KeyError(name)
    return factory


def constructor(name: str) -> Callable[..., Any]:
    """``options -> solver`` for a config solver name (a class, or optax wrapped in Optax).

    Raises:
        KeyError: an unknown name.
    """
    if name.startswith(OPTAX_PREFIX):
        from lossopt.solvers import Optax

        factory = _optax_constructor(name)
        return lambda **options: Optax(factory(**options))
    return solver_class(name)


def make_solver(name: str, options: dict[str, Any]):
    """Build the solver named in a config from concrete or traced option values."""
    return constructor(name)(**options)


def solver_parameters(name: str) -> dict[str, Any]:
    """Accepted options of a solver config entry (without ``name``) and their defaults.

    Raises:
        KeyError: an unknown name.
    """
    target = _optax_constructor(name) if name.startswith(OPTAX_PREFIX) else solver_class(name)
    return {p.name: p.default for p in inspect.signature(target).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name not in _NOT_OPTIONS.get(name, ())}


def prox_penalty(name: str, regularizer: Any):
    """The :mod:`lossopt.prox` penalty a solver applies through its proximal operator, or None.

    ``proximal_gradient`` with an ``l1`` (``strength``) or ``elastic_net`` (``alpha``,
    ``l1_ratio``; the scaling of :func:`lossopt.regularizers.elastic_net`) regularizer: that
    penalty, over every parameter leaf as the regularizer is. Otherwise None (the
    regularizer, if any, is part of the objective).
    """
    if name != "proximal_gradient" or regularizer is None:
        return None
    from lossopt import prox

    if regularizer.kind == "l1":
        return prox.l1(regularizer.strength)
    if regularizer.kind == "elastic_net":
        return prox.elastic_net(regularizer.alpha, regularizer.l1_ratio)
    return None


def traced_fields(name: str) -> set[str]:
    """Solver options that may vary across the lanes of one compiled call."""
    if name.startswith(OPTAX_PREFIX):
        return {"learning_rate"}
    return {f.name for f in dataclasses.fields(solver_class(name))
            if not f.metadata.get("static", False)}
