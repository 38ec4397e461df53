"""One sweep trial: sample the space, compose the trial's config, train it inside a nested MLflow
run.

Only the hyperparameters may fail a trial (TrialFailed: the sweep goes on). A data or config error
(InputError) or a signal (Interrupted) ends the trial as FAIL and stops the sweep.
"""

import contextlib
import functools
import gc
import logging
import math
import time

import keras
import mlflow
import optuna
from omegaconf import DictConfig, OmegaConf
from optuna_integration import KerasPruningCallback

from pipeline import config
from pipeline.core import signals
from pipeline.tracking import mlflow_runs
from pipeline.config import chosen_groups, compose_with_values, quoted_override
from pipeline.data.texts import cache_key, prepare_data
from pipeline.core.errors import (
    InputError,
    as_disk_full,
    no_space_error,
    quiet_full_disk_in_threads,
)
from pipeline.core.names import REMEMBERED, Attr, Fig
from pipeline.training.folds import cross_validate, fold_count
from pipeline.config.space import parse_space, suggest
from pipeline.training.train import TrainResult, train_model

# trial user attribute fail_kind: why a FAIL trial failed; only "hyperparameters" is the trial's own
# doing
FAIL_HYPERPARAMETERS, FAIL_INPUT, FAIL_INTERRUPTED = "hyperparameters", "input", "interrupted"


class NoTracebackFor(logging.Filter):
    """Optuna logs a failed trial with its traceback; for a signal, an input error or a full disk
    (the command stops with its one line) the one line says it all."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, (signals.Interrupted, InputError)) or (
            error is not None and no_space_error(error) is not None
        ):
            record.exc_info = record.exc_text = None
        return True


logging.getLogger("optuna.study._optimize").addFilter(NoTracebackFor())
quiet_full_disk_in_threads()  # Optuna's heartbeat thread on a full store


class TrialFailed(Exception):
    """The trial's hyperparameters failed it (the loss diverged, the model could not be built or
    fitted)."""


@contextlib.contextmanager
def failures_blamed_on_the_config():
    """What training raises is the configuration's doing (TrialFailed), except an input error or a
    signal, even a second signal that landed inside TensorFlow and came out wrapped in one of its
    errors."""
    try:
        yield
    except (signals.Interrupted, InputError):
        raise
    except Exception as error:
        if signals.received() is not None:
            raise signals.Interrupted(signals.received()) from error
        if full := as_disk_full(error):
            raise full from None
        raise TrialFailed(f"{type(error).__name__}: {error}") from error


class EpochsShown(keras.callbacks.Callback):
    """Stores the epochs a trial has finished, whatever the pruner: the live display shows them."""

    def __init__(self, trial: optuna.Trial):
        super().__init__()
        self.trial = trial

    def on_epoch_end(self, epoch, logs=None):
        self.trial.set_user_attr(Attr.epochs_done, epoch + 1)


class StopWhenPruned(KerasPruningCallback):
    """Optuna's Keras pruning callback, but a pruned trial ends fit() normally so its history is
    kept; each epoch it also stores the trial's mean seconds per epoch, which the cost guard
    compares (pipeline/cost_guard.py)."""

    pruned_at_epoch = None

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self._trial.set_user_attr(
            Attr.epoch_seconds, (time.perf_counter() - self.started) / (epoch + 1)
        )
        try:
            super().on_epoch_end(epoch, logs)
        except optuna.TrialPruned:
            self.pruned_at_epoch = epoch + 1
            self.model.stop_training = True


class Objective:
    """One trial: sample, compose, train (data prepared once per data config), record in MLflow."""

    def __init__(self, cfg: DictConfig, base_overrides: list[str]):
        self.cfg, self.base_overrides = cfg, base_overrides
        self.groups = chosen_groups(base_overrides)
        self.parent_run_id = None  # set once the sweep's parent run exists
        # numbers of the trials this invocation ran, whatever became of them
        self.ran: list[int] = []
        self.prepare = functools.lru_cache(maxsize=2)(self._prepare)

    @functools.cached_property
    def entries(self):
        """The space, parsed when the first trial samples it (search.lr_range=auto may have set its
        bounds)."""
        return parse_space(self.cfg)

    def trials(self, study: optuna.Study) -> list:
        """The study's trials that this invocation ran (failed ones included)."""
        ran = set(self.ran)
        return [t for t in study.get_trials(deepcopy=False) if t.number in ran]

    def _prepare(self, key: str, data_yaml: str):
        return prepare_data(OmegaConf.create(data_yaml), self.cfg.paths.cache_dir)

    def dataset(self, cfg: DictConfig):
        return self.prepare(cache_key(cfg.data), OmegaConf.to_yaml(cfg.data))

    def __call__(self, trial: optuna.Trial):
        # first: it tells which invocation ran the trial
        trial.set_user_attr(Attr.mlflow_parent_run_id, self.parent_run_id)
        # the process's first trial: what the imports, the data and the study made lives on
        if not self.ran:
            gc.collect()  # garbage first: a frozen object is never collected
            # so the gc.collect in each clear_session walks only what trials made (0.26 s -> 0.02 s)
            gc.freeze()
        self.ran.append(trial.number)
        cfg, data = self.started(trial)
        result, pruned_at = self.run_trial(trial, cfg, data)
        if pruned_at:
            raise optuna.TrialPruned(f"pruned at {pruned_at}")
        return self.values(trial, result)

    def started(self, trial: optuna.Trial) -> tuple[DictConfig, object]:
        """The trial's config and data, unless a stop came: a worker's trial may be asked for just
        as its invoker is stopped. That trial never starts; it is FAIL, interrupted."""
        try:
            signals.check()
            # a fresh graph per trial, and one gc.collect: memory stays flat
            keras.backend.clear_session()
            return self.trial_config(trial)
        except signals.Interrupted:
            trial.set_user_attr(Attr.fail_kind, FAIL_INTERRUPTED)
            raise

    def trial_config(self, trial: optuna.Trial) -> tuple[DictConfig, object]:
        """The trial's config (the base overrides plus its sampled values), checked, and its
        data."""
        sampled = suggest(
            trial, self.entries, self.cfg, self.groups, trial.user_attrs.get(Attr.outside_space)
        )
        # e.g. optimizer=rmsprop
        group_choices = [o for o in sampled if o.split("=", 1)[0] in self.groups]
        values = [o for o in sampled if o not in group_choices]
        # the sweep's, whatever body the trial has
        values.append(quoted_override("search.study_name", self.cfg.search.study_name))
        # the whole command line, so any worker can rebuild this config (a password in it is not
        # kept)
        trial.set_user_attr(
            Attr.overrides,
            [mlflow_runs.redact(o) for o in [*self.base_overrides, *group_choices, *values]],
        )
        try:
            cfg = compose_with_values([*self.base_overrides, *group_choices], values)
            # the trial's own config, once: train_model and prepare_data do not check again
            config.check(cfg)
            return cfg, self.dataset(cfg)
        except InputError:
            trial.set_user_attr(Attr.fail_kind, FAIL_INPUT)
            raise

    def run_trial(
        self, trial: optuna.Trial, cfg: DictConfig, data
    ) -> tuple[TrainResult, str | None]:
        """Train inside the trial's nested MLflow run and record it; return the result and when it
        was pruned ("epoch N", or "fold N" with search.cv_folds), None if it was not."""
        run_name = mlflow_runs.trial_run_name(trial.number, cfg)
        with (
            mlflow.start_run(
                run_name=run_name,
                nested=True,
                parent_run_id=self.parent_run_id,  # a worker process has no active parent
                tags=self.tags(cfg, trial),
            ) as run,
            self.stops_recorded(trial),
        ):
            trial.set_user_attr(Attr.mlflow_run_id, run.info.run_id)
            mlflow_runs.log_config(cfg, skip=("search", "lr_find"))
            mlflow_runs.log_data(data, cfg)
            # the sweep's: the study's folds (folds.study_folds)
            folds = fold_count(self.cfg.search, cfg.data, data)
            for key, value in (
                (Attr.run_name, run_name),
                (Attr.epochs_planned, cfg.train.epochs),
                (Attr.folds_planned, folds),
            ):
                trial.set_user_attr(key, value)  # what the live display shows of a running trial
            result, pruned_at = self.train(trial, lambda: self.fit(trial, cfg, data, folds))
            remember(trial, cfg, result)
            # the invoker has its chart drawn
            model_id = mlflow_runs.log_training(result, data, cfg, title=None)
            if model_id:
                trial.set_user_attr(Attr.mlflow_model_id, model_id)
            mlflow_runs.describe_run(trial_description(trial, cfg, result))
            if reason := divergence(result.summary):
                self.fail(trial, reason)
            mlflow.set_tag("trial_state", "PRUNED" if pruned_at else "COMPLETE")
            if pruned_at:
                mlflow.log_metric(
                    "pruned_at_epoch" if folds == 1 else "pruned_after_fold",
                    int(pruned_at.split()[1]),
                )
                # in every list and legend
                mlflow.MlflowClient().update_run(run.info.run_id, name=f"{run_name}-pruned")
        return result, pruned_at

    def fit(
        self, trial: optuna.Trial, cfg: DictConfig, data, folds: int
    ) -> tuple[TrainResult, str | None]:
        """One model, pruned by epoch; or, with folds, one per fold, pruned between folds
        (pipeline/folds.py)."""
        if folds == 1:
            pruning = self.pruning_callback(trial)
            result = blamed_training(cfg, data, extra_callbacks=[*pruning, EpochsShown(trial)])
            pruned_at = pruning[0].pruned_at_epoch if pruning else None
            return result, pruned_at and f"epoch {pruned_at}"
        result, pruned_after = cross_validate(
            cfg,
            data,
            folds,
            lambda index, mean: self.prune_after_fold(trial, index, mean),
            train=blamed_training,
        )
        return result, pruned_after and f"fold {pruned_after}"

    def prune_after_fold(self, trial: optuna.Trial, index: int, mean: float) -> bool:
        """The folds' mean so far, reported at step `index`: the pruner compares trials after the
        same fold."""
        if config.is_pruner(self.cfg, "NopPruner") or mean != mean:
            return False
        trial.report(mean, step=index)
        return trial.should_prune()

    def train(self, trial: optuna.Trial, fit):
        """`fit()`, its failure recorded: TrialFailed (blamed_training) is the hyperparameters'
        doing, a signal or an input error not; anything else (a store) stops the sweep."""
        # input: stops_recorded
        kinds = {signals.Interrupted: FAIL_INTERRUPTED, TrialFailed: FAIL_HYPERPARAMETERS}
        try:
            return fit()
        except tuple(kinds) as error:
            self.record_failure(
                trial,
                next(kind for cls, kind in kinds.items() if isinstance(error, cls)),
                str(error),
            )
            raise

    @contextlib.contextmanager
    def stops_recorded(self, trial: optuna.Trial):
        """An input error or a full disk inside the trial's run: recorded once as fail_kind input,
        never as the hyperparameters' (a full store may refuse even that: the trial's heartbeat then
        fails it). A full disk becomes one DiskFull line, its partial copy removed before the run is
        ended."""
        try:
            yield
        except Exception as error:
            stop = (
                error
                if isinstance(error, InputError)
                else as_disk_full(error, self.cfg.paths.mlruns_dir)
            )
            if stop is None:
                raise
            with contextlib.suppress(Exception):
                self.record_failure(trial, FAIL_INPUT, str(stop))
            if stop is error:
                raise
            raise stop from None

    def fail(self, trial: optuna.Trial, reason: str):
        self.record_failure(trial, FAIL_HYPERPARAMETERS, reason)
        raise TrialFailed(reason)

    @staticmethod
    def record_failure(trial: optuna.Trial, kind: str, reason: str) -> None:
        trial.set_user_attr(Attr.fail_kind, kind)
        mlflow.set_tags({"trial_state": "FAIL", "fail_kind": kind, "fail_reason": reason[:5000]})

    def pruning_callback(self, trial: optuna.Trial) -> list:
        if config.is_pruner(self.cfg, "NopPruner"):
            return []
        return [StopWhenPruned(trial, monitor=self.cfg.search.objective)]

    def tags(self, cfg: DictConfig, trial: optuna.Trial) -> dict[str, str]:
        tags = mlflow_runs.run_tags(cfg, entry=mlflow_runs.TRIAL_ENTRY) | {
            "study": cfg.search.study_name,
            "trial_number": str(trial.number),
        }
        # placed before the sampler chose: baseline, portfolio N, STUDY trial N
        start = trial.user_attrs.get(Attr.start)
        return tags | ({"start": start} if start else {})

    def values(self, trial: optuna.Trial, result: TrainResult):
        """The best epoch's objective: the epoch whose weights were kept and stored
        (train.monitor)."""
        best = result.summary.get(Fig.best(self.cfg.search.objective))
        if best is None:
            self.fail(trial, f"no epoch gave a finite {self.cfg.search.objective}")
        if not self.cfg.search.second_objective:
            return best
        return best, result.summary[self.cfg.search.second_objective]


def blamed_training(cfg: DictConfig, data, extra_callbacks=()) -> TrainResult:
    """train_model, whose failures are the configuration's (failures_blamed_on_the_config)."""
    with failures_blamed_on_the_config():
        return train_model(cfg, data, extra_callbacks=extra_callbacks)


def divergence(summary: dict) -> str | None:
    """Why a run diverged (its training loss NaN or inf, or past train.divergence_factor x chance);
    None if not."""
    if summary[Fig.nan_loss]:
        return f"training loss became NaN or inf at epoch {summary[Fig.epochs_run]}"
    if summary.get(Fig.diverged_at):
        return (
            f"diverged: training loss {summary[Fig.final_loss]:.3g} at epoch "
            f"{summary[Fig.diverged_at]} is over {summary[Fig.divergence_limit]:.3g}, "
            "train.divergence_factor times the larger of the chance loss and ln K"
        )
    return None


def trial_description(trial: optuna.Trial, cfg: DictConfig, result: TrainResult) -> str:
    """One line for the trial run's description in the MLflow UI: what was tried and what it
    scored."""
    sampled = ", ".join(
        f"{name} {value:.3g}" if isinstance(value, float) else f"{name} {value}"
        for name, value in trial.params.items()
    )
    best = result.summary.get(f"best_{cfg.search.objective}")
    score = (
        f"{cfg.search.objective} {best:.4f} at epoch {result.summary['best_epoch']:.0f}"
        if best is not None
        else "no finite score"
    )
    return (
        f"Trial {trial.number} of `{cfg.search.study_name}`: {sampled or 'the baseline'} → {score}"
    )


def remember(trial: optuna.Trial, cfg: DictConfig, result: TrainResult) -> None:
    """What the end-of-sweep charts need, kept in the study itself (any worker's trials can be
    charted)."""
    trial.set_user_attr(Attr.learning_rate, float(cfg.optimizer.learning_rate))
    trial.set_user_attr(Attr.epochs_planned, cfg.train.epochs)
    tie_break = result.summary.get(Fig.best("val_loss"))
    if tie_break is not None and math.isfinite(tie_break):
        trial.set_user_attr(Attr.tie_break, float(tie_break))
    for name in REMEMBERED:
        if name in result.summary:
            trial.set_user_attr(name, float(result.summary[name]))
    # the last two: [] unless train.log_gradients
    for name in ("loss", "val_loss", cfg.search.objective, "grad_norm", "update_ratio"):
        trial.set_user_attr(
            Attr.curve(name),
            [v if math.isfinite(v) else None for v in result.history.get(name, [])],
        )
