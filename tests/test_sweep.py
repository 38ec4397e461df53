"""rnn-sweep: validation before any trial, nested MLflow runs, resume, pruning, failures inside trials."""

import re
import subprocess
from pathlib import Path

import optuna
import pytest

from pipeline.core.errors import InputError
from pipeline.config.space import baseline_params
from pipeline.search.sweep import EXIT_ALL_TRIALS_FAILED, compose
from pipeline.search.workers import usable_cores
from tests.conftest import BIN, CHARTS
from tests.helpers.sweeps import assert_every_trial_has_its_chart, runs_of, study_of, sweep


BAD_SPACES = [
    (
        "+search.space.typo={path: model.unitz, type: int, low: 1, high: 3}",
        r"search.space.typo \(model.unitz=1\): Could not override 'model.unitz'",
    ),
    (
        "search.space.learning_rate.low=0.5",
        r"search.space.learning_rate: low=0.5 must be a number below high=0.03",
    ),
    (
        "search.space.learning_rate.low=0.03",
        r"search.space.learning_rate: low=0.03 must be a number below high=0.03",
    ),
    (
        "search.space.dropout.low=0.4",
        r"search.space.dropout: low=0.4 must be a number below high=0.4",
    ),
    ("search.space.body.choices=[]", r"search.space.body.choices is empty"),
    (
        "search.space.learning_rate.low=0",
        r"search.space.learning_rate: log=true needs low > 0, got low=0",
    ),
    (
        "search.space.dropout.type=uniform",
        r"search.space.dropout.type='uniform'; allowed: float, int, categorical",
    ),
    (
        "search.space.dropout.high=1.5",
        r"search.space.dropout \(model.dropout=1.5\): model.dropout=1.5; it must lie in \[0, 1\)",
    ),
    ("+search.space.body.choices=[pooling,transformer]", None),
    (
        "search.space.body.choices=[pooling,transformer]",
        r"model.body='transformer'; allowed: pooling, simple_rnn, lstm, gru",
    ),
    (
        "+search.space.opt={path: optimizer, type: categorical, choices: [adam, adagrad]}",
        r"search.space.opt \(optimizer=adagrad\): .*Could not find 'optimizer/adagrad'",
    ),
    (
        "search.sampler=grid",
        r"search.space.dropout: search.sampler=grid needs categorical entries only",
    ),
    ("search.sampler=bayes", r"search.sampler='bayes'; allowed: tpe, random, cmaes, grid"),
    (
        "search.second_objective=fit_seconds",
        r"search.pruner=median cannot prune a two-objective study",
    ),
    (
        "search.objective=f1",
        r"search.objective='f1'; allowed: val_accuracy, val_loss, accuracy, loss",
    ),
    ("search.n_trials=0", r"search.n_trials=0; it must be an integer from 1 to 1000000000"),
    ("search.heartbeat_seconds=0", r"search.heartbeat_seconds=0; it must be an integer >= 1"),
    ("search.max_retry=-1", r"search.max_retry=-1; it must be an integer >= 0"),
    ("search.max_total_trials=0", r"search.max_total_trials=0; it must be null or an integer >= 1"),
    ("search.timeout=-5", r"search.timeout=-5; it must be null or a finite number of seconds > 0"),
    ("search.baseline_first=sometimes", r"search.baseline_first='sometimes'; allowed: true, false"),
]


@pytest.mark.parametrize(
    "bad, message", [case for case in BAD_SPACES if case[1]], ids=lambda v: str(v)[:40]
)
def test_bad_search_is_rejected_before_any_study_or_run(sweep_overrides, bad, message):
    good = [*sweep_overrides, "search=quick"]
    with pytest.raises(InputError, match=message):
        sweep(
            [*good, bad]
        )  # a value of the wrong type is rejected while composing, others by the check
    assert not (Path(compose(good).paths.mlruns_dir) / "optuna.db").exists()
    assert runs_of(good)[1:] == ([], [])


@pytest.mark.parametrize(
    "bad", ["model.unitz=3", "search=nonexistent", "search.space.learning_rate.low=0"]
)
def test_cli_rejects_bad_overrides_and_spaces_with_exit_2(tmp_path, bad):
    command = [
        BIN / "rnn-sweep",
        "data=sentences",
        "search=quick",
        bad,
        f"paths.cache_dir={tmp_path}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert not (tmp_path / "mlruns").exists()


@pytest.mark.slow  # a real-data end-to-end sweep: CI runs it, the quick loop does not
def test_sweep_makes_one_parent_and_one_child_per_trial_then_resumes(sweep_overrides):
    overrides = [*sweep_overrides, "search=quick", "search.pruner=none", CHARTS]
    assert sweep(overrides) == 0
    client, [parent], children = runs_of(overrides)
    assert len(children) == 3 and {c.data.tags["mlflow.parentRunId"] for c in children} == {
        parent.info.run_id
    }
    assert parent.data.tags["study"] == "quick-sentences" and parent.data.tags["sampler"] == "tpe"
    assert (
        parent.data.metrics["trials_complete"] == 3 and "best_test_accuracy" in parent.data.metrics
    )
    parent_artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {
        "search_space.yaml",
        "summary.txt",
        "optimization_history.png",
        "parallel_coordinates.png",
        "learning_curves_by_learning_rate.png",
        "plateau_vs_learning_rate.png",
    } <= parent_artifacts
    for child in children:
        assert child.info.status == "FINISHED" and child.data.tags["trial_state"] == "COMPLETE"
        params = child.data.params
        body = params["model.body"] + (
            "" if params["model.body"] == "pooling" else params["model.units"]
        )
        assert re.fullmatch(
            rf"t{child.data.tags['trial_number']}-\w*{body}\w*-lr\d(\.\d)?e-\d+",
            child.info.run_name,
        ), child.info.run_name  # says what it trained
        assert [m.step for m in client.get_metric_history(child.info.run_id, "val_accuracy")] == [
            1,
            2,
        ]
        assert {"plateau_epochs", "longest_stall", "fit_seconds", "epoch_seconds"} <= set(
            child.data.metrics
        )
        assert "search.sampler" not in child.data.params and "model.body" in child.data.params
        threads = {
            key: child.data.params[f"train.threads.{key}"] for key in ("intra_op", "inter_op")
        }
        assert threads == {"intra_op": str(usable_cores()), "inter_op": "1"}, (
            "in the invoker, a lone worker's threads"
        )
    assert_every_trial_has_its_chart(client, children)
    study = study_of(overrides)
    assert sorted(t.number for t in study.trials) == [0, 1, 2]
    best = study.best_trial
    assert (
        client.get_run(best.user_attrs["mlflow_run_id"]).data.params["model.body"]
        == best.params["body"]
    )

    baseline = study.trials[0]  # search.baseline_first: the composed config's own values, first
    fixed = {
        "body": "lstm",
        "dropout": 0.0,
        "learning_rate": 0.001,
    }  # lstm's 64 units lie outside quick's [16, 32]
    assert baseline.user_attrs["baseline"] and baseline.system_attrs["fixed_params"] == fixed
    assert baseline.params == fixed and baseline.user_attrs["outside_space"] == {"units": 64}, (
        "64 units, as it is"
    )
    assert client.get_run(baseline.user_attrs["mlflow_run_id"]).data.params["model.units"] == "64"

    assert sweep(overrides) == 0  # the same command again: the same study, three more trials
    client, parents, children = runs_of(overrides)
    assert len(parents) == 2 and len(children) == 6
    trials = study_of(overrides).trials
    assert sorted(t.number for t in trials) == list(range(6))
    assert [t.number for t in trials if t.user_attrs.get("baseline")] == [0], (
        "the baseline runs once per study"
    )


def test_baseline_takes_the_composed_values_that_lie_in_the_space():
    cfg = compose(["data=imdb", "search=default"])
    assert baseline_params(cfg, ["data=imdb", "search=default"]) == (
        {
            "body": "lstm",
            "bidirectional": False,
            "num_layers": 1,
            "units": 64,
            "embedding_dim": 32,
            "dropout": 0.0,
            "recurrent_dropout": 0.0,
            "optimizer": "adam",
            "learning_rate": 0.001,
            "batch_size": 128,
        },
        {},
    )
    overrides = [
        "search=default",
        "optimizer=rmsprop",
        "model.dropout=0.05",
        "model.units=48",
        "optimizer.learning_rate=0.5",
    ]
    params, outside = baseline_params(compose(overrides), overrides)
    assert params["optimizer"] == "rmsprop"
    assert not {"dropout", "units", "learning_rate"} & params.keys(), (
        "off the step grid, not a choice, above high"
    )
    assert outside == {"dropout": 0.05, "units": 48, "learning_rate": 0.5}
    pooling = [*overrides, "model=pooling"]
    assert "units" not in baseline_params(compose(pooling), pooling)[1], (
        "a pooling body has no units: not outside"
    )


@pytest.mark.slow  # a real-data end-to-end sweep: CI runs it, the quick loop does not
def test_plateau_search_runs_the_learning_rate_grid(sweep_overrides):
    overrides = [*sweep_overrides, "search=plateau", "train.epochs=3", "search.n_trials=5"]
    assert sweep(overrides) == 0
    study = study_of(overrides)
    rates = sorted(t.params["learning_rate"] for t in study.trials)
    assert rates == [1e-4, 1e-3, 1e-2, 5e-2, 1e-1]
    assert all(t.user_attrs["epochs_run"] == 3 for t in study.trials), (
        "no early stopping, no pruning"
    )
    client, [parent], children = runs_of(overrides)
    assert parent.data.tags["model"] == "gru" and parent.data.tags["optimizer"] == "rmsprop"
    assert not [
        child
        for child in children
        if "learning_curves.png" in {a.path for a in client.list_artifacts(child.info.run_id)}
    ], "tracking.trial_charts=false (the tests' shrink): no trial's chart is drawn"


@pytest.mark.slow  # a real-data end-to-end sweep: CI runs it, the quick loop does not
def test_unpromising_trials_are_pruned_and_say_when(sweep_overrides):
    overrides = [
        *sweep_overrides,
        "search=plateau",
        "model=pooling",
        "optimizer=adam",
        "train.epochs=3",
        "search.n_trials=6",
        "search.sampler=random",
        "search.pruner=median",
        "search.pruner_startup_trials=1",
        "search.pruner_warmup_epochs=0",
        "search.space.learning_rate.choices=[0.03,1.0e-6]",
    ]
    assert sweep(overrides) == 0
    study = study_of(overrides)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned and all(t.params["learning_rate"] == 1e-6 for t in pruned)
    client, _, children = runs_of(overrides)
    for trial in pruned:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.info.status == "FINISHED" and run.data.tags["trial_state"] == "PRUNED"
        assert run.data.metrics["pruned_at_epoch"] == len(trial.user_attrs["curve_loss"]) < 3
        assert run.info.run_name == f"{trial.user_attrs['run_name']}-pruned", (
            "the UI's lists and legends say so"
        )
    assert not any(
        c.info.run_name.endswith("-pruned")
        for c in children
        if c.data.tags["trial_state"] == "COMPLETE"
    )


@pytest.mark.slow  # a real-data end-to-end sweep: CI runs it, the quick loop does not
def test_a_failing_trial_stays_inside_the_trial_and_all_failing_exits_3(sweep_overrides):
    overrides = [
        *sweep_overrides,
        "search=plateau",
        "optimizer=sgd",
        "model=pooling",
        "train.epochs=2",
        "search.space.learning_rate.choices=[1.0e30,0.01]",
        "search.n_trials=2",
    ]
    assert sweep(overrides) == 0
    states = {t.params["learning_rate"]: t.state for t in study_of(overrides).trials}
    assert states == {1e30: optuna.trial.TrialState.FAIL, 0.01: optuna.trial.TrialState.COMPLETE}
    client, _, children = runs_of(overrides)
    [failed] = [c for c in children if c.data.tags["trial_state"] == "FAIL"]
    assert (
        failed.info.status == "FAILED"
        and "loss became NaN or inf at epoch 1" in failed.data.tags["fail_reason"]
    )

    overrides = [
        *overrides,
        "search.space.learning_rate.choices=[1.0e30]",
        "search.study_name=all-fail",
        "search.n_trials=1",
    ]
    assert sweep(overrides) == EXIT_ALL_TRIALS_FAILED


@pytest.mark.slow  # a real-data end-to-end sweep: CI runs it, the quick loop does not
def test_two_objectives_report_a_pareto_front(sweep_overrides, capsys):
    overrides = [
        *sweep_overrides,
        "search=quick",
        "search.pruner=none",
        "search.second_objective=fit_seconds",
        "search.n_trials=2",  # two points make a front; their epochs do not matter
        "train.epochs=1",
        "train.log_model=false",  # no model is used: none logged
    ]
    assert sweep(overrides) == 0
    study = study_of(overrides)
    assert len(study.directions) == 2 and study.best_trials
    assert "Pareto front" in capsys.readouterr().out


@pytest.mark.slow  # a real-data end-to-end sweep: CI runs it, the quick loop does not
def test_scheduled_invocations_stop_at_max_total_trials(sweep_overrides, capsys):
    overrides = [
        *sweep_overrides,
        "search=quick",
        "search.pruner=none",
        "search.n_trials=2",
        "search.max_total_trials=3",
    ]
    assert sweep(overrides) == 0 and len(study_of(overrides).trials) == 2
    assert sweep(overrides) == 0 and len(study_of(overrides).trials) == 3, (
        "the cap stops the second invocation early"
    )
    capsys.readouterr()
    assert sweep(overrides) == 0, "a complete study is no error for cron"
    assert "is complete" in capsys.readouterr().out
    _, parents, children = runs_of(overrides)
    assert len(parents) == 2 and len(children) == 3, (
        "the third invocation returned before creating any run"
    )


@pytest.mark.slow  # two real-data sweeps: CI runs it, the quick loop does not
def test_a_narrower_space_for_a_stored_study_is_one_line_before_any_trial(sweep_overrides):
    overrides = [*sweep_overrides, "search=quick", "search.pruner=none", "search.n_trials=1"]
    assert sweep(overrides) == 0
    narrower = [*overrides, "search.space.body.choices=[pooling]", "~search.space.units"]
    message = (
        r"^search.space.body: study 'quick-sentences' searched body over \['pooling', 'gru', 'lstm'\], "
        r"this sweep over \['pooling'\]; a study keeps its space: give search.study_name a new name, "
        r"or search the same space$"
    )
    with pytest.raises(InputError, match=message):
        sweep(narrower)
    assert len(study_of(overrides).trials) == 1, "no trial added, none failed"
    _, parents, children = runs_of(overrides)
    assert len(parents) == 1 and len(children) == 1, "no run made"


@pytest.mark.slow  # a real-data end-to-end sweep: CI runs it, the quick loop does not
def test_cli_exit_codes_and_a_log_file_per_invocation(tmp_path, data_cache, sweep_overrides):
    base = [
        str(BIN / "rnn-sweep"),
        *sweep_overrides,
        "search=plateau",
        "model=pooling",
        "optimizer=sgd",
        "train.epochs=1",
        "search.n_trials=1",
        f"paths.log_dir={tmp_path / 'logs'}",
    ]
    ok = subprocess.run(
        [*base, "search.space.learning_rate.choices=[0.01]"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "MLflow parent run" in ok.stdout
    assert "[INFO]" not in ok.stdout + ok.stderr, "INFO lines go to the log file only"
    failing = subprocess.run(
        [*base, "search.space.learning_rate.choices=[1.0e30]", "search.study_name=diverges"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert failing.returncode == EXIT_ALL_TRIALS_FAILED, failing.stderr[-2000:]
    bad = subprocess.run(
        [*base, "search.n_trials=-1"], capture_output=True, text=True, cwd=tmp_path
    )
    assert (
        bad.returncode == 2
        and bad.stderr.strip().splitlines()[-1]
        == "error: search.n_trials=-1; it must be an integer from 1 to 1000000000"
    )
    logs = sorted((tmp_path / "logs" / "sweep").glob("*/*.log"))
    assert len(logs) == 3, "one folder and log file per invocation"
    assert "sweep finished: 1 trial added (1 complete" in logs[0].read_text()
    assert "sweep finished: 1 trial added (0 complete, 0 pruned, 1 failed)" in logs[1].read_text()


@pytest.mark.slow  # a real-data end-to-end sweep: CI runs it, the quick loop does not
def test_a_pipeline_folder_where_the_user_stands_does_not_replace_the_chart_process(
    tmp_path, sweep_overrides, monkeypatch, capfd
):
    """The chart process is started where the user stands; the sweep runs in this process (the invoker's own
    imports are done: the chart process is the one that could pick up the folder)."""
    decoy = tmp_path / "pipeline"
    decoy.mkdir()
    (decoy / "__init__.py").write_text(
        "raise SystemExit('the decoy pipeline package was imported')\n"
    )
    overrides = [*sweep_overrides, "search=quick", "search.n_trials=2", CHARTS]
    monkeypatch.chdir(tmp_path)  # where the user stands: the chart process starts there
    assert sweep(overrides) == 0
    stderr = capfd.readouterr().err  # the chart process's too: it writes to the same descriptor
    assert "decoy" not in stderr, stderr[-3000:]
    client, _, children = runs_of(overrides)
    assert len(children) == 2
    assert_every_trial_has_its_chart(client, children)
