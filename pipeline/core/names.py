"""Names shared by the modules that write and read them, so that a misspelt name fails where it is
written (an AttributeError on import or first use), not as a missing key at the end of a sweep.

`Fig`: a run's figures — the keys of TrainResult.summary, logged as MLflow metrics of the run.
`Attr`: a trial's attributes in the study (Optuna user_attrs) — what report.py, diagnosis.py,
confirm.py, the stale-trial handler and the benchmarks read back, whichever worker wrote them.
Both are str enums: a member is its own name as a plain string (MLflow and Optuna store that
string).
"""

from enum import StrEnum

# a best epoch's metric
MONITORED = ("val_accuracy", "val_loss", "accuracy", "loss", "val_macro_f1", "macro_f1")


def higher_is_better(metric: str) -> bool:
    """Accuracies and F1 are maximized, losses minimized: the direction follows from the metric."""
    return "accuracy" in metric or "f1" in metric


class Fig(StrEnum):
    epochs_run = "epochs_run"
    # leading epochs within train.plateau_tolerance of epoch 1's training loss
    plateau_epochs = "plateau_epochs"
    # 1: the run ended still on its plateau (plateau_epochs is a lower bound)
    plateau_censored = "plateau_censored"
    longest_stall = "longest_stall"
    nan_loss = "nan_loss"
    final_loss = "final_loss"  # the last epoch's training loss
    # the training loss past which a run has diverged (train.divergence_factor)
    divergence_limit = "divergence_limit"
    # from 1: the epoch whose training loss passed train.divergence_factor x chance; 0: none
    diverged_at = "diverged_at"
    best_epoch = "best_epoch"  # from 1: the epoch whose weights were kept
    chance_loss = "chance_loss"
    plateau_loss = "plateau_loss"
    plateau_at_chance = "plateau_at_chance"
    plateau_grad_norm = "plateau_grad_norm"
    escape_grad_norm = "escape_grad_norm"
    plateau_update_ratio = "plateau_update_ratio"
    escape_update_ratio = "escape_update_ratio"
    params = "params"
    build_seconds = "build_seconds"
    fit_seconds = "fit_seconds"
    evaluate_seconds = "evaluate_seconds"
    test_loss = "test_loss"
    test_accuracy = "test_accuracy"
    test_macro_f1 = "test_macro_f1"
    cv_folds = "cv_folds"  # search.cv_folds as decided for the data (1: one validation split)
    cv_folds_run = "cv_folds_run"  # folds trained (fewer when pruned or diverged)
    cv_sd = "cv_sd"  # the sd of the objective over the folds
    # a cross-validated trial's epochs over all its fits (folds and final model)
    epochs_trained = "epochs_trained"
    num_classes = "num_classes"  # K: 2 is one sigmoid output, more a softmax
    vectors_dim = "vectors_dim"  # the width of the word vectors of model.embedding.vectors
    vectors_vocabulary_coverage = "vectors_vocabulary_coverage"  # share of the vocabulary's words
    vectors_token_coverage = "vectors_token_coverage"  # share of the training split's tokens

    @staticmethod
    def best(metric: str) -> str:
        """The best epoch's value of a per-epoch metric, e.g. best_val_accuracy."""
        return f"best_{metric}"


class Attr(StrEnum):
    # the trial's whole command line (passwords redacted): any worker can rebuild its config
    overrides = "overrides"
    baseline = "baseline"  # the composed config's own values, enqueued once per study
    # a trial placed before the sampler chose: baseline, portfolio N, or STUDY trial N (warm start)
    start = "start"
    # the trial's mean wall seconds per epoch so far (the cost guard compares them)
    epoch_seconds = "epoch_seconds"
    fail_kind = "fail_kind"  # why a FAIL trial failed: hyperparameters | input | interrupted
    mlflow_run_id = "mlflow_run_id"
    mlflow_parent_run_id = "mlflow_parent_run_id"
    # the trial's logged MLflow model (string in, probability out)
    mlflow_model_id = "mlflow_model_id"
    learning_rate = "learning_rate"
    epochs_planned = "epochs_planned"
    epochs_done = "epochs_done"  # epochs a running trial has finished (the live display shows them)
    # search.cv_folds as decided for this trial's data (1: one split)
    folds_planned = "folds_planned"
    # the trial's MLflow run name, e.g. t3-lstm32-lr4.5e-3 (the live display shows it)
    run_name = "run_name"
    # the best epoch's validation loss: it ranks trials tied on the objective
    tie_break = "best_val_loss"
    # who pruned the trial and why, when not the configured pruner (the cost guard)
    pruned_by = "pruned_by"
    # the baseline's config values that lie outside search.space, run as they are
    outside_space = "outside_space"

    @staticmethod
    def curve(metric: str) -> str:
        """A per-epoch curve kept for the end-of-sweep charts, e.g. curve_loss."""
        return f"curve_{metric}"


def start_label(trial) -> str | None:
    """How the trial was placed (None: the sampler chose it); studies from before Attr.start mark
    only the baseline."""
    return trial.user_attrs.get(Attr.start) or (
        "baseline" if trial.user_attrs.get(Attr.baseline) else None
    )


# the run figures every trial keeps in the study for the charts, the summary and the diagnosis
REMEMBERED = (
    Fig.plateau_epochs,
    Fig.plateau_censored,
    Fig.longest_stall,
    Fig.epochs_run,
    Fig.fit_seconds,
    Fig.build_seconds,
    Fig.chance_loss,
    Fig.plateau_loss,
    Fig.plateau_at_chance,
    Fig.best_epoch,
    Fig.plateau_grad_norm,
    Fig.escape_grad_norm,
    Fig.plateau_update_ratio,
    Fig.escape_update_ratio,
    Fig.num_classes,
    Fig.cv_folds,
    Fig.cv_sd,
    Fig.cv_folds_run,
    Fig.epochs_trained,
)
