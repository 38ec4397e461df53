"""The stores and the secrets: workers started together, damaged or unusable stores, unreachable URLs,
paths that cannot be made, Hydra's own errors, and no password on the terminal, in a log or in a store.

Every run here is the real `rnn-sweep` on a copy of a good mlruns/ whose files are checksummed before
and after. Tests run as root, who ignores file permissions: a read-only file or folder is made with
`chattr +i` (immutable, which stops root too); where chattr is not allowed those cases are skipped.
"""

import contextlib
import hashlib
import io
import logging
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from pipeline.core import errors, redaction
from pipeline.tracking import stores
from pipeline.core.errors import InputError
from tests.conftest import BIN, CHARTS, SWEEP_SHRINK
from tests.services import PASSWORD, USER, free_port, postgres_server

PW = "pw-Zq7xK2-never-shown"  # a password no store, schema or log would contain by chance
TINY = [
    *SWEEP_SHRINK,
    "search=quick",
    "search.n_trials=1",
    "train.epochs=1",
    "train.threads.intra_op=1",
    "train.threads.inter_op=1",
]
FAST = [
    "model=pooling",
    "search.space.body.choices=[pooling]",
    "~search.space.units",
    "search.confirm_top_k=0",
    "train.log_model=false",
]


def sweep_command(data_cache: Path, *overrides: str) -> list[str]:
    return [str(BIN / "rnn-sweep"), *TINY, f"paths.cache_dir={data_cache}", *overrides]


def run(command: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 2 and exactly one stderr line, `error: ...`, holding every fragment."""
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr[-3000:] + result.stdout[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def checksums(folder: Path) -> dict[str, str]:
    return (
        {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.db"))}
        if folder.exists()
        else {}
    )


def integrity(database: Path) -> list:
    with contextlib.closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as db:
        return db.execute("PRAGMA integrity_check").fetchall()


def assert_password_nowhere(
    password: str, result: subprocess.CompletedProcess, *folders: Path
) -> None:
    assert password not in result.stdout and password not in result.stderr
    for folder in folders:
        for path in [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []:
            assert password.encode() not in path.read_bytes(), f"the password is in {path}"


def closed_port() -> int:
    port = free_port()
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pytest.fail(f"port {port} is open")
    return port


@pytest.fixture(scope="module")
def good_mlruns(tmp_path_factory) -> Path:
    """A good mlruns/ (an MLflow store with an experiment, an Optuna study), made once; tests copy it."""
    folder = tmp_path_factory.mktemp("good") / "mlruns"
    folder.mkdir()
    MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").create_experiment(
        "rnnsweep", (folder / "artifacts").as_uri()
    )
    optuna.create_study(storage=f"sqlite:///{folder / 'optuna.db'}", study_name="earlier")
    return folder


@pytest.fixture
def mlruns(tmp_path, good_mlruns) -> Path:
    shutil.copytree(good_mlruns, tmp_path / "mlruns")
    return tmp_path / "mlruns"


@pytest.fixture
def immutable():
    """`immutable(path)`: chattr +i, undone afterwards; skips the test where chattr is not allowed."""
    made = []

    def make(path: Path) -> None:
        if (
            shutil.which("chattr") is None
            or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode
        ):
            pytest.skip("chattr +i is not allowed here: a read-only store cannot be shown to root")
        made.append(path)

    yield make
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], check=True)


# ------------------------------------------------------------------------ workers started together


@pytest.mark.slow
def test_four_workers_started_together_on_an_empty_mlruns_share_both_stores(tmp_path, data_cache):
    """The whole command, once: its start-ups race on the empty stores, then its trials share them.
    The start-ups alone are raced many times, at one instant, by the next test."""
    # tracking.uri left alone: the local sqlite stores in ./mlruns; a long grace: a loaded machine is no dead worker
    command = sweep_command(
        data_cache, *FAST, CHARTS, "search.heartbeat_seconds=5", "search.grace_seconds=300"
    )
    started = time.perf_counter()
    workers = []
    for index in range(4):
        with open(tmp_path / f"worker{index}.log", "w") as log:
            workers.append(
                subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
            )
    codes = [worker.wait(600) for worker in workers]
    print(f"4 workers in {time.perf_counter() - started:.1f} s")
    logs = "".join((tmp_path / f"worker{index}.log").read_text()[-3000:] for index in range(4))
    assert codes == [0, 0, 0, 0], logs

    mlruns = tmp_path / "mlruns"
    assert integrity(mlruns / "mlflow.db") == [("ok",)] and integrity(mlruns / "optuna.db") == [
        ("ok",)
    ]
    [study] = optuna.get_all_study_summaries(f"sqlite:///{mlruns / 'optuna.db'}")
    trials = optuna.load_study(
        study_name=study.study_name, storage=f"sqlite:///{mlruns / 'optuna.db'}"
    ).trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3] and all(
        t.state.is_finished() for t in trials
    )
    client = MlflowClient(f"sqlite:///{mlruns / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("rnnsweep").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert (
        len(parents) == 4 and len(children) == 4 and all(r.info.status == "FINISHED" for r in runs)
    )
    assert sorted(int(c.data.tags["trial_number"]) for c in children) == [0, 1, 2, 3], (
        "one child run per trial"
    )
    assert {t.user_attrs["mlflow_run_id"] for t in trials} == {c.info.run_id for c in children}
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {p.info.run_id for p in parents}


def open_the_stores_at_once(cfg, barrier) -> str:
    """In a process of its own, from one barrier: what a sweep does to its stores before its first
    trial (probe, MLflow store and experiment, the study, a parent run with its view and config).
    Returns the parent run's id."""
    import mlflow

    from pipeline.search.study import make_study
    from pipeline.search.sweep import parent_tags
    from pipeline.tracking import mlflow_runs, stores

    barrier.wait(timeout=300)
    stores.probe_sweep(cfg)
    experiment = mlflow_runs.configure(cfg)
    make_study(cfg)
    with mlflow.start_run(run_name="race", tags=parent_tags(cfg)) as parent:
        mlflow_runs.share_trials_view(cfg, experiment)
        mlflow_runs.log_config(cfg)
    return parent.info.run_id


@pytest.mark.slow
def test_four_start_ups_at_one_instant_on_an_empty_mlruns_create_each_store_once(
    tmp_path, data_cache
):
    """Eight rounds, each on a new empty mlruns/, each started by four processes released by one
    barrier: the stores' creation raced far more often than whole commands started together do
    (their imports spread them over a second). Each round: both databases whole, one study, one
    experiment, the four parent runs finished."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from pipeline.config import compose

    processes, rounds, context = 4, 8, get_context("spawn")
    barrier = context.Manager().Barrier(processes)
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        for round_ in range(rounds):
            mlruns = tmp_path / f"round{round_}" / "mlruns"
            cfg = compose(
                [
                    "search=quick",
                    f"paths.cache_dir={data_cache}",
                    f"paths.mlruns_dir={mlruns}",
                    f"paths.log_dir={mlruns.parent / 'logs'}",
                ]
            )
            started = [pool.submit(open_the_stores_at_once, cfg, barrier) for _ in range(processes)]
            parents = {future.result(timeout=600) for future in started}
            assert integrity(mlruns / "mlflow.db") == integrity(mlruns / "optuna.db") == [("ok",)]
            assert [s.study_name for s in optuna.get_all_study_summaries(stores_url(mlruns))] == [
                cfg.search.study_name
            ], round_
            client = MlflowClient(f"sqlite:///{mlruns / 'mlflow.db'}")
            named = [e for e in client.search_experiments() if e.name == cfg.tracking.experiment]
            assert len(named) == 1, round_
            runs = client.search_runs([named[0].experiment_id])
            assert {r.info.run_id for r in runs} == parents and len(parents) == processes
            assert all(r.info.status == "FINISHED" for r in runs), round_


def stores_url(mlruns: Path) -> str:
    return f"sqlite:///{mlruns / 'optuna.db'}"


def start_together(command: list[str], folder: Path, count: int) -> tuple[list[int], str]:
    """`count` copies of `command` started at once in `folder`: their exit codes and their logs' ends."""
    processes = []
    for index in range(count):
        with open(folder / f"invocation{index}.log", "w") as log:
            processes.append(
                subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
            )
    codes = [process.wait(900) for process in processes]
    return codes, "".join(
        (folder / f"invocation{index}.log").read_text()[-3000:] for index in range(count)
    )


@pytest.mark.slow
def test_four_invocations_together_train_each_confirmation_seed_once_and_register_one_version(
    tmp_path, data_cache
):
    """Issue 27 case 6: each confirmation seed was trained by every invocation, the winner registered twice."""
    command = sweep_command(
        data_cache,
        CHARTS,
        "model=pooling",
        "search.space.body.choices=[pooling]",
        "~search.space.units",
        "search.n_trials=2",
        "search.confirm_top_k=2",
        "search.confirm_seeds=2",
        "search.heartbeat_seconds=2",
        "search.grace_seconds=300",
    )
    codes, logs = start_together(command, tmp_path, 4)
    assert codes == [0, 0, 0, 0], logs
    mlruns = tmp_path / "mlruns"
    assert integrity(mlruns / "mlflow.db") == [("ok",)] and integrity(mlruns / "optuna.db") == [
        ("ok",)
    ]
    client = MlflowClient(f"sqlite:///{mlruns / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("rnnsweep").experiment_id])
    seeds = Counter(
        (r.data.tags["confirm_of_trial"], r.data.tags["train_seed"])
        for r in runs
        if "confirm" in r.data.tags
    )
    assert len(seeds) == 4 and set(seeds.values()) == {1}, (
        f"each confirmation seed trained once: {seeds}"
    )
    [model] = client.search_registered_models()
    versions = client.search_model_versions(f"name='{model.name}'")
    assert len(versions) == 1, f"one winner, one version: {[(v.version, v.tags) for v in versions]}"
    winners = [line for line in logs.splitlines() if line.startswith("Winner by mean over seeds")]
    assert len(winners) == 4 and len(set(winners)) == 1, (
        f"every invocation names the same winner: {winners}"
    )


# ------------------------------------------------------------------------ damaged and unusable stores


def garbage(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 64)


def truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: 3 * 4096])


def old_mlflow_schema(path: Path) -> None:
    """The alembic revision before this MLflow's head: what an MLflow store of the previous release holds."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config, _get_latest_schema_revision

    older = (
        ScriptDirectory.from_config(_get_alembic_config(""))
        .get_revision(_get_latest_schema_revision())
        .down_revision
    )
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE alembic_version SET version_num = ?", (older,))


DAMAGED = [
    ("optuna.db", garbage, "is not a usable SQLite database (file is not a database)"),
    ("mlflow.db", garbage, "is not a usable SQLite database (file is not a database)"),
    ("optuna.db", truncated, "database disk image is malformed"),
    ("mlflow.db", truncated, "database disk image is malformed"),
    ("mlflow.db", old_mlflow_schema, "stop every process that writes to it"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, damage, message", DAMAGED, ids=lambda v: getattr(v, "__name__", str(v))[:30]
)
def test_a_damaged_store_is_one_line_and_nothing_is_written(
    tmp_path, data_cache, mlruns, name, damage, message
):
    damage(mlruns / name)
    before = checksums(mlruns)
    line = one_error_line(run(sweep_command(data_cache), tmp_path), f"{mlruns / name}", message)
    assert checksums(mlruns) == before
    if damage is old_mlflow_schema:
        assert f"mlflow db upgrade sqlite:///{mlruns / name}" in line


def fresh_cache(tmp_path: Path, data_cache: Path) -> Path:
    """A cache dir with the downloads and no vector cache yet: a data setting never prepared."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "downloads").symlink_to(data_cache / "downloads")
    return cache


@pytest.mark.slow
@pytest.mark.parametrize("name", ["optuna.db", "mlflow.db"])
def test_a_damaged_store_is_found_before_the_data_is_prepared(tmp_path, data_cache, mlruns, name):
    """Issue 27 case 7: the store was probed only after the data was vectorized (minutes on IMDB)."""
    garbage(mlruns / name)
    cache = fresh_cache(tmp_path, data_cache)
    result = run([*sweep_command(data_cache), f"paths.cache_dir={cache}"], tmp_path)
    one_error_line(result, str(mlruns / name), "is not a usable SQLite database")
    assert not list(cache.rglob("*.npz")), (
        "no vector cache is written before the stores are checked"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "storage",
    ["postgresql://u:{pw}@127.0.0.1:{port}/db", "sqlite:///{tmp}/gone.db"],
    ids=["unreachable", "missing"],
)
def test_an_unusable_warm_start_store_stops_before_any_store_or_data(tmp_path, data_cache, storage):
    """Issue 27 case 7: an unreachable warm-start store left a new, empty mlflow.db and MLflow's log lines."""
    storage = storage.format(pw=PW, port=closed_port(), tmp=tmp_path)
    cache = fresh_cache(tmp_path, data_cache)
    result = run(
        [
            *sweep_command(data_cache),
            f"paths.cache_dir={cache}",
            "search.warm_start_from=earlier",
            f"search.warm_start_storage={storage}",
        ],
        tmp_path,
    )
    one_error_line(result, "search.warm_start_storage=")
    assert PW not in result.stderr
    assert not (tmp_path / "mlruns").exists() or not list((tmp_path / "mlruns").glob("*.db"))
    assert not list(cache.rglob("*.npz"))


@pytest.mark.slow
@pytest.mark.parametrize("what", ["optuna.db", "mlflow.db", "folder"])
def test_a_read_only_store_is_one_line_and_nothing_is_written(
    tmp_path, data_cache, mlruns, immutable, what
):
    before = checksums(mlruns)
    immutable(mlruns if what == "folder" else mlruns / what)
    one_error_line(run(sweep_command(data_cache), tmp_path), str(mlruns), "read-only")
    assert checksums(mlruns) == before
    assert {p.name for p in mlruns.iterdir()} - {"mlflow.db.lock", "optuna.db.lock"} == {
        "mlflow.db",
        "optuna.db",
    }


BAD_URLS = [
    ("search.storage=notaurl", "search.storage=notaurl: not a database URL"),
    (
        f"search.storage=postgresql://sweeper:{PW}@no-such-host.invalid/optuna",
        "no-such-host.invalid",
    ),
    (f"search.storage=postgresql://sweeper:{PW}@127.0.0.1:{{port}}/optuna", "Connection refused"),
    (
        f"search.storage=nosuchdb://sweeper:{PW}@127.0.0.1/optuna",
        "unknown database kind 'nosuchdb'",
    ),
    (f"tracking.uri=http://sweeper:{PW}@127.0.0.1:{{port}}", "cannot connect to 127.0.0.1"),
    (f"tracking.uri=postgresql://sweeper:{PW}@127.0.0.1:{{port}}/mlflow", "Connection refused"),
]


@pytest.mark.slow
@pytest.mark.parametrize("override, message", BAD_URLS, ids=lambda v: v.split("://")[0][:30])
def test_an_unusable_store_url_is_one_line_without_the_password(
    tmp_path, data_cache, override, message
):
    override = override.format(port=closed_port())
    result = run(sweep_command(data_cache, override), tmp_path)
    line = one_error_line(result, message, "sweeper:***@" if PW in override else "")
    assert_password_nowhere(PW, result, tmp_path / "logs", tmp_path / "mlruns")
    assert (
        not (tmp_path / "mlruns" / "mlflow.db").exists()
        and not (tmp_path / "mlruns" / "optuna.db").exists()
    ), line
    hydra_files = sorted(p.name for p in (tmp_path / "logs").rglob(".hydra/*"))
    assert hydra_files == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    if PW in override:
        assert (
            "sweeper:***@" in next((tmp_path / "logs").rglob(".hydra/overrides.yaml")).read_text()
        )


@pytest.fixture(scope="module")
def postgres():
    with postgres_server(("optuna",)) as (url, _):
        yield url


@pytest.mark.slow
def test_a_wrong_database_password_is_one_line_and_never_shown(tmp_path, data_cache, postgres):
    wrong = postgres.replace(f"{USER}:{PASSWORD}@", f"{USER}:{PW}@") + "/optuna"
    result = run(sweep_command(data_cache, f"search.storage={wrong}"), tmp_path)
    one_error_line(result, "sweeper:***@127.0.0.1", "password authentication failed")
    assert_password_nowhere(PW, result, tmp_path / "logs", tmp_path / "mlruns")
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()


@pytest.mark.slow
def test_a_sweep_on_a_password_url_leaves_the_password_nowhere(tmp_path, data_cache, postgres):
    """A run that works: terminal, log file, .hydra/, MLflow's store and Optuna's study hold no password."""
    result = run(
        sweep_command(
            data_cache, *FAST, f"search.storage={postgres}/optuna", "search.study_name=secret"
        ),
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert_password_nowhere(PASSWORD, result, tmp_path / "logs", tmp_path / "mlruns")
    assert "sweeper:***@" in next((tmp_path / "logs").rglob(".hydra/config.yaml")).read_text()
    study = optuna.load_study(study_name="secret", storage=f"{postgres}/optuna")
    recorded = str([(t.params, t.user_attrs, t.system_attrs) for t in study.trials]) + str(
        study.user_attrs
    )
    assert study.trials and PASSWORD not in recorded


# ------------------------------------------------------------------------ paths, Hydra's own errors


@pytest.mark.slow
@pytest.mark.parametrize("key", ["mlruns_dir", "log_dir"])
def test_a_path_under_a_regular_file_is_one_line(tmp_path, data_cache, key):
    (tmp_path / "plain-file").write_text("not a folder")
    line = one_error_line(
        run(sweep_command(data_cache, f"paths.{key}={tmp_path / 'plain-file' / 'sub'}"), tmp_path)
    )
    assert str(tmp_path / "plain-file") in line and (
        "Not a directory" in line or "is a file, not a folder" in line
    )


@pytest.mark.slow
def test_a_path_under_a_read_only_folder_is_one_line(tmp_path, data_cache, immutable):
    (tmp_path / "locked").mkdir()
    immutable(tmp_path / "locked")
    line = one_error_line(
        run(
            sweep_command(data_cache, f"paths.mlruns_dir={tmp_path / 'locked' / 'mlruns'}"),
            tmp_path,
        )
    )
    assert (
        f"paths.mlruns_dir={tmp_path / 'locked' / 'mlruns'}: cannot be created: {tmp_path / 'locked'} is read-only"
        in line
    )


def broken_preset(tmp_path: Path) -> str:
    (tmp_path / "extra" / "search").mkdir(parents=True)
    (tmp_path / "extra" / "search" / "broken.yaml").write_text(
        "name: broken\nspace:\n  body: {path: model.body, choices: [a, b\n"
    )
    return f"hydra.searchpath=[file://{tmp_path / 'extra'}]"


HYDRA_ERRORS = [
    (["model.unitz=3"], "Could not override 'model.unitz'"),
    (
        ["search=nonexistent"],
        "Could not find 'search/nonexistent' Available options in 'search': default plateau plateau_padding quick",
    ),
    ([f"search.storage=postgresql://u:{PW}@h/db", "+search=quick"], "search"),
    (["BROKEN", "search=broken"], "broken.yaml"),
    (["BROKEN", "search=broken", "--cfg", "job"], "broken.yaml"),
]


@pytest.mark.parametrize("overrides, message", HYDRA_ERRORS, ids=lambda v: str(v)[:40])
def test_hydra_errors_are_one_line_and_exit_2(tmp_path, overrides, message):
    overrides = [broken_preset(tmp_path) if o == "BROKEN" else o for o in overrides]
    result = run([str(BIN / "rnn-sweep"), *overrides], tmp_path)
    line = one_error_line(result, message)
    assert (
        "HYDRA_FULL_ERROR" not in line
        and "Traceback" not in line
        and PW not in result.stderr + result.stdout
    )
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "logs").exists()


def test_help_and_cfg_job_still_work(tmp_path):
    shown = run(
        [str(BIN / "rnn-sweep"), "--cfg", "job", f"search.storage=postgresql://u:{PW}@h/db"],
        tmp_path,
    )
    assert (
        shown.returncode == 0
        and shown.stderr == ""
        and "storage: postgresql://u:***@h/db" in shown.stdout
    )
    helped = run([str(BIN / "rnn-train"), "--help"], tmp_path)
    assert (
        helped.returncode == 0
        and "Choose a preset per group" in helped.stdout
        and helped.stderr == ""
    )


@pytest.mark.slow
def test_multirun_still_reaches_the_task(tmp_path):
    """-m: Hydra launches the job; its bad setting is the task's own one-line error (exit 2), after the run folder."""
    result = run([str(BIN / "rnn-sweep"), "-m", "search=quick", "search.n_trials=0"], tmp_path)
    one_error_line(result, "search.n_trials=0")
    assert sorted(p.name for p in (tmp_path / "logs").rglob(".hydra/*")) == [
        "config.yaml",
        "hydra.yaml",
        "overrides.yaml",
    ]


# ------------------------------------------------------------------------ in-process: the pieces


def test_redact_hides_url_and_parameter_passwords():
    text = "postgresql://u:se/cret@h/db, mysql://:pw@h, host=h password=hunter2 user=u, http://h:5000/x?pwd=abc&a=1"
    assert (
        redaction.redact(text)
        == "postgresql://u:***@h/db, mysql://:***@h, host=h password=*** user=u, http://h:5000/x?pwd=***&a=1"
    )


def test_every_log_record_is_redacted_even_on_libraries_own_handlers():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    library = logging.getLogger("optuna.some_module_for_a_test")
    library.addHandler(handler)
    previous = logging.getLogRecordFactory()
    try:
        redaction.install_log_redaction()
        library.warning("cannot reach %s", f"postgresql://u:{PW}@h/db")
        try:
            raise RuntimeError(f"sqlite fails on postgresql://u:{PW}@h/db")
        except RuntimeError:
            library.exception("failed")
    finally:
        logging.setLogRecordFactory(previous)
        library.removeHandler(handler)
    shown = stream.getvalue()
    assert (
        PW not in shown
        and "cannot reach postgresql://u:***@h/db" in shown
        and "RuntimeError: sqlite fails on postgresql://u:***@h/db" in shown
    )


def test_an_unexpected_error_is_a_redacted_traceback_and_exit_1(capsys):
    previous = logging.getLogRecordFactory()

    def task(cfg):
        raise RuntimeError(f"could not reach postgresql://u:{PW}@h/db")

    try:
        with pytest.raises(SystemExit) as exiting:
            errors.hydra_task(task)(None)
    finally:
        logging.setLogRecordFactory(previous)
    err = capsys.readouterr().err
    assert (
        exiting.value.code == 1
        and "Traceback" in err
        and "postgresql://u:***@h/db" in err
        and PW not in err
    )


def test_one_line_of_hydra_output():
    traceback = (
        'Traceback (most recent call last):\n  File "x.py", line 1, in f\n    g()\n    ^^^\n'
        'yaml.parser.ParserError: while parsing\n  in "b.yaml", line 3\n\n'
        "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.\n"
    )
    assert (
        errors.one_line(traceback) == 'yaml.parser.ParserError: while parsing in "b.yaml", line 3'
    )
    listing = "In 'sweep': Could not find 'search/x'\n\nAvailable options in 'search':\n\tquick\nConfig search path:\n\tprovider=main\n"
    assert (
        errors.one_line(listing)
        == "In 'sweep': Could not find 'search/x' Available options in 'search': quick"
    )


def test_an_empty_store_file_is_a_new_store_with_a_warning(tmp_path, caplog):
    (tmp_path / "optuna.db").write_bytes(b"")
    stores.check_before_writing({}, [stores.optuna_store(f"sqlite:///{tmp_path / 'optuna.db'}")])
    assert (
        "empty file: treated as a new store" in caplog.text
        and str(tmp_path / "optuna.db") in caplog.text
    )


def test_a_foreign_sqlite_database_is_not_taken_for_a_store(tmp_path, good_mlruns):
    store = stores.mlflow_store(f"sqlite:///{good_mlruns / 'optuna.db'}")
    with pytest.raises(
        InputError,
        match=r"is an SQLite database but not an MLflow store \(no table experiments, runs\)",
    ):
        stores.check_before_writing({}, [store])


def test_an_old_optuna_schema_is_one_line(tmp_path, good_mlruns):
    shutil.copy(good_mlruns / "optuna.db", tmp_path / "optuna.db")
    with contextlib.closing(sqlite3.connect(tmp_path / "optuna.db")) as db, db:
        db.execute("UPDATE alembic_version SET version_num = 'v3.0.0.a'")
    store = stores.optuna_store(f"sqlite:///{tmp_path / 'optuna.db'}")
    with pytest.raises(InputError, match=r"run `optuna storage upgrade --storage sqlite:///"):
        with stores.opening(store):
            optuna.storages.RDBStorage(store.url)


def test_the_lock_lets_one_process_at_a_time_create_a_store(tmp_path):
    """A second process waits at the lock while the first holds it (as it does while MLflow migrates)."""
    store = stores.mlflow_store(f"sqlite:///{tmp_path / 'mlflow.db'}")
    waiter = (
        f"import sys, time; from pipeline.tracking import stores; s = stores.mlflow_store({store.url!r}); "
        "print('ready', flush=True); t = time.perf_counter()\n"
        "with stores.creation_lock(s): print(time.perf_counter() - t)"
    )
    with stores.creation_lock(store):
        other = subprocess.Popen(
            [sys.executable, "-c", waiter],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parent.parent,
        )
        assert other.stdout.readline() == "ready\n"
        time.sleep(2)
    waited = float(other.communicate(timeout=60)[0])
    assert (tmp_path / "mlflow.db.lock").exists() and waited > 1.5


def claim_waiting_trials(cfg, barrier) -> list[int]:
    """In a process of its own: ask the shared study for trials while any waits (as a worker's
    study.optimize does)."""
    from pipeline.search.study import make_study

    study = make_study(cfg)
    barrier.wait()
    claimed = []
    while study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
        claimed.append(study.ask().number)
    return claimed


@pytest.mark.slow  # three processes importing TensorFlow: 30 processor seconds
def test_processes_asking_together_never_claim_the_same_waiting_trial(tmp_path):
    """SQLite ignores SELECT ... FOR UPDATE, and pysqlite begins a transaction only at the first
    write: two workers both read the enqueued baseline as waiting and both ran it; the second's
    tell failed (`Cannot tell a COMPLETE trial`) and stopped the sweep with exit 1 (optuna#4002)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from pipeline.config import compose
    from pipeline.search.study import make_study

    cfg = compose(["search=quick", f"paths.mlruns_dir={tmp_path}"])
    study = make_study(cfg)
    waiting = 40
    for value in range(waiting):
        study.enqueue_trial({"learning_rate": 1e-3 + value * 1e-5})
    workers, context = 3, get_context("spawn")  # spawn: this process may hold TensorFlow's threads
    barrier = context.Manager().Barrier(workers)
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        claims = [pool.submit(claim_waiting_trials, cfg, barrier) for _ in range(workers)]
        claimed = [n for claim in claims for n in claim.result(timeout=300) if n < waiting]
    assert sorted(claimed) == list(range(waiting)), Counter(claimed).most_common(3)


def test_an_optuna_store_is_complete_only_once_alembic_stamped_it(tmp_path):
    """Optuna creates its tables, then stamps alembic's revision: a worker that probed between the
    two took the store for complete, opened it without the lock and stamped it too (`UNIQUE
    constraint failed: alembic_version.version_num`, exit 2), 2 barrier races in 4."""
    import sqlalchemy
    from optuna.storages._rdb.models import BaseModel

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    BaseModel.metadata.create_all(sqlalchemy.create_engine(url))  # the tables, not yet stamped
    store = stores.optuna_store(url)
    assert stores.sqlite_problem(store) == (None, False)
    optuna.storages.RDBStorage(url)  # stamps
    assert stores.sqlite_problem(store) == (None, True)
