"""Training figures and what one rnn-train run leaves in MLflow."""

import json
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from pipeline.models import export
from pipeline.tracking import mlflow_runs
from pipeline.data.texts import prepare_data
from pipeline.core.errors import InputError
from pipeline.training.train import longest_stall, plateau_epochs, run_training, train_model


@pytest.mark.parametrize(
    "losses, expected",
    [
        ([0.693, 0.692, 0.690, 0.689, 0.60, 0.40], 4),  # within 2% of 0.693 until 0.60
        (
            [0.693, 0.50, 0.693],
            1,
        ),  # the first epoch always counts; the run ends at the first escape
        ([0.693] * 5, 5),  # never learns
        ([0.693, float("nan")], 1),
        ([], 0),
    ],
)
def test_plateau_epochs(losses, expected):
    assert plateau_epochs(losses, 0.02) == expected


def test_plateau_tolerance_is_relative():
    assert plateau_epochs([1.0, 1.04, 1.06], 0.05) == 2
    assert plateau_epochs([1.0, 1.04, 1.06], 0.01) == 1


@pytest.mark.parametrize(
    "val_losses, expected",
    [([0.6, 0.5, 0.55, 0.56, 0.4, 0.45], 2), ([0.6, 0.5, 0.4], 0), ([0.5, 0.5, 0.5], 2), ([], 0)],
)
def test_longest_stall(val_losses, expected):
    assert longest_stall(val_losses) == expected


def test_redact_hides_passwords_in_urls_only():
    text = "postgresql+psycopg2://sweeper:s3cr3t@db:5432/optuna and http://host:5000"
    assert (
        mlflow_runs.redact(text)
        == "postgresql+psycopg2://sweeper:***@db:5432/optuna and http://host:5000"
    )


def test_run_records_curves_figures_and_artifacts(make_cfg):
    cfg = make_cfg(
        "model=gru",
        "train.epochs=3",
        "train.log_model=true",
        "tracking.experiment=test-run",
        "~callbacks.early_stopping",
    )
    result = run_training(cfg)
    client = MlflowClient(cfg.tracking.uri)
    run = client.search_runs([client.get_experiment_by_name("test-run").experiment_id])[0]
    assert run.info.status == "FINISHED" and run.info.run_name == "gru-sentences"
    for name in (
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "learning_rate",
        "epoch_seconds",
        "samples_per_second",
    ):
        history = client.get_metric_history(run.info.run_id, name)
        assert [m.step for m in history] == [1, 2, 3], name
        np.testing.assert_allclose([m.value for m in history], result.history[name], rtol=1e-6)
    assert all(
        m.value == pytest.approx(1e-3)
        for m in client.get_metric_history(run.info.run_id, "learning_rate")
    )
    for name in (
        "plateau_epochs",
        "longest_stall",
        "prep_seconds",
        "build_seconds",
        "fit_seconds",
        "evaluate_seconds",
        "params",
        "test_loss",
        "test_accuracy",
    ):
        assert name in run.data.metrics, name
    assert run.data.metrics["params"] == result.model.count_params()
    assert (
        run.data.params["model.body"] == "gru"
        and run.data.params["optimizer._target_"] == "keras.optimizers.Adam"
    )
    assert run.data.params["data_size.train"] == "1800" and run.data.tags["data_cache"] in (
        "hit",
        "miss",
    )
    assert {k: run.data.tags[k] for k in ("data", "model", "optimizer")} == {
        "data": "sentences",
        "model": "gru",
        "optimizer": "adam",
    }
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "learning_curves.png", "vocabulary.txt"} <= artifacts
    folder = client.download_artifacts(run.info.run_id, "")
    assert Path(folder, "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "body: gru" in Path(folder, "config.yaml").read_text()
    mlflow.set_tracking_uri(cfg.tracking.uri)
    assert (
        export.stored_id_model(export.model_of_run(run.info.run_id)).count_params()
        == result.model.count_params()
    )


def test_secret_in_a_tracking_url_never_reaches_mlflow(make_cfg, monkeypatch):
    cfg = make_cfg(
        "train.epochs=1",
        "tracking.experiment=test-secret",
        "tracking.run_name=postgresql://u:hunter2@db/optuna",
    )
    run_training(cfg)
    client = MlflowClient(cfg.tracking.uri)
    run = client.search_runs([client.get_experiment_by_name("test-secret").experiment_id])[0]
    recorded = json.dumps([run.data.params, run.data.tags])
    recorded += Path(client.download_artifacts(run.info.run_id, "config.yaml")).read_text()
    assert "hunter2" not in recorded and "u:***@db" in recorded


def test_an_exception_inside_training_leaves_no_run_running(make_cfg):
    cfg = make_cfg("tracking.experiment=test-crash", "train.epochs=2")

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise RuntimeError("disk full")

    mlflow_runs.configure(cfg)
    data = prepare_data(cfg.data, cfg.paths.cache_dir)
    with pytest.raises(RuntimeError, match="disk full"), mlflow.start_run():
        train_model(cfg, data, extra_callbacks=[Crash()])
    client = MlflowClient(cfg.tracking.uri)
    [run] = client.search_runs([client.get_experiment_by_name("test-crash").experiment_id])
    assert run.info.status == "FAILED"


def test_nan_loss_stops_the_run_and_is_reported(make_cfg):
    cfg = make_cfg(
        "optimizer=sgd", "optimizer.learning_rate=1e30", "train.epochs=4", "model=pooling"
    )
    data = prepare_data(cfg.data, cfg.paths.cache_dir)
    result = train_model(cfg, data)
    assert result.summary["nan_loss"] == 1 and result.summary["epochs_run"] == 1


def misspell_patience(cfg):
    OmegaConf.set_struct(cfg, False)
    cfg.callbacks.early_stopping.patiense = 3


@pytest.mark.parametrize(
    "override, mutate, message",
    [
        ("train.epochs=0", None, r"train.epochs=0; it must be an integer >= 1"),
        (
            "optimizer.learning_rate=-0.1",
            None,
            r"optimizer.learning_rate=-0.1; it must be a finite number > 0",
        ),
        ("+optimizer.warp_speed=9", None, r"optimizer: .*warp_speed"),
        ("model.units=0", None, r"model.units=0; it must be an integer >= 1"),
        ("train.verbose=5", None, r"train.verbose=5; allowed: 0, 1, 2"),
        ("train.shuffle=maybe", None, r"train.shuffle='maybe'; allowed: true, false"),
        (
            "tracking.ui_port=99999",
            None,
            r"tracking.ui_port=99999; it must be an integer from 1 to 65535",
        ),
        (
            "data.encoding=klingon",
            None,
            r"data.encoding='klingon' is not a text encoding Python knows",
        ),
        ("data.max_len=1", None, r"data.max_len=1; it must be an integer >= 3"),
        ("seed=1", misspell_patience, r"callbacks: .*patiense"),
    ],
)
def test_bad_training_settings_are_rejected_before_any_run(
    make_cfg, mlflow_uri, override, mutate, message
):
    with pytest.raises(InputError, match=message):
        cfg = make_cfg(
            "tracking.experiment=test-bad", override
        )  # a value of the wrong type stops here
        if mutate:
            mutate(cfg)
        run_training(cfg)
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("test-bad")
    assert experiment is None or not client.search_runs([experiment.experiment_id])
