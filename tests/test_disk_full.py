"""A full disk (issue 27 case 1), on small tmpfs mounts the tests make (skipped where mounting is refused):
one `error:` line naming the path and the space needed, exit 2, nothing left RUNNING, no temp file left,
nothing stored lost, and never blamed on the hyperparameters."""

import contextlib
import errno
import shutil
import sqlite3
import subprocess
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from pipeline.core.errors import DiskFull, as_disk_full
from tests.conftest import BIN, CHARTS, SWEEP_SHRINK


@pytest.fixture
def tmpfs(tmp_path):
    """`tmpfs(name, size)`: a folder of tmp_path with a tmpfs of that size mounted on it, unmounted afterwards."""
    mounted = []

    def mount(name: str, size: str) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if result.returncode:
            pytest.skip(
                f"mounting a tmpfs is refused here ({result.stderr.strip()}): a full disk cannot be made"
            )
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_vector_cache_that_does_not_fit_is_one_line_and_leaves_no_temp_file(tmpfs, data_cache):
    """It was a traceback (OSError: [Errno 28]) and a vectors/tmp*.tmp.npz left by every attempt."""
    from pipeline.config import compose
    from pipeline.data.texts import prepare_data

    cache = tmpfs("cache", "256k")
    (cache / "downloads").symlink_to(data_cache / "downloads")
    data_cfg = compose(
        ["data=sentences", "data.max_len=200"]
    ).data  # 3,000 texts x 200 token ids: over 2 MB
    pattern = (
        rf"^paths.cache_dir={cache}: no space left on device for the vector cache sentences-\w+\.npz: it needs "
        r"about \d+\.\d\d MB, 0\.\d\d MB is free there; free some space there or choose another paths.cache_dir$"
    )
    for _ in range(2):
        with pytest.raises(DiskFull, match=pattern):
            prepare_data(data_cfg, str(cache))
        assert list((cache / "vectors").iterdir()) == [], "no temp file is left"


def test_a_copy_that_does_not_fit_is_named_with_its_size_and_removed(tmp_path, tmpfs):
    small = tmpfs("small", "256k")
    source = tmp_path / "model.keras"
    source.write_bytes(b"\1" * 10**6)
    with pytest.raises(OSError) as raised:
        shutil.copy(source, small / "model.keras")
    error = as_disk_full(raised.value, small)
    assert str(error).startswith(
        f"no space left on device for {small / 'model.keras'}: it needs 1.00 MB, "
    )
    assert not (small / "model.keras").exists(), (
        "the partial copy is removed: the stores need its space"
    )
    assert as_disk_full(ValueError("something else")) is None


def test_a_copy_whose_source_is_gone_and_a_write_without_a_name_are_still_one_line(tmp_path):
    """MLflow copies from a temporary folder that is deleted before the error reaches rnnsweep."""
    target = tmp_path / "mlruns" / "model.keras"
    target.parent.mkdir()
    target.write_bytes(b"partial")
    gone = OSError(
        errno.ENOSPC,
        "No space left on device",
        str(tmp_path / "gone" / "model.keras"),
        None,
        str(target),
    )
    error = as_disk_full(
        RuntimeError("while logging the model").with_traceback(None), tmp_path / "mlruns"
    )
    assert error is None, "no full disk in that chain"
    try:
        raise RuntimeError("while logging the model") from gone
    except RuntimeError as wrapped:
        error = as_disk_full(wrapped, tmp_path / "mlruns")
    assert not target.exists() and str(error).startswith(f"no space left on device for {target}: ")
    assert str(error).endswith(
        "is free there; free some space there or choose another paths.mlruns_dir"
    )
    error = as_disk_full(OSError(errno.ENOSPC, "No space left on device"), tmp_path / "mlruns")
    assert str(error).startswith(
        "no space left on device: [Errno 28] No space left on device under paths.mlruns_dir="
    )
    named = DiskFull("no space left on device for x: 1 MB is needed")
    try:
        try:
            raise named
        except DiskFull:
            raise OSError(
                errno.ENOSPC, "No space left on device"
            )  # recording the failure met the full disk too
    except OSError as later:
        assert as_disk_full(later) is named, "the line that names the path and the size is kept"


def test_a_full_sqlite_store_is_named_as_such(tmpfs):
    small = tmpfs("small", "256k")
    with (
        contextlib.closing(sqlite3.connect(small / "optuna.db")) as db,
        pytest.raises(sqlite3.OperationalError) as raised,
    ):
        db.execute("CREATE TABLE t (b BLOB)")
        for _ in range(100):
            db.execute("INSERT INTO t VALUES (?)", (b"\1" * 8192,))
            db.commit()
    error = as_disk_full(raised.value, small)
    assert str(error).startswith(
        f"no space left on device: an SQLite store could not grow under paths.mlruns_dir={small} "
    )


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_a_full_disk_under_mlruns_stops_the_sweep_with_one_line_and_leaves_nothing_running(
    tmp_path, tmpfs, data_cache, workers
):
    """It was exit 1 with 951 stderr lines and 27 tracebacks, 2 trials and 3 runs left RUNNING, and the full disk
    recorded against a trial as fail_kind=hyperparameters."""
    mlruns = tmpfs("mlruns", "20m")  # the stores, then 5 MB models until one does not fit
    command = [
        str(BIN / "rnn-sweep"),
        *SWEEP_SHRINK,
        CHARTS,
        "model=pooling",
        "model.embedding_dim=256",
        "search=quick",
        "search.n_trials=8",
        "train.epochs=1",
        f"search.n_workers={workers}",
        f"paths.cache_dir={data_cache}",
        f"paths.mlruns_dir={mlruns}",
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr[-4000:]
    assert "Traceback" not in result.stderr and result.stderr.splitlines()[-1:] == errors, (
        result.stderr[-4000:]
    )
    assert errors[0].startswith(
        f"error: no space left on device for the run's model in {mlruns}/"
    ), errors
    assert "MB is needed on its device" in errors[0], errors[0]

    study = optuna.load_study(
        study_name="quick-sentences", storage=f"sqlite:///{mlruns / 'optuna.db'}"
    )
    states = [t.state.name for t in study.trials]
    assert "RUNNING" not in states and "COMPLETE" in states, states
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    kinds = [t.user_attrs.get("fail_kind") for t in failed]
    assert kinds == ["input"] * len(kinds) and 1 <= len(kinds) <= workers, (
        f"a full disk is no hyperparameter's fault: {kinds}"
    )
    client = MlflowClient(f"sqlite:///{mlruns / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("rnnsweep").experiment_id])
    assert not [r for r in runs if r.info.status == "RUNNING"], "no MLflow run left RUNNING"
    assert not [p for p in mlruns.rglob("*") if "tmp" in p.name], "no temp file left"
    for database in ("optuna.db", "mlflow.db"):
        with contextlib.closing(
            sqlite3.connect(f"{(mlruns / database).as_uri()}?mode=ro", uri=True)
        ) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]

    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert again.returncode == 2 and again.stderr.splitlines() == [again.stderr.strip()], (
        again.stderr[-3000:]
    )
    assert (
        again.stderr.startswith(f"error: paths.mlruns_dir={mlruns}: ")
        and "MB is needed" in again.stderr
    )
    assert len(
        optuna.load_study(
            study_name="quick-sentences", storage=f"sqlite:///{mlruns / 'optuna.db'}"
        ).trials
    ) == len(states), "the second run on the full store adds nothing"


def test_optuna_logs_a_trial_stopped_by_a_full_disk_without_a_traceback():
    """A worker's trial stopped by the full disk, whose MLflow run could then not even be ended
    ("database or disk is full" from the store's UPDATE), was logged by Optuna with a 60-line
    traceback above the command's one error line (CI, 2 workers)."""
    import logging

    from pipeline.search.objective import NoTracebackFor

    try:
        raise sqlite3.OperationalError("database or disk is full")
    except sqlite3.OperationalError as error:
        record = logging.LogRecord(
            "optuna.study._optimize",
            logging.WARNING,
            __file__,
            1,
            "Trial 3 failed",
            None,
            (type(error), error, error.__traceback__),
        )
    NoTracebackFor().filter(record)
    assert record.exc_info is None and "Traceback" not in logging.Formatter().format(record)


def fill(folder: Path) -> None:
    """Write zeros into `folder` until its device is full."""
    with open(folder / "filler", "wb") as filler, contextlib.suppress(OSError):
        while True:
            filler.write(b"\0" * 65536)
            filler.flush()


def test_mlflow_s_database_error_on_a_full_disk_is_not_logged_again(tmpfs, caplog):
    """MLflow logs a database error with its traceback, then raises it: on a full disk (CI, 2
    workers) three 60-line tracebacks stood above the command's one error line."""
    import mlflow

    import pipeline.tracking.mlflow_runs  # noqa: F401 - its logging rules

    store = tmpfs("store", "4m")
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.create_experiment("full", artifact_location=str(store / "artifacts"))
    fill(store)
    with pytest.raises(mlflow.exceptions.MlflowException, match="database or disk is full"):
        for index in range(100):  # SQLite fills its last free pages first
            client.create_run(experiment, tags={"filler": "x" * 4000, "index": str(index)})
    logged = [r for r in caplog.records if r.name == "mlflow.store.db.utils" and r.levelno >= 30]
    assert not logged, caplog.text


def test_a_library_thread_that_meets_a_full_disk_ends_without_a_traceback(capsys, monkeypatch):
    """Optuna's heartbeat thread met the full store and printed a 90-line traceback above the
    command's one error line (CI, 2 workers); the trial's own next write says it in one line. Any
    other error of a thread is still printed whole."""
    import threading

    # Python's own hook (pytest has its own in place), restored after
    monkeypatch.setattr(threading, "excepthook", threading.__excepthook__)
    from pipeline.core.errors import quiet_full_disk_in_threads

    quiet_full_disk_in_threads()

    def heartbeat():
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as error:
            raise optuna.exceptions.StorageInternalError("during the commit") from error

    def other():
        raise ValueError("a thread's own bug")

    for target in (heartbeat, other):
        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
    printed = capsys.readouterr().err
    assert printed.count("Traceback") == 1 and "a thread's own bug" in printed, printed
    assert "disk is full" not in printed, printed
