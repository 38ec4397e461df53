"""rnn-lr-find: the learning-rate range test.

One short training run of the configured model, data and optimizer whose learning rate rises
exponentially every step, from `lr_find.start_lr` to `lr_find.end_lr`; each step's training loss is
recorded against its learning rate, and the run stops when the smoothed loss blows up.
pipeline/lr_curve.py reads the curve: the plateau edge, the steepest descent, the minimum and the
blow-up. Everything goes to one MLflow run.
"""

import dataclasses
import logging
import math
import time

import keras
import mlflow
from mlflow.entities import Metric
from omegaconf import DictConfig

from pipeline import config
from pipeline.report import lr_curve
from pipeline.tracking import mlflow_runs
from pipeline.data.batching import training_stream
from pipeline.data.texts import Dataset
from pipeline.core.errors import InputError
from pipeline.models.zoo import model_label
from pipeline.models.scores import loss_name
from pipeline.training.train import StopOnSignal, new_model, single_run

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RangeTest:
    lrs: list[float]  # learning rate of each step run
    losses: list[float]  # training loss of each step (that batch's, not the epoch's running mean)
    seconds: float  # building and fitting


def rising_schedule(lr_cfg: DictConfig) -> keras.optimizers.schedules.ExponentialDecay:
    """Keras' exponential decay with a rate above 1: lr = start_lr * (end_lr / start_lr) ** (step /
    (steps - 1))."""
    return keras.optimizers.schedules.ExponentialDecay(
        lr_cfg.start_lr, decay_steps=lr_cfg.steps - 1, decay_rate=lr_cfg.end_lr / lr_cfg.start_lr
    )


class LossPerStep(keras.callbacks.Callback):
    """Records each step's learning rate and training loss; stops training when the smoothed loss
    blows up."""

    def __init__(self, lr_cfg: DictConfig):
        super().__init__()
        self.lrs, self.losses = [], []
        self.smoothed, self.minimum, self.divergence = (
            lr_curve.SmoothedLoss(lr_cfg.smoothing),
            math.inf,
            lr_cfg.divergence,
        )

    def on_train_batch_begin(self, batch, logs=None):
        # Keras' batch logs carry the epoch's running mean loss; reset, they carry this step's own
        # loss.
        self.model.reset_metrics()
        self.lrs.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))
        smoothed = self.smoothed.add(self.losses[-1])
        if len(self.losses) > 1 and lr_curve.blown_up(smoothed, self.minimum, self.divergence):
            self.model.stop_training = True
        self.minimum = min(self.minimum, smoothed)


def range_test(cfg: DictConfig, data: Dataset) -> RangeTest:
    """Train `lr_find.steps` batches of the training stream (reshuffled past an epoch), the learning
    rate rising."""
    keras.utils.set_random_seed(cfg.train.seed)
    started = time.perf_counter()
    model = new_model(cfg, data)[0]
    optimizer = config.instantiate(
        cfg.optimizer, "optimizer", learning_rate=rising_schedule(cfg.lr_find)
    )
    model.compile(optimizer=optimizer, loss=loss_name(data.num_classes))
    recorder = LossPerStep(cfg.lr_find)
    model.fit(
        training_stream(data.x_train, data.y_train, cfg.train, cfg.train.seed).repeat(),
        steps_per_epoch=cfg.lr_find.steps,  # one Keras epoch of exactly the steps of the range
        epochs=1,
        shuffle=False,
        callbacks=[recorder, StopOnSignal()],
        verbose=0,
    )
    if not math.isfinite(recorder.losses[0]):
        raise InputError(
            f"lr_find.start_lr={cfg.lr_find.start_lr}: the loss is not a number from the first "
            "step; lower it"
        )
    return RangeTest(
        lrs=recorder.lrs, losses=recorder.losses, seconds=time.perf_counter() - started
    )


def read_curve(test: RangeTest, lr_cfg: DictConfig) -> lr_curve.RangeFigures:
    return lr_curve.analyse(
        test.lrs,
        test.losses,
        lr_cfg.smoothing,
        lr_cfg.start_steps,
        lr_cfg.tolerance,
        lr_cfg.divergence,
    )


def steps_per_epoch(cfg: DictConfig, data: Dataset) -> int:
    return -(-len(data.y_train) // cfg.train.batch_size)


def plateau_figures(
    figures: lr_curve.RangeFigures, learning_rate: float, epoch_steps: int
) -> dict[str, float]:
    """The plateau to expect when training at the configured constant learning rate."""
    steps = figures.plateau_steps_at(learning_rate)
    return (
        {}
        if steps is None
        else {"expected_plateau_steps": steps, "expected_plateau_epochs": steps / epoch_steps}
    )


def log_range_test(
    test: RangeTest,
    figures: lr_curve.RangeFigures,
    chance_loss: float,
    lr_cfg: DictConfig,
    title: str,
    expected: dict[str, float],
) -> None:
    """The curve as per-step metrics (step = training step from 1), the figures as metrics, the plot
    as lr_find.png."""
    # logged at the step it was computed, not shifted
    curve = lr_curve.smoothed(test.losses, lr_cfg.smoothing)
    now = int(time.time() * 1000)
    per_step = [
        Metric(key, value, now, step)
        for step, values in enumerate(zip(test.losses, curve, test.lrs), start=1)
        for key, value in zip(("loss", "smoothed_loss", "learning_rate"), values)
    ]
    mlflow.MlflowClient().log_batch(mlflow.active_run().info.run_id, metrics=per_step)
    mlflow.log_metrics(
        figures.metrics()
        | expected
        | {"chance_loss": chance_loss, "steps_run": len(test.losses), "range_seconds": test.seconds}
    )
    figure = lr_curve.range_figure(
        test.lrs, test.losses, lr_cfg.smoothing, figures, chance_loss, lr_cfg.tolerance, title
    )
    mlflow.log_figure(figure, "lr_find.png")
    lr_curve.plt.close(figure)


def run_lr_find(cfg: DictConfig, checked: bool = False) -> lr_curve.RangeFigures:
    """rnn-lr-find's job: check the config, prepare data, run the range test inside an MLflow run,
    log it, print the figures."""
    with single_run(
        cfg, "rnn-lr-find", f"lr-find-{model_label(cfg.model)}-{cfg.data.name}", checked
    ) as (data, run, run_name):
        test = range_test(cfg, data)
        figures = read_curve(test, cfg.lr_find)
        expected = plateau_figures(figures, cfg.optimizer.learning_rate, steps_per_epoch(cfg, data))
        log_range_test(test, figures, data.chance_loss(), cfg.lr_find, run_name, expected)
    lr = cfg.lr_find
    print(
        f"\n{run_name}: {len(test.losses)} steps, learning rate {lr.start_lr:g} to "
        f"{test.lrs[-1]:.3g} (range {lr.start_lr:g} to {lr.end_lr:g}), {test.seconds:.1f} s"
    )
    print(
        lr_curve.format_table(
            figures,
            data.chance_loss(),
            lr.tolerance,
            lr.divergence,
            cfg.optimizer.learning_rate,
            steps_per_epoch(cfg, data),
        )
    )
    print(
        f"\nMLflow run {run.info.run_id} in experiment {cfg.tracking.experiment!r} (plot: "
        f"lr_find.png); to look at it:\n{mlflow_runs.ui_hint(cfg)}"
    )
    return figures
