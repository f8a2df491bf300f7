"""Config-driven experiments: ``lossopt run CONFIG.toml`` as a Python API.

A config flows one way: TOML -> :class:`ExperimentSpec` (:func:`load_config`, validated and
frozen) -> :func:`plan` (groups of runs) -> :func:`run_experiment` (records, traces, summary)
-> :func:`lossopt.plotting.plot_results` (figures, from the files written).

The runner is imported on first use of its names (``run_experiment``, ``plan``, ...), so that
reading a config, or :mod:`lossopt.plotting`, does not import it.

>>> from lossopt.experiment import load_config, plan
>>> cfg, base = load_config()          # the embedded quickstart default
>>> cfg.run.max_iters, [loss.name for loss in cfg.losses]
(200, ['mse', 'mae', 'huber'])
>>> sum(len(group.lanes) for group in plan(cfg))   # 3 losses x 4 solver settings x 3 seeds
36
"""

from typing import Any

from lossopt.experiment._config import (
    DEFAULT_CONFIG_TOML,
    ConfigError,
    apply_overrides,
    dump_toml,
    load_config,
    resolve_config,
)
from lossopt.experiment._data import Dataset, load_dataset
from lossopt.experiment._schema import (
    DataSpec,
    Entry,
    ExperimentSpec,
    ModelSpec,
    OutputSpec,
    RegularizerSpec,
    RunSpec,
)

_RUNNER = ("ExperimentResult", "GroupCheck", "check_experiment", "plan", "run_experiment")
_PROBLEM = ("Problem", "build_problem")

__all__ = [
    "DEFAULT_CONFIG_TOML",
    "ConfigError",
    "DataSpec",
    "Dataset",
    "Entry",
    "ExperimentResult",
    "ExperimentSpec",
    "GroupCheck",
    "ModelSpec",
    "OutputSpec",
    "Problem",
    "RegularizerSpec",
    "RunSpec",
    "apply_overrides",
    "build_problem",
    "check_experiment",
    "dump_toml",
    "load_config",
    "load_dataset",
    "plan",
    "resolve_config",
    "run_experiment",
]


def __getattr__(name: str) -> Any:
    if name in _RUNNER:
        from lossopt.experiment import _runner

        return getattr(_runner, name)
    if name in _PROBLEM:
        from lossopt.experiment import _problem

        return getattr(_problem, name)
    raise AttributeError(f"module 'lossopt.experiment' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
