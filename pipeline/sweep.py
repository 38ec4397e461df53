"""rnn-sweep: Optuna searches the composed config; every trial is `train_model` inside a nested MLflow run.

A trial's sampled values become Hydra overrides (`model.units=64`, `optimizer=rmsprop`) and Hydra
composes the trial's config exactly as it would a command line, so any value or config group can be
searched. The study lives in an Optuna storage, so the same command resumes it, and a trial left
behind by a dead worker is failed (heartbeat) and retried. After the search, the top trials are
trained again with other seeds (pipeline/confirm.py) and the best mean wins.
"""

import logging
import sys
import time
import warnings

import hydra
import mlflow
import optuna
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from pipeline import CONFIG_DIR, higher_is_better, report, signals, stores, tracking
from pipeline.config import chosen_groups, compose, override
from pipeline.confirm import confirm
from pipeline.errors import InputError, console_entry, hydra_task
from pipeline.objective import FAIL_HYPERPARAMETERS, Objective, TrialFailed
from pipeline.datasets import log_datasets
from pipeline.registry import register_winner, validate_register_as
from pipeline.space import baseline_params, probe_values, validate_entry, validate_paths
from pipeline.train import MONITORED, configure_threads, validate_train_config

log = logging.getLogger(__name__)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats, stale-trial retry

EXIT_ALL_TRIALS_FAILED = 3
SECOND_OBJECTIVES = ("fit_seconds",)
DIRECTIONS = ("maximize", "minimize")
SAMPLERS = {
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "cmaes": lambda seed: optuna.samplers.CmaEsSampler(seed=seed),
}
PRUNERS = ("median", "patient", "hyperband", "none")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what max_total_trials counts; FAIL trials may be retried


def validate_search(cfg: DictConfig, base_overrides: list[str]) -> None:
    """Reject a bad search before any study, run or trial exists."""
    search = cfg.search
    choices = {
        "sampler": [*SAMPLERS, "grid"], "pruner": PRUNERS,
        "direction": DIRECTIONS, "objective": MONITORED, "second_objective": [None, *SECOND_OBJECTIVES],
    }
    for key, allowed in choices.items():
        if search[key] not in allowed:
            raise InputError(f"search.{key}={search[key]!r}; allowed: {', '.join(map(str, allowed))}")
    minimums = {"n_trials": 1, "heartbeat_seconds": 1, "grace_seconds": 1, "max_retry": 0, "pruner_startup_trials": 0,
                "pruner_warmup_epochs": 0, "pruner_patience": 0, "confirm_top_k": 0, "confirm_seeds": 0}
    for key, lowest in minimums.items():
        if not isinstance(search[key], int) or isinstance(search[key], bool) or search[key] < lowest:
            raise InputError(f"search.{key}={search[key]!r}; it must be an integer >= {lowest}")
    if search.max_total_trials is not None and (not isinstance(search.max_total_trials, int) or search.max_total_trials < 1):
        raise InputError(f"search.max_total_trials={search.max_total_trials!r}; it must be null or an integer >= 1")
    if search.timeout is not None and not search.timeout > 0:
        raise InputError(f"search.timeout={search.timeout!r}; it must be null or a number of seconds > 0")
    validate_register_as(search.register_as)
    if not isinstance(search.baseline_first, bool):
        raise InputError(f"search.baseline_first={search.baseline_first!r}; allowed: true, false")
    if search.second_objective and search.pruner != "none":
        raise InputError(f"search.pruner={search.pruner} cannot prune a two-objective study; set search.pruner=none")
    natural = "maximize" if higher_is_better(search.objective) else "minimize"
    if search.direction != natural:
        raise InputError(f"search.direction={search.direction} does not fit search.objective={search.objective}; allowed: {natural}")
    if cfg.train.monitor != search.objective:
        raise InputError(f"train.monitor={cfg.train.monitor} must be search.objective={search.objective} in a sweep: "
                         "a trial's value and its kept weights come from one epoch")
    if not search.space:
        raise InputError("search.space is empty; name at least one config path to search")
    for name, entry in search.space.items():
        validate_entry(name, entry, search.sampler)
    validate_train_config(cfg)  # the base settings first: a bad one is named as itself, not as a search entry's
    for name, entry in search.space.items():
        for value in probe_values(entry):
            try:
                validate_train_config(compose([*base_overrides, override(entry.path, value)]))
            except InputError as error:
                raise InputError(f"search.space.{name} ({entry.path}={value}): {error}") from None
    validate_paths(cfg, chosen_groups(base_overrides))


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

    store = stores.optuna_store(storage_url(cfg))
    with stores.opening(store):  # under its lock; a bad URL, a missing driver, other directions: one error line
        storage = RDBStorage(
            store.url,
            engine_kwargs={"connect_args": {"timeout": stores.SQLITE_BUSY_SECONDS}} if store.file else None,
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


def make_sampler(cfg: DictConfig, offset: int = 0) -> optuna.samplers.BaseSampler:
    """The configured sampler, seeded with search.seed plus `offset`: the number of trials the study already holds,
    so that running the same command again continues the search instead of drawing the same start-up points."""
    seed = cfg.search.seed + offset
    if cfg.search.sampler == "grid":
        grid = {name: list(entry.choices) for name, entry in cfg.search.space.items()}
        return optuna.samplers.GridSampler(grid, seed=seed)
    return SAMPLERS[cfg.search.sampler](seed)


def make_pruner(cfg: DictConfig) -> optuna.pruners.BasePruner:
    median = optuna.pruners.MedianPruner(
        n_startup_trials=cfg.search.pruner_startup_trials, n_warmup_steps=cfg.search.pruner_warmup_epochs
    )
    if cfg.search.pruner == "median":
        return median
    if cfg.search.pruner == "patient":  # the median rule, applied only after pruner_patience epochs without progress
        return optuna.pruners.PatientPruner(median, patience=cfg.search.pruner_patience)
    if cfg.search.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=cfg.train.epochs)
    return optuna.pruners.NopPruner()


# --------------------------------------------------------------------------------------- run


def run_sweep(cfg: DictConfig, base_overrides: list[str]) -> int:
    """Validate, run `search.n_trials` more trials of the study, confirm the winner over seeds, report; return
    the exit code. `cfg` is the sweep config composed from `base_overrides`, which every trial's config starts from.
    """
    started = time.perf_counter()
    configure_threads(cfg.train.threads)  # first: validating the optimizer starts TensorFlow, which fixes its pools
    validate_search(cfg, base_overrides)
    objective = Objective(cfg, base_overrides)
    objective.dataset(cfg)  # the base config's data, before any study or run exists: a data error stops here
    signals.check()
    if cfg.search.show_progress_bar:
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # the bar shows each trial's progress and the best value
    tracking.configure(cfg, also_check=(stores.optuna_store(storage_url(cfg)),))  # both probed first
    study = make_study(cfg)
    optuna.storages.fail_stale_trials(study)  # a dead worker's trials: failed, their runs ended, retried
    cap = cfg.search.max_total_trials
    if cap is not None and len(study.get_trials(states=FINISHED)) >= cap:
        print(f"Study {study.study_name!r} is complete: it holds {cap} or more finished trials (search.max_total_trials)")
        return 0
    study.sampler = make_sampler(cfg, offset=len(study.trials))
    enqueue_baseline(study, cfg, base_overrides)
    with mlflow.start_run(run_name=f"sweep-{cfg.search.study_name}", tags=parent_tags(cfg)) as parent:
        objective.parent_run_id = parent.info.run_id
        tracking.log_config(cfg)
        log_datasets(objective.dataset(cfg), cfg.data, ("train", "val", "test"))  # trials fit and select, the winner is tested
        mlflow.log_text(OmegaConf.to_yaml(cfg.search.space), "search_space.yaml")
        try:
            study.optimize(
                objective,
                n_trials=cfg.search.n_trials,
                timeout=cfg.search.timeout,
                catch=(TrialFailed,),  # a trial its hyperparameters failed is FAIL with its reason; the sweep goes on
                show_progress_bar=cfg.search.show_progress_bar,
                callbacks=[optuna.study.MaxTrialsCallback(cap, states=FINISHED)] if cap else None,
            )
            confirm_started = time.perf_counter()
            confirmed = confirm(study, objective) if complete(study.trials) else []
            confirm_seconds = time.perf_counter() - confirm_started
            registered = register_winner(cfg.search, confirmed[0].trial) if confirmed else None
        except (signals.Interrupted, InputError) as stop:  # the summary of what ran, then the stop itself
            print(record_sweep(study, objective, time.perf_counter() - started, [], 0.0, stopped=stop))
            raise
        summary = record_sweep(study, objective, time.perf_counter() - started, confirmed, confirm_seconds, registered=registered)
    mine = objective.trials(study)
    print(summary)
    if registered:
        print(f"\nThe winner's model: {registered} (rnn-predict predict.model={registered} ..., or mlflow models serve -m {registered})")
    print(f"\nMLflow parent run {parent.info.run_id} in experiment {cfg.tracking.experiment!r}; to look at it:")
    print(tracking.ui_hint(cfg, parent))
    all_failed = mine and all(t.state == TrialState.FAIL for t in mine)
    return EXIT_ALL_TRIALS_FAILED if all_failed else 0


def enqueue_baseline(study: optuna.Study, cfg: DictConfig, base_overrides: list[str]) -> None:
    """The composed config's own values, once per study; again when its try failed for another reason than its
    hyperparameters (a data error, a signal): every search is measured against a known baseline."""
    if not cfg.search.baseline_first or cfg.search.sampler == "grid":  # a grid covers every point anyway
        return
    tries = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("baseline")]
    if any(t.state != TrialState.FAIL or t.user_attrs.get("fail_kind") == FAIL_HYPERPARAMETERS for t in tries):
        return
    study.enqueue_trial(baseline_params(cfg, base_overrides), {"baseline": True})


def record_sweep(study, objective: Objective, wall_seconds: float, confirmed: list, confirm_seconds: float,
                 stopped: Exception | None = None, registered: str | None = None) -> str:
    """Log the sweep's figures, summary and charts to the parent run and the log file; return the summary."""
    mine = objective.trials(study)
    data = objective.dataset(objective.cfg)
    summary = report.sweep_summary(study, mine, wall_seconds, confirmed, confirm_seconds, data.empty_texts, stopped)
    saved_epochs, saved_seconds = report.pruning_savings(mine)
    counts = report.sweep_counts(mine)
    figures = counts | report.winner_figures(confirmed, confirm_seconds)
    mlflow.log_metrics(figures | {"pruning_saved_epochs": saved_epochs, "pruning_saved_seconds": saved_seconds})
    mlflow.log_text(summary, "summary.txt")
    tracking.describe_run(report.sweep_note(study.study_name, summary, confirmed, registered))
    if registered:
        mlflow.set_tag("registered_model", registered)
    for name, figure in report.sweep_figures(study, objective.cfg.search.objective).items():
        mlflow.log_figure(figure, f"{name}.png")
        report.plt.close(figure)
    log.info("sweep %s: %d trials added (%d complete, %d pruned, %d failed), study %r holds %d, MLflow parent run %s",
             "stopped" if stopped else "finished", len(mine), counts["trials_complete"], counts["trials_pruned"],
             counts["trials_fail"], study.study_name, len(study.trials), objective.parent_run_id)
    return summary


def complete(trials) -> list:
    return [t for t in trials if t.state == TrialState.COMPLETE]


def parent_tags(cfg: DictConfig) -> dict[str, str]:
    tags = tracking.run_tags(cfg, entry="rnn-sweep")
    return tags | {"study": cfg.search.study_name, "sampler": cfg.search.sampler, "pruner": cfg.search.pruner}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="sweep")
@hydra_task
def main(cfg: DictConfig) -> int:
    OmegaConf.resolve(cfg)  # freeze ${oc.env:...} now: MLflow sets MLFLOW_TRACKING_URI once configured
    with signals.stop_on_signals():
        try:
            code = run_sweep(cfg, list(HydraConfig.get().overrides.task))
            signals.check()  # a signal during the final report: the work is saved, the exit code still says so
        except signals.Interrupted as stop:
            print(f"{stop}: stopped cleanly (a trial it cut short is FAIL, no MLflow run is left RUNNING); "
                  "run the same command to continue", file=sys.stderr)
            code = stop.exit_code
    if code:
        raise SystemExit(code)
    return code


cli = console_entry(main)

if __name__ == "__main__":
    cli()
