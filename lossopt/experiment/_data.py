"""Datasets for experiments: synthetic generators, CSV/NPZ files and scikit-learn's shipped data.

Every loader returns a :class:`Dataset` already split into training and validation parts
(shuffled with the run's seed). Synthetic data is drawn with numpy's ``default_rng(seed)`` so a
config and a seed reproduce it exactly.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from lossopt.experiment._schema import DataSpec

__all__ = ["SEED_TRUE_W", "TASKS", "Dataset", "load_dataset", "nonlinear_target", "split_sizes"]

# The seed document's experiment: y = X @ true_w + 0.5 * noise, X of shape (100, 5).
SEED_TRUE_W = np.array([1.5, -2.0, 0.5, 3.0, -1.0])

TASKS = ("regression", "binary", "multiclass", "counts")
SYNTHETIC = ("linear_regression", "nonlinear_regression", "logistic", "multiclass", "poisson")
SKLEARN = {
    "sklearn:diabetes": ("load_diabetes", "regression"),
    "sklearn:breast_cancer": ("load_breast_cancer", "binary"),
    "sklearn:iris": ("load_iris", "multiclass"),
    "sklearn:wine": ("load_wine", "multiclass"),
    "sklearn:digits": ("load_digits", "multiclass"),
}
FILES = ("csv", "npz")
KINDS = (*SYNTHETIC, *FILES, *SKLEARN)


class DataError(ValueError):
    """A dataset that cannot be built from its config (the message names the key)."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Training and validation arrays plus what the runner needs to know about them.

    Attributes:
        X_train, y_train, X_val, y_val: float64 features; targets are float64 for regression
            and counts, int64 class ids for binary (0/1) and multiclass tasks.
        task: "regression", "binary", "multiclass" or "counts".
        n_classes: number of classes (2 for binary, 0 for regression and counts).
        true_params: the generating parameters of synthetic data, when known.
        description: one line for reports.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    task: str
    n_classes: int = 0
    true_params: np.ndarray | None = None
    description: str = ""

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    def digest(self) -> str:
        """A hash of the arrays' content (dtype, shape and bytes) and the task: what a run on
        this data computes depends on nothing else, so results are keyed on it (a changed
        data file gets new runs; a moved one keeps its results).

        Example:
            >>> a = np.zeros((2, 1))
            >>> ds = Dataset(a, np.zeros(2), a[:0], np.zeros(0), "regression")
            >>> ds.digest() == Dataset(a, np.ones(2), a[:0], np.zeros(0), "regression").digest()
            False
        """
        h = hashlib.sha256(f"{self.task} {self.n_classes}".encode())
        for a in (self.X_train, self.y_train, self.X_val, self.y_val):
            a = np.ascontiguousarray(a)
            h.update(f"|{a.dtype.str}{a.shape}|".encode())
            h.update(a.tobytes())
        return h.hexdigest()[:16]


def split_sizes(n: int, fraction: float) -> tuple[int, int]:
    """``(n_train, n_val)`` of ``n`` examples split with ``validation_fraction = fraction``.

    ``n_val = round(fraction * n)``, at least 1 when ``fraction > 0``.

    Example:
        >>> split_sizes(100, 0.2), split_sizes(3, 0.1), split_sizes(5, 0.0)
        ((80, 20), (2, 1), (5, 0))
    """
    n_val = round(fraction * n)
    if fraction > 0 and n_val == 0:
        n_val = 1
    return n - n_val, n_val


def _split(X, y, fraction: float, rng: np.random.Generator):
    n = X.shape[0]
    order = rng.permutation(n)
    n_train, n_val = split_sizes(n, fraction)
    if n_train < 1:
        raise DataError(
            f"`data.validation_fraction` = {fraction} leaves no training example out of {n}"
        )
    val, train = order[:n_val], order[n_val:]
    return X[train], y[train], X[val], y[val]


def _standardize(X_train, X_val):
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # constant columns stay as they are (centred)
    return (X_train - mean) / std, (X_val - mean) / std


def nonlinear_target(X: np.ndarray) -> np.ndarray:
    """The noise-free target of ``kind = "nonlinear_regression"``:
    ``f(x) = sum_j sin(2 x_j) + sum_j x_j x_((j+1) mod d)``, ``j = 0, ..., d-1``.

    A sine of every feature plus the products of cyclically adjacent features (``d = 1``:
    ``sin(2 x) + x^2``). For standard normal features the best affine fit explains about 5% of
    its variance when ``d >= 3`` (the products are uncorrelated with every feature, and a line
    captures 15% of the variance of ``sin(2 x_j)``: ``E[x sin 2x]^2 / Var(sin 2x) = 4 e^-4 /
    ((1 - e^-8) / 2)``), so a linear model stays near the target's variance while a small MLP
    fits it.

    Example:
        >>> import numpy as np
        >>> x = np.array([[0.0, 1.0, 2.0]])
        >>> y = nonlinear_target(x)  # sin 0 + sin 2 + sin 4 + (0 * 1 + 1 * 2 + 2 * 0)
        >>> round(float(y[0]), 4)
        2.1525
    """
    X = np.asarray(X, dtype=np.float64)
    return np.sin(2.0 * X).sum(axis=1) + (X * np.roll(X, -1, axis=1)).sum(axis=1)


def _add_outliers(y, fraction: float, noise: float, rng: np.random.Generator) -> None:
    n_out = round(fraction * y.shape[0])
    if n_out:
        # Heavy-tailed corruption: a few targets get large Cauchy-distributed offsets.
        idx = rng.choice(y.shape[0], n_out, replace=False)
        y[idx] += 10.0 * (np.std(y) + noise) * rng.standard_cauchy(n_out)


def _synthetic(cfg: DataSpec, rng: np.random.Generator):
    kind, n, d = cfg.kind, cfg.n_samples, cfg.n_features
    noise = cfg.noise
    X = rng.standard_normal((n, d))
    if kind == "linear_regression":
        w = SEED_TRUE_W.copy() if d == SEED_TRUE_W.size else rng.normal(0.0, 2.0, d)
        y = X @ w + noise * rng.standard_normal(n)
        _add_outliers(y, cfg.outlier_fraction, noise, rng)
        return X, y, "regression", 0, w
    if kind == "nonlinear_regression":
        y = nonlinear_target(X) + noise * rng.standard_normal(n)
        _add_outliers(y, cfg.outlier_fraction, noise, rng)
        return X, y, "regression", 0, None
    if kind == "logistic":
        w = rng.normal(0.0, 2.0, d) / np.sqrt(d)
        p_pos = cfg.positive_fraction
        # An intercept that makes roughly `positive_fraction` of the examples positive.
        b = np.log(p_pos / (1.0 - p_pos)) * np.sqrt(1.0 + np.pi * (w @ w) / 8.0)
        logits = X @ w + b
        logits += noise * rng.standard_normal(n)
        y = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-logits))).astype(np.int64)
        return X, y, "binary", 2, np.append(w, b)
    if kind == "multiclass":
        k = cfg.n_classes
        W = rng.normal(0.0, 2.0, (d, k)) / np.sqrt(d)
        scores = X @ W + noise * rng.gumbel(size=(n, k))
        return X, scores.argmax(axis=1).astype(np.int64), "multiclass", k, W
    # poisson: log-rate linear in x
    w = rng.normal(0.0, 0.5, d) / np.sqrt(d)
    rate = np.exp(X @ w + 1.0)
    return X, rng.poisson(rate).astype(np.float64), "counts", 0, np.append(w, 1.0)


def _shown(names: list[str], limit: int = 12) -> str:
    """Column or key names for a message: at most ``limit``, each cut to 40 characters (the
    file may be anything ``data.path`` points at; its content is not echoed beyond this)."""
    cut = [n if len(n) <= 40 else n[:37] + "..." for n in names[:limit]]
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return "[" + ", ".join(repr(n) for n in cut) + more + "]"


def _load_csv(cfg: DataSpec, base: Path):
    path = _resolve(cfg, base)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)  # (line number, cells); blank lines hold no example
            rows = [(reader.line_num, row) for row in reader if row]
    except UnicodeDecodeError as err:
        raise DataError(
            f"`data.path` {path.name}: not a UTF-8 text file (byte {err.start} cannot be "
            "decoded); save the CSV as UTF-8"
        ) from None
    except (OSError, csv.Error) as err:
        raise DataError(f"`data.path` {path.name}: cannot be read as CSV ({err})") from None
    if len(rows) < 2:
        raise DataError(f"`data.path` {path.name} must hold a header row and data rows")
    header, body = rows[0][1], rows[1:]
    doubled = sorted({h for h in header if header.count(h) > 1})
    if doubled:
        raise DataError(f"`data.path` {path.name}: the header names {_shown(doubled)} twice")
    target = cfg.target
    if target not in header:
        raise DataError(
            f"`data.target` must name a column of {path.name}: {_shown(header)}; got {target!r}"
        )
    features = list(cfg.features) or [h for h in header if h != target]
    unknown = [f for f in features if f not in header]
    if unknown:
        raise DataError(
            f"`data.features` names unknown columns {_shown(unknown)}; columns: {_shown(header)}"
        )
    cols = {h: i for i, h in enumerate(header)}
    used = [cols[f] for f in features] + [cols[target]]
    table = np.empty((len(body), len(used)), np.float64)
    for r, (line, row) in enumerate(body):
        if len(row) != len(header):
            raise DataError(
                f"`data.path` {path.name}: line {line} has {len(row)} cells; the header has "
                f"{len(header)}"
            )
        for c, j in enumerate(used):
            try:
                table[r, c] = float(row[j])
            except ValueError:
                raise DataError(
                    f"`data.path` {path.name}: line {line}, column {header[j]!r} is not a number"
                ) from None
    _check_finite(path.name, table, lambda r, c: f"line {body[r][0]}, column {header[used[c]]!r}")
    return table[:, :-1], table[:, -1]


def _check_finite(file: str, array: np.ndarray, where: Callable[..., str]) -> None:
    """Reject NaN and infinite entries, naming the first one (``where(*index)``)."""
    bad = np.argwhere(~np.isfinite(array))
    if bad.size:
        raise DataError(
            f"`data.path` {file}: {where(*bad[0])} is {array[tuple(bad[0])]}; every value must be "
            f"finite ({len(bad)} {'is' if len(bad) == 1 else 'are'} not): remove or impute "
            "those entries"
        )


def _numeric(file: str, key: str, array: np.ndarray) -> np.ndarray:
    if np.iscomplexobj(array):
        raise DataError(
            f"`data.{key}`: {file} holds complex values ({array.dtype}); lossopt needs real "
            "numbers (store the real and imaginary parts as separate features)"
        )
    if array.dtype.kind not in "biuf":
        raise DataError(f"`data.{key}`: {file} holds {array.dtype} values, not numbers")
    return array


def _load_npz(cfg: DataSpec, base: Path):
    path = _resolve(cfg, base)
    try:
        with np.load(path, allow_pickle=False) as z:
            for key in ("x_key", "y_key"):
                name = getattr(cfg, key)
                if name not in z:
                    raise DataError(
                        f"`data.{key}` = {name!r} is not in {path.name}: {_shown(list(z))}"
                    )
            X = _numeric(path.name, "x_key", z[cfg.x_key])
            y = _numeric(path.name, "y_key", z[cfg.y_key])
    except DataError:
        raise
    except Exception as err:  # np.load: BadZipFile, EOFError, ValueError (pickled objects), ...
        raise DataError(
            f"`data.path` {path.name}: cannot be read as a numpy .npz archive "
            f"({type(err).__name__}); save it with numpy.savez"
        ) from None
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise DataError(
            f"`data.path` {path.name}: expected X of shape (n, d) and y of shape (n,); got "
            f"{X.shape} and {y.shape}"
        )
    X = X.astype(np.float64)
    _check_finite(path.name, X, lambda r, c: f"{cfg.x_key}[{r}, {c}]")
    _check_finite(path.name, y.astype(np.float64), lambda r: f"{cfg.y_key}[{r}]")
    return X, y


def _resolve(cfg: DataSpec, base: Path) -> Path:
    if not cfg.path:
        raise DataError(f"`data.path` is required for data.kind = {cfg.kind!r}")
    path = Path(cfg.path)
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise DataError(f"`data.path`: no such file {str(path)!r}")
    return path


def _load_sklearn(kind: str):
    """``(X, y, task)`` of a scikit-learn toy dataset, as its ``load_*()`` loader returns them.

    Read straight from the CSV files scikit-learn ships (:func:`_read_sklearn_files`), without
    importing scikit-learn: ``import sklearn.datasets`` takes 1-1.7 s here, most of a
    ``--quick`` run's set-up, and reading the files 0.05 s. Falls back to the loader when
    the files are not where that scikit-learn keeps them or not in the expected layout
    (tests/test_experiment_data.py checks both paths give the same arrays)."""
    loader, task = SKLEARN[kind]
    read = _read_sklearn_files(kind)
    if read is not None:
        return (*read, task)
    try:
        import sklearn.datasets as skd
    except ImportError:  # pragma: no cover - depends on the environment
        raise DataError(
            f"`data.kind` = {kind!r} needs scikit-learn: pip install 'lossopt[test]'"
        ) from None
    bunch = getattr(skd, loader)()
    return np.asarray(bunch.data, np.float64), np.asarray(bunch.target), task


def _read_sklearn_files(kind: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(X, y)`` from scikit-learn's data files, or None where they cannot be read as
    expected (then :func:`_load_sklearn` imports scikit-learn's loader).

    The files: ``breast_cancer.csv``, ``iris.csv`` and ``wine_data.csv`` have a header row
    ``n_samples,n_features,class names...`` and the class id last on every row;
    ``digits.csv.gz`` has 64 pixel values and the class id per row; diabetes is
    ``diabetes_data_raw.csv.gz`` (space separated) with ``diabetes_target.csv.gz``, its
    columns centred and scaled to unit norm as ``load_diabetes()`` (``scaled=True``) does.
    """
    import importlib.util

    try:
        spec = importlib.util.find_spec("sklearn")  # finds the package; does not import it
        if spec is None or not spec.submodule_search_locations:
            return None
        folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
        if kind == "sklearn:diabetes":
            X = np.loadtxt(folder / "diabetes_data_raw.csv.gz")
            y = np.loadtxt(folder / "diabetes_target.csv.gz")
            X = (X - X.mean(axis=0)) / X.std(axis=0)
            X /= X.shape[0] ** 0.5
            shape = (442, 10)
        elif kind == "sklearn:digits":
            table = np.loadtxt(folder / "digits.csv.gz", delimiter=",")
            X, y = table[:, :-1], table[:, -1].astype(np.int64)
            shape = (1797, 64)
        else:
            name = {"sklearn:breast_cancer": "breast_cancer.csv", "sklearn:iris": "iris.csv",
                    "sklearn:wine": "wine_data.csv"}[kind]
            with (folder / name).open() as fh:
                n_samples, n_features = (int(v) for v in fh.readline().split(",")[:2])
                table = np.loadtxt(fh, delimiter=",")
            X, y = table[:, :n_features], table[:, n_features].astype(np.int64)
            shape = (n_samples, n_features)
    except (OSError, ValueError, IndexError):
        return None
    if X.shape != shape or y.shape != (shape[0],) or not np.all(np.isfinite(X)):
        return None
    return X, y


def _as_task(y: np.ndarray, task: str) -> tuple[np.ndarray, int]:
    if task in ("regression", "counts"):
        return y.astype(np.float64), 0
    classes = np.unique(y)
    if not np.allclose(classes, np.round(classes)):
        raise DataError(f"`data.task` = {task!r} needs integer class labels; got {classes[:5]}...")
    ids = np.searchsorted(classes, y).astype(np.int64)
    k = classes.size
    if task == "binary" and k != 2:
        raise DataError(f"`data.task` = 'binary' needs exactly 2 classes; found {k}")
    return ids, k


def load_dataset(cfg: Any, seed: int, base: Path | None = None) -> Dataset:
    """Build the dataset described by the ``[data]`` table ``cfg`` for ``seed``.

    ``cfg`` is a :class:`~lossopt.experiment.DataSpec` or a mapping of its fields (the keys
    left out take the spec's defaults).

    Synthetic kinds draw fresh data per seed; file and scikit-learn kinds load the same data
    and only the train/validation split (and the ``max_samples`` subset, when set) depends on
    the seed. Features of file and
    scikit-learn data are standardised with the training statistics when
    ``standardize = true`` (the default for them).

    Raises:
        DataError: a missing file, unknown column, bad shape or label set; the message names
            the config key.

    Example:
        >>> cfg = {"kind": "linear_regression", "n_samples": 100, "n_features": 5, "noise": 0.5,
        ...        "outlier_fraction": 0.0, "validation_fraction": 0.2}
        >>> ds = load_dataset(cfg, seed=0)
        >>> ds.X_train.shape, ds.X_val.shape, ds.task
        ((80, 5), (20, 5), 'regression')
    """
    from lossopt.experiment._schema import DataSpec, SchemaError, convert_table

    if not isinstance(cfg, DataSpec):
        try:
            cfg = convert_table(dict(cfg), DataSpec, "data")
        except SchemaError as err:
            raise DataError(str(err)) from None
    base = base or Path.cwd()
    rng = np.random.default_rng(seed)
    kind = cfg.kind
    true_params = None
    if kind in SYNTHETIC:
        X, y, task, k, true_params = _synthetic(cfg, rng)
        standardize = bool(cfg.standardize or False)
    else:
        if kind == "csv":
            X, y = _load_csv(cfg, base)
            task = cfg.task or "regression"
        elif kind == "npz":
            X, y = _load_npz(cfg, base)
            task = cfg.task or "regression"
        elif kind in SKLEARN:
            X, y, task = _load_sklearn(kind)
        else:
            raise DataError(f"`data.kind` must be one of {list(KINDS)}; got {kind!r}")
        if task not in TASKS:
            raise DataError(f"`data.task` must be one of {list(TASKS)}; got {task!r}")
        y, k = _as_task(y, task)
        if 0 < cfg.max_samples < X.shape[0]:
            keep = np.sort(rng.choice(X.shape[0], cfg.max_samples, replace=False))
            X, y = X[keep], y[keep]
        standardize = cfg.standardize
        standardize = True if standardize is None else bool(standardize)
    X_train, y_train, X_val, y_val = _split(X, y, cfg.validation_fraction, rng)
    if standardize:
        X_train, X_val = _standardize(X_train, X_val)
    return Dataset(
        X_train=X_train,
        y_train=y_train,
        X_val=X_val,
        y_val=y_val,
        task=task,
        n_classes=k,
        true_params=true_params,
        description=f"{kind}: {X.shape[0]} examples x {X.shape[1]} features ({task})",
    )


