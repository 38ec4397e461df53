"""rnn-lr-find: reading a range test's curve, recording each step's own loss, the app end to end, bad settings."""

import math
import subprocess
from pathlib import Path

import keras
import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from pipeline.config import compose as compose_sweep
from pipeline.core.errors import InputError
from pipeline.report.lr_curve import analyse, delay, format_table, smoothed
from pipeline.training.lr_find import LossPerStep, rising_schedule, run_lr_find
from pipeline.search.sweep import run_sweep
from tests.conftest import BIN

CHANCE = math.log(2)
STEPS = 300
LRS = list(np.geomspace(1e-6, 1.0, STEPS))


def fabricated(lr: float) -> float:
    """Flat at chance below 1e-3, a slow fall to 1e-2, a steep one to 3e-2, flat to 3e-1, then exploding."""
    decades = math.log10
    if lr < 1e-3:
        return CHANCE
    if lr < 1e-2:
        return CHANCE - 0.2 * decades(lr / 1e-3)
    if lr < 3e-2:
        return CHANCE - 0.2 - (CHANCE - 0.2 - 0.2) * decades(lr / 1e-2) / decades(3)
    if lr < 3e-1:
        return 0.2
    return 0.2 * 10 ** (3 * decades(lr / 3e-1))


STEP = 10 ** (6 / (STEPS - 1))  # one step's factor in learning rate
NEAR = (
    STEP**4
)  # the smoothed figures, their delay taken off, lie within 4 steps (0.08 decade) of the curve's own


def test_flat_falling_exploding_curve_gives_its_three_learning_rates():
    figures = analyse(
        LRS,
        [fabricated(lr) for lr in LRS],
        smoothing=0.9,
        start_steps=10,
        tolerance=0.02,
        divergence=4.0,
    )
    leaves = 1e-3 * 10 ** (0.02 * CHANCE / 0.2)  # where the curve has fallen 2% below its start
    assert (
        1e-3 / NEAR <= figures.plateau_edge_lr <= leaves * NEAR
    )  # between where it bends and where it is 2% down
    below = [lr for lr in LRS if lr < figures.plateau_edge_lr]
    assert figures.escape_lr_steps == pytest.approx(sum(below)) and figures.plateau_steps_at(
        1e-3
    ) == pytest.approx(sum(below) / 1e-3)
    assert (
        1e-2 <= figures.steepest_lr <= 3e-2 and figures.steepest_slope < -0.2
    )  # the steep part, not the slow one
    assert 3e-2 <= figures.min_loss_lr <= 3e-1 and figures.min_loss == pytest.approx(0.2, rel=0.05)
    blows = 3e-1 * 10 ** (math.log10(4) / 3)  # the curve reaches 4 x its minimum
    assert blows / NEAR <= figures.divergence_lr <= blows * NEAR
    assert figures.start_loss == pytest.approx(CHANCE)


@pytest.mark.parametrize("smoothing", [0.5, 0.9])
def test_the_smoothing_delay_is_taken_off(smoothing):
    """Uncorrected, an average at 0.9 would place every figure 9 steps late (x1.5 in learning rate here)."""
    losses = [fabricated(lr) for lr in LRS]
    reference = analyse(LRS, losses, smoothing=0.0, start_steps=10, tolerance=0.02, divergence=4.0)
    figures = analyse(
        LRS, losses, smoothing=smoothing, start_steps=10, tolerance=0.02, divergence=4.0
    )
    assert (
        reference.plateau_edge_lr / NEAR
        <= figures.plateau_edge_lr
        <= reference.plateau_edge_lr * NEAR
    )
    assert reference.divergence_lr / NEAR <= figures.divergence_lr <= reference.divergence_lr * NEAR


def test_delay_is_the_mean_age_of_the_averaged_losses():
    assert delay(2000, 0.9) == 9 and delay(2000, 0.98) == 49 and delay(2000, 0.0) == 0
    assert (
        delay(0, 0.9) == 0 and delay(4, 0.9) == 2
    )  # while few losses are averaged, about half of them


def test_a_curve_that_never_leaves_its_start_has_no_edge_and_says_so():
    noise = np.random.default_rng(0).normal(0, 0.002, STEPS)  # batch noise well inside the 2% band
    figures = analyse(
        LRS, list(CHANCE + noise), smoothing=0.9, start_steps=10, tolerance=0.02, divergence=4.0
    )
    assert figures.plateau_edge_lr is None and figures.divergence_lr is None
    assert figures.metrics()["left_start"] == 0 and "plateau_edge_lr" not in figures.metrics()
    table = format_table(figures, CHANCE, 0.02, 4.0, learning_rate=1e-3, steps_per_epoch=15)
    assert (
        "stayed within 2% of its start up to lr 1" in table
        and "stayed below 4 × its minimum" in table
    )


def test_smoothing_is_bias_corrected():
    assert smoothed([1.0, 1.0, 1.0], 0.9) == pytest.approx(
        [1.0, 1.0, 1.0]
    )  # not pulled towards 0 at the start
    assert smoothed([1.0, 3.0], 0.0) == [1.0, 3.0]


def test_each_step_records_its_own_batch_loss_and_the_rising_learning_rate():
    """Keras' batch logs hold the epoch's running mean: the recorder must see each batch's own loss."""
    x = np.array([[-2.0], [0.0], [1.0], [3.0], [-1.0], [2.0]], dtype="float32")
    y = np.ones(len(x), dtype="float32")
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, activation="sigmoid", kernel_initializer="ones")]
    )
    lr_cfg = OmegaConf.create(
        {"start_lr": 1e-12, "end_lr": 1e-10, "steps": len(x), "smoothing": 0.9, "divergence": 4.0}
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=rising_schedule(lr_cfg)),
        loss="binary_crossentropy",
    )
    recorder = LossPerStep(lr_cfg)
    model.fit(x, y, batch_size=1, epochs=1, shuffle=False, callbacks=[recorder], verbose=0)
    # the weights barely move at these learning rates: each loss is -log(sigmoid(x)) of its own example
    assert recorder.losses == pytest.approx(list(np.log1p(np.exp(-x[:, 0]))), rel=1e-4)
    assert recorder.lrs == pytest.approx(list(np.geomspace(1e-12, 1e-10, len(x))), rel=1e-4)


def test_training_stops_when_the_smoothed_loss_blows_up():
    x = np.random.default_rng(0).normal(size=(640, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    lr_cfg = OmegaConf.create(
        {"start_lr": 1e-3, "end_lr": 1e6, "steps": 20, "smoothing": 0.5, "divergence": 4.0}
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=rising_schedule(lr_cfg)),
        loss="binary_crossentropy",
    )
    recorder = LossPerStep(lr_cfg)
    model.fit(x, y, batch_size=32, epochs=1, callbacks=[recorder], verbose=0)
    curve = smoothed(recorder.losses, 0.5)
    assert len(recorder.losses) < 20, "it should stop before the end of the range"
    assert not curve[-1] <= 4 * min(curve[:-1]), "it stops at the first step past 4 x the minimum"
    assert all(later <= 4 * min(curve[: i + 1]) for i, later in enumerate(curve[1:-1], start=1))


@pytest.fixture
def lr_find_cfg(tmp_path, data_cache, mlflow_uri):
    def make(*overrides: str):
        return compose_sweep(
            [
                "data=sentences",
                "data.subset=400",
                "data.max_len=20",
                "model=gru",
                "optimizer=rmsprop",
                "train.batch_size=64",
                f"paths.cache_dir={data_cache}",
                f"paths.mlruns_dir={tmp_path / 'mlruns'}",
                f"paths.log_dir={tmp_path / 'logs'}",
                f"tracking.uri={mlflow_uri}",
                "tracking.experiment=test-lr-find-bad",
                *overrides,
            ],
            config_name="lr_find",
        )

    return make


@pytest.mark.parametrize(
    "override, message",
    [
        ("lr_find.steps=0", r"lr_find.steps=0; it must be an integer >= 2"),
        (
            "lr_find.end_lr=1e-7",
            r"lr_find.start_lr=1e-06 >= lr_find.end_lr=1e-07; the range must rise",
        ),
        ("lr_find.start_lr=0", r"lr_find.start_lr=0.0; it must be a finite number > 0"),
        ("lr_find.smoothing=1", r"lr_find.smoothing=1.0; it must lie in \[0, 1\)"),
        ("lr_find.divergence=1", r"lr_find.divergence=1.0; it must be a finite number > 1"),
        ("lr_find.start_steps=300", r"lr_find.start_steps=300; it must be below lr_find.steps=300"),
        ("lr_find.end_lr=high", r"lr_find.end_lr='high'; it must be a finite number > 0"),
        ("+lr_find.warmup=3", r"lr_find.warmup is not a setting rnnsweep reads"),
    ],
)
def test_bad_range_settings_are_rejected_before_anything_is_recorded(
    lr_find_cfg, mlflow_uri, override, message
):
    with pytest.raises(InputError, match=message):
        run_lr_find(
            lr_find_cfg(override)
        )  # a value of the wrong type is rejected while composing, others by the check
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("test-lr-find-bad")
    assert experiment is None or not client.search_runs([experiment.experiment_id])


@pytest.mark.slow
def test_cli_start_above_end_is_one_line_exit_2_and_nothing_written(tmp_path):
    command = [BIN / "rnn-lr-find", "data=sentences", "lr_find.start_lr=0.1", "lr_find.end_lr=0.01"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [
        line for line in result.stderr.splitlines() if line.strip() and "][" not in line
    ]  # Hydra's log lines aside
    assert lines == ["error: lr_find.start_lr=0.1 >= lr_find.end_lr=0.01; the range must rise"], (
        result.stderr[-3000:]
    )
    assert not (tmp_path / "mlruns").exists()


@pytest.mark.slow
def test_cli_on_tiny_data_records_the_curve_the_figures_and_the_plot(tmp_path, data_cache):
    steps = (
        40  # subset 400: 320 training texts, 5 batches of 64 per epoch, so the range spans 8 epochs
    )
    command = [
        BIN / "rnn-lr-find",
        "model=gru",
        "optimizer=rmsprop",
        "data=sentences",
        "data.subset=400",
        "data.max_len=20",
        "train.batch_size=64",
        f"lr_find.steps={steps}",
        "lr_find.start_steps=5",
        "lr_find.start_lr=1e-5",
        "lr_find.end_lr=10",
        f"paths.cache_dir={data_cache}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for row in ("starting loss", "plateau edge", "steepest descent", "minimum loss", "blows up"):
        assert row in result.stdout
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("rnnsweep").experiment_id])
    assert (
        run.info.status == "FINISHED"
        and run.data.tags["entry"] == "rnn-lr-find"
        and run.data.tags["model"] == "gru"
    )
    lrs = [
        m.value
        for m in sorted(
            client.get_metric_history(run.info.run_id, "learning_rate"), key=lambda m: m.step
        )
    ]
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert (
        len(lrs) == len(losses) == run.data.metrics["steps_run"] and len(lrs) > 5
    )  # more than one epoch's batches
    assert np.allclose(
        np.array(lrs[1:]) / lrs[:-1], (10 / 1e-5) ** (1 / (steps - 1)), rtol=1e-4
    )  # exponential per step
    assert lrs[0] == pytest.approx(1e-5, rel=1e-4)
    assert (
        run.data.metrics["chance_loss"] == pytest.approx(CHANCE, rel=0.01)
        and "min_loss_lr" in run.data.metrics
    )
    assert "lr_find.png" in [a.path for a in client.list_artifacts(run.info.run_id)]
    assert run.data.params["lr_find.steps"] == str(steps)


# ------------------------------------------------------------------------------- search.lr_range=auto


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            ["search=quick", "search.lr_range=sometimes"],
            r"search.lr_range='sometimes'; allowed: null, auto",
        ),
        (
            ["search=plateau", "search.lr_range=auto"],
            r"search.lr_range=auto needs a float entry over optimizer.learning_rate",
        ),
        (
            ["search=quick", "search.lr_range=auto", "lr_find.steps=1"],
            r"lr_find.steps=1; it must be an integer >= 2",
        ),
    ],
)
def test_bad_lr_range_is_rejected_before_any_study_or_run(sweep_overrides, bad, message):
    overrides = [*sweep_overrides, *bad]
    with pytest.raises(InputError, match=message):
        run_sweep(compose_sweep(overrides), overrides)
    assert not (Path(compose_sweep(overrides).paths.mlruns_dir) / "optuna.db").exists()


@pytest.mark.slow
def test_lr_range_auto_bounds_the_learning_rate_from_a_range_test_and_the_study_keeps_them(
    sweep_overrides,
):
    overrides = [
        *sweep_overrides,
        "search=quick",
        "search.lr_range=auto",
        "search.n_trials=2",
        "train.epochs=1",
        "lr_find.steps=150",
    ]
    assert run_sweep(compose_sweep(overrides), overrides) == 0
    cfg = compose_sweep(overrides)
    study = optuna.load_study(
        study_name=cfg.search.study_name,
        storage=f"sqlite:///{Path(cfg.paths.mlruns_dir) / 'optuna.db'}",
    )
    low, high = study.user_attrs["lr_range"]
    client = MlflowClient(cfg.tracking.uri)
    [first] = client.search_runs(
        [client.get_experiment_by_name(cfg.tracking.experiment).experiment_id],
        "tags.entry = 'rnn-sweep'",
    )
    assert (
        first.data.metrics["lr_find_plateau_edge_lr"] == low
        and first.data.metrics["lr_find_min_loss_lr"] == high
    )
    assert "lr_find.png" in [a.path for a in client.list_artifacts(first.info.run_id)]
    assert (
        run_sweep(compose_sweep(overrides), overrides) == 0
    )  # continued: the same bounds, no second range test
    study = optuna.load_study(
        study_name=cfg.search.study_name,
        storage=f"sqlite:///{Path(cfg.paths.mlruns_dir) / 'optuna.db'}",
    )
    assert study.user_attrs["lr_range"] == [low, high] and len(study.trials) == 4
    assert all(
        low <= t.params["learning_rate"] <= high
        for t in study.trials
        if "learning_rate" in t.params
    )
    parents = client.search_runs(
        [client.get_experiment_by_name(cfg.tracking.experiment).experiment_id],
        "tags.entry = 'rnn-sweep'",
    )
    second = next(run for run in parents if run.info.run_id != first.info.run_id)
    assert "lr_find.png" not in [a.path for a in client.list_artifacts(second.info.run_id)]
    assert float(second.data.params["search.space.learning_rate.low"]) == low
