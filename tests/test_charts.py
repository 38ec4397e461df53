"""The chart process: each finished trial's run drawn once, off the sweep's path."""

import os
import signal
import threading
import time

import optuna

from pipeline.report.charts import Charts
from tests.helpers.processes import wait_until_it_ignores_sigint_and_sigterm


def finished_trial(run_id: str) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(
        state=optuna.trial.TrialState.COMPLETE,
        value=0.5,
        user_attrs={"mlflow_run_id": run_id, "epochs_run": 2.0},
    )


def test_the_chart_process_leaves_sigint_and_sigterm_to_its_invoker_even_while_it_starts():
    charts = Charts()
    try:
        for signum in (
            signal.SIGTERM,
            signal.SIGINT,
        ):  # systemd's stop reaches every process, this one still starting
            os.kill(charts.process.pid, signum)
        wait_until_it_ignores_sigint_and_sigterm(charts.process.pid)
        os.kill(charts.process.pid, signal.SIGTERM)
        time.sleep(0.3)
        assert charts.process.poll() is None, (
            f"the chart process died of a signal: {charts.process.returncode}"
        )
    finally:
        charts.close(seconds=10)
    assert charts.process.returncode == 0


def test_a_chart_process_that_falls_behind_never_holds_up_the_sweep(tmp_path):
    charts = Charts()
    os.kill(
        charts.process.pid, signal.SIGSTOP
    )  # a chart process that draws nothing for a while (a slow store)
    try:
        trials = [
            finished_trial(f"run-{n:05d}-{'x' * 60}") for n in range(3000)
        ]  # ~270 kB of orders: 4 pipes' worth
        sending = threading.Thread(
            target=lambda: [charts.send(t, f"sqlite:///{tmp_path}/mlflow.db") for t in trials]
        )
        started = time.monotonic()
        sending.start()
        sending.join(10)
        assert not sending.is_alive(), "send() blocked on the chart process's full pipe"
        assert time.monotonic() - started < 5
    finally:
        os.kill(charts.process.pid, signal.SIGCONT)
        charts.process.kill()
        charts.close(seconds=10)
    assert charts.process.poll() is not None


def test_each_run_is_sent_once_and_only_when_its_trial_trained(tmp_path):
    charts = Charts()
    try:
        charts.send(finished_trial("a"), "sqlite:///x")
        charts.send(
            finished_trial("a"), "sqlite:///x"
        )  # a retried trial carries the run id it was copied from
        charts.send(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.FAIL, user_attrs={"mlflow_run_id": "b"}
            ),
            "sqlite:///x",
        )
        assert charts.sent == {"a"}
    finally:
        charts.process.kill()
        charts.close(seconds=10)
