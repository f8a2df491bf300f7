"""Experiment configs: TOML in, a validated and fully resolved dict out.

Every error is a :class:`ConfigError` whose message names the key (``solvers[1].learning_rate``),
the expected and the received value. The resolved config (defaults filled in) is written next to
the results as ``config.toml`` so a run can be reproduced.
"""

from __future__ import annotations

import copy
import inspect
import math
import tomllib
from pathlib import Path
from typing import Any

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

# key -> (python types accepted, default); a default of REQUIRED must be given.
REQUIRED = object()
_NUMBER = (int, float)

SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], Any]]] = {
    "": {
        "name": ((str,), "experiment"),
        "seed": ((int,), 0),
    },
    "data": {
        "name": ((str,), ""),
        "kind": ((str,), REQUIRED),
        "n_samples": ((int,), 200),
        "n_features": ((int,), 5),
        "noise": (_NUMBER, 0.5),
        "outlier_fraction": (_NUMBER, 0.0),
        "validation_fraction": (_NUMBER, 0.2),
        "n_classes": ((int,), 3),
        "positive_fraction": (_NUMBER, 0.5),
        "path": ((str,), ""),
        "target": ((str,), "y"),
        "features": ((list,), []),
        "x_key": ((str,), "X"),
        "y_key": ((str,), "y"),
        "task": ((str,), ""),
        "standardize": ((bool,), None),
        "max_samples": ((int,), 0),
    },
    "model": {
        "kind": ((str,), "linear"),
        "hidden": ((list,), [64, 32]),
        "activation": ((str,), "relu"),
        "dropout": (_NUMBER, 0.0),
    },
    "regularizer": {
        "kind": ((str,), REQUIRED),
        "strength": (_NUMBER, 0.0),
        "alpha": (_NUMBER, 0.0),
        "l1_ratio": (_NUMBER, 0.5),
    },
    "run": {
        "max_iters": ((int,), 200),
        "gtol": (_NUMBER, 1e-8),
        "ftol": (_NUMBER, 0.0),
        "xtol": (_NUMBER, 0.0),
        "seeds": ((list,), [0]),
        "record_every": ((int,), 1),
        "newton_memory_mb": (_NUMBER, 256.0),
        "dtype": ((str,), "float64"),
        # None: left open (full batch; no epoch cap; the default device), omitted from the
        # written config.toml.
        "batch_size": ((int,), None),
        "max_epochs": ((int,), None),
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
    for key, (types, default) in schema.items():
        full = _join(prefix, key)
        if key in table:
            _check_type(full, table[key], types)
            out[key] = table[key]
        elif default is REQUIRED:
            raise ConfigError(f"`{full}` is required")
        else:
            out[key] = copy.deepcopy(default)
    return out


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


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
    accepted = losses.info(name).hyperparameters
    for hyper, value in entry.items():
        if hyper == "name":
            continue
        if hyper not in accepted:
            raise ConfigError(
                f"unknown key `{key}.{hyper}` for loss {name!r}; accepted: "
                f"{', '.join(accepted) or 'none'}"
            )
        for v in value if isinstance(value, list) else [value]:
            if not isinstance(v, (int, float, str, bool)):
                raise ConfigError(f"`{key}.{hyper}` must be a number, string or bool; got {v!r}")
    return dict(entry)


def solver_parameters(name: str) -> dict[str, Any]:
    """Accepted hyperparameters of a solver config entry (without ``name``)."""
    from lossopt import solvers

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
    classes = {
        "gradient_descent": solvers.GradientDescent,
        "newton": solvers.Newton,
        "lbfgs": solvers.LBFGS,
        "subgradient": solvers.Subgradient,
    }
    cls = classes[name]
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
    for hyper, value in entry.items():
        if hyper == "name":
            continue
        if hyper not in accepted:
            raise ConfigError(
                f"unknown key `{key}.{hyper}` for solver {name!r}; accepted: "
                f"{', '.join(accepted) or 'none'}"
            )
        values = value if isinstance(value, list) else [value]
        if not values:
            raise ConfigError(f"`{key}.{hyper}` is an empty list")
        for v in values:
            if not isinstance(v, (int, float, str, bool)):
                raise ConfigError(f"`{key}.{hyper}` must be a number, string or bool; got {v!r}")
    return dict(entry)


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


def _check_data(key: str, data: dict[str, Any]) -> None:
    _check_choice(f"{key}.kind", data["kind"], DATA_KINDS)
    if data["task"]:
        _check_choice(f"{key}.task", data["task"], DATA_TASKS)
    for name in ("n_samples", "n_features"):
        if data[name] < 1:
            raise ConfigError(f"`{key}.{name}` must be >= 1; got {data[name]}")
    if data["n_classes"] < 2:
        raise ConfigError(f"`{key}.n_classes` must be >= 2; got {data['n_classes']}")
    for name, lo, hi in (("validation_fraction", 0.0, 0.9), ("outlier_fraction", 0.0, 0.5)):
        if not lo <= data[name] <= hi:
            raise ConfigError(f"`{key}.{name}` must be in [{lo}, {hi}]; got {data[name]}")
    if not 0.0 < data["positive_fraction"] < 1.0:
        raise ConfigError(
            f"`{key}.positive_fraction` must be in (0, 1); got {data['positive_fraction']}"
        )
    if data["noise"] < 0:
        raise ConfigError(f"`{key}.noise` must be >= 0; got {data['noise']}")
    if data["max_samples"] < 0:
        raise ConfigError(f"`{key}.max_samples` must be >= 0 (0: all); got {data['max_samples']}")


def _check_semantics(cfg: dict[str, Any]) -> None:
    model, run = cfg["model"], cfg["run"]
    for i, data in enumerate(cfg["data"]):
        _check_data(f"data[{i}]" if len(cfg["data"]) > 1 else "data", data)
    _check_choice("model.kind", model["kind"], MODEL_KINDS)
    reg = cfg["regularizer"]
    if reg is not None:
        _check_choice("regularizer.kind", reg["kind"], REGULARIZERS)
        for key in ("strength", "alpha"):
            if reg[key] < 0:
                raise ConfigError(f"`regularizer.{key}` must be >= 0; got {reg[key]}")
    if run["max_iters"] < 1:
        raise ConfigError(f"`run.max_iters` must be >= 1; got {run['max_iters']}")
    if run["record_every"] < 1:
        raise ConfigError(f"`run.record_every` must be >= 1; got {run['record_every']}")
    for key in ("gtol", "ftol", "xtol"):
        if run[key] < 0:
            raise ConfigError(f"`run.{key}` must be >= 0; got {run[key]}")
    _check_choice("run.dtype", run["dtype"], ("float32", "float64"))
    _check_choice("run.compile", run["compile"], ("auto", "fast", "optimized"))
    seeds = run["seeds"]
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(f"`run.seeds` must be a non-empty list of integers; got {seeds!r}")
    _check_training_run(cfg)
    if not cfg["output"]["dir"]:
        cfg["output"]["dir"] = f"results/{cfg['name']}"


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
