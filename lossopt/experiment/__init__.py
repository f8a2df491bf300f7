"""Config-driven experiments: ``lossopt run CONFIG.toml`` as a Python API.

>>> from lossopt.experiment import load_config, plan
>>> cfg, base = load_config()          # the embedded quickstart default
>>> sum(len(group.lanes) for group in plan(cfg))   # 3 losses x 4 solver settings x 3 seeds
36
"""

from lossopt.experiment._config import (
    DEFAULT_CONFIG_TOML,
    ConfigError,
    apply_overrides,
    dump_toml,
    load_config,
    resolve_config,
)
from lossopt.experiment._data import Dataset, load_dataset
from lossopt.experiment._problem import Problem, build_problem
from lossopt.experiment._runner import (
    ExperimentResult,
    GroupCheck,
    check_experiment,
    plan,
    run_experiment,
)

__all__ = [
    "DEFAULT_CONFIG_TOML",
    "ConfigError",
    "Dataset",
    "ExperimentResult",
    "GroupCheck",
    "Problem",
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
