"""The typed, frozen experiment spec: what a TOML config means once validated.

A parsed TOML document is converted to an :class:`ExperimentSpec` by ``msgspec`` (types,
ranges, required and unknown keys, each error reported with its key path); the checks that
relate several fields (a data kind's task and the model, run counts, batch sizes and device
counts, the hyperparameters a named loss or solver accepts) stay in code, in
:mod:`lossopt.experiment._config`. Every later stage -- the plan, the runner, the summary, the
figures -- reads the spec's attributes (``spec.run.max_iters``), never a dict.

Why msgspec: it validates and converts in one call with range constraints
(``Meta(ge=1, le=...)``), rejects unknown keys (``forbid_unknown_fields``), builds frozen
structs, and reports the failing key path (``$.losses[1].delta``); it is one small compiled
package (0.23 installs from PyPI as a wheel) and its import costs about 30 ms here (the least of
5 cold ``python -X importtime -c "import msgspec"`` runs). pydantic would give structured
errors too, at a larger dependency; attrs + cattrs needs two packages for the same.

Loss and solver entries (``[[losses]]``, ``[[solvers]]``) carry options whose names depend on
the loss or solver named: :class:`Entry` holds ``name`` and ``options`` (checked in code
against the named loss's or solver's parameters).
"""

from __future__ import annotations

import math
import re
import typing
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from lossopt._validation import did_you_mean

__all__ = [
    "DataSpec",
    "Entry",
    "ExperimentSpec",
    "ModelSpec",
    "OutputSpec",
    "RegularizerSpec",
    "RunSpec",
    "SchemaError",
    "convert",
]

# Upper bounds are sizes this machine could not hold or a run would never finish with; each is
# far above any experiment `lossopt run` is meant for.
MAX_SEED = 2**31 - 1  # numpy's default_rng and jax.random.key take any; sums of two stay in int64
MAX_SAMPLES = 10**7
MAX_FEATURES = 10**5
MAX_DATA_VALUES = 10**8  # n_samples x n_features of synthetic data: 800 MB of float64 per seed
MAX_ITERS = 10**7
MAX_TRACE_ROWS = 10**6  # per run: max_iters / record_every + 1 (the trace is preallocated)
MAX_SWEEP_VALUES = 1000  # values in one hyperparameter list
MAX_RUNS = 100_000  # runs in one config (datasets x loss settings x solver settings x seeds)
MAX_NAME_LENGTH = 100

_Size = Annotated[int, Meta(ge=1, le=MAX_SAMPLES)]
_NonNegative = Annotated[float, Meta(ge=0.0)]
_Fraction = Annotated[float, Meta(ge=0.0, le=1.0)]
_Seed = Annotated[int, Meta(ge=0, le=MAX_SEED)]


def _plain(value: Any) -> Any:
    """Builtins all the way down: structs as dicts, tuples as lists."""
    if isinstance(value, Struct):
        value = msgspec.to_builtins(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class _Spec(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Frozen, no unknown keys, keyword-only."""

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain Python values (tuples become lists), as it is written out."""
        return _plain(self)


class DataSpec(_Spec, kw_only=True):
    """One ``[data]`` / ``[[data]]`` table: a synthetic generator, a file, scikit-learn data,
    or a test problem (``kind = "problem:<name>"``, ``kwargs`` its arguments)."""

    kind: str
    name: str = ""
    n_samples: _Size = 200
    n_features: Annotated[int, Meta(ge=1, le=MAX_FEATURES)] = 5
    noise: Annotated[float, Meta(ge=0.0, le=1e6)] = 0.5
    outlier_fraction: Annotated[float, Meta(ge=0.0, le=0.5)] = 0.0
    validation_fraction: Annotated[float, Meta(ge=0.0, le=0.9)] = 0.2
    n_classes: Annotated[int, Meta(ge=2, le=10_000)] = 3
    positive_fraction: Annotated[float, Meta(gt=0.0, lt=1.0)] = 0.5
    path: str = ""
    target: str = "y"
    features: tuple[str, ...] = ()
    x_key: str = "X"
    y_key: str = "y"
    task: str = ""
    standardize: bool | None = None
    max_samples: Annotated[int, Meta(ge=0, le=MAX_SAMPLES)] = 0
    kwargs: dict[str, int] = msgspec.field(default_factory=dict)

    @property
    def problem(self) -> str | None:
        """The ``lossopt.problems`` name of a ``problem:<name>`` data kind, else None."""
        return self.kind.split(":", 1)[1] if self.kind.startswith("problem:") else None


class ModelSpec(_Spec, kw_only=True):
    kind: Literal["linear", "logistic", "softmax", "mlp"] = "linear"
    hidden: tuple[Annotated[int, Meta(ge=1, le=MAX_FEATURES)], ...] = (64, 32)
    activation: str = "relu"
    dropout: Annotated[float, Meta(ge=0.0, lt=1.0)] = 0.0


class RegularizerSpec(_Spec, kw_only=True):
    kind: Literal["l1", "l2", "elastic_net"]
    strength: _NonNegative = 0.0
    alpha: _NonNegative = 0.0
    l1_ratio: _Fraction = 0.5


class RunSpec(_Spec, kw_only=True):
    max_iters: Annotated[int, Meta(ge=1, le=MAX_ITERS)] = 200
    gtol: _NonNegative = 1e-8
    ftol: _NonNegative = 0.0
    xtol: _NonNegative = 0.0
    seeds: Annotated[tuple[_Seed, ...], Meta(min_length=1)] = (0,)
    record_every: Annotated[int, Meta(ge=1, le=MAX_ITERS)] = 1
    newton_memory_mb: Annotated[float, Meta(gt=0.0, le=1e7)] = 256.0
    dtype: Literal["float32", "float64"] = "float64"
    # None: left open (full batch; no epoch cap; the default device), omitted from the written
    # config.toml. Lower bounds with their own messages: _config._check_training_run.
    batch_size: Annotated[int, Meta(le=MAX_SAMPLES)] | None = None
    max_epochs: Annotated[int, Meta(le=MAX_ITERS)] | None = None
    devices: str | int | None = None
    # How XLA compiles each group's call: lossopt.minimize's `compile` policy.
    compile: Literal["auto", "fast", "optimized"] = "auto"


class OutputSpec(_Spec, kw_only=True):
    dir: str = ""
    plots: bool = True


class Entry(Struct, frozen=True):
    """A ``[[losses]]`` or ``[[solvers]]`` entry: the loss's or solver's ``name`` and its
    ``options`` (a scalar each, or a list of values to sweep)."""

    name: str
    options: dict[str, Any] = msgspec.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The entry as its TOML table: ``{"name": ..., **options}``."""
        return {"name": self.name, **self.options}

    @property
    def label(self) -> str:
        """``name k=v ...``, e.g. ``huber delta=1.0``."""
        return self.name + "".join(f" {k}={v}" for k, v in self.options.items())


class ExperimentSpec(_Spec, kw_only=True):
    """A validated, fully resolved experiment config (defaults filled in)."""

    name: str = "experiment"
    seed: _Seed = 0
    data: tuple[DataSpec, ...]
    model: ModelSpec = ModelSpec()
    regularizer: RegularizerSpec | None = None
    losses: tuple[Entry, ...]
    solvers: tuple[Entry, ...]
    run: RunSpec = RunSpec()
    output: OutputSpec = OutputSpec()

    def to_dict(self) -> dict[str, Any]:
        """Plain values, entries as flat tables (the layout of the TOML config)."""
        out = _plain(self)
        out["losses"] = [e.to_dict() for e in self.losses]
        out["solvers"] = [e.to_dict() for e in self.solvers]
        return out

    def replace(self, **changes: Any) -> ExperimentSpec:
        """A copy with top-level fields replaced (not validated again)."""
        return msgspec.structs.replace(self, **changes)


# The top level as the schema converts it (entries are checked in code, see module doc).
class _Document(_Spec, kw_only=True):
    name: str = "experiment"
    seed: _Seed = 0
    data: tuple[DataSpec, ...]
    model: ModelSpec = ModelSpec()
    regularizer: RegularizerSpec | None = None
    losses: tuple[dict[str, Any], ...]
    solvers: tuple[dict[str, Any], ...]
    run: RunSpec = RunSpec()
    output: OutputSpec = OutputSpec()
    problems: dict[str, Any] = msgspec.field(default_factory=dict)  # checked in _config


class SchemaError(ValueError):
    """A value the schema rejects; the message names the key path, expected and received."""


def fields(cls: type) -> tuple[str, ...]:
    """Field names of a spec struct (the keys its TOML table accepts)."""
    return tuple(f.name for f in msgspec.structs.fields(cls))


_TABLES: dict[str, type] = {"": _Document, "data": DataSpec, "model": ModelSpec,
                            "regularizer": RegularizerSpec, "run": RunSpec,
                            "output": OutputSpec}
_TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true/false",
               "array": "a list", "object": "a table", "null": None}
_WORD_ORDER = ("a string", "an integer", "a number", "true/false", "a list", "a table")


def _non_finite(value: Any, path: str) -> str | None:
    """The key path of the first non-finite float in a parsed document, else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    if isinstance(value, dict):
        for k, v in value.items():
            if (found := _non_finite(v, f"{path}.{k}" if path else str(k))) is not None:
                return found
    if isinstance(value, list):
        for i, v in enumerate(value):
            if (found := _non_finite(v, f"{path}[{i}]")) is not None:
                return found
    return None


def _lookup(raw: Any, parts: list[str | int]) -> Any:
    node = raw
    for p in parts:
        try:
            node = node[p]
        except (KeyError, IndexError, TypeError):
            return None
    return node


_DICT_KEY = "[...]"  # msgspec's path element for a value of a dict: the key is not named


def _parse_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for key, index in re.findall(r"\.([^.\[\]]+)|\[(\d+|\.\.\.)\]", path):
        parts.append(key if key else _DICT_KEY if index == "..." else int(index))
    return parts


def _table_class(parts: list[str | int]) -> type | None:
    names = [p for p in parts if isinstance(p, str)]
    return _TABLES.get(names[-1] if names else "")


def _literal_choices(cls: type | None, field: str) -> tuple[str, ...]:
    if cls is None:
        return ()
    hint = typing.get_type_hints(cls).get(field)
    for arg in (hint, *typing.get_args(hint)):
        if typing.get_origin(arg) is Literal:
            return typing.get_args(arg)
    return ()


def _words(types: str) -> str:
    words = {_TYPE_WORDS.get(t.strip(), t.strip()) for t in types.split("|")} - {None}
    return " or ".join(sorted(words, key=lambda w: (*_WORD_ORDER, w).index(w)))


def _message(err: msgspec.ValidationError, raw: dict[str, Any], single_data: bool,
             prefix: str = "") -> str:
    text = str(err)
    message, _, where = text.partition(" - at `")
    parts = _parse_path(where.rstrip("`")[1:]) if where else []
    if prefix:
        parts = [prefix, *parts]
    if single_data and parts[:2] == ["data", 0]:
        parts = ["data", *parts[2:]]
    if _DICT_KEY in parts:  # name the dict's first value of the type msgspec rejected
        at = parts.index(_DICT_KEY)
        table = _lookup(raw, parts[:at])
        got_type = m[1] if (m := re.search(r", got `(\w+)`", message)) else None
        names = {str: "str", int: "int", float: "float", bool: "bool", list: "array",
                 dict: "object", type(None): "null"}
        bad = [k for k, v in (table.items() if isinstance(table, dict) else ())
               if names.get(type(v)) == got_type]
        parts = [*parts[:at], bad[0] if bad else "<key>", *parts[at + 1:]]
    key = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p)
                  for i, p in enumerate(parts))
    got = _lookup(raw, parts)
    if m := re.fullmatch(r"Object contains unknown field `(.+)`", message):
        cls = _table_class(parts)
        known = ", ".join(sorted(fields(cls))) if cls is not None else ""
        full = f"{key}.{m[1]}" if key else m[1]
        place = f"`{key}`" if key else "the top level"
        hint = did_you_mean(m[1], fields(cls)) if cls is not None else ""
        return f"unknown key `{full}` in {place}{hint}; known keys: {known}"
    if m := re.fullmatch(r"Object missing required field `(.+)`", message):
        return f"`{key}.{m[1]}` is required" if key else f"`{m[1]}` is required"
    if m := re.fullmatch(r"Expected `(.+)`, got `(.+)`", message):
        return f"`{key}` must be {_words(m[1])}; got {got!r}"
    if m := re.fullmatch(r"Expected `(\w+)` (>=|<=|>|<) (\S+)", message):
        bound = m[3]
        if m[1] == "float" and bound.endswith(".0"):
            bound = bound[:-2]
        return f"`{key}` must be {m[2]} {bound}; got {got!r}"
    if re.fullmatch(r"Expected `array` of length >= 1", message):
        return f"`{key}` must be a non-empty list; got {got!r}"
    if message.startswith("Invalid enum value"):
        choices = _literal_choices(_table_class(parts[:-1]), str(parts[-1]))
        hint = did_you_mean(got, choices)
        return f"`{key}` must be one of {', '.join(choices)}; got {got!r}{hint}"
    return f"`{key or 'config'}`: {message}; got {got!r}"


def convert_table(raw: dict[str, Any], cls: type, key: str) -> Any:
    """Convert one table (``raw``, reported as ``key``) to the spec struct ``cls``.

    Raises:
        SchemaError: as :func:`convert`.
    """
    try:
        return msgspec.convert(raw, cls)
    except msgspec.ValidationError as err:
        raise SchemaError(_message(err, {key: raw}, False, prefix=key)) from None


def convert(raw: dict[str, Any]) -> _Document:
    """Convert a parsed TOML document (``data`` a table or a list of tables) by the schema.

    Raises:
        SchemaError: naming the key path (``data[1].n_samples``, ``run.max_iters``), what was
            expected and the value received.
    """
    if (where := _non_finite(raw, "")) is not None:
        got = _lookup(raw, _parse_path("." + where))
        raise SchemaError(f"`{where}` must be finite; got {got!r}")
    doc = dict(raw)
    single = isinstance(doc.get("data"), dict)
    if single:
        doc["data"] = [doc["data"]]
    try:
        return msgspec.convert(doc, _Document)
    except msgspec.ValidationError as err:
        raise SchemaError(_message(err, raw, single)) from None
