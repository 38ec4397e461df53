"""A winner you can trust on small, easy data: one order for ties, honest warnings, the baseline as it says,
divergence that is not NaN."""

import math
import random
import re
import types

import keras
import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from pipeline.core import ranking
from pipeline.report import sweep_report
from pipeline.search.confirm import Confirmed
from pipeline.core.names import Attr, Fig
from pipeline.training.train import BestEpoch, EarlyStopping

ITEMS = [
    "kettle",
    "charger",
    "lamp",
    "toaster",
    "blender",
    "fan",
    "heater",
    "speaker",
    "mouse",
    "keyboard",
    "cable",
    "mug",
    "backpack",
    "umbrella",
    "jacket",
    "pan",
    "knife",
    "clock",
    "pillow",
    "helmet",
]
PRAISE = [
    "The {} is sturdy, would buy again.",
    "Love this {}, works perfectly!",
    "Great {}: solid and well made.",
    "Excellent {}, highly recommend.",
]
COMPLAINTS = [
    "This {} was flimsy; waste of money!",
    "The {} broke after a day. Awful.",
    "Terrible {}, do not buy.",
    "Cheap {}, stopped working at once.",
]
NEW_TEXTS = {  # items the table never names, in its phrasing: obvious to a model that learned the wording
    "The radio is sturdy, would buy again.": "positive",
    "Love this printer, works perfectly!": "positive",
    "Excellent router, highly recommend.": "positive",
    "This tripod was flimsy; waste of money!": "negative",
    "Terrible drill, do not buy.": "negative",
}


def clear_cut_reviews(count: int = 300, seed: int = 0) -> pd.DataFrame:
    """`count` templated product reviews (duplicates among them) and four lines that are only punctuation."""
    draw = random.Random(seed)
    rows = []
    for index in range(count):
        label = "positive" if index % 2 else "negative"
        template = draw.choice(PRAISE if label == "positive" else COMPLAINTS)
        rows.append((template.format(draw.choice(ITEMS)), label))
    rows += [("...", "positive"), ("!!!", "negative"), ("?", "positive"), ("-", "negative")]
    return pd.DataFrame(rows, columns=["text", "label"])


# ------------------------------------------------------------------------------------------- one order


def test_a_tie_on_the_objective_goes_to_the_lower_validation_loss_and_missing_figures_rank_last():
    keys = {
        "tied, higher loss": ranking.rank_key(1.0, 0.675, maximize=True),
        "tied, lower loss": ranking.rank_key(1.0, 0.0006, maximize=True),
        "lower value": ranking.rank_key(0.98, 0.0001, maximize=True),
        "no loss": ranking.rank_key(1.0, None, maximize=True),
        "nan value": ranking.rank_key(math.nan, 0.1, maximize=True),
    }
    assert sorted(keys, key=keys.get) == [
        "tied, lower loss",
        "tied, higher loss",
        "no loss",
        "lower value",
        "nan value",
    ]
    assert ranking.rank_key(0.30, 0.30, maximize=False) < ranking.rank_key(
        0.31, 0.31, maximize=False
    )
    assert ranking.rank_key(1.0, 0.5, True) == ranking.rank_key(1.0 - 1e-9, 0.5, True), (
        "float32 noise is a tie"
    )


def feed(callback, logs: list[dict]) -> keras.Model:
    """`logs` fed to `callback` as fit() would, on a toy model whose weight is the epoch number."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.stop_training = False  # as fit() sets it
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, entry in enumerate(logs):
        model.layers[0].kernel.assign([[float(epoch)]])  # the weights say which epoch they are from
        callback.on_epoch_end(epoch, dict(entry))
        if model.stop_training:
            break
    callback.on_train_end()
    return model


SATURATED = [
    {"val_accuracy": 1.0, "val_loss": loss} for loss in (0.675, 0.40, 0.21, 0.09, 0.04, 0.02, 0.013)
]


def test_the_best_epoch_of_a_saturated_accuracy_is_the_one_with_the_lowest_validation_loss():
    best = BestEpoch("val_accuracy")
    model = feed(best, SATURATED)
    assert best.epoch == 6 and model.layers[0].kernel.numpy()[0, 0] == 6.0, (
        "epoch 7's weights were restored"
    )
    best = BestEpoch("val_accuracy")
    feed(best, [{"val_accuracy": 0.9, "val_loss": 0.2}, {"val_accuracy": 0.95, "val_loss": 0.3}])
    assert best.epoch == 1, "a better objective wins whatever its loss"


def test_early_stopping_goes_on_while_a_saturated_accuracy_has_a_falling_loss_and_stops_when_it_rises():
    stopper = EarlyStopping(monitor="val_accuracy", mode="max", patience=3)
    feed(stopper, SATURATED)
    assert stopper.stopped_epoch == 0, "the loss fell every epoch: the model was still improving"
    plain = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=3)
    feed(plain, SATURATED)
    assert plain.stopped_epoch == 3, (
        "Keras' own stops at epoch 4, as the 300-review sweep's baseline did"
    )
    rising = [
        {"val_accuracy": 1.0, "val_loss": loss} for loss in (0.3, 0.2, 0.25, 0.26, 0.27, 0.28)
    ]
    stopper = EarlyStopping(monitor="val_accuracy", mode="max", patience=3)
    feed(stopper, rising)
    assert stopper.stopped_epoch == 4 and stopper.best_epoch == 1


def test_early_stopping_keeps_min_delta_and_the_baseline_as_keras_means_them():
    """Review of 80c715b: a tie within min_delta let a worse accuracy with a lower loss count as progress, and
    equalling the baseline reset the patience."""
    drifting = [
        {"val_accuracy": a, "val_loss": loss}
        for a, loss in ((1.0, 0.5), (0.995, 0.4), (0.99, 0.3), (0.985, 0.2), (0.98, 0.1))
    ]
    stopper = EarlyStopping(monitor="val_accuracy", mode="max", patience=2, min_delta=0.01)
    feed(stopper, drifting)
    assert stopper.stopped_epoch == 2 and stopper.best == 1.0, (
        "each epoch worse: no progress, whatever its loss"
    )
    at_baseline = [{"val_accuracy": 0.9, "val_loss": loss} for loss in (0.5, 0.4, 0.3, 0.2)]
    stopper = EarlyStopping(monitor="val_accuracy", mode="max", patience=2, baseline=0.9)
    feed(stopper, at_baseline)
    assert stopper.stopped_epoch == 1, "equal to the baseline is not beating it"


def test_the_divergence_limit_on_rare_classes_is_above_an_untrained_models_loss():
    from pipeline.training.train import divergence_scale

    rare = types.SimpleNamespace(chance_loss=lambda: 0.056, num_classes=2)  # 1 % positives
    assert divergence_scale(rare) == pytest.approx(math.log(2))
    four = types.SimpleNamespace(chance_loss=lambda: 1.2, num_classes=4)
    assert divergence_scale(four) == pytest.approx(math.log(4))


def test_a_diverged_final_model_or_a_fold_without_a_value_fails_the_cross_validated_trial():
    from pipeline.training.folds import combined
    from pipeline.search.objective import divergence
    from pipeline.training.train import TrainResult

    def result(best=0.8, diverged_at=0, loss=0.3):
        summary = {
            Fig.epochs_run: 3,
            Fig.best_epoch: 3,
            Fig.fit_seconds: 1.0,
            Fig.nan_loss: 0,
            Fig.final_loss: loss,
            Fig.diverged_at: diverged_at,
            Fig.divergence_limit: 6.9,
        }
        summary |= {"best_val_accuracy": best} if best is not None else {}
        return TrainResult(history={"val_accuracy": [0.5, 0.7, 0.8]}, summary=summary, model=None)

    folds = [result(), result()]
    assert divergence(combined(folds, result(best=None), "val_accuracy", 2).summary) is None
    exploded = combined(
        folds, result(best=None, diverged_at=2, loss=2e5), "val_accuracy", 2
    ).summary
    assert divergence(exploded).startswith("diverged: training loss 2e+05 at epoch 2 is over 6.9")
    missing = combined([result(), result(best=None)], result(best=None), "val_accuracy", 2).summary
    assert "best_val_accuracy" not in missing, (
        "a fold with no finite value: the trial has none (it fails)"
    )


def test_a_study_keeps_the_folds_it_was_made_with():
    from pipeline.core.errors import InputError
    from pipeline.training.folds import study_folds
    from pipeline.search.sweep import compose

    data = toy_dataset(per_class=10)
    cfg = compose(["search=quick"])
    new = optuna.create_study(direction="maximize")
    assert study_folds(new, cfg, data) == 5 and new.user_attrs["cv_folds"] == 5
    old = tied_study()  # trials from before search.cv_folds: one split
    assert study_folds(old, cfg, data) == 1
    with pytest.raises(
        InputError,
        match=r"^search.cv_folds=5: study '.*' is run with one validation split; allowed: 1 or "
        r"auto, or a new search.study_name$",
    ):
        study_folds(old, compose(["search=quick", "search.cv_folds=5"]), data)
    with pytest.raises(
        InputError, match=r"^search.pruner=hyperband: Hyperband's resource is epochs"
    ):
        study_folds(
            optuna.create_study(), compose(["search=quick", "search.pruner=hyperband"]), data
        )


def test_a_study_s_folds_are_checked_before_any_data(tmp_path):
    """Issue 27 case 7: the stored study's folds refused a command only after its data was prepared."""
    from pipeline.core.errors import InputError
    from pipeline.training.folds import check_stored_folds
    from pipeline.search.sweep import compose

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    explicit = compose(["search=quick", "search.cv_folds=5", "search.study_name=old"])
    check_stored_folds(explicit, url)
    assert not (tmp_path / "optuna.db").exists(), (
        "a store that does not exist is not made by the check"
    )
    old = optuna.create_study(study_name="old", storage=url, direction="maximize")
    check_stored_folds(explicit, url)  # no trial yet: it takes whatever folds this command decides
    old.add_trial(tied_study().trials[0])
    with pytest.raises(
        InputError, match=r"^search.cv_folds=5: study 'old' is run with one validation split"
    ):
        check_stored_folds(explicit, url)
    check_stored_folds(compose(["search=quick", "search.cv_folds=1", "search.study_name=old"]), url)
    check_stored_folds(compose(["search=quick", "search.study_name=other"]), url)
    old.set_user_attr("cv_folds", 5)
    with pytest.raises(
        InputError, match=r"^search.pruner=hyperband: Hyperband's resource is epochs"
    ):
        check_stored_folds(
            compose(["search=quick", "search.pruner=hyperband", "search.study_name=old"]), url
        )


def tied_study(direction: str = "maximize") -> optuna.Study:
    """Three finished trials: 0 and 2 tie on the value, 2 with the lower validation loss; 1 scores less."""
    study = optuna.create_study(direction=direction)
    for value, loss in ((1.0, 0.675), (0.95, 0.01), (1.0, 0.0006)):
        study.add_trial(
            create_trial(
                value=value,
                params={"x": value},
                distributions={"x": FloatDistribution(0, 2)},
                user_attrs={Attr.tie_break: loss, Fig.best_epoch: 3, Attr.epochs_planned: 5},
            )
        )
    return study


def test_two_trials_tied_on_the_objective_rank_by_validation_loss_in_the_study_and_the_confirmation():
    from pipeline.search.confirm import ranked

    study = tied_study()
    assert study.best_trial.number == 0, "Optuna's own order: the first of the tie"
    assert sweep_report.best_trial(study).number == 2
    assert [t.number for t in ranked(study)] == [2, 0, 1]
    rows = [
        Confirmed(study.trials[0], [1, 2], [1.0, 1.0], [0.6, 0.7], []),
        Confirmed(study.trials[2], [1, 2], [1.0, 1.0], [0.01, 0.02], []),
    ]
    maximize = True
    assert (
        sorted(rows, key=lambda r: ranking.rank_key(r.mean, r.mean_val_loss, maximize))[
            0
        ].trial.number
        == 2
    )


def test_the_summary_lists_the_confirmed_winner_s_settings_and_names_the_objective():
    """Issue 28: 'Best trial 5: value 0.7889' listed trial 5's parameters while the winner was trial 3."""
    study = (
        tied_study()
    )  # trial 2 is the best single trial; here confirmation makes trial 0 the winner
    rows = [
        Confirmed(study.trials[0], [1, 2], [1.0, 1.0], [0.01, 0.02], []),
        Confirmed(study.trials[2], [1, 2], [1.0, 0.9], [0.01, 0.02], []),
    ]
    lines = sweep_report.winner_lines(study, rows, 3.0, "val_accuracy")
    assert lines[0] == "Best trial 2: val_accuracy 1.0000 (best epoch 3)"
    settings = lines.index(
        "Winner: trial 0, by its mean over seeds (the table below). Its settings:"
    )
    assert lines[settings + 1].split() == ["x", "1.0"] and lines[-1].startswith(
        "Winner by mean over seeds: trial 0"
    )
    alone = sweep_report.winner_lines(study, [], 0.0, "val_loss")
    assert alone[0].startswith("Best trial 2: val_loss 1.0000") and not any(
        line.startswith("Winner:") for line in alone
    )
    assert [line.split() for line in alone[1:]] == [["x", "1.0"]]


# ------------------------------------------------------------------------------------------- warnings


def small_data(val: int = 60, test: int = 60, chance: float = 0.5):
    return types.SimpleNamespace(
        sizes=lambda: {"train": 240, "val": val, "test": test}, chance_accuracy=lambda: chance
    )


def confirmed_row(trial, test_accuracy: float) -> list[Confirmed]:
    return [
        Confirmed(trial, [1], [trial.value], [trial.user_attrs[Attr.tie_break]], [test_accuracy])
    ]


def test_ties_at_the_maximum_are_named_with_their_numbers_and_what_to_do():
    study = tied_study()
    lines = sweep_report.warning_lines(
        study, confirmed_row(sweep_report.best_trial(study), 0.98), small_data(), "val_accuracy"
    )
    assert lines == [
        "Warning: the validation split cannot tell the leaders apart: 1 other trial ties with it at "
        "val_accuracy 1.0000; the lower validation loss decided. More data, or search.cv_folds=5, "
        "would separate them."
    ]


def test_leaders_within_one_standard_error_of_the_validation_split_are_named():
    study = optuna.create_study(direction="maximize")
    for value in (0.81, 0.80, 0.70):
        study.add_trial(
            create_trial(value=value, user_attrs={Attr.tie_break: 0.5, Fig.best_epoch: 4})
        )
    winner = sweep_report.best_trial(study)
    [line] = sweep_report.warning_lines(
        study, confirmed_row(winner, 0.80), small_data(val=450), "val_accuracy"
    )
    assert (
        "1 other trial scores within one standard error (±0.018 on 450 validation texts) of its val_accuracy 0.8100"
        in line
    )
    assert (
        sweep_report.warning_lines(
            study, confirmed_row(winner, 0.80), small_data(val=20_000), "val_accuracy"
        )
        == []
    )


def test_a_winner_within_noise_of_chance_and_a_first_best_epoch_are_named():
    study = optuna.create_study(direction="maximize")
    study.add_trial(
        create_trial(
            value=0.55, user_attrs={Attr.tie_break: 0.69, Fig.best_epoch: 1, Fig.epochs_run: 4}
        )
    )
    study.add_trial(create_trial(value=0.30, user_attrs={Attr.tie_break: 0.9, Fig.best_epoch: 2}))
    winner = sweep_report.best_trial(study)
    lines = sweep_report.warning_lines(
        study, confirmed_row(winner, 0.53), small_data(test=300), "val_accuracy"
    )
    assert lines == [
        "Warning: the winner's test accuracy 0.5300 is within noise of chance (0.5000 ± 0.0577 on 300 test texts): it "
        "may have learned nothing. Try more epochs, other learning rates or more data.",
        "Warning: the winner's best epoch was its first (of 4 run): it may have barely trained. Look at its curves; "
        "raise train.epochs or lower the learning rate.",
    ]
    assert sweep_report.warning_lines(
        study, confirmed_row(winner, 0.70), small_data(test=300), "val_accuracy"
    )[:1] == [lines[1]], "0.70 is 0.20 above chance: not noise"


# ------------------------------------------------------------------------------------ cross-validation


def toy_dataset(per_class: int = 10, classes: int = 2):
    from pipeline.data.texts import Dataset

    y = np.repeat(np.arange(classes), per_class).astype(np.float32)
    x = np.arange(len(y) * 3, dtype=np.int32).reshape(len(y), 3) + 1
    cut = len(y) * 4 // 5
    order = np.random.default_rng(0).permutation(len(y))
    train, val = order[:cut], order[cut:]
    return Dataset(
        x_train=x[train],
        y_train=y[train],
        x_val=x[val],
        y_val=y[val],
        x_test=x[:2],
        y_test=y[:2],
        vocab_size=100,
        vocabulary=[],
        class_names=[f"c{i}" for i in range(classes)],
    )


def test_the_folds_cover_training_and_validation_texts_once_each_stratified():
    from pipeline.training.folds import fold_datasets

    data = toy_dataset(per_class=10)
    folds = fold_datasets(data, 5, seed=1)
    validated = np.concatenate([f.x_val[:, 0] for f in folds])
    every = np.concatenate([data.x_train[:, 0], data.x_val[:, 0]])
    assert sorted(validated) == sorted(every), "each text validated exactly once"
    for fold in folds:
        assert np.bincount(fold.y_val.astype(int)).tolist() == [2, 2], "stratified"
        assert not set(fold.x_val[:, 0]) & set(fold.x_train[:, 0]) and len(fold.y_train) == 16
        assert fold.x_test is data.x_test


@pytest.mark.parametrize(
    "setting, val_path, size, expected",
    [
        ("auto", None, 2400, 5),
        ("auto", None, 5000, 1),
        ("auto", "dev.tsv", 400, 1),
        (3, None, 100_000, 3),
        (1, None, 100, 1),
    ],
)
def test_auto_cross_validates_small_data_without_a_validation_file(
    setting, val_path, size, expected
):
    from omegaconf import OmegaConf

    from pipeline.training.folds import fold_count

    data = types.SimpleNamespace(y_train=np.zeros(size - size // 5), y_val=np.zeros(size // 5))
    search = OmegaConf.create({"cv_folds": setting, "cv_auto_below": 5000})
    assert fold_count(search, OmegaConf.create({"val_path": val_path}), data) == expected


def test_a_class_smaller_than_the_folds_and_folds_with_a_validation_file_are_one_line():
    from pipeline.config import check
    from pipeline.core.errors import InputError
    from pipeline.training.folds import fold_datasets
    from pipeline.search.sweep import compose

    with pytest.raises(
        InputError,
        match=r"^search.cv_folds=5: the smallest class has 3 training texts, fewer than "
        r"the folds; allowed: 1 to 3 folds, or more data$",
    ):
        fold_datasets(toy_dataset(per_class=3), 5, seed=1)
    with pytest.raises(
        InputError,
        match=r"^search.cv_folds=5 with data.val_path: a validation file is the validation "
        r"split; allowed: search.cv_folds=1 or auto, or drop data.val_path$",
    ):
        check(
            compose(["data=table", "data.path=t.csv", "data.val_path=v.csv", "search.cv_folds=5"])
        )
    with pytest.raises(
        InputError,
        match=r"search.cv_folds=0; it must be auto, 1 \(one validation split\) or a "
        r"number of folds from 2 to 20",
    ):
        check(compose(["search.cv_folds=0"]))


# ------------------------------------------------------------------------------ end to end (slow)


@pytest.mark.slow
def test_on_300_clear_cut_reviews_the_champion_learned_and_ties_went_to_the_lower_loss(
    sweep_overrides, tmp_path, capsys
):
    """Acceptance a, b, d: six trials tied at val_accuracy 1.0 and the epoch-1 baseline won by its place in the order;
    its registered model scored every new text 0.49-0.51. Now the champion is sure of five new obvious texts, its
    best epoch is not the first, every ranking puts the tie's lowest validation loss first, and the summary says
    that the validation split could not separate the leaders."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from pipeline.tracking.registry import CHAMPION
    from pipeline.search.sweep import compose
    from tests.helpers.sweeps import runs_of, study_of, sweep

    path = tmp_path / "reviews.csv"
    clear_cut_reviews().to_csv(path, index=False)
    name = f"reviews-{tmp_path.name}"
    overrides = [
        *sweep_overrides,
        "search=quick",
        "data=table",
        f"data.path={path}",
        "data.max_len=12",
        "search.n_trials=4",
        "search.confirm_top_k=2",
        "search.confirm_seeds=1",
        "train.epochs=12",
        f"search.register_as={name}",
    ]
    assert sweep(overrides) == 0
    printed = capsys.readouterr().out
    study = study_of(overrides)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    tied = [t for t in done if t.value == max(d.value for d in done)]
    assert len(tied) >= 2, "precondition: easy data, trials tie at the top"
    best = sweep_report.best_trial(study)
    assert best.user_attrs[Attr.tie_break] == min(t.user_attrs[Attr.tie_break] for t in tied)
    assert f"Best trial {best.number}: val_accuracy" in printed
    assert "Warning: the validation split cannot tell the leaders apart:" in printed
    _, [parent], _ = runs_of(overrides)
    winner = study.trials[int(parent.data.metrics["best_trial"])]
    assert winner.user_attrs[Fig.best_epoch] > 1
    cfg = compose(overrides)
    version = MlflowClient(cfg.tracking.uri).get_model_version_by_alias(name, CHAMPION)
    assert version.run_id == winner.user_attrs["mlflow_run_id"]
    mlflow.set_tracking_uri(cfg.tracking.uri)
    champion = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
    answers = champion.predict(list(NEW_TEXTS))
    assert answers["label"].tolist() == list(NEW_TEXTS.values())
    assert (answers["probability"] > 0.9).all(), answers.to_string()


@pytest.mark.slow
def test_a_finite_exploded_loss_is_a_divergence_and_never_the_best_trial(sweep_overrides, tmp_path):
    """Acceptance f: SGD at learning rate 1e6 trained with a finite loss of 2e5 and was the study's best trial."""
    from mlflow.tracking import MlflowClient

    from pipeline.search.sweep import compose
    from tests.helpers.sweeps import study_of, sweep

    path = tmp_path / "reviews.csv"
    clear_cut_reviews().to_csv(path, index=False)
    overrides = [
        *sweep_overrides,
        "search=plateau",
        "model=gru",
        "optimizer=sgd",
        "data=table",
        f"data.path={path}",
        "data.max_len=12",
        "train.epochs=6",
        "search.space.learning_rate.choices=[1.0e6,0.5]",
        "search.n_trials=2",
    ]
    assert sweep(overrides) == 0
    study = study_of(overrides)
    [diverged] = [t for t in study.trials if t.params["learning_rate"] == 1e6]
    assert (
        diverged.state == TrialState.FAIL
        and diverged.user_attrs[Attr.fail_kind] == "hyperparameters"
    )
    run = MlflowClient(compose(overrides).tracking.uri).get_run(
        diverged.user_attrs["mlflow_run_id"]
    )
    assert "diverged: training loss" in run.data.tags["fail_reason"], run.data.tags["fail_reason"]
    assert run.data.metrics["final_loss"] > 10 * run.data.metrics["chance_loss"]
    assert math.isfinite(run.data.metrics["final_loss"]), "finite: NaN was caught before"
    best = sweep_report.best_trial(study)
    assert best.params["learning_rate"] == 0.5 and best.user_attrs[Fig.epochs_run] >= 2


@pytest.mark.slow
def test_a_baseline_value_outside_the_space_is_run_as_it_is_and_two_studies_start_alike(
    sweep_overrides, caplog
):
    """Acceptance e: the baseline took a sampled units (16 in one study, 32 in another) because the config's 64 lay
    outside the searched choices. It is run as an extra point, said so, and two studies start from the same one."""
    from mlflow.tracking import MlflowClient

    from pipeline.search.sweep import compose
    from tests.helpers.sweeps import study_of, sweep

    baselines = []
    for study_name, seed in (("first", 3), ("second", 3), ("third", 4)):
        overrides = [
            *sweep_overrides,
            "search=quick",
            "model=gru",
            "model.units=64",
            "search.n_trials=1",
            f"search.study_name={study_name}",
            f"search.seed={seed}",
        ]
        with caplog.at_level("INFO"):
            assert sweep(overrides) == 0
        [trial] = study_of(overrides).trials
        run = MlflowClient(compose(overrides).tracking.uri).get_run(
            trial.user_attrs["mlflow_run_id"]
        )
        baselines.append(
            (trial.params, trial.user_attrs[Attr.outside_space], run.data.params["model.units"])
        )
    assert baselines[0] == (
        {"body": "gru", "dropout": 0.0, "learning_rate": 0.001},
        {"units": 64},
        "64",
    )
    assert baselines[0] == baselines[1] == baselines[2], (
        "the config's own values, whatever the study or seed"
    )
    assert "baseline: units=64 outside search.space: run as an extra point" in caplog.text


@pytest.mark.slow
def test_no_warning_on_imdb_when_the_leaders_differ_and_the_winner_learned(sweep_overrides, capsys):
    """Acceptance d: silent on IMDB (a sweep whose two trials are far apart and whose winner learned)."""
    from tests.helpers.sweeps import sweep

    overrides = [
        *(o for o in sweep_overrides if not o.startswith(("data=", "data.subset", "data.max_len"))),
        "data=imdb",
        "data.subset=2000",
        "data.max_len=100",
        "search=plateau",
        "model=pooling",
        "optimizer=adam",
        "train.epochs=4",
        "search.space.learning_rate.choices=[0.01,1.0e-6]",
        "search.n_trials=2",
        "search.confirm_top_k=1",
        "search.confirm_seeds=0",
    ]
    assert sweep(overrides) == 0
    printed = capsys.readouterr().out
    assert "Best trial" in printed and "Warning" not in printed, printed[-3000:]


@pytest.mark.slow
def test_a_cross_validated_sweep_means_its_folds_prunes_between_them_and_trains_the_model_on_all(
    sweep_overrides, tmp_path, capsys
):
    """Acceptance of point 2: each trial trains one nested run per fold; its value is their mean (sd kept); the pruner
    sees the folds' running mean after each fold; the trial's model trains on all the data for the folds' median best
    epoch; seed confirmation cross-validates each seed."""
    import statistics

    from mlflow.tracking import MlflowClient

    from pipeline.search.sweep import compose
    from tests.helpers.sweeps import study_of, sweep

    path = tmp_path / "reviews.csv"
    clear_cut_reviews().to_csv(path, index=False)
    overrides = [
        *sweep_overrides,
        "search.cv_folds=3",
        "search=plateau",
        "model=pooling",
        "optimizer=adam",
        "optimizer.learning_rate=0.03",
        "data=table",
        f"data.path={path}",
        "data.max_len=12",
        "train.epochs=4",
        "search.sampler=random",
        "search.pruner=median",
        "search.pruner_startup_trials=1",
        "search.pruner_warmup_epochs=0",
        "search.space.learning_rate.choices=[0.03,1.0e-6]",
        "search.n_trials=5",
        "search.confirm_top_k=1",
        "search.confirm_seeds=1",
    ]
    assert sweep(overrides) == 0
    printed = capsys.readouterr().out
    study = study_of(overrides)
    client = MlflowClient(compose(overrides).tracking.uri)
    experiment = client.get_experiment_by_name(compose(overrides).tracking.experiment).experiment_id
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert complete and pruned and all(t.params["learning_rate"] == 1e-6 for t in pruned)
    for trial in complete:
        run_id = trial.user_attrs["mlflow_run_id"]
        folds = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{run_id}'")
        assert sorted(f.data.tags["fold"] for f in folds) == ["1 of 3", "2 of 3", "3 of 3"]
        values = [f.data.metrics["best_val_accuracy"] for f in folds]
        assert trial.value == pytest.approx(statistics.fmean(values), abs=1e-9)
        assert trial.user_attrs["cv_sd"] == pytest.approx(statistics.stdev(values), abs=1e-9)
        assert sorted(trial.intermediate_values) == [0, 1, 2], (
            "the folds' running mean after each fold"
        )
        run = client.get_run(run_id).data.metrics
        epochs = max(1, round(statistics.median(f.data.metrics["best_epoch"] for f in folds)))
        assert run["epochs_run"] == run["best_epoch"] == epochs, (
            "the final model: the folds' median best epoch"
        )
    for trial in pruned:
        assert len(trial.intermediate_values) < 3
        assert (
            client.get_run(trial.user_attrs["mlflow_run_id"]).data.metrics["pruned_after_fold"] < 3
        )
    confirmations = client.search_runs([experiment], "tags.confirm = 'true'")
    assert len(confirmations) == 1
    seed_folds = client.search_runs(
        [experiment], f"tags.mlflow.parentRunId = '{confirmations[0].info.run_id}'"
    )
    assert len(seed_folds) == 3, "the confirmation seed cross-validates too"
    train, val = map(int, re.search(r"; (\d+) train, (\d+) validation", printed).groups())
    assert (
        f"Validation: 3-fold cross-validation over the {train + val} training and validation texts"
        in printed
    )


def test_folds_a_class_cannot_fill_exit_2_with_one_line_and_nothing_stored(
    tmp_path, sweep_overrides
):
    import subprocess
    from pathlib import Path

    from pipeline.search.sweep import compose
    from tests.conftest import BIN
    from tests.helpers.processes import one_error_line
    from tests.helpers.sweeps import runs_of

    path = tmp_path / "rare.csv"
    rows = clear_cut_reviews(60)
    rows = pd.concat([rows[rows.label == "positive"], rows[rows.label == "negative"].head(8)])
    rows.to_csv(path, index=False)
    overrides = [
        *sweep_overrides,
        "search=quick",
        "data=table",
        f"data.path={path}",
        "search.cv_folds=10",
    ]
    result = subprocess.run(
        [BIN / "rnn-sweep", *overrides], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 2
    assert re.fullmatch(
        r"error: search.cv_folds=10: the smallest class has \d training texts, fewer than the folds; "
        r"allowed: 1 to \d folds, or more data",
        one_error_line(result.stderr),
    )
    assert not (Path(compose(overrides).paths.mlruns_dir) / "optuna.db").exists()
    assert runs_of(overrides)[1:] == ([], [])


@pytest.mark.slow
def test_labels_no_model_can_learn_give_the_chance_and_first_epoch_warnings(
    sweep_overrides, tmp_path, capsys
):
    """Acceptance d, on data made to trigger them: labels drawn at random, one epoch."""
    from tests.helpers.sweeps import sweep

    table = clear_cut_reviews()
    table["label"] = np.random.default_rng(3).choice(["negative", "positive"], size=len(table))
    path = tmp_path / "random.csv"
    table.to_csv(path, index=False)
    overrides = [
        *sweep_overrides,
        "search=quick",
        "data=table",
        f"data.path={path}",
        "data.max_len=12",
        "train.epochs=1",
        "search.n_trials=2",
        "search.confirm_top_k=1",
        "search.confirm_seeds=0",
    ]
    assert sweep(overrides) == 0
    printed = capsys.readouterr().out
    assert re.search(
        r"Warning: the winner's test accuracy 0\.\d{4} is within noise of chance \(0\.\d{4} ± 0\.\d{4} "
        r"on \d+ test texts\): it may have learned nothing\.",
        printed,
    ), printed[-2000:]
    assert "Warning: the winner's best epoch was its first (of 1 run)" in printed


def test_the_confirmation_heading_counts_in_words_that_agree():
    """It printed 'the top 1 trials with 1 more training seeds each'."""
    assert sweep_report.confirmation_heading(1, 1, 12.4) == (
        "Confirmation: the best trial with 1 more training seed (+12 s; the data split stays fixed)"
    )
    assert sweep_report.confirmation_heading(2, 2, 30) == (
        "Confirmation: the top 2 trials with 2 more training seeds each "
        "(+30 s; the data split stays fixed)"
    )


def test_one_trial_stopped_on_its_plateau_is_one_trial():
    """It printed 'Stopped on their plateau: 1 trials (0 pruned)'."""
    study = optuna.create_study()
    study.add_trial(
        create_trial(value=0.5, user_attrs={Fig.plateau_censored: 1, Fig.plateau_epochs: 3})
    )
    [line] = sweep_report.censored_plateau_lines(study.trials)
    assert line.startswith("Stopped on their plateau: 1 trial (0 pruned) ended")
