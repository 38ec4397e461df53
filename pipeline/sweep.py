"""rnn-sweep: Optuna searches the composed config; every trial is `train_model` inside a nested MLflow run.

A trial's sampled values become Hydra overrides (`model.units=64`, `optimizer=rmsprop`) and Hydra
composes the trial's config exactly as it would a command line, so any value or config group can be
searched. The study lives in an Optuna storage, so the same command resumes it, and a trial left
behind by a dead worker is failed (heartbeat) and retried.
"""

import contextlib
import functools
import gc
import logging
import math
import time
import warnings

import hydra
import keras
import mlflow
import optuna
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from optuna_integration import KerasPruningCallback

from pipeline import CONFIG_DIR, report, tracking
from pipeline.batching import evaluation_stream
from pipeline.data import cache_key, prepare_data
from pipeline.errors import InputError, console_entry, hydra_task
from pipeline.train import configure_threads, train_model, validate_train_config

log = logging.getLogger(__name__)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats, stale-trial retry

EXIT_ALL_TRIALS_FAILED = 3
EPOCH_METRICS = ("val_accuracy", "val_loss", "accuracy", "loss")
SECOND_OBJECTIVES = ("fit_seconds",)
DIRECTIONS = ("maximize", "minimize")
SAMPLERS = {
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "cmaes": lambda seed: optuna.samplers.CmaEsSampler(seed=seed),
}
PARAM_TYPES = ("float", "int", "categorical")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what max_total_trials counts; FAIL trials may be retried


class StopWhenPruned(KerasPruningCallback):
    """Optuna's Keras pruning callback, but a pruned trial ends fit() normally so its history is kept."""

    pruned_at_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        try:
            super().on_epoch_end(epoch, logs)
        except optuna.TrialPruned:
            self.pruned_at_epoch = epoch + 1
            self.model.stop_training = True


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


# ------------------------------------------------------------------------------------ config


def compose(overrides: list[str]) -> DictConfig:
    """The sweep config for these command-line overrides, composed by Hydra, interpolations resolved."""
    try:
        with hydra_context():
            cfg = hydra.compose("sweep", overrides=overrides)
        OmegaConf.resolve(cfg)
    except HydraException as error:
        raise InputError(" ".join(str(error).split())) from None
    return cfg


@contextlib.contextmanager
def hydra_context():
    """Hydra's config search path: the running app's, or conf/ when called from a library or a test."""
    if GlobalHydra.instance().is_initialized():
        yield
    else:
        with hydra.initialize_config_dir(CONFIG_DIR, version_base="1.3"):
            yield


def chosen_groups(overrides: list[str]) -> dict[str, str]:
    """Which option of each config group these overrides select, e.g. {"optimizer": "adam"}."""
    with hydra_context():
        cfg = hydra.compose("sweep", overrides=overrides, return_hydra_config=True)
    return OmegaConf.to_container(cfg.hydra.runtime.choices)


def override(path: str, value) -> str:
    """A Hydra override assigning `value` to `path`."""
    if isinstance(value, bool):
        return f"{path}={str(value).lower()}"
    if value is None:
        return f"{path}=null"
    return f"{path}={value}"


def validate_search(cfg: DictConfig, base_overrides: list[str]) -> None:
    """Reject a bad search before any study, run or trial exists."""
    search = cfg.search
    choices = {
        "sampler": [*SAMPLERS, "grid"], "pruner": ["median", "hyperband", "none"],
        "direction": DIRECTIONS, "objective": EPOCH_METRICS, "second_objective": [None, *SECOND_OBJECTIVES],
    }
    for key, allowed in choices.items():
        if search[key] not in allowed:
            raise InputError(f"search.{key}={search[key]!r}; allowed: {', '.join(map(str, allowed))}")
    minimums = {"n_trials": 1, "heartbeat_seconds": 1, "grace_seconds": 1, "max_retry": 0,
                "pruner_startup_trials": 0, "pruner_warmup_epochs": 0}
    for key, lowest in minimums.items():
        if not isinstance(search[key], int) or isinstance(search[key], bool) or search[key] < lowest:
            raise InputError(f"search.{key}={search[key]!r}; it must be an integer >= {lowest}")
    if search.max_total_trials is not None and (not isinstance(search.max_total_trials, int) or search.max_total_trials < 1):
        raise InputError(f"search.max_total_trials={search.max_total_trials!r}; it must be null or an integer >= 1")
    if search.timeout is not None and not search.timeout > 0:
        raise InputError(f"search.timeout={search.timeout!r}; it must be null or a number of seconds > 0")
    if not isinstance(search.baseline_first, bool):
        raise InputError(f"search.baseline_first={search.baseline_first!r}; allowed: true, false")
    if search.second_objective and search.pruner != "none":
        raise InputError(f"search.pruner={search.pruner} cannot prune a two-objective study; set search.pruner=none")
    if not search.space:
        raise InputError("search.space is empty; name at least one config path to search")
    for name, entry in search.space.items():
        validate_entry(name, entry, search.sampler)
    for name, entry in search.space.items():
        for value in probe_values(entry):
            try:
                validate_train_config(compose([*base_overrides, override(entry.path, value)]))
            except InputError as error:
                raise InputError(f"search.space.{name} ({entry.path}={value}): {error}") from None


def validate_entry(name: str, entry: DictConfig, sampler: str) -> None:
    where = f"search.space.{name}"
    if not isinstance(entry, DictConfig) or not entry.get("path"):
        raise InputError(f"{where} needs a path: the config value or group it searches, e.g. model.units")
    if entry.get("type") not in PARAM_TYPES:
        raise InputError(f"{where}.type={entry.get('type')!r}; allowed: {', '.join(PARAM_TYPES)}")
    if entry.type == "categorical":
        if not entry.get("choices"):
            raise InputError(f"{where}.choices is empty; list at least one value")
    else:
        low, high = entry.get("low"), entry.get("high")
        if not isinstance(low, (int, float)) or not isinstance(high, (int, float)) or low >= high:
            raise InputError(f"{where}: low={low} must be a number below high={high}")
        if entry.get("log") and low <= 0:
            raise InputError(f"{where}: log=true needs low > 0, got low={low}")
        if entry.get("log") and entry.get("step"):
            raise InputError(f"{where}: log and step cannot be combined")
        if entry.get("step") is not None and not entry.step > 0:
            raise InputError(f"{where}.step={entry.step}; it must be > 0")
        if sampler == "grid":
            raise InputError(f"{where}: search.sampler=grid needs categorical entries only, this one is {entry.type}")
    when = entry.get("when")
    if when is not None and (not when.get("path") or not when.get("in")):
        raise InputError(f"{where}.when needs a path and a non-empty list 'in', e.g. {{path: model.body, in: [lstm]}}")


def probe_values(entry: DictConfig) -> list:
    """The values whose composition proves an entry well-formed: every choice, or both ends of a range."""
    return list(entry.choices) if entry.type == "categorical" else [entry.low, entry.high]


# ------------------------------------------------------------------------------------- study


def storage_url(cfg: DictConfig) -> str:
    if cfg.search.storage:
        return cfg.search.storage
    return f"sqlite:///{tracking.absolute(cfg.paths.mlruns_dir) / 'optuna.db'}"


def make_study(cfg: DictConfig) -> optuna.Study:
    """Create the study, or load it when it exists: the same command continues the same study."""
    search = cfg.search
    retry = RetryHeartbeatStaleTrialCallback(max_retry=search.max_retry)

    def on_stale_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        tracking.end_stale_runs(trial.user_attrs)
        retry(study, trial)

    url = storage_url(cfg)
    tracking.ensure_sqlite_folder(url)
    try:
        storage = RDBStorage(
            url,
            engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None,
            heartbeat_interval=search.heartbeat_seconds,
            grace_period=search.grace_seconds,
            heartbeat_stale_trial_callback=on_stale_trial,
        )
        return optuna.create_study(
            study_name=search.study_name,
            storage=storage,
            sampler=make_sampler(cfg),
            pruner=make_pruner(cfg),
            directions=[search.direction] + (["minimize"] if search.second_objective else []),
            load_if_exists=True,
        )
    except (ValueError, ImportError) as error:  # bad URL, missing driver, or the study's directions differ
        raise InputError(f"search.storage={tracking.redact(url)}: {' '.join(str(error).split())}") from None


def make_sampler(cfg: DictConfig) -> optuna.samplers.BaseSampler:
    if cfg.search.sampler == "grid":
        grid = {name: list(entry.choices) for name, entry in cfg.search.space.items()}
        return optuna.samplers.GridSampler(grid, seed=cfg.search.seed)
    return SAMPLERS[cfg.search.sampler](cfg.search.seed)


def make_pruner(cfg: DictConfig) -> optuna.pruners.BasePruner:
    if cfg.search.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=cfg.search.pruner_startup_trials, n_warmup_steps=cfg.search.pruner_warmup_epochs
        )
    if cfg.search.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=cfg.train.epochs)
    return optuna.pruners.NopPruner()


def baseline_params(cfg: DictConfig, base_overrides: list[str]) -> dict:
    """The space's parameters at the composed config's own values (those inside the space): the baseline trial."""
    groups = chosen_groups(base_overrides)
    params = {}
    for name, entry in cfg.search.space.items():
        value = groups[entry.path] if entry.path in groups else OmegaConf.select(cfg, entry.path)
        if in_space(value, entry):
            params[name] = value
    return params


def in_space(value, entry: DictConfig) -> bool:
    if entry.type == "categorical":
        return value in list(entry.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not entry.low <= value <= entry.high:
        return False
    step = entry.get("step") or (1 if entry.type == "int" else None)
    return step is None or math.isclose((value - entry.low) / step, round((value - entry.low) / step), abs_tol=1e-9)


def suggest(trial: optuna.Trial, cfg: DictConfig) -> list[str]:
    """Sample the space (define-by-run: an entry whose `when` does not hold is skipped); return overrides."""
    chosen = {}
    for name, entry in cfg.search.space.items():
        when = entry.get("when")
        if when and chosen.get(when.path, OmegaConf.select(cfg, when.path)) not in list(when["in"]):
            continue
        if entry.type == "categorical":
            chosen[entry.path] = trial.suggest_categorical(name, list(entry.choices))
        elif entry.type == "int":
            step = entry.get("step") or 1
            chosen[entry.path] = trial.suggest_int(name, entry.low, entry.high, step=step, log=bool(entry.get("log")))
        else:
            step, log_scale = entry.get("step"), bool(entry.get("log"))
            chosen[entry.path] = trial.suggest_float(name, entry.low, entry.high, step=step, log=log_scale)
    return [override(path, value) for path, value in chosen.items()]


# ------------------------------------------------------------------------------------ trials


class Objective:
    """One trial: sample, compose, train (data prepared once per data config), record in MLflow."""

    def __init__(self, cfg: DictConfig, base_overrides: list[str], parent_run_id: str):
        self.cfg, self.base_overrides, self.parent_run_id = cfg, base_overrides, parent_run_id
        self.prepare = functools.lru_cache(maxsize=2)(self._prepare)

    def _prepare(self, key: str, data_yaml: str):
        return prepare_data(OmegaConf.create(data_yaml), self.cfg.paths.cache_dir)

    def dataset(self, cfg: DictConfig):
        return self.prepare(cache_key(cfg.data), OmegaConf.to_yaml(cfg.data))

    def __call__(self, trial: optuna.Trial):
        keras.backend.clear_session()  # a fresh graph per trial, and one gc.collect: memory stays flat
        overrides = [*self.base_overrides, *suggest(trial, self.cfg)]
        cfg = compose(overrides)
        data = self.dataset(cfg)
        # the whole command line, so any worker can rebuild this config (a password in it is not kept)
        trial.set_user_attr("overrides", [tracking.redact(o) for o in overrides])
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True, tags=self.tags(cfg, trial)) as run:
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
            trial.set_user_attr("mlflow_parent_run_id", self.parent_run_id)
            tracking.log_config(cfg, skip=("search",))
            tracking.log_data(data)
            pruning = self.pruning_callback(trial)
            try:
                result = train_model(cfg, data, extra_callbacks=pruning)
                remember(trial, cfg, result)
                tracking.log_training(result, data, cfg, title=f"trial {trial.number} of {cfg.search.study_name}")
                if result.summary["nan_loss"]:
                    raise TrainingDiverged(f"training loss became NaN or inf at epoch {result.summary['epochs_run']}")
            except Exception as error:
                mlflow.set_tags({"trial_state": "FAIL", "fail_reason": f"{type(error).__name__}: {error}"[:5000]})
                raise
            pruned_at = pruning[0].pruned_at_epoch if pruning else None
            mlflow.set_tag("trial_state", "PRUNED" if pruned_at else "COMPLETE")
            if pruned_at:
                mlflow.log_metric("pruned_at_epoch", pruned_at)
        if pruned_at:
            raise optuna.TrialPruned(f"pruned at epoch {pruned_at}")
        return self.values(result)

    def pruning_callback(self, trial: optuna.Trial) -> list:
        if self.cfg.search.pruner == "none":
            return []
        return [StopWhenPruned(trial, monitor=self.cfg.search.objective)]

    def tags(self, cfg: DictConfig, trial: optuna.Trial) -> dict[str, str]:
        tags = tracking.run_tags(cfg, entry="rnn-sweep trial")
        return tags | {"study": cfg.search.study_name, "trial_number": str(trial.number)}

    def values(self, result):
        curve = result.history[self.cfg.search.objective]
        best = max(curve) if self.cfg.search.direction == "maximize" else min(curve)
        if not self.cfg.search.second_objective:
            return best
        return best, result.summary[self.cfg.search.second_objective]


def remember(trial: optuna.Trial, cfg: DictConfig, result) -> None:
    """What the end-of-sweep charts need, kept in the study itself (any worker's trials can be charted)."""
    trial.set_user_attr("learning_rate", float(cfg.optimizer.learning_rate))
    trial.set_user_attr("epochs_planned", cfg.train.epochs)
    for name in ("plateau_epochs", "longest_stall", "epochs_run", "fit_seconds", "build_seconds"):
        trial.set_user_attr(name, float(result.summary[name]))
    for name in ("loss", "val_loss", cfg.search.objective):
        trial.set_user_attr(f"curve_{name}", [v if math.isfinite(v) else None for v in result.history.get(name, [])])


# --------------------------------------------------------------------------------------- run


def run_sweep(cfg: DictConfig, base_overrides: list[str]) -> int:
    """Validate, run `search.n_trials` more trials of the study, report; return the exit code.

    `cfg` is the sweep config composed from `base_overrides`, which every trial's config starts from.
    """
    started = time.perf_counter()
    validate_search(cfg, base_overrides)
    configure_threads(cfg.train.threads)
    if cfg.search.show_progress_bar:
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # the bar shows each trial's progress and the best value
    tracking.configure(cfg)
    study = make_study(cfg)
    optuna.storages.fail_stale_trials(study)  # a dead worker's trials: failed, their runs ended, retried
    cap = cfg.search.max_total_trials
    if cap is not None and len(study.get_trials(states=FINISHED)) >= cap:
        print(f"Study {study.study_name!r} is complete: it holds {cap} or more finished trials (search.max_total_trials)")
        return 0
    if cfg.search.baseline_first and cfg.search.sampler != "grid":  # a grid covers every point anyway
        study.enqueue_trial(baseline_params(cfg, base_overrides), {"baseline": True}, skip_if_exists=True)  # once per study
    with mlflow.start_run(run_name=f"sweep-{cfg.search.study_name}", tags=parent_tags(cfg)) as parent:
        tracking.log_config(cfg)
        mlflow.log_text(OmegaConf.to_yaml(cfg.search.space), "search_space.yaml")
        objective = Objective(cfg, base_overrides, parent.info.run_id)
        study.optimize(
            objective,
            n_trials=cfg.search.n_trials,
            timeout=cfg.search.timeout,
            catch=(Exception,),  # a failing trial is FAIL with its reason; the sweep goes on
            show_progress_bar=cfg.search.show_progress_bar,
            callbacks=[optuna.study.MaxTrialsCallback(cap, states=FINISHED)] if cap else None,
        )
        mine = [t for t in study.trials if t.user_attrs.get("mlflow_parent_run_id") == parent.info.run_id]
        best_test = report_best_model(study, objective) if complete(study.trials) else {}
        summary = report.sweep_summary(study, mine, time.perf_counter() - started, best_test)
        saved_epochs, saved_seconds = report.pruning_savings(mine)
        mlflow.log_metrics(report.sweep_counts(mine) | best_test | {"pruning_saved_epochs": saved_epochs, "pruning_saved_seconds": saved_seconds})
        mlflow.log_text(summary, "summary.txt")
        for name, figure in report.sweep_figures(study, cfg.search.objective).items():
            mlflow.log_figure(figure, f"{name}.png")
            report.plt.close(figure)
    counts = report.sweep_counts(mine)
    log.info("sweep finished: %d trials added (%d complete, %d pruned, %d failed), study %r holds %d, MLflow parent run %s",
             len(mine), counts["trials_complete"], counts["trials_pruned"], counts["trials_fail"], study.study_name,
             len(study.trials), parent.info.run_id)
    print(summary)
    print(f"\nMLflow parent run {parent.info.run_id} in experiment {cfg.tracking.experiment!r}; to look at it:")
    print(tracking.ui_hint(cfg))
    all_failed = mine and all(t.state == TrialState.FAIL for t in mine)
    return EXIT_ALL_TRIALS_FAILED if all_failed else 0


def complete(trials) -> list:
    return [t for t in trials if t.state == TrialState.COMPLETE]


def parent_tags(cfg: DictConfig) -> dict[str, str]:
    tags = tracking.run_tags(cfg, entry="rnn-sweep")
    return tags | {"study": cfg.search.study_name, "sampler": cfg.search.sampler, "pruner": cfg.search.pruner}


def report_best_model(study: optuna.Study, objective: Objective) -> dict[str, float]:
    """Evaluate the best trial's stored model once on the test split; the sweep never looked at it."""
    best = report.best_trial(study)
    run_id = best.user_attrs.get("mlflow_run_id")
    cfg = compose(best.user_attrs.get("overrides", objective.base_overrides))
    if not cfg.train.log_model or not run_id:
        log.warning("best trial %d has no stored model (train.log_model=false): no test evaluation", best.number)
        return {}
    try:
        model = keras.saving.load_model(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model.keras"))
    except (OSError, mlflow.exceptions.MlflowException) as error:
        log.warning("best trial %d: its model could not be loaded (%s): no test evaluation", best.number, error)
        return {}
    data = objective.dataset(cfg)
    test_loss, test_accuracy = model.evaluate(evaluation_stream(data.x_test, data.y_test, cfg.train), verbose=0)
    mlflow.MlflowClient().log_metric(run_id, "test_accuracy", test_accuracy)
    del model
    gc.collect()
    return {"best_trial": best.number, "best_test_loss": test_loss, "best_test_accuracy": test_accuracy}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="sweep")
@hydra_task
def main(cfg: DictConfig) -> int:
    OmegaConf.resolve(cfg)  # freeze ${oc.env:...} now: MLflow sets MLFLOW_TRACKING_URI once configured
    code = run_sweep(cfg, list(HydraConfig.get().overrides.task))
    if code:
        raise SystemExit(code)
    return code


cli = console_entry(main)

if __name__ == "__main__":
    cli()
