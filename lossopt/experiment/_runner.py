"""Run every loss x solver x hyperparameter x seed combination of a config.

Runs are planned into *groups*: one loss, one solver and one choice of its non-numeric options
(line search kind, schedule, ...). Inside a group the numeric hyperparameter grid (the product
of every list-valued numeric option) and the seeds become the lanes of ONE
``jax.jit``-compiled call of :func:`lossopt.minimize`; every lane gets its own data (drawn with
its seed) and stops on its own criterion. On the CPU the lanes run one after another inside
that call (``lax.map``): each stops when it converges instead of computing in lockstep with the
slowest, and the program is smaller and faster to trace and compile than a vmapped loop. On an
accelerator they are vmapped (run in parallel), except for groups whose loop has
per-iteration conds -- minibatch or dropout runs, and runs recording every ``record_every > 1``
steps --, which are mapped there too: vmap would turn those conds into selects that compute
both branches every step. A run's ``wall_time_s`` is its share of the call's time
(:func:`_time_shares`).

The groups of one solver setting on one dataset -- the config's losses -- share one compiled
*program* (:func:`_programs`): the loop is compiled once with a ``lax.switch`` on a traced loss
index, and each group calls it with its own index, so only its loss runs and its call is
timed on its own. A config of three losses and three solvers compiles three programs, not
nine; the results are those of one program per group (the same operations: bit-identical on
the quickstart and classification.toml, equal to rounding on the others).

Training runs: with ``run.batch_size`` (minibatches, drawn inside the compiled loop) or a model
with dropout, each lane passes ``minimize`` its own PRNG key, ``fold_in(key(seed + lane seed),
1)`` (initialisation uses ``key(seed + lane seed)`` itself), so a run is reproducible and seeds
differ in their shuffles and dropout masks; the trace then also records ``train_loss``, the full
training objective in evaluation mode (no dropout), every ``record_every`` iterations. With
``run.devices`` the stacked ``(lanes, n, ...)`` training data is split along the examples axis
over a one-dimensional device mesh (``NamedSharding(mesh, PartitionSpec(None, "data"))``), the
rest replicated, so each group call is one SPMD program (see :func:`place_group_inputs`).

Outputs (each file written atomically by :mod:`lossopt._io`: a temporary file, then
``os.replace``, with the permissions the umask gives):

- ``runs/<run_id>.json``: one record per completed run (what ``summary`` is built from; a
  re-run skips runs whose record exists with the same fingerprint); values are stored as
  values (``hyperparameters`` a JSON object);
- ``traces/<run_id>.csv``: the per-iteration trace (:meth:`lossopt.Trace.to_csv`);
- ``summary.csv`` / ``summary.json``: one row per run; ``config.toml``: the resolved config.

The figures (:mod:`lossopt.plotting`) are drawn from these files afterwards, by the CLI or
``lossopt plot``; the runner does not import plotting.

Data flows one way: config -> :class:`~lossopt.experiment.ExperimentSpec` -> :func:`plan`
(groups of lanes) -> runs -> records -> summary -> figures.

Test problems (``kind = "problem:<name>"`` or a ``[problems]`` table; :mod:`lossopt.problems`)
run ``minimize(problem.fun, problem.x0, solver, args=problem.args)`` from the standard start;
they take no loss, model or data split, run once per solver setting (the start does not depend
on the seed: the first of ``run.seeds`` names the run) and their records carry ``f_star`` and
``f_minus_f_star``.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import itertools
import json
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lossopt._collector import collector_paused
from lossopt._io import atomic_write
from lossopt.experiment._config import ConfigError, check_training_size, dump_toml
from lossopt.experiment._data import FILES, SYNTHETIC, DataError, Dataset, load_dataset
from lossopt.experiment._problem import Problem, build_problem
from lossopt.experiment._schema import DataSpec, ExperimentSpec
from lossopt.experiment._solvers import make_solver, prox_penalty, traced_fields
from lossopt.experiment._tables import tolerance_rows, write_tolerance_table
from lossopt.solvers._compile import compile_lowered

__all__ = [
    "ExperimentResult",
    "check_output_dir",
    "device_mesh",
    "place_group_inputs",
    "plan",
    "run_experiment",
]

SUMMARY_COLUMNS = (
    "run_id", "data", "loss", "solver", "hyperparameters", "seed", "status", "converged",
    "iterations", "final_loss", "train_loss", "grad_norm", "val_metric_name", "val_metric",
    "num_fun_evals", "num_grad_evals", "wall_time_s", "compile_time_s", "compile_mode",
    "compile_id", "calls_per_compile", "lanes_in_call", "devices", "n_params", "f_star",
    "f_minus_f_star",
)

# fold_in data that derives a lane's training key (minibatch shuffles, dropout) from its
# initialisation key.
TRAIN_KEY_STREAM = 1


# --- planning ----------------------------------------------------------------------------------


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _product(options: dict[str, Any]) -> list[dict[str, Any]]:
    keys = list(options)
    lists = [v if isinstance(v, list) else [v] for v in options.values()]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*lists)]


@dataclasses.dataclass(frozen=True)
class Lane:
    run_id: str
    seed: int
    traced: dict[str, float]  # numeric options that vary across lanes
    hyper: dict[str, Any]  # every option of the run, for reports
    fingerprint: str


@dataclasses.dataclass(frozen=True)
class Group:
    """Runs that share one compiled call (their lanes mapped or vmapped: :func:`_lanes_mapped`)."""

    data_index: int
    data_name: str
    loss_entry: dict[str, Any] | None  # None: a test problem (no loss)
    loss_label: str
    solver_name: str
    static: dict[str, Any]
    lanes: tuple[Lane, ...]
    loss_index: int = 0  # the config entries it comes from: losses[loss_index], solvers[...]
    solver_index: int = 0

    @property
    def description(self) -> str:
        """Data, loss, solver and every hyperparameter: two groups never read alike (the
        lanes' values are listed where they differ, e.g. ``learning_rate={0.01, 0.1}``)."""
        parts = [f" {k}={v}" for k, v in self.static.items()]
        for k in self.lanes[0].traced:
            values = sorted({lane.traced[k] for lane in self.lanes})
            shown = ", ".join(f"{v:g}" for v in values)
            parts.append(f" {k}={shown}" if len(values) == 1 else f" {k}={{{shown}}}")
        loss = "" if self.loss_entry is None else f"{self.loss_label} | "  # test problems: none
        return (f"{self.data_name} | {loss}{self.solver_name}{''.join(parts)} "
                f"({len(self.lanes)} runs)")


MAX_RUN_ID = 150  # characters of a run id (a file name: most file systems allow 255 bytes)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_.")


def _run_id(text: str) -> str:
    """A file name for a run: ``text`` slugged; a long one cut, with a hash of all of it."""
    slug = _slug(text)
    if len(slug) <= MAX_RUN_ID:
        return slug
    return slug[: MAX_RUN_ID - 17] + "_" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _fingerprint(cfg: ExperimentSpec, data: DataSpec, digest: str | None, *parts: Any) -> str:
    """A run's identity: what it computes, not where. The data enters by its content
    (``digest``, :meth:`Dataset.digest` of the lane's arrays), not by ``data.path``: a changed
    file gets new runs, a moved one keeps its records. ``run.devices`` is left out (a sharded
    run equals the single-device run up to the order of float summation, so its records are
    reused), and so is ``run.compile`` (the same operations compiled with other XLA options:
    equal up to rounding), and so are options left open (None)."""
    plain = cfg.to_dict()
    shared = {k: plain[k] for k in ("model", "regularizer", "seed")}
    shared["run"] = {k: v for k, v in plain["run"].items()
                     if k not in ("seeds", "devices", "compile") and v is not None}
    shared["data"] = {k: v for k, v in data.to_dict().items() if k != "path"}
    blob = json.dumps([shared, digest, *parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def plan(cfg: ExperimentSpec, tasks: dict[str, str] | None = None,
         digests: dict[tuple[int, int], str] | None = None) -> list[Group]:
    """Expand a resolved config into groups of runs (validating every solver option).

    ``tasks`` maps each dataset name to its task once the data is loaded; with it, loss x
    dataset pairs whose task does not fit are left out when the config has several datasets
    (with one dataset, or a loss that fits none of them, :func:`run_experiment` raises).
    ``digests`` maps ``(dataset index, seed)`` to :meth:`Dataset.digest` of the loaded data;
    :func:`run_experiment` passes them, so that records are keyed on the data's content
    (without them the lanes' fingerprints know only the config). Test problems
    (``problem:<name>`` data) get one group per solver setting and no loss.

    Raises:
        ConfigError: an invalid solver option, or two runs with the same id (the config
            describes one run twice).
    """
    groups = []
    for d_index, data in enumerate(cfg.data):
        if data.problem is not None:
            groups += _solver_groups(cfg, d_index, data, -1, None, digests)
            continue
        for l_index, loss_entry in enumerate(cfg.losses):
            for loss_point in _product(loss_entry.to_dict()):
                if tasks is not None and not _fits(loss_point["name"], tasks[data.name]):
                    continue
                groups += _solver_groups(cfg, d_index, data, l_index, loss_point, digests)
    seen: dict[str, Group] = {}  # run id -> its group
    for g in groups:
        ids: set[str] = set()  # of this group's lanes so far
        for lane in g.lanes:
            other = seen.setdefault(lane.run_id, g)
            if other is not g or lane.run_id in ids:
                raise ConfigError(
                    f"two runs get the same id {lane.run_id!r} (`losses[{other.loss_index}]` x "
                    f"`solvers[{other.solver_index}]` and `losses[{g.loss_index}]` x "
                    f"`solvers[{g.solver_index}]`): the config lists one run twice, or data "
                    "names that differ only in punctuation"
                )
            ids.add(lane.run_id)
    return groups


def _fits(loss_name: str, task: str) -> bool:
    from lossopt.experiment._problem import loss_tasks

    return task in loss_tasks(loss_name)


def _solver_groups(cfg: ExperimentSpec, d_index: int, data: DataSpec, l_index: int,
                   loss_point: dict[str, Any] | None,
                   digests: dict[tuple[int, int], str] | None):
    groups = []
    if loss_point is None:  # a test problem: one start, one run per solver setting
        loss_label, seeds = "-", cfg.run.seeds[:1]
    else:
        loss_label = loss_point["name"] + "".join(
            f" {k}={v}" for k, v in loss_point.items() if k != "name")
        seeds = cfg.run.seeds
    for i, solver_entry in enumerate(cfg.solvers):
        name = solver_entry.name
        options = solver_entry.options
        traced_ok = traced_fields(name)
        static = {k: v for k, v in options.items()
                  if k not in traced_ok or not all(map(_is_number, _as_list(v)))}
        numeric = {k: v for k, v in options.items() if k not in static}
        for static_point in _product(static):
            lanes = []
            for numeric_point in _product(numeric):
                hyper = {**static_point, **numeric_point}
                _validate_solver(i, name, hyper)
                solver_label = name + "".join(f" {k}={v}" for k, v in hyper.items())
                for seed in seeds:
                    middle = "" if loss_point is None else f"{loss_label}__"
                    run_id = _run_id(f"{data.name}__{middle}{solver_label}__seed{seed}")
                    digest = None if digests is None else digests.get((d_index, seed))
                    fp = _fingerprint(cfg, data, digest, loss_point, name, hyper, seed)
                    lanes.append(Lane(run_id, seed, numeric_point, hyper, fp))
            groups.append(Group(d_index, data.name, loss_point, loss_label, name,
                                static_point, tuple(lanes), l_index, i))
    return groups


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def _validate_solver(index: int, name: str, options: dict[str, Any]) -> None:
    try:
        make_solver(name, options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"`solvers[{index}]` ({name}): {err}") from None


# --- running -----------------------------------------------------------------------------------


@dataclasses.dataclass
class ExperimentResult:
    """What :func:`run_experiment` did: the summary rows and where the files are."""

    out_dir: Path
    rows: list[dict[str, Any]]
    ran: int
    skipped: int
    interrupted: bool = False


@dataclasses.dataclass(frozen=True)
class TestProblem:
    """A :mod:`lossopt.problems` problem as the problem of a group: its objective
    ``fun(params, *args)``, standard start ``x0`` and known ``f_star``; no model, no loss and
    no validation split (the summary's ``val_metric`` is NaN)."""

    problem: Any  # a lossopt.problems.Problem
    n_params: int
    metric_name: str = ""
    needs_key: bool = False


GroupProblem = Problem | TestProblem


def _stack(datasets: list[Dataset]) -> tuple[np.ndarray, ...]:
    return tuple(
        np.stack([getattr(d, name) for d in datasets])
        for name in ("X_train", "y_train", "X_val", "y_val")
    )


def _check_newton_budget(cfg: ExperimentSpec, group: Group, problem: GroupProblem) -> None:
    if group.solver_name != "newton" or group.static.get("linear_solver", "cholesky") == "cg":
        return
    megabytes = problem.n_params**2 * 8 / 2**20
    budget = cfg.run.newton_memory_mb
    if megabytes > budget:
        raise ConfigError(
            f"solver 'newton' with a dense Hessian needs {megabytes:.0f} MB for "
            f"{problem.n_params} parameters, over run.newton_memory_mb = {budget}; use "
            "linear_solver = 'cg' (matrix-free Newton-CG) or an optax solver"
        )


def _is_stochastic(cfg: ExperimentSpec, problem: GroupProblem) -> bool:
    return isinstance(problem, Problem) and (problem.needs_key or cfg.run.batch_size is not None)


def _lanes_call(group: Group, solve: Callable[..., Any], mapped: bool,
                in_axes: tuple[Any, ...]) -> Callable[..., Any]:
    """``solve`` over the group's lanes, jitted: vmapped (``in_axes``), mapped (``lax.map``) or,
    for one lane, called once with the lane axis added to the result afterwards."""
    if len(group.lanes) == 1:
        # One lane: skip vmap (a batched while_loop compiles to a larger program).
        def single(*lane_args):
            squeezed = tuple(a if axis is None else jax.tree.map(lambda x: x[0], a)
                             for a, axis in zip(lane_args, in_axes, strict=True))
            return jax.tree.map(lambda a: a[None], solve(*squeezed))

        return jax.jit(single)
    if mapped:
        def mapped_call(*lane_args):
            laned = tuple(a for a, axis in zip(lane_args, in_axes, strict=True) if axis is not None)

            def one(lane):  # one lane's inputs: the laned ones sliced, the rest as they are
                it = iter(lane)
                return solve(*(a if axis is None else next(it)
                               for a, axis in zip(lane_args, in_axes, strict=True)))

            return jax.lax.map(one, laned)

        return jax.jit(mapped_call)
    return jax.jit(jax.vmap(solve, in_axes=in_axes))


def _switched(index: Any, fns: list[Callable[..., Any]]) -> Callable[..., Any]:
    """``fns[index]`` as one function ``f(params, *data, **kwargs)``: the function itself when
    there is one, else a ``lax.switch`` on the traced ``index``. Only the chosen branch runs.

    Each function is a ``jax.jit`` function (the problems' own, made once per problem in
    :func:`_problem`), called with everything it reads passed as arguments (the data and
    keyword arguments such as a dropout ``key``; nothing traced is closed over). A solver
    evaluates and differentiates its objective at several places of one trace (the first
    gradient, the step, its line search's trials, a Hessian), and JAX then traces each loss
    once and reuses that jaxpr, and the jaxprs of its derivatives, wherever the shapes are
    the same: tracing and lowering every program of real_data.toml took 0.60x the time
    (classification.toml 0.77x; ``--quick`` sizes, ``experiments/benchmarks/RESULTS.md``), and
    the compiled programs are the same (XLA inlines the calls; the results are bit for bit
    those of inlined losses).

    Differentiated in ``params`` only (the data are constants to it, as they are to the
    solvers): its JVP is a switch of the branches' own JVPs (``jax.custom_jvp``), so each
    branch is differentiated as a plain function. Differentiating the switch itself would
    linearize every branch's jaxpr primitive by primitive, which traced a config's shared
    program slower than the separate ones (bench_shared_programs.py: classification's
    gradient-descent program 1.21x of three separate ones' trace and compile, 0.75x this way).
    Second derivatives (Newton's Hessians) differentiate the branches' JVPs again."""
    if len(fns) == 1:
        return fns[0]

    def call(params, *data, **kwargs):
        value = jax.custom_jvp(lambda p: jax.lax.switch(
            index, [lambda q, b=b: b(q, *data, **kwargs) for b in fns], p))

        @value.defjvp
        def _(primals, tangents):
            return jax.lax.switch(
                index, [lambda p, t, b=b: jax.jvp(lambda q: b(q, *data, **kwargs), (p,), (t,))
                        for b in fns], primals[0], tangents[0])

        return value(params)

    return call


def _program_call(cfg: ExperimentSpec, group: Group,
                  problems: list[GroupProblem]) -> Callable[..., Any]:
    """The jitted function of a program's calls: ``(Result, train_loss)`` of the inputs of
    :func:`_group_inputs` (the loss index, then a leading lane axis on each but a test
    problem's data). ``group`` is any of the program's groups (they share the solver setting,
    the data and the model); ``problems`` are their problems, in the order of the loss index
    (:func:`_programs`). The lanes are mapped or vmapped (:func:`_lanes_mapped`)."""
    from lossopt.solvers import minimize

    run = cfg.run
    problem = problems[0]
    if isinstance(problem, TestProblem):
        fun = problem.problem.fun

        def solve_problem(index, traced, x0, args):
            solver = make_solver(group.solver_name, {**group.static, **traced})
            result = minimize(fun, x0, solver, args=args, max_iters=run.max_iters,
                              gtol=run.gtol, ftol=run.ftol, xtol=run.xtol,
                              record_every=run.record_every)
            return result, result.value

        return _lanes_call(group, solve_problem, _lanes_mapped(cfg, problem),
                           (None, 0, 0, None))
    stochastic = _is_stochastic(cfg, problem)
    # proximal_gradient with an l1 / elastic-net regularizer: the penalty goes through the
    # solver's prox (the problem's objective is the smooth part; Result.value is f + g).
    penalty = prox_penalty(group.solver_name, cfg.regularizer)
    extra = {} if penalty is None else {"prox": penalty}

    # The losses of a program often share their validation metric: one branch per metric.
    metric_of = {p.metric_key: p.metric for p in problems}
    metric_index = [list(metric_of).index(p.metric_key) for p in problems]

    def solve(index, traced, seed, X, y, Xv, yv):
        key = jax.random.key(seed)
        objective = _switched(index, [p.objective for p in problems])
        metric = _switched(jnp.asarray(metric_index, jnp.int32)[index]
                           if len(metric_of) > 1 else index, list(metric_of.values()))
        train = _switched(index, [p.train_loss for p in problems])

        def full_train_loss(p, X, y):  # the training objective in evaluation mode, penalty included
            value = train(p, X, y)
            return value if penalty is None else value + penalty.value(p)

        # Metrics see (X, y, Xv, yv): the validation metric and, for stochastic runs, the full
        # training objective in evaluation mode (the trace's `loss` is then a minibatch one).
        metrics = {"val_metric": lambda p, X, y, Xv, yv: metric(p, Xv, yv)}
        if stochastic:
            metrics["train_loss"] = lambda p, X, y, Xv, yv: full_train_loss(p, X, y)
        solver = make_solver(group.solver_name, {**group.static, **traced, **extra})
        params0 = problem.model.init(key, X.shape[1], X.dtype)
        result = minimize(
            objective, params0, solver, args=(X, y), max_iters=run.max_iters,
            gtol=run.gtol, ftol=run.ftol, xtol=run.xtol,
            metrics=metrics, metric_args=(X, y, Xv, yv), record_every=run.record_every,
            key=jax.random.fold_in(key, TRAIN_KEY_STREAM) if stochastic else None,
            batch_size=run.batch_size, max_epochs=run.max_epochs,
        )
        # Deterministic full-batch runs: the final value already is the training objective.
        train_loss = full_train_loss(result.params, X, y) if stochastic else result.value
        return result, train_loss

    return _lanes_call(group, solve, _lanes_mapped(cfg, problem), (None,) + (0,) * 6)


def _lanes_mapped(cfg: ExperimentSpec, problem: GroupProblem) -> bool:
    """Whether the group's lanes run one after another in its call (``lax.map``), not vmapped.

    On the CPU always: every lane has its own data (its seed draws it), so vmapping shares no
    reads of it; a vmapped loop runs until its slowest lane stops, computing every lane each
    step, and JAX traces a batched ``while_loop`` several times and XLA compiles a larger
    program, while mapped lanes each stop on their own. On an accelerator the lanes of one
    vmapped call run in parallel, except for groups whose loop has per-iteration conds: under
    vmap they see a per-lane predicate and become selects that compute both branches on every
    step, so a minibatch run's reshuffle (a sort) and the full-data metrics of
    ``record_every > 1`` would run every iteration (measured on mlp_dropout.toml: see the
    closing note of issue 7)."""
    if jax.default_backend() == "cpu":
        return True
    if isinstance(problem, TestProblem):
        return False
    return _is_stochastic(cfg, problem) or cfg.run.record_every > 1  # metrics: val_metric


def _problem(cfg: ExperimentSpec, group: Group, datasets, test_problems,
             built: dict[tuple[Any, ...], Problem]) -> GroupProblem:
    """The group's problem (built in :func:`_prepare`).

    Groups of the same loss on data of the same task and shapes share one problem (``built``
    holds them), whose functions are ``jax.jit`` functions made once: JAX then traces each
    loss once per shape for every program that calls it (optimizers.toml's six solver
    programs of a dataset, real_data's two per dataset), not once per program. The data are
    their arguments, so sharing them shares no values."""
    if group.loss_entry is None:
        problem: GroupProblem = test_problems[group.data_index]
    else:
        first = datasets[group.data_index, group.lanes[0].seed]
        # A penalty the solver applies through its prox is not part of the smooth objective.
        smooth_only = prox_penalty(group.solver_name, cfg.regularizer) is not None
        key = (json.dumps(group.loss_entry, sort_keys=True), smooth_only, first.task,
               first.n_features, first.n_classes)
        if key not in built:
            try:
                plain = build_problem(group.loss_entry, cfg.model,
                                      None if smooth_only else cfg.regularizer, first.task,
                                      first.n_features, first.n_classes)
            except ConfigError as err:
                raise ConfigError(f"{err}{_task_hint(cfg, group.data_index, first)}") from None
            built[key] = dataclasses.replace(
                plain, objective=jax.jit(plain.objective), metric=jax.jit(plain.metric),
                train_loss=jax.jit(plain.train_loss))
        problem = built[key]
    _check_newton_budget(cfg, group, problem)
    return problem


def _task_hint(cfg: ExperimentSpec, data_index: int, dataset: Dataset) -> str:
    """For a file read as regression because ``data.task`` is not set, while its target
    holds class labels: the ``data.task`` to set."""
    data = cfg.data[data_index]
    if data.kind not in FILES or data.task or dataset.task != "regression":
        return ""
    values = np.unique(np.concatenate([dataset.y_train, dataset.y_val]))
    if values.size > 20 or not np.array_equal(values, np.round(values)):
        return ""
    task = "binary" if values.size == 2 else "multiclass"
    key = f"data[{data_index}]" if len(cfg.data) > 1 else "data"
    shown = ", ".join(f"{v:g}" for v in values)
    return (f". `{key}.task` is not set, so its target was read as a regression target, but it "
            f"holds only the labels {shown}: set {key}.task = \"{task}\"")


def device_mesh(devices: str | int | None) -> Mesh | None:
    """The mesh for ``run.devices``: None (the default device, nothing placed), ``"all"``
    (every device of this process, ``jax.local_devices()``) or the first ``n`` of them.

    ``lossopt run`` is a single-process program: for several hosts use
    :mod:`lossopt.distributed` with :func:`lossopt.minimize` directly.

    Raises:
        ConfigError: more devices than this process has.
    """
    from lossopt.distributed import data_mesh

    if devices is None:
        return None
    available = jax.local_devices()
    if devices != "all" and devices > len(available):
        raise ConfigError(
            f"`run.devices` = {devices} exceeds the {len(available)} {available[0].platform} "
            'device(s) of this process; use devices = "all" or fewer (on CPU, '
            "XLA_FLAGS=--xla_force_host_platform_device_count=N set before JAX starts gives N)"
        )
    return data_mesh(list(available) if devices == "all" else list(available[:devices]))


def place_group_inputs(mesh: Mesh | None, traced, seeds, X, y, Xv, yv):
    """Place a group call's inputs on ``mesh`` (unchanged when ``mesh`` is None).

    The training data ``X``, ``y`` (shape ``(lanes, n, ...)``) is split along the examples axis
    (axis 1) with ``NamedSharding(mesh, PartitionSpec(None, "data"))``: each device holds
    ``n / num_devices`` examples of every lane (``n`` must be a multiple; the runner checks it
    before anything runs). The validation data is split the same way when the device count
    divides its size and replicated otherwise (it is only evaluated, every ``record_every``
    iterations). Hyperparameters and the lanes' seeds are replicated. ``jax.jit`` then compiles the
    vmapped loop as one SPMD program: each device evaluates the objective on its examples and
    XLA all-reduces the sums.
    """
    if mesh is None:
        return traced, seeds, X, y, Xv, yv
    from lossopt.distributed import replicate

    (axis,) = mesh.axis_names
    examples = NamedSharding(mesh, PartitionSpec(None, axis))
    X, y = (jax.device_put(a, examples) for a in (X, y))
    if Xv.shape[1] % mesh.size == 0:
        Xv, yv = (jax.device_put(a, examples) for a in (Xv, yv))
    else:
        Xv, yv = replicate((Xv, yv), mesh)
    traced, seeds = replicate((traced, seeds), mesh)
    return traced, seeds, X, y, Xv, yv


def _group_inputs(cfg: ExperimentSpec, group: Group, datasets: dict[tuple[int, int], Dataset],
                  mesh: Mesh | None, problem: GroupProblem, index: int = 0) -> tuple[Any, ...]:
    """The inputs of the group's call of its program: the group's loss ``index`` in the
    program (:func:`_programs`), then the lanes' inputs (stacked, placed)."""
    loss_index = jax.device_put(np.int32(index))
    if mesh is not None:
        from lossopt.distributed import replicate

        loss_index = replicate(loss_index, mesh)
    return (loss_index, *_lane_inputs(cfg, group, datasets, mesh, problem))


def _lane_inputs(cfg: ExperimentSpec, group: Group, datasets: dict[tuple[int, int], Dataset],
                 mesh: Mesh | None, problem: GroupProblem) -> tuple[Any, ...]:
    dtype = jnp.dtype(cfg.run.dtype)
    if isinstance(problem, TestProblem):  # (traced, x0 per lane, shared data)
        p = problem.problem
        x0 = jax.tree.map(lambda a: jnp.stack([jnp.asarray(a, dtype)] * len(group.lanes)), p.x0)
        args = jax.tree.map(
            lambda a: jnp.asarray(a, dtype) if np.asarray(a).dtype.kind == "f" else jnp.asarray(a),
            tuple(p.args))
        traced = {k: jnp.asarray([lane.traced[k] for lane in group.lanes], dtype=dtype)
                  for k in group.lanes[0].traced}
        return traced, x0, args
    lane_data = [datasets[group.data_index, lane.seed] for lane in group.lanes]
    shapes = {(d.X_train.shape, d.X_val.shape) for d in lane_data}
    if len(shapes) != 1:  # pragma: no cover - split sizes depend only on n and the fraction
        raise ConfigError(f"datasets of the seeds differ in shape: {shapes}")
    # Converted on the host, then put on the device: jnp.asarray would compile a small copy or
    # conversion program of its own (at XLA's full optimisation) for every dtype and shape.
    X, y, Xv, yv = (
        jax.device_put(np.asarray(a, dtype=dtype if a.dtype.kind == "f" else None))
        for a in _stack(lane_data)
    )
    traced = {k: jax.device_put(np.asarray([lane.traced[k] for lane in group.lanes],
                                           dtype=X.dtype))
              for k in group.lanes[0].traced}
    # Each lane's seed (its key is made inside the program: a key array made here would
    # compile a small program of its own for every lane count, ~50 ms each).
    seeds = jax.device_put(np.asarray([cfg.seed + lane.seed for lane in group.lanes],
                                      dtype=np.int64 if jax.config.jax_enable_x64 else np.int32))
    return place_group_inputs(mesh, traced, seeds, X, y, Xv, yv)


# --- programs: the groups that share one compiled call ------------------------------------------


def _program_key(group: Group, problem: GroupProblem) -> tuple[Any, ...] | None:
    """Groups with equal keys share one compiled program (None: a program of its own).

    They are the losses of one solver setting on one dataset with one model: the same lanes
    (the solver entry's hyperparameter grid x the seeds), the same inputs and parameter
    shapes, only the loss differs, so one loop compiled with a ``lax.switch`` on the loss
    index (:func:`_switched`) serves them all. Test problems each have their own objective and
    start: a program each."""
    if isinstance(problem, TestProblem):
        return None
    return (group.data_index, group.solver_index, json.dumps(group.static, sort_keys=True),
            len(group.lanes), repr(problem.model), problem.metric_name, problem.needs_key)


def _programs(groups: list[Group], problems: list[GroupProblem]) -> list[list[int]]:
    """The indices of the groups in each program, programs in the order of their first
    group; a group's loss index in its program is its position in the list."""
    programs: list[list[int]] = []
    where: dict[tuple[Any, ...], int] = {}
    for i, (group, problem) in enumerate(zip(groups, problems, strict=True)):
        key = _program_key(group, problem)
        if key is not None and key in where:
            programs[where[key]].append(i)
            continue
        if key is not None:
            where[key] = len(programs)
        programs.append([i])
    return programs


@dataclasses.dataclass(frozen=True)
class _Traced:
    """A program's call, traced and lowered (not compiled)."""

    lowered: Any  # a jax.stages.Lowered
    lower_time: float


def _trace_program(cfg: ExperimentSpec, groups: list[Group], problems: list[GroupProblem],
                   datasets, mesh) -> _Traced:
    """Trace and lower a program's call: what only the model, loss and solver code can check
    (a loss hyperparameter out of range, an optax option of the wrong type, shapes, dtypes).
    ``groups`` and ``problems`` are the program's, in the order of the loss index.

    Raises:
        ConfigError: naming the config entry at fault -- ``losses[i]`` when the objective
            alone cannot be evaluated, else ``solvers[j]`` -- the group and the error.
    """
    inputs = _group_inputs(cfg, groups[0], datasets, mesh, problems[0])
    t0 = time.perf_counter()
    try:
        with collector_paused():
            lowered = _program_call(cfg, groups[0], problems).lower(*inputs)
    except Exception as err:
        if len(groups) == 1:
            _raise_untraceable(groups[0], problems[0], inputs, err)
        for group, problem in zip(groups, problems, strict=True):  # find the group at fault
            _trace_program(cfg, [group], [problem], datasets, mesh)
        # Each group traces alone but not together: name the solver entry and the first group.
        _raise_untraceable(groups[0], problems[0], inputs, err)
    return _Traced(lowered, time.perf_counter() - t0)


def _raise_untraceable(group: Group, problem: GroupProblem, inputs: tuple[Any, ...],
                       err: Exception) -> None:
    """Raise the ConfigError for a group whose call failed to trace with ``err``."""
    entry = (f"losses[{group.loss_index}]` ({group.loss_label})"
             if _objective_fails(problem, inputs) else
             f"solvers[{group.solver_index}]` ({group.solver_name})")
    raise ConfigError(
        f"`{entry}: group {group.description!r} cannot be traced: "
        f"{type(err).__name__}: {err}"
    ) from err


def _objective_fails(problem: GroupProblem, inputs: tuple[Any, ...]) -> bool:
    """Whether the objective alone fails to trace on one lane's data (shapes only)."""
    if isinstance(problem, TestProblem):
        return False  # the catalogue's objectives trace at their own start points
    _, _, seeds, X, y, _, _ = inputs

    def value(seed, X, y):
        return problem.objective(problem.model.init(jax.random.key(seed), X.shape[1], X.dtype),
                                 X, y)

    try:
        jax.eval_shape(value, seeds[0], X[0], y[0])
    except Exception:
        return True
    return False


@dataclasses.dataclass(frozen=True)
class _Compiled:
    """A program compiled: the compiled call, its compile time and mode, and its id."""

    compiled: Any  # a jax.stages.Compiled
    compile_time: float
    compile_mode: str  # "fast" or "optimized" (run.compile resolved)
    compile_id: str  # the same in the rows of every group of the program
    calls: int  # the program's groups: calls of it


class _AheadOfTime:
    """Compiles the programs in background threads, each as soon as it is traced.

    XLA compilation dominates a CPU run of a config (a solver loop takes 0.5-3 s to compile and
    often less to run) and releases the GIL, so the programs' calls, all traced and lowered
    before anything runs (:func:`_trace_program`, in the calling thread: JAX's thread-local
    configuration applies as usual), are compiled by ``ahead`` threads in the config's order:
    a program starts compiling as soon as it is traced, while the later ones are still being
    traced and then while the groups before it run and write their files. At most
    ``WINDOW`` programs are compiling or compiled and waiting for their turn (bounding the
    executables held); each is kept until its last group has run (:meth:`release`). No
    group runs before every program is traced, so a program beyond the window waits for the
    runs to start: with 8, the last four of optimizers.toml's twelve compiled only after the
    tracing, with a core idle meanwhile. 32 covers every shipped config; the lowered
    programs, all held from the tracing on, are of the executables' size. Results are
    unchanged (the same programs run; :func:`_next_group` lets a group whose program is
    compiled go before one whose program is not); ``compile_time_s`` is then the compile's
    wall time under that overlap. ``ahead=0`` (or several processes, whose compiles should happen
    in the same order) compiles each program just before its first group runs.
    """

    WINDOW = 32

    def __init__(self, cfg, ahead: int):
        self.cfg = cfg
        self.ahead = 0 if jax.process_count() > 1 else ahead
        self.traced: list[tuple[_Traced, str, int]] = []  # per program: (traced, id, calls)
        self.pending: dict[int, Future] = {}  # program index -> Future of (compiled, time, mode)
        self.ready: dict[int, _Compiled] = {}
        self.released: set[int] = set()
        self.pool = (ThreadPoolExecutor(self.ahead, thread_name_prefix="lossopt-compile")
                     if self.ahead > 0 else None)

    def add(self, traced: _Traced, compile_id: str, calls: int) -> None:
        """The next program's traced call; it starts compiling at once if the window allows."""
        self.traced.append((traced, compile_id, calls))
        self._fill()

    def _fill(self) -> None:
        """Start compiling the programs that have not started (nor run), in order, while
        fewer than ``WINDOW`` are compiling or waiting to run (no pool: none)."""
        if self.pool is None:
            return
        for j in range(len(self.traced)):
            if len(self.pending) + len(self.ready) >= self.WINDOW:
                return
            if j not in self.pending and j not in self.ready and j not in self.released:
                self.pending[j] = self._start(j)

    def _start(self, i: int) -> Future:
        lowered = self.traced[i][0].lowered

        def compile_():
            t0 = time.perf_counter()
            compiled, choice = compile_lowered(lowered, self.cfg.run.compile,
                                               self.cfg.run.max_iters)
            return compiled, time.perf_counter() - t0, choice.mode

        if self.pool is not None:
            return self.pool.submit(compile_)
        future = Future()
        try:
            future.set_result(compile_())
        except Exception as error:
            future.set_exception(error)
        return future

    def done(self, i: int) -> bool:
        """Whether program ``i`` is compiled (``get`` would not wait). Always False without a
        pool until ``get`` (the groups then run in the config's order), and for a compile that
        failed (its error is raised in the config's order, as without a pool)."""
        if i in self.ready:
            return True
        future = self.pending.get(i)
        return future is not None and future.done() and future.exception() is None

    def get(self, i: int) -> _Compiled:
        """Program ``i`` compiled (compiled now, without a pool or when it has not started).

        Moving it from pending to ready frees no room in the window: only :meth:`release`
        does, and starts the next programs."""
        if i not in self.ready:
            future = self.pending.pop(i, None) or self._start(i)
            compiled, seconds, mode = future.result()
            _, compile_id, calls = self.traced[i]
            self.ready[i] = _Compiled(compiled, seconds, mode, compile_id, calls)
        return self.ready[i]

    def release(self, i: int) -> None:
        """Program ``i`` has run its last group: its executable can go."""
        self.ready.pop(i, None)
        self.released.add(i)
        self._fill()

    def close(self) -> None:
        if self.pool is not None:  # a compile already running finishes; queued ones are dropped
            self.pool.shutdown(wait=False, cancel_futures=True)


def _next_group(waiting: list[int], program_of: dict[int, tuple[int, int]],
                compiler: _AheadOfTime) -> int:
    """The group to run next: the first waiting one whose program is compiled, else the first
    waiting one (its program is then waited for).

    A group's call depends on its own inputs only, so the order changes no result; it keeps
    the runs going while a later program compiles (real_data.toml: a 1.3 s Newton run on
    digits waited for the L-BFGS program before it in the config's order). The summary and
    the records list the groups in the config's order whatever order they ran in."""
    for position, i in enumerate(waiting):
        if compiler.done(program_of[i][0]):
            return waiting.pop(position)
    return waiting.pop(0)


def _compile_ahead() -> int:
    """How many threads compile programs ahead of the running one: $LOSSOPT_COMPILE_AHEAD,
    default 2 (0: each program compiles just before its first group runs)."""
    value = os.environ.get("LOSSOPT_COMPILE_AHEAD", "2")
    try:
        ahead = int(value)
    except ValueError:
        ahead = -1
    if ahead < 0:
        raise ConfigError(f"LOSSOPT_COMPILE_AHEAD must be a non-negative integer; got {value!r}")
    return ahead


def _run_group(cfg: ExperimentSpec, group: Group, problem: GroupProblem, inputs: tuple[Any, ...],
               out_dir: Path, ready: _Compiled, written: list[str]) -> None:
    """Run one group's call of its compiled program (``inputs``: :func:`_group_inputs`); write
    its traces and records (a record last: it marks the run complete), appending each run id
    to ``written`` once its record is on disk."""
    from lossopt.solvers import Status

    compiled = ready.compiled
    if isinstance(problem, TestProblem):
        n_devices, f_star = 1, float(problem.problem.f_star)
    else:  # the devices the compiled program splits the training examples over
        n_devices, f_star = len(compiled.input_shardings[0][3].device_set), None
    t0 = time.perf_counter()
    result, train_losses = jax.block_until_ready(compiled(*inputs))
    wall = time.perf_counter() - t0
    # One transfer to the host: splitting device arrays lane by lane would dispatch (and the
    # first time compile) an indexing op per field and shape.
    result, train_losses = jax.device_get((result, train_losses))
    n_lanes = len(group.lanes)
    shares = _time_shares(result, n_lanes, _lanes_mapped(cfg, problem))
    for i, lane in enumerate(group.lanes):
        res = result.lane(i)
        status = Status(int(res.status))
        val = res.trace.to_numpy().get("val_metric", np.array([np.nan]))
        finite_val = val[np.isfinite(val)]
        value = float(res.value)
        row = {
            "run_id": lane.run_id,
            "data": group.data_name,
            "loss": group.loss_label,
            "solver": group.solver_name,
            "hyperparameters": dict(lane.hyper),
            "seed": lane.seed,
            "status": status.name,
            "converged": bool(status.converged),
            "iterations": int(res.iterations),
            "final_loss": value,
            "train_loss": float(train_losses[i]),
            "grad_norm": float(res.grad_norm),
            "val_metric_name": problem.metric_name,
            "val_metric": float(finite_val[-1]) if finite_val.size else float("nan"),
            "num_fun_evals": int(res.num_fun_evals),
            "num_grad_evals": int(res.num_grad_evals),
            "wall_time_s": wall * shares[i],
            "compile_time_s": ready.compile_time,
            "compile_mode": ready.compile_mode,
            "compile_id": ready.compile_id,
            "calls_per_compile": ready.calls,
            "lanes_in_call": n_lanes,
            "devices": n_devices,
            "n_params": int(problem.n_params),
            "f_star": f_star,
            "f_minus_f_star": None if f_star is None else value - f_star,
        }
        res.trace.to_csv(out_dir / "traces" / f"{lane.run_id}.csv")
        atomic_write(out_dir / "runs" / f"{lane.run_id}.json",
                     json.dumps({"fingerprint": lane.fingerprint, "row": row}, indent=1))
        written.append(lane.run_id)


def _time_shares(result: Any, n_lanes: int, mapped: bool) -> np.ndarray:
    """Each lane's share of its group call's wall time. Mapped lanes run one after another,
    each as long as its own run: the call's time is split by each lane's objective and
    gradient evaluations (the lanes share the loss and the solver, so an evaluation costs
    each alike). Vmapped lanes run in lockstep until the last one stops: an equal split."""
    work = np.asarray(result.num_fun_evals, dtype=float) + np.asarray(result.num_grad_evals)
    if not mapped or work.sum() <= 0:
        return np.full(n_lanes, 1.0 / n_lanes)
    return work / work.sum()


def _load_record(out_dir: Path, lane: Lane) -> dict[str, Any] | None:
    """The lane's summary row from its record, if one exists with the lane's fingerprint."""
    path = out_dir / "runs" / f"{lane.run_id}.json"
    try:
        record = json.loads(path.read_text())
        return record["row"] if record.get("fingerprint") == lane.fingerprint else None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):  # absent or damaged
        return None


def _csv_cell(value: Any) -> Any:
    """A summary.csv cell: objects as JSON (``{"learning_rate": 0.1}``), None as empty."""
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return "" if value is None else value


def write_summary(out_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``summary.csv`` and ``summary.json`` (atomically) from the run rows.

    ``summary.json`` holds the rows' values as they are (``hyperparameters`` an object,
    ``f_star`` null where unknown); ``summary.csv`` writes objects as JSON text and None as an
    empty cell. ``f_minus_f_star`` is the final value minus the problem's known ``f_star``
    (test problems), else empty.
    """
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, restval="")
    writer.writeheader()
    writer.writerows({k: _csv_cell(v) for k, v in r.items()} for r in rows)
    atomic_write(out_dir / "summary.csv", buf.getvalue())
    atomic_write(out_dir / "summary.json", json.dumps(rows, indent=1))


# What a results folder holds: subfolders, and files lossopt replaces.
_OUTPUT_FOLDERS = ("runs", "traces")
_OUTPUT_FILES = ("config.toml", "summary.csv", "summary.json", "convergence.png", "losses.png",
                 "time_to_tolerance.csv", "performance_profile.png", "data_profile.png")


def check_output_dir(out: Path) -> None:
    """Check, writing nothing, that ``out`` can be made the results folder.

    Its nearest existing folder (``out`` itself, or the parent that ``mkdir -p`` would start
    from) must be a writable folder, and an existing results folder must not have a file where
    a folder goes (``runs``, ``traces``) or a folder where a file goes (``summary.csv``, ...).

    Raises:
        ConfigError: naming ``output.dir`` (or ``--out``), the path and what is in the way.
    """
    where = f"results folder {str(out)!r} (`output.dir`, or --out)"
    probe = out
    try:
        while not (probe.exists() or probe.is_symlink()) and probe.parent != probe:
            probe = probe.parent
        in_the_way = [p for p in (probe, *probe.parents) if p.exists() and not p.is_dir()]
        if in_the_way or not probe.is_dir():
            raise ConfigError(
                f"{where}: {str(in_the_way[0] if in_the_way else probe)!r} is a file, not a "
                "folder; choose another output.dir or move the file"
            )
        if not os.access(probe, os.W_OK | os.X_OK):
            raise ConfigError(
                f"{where}: {str(probe)!r} is not writable (read-only file system or no "
                "permission); choose another output.dir"
            )
        if probe == out:
            for name in _OUTPUT_FOLDERS:
                if (out / name).exists() and not (out / name).is_dir():
                    raise ConfigError(f"{where}: {str(out / name)!r} is a file, not a folder")
            for name in _OUTPUT_FILES:
                if (out / name).is_dir():
                    raise ConfigError(f"{where}: {str(out / name)!r} is a folder, not a file")
    except OSError as err:  # e.g. a parent that may not be listed
        raise ConfigError(f"{where}: cannot be checked: {err.strerror or err}") from None


def _prepare(cfg: ExperimentSpec, base: Path, out: Path | None = None):
    """Everything :func:`run_experiment` checks before it writes anything, writing nothing:
    the data loaded (and its digests), the groups planned, every group's problem built (once)
    and checked, the results folder checked.

    Then :func:`_trace_program` traces each program, in :func:`run_experiment` and
    :func:`check_experiment` alike.

    Returns:
        ``(groups, problems, datasets, mesh)``: ``problems[i]`` is ``groups[i]``'s problem.
    """
    from lossopt import problems as catalogue

    if cfg.run.dtype == "float64" and not jax.config.jax_enable_x64:
        raise ConfigError(
            "`run.dtype` = 'float64' needs JAX's 64-bit mode: call "
            "jax.config.update('jax_enable_x64', True) first (the `lossopt run` command does), "
            "or set run.dtype = 'float32'"
        )
    if out is not None:
        check_output_dir(out)
    seeds = cfg.run.seeds
    several = len(cfg.data) > 1
    datasets, test_problems, digests = {}, {}, {}
    for i, data in enumerate(cfg.data):
        if data.problem is not None:
            p = catalogue.get(data.problem, **data.kwargs)
            n_params = sum(np.size(leaf) for leaf in jax.tree.leaves(p.x0))
            test_problems[i] = TestProblem(p, n_params)
            digests[i, seeds[0]] = _problem_digest(p)
            continue
        for s in seeds:
            try:
                datasets[i, s] = load_dataset(data, s, base)
            except DataError as err:
                message = str(err)
                if several:  # name the table: `data[1].path`
                    message = message.replace("`data.", f"`data[{i}].")
                raise ConfigError(message) from None
            digests[i, s] = datasets[i, s].digest()
    tasks = {data.name: datasets[i, seeds[0]].task for i, data in enumerate(cfg.data)
             if data.problem is None}
    if several and tasks:
        for entry in cfg.losses:
            if not any(_fits(entry.name, task) for task in tasks.values()):
                raise ConfigError(
                    f"loss {entry.name!r} fits none of the datasets ({tasks}); remove it or "
                    "add a dataset of a task it fits"
                )
        groups = plan(cfg, tasks, digests)
    else:
        groups = plan(cfg, digests=digests)
    # Each group's problem, built once; incompatible combinations rejected before tracing.
    built: dict[tuple[Any, ...], Problem] = {}
    problems = [_problem(cfg, g, datasets, test_problems, built) for g in groups]
    mesh = device_mesh(cfg.run.devices)
    for i, data in enumerate(cfg.data):  # sizes of loaded data: batch size, device count
        if data.problem is not None:
            continue
        ds = datasets[i, seeds[0]]
        check_training_size(
            cfg.run, f"data[{i}]" if several else "data",
            ds.X_train.shape[0] + ds.X_val.shape[0], data.validation_fraction,
            None if mesh is None else mesh.size,
            total_key="n_samples" if data.kind in SYNTHETIC else "max_samples",
        )
    return groups, problems, datasets, mesh


def _compile_id(groups: list[Group]) -> str:
    """A program's id in the rows of its runs: a hash of its runs' fingerprints, so that rows
    of one program -- and only those -- share it, across reruns too."""
    blob = " ".join(lane.fingerprint for g in groups for lane in g.lanes)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _problem_digest(problem: Any) -> str:
    """A test problem's identity for fingerprints: its name, start, data and f*."""
    h = hashlib.sha256(f"{problem.name} {problem.f_star!r}".encode())
    for a in (*jax.tree.leaves(problem.x0), *jax.tree.leaves(problem.args)):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype} {a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def run_experiment(
    cfg: ExperimentSpec,
    base: Path | None = None,
    *,
    out_dir: str | Path | None = None,
    force: bool = False,
    progress: Any = None,
) -> ExperimentResult:
    """Run a resolved config (see :func:`lossopt.experiment.load_config`).

    Args:
        cfg: the resolved :class:`~lossopt.experiment.ExperimentSpec`.
        base: folder that relative data paths are resolved against.
        out_dir: results folder (default: ``cfg.output.dir``).
        force: re-run runs that already have a record with the same fingerprint.
        progress: optional callable ``progress(done, total, description)`` called after each
            group (the CLI draws a progress bar with it).

    Before it writes anything it makes every check of :func:`check_experiment` -- the data
    loaded and checked, the plan, every combination, the results folder, and the call of
    every group it will run traced and lowered -- so an invalid config fails with nothing
    written (groups whose runs all have records are not traced again). Then the
    groups run one after the other, in the config's order except that a group whose program
    is compiled goes before one still waiting for its compile, each program compiled once:
    ``$LOSSOPT_COMPILE_AHEAD`` (default 2) background threads compile each program as soon
    as it is traced, while the rest are traced and the groups before it run.

    A run whose record (``runs/<run_id>.json``) holds the same fingerprint -- the same
    config values and the same data content (:meth:`Dataset.digest`) -- is not run again.
    Figures are not drawn here: :func:`lossopt.plotting.plot_results` draws them from the
    files written (``lossopt run`` calls it after the run).

    Returns:
        An :class:`ExperimentResult`. On Ctrl-C the runs completed so far are kept, the
        summary is written from them and ``interrupted`` is True. The summary is built from
        the records on disk, so it has a row for every run whose record was written.

    Raises:
        ConfigError: an invalid data file, an incompatible loss/model/data/solver
            combination, a group whose call cannot be traced, a ``run.batch_size`` larger than
            a training set, a ``run.devices`` count that this process does not have or that
            does not divide a training set, a results folder that cannot be written, an
            invalid ``LOSSOPT_COMPILE_AHEAD`` (all checked before anything is written).
        OSError: a write that fails once runs have started (a full disk).
    """
    ahead = _compile_ahead()
    out = Path(out_dir or cfg.output.dir)
    groups, problems, datasets, mesh = _prepare(cfg, base or Path.cwd(), out)
    # Groups whose every run has a record with the same fingerprint are not compiled again.
    todo, complete = [], []
    for group, problem in zip(groups, problems, strict=True):
        records = None if force else [_load_record(out, lane) for lane in group.lanes]
        if records is not None and all(r is not None for r in records):
            complete.append(group)
        else:
            todo.append((group, problem))
    programs = _programs([g for g, _ in todo], [p for _, p in todo])
    program_of = {i: (k, index) for k, members in enumerate(programs)
                  for index, i in enumerate(members)}
    groups_left = {k: len(members) for k, members in enumerate(programs)}
    compiler = _AheadOfTime(cfg, ahead)
    written: list[str] = []  # run ids whose record this call wrote
    interrupted = False
    try:
        # Trace every program that will run before anything is written. Complete groups are
        # not traced again: their records carry this config's and this data's fingerprint,
        # so their calls traced when they ran (a rerun of a finished config stays quick).
        for members in programs:
            member_groups = [todo[i][0] for i in members]
            traced = _trace_program(cfg, member_groups, [todo[i][1] for i in members],
                                    datasets, mesh)
            compiler.add(traced, _compile_id(member_groups), len(members))
        try:
            for name in _OUTPUT_FOLDERS:
                (out / name).mkdir(parents=True, exist_ok=True)
            atomic_write(out / "config.toml", dump_toml(cfg))
        except OSError as err:
            raise ConfigError(
                f"results folder {str(out)!r} (`output.dir`, or --out) cannot be written: "
                f"{err.strerror or err}"
            ) from None
        done = 0
        for done, group in enumerate(complete, start=1):  # each group reported once, skipped first
            if progress is not None:
                progress(done, len(groups), group.description)
        waiting = list(range(len(todo)))
        while waiting:
            i = _next_group(waiting, program_of, compiler)
            group, problem = todo[i]
            k, index = program_of[i]
            ready = compiler.get(k)
            inputs = _group_inputs(cfg, group, datasets, mesh, problem, index)
            _run_group(cfg, group, problem, inputs, out, ready, written)
            groups_left[k] -= 1
            if groups_left[k] == 0:
                compiler.release(k)
            done += 1
            if progress is not None:
                progress(done, len(groups), group.description)
    except KeyboardInterrupt:
        interrupted = True
        if not (out / "config.toml").is_file():  # interrupted before anything was written
            raise
    finally:
        compiler.close()
    # The summary is what the records say: a row for every run whose record is on disk (an
    # interruption inside a group keeps the records of its lanes written so far).
    rows = [row for g in groups for lane in g.lanes
            if (row := _load_record(out, lane)) is not None]
    write_summary(out, rows)
    if len({r["data"] for r in rows if r.get("f_star") is not None}) > 1:
        write_tolerance_table(out, tolerance_rows(out, rows))
    skipped = sum(len(g.lanes) for g in complete)
    return ExperimentResult(out, rows, len(written), skipped, interrupted)


@dataclasses.dataclass
class GroupCheck:
    """One group of a config checked by :func:`check_experiment`."""

    description: str
    runs: int
    lower_time_s: float  # of the group's program (shared by the program's groups)
    program: int = 0  # the index of the compiled program that runs the group


def check_experiment(cfg: ExperimentSpec, base: Path | None = None, *,
                     out_dir: str | Path | None = None) -> list[GroupCheck]:
    """Check a resolved config without running it (``lossopt run --check``).

    Loads the data, plans the groups, makes every check :func:`run_experiment` makes before it
    writes anything -- the same code -- including the results folder (``out_dir``, default
    ``output.dir``) and the tracing and lowering of every compiled program, which finds
    what only the model, loss and solver code can find (a loss hyperparameter out of range,
    an optax option of the wrong type, shapes, dtypes, a loss that does not fit the model's
    output); compiles and runs nothing, and writes no file. A long config is checked in
    seconds rather than found to fail in its last group.

    Returns:
        One :class:`GroupCheck` per group, in run order.

    Raises:
        ConfigError: everything :func:`run_experiment` rejects up front; a group whose call
            cannot be traced is named with the config entry at fault and the error.

    Example:
        >>> from lossopt.experiment import check_experiment, load_config
        >>> cfg, base = load_config(None, ["run.dtype='float32'"], quick=True)
        >>> checks = check_experiment(cfg, base)
        >>> len(checks), sum(c.runs for c in checks), len({c.program for c in checks})
        (9, 9, 3)
    """
    out = Path(out_dir or cfg.output.dir)
    groups, problems, datasets, mesh = _prepare(cfg, base or Path.cwd(), out)
    checks: list[GroupCheck | None] = [None] * len(groups)
    for k, members in enumerate(_programs(groups, problems)):
        traced = _trace_program(cfg, [groups[i] for i in members],
                                [problems[i] for i in members], datasets, mesh)
        for i in members:
            checks[i] = GroupCheck(groups[i].description, len(groups[i].lanes),
                                   traced.lower_time, k)
    return [c for c in checks if c is not None]
