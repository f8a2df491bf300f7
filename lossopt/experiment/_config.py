"""Experiment configs: TOML in, a validated, frozen :class:`ExperimentSpec` out.

Every error is a :class:`ConfigError` whose message names the key (``solvers[1].learning_rate``),
the expected and the received value. Types, ranges and keys are the schema's
(:mod:`lossopt.experiment._schema`); the checks between fields are here. The resolved config
(defaults filled in) is written next to the results as ``config.toml`` so a run can be
reproduced.
"""

from __future__ import annotations

import copy
import math
import re
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from lossopt._validation import did_you_mean
from lossopt.experiment._data import FILES as FILE_KINDS
from lossopt.experiment._data import KINDS as DATA_KINDS
from lossopt.experiment._data import SYNTHETIC as SYNTHETIC_KINDS
from lossopt.experiment._data import TASKS as DATA_TASKS
from lossopt.experiment._data import split_sizes
from lossopt.experiment._schema import (
    MAX_DATA_VALUES,
    MAX_NAME_LENGTH,
    MAX_RUNS,
    MAX_SWEEP_VALUES,
    MAX_TRACE_ROWS,
    DataSpec,
    Entry,
    ExperimentSpec,
    RunSpec,
    SchemaError,
    convert,
)
from lossopt.experiment._solvers import NAMES as SOLVER_NAMES
from lossopt.experiment._solvers import solver_parameters

__all__ = [
    "DEFAULT_CONFIG_TOML",
    "ConfigError",
    "apply_overrides",
    "check_training_size",
    "dump_toml",
    "load_config",
    "resolve_config",
]


class ConfigError(ValueError):
    """An invalid experiment config; the message names the offending key."""


DEFAULT_CONFIG_TOML = """\
# lossopt quickstart: the seed document's experiment.
# Linear regression, X of shape (100, 5), true_w = [1.5, -2, 0.5, 3, -1], noise 0.5;
# MSE vs MAE vs Huber, minimised by gradient descent (two learning rates), Newton and
# subgradient descent, three seeds each.
name = "quickstart"
seed = 0

[data]
kind = "linear_regression"
n_samples = 100
n_features = 5
noise = 0.5
outlier_fraction = 0.0
validation_fraction = 0.2

[model]
kind = "linear"

[[losses]]
name = "mse"

[[losses]]
name = "mae"

[[losses]]
name = "huber"
delta = 1.0

[[solvers]]
name = "gradient_descent"
learning_rate = [0.01, 0.1]

[[solvers]]
name = "newton"

[[solvers]]
name = "subgradient"
step_size = 0.5
schedule = "inverse_sqrt"

[run]
max_iters = 200
gtol = 1e-8
seeds = [0, 1, 2]

[output]
dir = "results/quickstart"
"""

TABLES = ("model", "regularizer", "run", "output")
ARRAYS = ("data", "losses", "solvers")
PROBLEM_PREFIX = "problem:"


def _check_entry(key: str, what: str, entry: dict[str, Any], accepted) -> Entry:
    """The one check of a ``[[losses]]`` / ``[[solvers]]`` entry's hyperparameters.

    Each is a scalar (number, string or bool; numbers finite) or a sweep: a non-empty list of
    at most ``MAX_SWEEP_VALUES`` distinct scalars. Their ranges (``delta > 0``, ``b1`` a
    number) are the loss's and solver's own checks, which :func:`lossopt.experiment.plan` and
    the tracing of every group make before ``lossopt run`` writes anything.
    """
    name = entry["name"]
    for hyper, value in entry.items():
        if hyper == "name":
            continue
        full = f"{key}.{hyper}"
        if hyper not in accepted:
            raise ConfigError(
                f"unknown key `{full}` for {what} {name!r}{did_you_mean(hyper, accepted)}; "
                f"accepted: {', '.join(accepted) or 'none'}"
            )
        values = value if isinstance(value, list) else [value]
        if not values:
            raise ConfigError(f"`{full}` is an empty list: give at least one value to sweep")
        if len(values) > MAX_SWEEP_VALUES:
            raise ConfigError(
                f"`{full}` sweeps {len(values)} values; at most {MAX_SWEEP_VALUES} are allowed"
            )
        for v in values:
            if not isinstance(v, (int, float, str, bool)):
                raise ConfigError(f"`{full}` must be a number, string or bool; got {v!r}")
        keys = [(type(v), v) for v in values]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"`{full}` lists a value twice: {value!r}")
    return Entry(name, {k: v for k, v in entry.items() if k != "name"})


def _check_named(key: str, entry: Any) -> str:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ConfigError(f"`{key}` must be a table with a string `name`; got {entry!r}")
    return entry["name"]


def _check_loss(i: int, entry: Any) -> Entry:
    from lossopt import losses

    key = f"losses[{i}]"
    name = _check_named(key, entry)
    if name not in losses.names():
        raise ConfigError(
            f"`{key}.name`: unknown loss {name!r}{did_you_mean(name, losses.names())}; known "
            f"losses: {', '.join(losses.names())}"
        )
    return _check_entry(key, "loss", entry, losses.info(name).hyperparameters)


def _check_solver(i: int, entry: Any) -> Entry:
    key = f"solvers[{i}]"
    name = _check_named(key, entry)
    try:
        accepted = solver_parameters(name)
    except KeyError:
        raise ConfigError(
            f"`{key}.name`: unknown solver {name!r}{did_you_mean(name, SOLVER_NAMES)}; known: "
            f"{', '.join(SOLVER_NAMES)} "
            "(<name> any optax optimizer, e.g. optax:adam, optax:lbfgs)"
        ) from None
    return _check_entry(key, "solver", entry, accepted)


def _problem_tables(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """``[problems]`` (name -> its keyword arguments) as ``problem:<name>`` data tables."""
    problems = raw.get("problems", {})
    if not isinstance(problems, dict):
        raise ConfigError(
            f"`problems` must be a table of problem names, e.g. rosenbrock = {{}}; got "
            f"{problems!r}"
        )
    for name, kwargs in problems.items():
        if not isinstance(kwargs, dict):
            raise ConfigError(
                f"`problems.{name}` must be a table of the problem's arguments (e.g. {{ n = 4 }}, "
                f"or {{}}); got {kwargs!r}"
            )
        for key, value in kwargs.items():
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"`problems.{name}.{key}` must be an integer; got {value!r}")
    return [{"kind": f"{PROBLEM_PREFIX}{name}", "name": name,
             "kwargs": kwargs} for name, kwargs in problems.items()]


def resolve_config(raw: dict[str, Any]) -> ExperimentSpec:
    """Validate ``raw`` (a parsed TOML document) and fill in every default.

    The schema (:mod:`lossopt.experiment._schema`) checks types, ranges and keys; the checks
    between fields follow here.

    Returns:
        The :class:`~lossopt.experiment.ExperimentSpec`, frozen.

    Raises:
        ConfigError: naming the key, the expected and the received value.
    """
    raw = copy.deepcopy(raw)
    if raw.get("data") is None and not _problem_tables(raw):
        raise ConfigError(
            "`data` is required: a [data] table (or [[data]] tables) with `kind`, or a "
            "[problems] table"
        )
    if raw.get("data") is None:
        raw["data"] = []
    data = raw["data"]
    if isinstance(data, list) and not data and not raw.get("problems"):
        raise ConfigError("`data` must hold at least one table")
    problems_only = all(
        isinstance(t, dict) and str(t.get("kind", "")).startswith(PROBLEM_PREFIX)
        for t in (data if isinstance(data, list) else [data]))
    for array in ("losses", "solvers"):
        entries = raw.get(array)
        if array == "losses" and entries is None and problems_only:
            raw["losses"] = []
            continue
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"`{array}` must be a non-empty array of tables ([[{array}]])")
    for array, check in (("losses", _check_loss), ("solvers", _check_solver)):
        for i, e in enumerate(raw[array]):
            check(i, e)  # names and options first: the schema sees only tables
    try:
        doc = convert(raw)
    except SchemaError as err:
        raise ConfigError(str(err)) from None
    tables = list(doc.data) + [msgspec.convert(t, DataSpec) for t in _problem_tables(raw)]
    several = len(tables) > 1
    resolved = []
    for i, entry in enumerate(tables):
        key = f"data[{i}]" if several else "data"
        resolved.append(_check_data(key, entry, doc.model.kind))
    names = [d.name for d in resolved]
    if len(set(names)) != len(names):
        raise ConfigError(f"`data` names must be unique (set data[i].name); got {names}")
    spec = ExperimentSpec(
        name=doc.name, seed=doc.seed, data=tuple(resolved), model=doc.model,
        regularizer=doc.regularizer,
        losses=tuple(_check_loss(i, e) for i, e in enumerate(doc.losses)),
        solvers=tuple(_check_solver(i, e) for i, e in enumerate(doc.solvers)),
        run=doc.run,
        output=doc.output if doc.output.dir else msgspec.structs.replace(
            doc.output, dir=f"results/{doc.name}"),
    )
    _check_semantics(spec)
    return spec


def _check_choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"`{key}` must be one of {', '.join(choices)}; got {value!r}"
                          f"{did_you_mean(value, choices)}")


_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# A file dataset's task when `data.task` is left out: what the model's output implies.
_MODEL_TASK = {"logistic": "binary", "softmax": "multiclass"}


def _check_name(key: str, name: str) -> None:
    """``name`` becomes a folder (``results/<name>``): one safe path component."""
    if len(name) > MAX_NAME_LENGTH or not _SAFE_NAME.fullmatch(name):
        raise ConfigError(
            f"`{key}` must be a single folder name of at most {MAX_NAME_LENGTH} letters, digits, "
            f"'_', '-' and '.' (not starting with '.', no '/'); got {name[:MAX_NAME_LENGTH]!r}"
        )


def _check_distinct(key: str, values: tuple) -> None:
    """Seeds, columns: a value listed twice would be the same run twice."""
    if len(set(values)) != len(values):
        raise ConfigError(f"`{key}` lists a value twice: {list(values)!r}")


def _check_problem(key: str, data: DataSpec) -> None:
    from lossopt import problems

    name = data.problem
    if name not in problems.names():
        raise ConfigError(
            f"`{key}.kind`: unknown problem {name!r}{did_you_mean(name, problems.names())}; "
            "known problems: "
            f"{', '.join(problems.names())}"
        )
    accepted = {i.name: i for i in problems.catalog()}[name].parameters
    unknown = sorted(set(data.kwargs) - set(accepted))
    if unknown:
        raise ConfigError(
            f"unknown key `{key}.kwargs.{unknown[0]}` for problem {name!r}"
            f"{did_you_mean(unknown[0], accepted)}; accepted: "
            f"{', '.join(accepted) or 'none'}"
        )
    try:
        problems.get(name, **data.kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"`{key}.kwargs` (problem {name!r}): {err}") from None


def _check_data(key: str, data: DataSpec, model_kind: str) -> DataSpec:
    """Cross-field checks of one dataset; returns it with its name and task resolved."""
    changes: dict[str, Any] = {}
    if not data.name:
        changes["name"] = data.kind.replace("sklearn:", "").replace(PROBLEM_PREFIX, "")
    if data.problem is not None:
        _check_problem(key, data)
        return msgspec.structs.replace(data, **changes)
    if data.kwargs:
        raise ConfigError(f"`{key}.kwargs` is for problem data (kind = \"problem:<name>\") only")
    _check_choice(f"{key}.kind", data.kind, (*DATA_KINDS, "problem:<name>"))
    if data.task:
        _check_choice(f"{key}.task", data.task, DATA_TASKS)
    elif data.kind in FILE_KINDS:
        changes["task"] = _MODEL_TASK.get(model_kind, "")
    _check_distinct(f"{key}.features", data.features)
    if data.kind in SYNTHETIC_KINDS:
        values = data.n_samples * data.n_features
        if values > MAX_DATA_VALUES:
            raise ConfigError(
                f"`{key}.n_samples` x `{key}.n_features` = {data.n_samples} x "
                f"{data.n_features} = {values} values, over the {MAX_DATA_VALUES} that "
                f"synthetic data may hold ({MAX_DATA_VALUES * 8 // 2**20} MB of float64 per "
                "seed); lower them or load the data from a file"
            )
    return msgspec.structs.replace(data, **changes)


def _check_semantics(cfg: ExperimentSpec) -> None:
    run = cfg.run
    _check_name("name", cfg.name)
    rows = run.max_iters // run.record_every + 1
    if rows > MAX_TRACE_ROWS:
        raise ConfigError(
            f"`run.max_iters` = {run.max_iters} with `run.record_every` = "
            f"{run.record_every} records {rows} trace rows per run, over {MAX_TRACE_ROWS}; "
            f"raise run.record_every to at least {-(-run.max_iters // MAX_TRACE_ROWS)}"
        )
    _check_distinct("run.seeds", run.seeds)
    _check_run_count(cfg)
    _check_training_run(cfg)


def _check_run_count(cfg: ExperimentSpec) -> None:
    def points(entry: Entry) -> int:
        return math.prod(len(v) for v in entry.options.values() if isinstance(v, list))

    n_problems = sum(d.problem is not None for d in cfg.data)
    n_data = len(cfg.data) - n_problems
    solver_points = sum(map(points, cfg.solvers))
    runs = (n_data * sum(map(points, cfg.losses)) + n_problems) * solver_points * len(
        cfg.run.seeds)
    if runs > MAX_RUNS:
        raise ConfigError(
            f"the config has {runs} runs (datasets x loss settings x solver settings x "
            f"`run.seeds`), over {MAX_RUNS}; sweep fewer values or split it into several configs"
        )


def _check_training_run(cfg: ExperimentSpec) -> None:
    """``run.batch_size``, ``run.max_epochs``, ``run.devices``; sizes of synthetic data."""
    run = cfg.run
    if run.batch_size is not None and run.batch_size < 1:
        raise ConfigError(
            f"`run.batch_size` must be an integer >= 1 (leave it out for full-batch steps); "
            f"got {run.batch_size}"
        )
    if run.max_epochs is not None and run.max_epochs < 0:
        raise ConfigError(f"`run.max_epochs` must be an integer >= 0; got {run.max_epochs}")
    devices = run.devices
    if isinstance(devices, str) and devices != "all":
        raise ConfigError(f'`run.devices` must be "all" or an integer >= 1; got {devices!r}')
    if isinstance(devices, int) and devices < 1:
        raise ConfigError(f'`run.devices` must be "all" or an integer >= 1; got {devices}')
    n_devices = devices if isinstance(devices, int) else None
    for i, data in enumerate(cfg.data):
        if data.kind in SYNTHETIC_KINDS:  # sizes known before any data is drawn
            key = f"data[{i}]" if len(cfg.data) > 1 else "data"
            check_training_size(run, key, data.n_samples, data.validation_fraction,
                                n_devices, total_key="n_samples")


def check_training_size(
    run: RunSpec,
    data_key: str,
    n_total: int,
    validation_fraction: float,
    n_devices: int | None,
    *,
    total_key: str,
) -> None:
    """Check ``run.batch_size`` and the device count against a dataset's training split.

    The training part of ``n_total`` examples must hold at least ``batch_size`` examples, and
    with ``devices`` its size must be a multiple of the device count (each device gets an equal
    shard of the examples axis; rows are never dropped silently).

    Args:
        run: the resolved ``[run]`` table.
        data_key: the dataset's key for messages (``data`` or ``data[1]``).
        n_total: examples before the train/validation split.
        validation_fraction: the dataset's ``validation_fraction``.
        n_devices: the number of devices the run is placed on (None: one, unsharded).
        total_key: the config key that sets ``n_total`` (``n_samples`` for synthetic data,
            ``max_samples`` for files), named in the suggested fix.

    Raises:
        ConfigError: naming ``run.batch_size`` or ``run.devices``, the sizes and how to fix it.
    """
    n_train, _ = split_sizes(n_total, validation_fraction)
    split = (f"{n_total} examples with {data_key}.validation_fraction = "
             f"{validation_fraction}")
    batch_size = run.batch_size
    if batch_size is not None and batch_size > n_train:
        raise ConfigError(
            f"`run.batch_size` ({batch_size}) exceeds the {n_train} training examples of "
            f"`{data_key}` ({split}); lower run.batch_size or use more data"
        )
    if n_devices is not None and n_devices > 1 and n_train % n_devices:
        fix = next(
            (m for m in range(n_total, 0, -1)
             if (t := split_sizes(m, validation_fraction)[0]) % n_devices == 0
             and t >= (batch_size or 1)),
            None,
        )
        hint = "" if fix is None else (
            f"set {data_key}.{total_key} = {fix} "
            f"({split_sizes(fix, validation_fraction)[0]} training examples), "
        )
        raise ConfigError(
            f"`run.devices` = {n_devices} must divide the {n_train} training examples of "
            f"`{data_key}` ({split}), since each device holds an equal shard of them: {hint}"
            f"change {data_key}.validation_fraction, or choose a device count that divides "
            f"{n_train}"
        )


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word is a string: --set model.kind=mlp


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set key.path=value`` overrides (TOML values; ``losses.0.delta=2`` indexes).

    Raises:
        ConfigError: a malformed override or a path through something that is not a table.
    """
    raw = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"`--set` expects key.path=value; got {item!r}")
        path, text = item.split("=", 1)
        keys = [k for k in path.strip().split(".") if k]
        if not keys:
            raise ConfigError(f"`--set` expects key.path=value; got {item!r}")
        node: Any = raw
        for depth, key in enumerate(keys[:-1]):
            where = ".".join(keys[: depth + 1])
            if isinstance(node, list):
                if not key.isdigit() or int(key) >= len(node):
                    raise ConfigError(
                        f"`--set {path}`: `{where}` must index the array (0..{len(node) - 1})"
                    )
                node = node[int(key)]
            elif isinstance(node, dict):
                node = node.setdefault(key, {})
            else:
                raise ConfigError(f"`--set {path}`: `{where}` is not a table")
        last = keys[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise ConfigError(f"`--set {path}`: index out of range")
            node[int(last)] = _parse_value(text)
        elif isinstance(node, dict):
            node[last] = _parse_value(text)
        else:
            raise ConfigError(f"`--set {path}`: the parent is not a table")
    return raw


QUICK = {"n_samples": 60, "max_samples": 200, "max_iters": 30, "seeds": 1, "hidden": [8]}


def make_quick(raw: dict[str, Any]) -> dict[str, Any]:
    """Shrink a config for smoke runs (``--quick``).

    Synthetic data gets at most 60 examples, files and scikit-learn data at most 200; at most
    30 iterations and one seed; every list-valued hyperparameter keeps its first value; MLPs
    get one hidden layer of 8 units; ``run.batch_size`` is capped at the smallest shrunk
    training set; ``run.compile`` becomes ``"fast"`` unless the config sets it (a smoke run
    is all compile). Every loss x solver x dataset pair still runs.
    """
    raw = copy.deepcopy(raw)
    data = raw.get("data", {})
    smallest_train = QUICK["max_samples"]
    for table in data if isinstance(data, list) else [data]:
        if not isinstance(table, dict) or str(table.get("kind")).startswith(PROBLEM_PREFIX):
            continue
        if table.get("kind") in SYNTHETIC_KINDS:
            table["n_samples"] = min(int(table.get("n_samples", 200)), QUICK["n_samples"])
            n_total = table["n_samples"]
        else:
            table["max_samples"] = n_total = QUICK["max_samples"]
        fraction = table.get("validation_fraction", 0.2)
        if isinstance(fraction, (int, float)) and 0 <= fraction < 1:  # else: validation says
            smallest_train = min(smallest_train, split_sizes(n_total, fraction)[0])
    for array in ("losses", "solvers"):
        for entry in raw.get(array, []):
            if isinstance(entry, dict):
                for key, value in entry.items():
                    if isinstance(value, list) and value:
                        entry[key] = value[0]
    run = raw.setdefault("run", {})
    run["max_iters"] = min(int(run.get("max_iters", 200)), QUICK["max_iters"])
    run["seeds"] = list(run.get("seeds", [0]))[: QUICK["seeds"]]
    run.setdefault("compile", "fast")
    if isinstance(run.get("batch_size"), int) and smallest_train >= 1:
        run["batch_size"] = min(run["batch_size"], smallest_train)
    model = raw.get("model", {})
    if model.get("kind") == "mlp":
        model["hidden"] = QUICK["hidden"]
    return raw


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    quick: bool = False,
) -> tuple[ExperimentSpec, Path]:
    """Read, override and validate a config; ``None`` reads the embedded quickstart default.

    Returns:
        ``(spec, base_dir)``: the resolved :class:`ExperimentSpec` and the folder relative
        file paths in ``[data]`` are resolved against (the config file's folder, or the working
        directory).

    Raises:
        ConfigError: an unreadable file, invalid TOML or an invalid config.
    """
    if path is None:
        raw, base = tomllib.loads(DEFAULT_CONFIG_TOML), Path.cwd()
    else:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {str(path)!r}")
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: invalid TOML: {err}") from None
        base = path.resolve().parent
    raw = apply_overrides(raw, overrides or [])
    if quick:
        raw = make_quick(raw)
    return resolve_config(raw), base


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf")
    return str(v)


def dump_toml(cfg: ExperimentSpec) -> str:
    """Serialise a resolved config as TOML (None values, e.g. defaults left open, are omitted;
    problem data is written as ``[[data]]`` tables of kind ``problem:<name>``)."""
    plain = cfg.to_dict()
    lines = [f"{k} = {_toml_value(plain[k])}" for k in ("name", "seed")]
    for table in TABLES:
        if plain.get(table) is None:
            continue
        lines += ["", f"[{table}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in plain[table].items() if v is not None]
    for array in ARRAYS:
        for entry in plain[array]:
            lines += ["", f"[[{array}]]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in entry.items()
                      if v is not None and not isinstance(v, dict)]
            lines += [f"{k} = {_toml_inline(v)}" for k, v in entry.items()
                      if isinstance(v, dict) and v]
    return "\n".join(lines) + "\n"


def _toml_inline(table: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in table.items()) + "}"
