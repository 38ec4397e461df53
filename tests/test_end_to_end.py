"""End to end on the real data (slow: seconds to a minute each; CI runs them too)."""

import os
import signal
import subprocess
import time

import pytest
from mlflow.tracking import MlflowClient

from pipeline.data.texts import prepare_data
from pipeline.training.train import run_training
from tests.conftest import BIN
from tests.services import free_port
from tests.helpers.http import wait_for_http
from tests.helpers.processes import session_command_lines

pytestmark = pytest.mark.slow


def test_rnn_train_cli_on_real_sentences_ends_with_where_to_look(tmp_path, data_cache):
    command = [
        BIN / "rnn-train",
        "data=sentences",
        "model=gru",
        "train.epochs=2",
        f"paths.cache_dir={data_cache}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test_accuracy" in result.stdout and "rnn-ui" in result.stdout.splitlines()[-2]
    assert "then open http://127.0.0.1:5000" in result.stdout.splitlines()[-2]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("rnnsweep").experiment_id])
    assert (
        run.info.status == "FINISHED"
        and len(client.get_metric_history(run.info.run_id, "val_loss")) == 2
    )
    assert list((tmp_path / "logs" / "train").glob("*/*.log")), "Hydra keeps a log file per run"


def test_cfg_job_prints_the_composed_config_without_training(tmp_path):
    result = subprocess.run(
        [BIN / "rnn-train", "model=gru", "data=sentences", "--cfg", "job"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert (
        result.returncode == 0
        and "body: gru" in result.stdout
        and "name: sentences" in result.stdout
    )
    assert not (tmp_path / "mlruns").exists()


def test_real_imdb_archive_subset_trains_and_second_preparation_hits_the_cache(make_cfg):
    cfg = make_cfg("data=imdb", "data.subset=1000", "data.max_len=100", "model=pooling")
    first = prepare_data(cfg.data, cfg.paths.cache_dir)
    assert (
        first.sizes() == {"train": 800, "val": 200, "test": 1000} and len(first.vocabulary) == 10000
    )
    result = run_training(cfg)
    assert (
        result.summary["epochs_run"] == 1 and prepare_data(cfg.data, cfg.paths.cache_dir).cache_hit
    )


def test_seed_004_plateau_is_reproduced_and_falls_with_the_learning_rate(make_cfg):
    """GRU 32 on the UCI sentences with RMSprop, batch 128, 40 epochs: the plateau at lr 1e-4, none at 1e-2."""
    plateau = {}
    for learning_rate in (1e-4, 1e-2):
        cfg = make_cfg(
            "model=gru",
            "optimizer=rmsprop",
            f"optimizer.learning_rate={learning_rate}",
            "train.epochs=40",
            "train.batch_size=128",
            "callbacks=none",
            "train.evaluate_test=false",
            "tracking.experiment=test-plateau",
        )
        plateau[learning_rate] = run_training(cfg).summary["plateau_epochs"]
    assert plateau[1e-4] >= 8 and plateau[1e-2] <= 2, plateau


def test_rnn_ui_serves_the_local_store_on_loopback(tmp_path):
    port = free_port()
    command = [
        BIN / "rnn-ui",
        f"tracking.ui_port={port}",
        f"paths.mlruns_dir={tmp_path / 'mlruns'}",
    ]
    with open(tmp_path / "ui.log", "w") as log:
        ui = subprocess.Popen(
            command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", ui, tmp_path / "ui.log")
        assert (
            f"--backend-store-uri sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
            in (tmp_path / "ui.log").read_text()
        )
        time.sleep(3)  # MLflow starts its job runner beside the server, not before it answers
        started = session_command_lines(ui.pid)
        assert not [line for line in started if "mlflow.server.jobs" in line], started
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(30)
    said = (tmp_path / "ui.log").read_text()
    assert "its first start can take a minute" in said
    assert "DeprecationWarning" not in said, "the README walk took MLflow's notices for errors"
