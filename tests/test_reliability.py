"""Unattended runs: data errors stop the sweep (exit 2), signals end it cleanly (130 / 143), config mistakes are named."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline.core.errors import InputError
from pipeline.search.objective import FAIL_HYPERPARAMETERS, FAIL_INPUT
from pipeline.search.sweep import compose
from pipeline.search.warm_start import enqueue_start
from tests.conftest import BIN, CHARTS
from tests.helpers.processes import one_error_line
from tests.helpers.sweeps import runs_of, study_of, sweep
from tests.helpers.processes import read_trials, start_and_wait_for_second_trial


@pytest.fixture
def sweep_overrides(sweep_overrides):
    """The chart process runs, as in a user's sweep: it is one of the processes stopped here."""
    return [*sweep_overrides, CHARTS]


TrialState = optuna.trial.TrialState


def write_table(path: Path, count: int = 40) -> Path:
    words = ["a fine film", "loved it", "a dull film", "hated it"]
    pd.DataFrame(
        {
            "text": [f"{words[i % 4]} {i}" for i in range(count)],
            "label": [int(i % 4 < 2) for i in range(count)],
        }
    ).to_csv(path, index=False)
    return path


def test_data_missing_offline_exits_2_with_one_line_and_no_study_or_run(tmp_path, sweep_overrides):
    overrides = [
        *sweep_overrides,
        "search=quick",
        f"paths.cache_dir={tmp_path / 'empty-cache'}",
        "data.url=http://127.0.0.1:9/sentiment_labelled_sentences.zip",
    ]  # port 9: refused at once, like no network
    result = subprocess.run(
        [BIN / "rnn-sweep", *overrides], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 2
    assert (
        "cannot fetch http://127.0.0.1:9/" in one_error_line(result.stderr)
        and "on an offline machine place the file" in result.stderr
    )
    assert not (Path(compose(overrides).paths.mlruns_dir) / "optuna.db").exists()
    assert runs_of(overrides)[1:] == ([], [])


@pytest.mark.parametrize("bad", ["missing", "one class"])
def test_base_data_error_stops_before_any_study_or_run(tmp_path, sweep_overrides, bad):
    path = tmp_path / "reviews.csv"
    if bad == "one class":
        pd.DataFrame({"text": [f"fine {i}" for i in range(20)], "label": [1] * 20}).to_csv(
            path, index=False
        )
    overrides = [*sweep_overrides, "search=quick", "data=table", f"data.path={path}"]
    with pytest.raises(
        InputError, match="no such file" if bad == "missing" else "only label '1' occurs"
    ):
        sweep(overrides)
    assert not (Path(compose(overrides).paths.mlruns_dir) / "optuna.db").exists()
    assert runs_of(overrides)[1:] == ([], [])


def test_a_searched_data_path_that_fails_stops_the_sweep_with_one_input_fail_trial(
    tmp_path, sweep_overrides
):
    train = write_table(tmp_path / "train.csv")
    overrides = [
        *sweep_overrides,
        "search=quick",
        "data=table",
        f"data.path={train}",
        "search.baseline_first=false",
        f"+search.space.test_file={{path: data.test_path, type: categorical, choices: [{tmp_path / 'gone.csv'}]}}",
    ]
    with pytest.raises(InputError, match="gone.csv: no such file"):
        sweep(overrides)
    [trial] = study_of(overrides).trials
    assert trial.state == TrialState.FAIL and trial.user_attrs["fail_kind"] == FAIL_INPUT
    _, [parent], children = runs_of(overrides)
    assert parent.info.status == "FAILED" and children == [], (
        "the trial failed before its run; the parent run is ended"
    )


def test_the_baseline_is_enqueued_again_only_when_its_try_failed_for_another_reason(
    sweep_overrides,
):
    overrides = [*sweep_overrides, "search=quick", "search.portfolio=[]"]
    cfg = compose(overrides)
    for kind, expected in ((FAIL_INPUT, 2), (FAIL_HYPERPARAMETERS, 1)):
        study = optuna.create_study(direction="maximize")
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.FAIL, user_attrs={"baseline": True, "fail_kind": kind}
            )
        )
        enqueue_start(study, cfg, overrides, earlier=[])
        assert len(study.trials) == expected, kind
    study = optuna.create_study(direction="maximize")
    enqueue_start(study, cfg, overrides, earlier=[])
    enqueue_start(study, cfg, overrides, earlier=[])
    assert [t.state for t in study.trials] == [TrialState.WAITING], "once per study"


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            "search.space.units.when.path=model.nope",
            r"search.space.units.when.path='model.nope' is not a config value or group",
        ),
        (
            "search.space.units.when.in=[lstmm]",
            r"search.space.units.when.in=\['lstmm'\]: model.body never takes 'lstmm'; allowed: pooling, gru, lstm",
        ),
        (
            "+search.space.opt={path: optimizer, type: categorical, choices: [adam], when: {path: optimizer, in: [adamm]}}",
            r"search.space.opt.when.path=optimizer is the entry's own path",
        ),
        (
            "+search.space.size={path: model.units, type: categorical, choices: [8]}",
            r"search.space.size.path=model.units is searched by search.space.units already",
        ),
        (
            "+search.space.goal={path: search.objective, type: categorical, choices: [loss]}",
            r"search.space.goal.path=search.objective: the sweep's own settings cannot be searched",
        ),
        ("train.chance_tolerance=abc", r"train.chance_tolerance=abc; it must lie in \[0, 1\)"),
        ("model.dropout=lots", r"model.dropout=lots; it must lie in \[0, 1\)"),
        (
            "+train.foo=1",
            r"train.foo is not a setting rnnsweep reads; allowed under train: batch_size, .*verbose",
        ),
        ("model.dropout=-0.1", r"^model.dropout=-0.1; it must lie in \[0, 1\)$"),
        (
            "train.monitor=val_loss",
            r"train.monitor=val_loss must be search.objective=val_accuracy in a sweep",
        ),
        (
            "search.direction=minimize",
            r"search.direction=minimize does not fit search.objective=val_accuracy; allowed: maximize",
        ),
        ("search.pruner_patience=-1", r"search.pruner_patience=-1; it must be an integer >= 0"),
        ("search.confirm_seeds=1.5", r"search.confirm_seeds=1.5; it must be an integer >= 0"),
        (
            "search.samplers.tpe.n_startup_trials=-3",
            r"search.samplers.tpe.n_startup_trials=-3; it must be an integer >= 0",
        ),
        (
            "search.samplers.tpe.n_startup_trials=abc",
            r"search.samplers.tpe.n_startup_trials='abc'; it must be an integer >= 0",
        ),
        (
            "search.samplers.tpe.multivariate=banana",
            r"search.samplers.tpe.multivariate='banana'; allowed: true, false",
        ),
    ],
)
def test_config_mistakes_are_named_before_anything_runs(sweep_overrides, bad, message):
    good = [*sweep_overrides, "search=quick"]
    with pytest.raises(InputError, match=message):
        sweep(
            [*good, bad]
        )  # a value of the wrong type is rejected while composing, others by the check
    assert not (Path(compose(good).paths.mlruns_dir) / "optuna.db").exists()


# ------------------------------------------------------------------------------------ signals

SIGNAL_REPEATS = int(
    os.environ.get("RNNSWEEP_SIGNAL_REPEATS", "1")
)  # the soak: RNNSWEEP_SIGNAL_REPEATS=20


@pytest.mark.slow
@pytest.mark.parametrize("repeat", range(SIGNAL_REPEATS))
@pytest.mark.parametrize(
    "signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"]
)
def test_a_signal_mid_trial_ends_trial_and_runs_then_the_study_continues(
    tmp_path, sweep_overrides, signum, code, repeat
):
    overrides = [*sweep_overrides, "search=plateau", "train.epochs=25", "search.n_trials=3"]
    cfg = compose(overrides)
    worker = start_and_wait_for_second_trial(cfg, [str(BIN / "rnn-sweep"), *overrides], tmp_path)
    os.kill(worker.pid, signum)  # the process alone, as systemd's stop or `timeout` sends it
    assert worker.wait(60) == code, (tmp_path / "worker.err").read_text()[-3000:]
    stderr = (tmp_path / "worker.err").read_text()
    assert f"interrupted by {signal.Signals(signum).name}" in stderr and "Traceback" not in stderr
    trials = read_trials(cfg)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL] and trials[
        1
    ].user_attrs["fail_kind"] == "interrupted"
    client = MlflowClient(cfg.tracking.uri)
    runs = client.search_runs(
        [client.get_experiment_by_name(cfg.tracking.experiment).experiment_id]
    )
    assert sorted(r.info.status for r in runs) == ["FAILED", "FAILED", "FINISHED"], (
        "parent and trial run ended, not RUNNING"
    )

    assert sweep([*overrides, "search.n_trials=1", "train.epochs=1"]) == 0, (
        "the study continues (in this process: the signal was the other process's)"
    )
    assert [t.state for t in read_trials(cfg)] == [
        TrialState.COMPLETE,
        TrialState.FAIL,
        TrialState.COMPLETE,
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    "signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"]
)
def test_rnn_train_signal_exits_with_128_plus_its_number_and_the_run_ended(
    tmp_path, data_cache, mlflow_uri, signum, code
):
    experiment = f"test-train-{signal.Signals(signum).name}"
    command = [
        BIN / "rnn-train",
        "data=sentences",
        "model=gru",
        "train.epochs=200",
        "callbacks=none",
        f"paths.cache_dir={data_cache}",
        f"tracking.uri={mlflow_uri}",
        f"tracking.experiment={experiment}",
    ]
    with open(tmp_path / "train.out", "w") as out:
        trainer = subprocess.Popen(command, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    client = MlflowClient(mlflow_uri)
    try:
        for _ in range(600):
            found = client.get_experiment_by_name(experiment)
            runs = client.search_runs([found.experiment_id]) if found else []
            if runs and client.get_metric_history(runs[0].info.run_id, "loss"):
                break
            assert trainer.poll() is None, (tmp_path / "train.out").read_text()[-3000:]
            time.sleep(0.2)
        trainer.send_signal(signum)
        assert trainer.wait(60) == code, (tmp_path / "train.out").read_text()[-3000:]
    finally:
        if trainer.poll() is None:
            trainer.kill()
    [run] = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert (
        run.info.status == "FAILED"
        and f"interrupted by {signal.Signals(signum).name}" in (tmp_path / "train.out").read_text()
    )


def test_a_second_signal_wrapped_by_tensorflow_still_counts_as_an_interruption(monkeypatch):
    """A second signal raises inside whatever runs, e.g. TensorFlow tracing, which wraps it in its own error."""
    from pipeline.core import signals
    from pipeline.search.objective import TrialFailed, failures_blamed_on_the_config

    with pytest.raises(TrialFailed, match="ValueError: shapes"):
        with failures_blamed_on_the_config():
            raise ValueError("shapes do not match")
    monkeypatch.setattr(signals, "_received", signal.SIGTERM)
    with pytest.raises(signals.Interrupted, match="interrupted by SIGTERM"):
        with failures_blamed_on_the_config():
            raise RuntimeError("StagingError: in user code: raise Interrupted")


def test_a_signal_that_lands_while_a_helper_process_starts_is_kept_and_the_helper_ignores_it(
    monkeypatch,
):
    """Workers and the chart process are started while the invoker holds SIGINT/SIGTERM. The invoker used to ignore
    them for those milliseconds, so a stop landing then was lost and the sweep trained on. The helper ignores both
    from its first line, and one sent while it started does not kill it."""
    from pipeline.core import signals

    monkeypatch.setattr(
        signals, "_received", None
    )  # the stop recorded here must not reach later tests
    helper_code = "from pipeline.core import signals; signals.ignore_here(); print('ready', flush=True); import sys; sys.stdin.read()"
    with signals.stop_on_signals():
        with signals.held_for_helpers():
            helper = subprocess.Popen(
                [sys.executable, "-c", helper_code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=os.environ | {"RNNSWEEP_WITHOUT_TENSORFLOW": "1"},
            )
            os.kill(helper.pid, signal.SIGTERM)  # while the helper starts
            os.kill(os.getpid(), signal.SIGTERM)  # the invoker's stop, in the window
        deadline = time.monotonic() + 5
        while signals.received() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # Python runs the handler between bytecodes
        assert signals.received() == signal.SIGTERM, (
            "the stop that landed while a helper process started was lost"
        )
    try:
        assert helper.stdout.readline() == "ready\n", (
            f"the helper died while it started: exit code {helper.wait(10)}"
        )
        for signum in (signal.SIGINT, signal.SIGTERM):
            os.kill(helper.pid, signum)
        time.sleep(0.5)
        assert helper.poll() is None, (
            f"the started helper died of a signal: exit code {helper.returncode}"
        )
        helper.stdin.close()
        assert helper.wait(10) == 0
    finally:
        if helper.poll() is None:
            helper.kill()


@pytest.mark.slow  # a real-data end-to-end sweep: CI runs it, the quick loop does not
def test_running_the_same_command_again_draws_new_points(sweep_overrides):
    overrides = [
        *sweep_overrides,
        "search=quick",
        "search.pruner=none",
        "search.baseline_first=false",
        "search.n_trials=2",
        "train.epochs=1",
        "search.sampler=random",
    ]
    assert sweep(overrides) == 0 and sweep(overrides) == 0
    first, second = ([t.params for t in study_of(overrides).trials][i : i + 2] for i in (0, 2))
    assert first != second, "the second invocation repeated the first one's trials"


def test_a_validation_split_left_without_a_class_by_tokenless_texts_is_a_data_error(
    tmp_path, make_cfg
):
    pd.DataFrame(
        {"text": ["good film", "bad film"] + ["..."] * 200, "label": [1, 0] + [0, 1] * 100}
    ).to_csv(
        tmp_path / "mostly_dots.csv", index=False
    )  # two real texts: no split can hold both classes twice
    write_table(tmp_path / "test.csv")
    from pipeline.data.texts import prepare_data

    cfg = make_cfg(
        "data=table",
        f"data.path={tmp_path / 'mostly_dots.csv'}",
        f"data.test_path={tmp_path / 'test.csv'}",
    )
    with pytest.raises(
        InputError,
        match=r"split less its \d+ texts without a token: (no examples|only label \d occurs)",
    ):
        prepare_data(cfg.data, cfg.paths.cache_dir)


def test_a_password_holding_an_unencoded_at_sign_is_hidden_whole():
    from pipeline.core.redaction import redact

    assert redact("postgresql://u:se@cret@127.0.0.1:1/db") == "postgresql://u:***@127.0.0.1:1/db"
    assert "cret" not in redact(
        "error: search.storage=postgresql://u:se@cret@127.0.0.1:1/db: failed to resolve host"
    )


def test_a_trial_a_signal_stopped_as_it_started_is_failed_as_interrupted(
    sweep_overrides, monkeypatch
):
    """A worker checks for a stop before it asks for a trial; one that lands just after the ask
    (CI: SIGTERM to an invocation of 2 workers) stopped the trial before its objective recorded
    why, so the FAIL trial had no fail_kind: the same stop must read "interrupted"."""
    from pipeline.core import signals
    from pipeline.search.objective import FAIL_INTERRUPTED, Objective

    monkeypatch.setattr(signals, "_received", None)
    study = optuna.create_study()
    objective = Objective(compose(sweep_overrides), sweep_overrides)
    signals.request_stop(signal.SIGTERM)
    with pytest.raises(signals.Interrupted):
        study.optimize(objective, n_trials=1)
    [trial] = study.trials
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs.get("fail_kind") == FAIL_INTERRUPTED, trial.user_attrs


@pytest.mark.slow  # a real-data end-to-end sweep: CI runs it, the quick loop does not
def test_a_signal_just_after_a_trials_last_epoch_starts_no_empty_trial(
    sweep_overrides, monkeypatch
):
    """Issue 27, case 5: a stop that arrived as a trial ended was only seen inside the next trial's objective,
    after Optuna had created it: an empty trial (no parameters, no run) marked FAIL, counted as 2 of 2 tries."""
    from pipeline.search import objective
    from pipeline.core import signals

    monkeypatch.setattr(signals, "_received", None)
    remember = objective.remember

    def remember_then_stop(trial, cfg, result):  # the signal lands once the last epoch is done
        remember(trial, cfg, result)
        signals.request_stop(signal.SIGTERM)

    monkeypatch.setattr(objective, "remember", remember_then_stop)
    overrides = [*sweep_overrides, "search=quick", "search.n_trials=3", "train.epochs=1"]
    with pytest.raises(signals.Interrupted):
        sweep(overrides)
    trials = study_of(overrides).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE], [(t.state, t.params) for t in trials]
