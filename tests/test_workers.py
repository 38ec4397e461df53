"""Many workers, one study: 2 rnn-sweep processes on one PostgreSQL storage and one real `mlflow server`."""

import re
import subprocess
import threading
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from pipeline.tracking import mlflow_runs
from tests.conftest import BIN, CHARTS, SWEEP_SHRINK
from tests.services import PASSWORD, mlflow_server, postgres_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("servers"),
]  # one test process starts the servers for both tests
LOCK_TROUBLE = re.compile(
    r"deadlock|could not obtain lock|lock timeout|database is locked|LockNotAvailable",
    re.IGNORECASE,
)
TRIALS_EACH = 3
STARTING_TOGETHER, NEW_EXPERIMENTS = 8, 6


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """One PostgreSQL cluster (databases optuna and mlflow) and one `mlflow server` over it, for this module:
    yields the PostgreSQL URL, the server's URL and both servers' logs."""
    folder = tmp_path_factory.mktemp("servers")
    with postgres_server(("optuna", "mlflow")) as (postgres, postgres_log):
        with mlflow_server(
            f"{postgres}/mlflow", folder / "artifacts", folder / "mlflow-server.log"
        ) as url:
            yield postgres, url, (postgres_log, folder / "mlflow-server.log")


def test_workers_starting_together_on_a_new_experiment_all_open_it(servers, make_cfg):
    """Regression (CI, 2026-11-24): two workers tagged a new experiment at once and the server's
    INSERT of `mlflow.experimentKind` raised UniqueViolation in the slower one, which exited 2."""
    url = servers[1]
    failures, ids = [], {}
    for round_number in range(NEW_EXPERIMENTS):
        cfg = make_cfg(f"tracking.uri={url}", f"tracking.experiment=together-{round_number}")
        start = threading.Barrier(STARTING_TOGETHER)

        def open_experiment(worker):
            start.wait()
            try:
                ids[round_number, worker] = mlflow_runs.configure(cfg)
            except Exception as error:
                failures.append(f"round {round_number}, worker {worker}: {error}")

        workers = [
            threading.Thread(target=open_experiment, args=(worker,))
            for worker in range(STARTING_TOGETHER)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(120)
        assert not failures, "\n".join(failures)
        assert len({ids[round_number, worker] for worker in range(STARTING_TOGETHER)}) == 1
        experiment = MlflowClient(url).get_experiment_by_name(f"together-{round_number}")
        assert experiment.tags[mlflow_runs.EXPERIMENT_KIND] == mlflow_runs.MODEL_DEVELOPMENT


def test_invocations_logging_the_same_new_dataset_at_once_all_log_it(servers, make_cfg):
    """Regression (full run, 2026-12-07): two invocations logged the same data splits at once; the
    server's INSERT into `datasets` raised UniqueViolation (`dataset_pk`) in the slower one, exit 1."""
    import mlflow

    from pipeline.data.texts import prepare_data
    from pipeline.tracking.datasets import log_datasets

    url = servers[1]
    cfg = make_cfg(
        f"tracking.uri={url}",
        "tracking.experiment=datasets-together",
        "data=sentences",
        "data.subset=40",
        "data.max_len=8",
    )
    data = prepare_data(cfg.data, cfg.paths.cache_dir)
    client = MlflowClient(url)
    experiment = client.create_experiment("datasets-together")
    failures = []
    for round_number in range(NEW_EXPERIMENTS):
        data_cfg = cfg.data.copy()
        data_cfg.max_len = 8 + round_number  # another cache key: a dataset the server has not seen
        runs = [client.create_run(experiment).info.run_id for _ in range(STARTING_TOGETHER)]
        start = threading.Barrier(STARTING_TOGETHER)

        def log(run_id):
            start.wait()
            try:
                mlflow.set_tracking_uri(url)
                log_datasets(data, data_cfg, ("train", "val"), run_id=run_id)
            except Exception as error:
                failures.append(f"round {round_number}: {error}"[:300])

        threads = [threading.Thread(target=log, args=(run_id,)) for run_id in runs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert (
            all(len(client.get_run(run_id).inputs.dataset_inputs) == 2 for run_id in runs)
            or failures
        )
    assert not failures, "\n".join(failures)


def test_two_workers_share_one_postgres_study_and_one_mlflow_server(tmp_path, data_cache, servers):
    postgres, url, server_logs = servers
    already_logged = {
        path: path.stat().st_size for path in server_logs
    }  # the servers' lines before this test
    command = [
        str(BIN / "rnn-sweep"),
        *SWEEP_SHRINK,
        CHARTS,
        "search=quick",
        f"search.n_trials={TRIALS_EACH}",
        f"search.storage={postgres}/optuna",
        "search.study_name=shared",
        f"tracking.uri={url}",
        "tracking.experiment=workers",
        "train.threads.intra_op=1",
        "train.threads.inter_op=1",
        f"paths.cache_dir={data_cache}",
    ]
    workers = []
    for index in range(2):
        log = open(tmp_path / f"worker{index}.log", "w")
        workers.append(
            subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        )
    codes = [worker.wait(900) for worker in workers]
    logs = {path.name: path.read_text() for path in tmp_path.glob("*.log")}
    logs |= {
        path.name: path.read_bytes()[already_logged[path] :].decode(errors="replace")
        for path in server_logs
    }
    assert codes == [0, 0], logs["worker0.log"][-3000:] + logs["worker1.log"][-3000:]

    study = optuna.load_study(study_name="shared", storage=f"{postgres}/optuna")
    numbers = [t.number for t in study.trials if t.state.is_finished()]
    assert len(numbers) == 2 * TRIALS_EACH == len(set(numbers)) == len(study.trials)

    client = MlflowClient(url)
    runs = client.search_runs([client.get_experiment_by_name("workers").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 2 and all(r.info.status == "FINISHED" for r in runs)
    assert sorted(int(c.data.tags["trial_number"]) for c in children) == sorted(numbers), (
        "one child run per trial"
    )
    assert {t.user_attrs["mlflow_run_id"] for t in study.trials} == {
        c.info.run_id for c in children
    }

    for name, text in logs.items():
        assert not LOCK_TROUBLE.search(text), f"{name}: {LOCK_TROUBLE.search(text).group(0)}"
    recorded = [str(run.data.params) + str(run.data.tags) for run in runs]
    for parent in parents:
        for artifact in ("config.yaml", "search_space.yaml", "summary.txt"):
            recorded.append(
                Path(client.download_artifacts(parent.info.run_id, artifact)).read_text()
            )
    recorded.append(
        Path(client.download_artifacts(children[0].info.run_id, "config.yaml")).read_text()
    )
    assert not [text for text in recorded if PASSWORD in text], (
        "the storage password reached MLflow"
    )
    assert any("sweeper:***@127.0.0.1" in text for text in recorded)
