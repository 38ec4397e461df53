"""The study: created or loaded from its storage (the same command continues it), with its sampler
and pruner as search.samplers / search.pruners configure them. Shared by the invoker and every
worker."""

import warnings
from pathlib import Path

import optuna
from omegaconf import DictConfig
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from pipeline import config
from pipeline.core.errors import InputError
from pipeline.search.cost_guard import CostGuard
from pipeline.tracking import mlflow_runs, stores
from pipeline.tracking.stores import storage_url

# heartbeats, stale-trial retry
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def make_study(cfg: DictConfig) -> optuna.Study:
    """Create the study, or load it when it exists: the same command continues the same study."""
    search = cfg.search
    retry = RetryHeartbeatStaleTrialCallback(max_retry=search.max_retry)

    def on_stale_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        mlflow_runs.end_stale_runs(trial.user_attrs)
        retry(study, trial)

    store = stores.optuna_store(storage_url(cfg))
    # under its lock; a bad URL, a missing driver, other directions: one error line
    with stores.opening(store):
        storage = RDBStorage(
            store.url,
            engine_kwargs={"connect_args": {"timeout": stores.SQLITE_BUSY_SECONDS}}
            if store.file
            else None,
            heartbeat_interval=search.heartbeat_seconds,
            grace_period=search.grace_seconds,
            heartbeat_stale_trial_callback=on_stale_trial,
        )
        stores.one_transaction_at_a_time(storage.engine)
        study = optuna.create_study(
            study_name=search.study_name,
            storage=storage,
            sampler=make_sampler(cfg),
            pruner=make_pruner(cfg),
            directions=[search.direction] + (["minimize"] if search.second_objective else []),
            load_if_exists=True,
        )
        names = [search.objective] + ([search.second_objective] if search.second_objective else [])
        if study.metric_names != names:  # optuna-dashboard's axis: val_accuracy, not "Objective 0"
            study.set_metric_names(names)
        return study


def make_sampler(cfg: DictConfig, offset: int = 0) -> optuna.samplers.BaseSampler:
    """search.samplers[search.sampler], instantiated with search.seed plus `offset`: the number of
    trials the study already holds, so that running the same command again continues the search
    instead of drawing the same start-up points. A grid sampler is given the space's choices."""
    extra = (
        {"search_space": {name: list(entry.choices) for name, entry in cfg.search.space.items()}}
        if config.is_grid(cfg)
        else {}
    )
    return config.instantiate(
        cfg.search.samplers[cfg.search.sampler],
        "search.sampler",
        seed=cfg.search.seed + offset,
        _convert_="all",
        **extra,
    )


def make_pruner(cfg: DictConfig) -> optuna.pruners.BasePruner:
    """search.pruners[search.pruner], inside the cost guard unless it is off or the pruner decides
    alone (none: every trial runs all its epochs; hyperband: TPE reads its brackets from
    study.pruner)."""
    pruner = config.instantiate(cfg.search.pruners[cfg.search.pruner], "search.pruner")
    if cfg.search.cost_guard is None or isinstance(
        pruner, (optuna.pruners.NopPruner, optuna.pruners.HyperbandPruner)
    ):
        return pruner
    return CostGuard(pruner, cfg.search.cost_guard, cfg.search.cost_guard_trials)


def check_space_fits(study: optuna.Study, entries) -> None:
    """A stored study keeps the distributions it searched: a sweep that changes one (another kind,
    other choices, a log scale) would fail its first trial inside Optuna. Refuse it before any trial
    or run."""
    stored = {}
    for trial in study.get_trials(deepcopy=False):
        stored |= trial.distributions
    for entry in entries:
        before = stored.get(entry.name)
        if before is None:
            continue
        try:
            optuna.distributions.check_distribution_compatibility(before, entry.distribution)
        except ValueError:
            raise InputError(
                f"search.space.{entry.name}: study {study.study_name!r} searched {entry.name} over "
                f"{described(before)}, this sweep over {described(entry.distribution)}; a study "
                "keeps its space: give search.study_name a new name, or search the same space"
            ) from None


def described(distribution) -> str:
    """A distribution as its space entry reads: its choices, or its range and scale."""
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return str(list(distribution.choices))
    # 1: Optuna's default int step
    step = distribution.step if distribution.step not in (None, 1) else None
    scale = ", log scale" if distribution.log else f", step {step}" if step else ""
    return f"{distribution.low} to {distribution.high}{scale}"


# the word-vector files a study's models start from: name -> size in bytes
VECTORS_ATTR = "word_vectors"


def check_vectors_fit(study: optuna.Study, files: list[str]) -> None:
    """A study keeps the word-vector files it started from: another file, or the same one written
    again (its size changed), would mix two searches in one study. The study's first sweep stores
    them."""
    now = {Path(file).expanduser().name: Path(file).expanduser().stat().st_size for file in files}
    before = study.user_attrs.get(VECTORS_ATTR)
    if before is None:
        if now:
            study.set_user_attr(VECTORS_ATTR, now)
        return
    if before != now:
        raise InputError(
            f"model.embedding.vectors: study {study.study_name!r} was run with {sized(before)}, "
            f"this sweep with {sized(now)}; a study keeps its word vectors: give "
            "search.study_name a new name, or use the same file"
        )


def sized(files: dict[str, int]) -> str:
    return ", ".join(f"{name} ({size} bytes)" for name, size in files.items()) or "no file"
