"""Trustworthy answers: one best epoch, no tokenless rows, censored plateaus, chance level, seed confirmation."""

import math

import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline.models import export
from pipeline.core import ranking
from pipeline.report import sweep_report
from pipeline.data.batching import evaluation_stream
from pipeline.data.texts import prepare_data
from pipeline.search.sweep import compose
from pipeline.training.train import plateau_level, run_summary, run_training, train_model
from tests.conftest import compose_config
from tests.helpers.sweeps import runs_of, study_of, sweep

PEAKS_APART = [
    "model=pooling",
    "optimizer=adam",
    "optimizer.learning_rate=0.01",
    "train.epochs=8",
    "train.log_model=true",
    "callbacks=none",
]  # on the 400-text subset, val_loss bottoms at epoch 4 and val_accuracy peaks at epoch 2


def stored_model(run_id: str):
    """The trained id model inside the MLflow model the run logged (pipeline/models/export.py)."""
    return export.stored_id_model(export.model_of_run(run_id))


# ------------------------------------------------------------------------------------- one best epoch


def test_sweep_value_stored_weights_and_best_epoch_come_from_one_epoch(sweep_overrides):
    overrides = [
        *sweep_overrides,
        "search=plateau",
        *PEAKS_APART,
        "search.space.learning_rate.choices=[0.01]",
        "search.n_trials=1",
    ]
    assert sweep(overrides) == 0
    [trial] = study_of(overrides).trials
    accuracy, loss = trial.user_attrs["curve_val_accuracy"], trial.user_attrs["curve_val_loss"]
    assert np.argmax(accuracy) != np.argmin(loss), (
        "precondition: the two validation metrics peak at different epochs"
    )
    ranked = sorted(
        range(len(accuracy)), key=lambda epoch: ranking.rank_key(accuracy[epoch], loss[epoch], True)
    )
    assert trial.user_attrs["best_epoch"] == ranked[0] + 1, (
        "the highest accuracy; of a tie, the lowest loss"
    )
    cfg = compose(overrides)
    data = prepare_data(cfg.data, cfg.paths.cache_dir)
    _, stored_accuracy = stored_model(trial.user_attrs["mlflow_run_id"]).evaluate(
        evaluation_stream(data.x_val, data.y_val, cfg.train), verbose=0
    )[:2]  # loss, accuracy (then macro-F1)
    assert stored_accuracy == pytest.approx(trial.value, abs=1e-6)
    client = MlflowClient(cfg.tracking.uri)
    child = client.get_run(trial.user_attrs["mlflow_run_id"])
    assert child.data.metrics["best_epoch"] == trial.user_attrs["best_epoch"]
    assert child.data.metrics["test_accuracy"] == pytest.approx(
        report_test_accuracy(client, overrides), abs=1e-9
    )


def report_test_accuracy(client, overrides) -> float:
    """The parent run's best_test_accuracy: the stored model's test score, logged once at the end."""
    _, [parent], _ = runs_of(overrides)
    return parent.data.metrics["best_test_accuracy"]


def test_rnn_train_keeps_tests_and_reports_the_best_val_loss_epoch(make_cfg):
    cfg = make_cfg(
        *PEAKS_APART, "data.subset=400", "data.max_len=20", "tracking.experiment=test-best-epoch"
    )
    result = run_training(cfg)
    best = int(np.argmin(result.history["val_loss"]))
    assert np.argmax(result.history["val_accuracy"]) != best, (
        "precondition: the two validation metrics peak apart"
    )
    assert (
        result.summary["best_epoch"] == best + 1
        and result.summary["best_val_loss"] == result.history["val_loss"][best]
    )
    data = prepare_data(cfg.data, cfg.paths.cache_dir)
    client = MlflowClient(cfg.tracking.uri)
    [run] = client.search_runs([client.get_experiment_by_name("test-best-epoch").experiment_id])
    model = stored_model(run.info.run_id)
    val_loss, val_accuracy = model.evaluate(
        evaluation_stream(data.x_val, data.y_val, cfg.train), verbose=0
    )[:2]
    assert val_loss == pytest.approx(result.history["val_loss"][best], rel=1e-5)
    assert val_accuracy == pytest.approx(result.history["val_accuracy"][best], abs=1e-6)
    test_loss, test_accuracy = model.evaluate(
        evaluation_stream(data.x_test, data.y_test, cfg.train), verbose=0
    )[:2]
    assert run.data.metrics["test_accuracy"] == pytest.approx(test_accuracy, abs=1e-6)


def test_early_stopping_watches_the_metric_that_picks_the_best_epoch():
    cfg = compose(["search=quick"])
    assert cfg.callbacks.early_stopping.monitor == cfg.train.monitor == "val_accuracy"
    train_cfg = compose_config()
    assert train_cfg.callbacks.early_stopping.monitor == train_cfg.train.monitor == "val_loss"
    assert (cfg.callbacks.early_stopping.mode, train_cfg.callbacks.early_stopping.mode) == (
        "max",
        "min",
    )


# ------------------------------------------------------------------------------------- tokenless texts

WORDS = [
    "a fine film",
    "great acting",
    "loved it",
    "superb",
    "a dull film",
    "weak story",
    "hated it",
    "boring",
]
TOKENLESS = [
    ".",
    "--",
    "!!!",
    "?!",
    "...",
    "(-:",
]  # ASCII punctuation only: standardization strips it all


def write_table_with_tokenless_texts(folder):
    """Real-corpus mess: punctuation-only lines, duplicates, an odd character, in train and test."""
    texts = [f"{WORDS[i % 8]} number{i}" for i in range(74)] + TOKENLESS
    labels = [int(i % 8 < 4) for i in range(74)] + [0, 1, 0, 1, 0, 1]
    texts[10] = texts[11] = "great acting number11"  # a duplicate
    texts[12] = "caf\u00e9 \u0085 fine"
    pd.DataFrame({"text": texts, "label": labels}).to_csv(folder / "train.csv", index=False)
    test = [f"{WORDS[i % 8]} item{i}" for i in range(17)] + TOKENLESS[:3]
    pd.DataFrame({"text": test, "label": [int(i % 8 < 4) for i in range(17)] + [1, 0, 1]}).to_csv(
        folder / "test.csv", index=False
    )
    return [f"data.path={folder / 'train.csv'}", f"data.test_path={folder / 'test.csv'}"]


BODIES = [
    ["model=pooling", "model.pooling=average"],
    ["model=pooling", "model.pooling=max"],
    ["model=simple_rnn"],
    ["model=lstm"],
    ["model=gru"],
    ["model=gru", "model.bidirectional=true"],
    ["model=bilstm_stacked"],
]


@pytest.mark.parametrize("body", BODIES, ids=lambda b: "-".join(o.split("=")[1] for o in b))
def test_texts_without_a_token_never_reach_a_model_and_every_body_trains(tmp_path, make_cfg, body):
    files = write_table_with_tokenless_texts(tmp_path)
    cfg = make_cfg(
        "data=table",
        *files,
        *body,
        "optimizer=rmsprop",
        "optimizer.learning_rate=3e-5",
        "train.epochs=2",
        "train.batch_size=16",
    )
    data = prepare_data(cfg.data, cfg.paths.cache_dir)
    assert (
        data.empty_texts["train"] + data.empty_texts["val"] == len(TOKENLESS)
        and data.empty_texts["test"] == 3
    )
    assert (
        data.sizes()["train"] + data.sizes()["val"] == 80 - len(TOKENLESS)
        and data.sizes()["test"] == 20
    )
    assert (
        data.x_train.any(axis=1).all()
        and data.x_val.any(axis=1).all()
        and data.x_test.any(axis=1).all()
    )
    result = train_model(cfg, data)
    assert not result.summary["nan_loss"] and all(
        math.isfinite(v) for v in result.history["loss"] + result.history["val_loss"]
    )


def test_dropped_texts_are_logged_and_shown(tmp_path, make_cfg, capsys):
    files = write_table_with_tokenless_texts(tmp_path)
    cfg = make_cfg("data=table", *files, "model=pooling", "tracking.experiment=test-tokenless")
    result = run_training(cfg)
    out = capsys.readouterr().out
    client = MlflowClient(cfg.tracking.uri)
    [run] = client.search_runs([client.get_experiment_by_name("test-tokenless").experiment_id])
    logged = {k: v for k, v in run.data.metrics.items() if k.startswith("empty_texts_")}
    assert (
        logged["empty_texts_train"] + logged["empty_texts_val"] == len(TOKENLESS)
        and logged["empty_texts_test"] == 3
    )
    assert "empty_texts_test" in out and "empty_texts_train" in out
    assert not result.summary["nan_loss"]


# ------------------------------------------------------------------------------------- plateaus and chance


def test_a_run_that_ends_on_its_plateau_is_censored():
    train_cfg = compose_config().train
    flat = {
        "loss": [0.693, 0.692, 0.693],
        "val_loss": [0.69, 0.69, 0.69],
        "val_accuracy": [0.5, 0.5, 0.5],
    }
    summary = run_summary(flat, 0, train_cfg)
    assert (summary["plateau_epochs"], summary["plateau_censored"], summary["best_epoch"]) == (
        3,
        1,
        1,
    )
    escaped = {
        "loss": [0.693, 0.692, 0.5],
        "val_loss": [0.69, 0.69, 0.6],
        "val_accuracy": [0.5, 0.5, 0.7],
    }
    assert run_summary(escaped, 2, train_cfg)["plateau_censored"] == 0


def test_plateau_at_chance_level():
    assert (
        plateau_level([0.6932, 0.6925, 0.6931, 0.4], 3, math.log(2), 0.03)["plateau_at_chance"] == 1
    )
    assert plateau_level([0.52, 0.515, 0.4], 2, math.log(2), 0.03)["plateau_at_chance"] == 0, (
        "flat, but well below chance"
    )
    assert "plateau_at_chance" not in plateau_level([0.69, 0.4], 1, math.log(2), 0.03), (
        "one epoch is no plateau"
    )


def test_chance_loss_is_the_entropy_of_the_training_labels(make_cfg):
    cfg = make_cfg()
    data = prepare_data(cfg.data, cfg.paths.cache_dir)
    p = data.y_train.mean()
    assert data.chance_loss() == pytest.approx(-(p * math.log(p) + (1 - p) * math.log(1 - p)))
    assert data.chance_loss() == pytest.approx(math.log(2), rel=1e-3), (
        "the UCI sentences are balanced"
    )


def fabricated(number, state, plateau, epochs, rate):
    attrs = {
        "learning_rate": rate,
        "plateau_epochs": plateau,
        "plateau_censored": int(plateau == epochs),
        "epochs_run": epochs,
        "epochs_planned": 10,
        "fit_seconds": epochs,
        "curve_loss": [0.69] * epochs,
        "curve_val_loss": [0.69] * epochs,
        "chance_loss": 0.693,
    }
    values = (
        {"value": 0.6}
        if state == optuna.trial.TrialState.COMPLETE
        else {"intermediate_values": {epochs - 1: 0.5}}
    )
    return optuna.trial.create_trial(
        state=state, params={}, distributions={}, user_attrs=attrs, **values
    )


def test_censored_plateaus_are_counted_in_the_summary_and_marked_in_the_chart():
    pruned = optuna.trial.TrialState.PRUNED
    trials = [
        fabricated(0, pruned, 2, 2, 1e-4),
        fabricated(1, pruned, 3, 3, 3e-4),
        fabricated(2, optuna.trial.TrialState.COMPLETE, 2, 10, 1e-2),
    ]
    [line] = sweep_report.censored_plateau_lines(trials)
    assert (
        line.startswith("Stopped on their plateau: 2 trials (2 pruned)")
        and "search.pruner=patient" in line
    )
    figure = sweep_report.plateau_vs_learning_rate(trials)
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert labels == ["complete", "pruned, still on its plateau (≥)"]
    sweep_report.plt.close(figure)


# ------------------------------------------------------------------------------------- seeds


@pytest.mark.slow  # a real-data end-to-end sweep: CI runs it, the quick loop does not
def test_top_trials_are_confirmed_with_more_seeds_and_the_best_mean_wins(sweep_overrides, capsys):
    overrides = [
        *sweep_overrides,
        "search=quick",
        "search.pruner=none",
        "train.log_model=true",
        "search.confirm_top_k=2",
        "search.confirm_seeds=2",
    ]
    assert sweep(overrides) == 0
    out = capsys.readouterr().out
    assert (
        "Confirmation: the top 2 trials with 2 more training seeds each" in out
        and "Winner by mean over seeds: trial" in out
    )
    client, [parent], children = runs_of(overrides)
    confirms = [c for c in children if c.data.tags.get("confirm") == "true"]
    assert len(confirms) == 4 and sorted(c.data.tags["train_seed"] for c in confirms) == [
        "43",
        "43",
        "44",
        "44",
    ]
    assert {c.data.params["data_size.train"] for c in children} == {
        children[0].data.params["data_size.train"]
    }, "one data split"
    assert {c.data.params["seed"] for c in children} == {"42"}, "only train.seed moves"
    study = study_of(overrides)
    means = {}
    for trial in study.trials:
        extra = [study.user_attrs.get(f"confirm:{trial.number}:{seed}") for seed in (43, 44)]
        if all(extra):
            means[trial.number] = np.mean([trial.value] + [e["value"] for e in extra])
    assert len(means) == 2 and parent.data.metrics["best_trial"] == max(means, key=means.get)
    assert parent.data.metrics["best_value_mean"] == pytest.approx(max(means.values()))
    assert {
        "best_value_sd",
        "best_test_accuracy",
        "best_test_accuracy_sd",
        "confirm_seconds",
    } <= set(parent.data.metrics)

    assert sweep([*overrides, "search.n_trials=1"]) == 0, (
        "a later invocation reuses the confirmations it finds"
    )
    top = sorted(
        study_of(overrides).get_trials(states=[optuna.trial.TrialState.COMPLETE]),
        key=lambda t: -t.value,
    )[:2]
    newly_confirmed = [t.number for t in top if t.number not in means]
    _, _, children = runs_of(overrides)
    assert len([c for c in children if c.data.tags.get("confirm") == "true"]) == 4 + 2 * len(
        newly_confirmed
    )


def test_rnn_train_monitoring_val_accuracy_keeps_its_highest_epoch(make_cfg):
    cfg = make_cfg(
        *PEAKS_APART,
        "data.subset=400",
        "data.max_len=20",
        "train.monitor=val_accuracy",
        "train.log_model=false",
    )
    data = prepare_data(cfg.data, cfg.paths.cache_dir)
    result = train_model(cfg, data)
    assert result.summary["best_epoch"] == np.argmax(result.history["val_accuracy"]) + 1
    assert result.summary["best_val_accuracy"] == max(result.history["val_accuracy"])
