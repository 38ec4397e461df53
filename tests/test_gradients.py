"""The gradient signal per epoch (train.log_gradients): grad_norm and update_ratio in History and MLflow,
real figures that follow the learning rate, logging that changes no result, and the plateau/escape means."""

import math

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from pipeline.report import sweep_report
from pipeline.data.texts import prepare_data
from pipeline.core.errors import InputError
from pipeline.training.gradients import plateau_gradient_figures
from pipeline.config import check as check_config
from pipeline.training.train import run_training, train_model

GRADIENTS = ("grad_norm", "update_ratio")


def test_gradient_figures_are_per_epoch_logs_in_history_and_mlflow(make_cfg):
    cfg = make_cfg(
        "model=gru", "train.epochs=2", "callbacks=none", "tracking.experiment=test-gradients"
    )
    result = run_training(cfg)
    client = MlflowClient(cfg.tracking.uri)
    [run] = client.search_runs([client.get_experiment_by_name("test-gradients").experiment_id])
    for name in GRADIENTS:
        values = result.history[name]
        assert len(values) == 2 and all(math.isfinite(v) and v > 0 for v in values), name
        logged = client.get_metric_history(run.info.run_id, name)
        assert [m.step for m in logged] == [1, 2], name
        np.testing.assert_allclose([m.value for m in logged], values, rtol=1e-6)
    assert not any(
        key.startswith("val_") and key.removeprefix("val_") in GRADIENTS for key in result.history
    )


def test_a_tiny_learning_rate_moves_the_weights_less_than_a_large_one(make_cfg):
    cfg = make_cfg("model=gru", "optimizer=rmsprop", "callbacks=none")
    data = prepare_data(cfg.data, cfg.paths.cache_dir)
    ratio = {}
    for rate in (1e-5, 1e-2):
        history = train_model(
            make_cfg(
                "model=gru",
                "optimizer=rmsprop",
                "callbacks=none",
                f"optimizer.learning_rate={rate}",
            ),
            data,
        ).history
        ratio[rate] = history["update_ratio"][0]
    assert ratio[1e-5] * 100 < ratio[1e-2], ratio


def test_logging_the_gradients_only_reads_them(make_cfg):
    cfg = make_cfg("model=gru", "train.epochs=2", "callbacks=none")
    data = prepare_data(cfg.data, cfg.paths.cache_dir)
    logged = train_model(cfg, data).history
    plain = train_model(
        make_cfg("model=gru", "train.epochs=2", "callbacks=none", "train.log_gradients=false"), data
    ).history
    assert not set(GRADIENTS) & set(plain)
    for name in (
        "loss",
        "val_loss",
        "accuracy",
    ):  # to float rounding: TensorFlow's threads may sum in another order
        np.testing.assert_allclose(logged[name], plain[name], rtol=1e-5, err_msg=name)


def test_bad_log_gradients_is_named(make_cfg):
    with pytest.raises(InputError, match=r"train.log_gradients='maybe'; allowed: true, false"):
        check_config(make_cfg("train.log_gradients=maybe"))


def test_plateau_and_escape_means():
    history = {
        "grad_norm": [0.1, 0.3, 0.2, 2.0, 4.0],
        "update_ratio": [1e-4, 3e-4, 2e-4, 1e-3, 3e-3],
    }
    figures = plateau_gradient_figures(history, 3)
    assert figures == pytest.approx(
        {
            "plateau_grad_norm": 0.2,
            "escape_grad_norm": 3.0,
            "plateau_update_ratio": 2e-4,
            "escape_update_ratio": 2e-3,
        }
    )
    assert set(plateau_gradient_figures(history, 5)) == {
        "plateau_grad_norm",
        "plateau_update_ratio",
    }, "censored: no escape"
    assert plateau_gradient_figures(history, 1) == {}, "one epoch is no plateau"
    assert plateau_gradient_figures({"loss": [0.7] * 5}, 3) == {}, "not logged: no figures"


def test_learning_curves_get_a_gradient_panel_when_logged():
    history = {
        "loss": [0.7, 0.6],
        "val_loss": [0.7, 0.65],
        "accuracy": [0.5, 0.6],
        "val_accuracy": [0.5, 0.55],
        "grad_norm": [0.1, 0.2],
        "update_ratio": [1e-3, 2e-3],
    }
    figure = sweep_report.learning_curves_figure(history, "t", 0.693)
    assert [axis.get_title() for axis in figure.axes[:3]] == ["loss", "accuracy", "gradient signal"]
    sweep_report.plt.close(figure)
    without = sweep_report.learning_curves_figure(
        {k: v for k, v in history.items() if k not in GRADIENTS}, "t"
    )
    assert len(without.axes) == 2
    sweep_report.plt.close(without)
