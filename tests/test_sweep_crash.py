"""A worker killed with SIGKILL mid-trial: the same command continues the study and loses nothing."""

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from pipeline.search.sweep import compose
from tests.conftest import BIN, CHARTS
from tests.helpers.processes import read_trials, running, start_and_wait_for_second_trial, wait_for


@pytest.fixture
def sweep_overrides(sweep_overrides):
    """The chart process runs, as in a user's sweep: it is one of the processes stopped here."""
    return [*sweep_overrides, CHARTS]


pytestmark = pytest.mark.slow
TrialState = optuna.trial.TrialState


def test_kill_9_mid_trial_then_rerun_continues_the_study(tmp_path, sweep_overrides):
    overrides = [*sweep_overrides, "search=plateau", "train.epochs=25", "search.n_trials=3"]
    command = [str(BIN / "rnn-sweep"), *overrides]
    cfg = compose(overrides)
    worker = start_and_wait_for_second_trial(cfg, command, tmp_path)
    os.killpg(worker.pid, signal.SIGKILL)
    assert worker.wait(10) == -signal.SIGKILL
    before = {t.number: t for t in read_trials(cfg)}
    assert before[0].state == TrialState.COMPLETE and before[1].state == TrialState.RUNNING
    killed_run_id = before[1].user_attrs["mlflow_run_id"]
    client = MlflowClient(cfg.tracking.uri)
    assert client.get_run(killed_run_id).info.status == "RUNNING", (
        "SIGKILL leaves the run open: the re-run must end it"
    )

    time.sleep(cfg.search.grace_seconds + 1)
    rerun = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]

    after = {t.number: t for t in read_trials(cfg)}
    assert after[0].state == TrialState.COMPLETE and after[0].values == before[0].values, (
        "a finished trial is never lost"
    )
    assert after[1].state == TrialState.FAIL
    [retry] = [t for t in after.values() if t.system_attrs.get("failed_trial") == 1]
    assert retry.state == TrialState.COMPLETE and retry.params == after[1].params
    assert len(after) == 2 + 3, (
        "the killed invocation's two trials, then this invocation's three (the retry among them)"
    )
    assert client.get_run(killed_run_id).info.status == "KILLED"
    assert client.get_run(before[1].user_attrs["mlflow_parent_run_id"]).info.status == "KILLED"
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    assert not client.search_runs(
        [experiment.experiment_id], filter_string="attributes.status = 'RUNNING'"
    )


def test_ctrl_c_leaves_no_run_running_and_fails_only_the_interrupted_trial(
    tmp_path, sweep_overrides
):
    overrides = [*sweep_overrides, "search=plateau", "train.epochs=25", "search.n_trials=3"]
    cfg = compose(overrides)
    worker = start_and_wait_for_second_trial(cfg, [str(BIN / "rnn-sweep"), *overrides], tmp_path)
    os.killpg(worker.pid, signal.SIGINT)
    worker.wait(60)
    stderr = (tmp_path / "worker.err").read_text()
    assert worker.returncode == 130 and "interrupted by SIGINT" in stderr, stderr[-3000:]
    assert [t.state for t in read_trials(cfg)] == [TrialState.COMPLETE, TrialState.FAIL]
    client = MlflowClient(cfg.tracking.uri)
    runs = client.search_runs(
        [client.get_experiment_by_name(cfg.tracking.experiment).experiment_id]
    )
    assert len(runs) == 3 and sorted(r.info.status for r in runs) == [
        "FAILED",
        "FAILED",
        "FINISHED",
    ]


def test_the_chart_process_draws_a_finished_trial_and_ends_when_its_invoker_is_killed(
    tmp_path, sweep_overrides
):
    overrides = [*sweep_overrides, "search=plateau", "train.epochs=25", "search.n_trials=3"]
    cfg = compose(overrides)
    worker = start_and_wait_for_second_trial(cfg, [str(BIN / "rnn-sweep"), *overrides], tmp_path)
    try:
        children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
        [charts] = [
            int(pid)
            for pid in children
            if "pipeline.report.charts" in Path(f"/proc/{pid}/cmdline").read_text()
        ]
        [first] = [t for t in read_trials(cfg) if t.number == 0]
        client = MlflowClient(cfg.tracking.uri)
        wait_for(
            lambda: [
                a
                for a in client.list_artifacts(first.user_attrs["mlflow_run_id"])
                if a.path == "learning_curves.png"
            ],
            60,
            "trial 0's chart",
            worker,
            tmp_path / "worker.err",
        )
        os.kill(
            worker.pid, signal.SIGKILL
        )  # the invoker alone, as the OOM killer would: its chart process is orphaned
        assert worker.wait(10) == -signal.SIGKILL
        deadline = time.monotonic() + 10
        while running(charts) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not running(charts), "the chart process outlived its invoker"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
    chart = client.download_artifacts(first.user_attrs["mlflow_run_id"], "learning_curves.png")
    assert Path(chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
