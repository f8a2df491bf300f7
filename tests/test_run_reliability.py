"""`lossopt run` reliability: errors before anything is written, and never a stale result.

One section per defect class found by fuzzing; each has a property-based test (hypothesis,
derandomized, few examples) where the class is a property of many inputs. Everything runs
in-process through ``lossopt.cli.main`` or the experiment API; configs are tiny (few examples,
few iterations, one seed, one or two compiled groups).
"""

from __future__ import annotations

import json
import os
import re
import stat
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lossopt
from lossopt._io import atomic_write
from lossopt.cli import main
from lossopt.experiment import ConfigError, load_config, resolve_config, run_experiment

ROOT = Path(__file__).resolve().parents[1]
# The shipped configs with data and losses to mutate (configs/mgh.toml has test problems only).
CONFIGS = sorted(c for c in (ROOT / "configs").glob("*.toml") if "data" in tomllib.loads(
    c.read_text()))
FEW = settings(derandomize=True, deadline=None, max_examples=8, database=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture,
                                      HealthCheck.too_slow])

TINY = """
name = "tiny"
[data]
kind = "linear_regression"
n_samples = 20
n_features = 2
[[losses]]
name = "mse"
[[solvers]]
name = "gradient_descent"
learning_rate = 0.1
[run]
max_iters = 5
seeds = [0]
[output]
plots = false
"""


def _toml(value) -> str:
    """A TOML value for --set (JSON strings, numbers and arrays are TOML too)."""
    return json.dumps(value, ensure_ascii=False)


def _run(args: list[str], capsys) -> tuple[int, str]:
    """`lossopt run ARGS` in-process: (exit status, stderr with line wrapping undone)."""
    capsys.readouterr()
    rc = main(["run", *args, "--no-compile-cache"])
    err = capsys.readouterr().err
    return rc, " ".join(err.split())


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _tiny(tmp: Path, extra: str = "") -> Path:
    path = tmp / "tiny.toml"
    path.write_text(TINY + extra)
    return path


# --- 1. every check before the first write: configs x mutations -------------------------------

def _data_prefix(config: Path) -> str:
    return "data.0." if isinstance(tomllib.loads(config.read_text())["data"], list) else "data."


def _first_task(config: Path) -> str:
    data = tomllib.loads(config.read_text())["data"]
    kind = (data[0] if isinstance(data, list) else data)["kind"]
    return "regression" if kind in ("linear_regression", "nonlinear_regression",
                                    "sklearn:diabetes") else "binary"


def _trace_mutations(config: Path):
    """Values only the loss or solver code rejects (at trace time), in the first entry: its
    group is the first traced. Each is (config, --set overrides, key regex, quick)."""
    huber = st.floats(max_value=0.0, allow_nan=False).map(
        lambda d: ([f'losses.0={{name="huber", delta={_toml(d)}}}'], r"`losses\[0\]`.*delta"))
    quantile = (st.floats(min_value=1.0, max_value=1e6) | st.floats(-1e6, 0.0)).map(
        lambda t: ([f'losses.0={{name="quantile", tau={_toml(t)}}}'], r"`losses\[0\]`.*tau"))
    focal = st.floats(max_value=-1e-9, min_value=-1e6).map(
        lambda g: ([f'losses.0={{name="sigmoid_focal", gamma={_toml(g)}}}'],
                   r"`losses\[0\]`.*gamma"))
    adam = st.text(alphabet="xyz :[]/", min_size=1, max_size=6).map(
        lambda b: ([f'solvers.0={{name="optax:adam", learning_rate=0.1, b1={_toml(b)}}}'],
                   r"`solvers\[0\]` \(optax:adam\).*b1"))
    family = (huber, quantile) if _first_task(config) == "regression" else (focal,)
    return st.one_of(*family, adam).map(lambda m: (config, *m, True))


def _schema_mutations(config: Path):
    """Values the config schema rejects (no --quick: it would shrink the sizes)."""
    data = _data_prefix(config)
    return st.one_of(
        st.just((['losses.0={name="huber", delta=[]}'], r"`losses\[0\].delta` is an empty list")),
        st.just((['solvers.0={name="gradient_descent", learning_rate=[]}'],
                 r"`solvers\[0\].learning_rate` is an empty list")),
        st.floats(max_value=0.0, allow_nan=False).map(
            lambda m: ([f"run.newton_memory_mb={_toml(m)}"],
                       r"`run.newton_memory_mb` must be > 0")),
        st.integers(10**7 + 1, 10**15).map(
            lambda n: ([f'{data}kind="linear_regression"', f"{data}n_samples={n}"],
                       r"`data(\[0\])?.n_samples` must be <= 10000000")),
        st.integers(10**7 + 1, 10**15).map(
            lambda n: ([f"run.max_iters={n}"], r"`run.max_iters` must be <= 10000000")),
        st.just((["run.seeds=[]"], r"`run.seeds` must be a non-empty list")),
        st.just((["run.seeds=[1, 1]"], r"`run.seeds` lists a value twice")),
        st.sampled_from(["../../elsewhere", "a/b", ".hidden", "", "x" * 101]).map(
            lambda n: ([f"name={_toml(n)}"], r"`name` must be a single folder name")),
    ).map(lambda m: (config, *m, False))


MUTATED = st.sampled_from(CONFIGS).flatmap(
    lambda c: st.one_of(_trace_mutations(c), _schema_mutations(c)))


@FEW
@given(case=MUTATED)
def test_a_bad_value_in_any_shipped_config_exits_2_naming_the_key_and_writes_nothing(
        case, capsys, tmp_path_factory):
    config, overrides, key, quick = case
    out = tmp_path_factory.mktemp("out") / "results"
    args = [str(config), "--out", str(out), *(["--quick"] if quick else [])]
    for o in overrides:
        args += ["--set", o]
    rc, err = _run(args, capsys)
    assert rc == 2, err
    assert "config error:" in err and "Traceback" not in err, err
    assert re.search(key, err), err
    assert not out.exists()  # nothing written: no folder, no config.toml, no record


def test_a_loss_error_in_a_later_group_comes_before_the_first_group_runs(tmp_path, capsys):
    # The fuzzed defect: huber delta = -1 after a valid loss; the first group used to run and
    # write its files before the second failed with a traceback.
    config = _tiny(tmp_path, '[[losses]]\nname = "huber"\ndelta = -1\n')
    out = tmp_path / "out"
    rc, err = _run([str(config), "--out", str(out)], capsys)
    assert rc == 2
    assert re.search(r"`losses\[1\]` \(huber delta=-1\): group .* cannot be traced: ValueError: "
                     r"`delta` must be a finite number > 0; got -1", err), err
    assert not out.exists()


def test_run_compiles_each_group_once_and_check_traces_without_compiling(tmp_path, monkeypatch):
    import lossopt.experiment._runner as runner

    compiles = []
    real = runner.compile_lowered
    monkeypatch.setattr(runner, "compile_lowered",
                        lambda *a, **k: compiles.append(1) or real(*a, **k))
    cfg = resolve_config(tomllib.loads(TINY.replace("learning_rate = 0.1",
                                                    "learning_rate = 0.1\n[[solvers]]\n"
                                                    'name = "subgradient"\nstep_size = 0.1')))
    assert len(lossopt.experiment.check_experiment(cfg, out_dir=tmp_path / "x")) == 2
    assert compiles == [] and not (tmp_path / "x").exists()
    res = run_experiment(cfg, out_dir=tmp_path / "x")
    assert res.ran == 2 and len(compiles) == 2


# --- 2. records keyed on the data's content ----------------------------------------------------


def _csv(path: Path, table: np.ndarray) -> None:
    lines = ["a,b,y"] + [",".join(repr(float(v)) for v in row) for row in table]
    path.write_text("\n".join(lines) + "\n")


CSV_CONFIG = """
name = "file"
[data]
kind = "csv"
path = "data.csv"
validation_fraction = 0.0
[[losses]]
name = "mse"
[[solvers]]
name = "gradient_descent"
learning_rate = 0.1
[run]
max_iters = 5
[output]
plots = false
"""


def _table(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((12, 2))
    return np.column_stack([X, X @ [1.0, -2.0] + 0.1 * rng.standard_normal(12)])


def test_an_edited_data_file_is_rerun_and_a_moved_one_is_not(tmp_path):
    _csv(tmp_path / "data.csv", _table())
    (tmp_path / "c.toml").write_text(CSV_CONFIG)
    out = tmp_path / "out"
    cfg, base = load_config(tmp_path / "c.toml")
    first = run_experiment(cfg, base, out_dir=out)
    table = _table()
    table[3, 2] += 5.0  # one target changed
    _csv(tmp_path / "data.csv", table)
    second = run_experiment(cfg, base, out_dir=out)
    assert (second.ran, second.skipped) == (1, 0)
    assert second.rows[0]["final_loss"] != first.rows[0]["final_loss"]
    # The same content under another name keeps its record.
    (tmp_path / "data.csv").rename(tmp_path / "moved.csv")
    moved, _ = load_config(tmp_path / "c.toml", ["data.path='moved.csv'"])
    third = run_experiment(moved, base, out_dir=out)
    assert (third.ran, third.skipped) == (0, 1)
    assert third.rows == second.rows


@FEW
@given(row=st.integers(0, 11), col=st.integers(0, 2),
       delta=st.floats(1e-6, 1e3) | st.floats(-1e3, -1e-6))
def test_changing_any_cell_changes_the_fingerprint_of_every_run(tmp_path_factory, row, col,
                                                                 delta):
    from lossopt.experiment._runner import _prepare

    folder = tmp_path_factory.mktemp("data")
    (folder / "c.toml").write_text(CSV_CONFIG.replace("[run]", "[run]\nseeds = [0, 1]"))
    cfg, base = load_config(folder / "c.toml")
    table = _table()
    _csv(folder / "data.csv", table)
    before = {lane.fingerprint for g in _prepare(cfg, base)[0] for lane in g.lanes}
    table[row, col] += delta
    _csv(folder / "data.csv", table)
    after = {lane.fingerprint for g in _prepare(cfg, base)[0] for lane in g.lanes}
    assert len(before) == len(after) == 2 and not before & after


# --- 3. Ctrl-C inside a group: a summary row for every record kept ------------------------------


SWEEP = TINY.replace("learning_rate = 0.1", "learning_rate = [0.05, 0.2]").replace(
    "seeds = [0]", 'seeds = [0, 1]\ncompile = "fast"')


@settings(derandomize=True, deadline=None, max_examples=4, database=None)
@given(stop_at=st.integers(1, 8))
def test_ctrl_c_at_any_file_write_keeps_a_summary_row_for_every_record(tmp_path_factory,
                                                                       stop_at):
    import lossopt.experiment._runner as runner

    cfg = resolve_config(tomllib.loads(SWEEP))  # one group of 4 lanes: 8 trace/record writes
    out = tmp_path_factory.mktemp("out")
    writes = []
    real_write, real_trace = runner.atomic_write, lossopt.Trace.to_csv

    def interrupt(path) -> None:
        writes.append(path)
        if len(writes) == stop_at + 1:  # config.toml is the first write; then lane by lane
            raise KeyboardInterrupt

    def interrupting(path, text):  # config.toml, records, summary
        interrupt(path)
        return real_write(path, text)

    def interrupting_trace(trace, path):  # each lane's trace, before its record
        interrupt(path)
        return real_trace(trace, path)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "atomic_write", interrupting)
        mp.setattr(lossopt.Trace, "to_csv", interrupting_trace)
        res = run_experiment(cfg, out_dir=out)
    assert res.interrupted
    records = {p.stem for p in (out / "runs").glob("*.json")}
    summary = json.loads((out / "summary.json").read_text())
    assert {r["run_id"] for r in summary} == records == {r["run_id"] for r in res.rows}
    assert len(records) == (stop_at - 1) // 2 == res.ran  # a lane's record follows its trace
    resumed = run_experiment(cfg, out_dir=out)  # the unfinished group runs again as a whole
    assert (resumed.ran, resumed.skipped, len(resumed.rows)) == (4, 0, 4)


# --- 4. data files: non-finite cells, complex targets, unreadable files -------------------------


def _csv_config(folder: Path, name: str, kind: str = "csv") -> Path:
    path = folder / "c.toml"
    path.write_text(CSV_CONFIG.replace('kind = "csv"', f'kind = "{kind}"')
                    .replace('"data.csv"', f'"{name}"'))
    return path


@FEW
@given(row=st.integers(0, 11), col=st.integers(0, 2),
       bad=st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity"]))
def test_a_non_finite_cell_is_rejected_naming_file_line_and_column(tmp_path_factory, capsys,
                                                                   row, col, bad):
    folder = tmp_path_factory.mktemp("nan")
    lines = ["a,b,y"] + [",".join(repr(float(v)) for v in r) for r in _table()]
    cells = lines[row + 1].split(",")
    cells[col] = bad
    lines[row + 1] = ",".join(cells)
    (folder / "data.csv").write_text("\n".join(lines) + "\n")
    out = folder / "out"
    rc, err = _run([str(_csv_config(folder, "data.csv")), "--out", str(out)], capsys)
    assert rc == 2
    assert f"`data.path` data.csv: line {row + 2}, column '{'aby'[col]}' is" in err, err
    assert not out.exists()


def test_npz_values_must_be_real_and_finite(tmp_path, capsys):
    X = np.ones((6, 2))
    for y, message in ((np.ones(6) * (1 + 2j), "`data.y_key`: data.npz holds complex values"),
                       (np.array([1.0, 2, np.inf, 4, 5, 6]), "data.npz: y[2] is inf")):
        np.savez(tmp_path / "data.npz", X=X, y=y)
        rc, err = _run([str(_csv_config(tmp_path, "data.npz", "npz")), "--out",
                        str(tmp_path / "out")], capsys)
        assert rc == 2 and message in err, err
    np.savez(tmp_path / "data.npz", X=X.astype(complex), y=np.ones(6))
    rc, err = _run([str(_csv_config(tmp_path, "data.npz", "npz")), "--out",
                    str(tmp_path / "out")], capsys)
    assert rc == 2 and "`data.x_key`: data.npz holds complex values" in err
    assert not (tmp_path / "out").exists()


@FEW
@given(cut=st.floats(0.0, 0.99), kind=st.sampled_from(["npz", "latin-1 csv"]))
def test_a_damaged_or_non_utf8_file_is_a_config_error_naming_data_path(tmp_path_factory, capsys,
                                                                        cut, kind):
    folder = tmp_path_factory.mktemp("bad")
    if kind == "npz":
        np.savez(folder / "data.npz", X=np.ones((6, 2)), y=np.arange(6.0))
        blob = (folder / "data.npz").read_bytes()
        (folder / "data.npz").write_bytes(blob[: int(cut * len(blob))])  # truncated
        config = _csv_config(folder, "data.npz", "npz")
        expected = "`data.path` data.npz: cannot be read as a numpy .npz archive"
    else:
        rows = ["caf\u00e9,y"] + [f"{i},{i * cut}" for i in range(6)]
        (folder / "data.csv").write_bytes("\n".join(rows).encode("latin-1"))
        config = _csv_config(folder, "data.csv")
        expected = "`data.path` data.csv: not a UTF-8 text file"
    rc, err = _run([str(config), "--out", str(folder / "out")], capsys)
    assert rc == 2 and expected in err, err
    assert "Traceback" not in err


def test_csv_error_messages_do_not_echo_the_file_beyond_names(tmp_path, capsys):
    secret = "s3cr3t-" * 20
    (tmp_path / "data.csv").write_text(f"a,y\n{secret},1\n2,3\n")
    rc, err = _run([str(_csv_config(tmp_path, "data.csv")), "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "line 2, column 'a' is not a number" in err and "s3cr3t" not in err


# --- 5 and 7. user text is printed literally ----------------------------------------------------

_MARKUP = st.lists(st.sampled_from(["[/]", "[link=http://x]click[/link]", ":x:", "[bold]",
                                    "[/bold]", "\\[", "]", "[red", "ab", " "]),
                   min_size=1, max_size=5).map("".join)


@FEW
@given(text=_MARKUP)
def test_markup_and_emoji_codes_in_config_values_are_printed_literally(tmp_path_factory, capsys,
                                                                       text):
    out = tmp_path_factory.mktemp("out") / "r"
    capsys.readouterr()
    rc = main(["run", "--set", f"losses.0.name={_toml(text)}", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    # The unknown name is echoed character for character (rich folds long lines).
    assert "".join(repr(text).split()) in "".join(err.split()), err
    assert "\x1b]8;" not in err  # no hyperlink escape


def test_the_summary_table_prints_data_names_literally(tmp_path, capsys):
    config = _tiny(tmp_path)
    out = tmp_path / "out"
    capsys.readouterr()
    name = ":x: [bold]b[/bold] [/]"
    rc = main(["run", str(config), "--out", str(out), "--no-compile-cache", "--set",
               f"data.name={_toml(name)}", "--set", f"losses.0.name={_toml('mse')}"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert json.loads((out / "summary.json").read_text())[0]["data"] == name
    assert "lossopt run tiny" in captured.err


# --- 6. results folders that cannot be written --------------------------------------------------


@settings(derandomize=True, deadline=None, max_examples=5, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(depth=st.integers(0, 3), where=st.sampled_from(["above", "runs", "summary.csv"]))
def test_a_results_folder_that_cannot_be_made_exits_2_before_anything_is_written(
        tmp_path_factory, capsys, depth, where):
    tmp = tmp_path_factory.mktemp("blocked")
    config = _tiny(tmp)
    out = tmp.joinpath(*[f"d{i}" for i in range(depth)], "results")
    if where == "above":  # a file where a parent folder must be
        blocker = out.parent if depth else tmp / "results"
        out = out if depth else tmp / "results" / "x"
        blocker.parent.mkdir(parents=True, exist_ok=True)
        blocker.write_text("not a folder")
    elif where == "runs":
        (out / "runs").parent.mkdir(parents=True)
        (out / "runs").write_text("a file where the records go")
    else:
        (out / "summary.csv").mkdir(parents=True)
    before = _files(tmp)
    rc, err = _run([str(config), "--out", str(out)], capsys)
    assert rc == 2, err
    assert "`output.dir`, or --out" in err and ("is a file" in err or "is a folder" in err), err
    assert _files(tmp) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_a_read_only_parent_exits_2(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        rc, err = _run([str(_tiny(tmp_path)), "--out", str(locked / "a" / "b")], capsys)
    finally:
        locked.chmod(0o755)
    assert rc == 2 and "is not writable" in err


def test_an_unwritable_results_folder_found_only_when_writing_exits_2(tmp_path, capsys,
                                                                      monkeypatch):
    # The check above passes but mkdir fails (a read-only mount seen only by mkdir).
    def refuse(self, *args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(Path, "mkdir", refuse)
    rc, err = _run([str(_tiny(tmp_path)), "--out", str(tmp_path / "out")], capsys)
    assert rc == 2 and "cannot be written: Read-only file system" in err


# --- 8. names are one safe path component --------------------------------------------------------


@settings(derandomize=True, deadline=None, max_examples=30, database=None)
@given(name=st.text(alphabet="ab./\\_- :", max_size=12))
def test_an_accepted_name_is_one_path_component_inside_results(name):
    try:
        cfg = resolve_config({**tomllib.loads(TINY), "name": name})
    except ConfigError as err:
        assert "`name` must be a single folder name" in str(err)
        return
    out = Path(cfg.output.dir)
    assert out.parent == Path("results") and out.name == name
    assert (Path("/r") / out).resolve().parent == Path("/r/results")
    assert not name.startswith(".") and "/" not in name and "\\" not in name


# --- 9. files honour the umask ------------------------------------------------------------------


@FEW
@given(umask=st.integers(0, 0o777))
def test_atomic_write_gives_the_mode_open_would(tmp_path_factory, umask):
    folder = tmp_path_factory.mktemp("mode")
    old = os.umask(umask)
    try:
        path = atomic_write(folder / "f.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in folder.iterdir()] == ["f.txt"]


def test_every_file_of_a_run_and_a_checkpoint_is_readable_by_the_group(tmp_path):
    import jax.numpy as jnp

    from lossopt.plotting import plot_results

    cfg = resolve_config(tomllib.loads(TINY.replace("plots = false", "plots = true")))
    old = os.umask(0o027)
    try:
        run_experiment(cfg, out_dir=tmp_path / "out")
        plot_results(tmp_path / "out", cfg)  # what `lossopt run` draws after the run
        lossopt.minimize(lambda x: jnp.sum((x - 1.0) ** 2), jnp.zeros(2),
                         lossopt.solvers.GradientDescent(learning_rate=0.1), max_iters=4,
                         checkpoint_dir=tmp_path / "ckpt", checkpoint_every=2)
    finally:
        os.umask(old)
    files = _files(tmp_path / "out") + _files(tmp_path / "ckpt")
    names = {p.name for p in files}
    assert {"config.toml", "summary.csv", "summary.json", "convergence.png",
            "checkpoint.npz"} <= names
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {oct(0o640)}


# --- 10. a logistic or softmax model implies the task of a file's labels -------------------------


def test_a_logistic_model_reads_a_01_target_as_binary_and_a_linear_one_says_what_to_set(
        tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 2))
    y = (X[:, 0] > 0).astype(int)
    (tmp_path / "data.csv").write_text(
        "a,b,y\n" + "".join(f"{float(a)!r},{float(b)!r},{t}\n" for (a, b), t in zip(X, y, strict=True)))
    (tmp_path / "c.toml").write_text(
        CSV_CONFIG.replace('name = "mse"', 'name = "sigmoid_binary_cross_entropy"')
        + '[model]\nkind = "logistic"\n')
    cfg, _ = load_config(tmp_path / "c.toml")
    assert cfg.data[0].task == "binary"
    out = tmp_path / "out"
    rc, err = _run([str(tmp_path / "c.toml"), "--check", "--out", str(out)], capsys)
    assert rc == 0, err
    rc, err = _run([str(tmp_path / "c.toml"), "--check", "--set", "model.kind='linear'"], capsys)
    assert rc == 2 and 'holds only the labels 0, 1: set data.task = "binary"' in err, err
