"""Many workers, one study: 2 rnn-sweep processes on one PostgreSQL storage and one real `mlflow server`."""

import re
import subprocess
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import BIN, SWEEP_SHRINK
from tests.services import PASSWORD, mlflow_server, postgres_server

pytestmark = pytest.mark.slow
LOCK_TROUBLE = re.compile(r"deadlock|could not obtain lock|lock timeout|database is locked|LockNotAvailable", re.IGNORECASE)
TRIALS_EACH = 3


def test_two_workers_share_one_postgres_study_and_one_mlflow_server(tmp_path, data_cache):
    with postgres_server(("optuna", "mlflow")) as (postgres, postgres_log):
        with mlflow_server(f"{postgres}/mlflow", tmp_path / "artifacts", tmp_path / "mlflow-server.log") as url:
            command = [
                str(BIN / "rnn-sweep"), *SWEEP_SHRINK, "search=quick", f"search.n_trials={TRIALS_EACH}",
                f"search.storage={postgres}/optuna", "search.study_name=shared", f"tracking.uri={url}",
                "tracking.experiment=workers", "train.threads.intra_op=1", "train.threads.inter_op=1",
                f"paths.cache_dir={data_cache}",
            ]
            workers = []
            for index in range(2):
                log = open(tmp_path / f"worker{index}.log", "w")
                workers.append(subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT))
            codes = [worker.wait(900) for worker in workers]
            logs = {path.name: path.read_text() for path in [*tmp_path.glob("*.log"), postgres_log]}
            assert codes == [0, 0], logs["worker0.log"][-3000:] + logs["worker1.log"][-3000:]

            study = optuna.load_study(study_name="shared", storage=f"{postgres}/optuna")
            numbers = [t.number for t in study.trials if t.state.is_finished()]
            assert len(numbers) == 2 * TRIALS_EACH == len(set(numbers)) == len(study.trials)

            client = MlflowClient(url)
            runs = client.search_runs([client.get_experiment_by_name("workers").experiment_id])
            parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
            children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
            assert len(parents) == 2 and all(r.info.status == "FINISHED" for r in runs)
            assert sorted(int(c.data.tags["trial_number"]) for c in children) == sorted(numbers), "one child run per trial"
            assert {t.user_attrs["mlflow_run_id"] for t in study.trials} == {c.info.run_id for c in children}

            for name, text in logs.items():
                assert not LOCK_TROUBLE.search(text), f"{name}: {LOCK_TROUBLE.search(text).group(0)}"
            recorded = [str(run.data.params) + str(run.data.tags) for run in runs]
            for parent in parents:
                for artifact in ("config.yaml", "search_space.yaml", "summary.txt"):
                    recorded.append(Path(client.download_artifacts(parent.info.run_id, artifact)).read_text())
            recorded.append(Path(client.download_artifacts(children[0].info.run_id, "config.yaml")).read_text())
            assert not [text for text in recorded if PASSWORD in text], "the storage password reached MLflow"
            assert any("sweeper:***@127.0.0.1" in text for text in recorded)
