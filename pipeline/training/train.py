"""Training: one model fitted on one prepared dataset, with plateau figures, timings and test
scores.

`train_model` is the one training function: `rnn-train` calls it once, every sweep trial calls it
too.
"""

import contextlib
import dataclasses
import logging
import math
import time

import keras
import mlflow
from omegaconf import DictConfig, OmegaConf

from pipeline import config
from pipeline.core.names import MONITORED, higher_is_better
from pipeline.core import ranking, signals
from pipeline.tracking import mlflow_runs
from pipeline.data.batching import evaluation_stream, training_stream
from pipeline.data.texts import Dataset, prepare_data
from pipeline.data.word_vectors import word_vectors
from pipeline.core.names import Fig
from pipeline.models.zoo import build_model, model_label
from pipeline.training.gradients import GradientSignal, plateau_gradient_figures
from pipeline.report.sweep_report import format_summary
from pipeline.models.scores import class_report, compile_classifier

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainResult:
    # per-epoch logs as Keras recorded them, EpochStats' figures included
    history: dict[str, list[float]]
    # per-run figures: plateau, stall, timings, parameter count, test scores
    summary: dict[str, float]
    model: keras.Model
    test_report: dict | None = None  # scores.class_report of the test split (train.evaluate_test)


class MlflowEpochLogger(keras.callbacks.Callback):
    """Logs every number of an epoch's logs to the active MLflow run, step = epoch number (from
    1)."""

    def on_epoch_end(self, epoch, logs=None):
        mlflow.log_metrics(
            {key: float(value) for key, value in (logs or {}).items()}, step=epoch + 1
        )


def plateau_epochs(losses: list[float], tolerance: float) -> int:
    """Leading epochs whose training loss stays within `tolerance` (relative) of the first epoch's
    loss."""
    if not losses:
        return 0
    first = losses[0]
    count = 0
    for loss in losses:
        if not math.isfinite(loss) or abs(loss - first) > tolerance * abs(first):
            break
        count += 1
    return count


def longest_stall(val_losses: list[float]) -> int:
    """The longest run of epochs without a new best validation loss."""
    best, stall, longest = math.inf, 0, 0
    for loss in val_losses:
        if loss < best:
            best, stall = loss, 0
        else:
            stall += 1
            longest = max(longest, stall)
    return longest


class BestEpoch(keras.callbacks.Callback):
    """Keeps the weights of the best epoch of `monitor` (ranking.rank_key: a tie goes to the lower
    val_loss) and restores them however training ends (out of epochs, early-stopped, pruned, NaN):
    the model kept, stored and tested is the one its figures describe."""

    def __init__(self, monitor: str):
        super().__init__()
        self.monitor, self.maximize = monitor, higher_is_better(monitor)
        self.epoch, self.value, self.key, self.weights = None, None, None, None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        key = ranking.rank_key(value, logs.get("val_loss"), self.maximize)
        if self.key is None or key < self.key:
            self.epoch, self.value, self.key, self.weights = (
                epoch,
                float(value),
                key,
                self.model.get_weights(),
            )

    def on_train_end(self, logs=None):
        if self.weights is not None:
            self.model.set_weights(self.weights)


class EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' EarlyStopping with ranking's order: an epoch that ties the best monitored value
    (within min_delta) with a lower val_loss is progress. An accuracy saturated at 1.0 no longer
    stops a model whose loss still falls."""

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.best_val_loss, self.val_loss = math.inf, None

    def on_epoch_end(self, epoch, logs=None):
        self.val_loss = (logs or {}).get("val_loss")
        super().on_epoch_end(epoch, logs)
        if self.best_epoch == epoch:
            self.best_val_loss = self.val_loss if ranking.finite(self.val_loss) else math.inf

    def _is_improvement(self, monitor_value, reference_value):
        if super()._is_improvement(monitor_value, reference_value):
            return True
        # beating the baseline means beating it
        if reference_value is self.baseline or self.monitor == "val_loss":
            return False
        # equal, as BestEpoch's ties: min_delta keeps its meaning
        tied = ranking.ties(monitor_value, reference_value)
        return tied and ranking.finite(self.val_loss) and self.val_loss < self.best_val_loss


def divergence_scale(data: Dataset) -> float:
    """The loss train.divergence_factor multiplies: the larger of the chance loss and ln K, an
    untrained model's loss (uniform answers). On rare classes the chance loss is small (0.056 at 1 %
    positives): 10x of it lies below what any model scores before it has fitted the prior."""
    return max(data.chance_loss(), math.log(data.num_classes))


class TerminateOnDivergence(keras.callbacks.Callback):
    """Stops training once an epoch's training loss exceeds `limit` (train.divergence_factor x the
    chance loss): finite but exploded, a divergence like NaN. Its epoch (from 1) is kept in
    `diverged_at`."""

    def __init__(self, limit: float):
        super().__init__()
        self.limit, self.diverged_at = limit, None

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and math.isfinite(loss) and loss > self.limit:
            self.diverged_at = epoch + 1
            self.model.stop_training = True


class EpochStats(keras.callbacks.Callback):
    """Adds epoch_seconds, samples_per_second and learning_rate to every epoch's logs (History keeps
    them)."""

    def __init__(self, n_train: int):
        super().__init__()
        self.n_train = n_train

    def on_epoch_begin(self, epoch, logs=None):
        self.started = self.train_ended = time.perf_counter()

    def on_test_begin(self, logs=None):
        self.train_ended = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        train_seconds = (
            self.train_ended if self.train_ended > self.started else now
        ) - self.started
        logs["epoch_seconds"] = now - self.started
        logs["samples_per_second"] = self.n_train / train_seconds
        logs["learning_rate"] = float(
            keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        )


def configure_threads(threads: DictConfig) -> None:
    """Fix TensorFlow's thread pools; only possible before TensorFlow runs its first op in this
    process."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads.intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(threads.inter_op)
    # TensorFlow already initialised here (e.g. several runs in one process): keep its pools
    except RuntimeError:
        if (threads.intra_op, threads.inter_op) != (
            tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads(),
        ):
            log.warning("TensorFlow already runs in this process: train.threads cannot change now")


class StopOnSignal(keras.callbacks.Callback):
    """Ends fit() or evaluate() with signals.Interrupted at the first batch boundary after a
    signal."""

    def on_train_batch_end(self, batch, logs=None):
        signals.check()

    def on_test_batch_end(self, batch, logs=None):
        signals.check()


def make_callbacks(
    cfg: DictConfig,
    n_train: int,
    best: BestEpoch,
    divergence: TerminateOnDivergence,
    extra: list,
    validating: bool = True,
) -> list:
    """Ours first (they add figures to the logs), then the configured ones, then MLflow, then the
    caller's; the best-epoch keeper last, so its weights are the ones restored at the end. Without a
    validation split (a cross-validation's final model trains for the epochs its folds chose) the
    configured ones, which watch validation figures, and the best-epoch keeper stay out: the last
    epoch's weights are kept."""
    logger = [MlflowEpochLogger()] if mlflow.active_run() else []
    ours = [EpochStats(n_train), keras.callbacks.TerminateOnNaN(), divergence, StopOnSignal()]
    ours += [GradientSignal()] if cfg.train.log_gradients else []
    if not validating:
        return [*ours, *logger, *extra]
    return [*ours, *config.configured_callbacks(cfg), *logger, *extra, best]


def train_model(cfg: DictConfig, data: Dataset, extra_callbacks=()) -> TrainResult:
    """Build, fit (logging each epoch to the active MLflow run, if any) and evaluate one model;
    `cfg` has passed config.check (a bad optimizer or callback argument is still one InputError,
    found as it is made)."""
    keras.utils.set_random_seed(cfg.train.seed)
    started = time.perf_counter()
    model, vector_figures = new_model(cfg, data)
    f1 = compile_classifier(model, data.num_classes, config.instantiate(cfg.optimizer, "optimizer"))
    built = time.perf_counter()
    best = BestEpoch(cfg.train.monitor)
    divergence = TerminateOnDivergence(cfg.train.divergence_factor * divergence_scale(data))
    # not the final model of a cross-validation (pipeline/folds.py)
    validating = len(data.y_val) > 0
    fitted = model.fit(
        training_stream(data.x_train, data.y_train, cfg.train, cfg.train.seed),
        validation_data=evaluation_stream(data.x_val, data.y_val, cfg.train)
        if validating
        else None,
        epochs=cfg.train.epochs,
        shuffle=False,  # the stream reshuffles itself every epoch (train.shuffle)
        callbacks=make_callbacks(
            cfg, len(data.y_train), best, divergence, list(extra_callbacks), validating
        ),
        verbose=cfg.train.verbose,
    )
    fit_ended = time.perf_counter()
    history = {key: [float(v) for v in values] for key, values in fitted.history.items()}
    summary = run_summary(history, best.epoch, cfg.train)
    summary |= plateau_level(
        history.get("loss", []),
        summary[Fig.plateau_epochs],
        data.chance_loss(),
        cfg.train.chance_tolerance,
    )
    summary |= vector_figures
    summary |= {
        Fig.params: model.count_params(),
        Fig.build_seconds: built - started,
        Fig.fit_seconds: fit_ended - built,
        Fig.num_classes: data.num_classes,
        Fig.diverged_at: divergence.diverged_at or 0,
        Fig.divergence_limit: divergence.limit,
    }
    report = None
    if cfg.train.evaluate_test:
        figures, report = evaluate_test(model, f1, data, cfg.train)
        summary |= figures | {Fig.evaluate_seconds: time.perf_counter() - fit_ended}
    return TrainResult(history=history, summary=summary, model=model, test_report=report)


def new_model(cfg: DictConfig, data: Dataset) -> tuple[keras.Model, dict[str, float]]:
    """The config's untrained model, its embedding started from model.embedding.vectors when set;
    with the figures of those vectors (their width, their coverage of vocabulary and tokens)."""
    if cfg.model.embedding.vectors is None:
        return build_model(cfg.model, data.vocab_size, data.num_classes), {}
    vectors = word_vectors(cfg.model.embedding.vectors, data, cfg.paths.cache_dir, announce=False)
    start = vectors.matrix(cfg.train.seed)
    model = build_model(cfg.model, data.vocab_size, data.num_classes, embedding=start)
    return model, vectors.figures(data.x_train)


def evaluate_test(
    model: keras.Model, f1, data: Dataset, train_cfg: DictConfig
) -> tuple[dict[str, float], dict]:
    """The test split scored once: loss, accuracy and macro-F1 as run figures, and the per-class
    report made from the same evaluation's confusion matrix. `f1`: the model's compiled
    scores.MacroF1."""
    scores = model.evaluate(
        evaluation_stream(data.x_test, data.y_test, train_cfg), verbose=0, return_dict=True
    )
    report = class_report(keras.ops.convert_to_numpy(f1.matrix), data.class_names)
    figures = {
        Fig.test_loss: scores["loss"],
        Fig.test_accuracy: scores["accuracy"],
        Fig.test_macro_f1: report["macro_f1"],
    }
    return figures, report


def run_summary(
    history: dict[str, list[float]], best_epoch: int | None, train_cfg: DictConfig
) -> dict[str, float]:
    """Per-run figures; `best_epoch` (from 0) is the epoch of the weights kept, whose figures are
    reported."""
    losses = history.get("loss", [])
    finite_val = [loss if math.isfinite(loss) else math.inf for loss in history.get("val_loss", [])]
    plateau = plateau_epochs(losses, train_cfg.plateau_tolerance)
    summary = {
        Fig.epochs_run: len(losses),
        Fig.plateau_epochs: plateau,
        # ended still on its plateau: it lasted at least this long
        Fig.plateau_censored: int(0 < plateau == len(losses)),
        Fig.longest_stall: longest_stall(finite_val),
        Fig.nan_loss: int(any(not math.isfinite(loss) for loss in losses)),
        Fig.final_loss: losses[-1] if losses else math.nan,
    }
    summary |= plateau_gradient_figures(history, plateau)
    if best_epoch is not None:
        summary[Fig.best_epoch] = best_epoch + 1
        summary |= {
            Fig.best(name): history[name][best_epoch] for name in MONITORED if name in history
        }
    return summary


def plateau_level(
    losses: list[float], plateau: int, chance: float, tolerance: float
) -> dict[str, float]:
    """The plateau's mean training loss against chance_loss: a plateau at chance means the model
    predicts the prior."""
    figures = {Fig.chance_loss: chance}
    if plateau >= 2:  # one epoch is no plateau
        figures[Fig.plateau_loss] = sum(losses[:plateau]) / plateau
        figures[Fig.plateau_at_chance] = int(
            abs(figures[Fig.plateau_loss] - chance) <= tolerance * chance
        )
    return figures


@contextlib.contextmanager
def single_run(cfg: DictConfig, entry: str, default_name: str, checked: bool = False):
    """What rnn-train and rnn-lr-find do before their job: check the config, prepare the data, open
    one MLflow run (tracking.run_name, or `default_name`) with the config and the data logged;
    yields (data, run, run name)."""
    if not checked:  # the entry point checked it already
        config.check(cfg)
    OmegaConf.set_readonly(cfg, True)  # checked: never changed after
    # before the optimizer is first made: that starts TensorFlow, which fixes its pools
    configure_threads(cfg.train.threads)
    config.check_instantiable(cfg)
    # a store that cannot be used stops the command before the data is prepared
    mlflow_runs.probe(cfg)
    data = prepare_data(cfg.data, cfg.paths.cache_dir)
    if cfg.model.embedding.vectors is not None:  # a bad file stops the command before any run
        word_vectors(cfg.model.embedding.vectors, data, cfg.paths.cache_dir)
    signals.check()
    mlflow_runs.configure(cfg)
    run_name = mlflow_runs.redact(cfg.tracking.run_name or default_name)
    with mlflow.start_run(run_name=run_name, tags=mlflow_runs.run_tags(cfg, entry=entry)) as run:
        mlflow_runs.log_config(cfg)
        mlflow_runs.log_data(data, cfg)
        yield data, run, run_name


def run_training(cfg: DictConfig, checked: bool = False) -> TrainResult:
    """rnn-train's job: check the config, prepare data, train once inside an MLflow run, log
    everything, print a summary."""
    with single_run(cfg, "rnn-train", f"{model_label(cfg.model)}-{cfg.data.name}", checked) as (
        data,
        run,
        run_name,
    ):
        result = train_model(cfg, data)
        model_id = mlflow_runs.log_training(result, data, cfg, title=run_name)
        mlflow_runs.describe_run(run_description(cfg, result, model_id))
    print(f"\n{run_name}:\n{format_summary(data_figures(data) | result.summary)}")
    print(
        f"\nMLflow run {run.info.run_id} in experiment {cfg.tracking.experiment!r}; to look at "
        f"it:\n{mlflow_runs.ui_hint(cfg, run)}"
    )
    return result


def run_description(cfg: DictConfig, result: TrainResult, model_id: str | None) -> str:
    """One line for the run's description in the MLflow UI."""
    names = (f"best_{cfg.train.monitor}", "test_accuracy")
    figures = ", ".join(
        f"{name} {result.summary[name]:.4f}" for name in names if name in result.summary
    )
    model = f"; model `models:/{model_id}`" if model_id else ""
    return (
        f"{model_label(cfg.model)} on {cfg.data.name}: {figures} (best epoch "
        f"{result.summary.get(Fig.best_epoch, 0):.0f}){model}"
    )


def data_figures(data: Dataset) -> dict[str, float]:
    empty = {f"empty_texts_{split}": count for split, count in data.empty_texts.items()}
    return {"prep_seconds": data.prep_seconds, "data_cache_hit": int(data.cache_hit)} | empty
