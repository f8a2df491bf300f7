"""Matplotlib figures: convergence traces and loss shapes.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot, no global backend
change), so they render headless and never open a window.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_convergence", "plot_loss_shapes", "plot_results", "read_trace"]


def _figure(n_panels: int, *, width: float = 5.0, height: float = 3.8):
    from matplotlib.figure import Figure

    cols = min(n_panels, 3)
    rows = -(-n_panels // cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _save(fig, path: Path) -> Path:
    from lossopt._io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=110)
    return path


def read_trace(path: str | Path) -> dict[str, np.ndarray]:
    """Read a ``traces/<run_id>.csv`` file into columns of floats."""
    with Path(path).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return {}
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


def plot_convergence(
    rows: Sequence[dict[str, Any]],
    traces: dict[str, dict[str, np.ndarray]],
    path: str | Path,
    *,
    title: str = "",
) -> Path:
    """Training loss vs iteration (log scale): one panel per loss, one line per run.

    Lines share a colour per solver configuration (solver + hyperparameters); seeds of the same
    configuration are drawn in the same colour. A run that stopped on NONFINITE ends with an x.
    Traces of minibatch or dropout runs draw their ``train_loss`` column (the full training
    objective in evaluation mode) instead of the noisy minibatch ``loss``.
    """
    panel = (lambda r: f"{r['data']} | {r['loss']}") if len({r.get("data") for r in rows}) > 1 \
        else (lambda r: r["loss"])
    losses = list(dict.fromkeys(panel(r) for r in rows))
    fig, axes = _figure(len(losses))
    configs = list(dict.fromkeys(f"{r['solver']} {_short(r['hyperparameters'])}" for r in rows))
    colours = {c: f"C{i % 10}" for i, c in enumerate(configs)}
    for ax, loss in zip(axes, losses, strict=True):
        labelled = set()
        for r in (r for r in rows if panel(r) == loss):
            tr = traces.get(r["run_id"])
            if not tr or "loss" not in tr:
                continue
            config = f"{r['solver']} {_short(r['hyperparameters'])}"
            it, values = tr["iteration"], tr[_objective_column(tr)]
            ok = np.isfinite(values)
            label = None if config in labelled else config
            labelled.add(config)
            ax.plot(it[ok], values[ok], color=colours[config], lw=1.2, alpha=0.85, label=label)
            if r["status"] == "NONFINITE" and ok.any():
                ax.plot(it[ok][-1], values[ok][-1], "x", color=colours[config], ms=8)
        positive = [v for r in rows if panel(r) == loss and r["run_id"] in traces
                    for v in traces[r["run_id"]].get(_objective_column(traces[r["run_id"]]), [])
                    if np.isfinite(v)]
        if positive and min(positive) > 0:
            ax.set_yscale("log")
        ax.set_title(loss)
        ax.set_xlabel("iteration")
        ax.set_ylabel("training objective")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, Path(path))


def _objective_column(trace: dict[str, np.ndarray]) -> str:
    return "train_loss" if "train_loss" in trace else "loss"


def _short(hyper: Any) -> str:
    """A record's hyperparameters (an object; records written before: its JSON text)."""
    if isinstance(hyper, str):
        try:
            hyper = json.loads(hyper)
        except ValueError:
            return hyper
    return " ".join(f"{k}={v}" for k, v in hyper.items())


def plot_loss_shapes(loss_entries: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """The shapes of the losses used, as in the seed document's figures.

    Regression losses are drawn against the residual ``prediction - target``; binary
    classification losses against the logit (or score) for a positive example; multiclass
    losses against the true class's logit with the other logits at 0.
    """
    import jax.numpy as jnp

    from lossopt import losses
    from lossopt.experiment._problem import _CLASSIFICATION

    groups: dict[str, list[tuple[str, Any]]] = {}
    for entry in loss_entries:
        name = entry["name"]
        hyper = {k: v for k, v in entry.items() if k != "name" and not isinstance(v, list)}
        label = name + "".join(f" {k}={v}" for k, v in hyper.items())
        fn = losses.get(name, **hyper)
        info = losses.info(name)
        if name in _CLASSIFICATION:
            tasks, outputs = _CLASSIFICATION[name][:2]
            kind = "counts" if "counts" in tasks else (
                "binary" if outputs == "scalar" else "multiclass")
        elif info.task == "regression":
            kind = "regression"
        else:
            continue
        groups.setdefault(kind, []).append((label, name, fn))
    if not groups:
        groups = {"regression": [("mse", "mse", losses.mse)]}
    fig, axes = _figure(len(groups))
    for ax, (kind, items) in zip(axes, groups.items(), strict=True):
        x, xlabel = _SHAPE_AXES[kind]
        x = jnp.asarray(x)
        for label, name, fn in items:
            inputs, targets = _shape_inputs(kind, name, x)
            ax.plot(np.asarray(x), np.asarray(fn(inputs, targets, reduction="none")), label=label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("loss")
        ax.set_title(f"{kind} losses")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, Path(path))


# kind -> (x grid, axis label) of the loss-shape panels
_SHAPE_AXES = {
    "regression": (np.linspace(-3.0, 3.0, 301), "residual (prediction - target)"),
    "binary": (np.linspace(-4.0, 4.0, 301), "logit / score of a positive example"),
    "counts": (np.linspace(-2.0, 3.0, 301), "log-rate (count = 3)"),
    "multiclass": (np.linspace(-4.0, 4.0, 301), "true-class logit (3 classes, others 0)"),
}


def _shape_inputs(kind: str, name: str, x):
    """The loss's (first argument, targets) along the panel's x axis, as `lossopt run` feeds it."""
    import jax.numpy as jnp

    from lossopt.experiment._problem import _CLASSIFICATION, _TRANSFORMS, _labels

    if kind == "regression":
        return x, jnp.zeros_like(x)
    if kind == "counts":
        return x, jnp.full_like(x, 3.0)
    _, _, transform, label_kind = _CLASSIFICATION[name]
    if kind == "binary":
        labels = jnp.ones(x.shape, dtype=jnp.int32)
        return _TRANSFORMS[transform](x), _labels(labels, label_kind, 2)
    logits = jnp.stack([x, jnp.zeros_like(x), jnp.zeros_like(x)], axis=-1)
    labels = jnp.zeros(x.shape, dtype=jnp.int32)
    return _TRANSFORMS[transform](logits), _labels(labels, label_kind, 3)


def plot_results(out_dir: str | Path, cfg: Any = None, *, figures: bool = True) -> list[Path]:
    """(Re)draw the figures of a results folder from its files; return the paths written.

    Reads ``summary.json`` and ``traces/*.csv``, and ``config.toml`` when ``cfg`` (an
    :class:`~lossopt.experiment.ExperimentSpec` or its dict) is not given. Draws
    ``convergence.png`` and ``losses.png`` (when ``figures``) and, for a results folder with
    ``time_to_tolerance.csv`` (several test problems), the performance and data profiles.

    Raises:
        FileNotFoundError: ``out_dir`` has no ``summary.json``.
    """
    out = Path(out_dir)
    summary = out / "summary.json"
    if not summary.is_file():
        raise FileNotFoundError(f"no summary.json in {str(out)!r}: is it a lossopt results folder?")
    rows = json.loads(summary.read_text())
    if cfg is None:
        import tomllib

        cfg = tomllib.loads((out / "config.toml").read_text())
    elif hasattr(cfg, "to_dict"):
        cfg = cfg.to_dict()
    if not figures:
        return []
    traces = {}
    for r in rows:
        path = out / "traces" / f"{r['run_id']}.csv"
        if path.is_file():
            traces[r["run_id"]] = read_trace(path)
    written = [plot_convergence(rows, traces, out / "convergence.png", title=cfg.get("name", ""))]
    if cfg.get("losses"):
        written.append(plot_loss_shapes(cfg["losses"], out / "losses.png"))
    if (out / "time_to_tolerance.csv").is_file():
        written += plot_profiles(out / "time_to_tolerance.csv", out)
    return written


PROFILE_EPS = 1e-4
PROFILE_MEASURE = "fun_evals"


def plot_profiles(table_path: str | Path, out_dir: str | Path) -> list[Path]:
    """``performance_profile.png`` and ``data_profile.png`` from ``time_to_tolerance.csv``.

    The cost of a (solver configuration, problem) pair is the number of objective evaluations
    it needed to reach ``f - f* <= 1e-4 (|f*| + 1)``; unsolved pairs never count. Drawn by
    :func:`lossopt.compare.plot_performance_profile` (Dolan & More 2002) and
    :func:`lossopt.compare.plot_data_profile` (More & Wild 2009; budgets in units of
    ``n + 1`` evaluations).
    """
    from lossopt.compare import plot_data_profile, plot_performance_profile
    from lossopt.experiment._tables import profile_costs, read_tolerance_table

    table = read_tolerance_table(table_path)
    costs = profile_costs(table, PROFILE_EPS, PROFILE_MEASURE)
    if len({p for _, p in costs}) < 2:
        return []
    dims = {r["problem"]: r["n"] for r in table}
    what = f"objective evaluations to f - f* <= {PROFILE_EPS:g} (|f*| + 1)"
    out = Path(out_dir)
    perf = plot_performance_profile(costs, title=f"performance profile: {what}")
    data = plot_data_profile(costs, dims, title=f"data profile: {what}")
    return [_save(perf, out / "performance_profile.png"), _save(data, out / "data_profile.png")]
