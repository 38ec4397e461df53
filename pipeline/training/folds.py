"""Cross-validation for small data (search.cv_folds): a trial trains k models, each validated on its
own stratified fold of the training data (the validation split included), and its value is their
mean.

One split's validation set of a few hundred texts has a standard error of 2 points or more: the
winner of a sweep on it is mostly the luck of that split. The trial's model is then trained once
more, on all of that data, for the folds' median best epoch: one model to store, test and register,
its length chosen by the folds. (Keeping the k fold models as an ensemble would score every text k
times and put k bodies in the string-in model.)"""

import contextlib
import dataclasses
import logging
import statistics
from collections.abc import Callable

import mlflow
import numpy as np
import optuna
import sqlalchemy
from omegaconf import DictConfig, OmegaConf
from sklearn.model_selection import StratifiedKFold

from pipeline.core.names import MONITORED
from pipeline import config
from pipeline.tracking import stores
from pipeline.data.texts import Dataset
from pipeline.core.errors import InputError
from pipeline.core.names import Fig
from pipeline.training.train import TrainResult, train_model

log = logging.getLogger(__name__)
AUTO_FOLDS = 5  # search.cv_folds=auto below search.cv_auto_below texts
STUDY_ATTR = "cv_folds"  # the study's user attribute: the folds it is run with


def pooled(data: Dataset) -> Dataset:
    """The training and validation splits as one training split, with no validation split."""
    return dataclasses.replace(
        data,
        x_train=np.concatenate([data.x_train, data.x_val]),
        y_train=np.concatenate([data.y_train, data.y_val]),
        x_val=data.x_val[:0],
        y_val=data.y_val[:0],
    )


def fold_count(search: DictConfig, data_cfg: DictConfig, data: Dataset) -> int:
    """search.cv_folds with auto decided: AUTO_FOLDS below search.cv_auto_below texts of training
    and validation data, 1 above it or with the data's own validation file."""
    if search.cv_folds != "auto":
        return search.cv_folds
    if data_cfg.get("val_path"):
        return 1
    size = len(data.y_train) + len(data.y_val)
    return AUTO_FOLDS if size < search.cv_auto_below else 1


def check_folds(cfg: DictConfig, data: Dataset) -> int:
    """The number of folds for `data`, each class in every fold (else one InputError line)."""
    folds = fold_count(cfg.search, cfg.data, data)
    if folds > 1:
        fold_datasets(data, folds, cfg.data.split_seed)
    return folds


def fold_datasets(data: Dataset, folds: int, seed: int) -> list[Dataset]:
    """`folds` datasets: each validates on one stratified fold of the pooled data and trains on the
    others."""
    pool = pooled(data)
    smallest = int(np.bincount(pool.y_train.astype(int)).min())
    if smallest < folds:
        raise InputError(
            f"search.cv_folds={folds}: the smallest class has {smallest} training texts, fewer "
            f"than the folds; allowed: 1 to {smallest} folds, or more data"
        )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [
        dataclasses.replace(
            data,
            x_train=pool.x_train[fit],
            y_train=pool.y_train[fit],
            x_val=pool.x_train[val],
            y_val=pool.y_train[val],
        )
        for fit, val in splitter.split(pool.x_train, pool.y_train)
    ]


def cross_validate(
    cfg: DictConfig,
    data: Dataset,
    folds: int,
    after_fold: Callable[[int, float], bool],
    train: Callable = train_model,
) -> tuple[TrainResult, int | None]:
    """Train on each fold (a nested MLflow run each, when a run is active), calling
    `after_fold(index, mean of the folds' values so far)` after each: True stops here (pruned). Then
    the final model on all the data. Returns the combined result and the number of folds trained
    when pruned (None when all ran). `train(cfg, data)`: one training (the sweep's blames its
    failures on the hyperparameters; the MLflow runs around it are not)."""
    objective = cfg.train.monitor
    fold_cfg = OmegaConf.merge(cfg, {"train": {"evaluate_test": False}})
    results = []
    for index, fold in enumerate(fold_datasets(data, folds, cfg.data.split_seed)):
        with fold_run(index, folds):
            results.append(train(fold_cfg, fold))
            log_fold(results[-1])
        if fold_diverged(results[-1]):
            return combined(results, results[-1], objective, folds), None
        if after_fold(index, fold_mean(results, Fig.best(objective))):
            return combined(results, results[-1], objective, folds), index + 1
    epochs = chosen_epochs(results)
    final_cfg = OmegaConf.merge(cfg, {"train": {"epochs": epochs}})
    log.info(
        "%d folds: %s %.4f ± %.4f; the model is trained on all %d texts for %d epochs (their "
        "median best epoch)",
        folds,
        objective,
        *mean_sd(results, Fig.best(objective)),
        len(data.y_train) + len(data.y_val),
        epochs,
    )
    final = train(final_cfg, pooled(data))
    return combined(results, final, objective, folds), None


def fold_run(index: int, folds: int):
    if mlflow.active_run() is None:
        return contextlib.nullcontext()
    return mlflow.start_run(
        run_name=f"{mlflow.active_run().info.run_name}-fold-{index + 1}",
        nested=True,
        tags={"fold": f"{index + 1} of {folds}"},
    )


def log_fold(result: TrainResult) -> None:
    if mlflow.active_run() is not None:
        mlflow.log_metrics(
            {name: float(value) for name, value in result.summary.items() if np.isfinite(value)}
        )


def fold_diverged(result: TrainResult) -> bool:
    return bool(result.summary[Fig.nan_loss] or result.summary.get(Fig.diverged_at))


def study_folds(study, cfg: DictConfig, data: Dataset) -> int:
    """The folds a study is run with, fixed when it is created: a study made with one split keeps it
    under cv_folds=auto (its values and the pruner's steps would otherwise mix units). Another
    explicit number than the study's is one InputError line."""
    decided = fold_count(cfg.search, cfg.data, data)
    stored = study.user_attrs.get(STUDY_ATTR)
    if stored is None:
        stored = 1 if study.trials else decided  # a study from before search.cv_folds ran one split
        study.set_user_attr(STUDY_ATTR, stored)
    refuse_other_folds(cfg, study.study_name, stored)
    return stored


def check_stored_folds(cfg: DictConfig, url: str) -> None:
    """study_folds' refusals, read from the Optuna store before any data is prepared; nothing is
    created."""
    store = stores.optuna_store(url)
    if store.file and not (store.file.is_file() and store.file.stat().st_size):
        return
    timeout = {"connect_args": {"timeout": stores.SQLITE_BUSY_SECONDS}} if store.file else None
    with stores.opening(store):
        # a new database: Optuna makes its tables when the study is created
        if not has_studies(url, timeout):
            return
        storage = optuna.storages.RDBStorage(url, engine_kwargs=timeout, skip_table_creation=True)
        try:
            stored = stored_attr(storage, cfg.search.study_name)
        finally:
            storage.engine.dispose()
    if stored is not None:
        refuse_other_folds(cfg, cfg.search.study_name, stored)


def has_studies(url: str, engine_kwargs: dict | None) -> bool:
    engine = sqlalchemy.create_engine(
        url, poolclass=sqlalchemy.pool.NullPool, **(engine_kwargs or {})
    )
    try:
        return sqlalchemy.inspect(engine).has_table("version_info")
    finally:
        engine.dispose()


def stored_attr(storage: optuna.storages.RDBStorage, study_name: str) -> int | None:
    """The folds a stored study is run with: its attribute, or 1 for trials from before it; None if
    unknown."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return None
    stored = storage.get_study_user_attrs(study_id).get(STUDY_ATTR)
    return 1 if stored is None and storage.get_n_trials(study_id) else stored


def refuse_other_folds(cfg: DictConfig, study_name: str, stored: int) -> None:
    """An explicit search.cv_folds other than the study's, or Hyperband on a cross-validated study:
    InputError."""
    if cfg.search.cv_folds != "auto" and cfg.search.cv_folds != stored:
        how = "one validation split" if stored == 1 else f"{stored} folds"
        raise InputError(
            f"search.cv_folds={cfg.search.cv_folds}: study {study_name!r} is run with {how}; "
            f"allowed: {stored} or auto, or a new search.study_name"
        )
    if stored > 1 and config.is_pruner(cfg, "HyperbandPruner"):
        raise InputError(
            f"search.pruner={cfg.search.pruner}: Hyperband's resource is epochs, and a "
            "cross-validated trial reports once per fold; allowed: median, patient, none, or "
            "search.cv_folds=1"
        )


def fold_values(results: list[TrainResult], name: str) -> list[float]:
    return [r.summary[name] for r in results if name in r.summary and np.isfinite(r.summary[name])]


def fold_mean(results: list[TrainResult], name: str) -> float:
    values = fold_values(results, name)
    return statistics.fmean(values) if values else float("nan")


def mean_sd(results: list[TrainResult], name: str) -> tuple[float, float]:
    values = fold_values(results, name)
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def chosen_epochs(results: list[TrainResult]) -> int:
    return max(
        1,
        round(
            statistics.median(
                r.summary.get(Fig.best_epoch, r.summary[Fig.epochs_run]) for r in results
            )
        ),
    )


def combined(
    results: list[TrainResult], final: TrainResult, objective: str, folds: int
) -> TrainResult:
    """The final model with its own training figures, and the folds' validation figures: each
    best-epoch figure the mean over folds, the sd of the objective, the validation curves averaged
    over the folds that reached each epoch, the seconds of every fit."""
    summary = {key: value for key, value in final.summary.items() if not key.startswith("best_")}
    summary |= {
        name: fold_mean(results, name)
        for name in map(Fig.best, MONITORED)
        if len(fold_values(results, name)) == len(results)
    }  # a fold with none: the trial has none
    summary[Fig.cv_sd] = mean_sd(results, Fig.best(objective))[1]
    summary[Fig.cv_folds] = folds
    summary[Fig.cv_folds_run] = len(results)
    summary[Fig.best_epoch] = (
        chosen_epochs(results)
        if final is not results[-1]
        else results[-1].summary.get(Fig.best_epoch, 0)
    )
    # the final model, unless it is the last fold
    fits = list({id(r): r for r in [*results, final]}.values())
    summary[Fig.fit_seconds] = sum(r.summary[Fig.fit_seconds] for r in fits)
    summary[Fig.epochs_trained] = sum(r.summary[Fig.epochs_run] for r in fits)
    summary[Fig.nan_loss] = int(any(r.summary[Fig.nan_loss] for r in fits))
    diverged = next((r for r in fits if r.summary.get(Fig.diverged_at)), None)
    if diverged is not None:
        summary |= {
            key: diverged.summary[key]
            for key in (Fig.diverged_at, Fig.final_loss, Fig.divergence_limit)
        }
    history = dict(final.history)
    for name in {key for r in results for key in r.history if key.startswith("val_")}:
        history[name] = mean_curve([r.history.get(name, []) for r in results])
    return dataclasses.replace(final, summary=summary, history=history)


def mean_curve(curves: list[list[float]]) -> list[float]:
    """Per epoch, the mean over the curves that reached it."""
    length = max(map(len, curves), default=0)
    return [statistics.fmean(c[epoch] for c in curves if len(c) > epoch) for epoch in range(length)]
