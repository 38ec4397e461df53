"""The cost guard: an Optuna pruner around the configured one that also stops a trial whose epochs
cost many times the median finished trial's and whose value is no better than theirs at the same
epoch.

Without it a slow and useless start-up trial (a 2-layer SimpleRNN of 128 units on IMDB: 50 s an
epoch at chance) holds a worker for minutes before the median pruner has the finished trials it
needs."""

import logging
import math
import statistics

import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from pipeline.core.names import Attr

log = logging.getLogger(__name__)


class CostGuard(BasePruner):
    """`wrapped`'s decision, or: epochs `slowdown` times the median's and a best value no better
    than the median's."""

    def __init__(self, wrapped: BasePruner, slowdown: float, min_trials: int):
        self.wrapped, self.slowdown, self.min_trials = wrapped, slowdown, min_trials

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self.wrapped.prune(study, trial) or self.too_costly(study, trial)

    def too_costly(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step, seconds = trial.last_step, trial.user_attrs.get(Attr.epoch_seconds)
        if step is None or seconds is None:
            return False
        finished = [
            t
            for t in study.get_trials(
                deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
            )
            if Attr.epoch_seconds in t.user_attrs and t.intermediate_values
        ]
        if len(finished) < self.min_trials:
            return False
        median_seconds = statistics.median(t.user_attrs[Attr.epoch_seconds] for t in finished)
        if seconds < self.slowdown * median_seconds:
            return False
        maximize = study.direction == StudyDirection.MAXIMIZE
        theirs = statistics.median(best_by(t, step, maximize) for t in finished)
        ours = best_by(trial, step, maximize)
        if ours > theirs if maximize else ours < theirs:
            return False
        log.info(
            "trial %d pruned by the cost guard: %.1f s per epoch, %.1fx the median finished "
            "trial's, and %.4f by epoch %d against their median %.4f",
            trial.number,
            seconds,
            seconds / median_seconds,
            ours,
            step + 1,
            theirs,
        )
        reason = (
            f"the cost guard ({seconds / median_seconds:.1f}x the median seconds per epoch, no "
            "better)"
        )
        # the live display says it
        study._storage.set_trial_user_attr(trial._trial_id, Attr.pruned_by, reason)
        return True


def best_by(trial: FrozenTrial, step: int, maximize: bool) -> float:
    """The trial's best reported value up to `step` (all of them, for a trial that stopped sooner);
    NaN is worst."""
    worst = -math.inf if maximize else math.inf
    values = [v for at, v in trial.intermediate_values.items() if at <= step and not math.isnan(v)]
    return (max if maximize else min)(values, default=worst)
