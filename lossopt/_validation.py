"""Eager (trace-time) input validation shared by losses, regularizers and solvers.

Every check raises an error that names the argument, says what was expected and what was
received. Checks on *values* of hyperparameters run only when the value is concrete (a Python
number or a concrete array); a traced hyperparameter (under ``jax.vmap`` over a sweep, or a
learned parameter such as Barron's ``alpha``) is passed through unchecked, because its value is
not known at trace time.
"""

from __future__ import annotations

import contextvars
import difflib
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "as_float_array",
    "as_integer_labels",
    "check_array_values",
    "check_bool",
    "check_choice",
    "check_in_interval",
    "check_nonnegative",
    "check_positive",
    "check_probabilities",
    "check_same_shape",
    "concrete_value",
    "describe",
    "did_you_mean",
    "float_leaves",
    "when_concrete",
]


def describe(x: Any) -> str:
    """A short description of ``x`` for error messages: type, shape and dtype."""
    if isinstance(x, (jax.Array, np.ndarray)) or (hasattr(x, "shape") and hasattr(x, "dtype")):
        return f"array of shape {tuple(x.shape)} and dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"


def _is_numeric_dtype(dtype: Any) -> bool:
    return jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_)


def as_float_array(x: Any, name: str, *, like: jax.Array | None = None) -> jax.Array:
    """Convert ``x`` to a floating JAX array.

    Integer and boolean inputs are promoted to ``like``'s dtype when given (targets follow the
    predictions' precision) or to JAX's default float dtype otherwise.

    Raises:
        TypeError: if ``x`` is not numeric (strings, objects, complex numbers).
    """
    try:
        arr = jnp.asarray(x)
    except TypeError as err:
        raise TypeError(f"`{name}` must be a numeric array; got {describe(x)}") from err
    if not _is_numeric_dtype(arr.dtype) or jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(f"`{name}` must be a real numeric array; got {describe(x)}")
    if like is not None:
        target = like.dtype
    elif jnp.issubdtype(arr.dtype, jnp.floating):
        return arr
    else:
        target = jnp.result_type(float)
    return arr.astype(target)


def as_integer_labels(x: Any, name: str) -> jax.Array:
    """Return ``x`` as an integer JAX array of class ids.

    Raises:
        TypeError: if ``x`` has a floating (or other non-integer) dtype. Class ids must be
            integers; pass one-hot or soft labels through the arguments that accept them.
    """
    arr = jnp.asarray(x)
    if not jnp.issubdtype(arr.dtype, jnp.integer):
        raise TypeError(
            f"`{name}` must hold integer class ids; got {describe(x)}. "
            "Cast with .astype(int), or pass one-hot/probability labels where supported."
        )
    return arr


def check_same_shape(a: jax.Array, b: jax.Array, name_a: str, name_b: str) -> None:
    """Raise ValueError unless ``a`` and ``b`` have the same shape (no silent broadcasting)."""
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"`{name_a}` and `{name_b}` must have the same shape; got {name_a}.shape="
            f"{tuple(a.shape)} and {name_b}.shape={tuple(b.shape)}. lossopt never broadcasts "
            "predictions against targets: reshape one of them explicitly."
        )


def concrete_value(x: Any) -> np.ndarray | None:
    """Return ``x`` as a numpy array if it is concrete, or None if it is a tracer."""
    if isinstance(x, jax.core.Tracer):
        return None
    try:
        return np.asarray(x)
    except Exception:
        return None


# Set by lossopt.losses' compiled eager calls (lossopt/losses/_eager.py) while they trace a
# loss: a list that value checks of traced arrays are appended to, to run on the call's
# concrete values once the compiled program has computed them.
PENDING_CHECKS: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "lossopt_pending_checks", default=None)


def when_concrete(check: Callable[..., None], *xs: Any) -> None:
    """Run ``check(*values)`` on the numpy values of ``xs``: the one way value checks run.

    Concrete ``xs`` are checked now. Traced ones are checked later with their values when a
    loss called on concrete arrays (or under an eager ``grad``/``vmap``) is being compiled:
    the loss's program returns them and the check runs on the host after the call (the same
    error, the same message) on those that came back concrete; never on values a user's
    ``jit``/``vmap``/``grad`` traces, which are not known.
    """
    values = [concrete_value(x) for x in xs]
    if all(v is not None for v in values):
        check(*values)
        return
    pending = PENDING_CHECKS.get()
    if pending is not None:
        pending.append((check, xs))


def _check_values(x: Any, name: str, ok, expected: str) -> None:
    when_concrete(lambda value: _check_values_now(value, x, name, ok, expected), x)


def _check_values_now(value: np.ndarray, x: Any, name: str, ok, expected: str) -> None:
    if value.dtype.kind not in "biuf":
        raise TypeError(f"`{name}` must be a real number; got {describe(x)}")
    if not np.all(ok(value.astype(np.float64))):
        shown = value.item() if value.size == 1 else value
        raise ValueError(f"`{name}` must be {expected}; got {shown!r}")


def check_positive(x: Any, name: str) -> None:
    """Raise ValueError unless every (concrete) value of ``x`` is finite and > 0."""
    _check_values(x, name, lambda v: np.isfinite(v) & (v > 0), "a finite number > 0")


def check_nonnegative(x: Any, name: str) -> None:
    """Raise ValueError unless every (concrete) value of ``x`` is finite and >= 0."""
    _check_values(x, name, lambda v: np.isfinite(v) & (v >= 0), "a finite number >= 0")


def check_in_interval(
    x: Any,
    name: str,
    low: float,
    high: float,
    *,
    closed_low: bool = False,
    closed_high: bool = False,
) -> None:
    """Raise ValueError unless every (concrete) value of ``x`` lies in the given interval."""
    lo_ok = np.greater_equal if closed_low else np.greater
    hi_ok = np.less_equal if closed_high else np.less
    interval = f"{'[' if closed_low else '('}{low}, {high}{']' if closed_high else ')'}"
    _check_values(x, name, lambda v: lo_ok(v, low) & hi_ok(v, high), f"in {interval}")


def float_leaves(params: Any, name: str = "params") -> list[jax.Array]:
    """The leaves of a parameter pytree as arrays; TypeError unless each is real floating.

    The one check of penalties over parameter trees (:mod:`lossopt.regularizers`,
    :mod:`lossopt.prox`): an integer or complex leaf would silently round or lose its
    imaginary part in the penalty's gradient.
    """
    leaves = [jnp.asarray(x) for x in jax.tree.leaves(params)]
    for leaf in leaves:
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(
                f"`{name}` leaves must be real floating arrays; got a leaf that is "
                f"{describe(leaf)}"
            )
    return leaves


def did_you_mean(value: Any, choices: Iterable[Any]) -> str:
    """`` (did you mean 'huber'?)`` for the known names closest to a misspelt ``value``, or "".

    The one place unknown-name errors (losses, solvers, problems, config keys, data kinds) get
    their suggestion from, appended after the list of valid names. Closeness is difflib's
    ratio (at least 0.6, at most three suggestions, best first); a non-string value or no close
    name gives "".

    Example:
        >>> did_you_mean("hubber", ["mse", "huber", "hinge"])
        " (did you mean 'huber'?)"
        >>> did_you_mean("xyz", ["mse", "huber"])
        ''
    """
    if not isinstance(value, str):
        return ""
    names = [c for c in choices if isinstance(c, str)]
    exact_case = [c for c in names if c.lower() == value.lower()]
    close = exact_case or difflib.get_close_matches(value, names, n=3, cutoff=0.6)
    if not close:
        # A wrong case ("MSE", "Newton") is the commonest slip; difflib's ratio is case-blind
        # only if we make it so.
        lowered = {c.lower(): c for c in names}
        close = [lowered[c] for c in difflib.get_close_matches(value.lower(), list(lowered),
                                                                n=3, cutoff=0.6)]
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


def check_choice(value: Any, name: str, choices: Sequence[Any]) -> None:
    """Raise ValueError unless ``value`` is one of ``choices`` (suggesting the closest)."""
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {list(choices)!r}; got {value!r}"
            f"{did_you_mean(value, choices)}"
        )


def check_finite_scalar(value: Any, name: str) -> float:
    """Return ``value`` as a Python float, raising unless it is a finite real number."""
    try:
        out = float(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"`{name}` must be a real number; got {describe(value)}") from err
    if not math.isfinite(out):
        raise ValueError(f"`{name}` must be finite; got {out!r}")
    return out


def check_bool(value: Any, name: str) -> None:
    """Raise TypeError unless ``value`` is a Python (or numpy) bool.

    Boolean options choose a code path at trace time, so a truthy stand-in (``"no"``, ``1``,
    an array) would be silently read as True or False: only ``True``/``False`` are accepted.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a bool (True or False); got {describe(value)}")


def _format_index(index: tuple[int, ...]) -> str:
    return ", ".join(str(int(i)) for i in index)


def check_array_values(x: Any, name: str, ok, expected: str) -> None:
    """Raise ValueError if a concrete array ``x`` holds an entry for which ``ok`` is False.

    ``ok`` maps the float64 numpy value of ``x`` to a boolean array of its shape (NaN entries
    must map to False to be rejected). The message names the argument, what was expected, the
    first offending entry (``name[i, j] = value``, row-major order) and how many there are.
    Tracers (under ``jit``/``vmap``/``grad`` of that argument) are not checked: their values are
    not known at trace time.
    """
    when_concrete(lambda value: _check_array_values_now(value, name, ok, expected), x)


def _check_array_values_now(value: np.ndarray, name: str, ok, expected: str) -> None:
    if value.size == 0:
        return
    v = value.astype(np.float64) if value.dtype.kind in "biuf" else value
    good = np.asarray(ok(v), dtype=bool)
    if good.all():
        return
    bad = np.argwhere(~np.broadcast_to(good, v.shape))
    first = tuple(bad[0])
    shown = value[first].item() if value.ndim else value.item()  # in its own dtype: 5, 1.5, nan
    where = f"{name}[{_format_index(first)}]" if value.ndim else name
    count = f" ({len(bad)} of {v.size} entries)" if value.ndim else ""
    raise ValueError(f"`{name}` must hold {expected}; got {where} = {shown!r}{count}")


def probability_sum_tolerance(dtype: Any) -> float:
    """Tolerance on ``|sum(p) - 1|`` for probabilities of ``dtype``: ``sqrt(eps)``.

    About 3.5e-4 in float32 and 1.5e-8 in float64: far above the rounding error of a
    normalised vector (a softmax, ``p / p.sum()``: about ``sqrt(K) eps`` for ``K`` classes), far
    below the error of passing unnormalised scores or sigmoid outputs.
    """
    return float(np.sqrt(np.finfo(np.dtype(dtype)).eps))


def check_probabilities(x: Any, name: str, *, sum_axis: int | None = None) -> None:
    """Raise ValueError unless concrete ``x`` holds probabilities in ``[0, 1]`` (NaN rejected).

    With ``sum_axis``, each distribution along that axis must also sum to 1 within
    :func:`probability_sum_tolerance` of ``x``'s dtype. No tolerance on the range itself: 0
    and 1 are exact, and every loss here is finite on the closed interval. Tracers are not
    checked.
    """
    when_concrete(lambda value: _check_probabilities_now(value, name, sum_axis), x)


def _check_probabilities_now(value: np.ndarray, name: str, sum_axis: int | None) -> None:
    check_array_values(value, name, lambda v: (v >= 0) & (v <= 1), "probabilities in [0, 1]")
    if sum_axis is None or value.size == 0:
        return
    dtype = value.dtype if value.dtype.kind == "f" else np.float64
    tol = probability_sum_tolerance(dtype)
    sums = np.sum(value.astype(np.float64), axis=sum_axis)
    bad = np.argwhere(~(np.abs(sums - 1) <= tol))
    if len(bad):
        first = tuple(bad[0])
        raise ValueError(
            f"`{name}` must hold distributions that sum to 1 over axis {sum_axis} (within "
            f"{tol:.1e} for {np.dtype(dtype).name}); got a sum of {float(sums[first])!r} at "
            f"index ({_format_index(first)}{',' if len(first) == 1 else ''}) of the other axes "
            f"({len(bad)} of {sums.size} distributions). Normalise it (softmax, or p / p.sum())."
        )
