"""Seed confirmation: the top trials trained again with other training seeds; the winner is the best
mean.

One trial's value is one sample: the same config on the UCI sentences moves its test accuracy by
several points with the seed. Only train.seed changes (weights, shuffling, dropout); the data split
keeps its seed. Each extra training is a child run tagged `confirm`; its figures are kept in the
study's user attributes, so a later invocation or another worker reuses them instead of training
again.
"""

import dataclasses
import gc
import itertools
import logging
import math
import sys
import time
from collections.abc import Callable

import keras
import mlflow
import optuna
from omegaconf import DictConfig
from optuna.trial import FrozenTrial, TrialState

from pipeline.models import export
from pipeline.core import ranking, signals
from pipeline.tracking import mlflow_runs
from pipeline.search import workers
from pipeline.tracking.claims import Claims, do_once
from pipeline.tracking.datasets import log_datasets
from pipeline.core.errors import no_space_error
from pipeline.config import compose
from pipeline.core.names import Attr, Fig
from pipeline.training.folds import cross_validate, fold_count
from pipeline.report.sweep_report import best_trial, mean_sd
from pipeline.search.objective import Objective, TrialFailed, blamed_training, divergence
from pipeline.training.train import evaluate_test

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Confirmed:
    """One configuration's samples over training seeds: the trial's own seed first."""

    trial: FrozenTrial
    seeds: list[int]
    values: list[float]  # the objective per seed (NaN where that seed diverged)
    val_losses: list[
        float
    ]  # the best epoch's validation loss per seed (NaN where unknown): the tie-break
    test_accuracies: list[float]  # per seed where a test score exists
    test_report: dict | None = (
        None  # scores.class_report of the trial's own stored model on the test split
    )

    @property
    def mean(self) -> float:
        return mean_sd(self.values)[0]

    @property
    def mean_val_loss(self) -> float:
        return mean_sd(self.val_losses)[0]

    def describe(self, figures: list[float]) -> str:
        """mean ± sd, and over how many seeds when fewer than all (a seed without a stored model has
        no test score)."""
        mean, sd = mean_sd(figures)
        if math.isnan(mean):
            return "n/a"
        count = sum(math.isfinite(f) for f in figures)
        return f"{mean:.4f} ± {sd:.4f}" + (f" (n={count})" if count < len(self.seeds) else "")


def ranked(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials, best first in ranking's order (single-objective studies)."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return ranking.ranked_trials(trials, maximizes(study))


def maximizes(study: optuna.Study) -> bool:
    return study.directions[0] == optuna.study.StudyDirection.MAXIMIZE


def confirm(study: optuna.Study, objective: Objective, claims: Claims) -> list[Confirmed]:
    """The top search.confirm_top_k trials, each with search.confirm_seeds more seeds, best mean
    first.

    With confirm_top_k 0, or two objectives (a Pareto front, no single ranking), the best trial
    alone. Each training and test score is done once for the study, whichever invocation claims it
    first (pipeline/claims.py)."""
    search = objective.cfg.search
    if not search.confirm_top_k or len(study.directions) > 1:
        trials, extra_seeds = [best_trial(study)], 0
    else:
        trials, extra_seeds = ranked(study)[: search.confirm_top_k], search.confirm_seeds
    work = {}
    for trial in trials:
        work |= trial_work(study, trial, extra_seeds, objective)
    if search.show_progress_bar:
        work = announced(work)
    do_once(claims, f"{study.study_name}/", lambda key: key in study.user_attrs, work)
    table = [confirmed_row(study, trial, extra_seeds) for trial in trials]
    return sorted(
        table, key=lambda row: ranking.rank_key(row.mean, row.mean_val_loss, maximizes(study))
    )


def announced(work: dict[str, Callable[[], None]]) -> dict[str, Callable[[], None]]:
    """The same work, each piece saying on stderr what it starts: the confirmation's progress, n of
    N. Pieces another invocation did are not run here, so n counts only those this one starts."""
    started, begun = time.monotonic(), itertools.count(1)

    def saying(key: str, job: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            print(
                f"confirmation {next(begun)} of {len(work)}: {work_label(key)} · "
                f"{time.monotonic() - started:.0f} s in",
                file=sys.stderr,
                flush=True,
            )
            job()

        return run

    return {key: saying(key, job) for key, job in work.items()}


def work_label(key: str) -> str:
    """confirm:3:43 → trial 3 trained with seed 43; test:3 → trial 3's model scored on the test
    split."""
    kind, number, *seed = key.split(":")
    return (
        f"trial {number} trained with seed {seed[0]}"
        if kind == "confirm"
        else f"trial {number}'s model scored on the test split"
    )


def seeds_of(trial: FrozenTrial, extra_seeds: int) -> list[int]:
    """The trial's own training seed, then its extra seeds."""
    own = compose(trial.user_attrs[Attr.overrides]).train.seed
    return list(range(own, own + 1 + extra_seeds))


def trial_work(
    study, trial: FrozenTrial, extra_seeds: int, objective: Objective
) -> dict[str, Callable[[], None]]:
    """The study user attributes a confirmed trial needs, each with the work that stores it."""
    cfg = compose(trial.user_attrs[Attr.overrides])

    def score_own_model() -> None:
        test, report = stored_model_test_scores(trial, cfg, objective.dataset(cfg))
        study.set_user_attr(f"test_report:{trial.number}", report)
        # last: its presence says the work is done
        study.set_user_attr(f"test:{trial.number}", test)

    def seed_work(seed: int) -> Callable[[], None]:
        def train() -> None:
            signals.check()
            data = objective.dataset(cfg)
            threads = workers.thread_overrides(workers.invoker_threads(objective.cfg))
            figures = train_with_seed(
                trial, seed, data, threads, fold_count(objective.cfg.search, cfg.data, data)
            )
            study.set_user_attr(f"confirm:{trial.number}:{seed}", figures)

        return train

    seeds = seeds_of(trial, extra_seeds)[1:]
    seeds_work = {f"confirm:{trial.number}:{seed}": seed_work(seed) for seed in seeds}
    return {f"test:{trial.number}": score_own_model} | seeds_work


def confirmed_row(study, trial: FrozenTrial, extra_seeds: int) -> Confirmed:
    """The trial's samples, read from the study's user attributes (trial_work stored them)."""
    attrs = study.user_attrs
    own_test, report = attrs.get(f"test:{trial.number}"), attrs.get(f"test_report:{trial.number}")
    own_seed, *seeds = seeds_of(trial, extra_seeds)
    own_val_loss = trial.user_attrs.get(Attr.tie_break, math.nan)
    tests = [own_test] if own_test is not None else []
    row = Confirmed(trial, [own_seed], [trial.values[0]], [own_val_loss], tests, report)
    for seed in seeds:
        figures = attrs[f"confirm:{trial.number}:{seed}"]
        row.seeds.append(seed)
        row.values.append(figures["value"] if figures["value"] is not None else math.nan)
        row.val_losses.append(
            figures.get("val_loss") if figures.get("val_loss") is not None else math.nan
        )
        if figures["test_accuracy"] is not None:
            row.test_accuracies.append(figures["test_accuracy"])
    return row


def train_with_seed(trial: FrozenTrial, seed: int, data, threads: list[str], folds: int) -> dict:
    """Train the trial's config again with another training seed, as a child run tagged `confirm`;
    `threads`: this process's, not those of the worker that ran the trial."""
    keras.backend.clear_session()
    cfg = compose(
        [
            *trial.user_attrs[Attr.overrides],
            *threads,
            f"train.seed={seed}",
            "train.evaluate_test=true",
        ]
    )
    tags = mlflow_runs.run_tags(cfg, entry="rnn-sweep confirm") | {
        "study": cfg.search.study_name,
        "confirm": "true",
        "confirm_of_trial": str(trial.number),
        "train_seed": str(seed),
    }
    try:
        with mlflow.start_run(
            run_name=f"{mlflow_runs.trial_run_name(trial.number, cfg)}-seed{seed}",
            nested=True,
            tags=tags,
        ):
            mlflow_runs.log_config(cfg, skip=("search", "lr_find"))
            mlflow_runs.log_data(data, cfg)
            result = train_seed(cfg, data, folds)
            mlflow_runs.log_training(result, data, cfg, title=f"trial {trial.number}, seed {seed}")
    except (
        TrialFailed
    ) as failure:  # this seed failed the config: a figure of the config, not a reason to stop
        log.warning("trial %d with seed %d failed: %s", trial.number, seed, failure)
        return {"value": None, "test_accuracy": None, "val_loss": None}
    diverged = divergence(result.summary) is not None
    return {
        "value": None if diverged else result.summary.get(Fig.best(cfg.search.objective)),
        "test_accuracy": None if diverged else result.summary.get(Fig.test_accuracy),
        "val_loss": None if diverged else result.summary.get(Fig.best("val_loss")),
    }


def train_seed(cfg: DictConfig, data, folds: int):
    """The config trained with its seed: one model, or with `folds`, every fold and the final
    model."""
    try:
        if folds > 1:
            return cross_validate(
                cfg, data, folds, after_fold=lambda index, mean: False, train=blamed_training
            )[0]
        return blamed_training(cfg, data)
    except TrialFailed as failure:
        mlflow.set_tags({"fail_reason": str(failure)[:5000]})
        raise


def stored_model_test_scores(
    trial: FrozenTrial, cfg: DictConfig, data
) -> tuple[float | None, dict | None]:
    """The trial's stored model (its best epoch), evaluated once on the test split: its accuracy and
    its per-class report (scores.class_report), both logged to the trial's run; (None, None) without
    a stored model."""
    run_id, model_id = (
        trial.user_attrs.get(Attr.mlflow_run_id),
        trial.user_attrs.get(Attr.mlflow_model_id),
    )
    if not cfg.train.log_model or not run_id or not model_id:
        log.warning(
            "trial %d has no stored model (train.log_model=false): no test score for its own seed",
            trial.number,
        )
        return None, None
    try:
        model, f1 = export.stored_scorer(model_id)
    except (OSError, mlflow.exceptions.MlflowException) as error:
        if no_space_error(
            error
        ):  # the machine's doing, not the model's: the command stops, to be run again
            raise
        log.warning(
            "trial %d: its model could not be loaded (%s): no test score for its own seed",
            trial.number,
            error,
        )
        return None, None
    figures, report = evaluate_test(model, f1, data, cfg.train)
    mlflow.MlflowClient().log_metric(
        run_id, Fig.test_accuracy, figures[Fig.test_accuracy], model_id=model_id
    )
    mlflow_runs.log_test_report(report, run_id, model_id)
    log_datasets(data, cfg.data, ("test",), run_id=run_id)
    del model
    gc.collect()
    return float(figures[Fig.test_accuracy]), report
