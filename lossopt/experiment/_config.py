"""Experiment configs: TOML in, a validated and fully resolved dict out.

Every error is a :class:`ConfigError` whose message names the key (``solvers[1].learning_rate``),
the expected and the received value. The resolved config (defaults filled in) is written next to
the results as ``config.toml`` so a run can be reproduced.
"""

from __future__ import annotations

import copy
import inspect
import math
import re
import tomllib
from pathlib import Path
from typing import Any

from lossopt.experiment._data import FILES as FILE_KINDS
from lossopt.experiment._data import KINDS as DATA_KINDS
from lossopt.experiment._data import SYNTHETIC as SYNTHETIC_KINDS
from lossopt.experiment._data import TASKS as DATA_TASKS
from lossopt.experiment._data import split_sizes

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

# key -> (python types accepted, default[, range]); a default of REQUIRED must be given. A range
# bounds a number: Range(lo, hi) is lo <= value <= hi (None: unbounded), open ends exclude the
# bound. Upper bounds are sizes this machine could not hold or a run would never finish with;
# each is far above any experiment `lossopt run` is meant for.
REQUIRED = object()
_NUMBER = (int, float)


class Range:
    """Bounds of a number in the schema, and the one message that states them."""

    def __init__(self, lo=None, hi=None, *, lo_open=False, hi_open=False):
        self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open

    def check(self, key: str, value: Any) -> None:
        """Raise naming ``key``, the bound it crosses and ``value``."""
        if self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo)):
            bound = f"{'>' if self.lo_open else '>='} {self.lo}"
        elif self.hi is not None and (value > self.hi or (self.hi_open and value == self.hi)):
            bound = f"{'<' if self.hi_open else '<='} {self.hi}"
        else:
            return
        raise ConfigError(f"`{key}` must be {bound}; got {value!r}")


MAX_SEED = 2**31 - 1  # numpy's default_rng and jax.random.key take any; sums of two stay in int64
MAX_SAMPLES = 10**7
MAX_FEATURES = 10**5
MAX_DATA_VALUES = 10**8  # n_samples x n_features of synthetic data: 800 MB of float64 per seed
MAX_ITERS = 10**7
MAX_TRACE_ROWS = 10**6  # per run: max_iters / record_every + 1 (the trace is preallocated)
MAX_SWEEP_VALUES = 1000  # values in one hyperparameter list
MAX_RUNS = 100_000  # runs in one config (datasets x loss settings x solver settings x seeds)
MAX_NAME_LENGTH = 100
_SIZE = Range(1, MAX_SAMPLES)
_FRACTION = Range(0.0, 1.0)

SCHEMA: dict[str, dict[str, tuple]] = {
    "": {
        "name": ((str,), "experiment"),
        "seed": ((int,), 0, Range(0, MAX_SEED)),
    },
    "data": {
        "name": ((str,), ""),
        "kind": ((str,), REQUIRED),
        "n_samples": ((int,), 200, _SIZE),
        "n_features": ((int,), 5, Range(1, MAX_FEATURES)),
        "noise": (_NUMBER, 0.5, Range(0, 1e6)),
        "outlier_fraction": (_NUMBER, 0.0, Range(0.0, 0.5)),
        "validation_fraction": (_NUMBER, 0.2, Range(0.0, 0.9)),
        "n_classes": ((int,), 3, Range(2, 10_000)),
        "positive_fraction": (_NUMBER, 0.5, Range(0, 1, lo_open=True, hi_open=True)),
        "path": ((str,), ""),
        "target": ((str,), "y"),
        "features": ((list,), []),
        "x_key": ((str,), "X"),
        "y_key": ((str,), "y"),
        "task": ((str,), ""),
        "standardize": ((bool,), None),
        "max_samples": ((int,), 0, Range(0, MAX_SAMPLES)),
    },
    "model": {
        "kind": ((str,), "linear"),
        "hidden": ((list,), [64, 32]),
        "activation": ((str,), "relu"),
        "dropout": (_NUMBER, 0.0, Range(0.0, 1.0, hi_open=True)),
    },
    "regularizer": {
        "kind": ((str,), REQUIRED),
        "strength": (_NUMBER, 0.0, Range(0.0)),
        "alpha": (_NUMBER, 0.0, Range(0.0)),
        "l1_ratio": (_NUMBER, 0.5, _FRACTION),
    },
    "run": {
        "max_iters": ((int,), 200, Range(1, MAX_ITERS)),
        "gtol": (_NUMBER, 1e-8, Range(0.0)),
        "ftol": (_NUMBER, 0.0, Range(0.0)),
        "xtol": (_NUMBER, 0.0, Range(0.0)),
        "seeds": ((list,), [0]),
        "record_every": ((int,), 1, Range(1, MAX_ITERS)),
        "newton_memory_mb": (_NUMBER, 256.0, Range(0.0, 1e7, lo_open=True)),
        "dtype": ((str,), "float64"),
        # None: left open (full batch; no epoch cap; the default device), omitted from the
        # written config.toml.
        "batch_size": ((int,), None, Range(hi=MAX_SAMPLES)),  # lower bounds: _check_training_run
        "max_epochs": ((int,), None, Range(hi=MAX_ITERS)),
        "devices": ((str, int), None),
        # How XLA compiles each group's call: lossopt.minimize's `compile` policy.
        "compile": ((str,), "auto"),
    },
    "output": {
        "dir": ((str,), ""),
        "plots": ((bool,), True),
    },
}
TABLES = ("model", "regularizer", "run", "output")
ARRAYS = ("data", "losses", "solvers")
MODEL_KINDS = ("linear", "logistic", "softmax", "mlp")
REGULARIZERS = ("l1", "l2", "elastic_net")
SOLVER_NAMES = ("gradient_descent", "newton", "lbfgs", "subgradient", "optax:<name>")


def _type_name(types: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false",
             list: "a list"}
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def _check_type(key: str, value: Any, types: tuple[type, ...]) -> None:
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        raise ConfigError(f"`{key}` must be {_type_name(types)}; got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"`{key}` must be finite; got {value!r}")


def _fill_table(prefix: str, table: Any, schema: dict[str, tuple]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"`{prefix}` must be a table; got {table!r}")
    unknown = sorted(set(table) - set(schema))
    if unknown:
        where = f"`{prefix}`" if prefix else "the top level"
        raise ConfigError(
            f"unknown key `{_join(prefix, unknown[0])}` in {where}; known keys: "
            f"{', '.join(sorted(schema))}"
        )
    out = {}
    for key, (types, default, *bounds) in schema.items():
        full = _join(prefix, key)
        if key in table:
            _check_type(full, table[key], types)
            if bounds and isinstance(table[key], _NUMBER) and not isinstance(table[key], bool):
                bounds[0].check(full, table[key])
            out[key] = table[key]
        elif default is REQUIRED:
            raise ConfigError(f"`{full}` is required")
        else:
            out[key] = copy.deepcopy(default)
    return out


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _check_entry(key: str, what: str, entry: dict[str, Any], accepted) -> dict[str, Any]:
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
                f"unknown key `{full}` for {what} {name!r}; accepted: "
                f"{', '.join(accepted) or 'none'}"
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
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"`{full}` must be finite; got {v!r}")
        keys = [(type(v), v) for v in values]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"`{full}` lists a value twice: {value!r}")
    return dict(entry)


def _check_loss(i: int, entry: Any) -> dict[str, Any]:
    from lossopt import losses

    key = f"losses[{i}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ConfigError(f"`{key}` must be a table with a string `name`; got {entry!r}")
    name = entry["name"]
    if name not in losses.names():
        raise ConfigError(
            f"`{key}.name`: unknown loss {name!r}; known losses: {', '.join(losses.names())}"
        )
    return _check_entry(key, "loss", entry, losses.info(name).hyperparameters)


def solver_class(name: str) -> type:
    """The lossopt solver class of a config solver name (the one table of them).

    Raises:
        KeyError: not a lossopt solver name (``optax:<name>`` entries are not classes).
    """
    from lossopt import solvers

    return {
        "gradient_descent": solvers.GradientDescent,
        "newton": solvers.Newton,
        "lbfgs": solvers.LBFGS,
        "subgradient": solvers.Subgradient,
    }[name]


def solver_parameters(name: str) -> dict[str, Any]:
    """Accepted hyperparameters of a solver config entry (without ``name``)."""
    if name.startswith("optax:"):
        import optax

        factory = getattr(optax, name.split(":", 1)[1], None)
        if factory is None or not callable(factory):
            raise KeyError(name)
        return {
            p.name: p.default
            for p in inspect.signature(factory).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }
    cls = solver_class(name)
    return {
        p.name: p.default for p in inspect.signature(cls).parameters.values()
    }


def _check_solver(i: int, entry: Any) -> dict[str, Any]:
    key = f"solvers[{i}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ConfigError(f"`{key}` must be a table with a string `name`; got {entry!r}")
    name = entry["name"]
    try:
        accepted = solver_parameters(name)
    except KeyError:
        raise ConfigError(
            f"`{key}.name`: unknown solver {name!r}; known: {', '.join(SOLVER_NAMES)} "
            "(<name> any optax optimizer, e.g. optax:adam, optax:lbfgs)"
        ) from None
    return _check_entry(key, "solver", entry, accepted)


def resolve_config(raw: dict[str, Any]) -> dict[str, Any]:
    """Validate ``raw`` (a parsed TOML document) and fill in every default.

    Raises:
        ConfigError: naming the key, the expected and the received value.
    """
    raw = copy.deepcopy(raw)
    known = set(SCHEMA[""]) | set(TABLES) | set(ARRAYS)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"unknown key `{unknown[0]}` at the top level; known keys: {', '.join(sorted(known))}"
        )
    cfg = _fill_table("", {k: raw[k] for k in SCHEMA[""] if k in raw}, SCHEMA[""])
    data = raw.get("data")
    if data is None:
        raise ConfigError("`data` is required: a [data] table (or [[data]] tables) with `kind`")
    tables = data if isinstance(data, list) else [data]
    if not tables:
        raise ConfigError("`data` must hold at least one table")
    cfg["data"] = []
    for i, table in enumerate(tables):
        key = f"data[{i}]" if isinstance(data, list) else "data"
        entry = _fill_table(key, table, SCHEMA["data"])
        entry["name"] = entry["name"] or entry["kind"].replace("sklearn:", "")
        cfg["data"].append(entry)
    names = [d["name"] for d in cfg["data"]]
    if len(set(names)) != len(names):
        raise ConfigError(f"`data` names must be unique (set data[i].name); got {names}")
    for table in TABLES:
        if table == "regularizer" and table not in raw:
            cfg[table] = None
            continue
        cfg[table] = _fill_table(table, raw.get(table, {}), SCHEMA[table])
    for array, check in (("losses", _check_loss), ("solvers", _check_solver)):
        entries = raw.get(array)
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"`{array}` must be a non-empty array of tables ([[{array}]])")
        cfg[array] = [check(i, e) for i, e in enumerate(entries)]
    _check_semantics(cfg)
    return cfg


def _check_choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"`{key}` must be one of {', '.join(choices)}; got {value!r}")


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


def _check_list(key: str, values: list, kind: type, bounds: Range | None = None, *,
                distinct: bool = True) -> None:
    """A list of ``kind`` values (bools are not integers), each within ``bounds``, each
    listed once when ``distinct`` (seeds, columns: a repeat would be the same run twice)."""
    for v in values:
        if not isinstance(v, kind) or isinstance(v, bool):
            what = {int: "integers", str: "strings"}[kind]
            raise ConfigError(f"`{key}` must be a list of {what}; got {values!r}")
        if bounds is not None:
            bounds.check(f"{key}[{values.index(v)}]", v)
    if distinct and len(set(values)) != len(values):
        raise ConfigError(f"`{key}` lists a value twice: {values!r}")


def _check_data(key: str, data: dict[str, Any], model_kind: str) -> None:
    _check_choice(f"{key}.kind", data["kind"], DATA_KINDS)
    if data["task"]:
        _check_choice(f"{key}.task", data["task"], DATA_TASKS)
    elif data["kind"] in FILE_KINDS:
        data["task"] = _MODEL_TASK.get(model_kind, "")
    _check_list(f"{key}.features", data["features"], str)
    if data["kind"] in SYNTHETIC_KINDS:
        values = data["n_samples"] * data["n_features"]
        if values > MAX_DATA_VALUES:
            raise ConfigError(
                f"`{key}.n_samples` x `{key}.n_features` = {data['n_samples']} x "
                f"{data['n_features']} = {values} values, over the {MAX_DATA_VALUES} that "
                f"synthetic data may hold ({MAX_DATA_VALUES * 8 // 2**20} MB of float64 per "
                "seed); lower them or load the data from a file"
            )


def _check_semantics(cfg: dict[str, Any]) -> None:
    model, run = cfg["model"], cfg["run"]
    _check_name("name", cfg["name"])
    _check_choice("model.kind", model["kind"], MODEL_KINDS)
    for i, data in enumerate(cfg["data"]):
        _check_data(f"data[{i}]" if len(cfg["data"]) > 1 else "data", data, model["kind"])
    _check_list("model.hidden", model["hidden"], int, Range(1, MAX_FEATURES), distinct=False)
    reg = cfg["regularizer"]
    if reg is not None:
        _check_choice("regularizer.kind", reg["kind"], REGULARIZERS)
    rows = run["max_iters"] // run["record_every"] + 1
    if rows > MAX_TRACE_ROWS:
        raise ConfigError(
            f"`run.max_iters` = {run['max_iters']} with `run.record_every` = "
            f"{run['record_every']} records {rows} trace rows per run, over {MAX_TRACE_ROWS}; "
            f"raise run.record_every to at least {-(-run['max_iters'] // MAX_TRACE_ROWS)}"
        )
    _check_choice("run.dtype", run["dtype"], ("float32", "float64"))
    _check_choice("run.compile", run["compile"], ("auto", "fast", "optimized"))
    seeds = run["seeds"]
    if not seeds:
        raise ConfigError(f"`run.seeds` must be a non-empty list of integers; got {seeds!r}")
    _check_list("run.seeds", seeds, int, Range(0, MAX_SEED))
    _check_run_count(cfg)
    _check_training_run(cfg)
    if not cfg["output"]["dir"]:
        cfg["output"]["dir"] = f"results/{cfg['name']}"


def _check_run_count(cfg: dict[str, Any]) -> None:
    def points(entry: dict[str, Any]) -> int:
        return math.prod(len(v) for v in entry.values() if isinstance(v, list))

    runs = (len(cfg["data"]) * sum(map(points, cfg["losses"])) * sum(map(points, cfg["solvers"]))
            * len(cfg["run"]["seeds"]))
    if runs > MAX_RUNS:
        raise ConfigError(
            f"the config has {runs} runs (datasets x loss settings x solver settings x "
            f"`run.seeds`), over {MAX_RUNS}; sweep fewer values or split it into several configs"
        )


def _check_training_run(cfg: dict[str, Any]) -> None:
    """``run.batch_size``, ``run.max_epochs``, ``run.devices``; sizes of synthetic data."""
    run = cfg["run"]
    if run["batch_size"] is not None and run["batch_size"] < 1:
        raise ConfigError(
            f"`run.batch_size` must be an integer >= 1 (leave it out for full-batch steps); "
            f"got {run['batch_size']}"
        )
    if run["max_epochs"] is not None and run["max_epochs"] < 0:
        raise ConfigError(f"`run.max_epochs` must be an integer >= 0; got {run['max_epochs']}")
    devices = run["devices"]
    if isinstance(devices, str) and devices != "all":
        raise ConfigError(f'`run.devices` must be "all" or an integer >= 1; got {devices!r}')
    if isinstance(devices, int) and devices < 1:
        raise ConfigError(f'`run.devices` must be "all" or an integer >= 1; got {devices}')
    n_devices = devices if isinstance(devices, int) else None
    for i, data in enumerate(cfg["data"]):
        if data["kind"] in SYNTHETIC_KINDS:  # sizes known before any data is drawn
            key = f"data[{i}]" if len(cfg["data"]) > 1 else "data"
            check_training_size(run, key, data["n_samples"], data["validation_fraction"],
                                n_devices, total_key="n_samples")


def check_training_size(
    run: dict[str, Any],
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
    batch_size = run["batch_size"]
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
        if not isinstance(table, dict):
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
) -> tuple[dict[str, Any], Path]:
    """Read, override and validate a config; ``None`` reads the embedded quickstart default.

    Returns:
        ``(config, base_dir)``: the resolved config and the folder relative file paths in
        ``[data]`` are resolved against (the config file's folder, or the working directory).

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


def dump_toml(cfg: dict[str, Any]) -> str:
    """Serialise a resolved config as TOML (None values, e.g. defaults left open, are omitted)."""
    lines = [f"{k} = {_toml_value(cfg[k])}" for k in SCHEMA[""]]
    for table in TABLES:
        if cfg.get(table) is None:
            continue
        lines += ["", f"[{table}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in cfg[table].items() if v is not None]
    for array in ARRAYS:
        for entry in cfg[array]:
            lines += ["", f"[[{array}]]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in entry.items() if v is not None]
    return "\n".join(lines) + "\n"
