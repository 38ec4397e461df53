"""search.n_workers: one rnn-sweep command, several worker processes on one study, one parent run, one summary."""

import concurrent.futures
import concurrent.futures.process
import contextlib
import logging.handlers
import multiprocessing
import os
import signal
import subprocess
import re
import tempfile
import threading
import time
import types
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from optuna.trial import TrialState

from pipeline.config import check, compose
from pipeline.core.errors import InputError
from pipeline.core.names import Attr
from pipeline.search.workers import (
    Orders,
    Pool,
    end_orphans,
    open_for_trials,
    usable_cores,
    worker_count,
    worker_threads,
)
from tests.conftest import BIN, CHARTS
from tests.helpers.processes import wait_until_it_ignores_sigint_and_sigterm
from tests.helpers.sweeps import assert_every_trial_has_its_chart
from tests.helpers.processes import read_trials, running, wait_for


@pytest.fixture
def sweep_overrides(sweep_overrides):
    """The chart process runs, as in a user's sweep: it is one of the processes stopped here."""
    return [*sweep_overrides, CHARTS]


TRIALS = 4


def runs_of(cfg) -> list:
    client = MlflowClient(cfg.tracking.uri)
    return client.search_runs(
        [client.get_experiment_by_name(cfg.tracking.experiment).experiment_id]
    )


def children_of(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.parametrize(
    "setting, message",
    [
        ("n_workers=0", "search.n_workers=0; it must be an integer >= 1, or auto"),
        ("n_workers=many", "search.n_workers='many'; it must be an integer >= 1, or auto"),
        ("worker_max_trials=0", "search.worker_max_trials=0; it must be null or an integer >= 1"),
    ],
)
def test_a_bad_worker_setting_is_named(sweep_overrides, setting, message):
    with pytest.raises(InputError, match=message):
        check(compose([*sweep_overrides, f"search.{setting}"]))


def test_the_removed_payback_setting_is_named_when_a_preset_still_sets_it(tmp_path):
    """search.worker_recycle_payback is gone (a worker is replaced after search.worker_max_trials
    trials, the pool's max_tasks_per_child): a stored preset that sets it is one line, exit 2."""
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "mine.yaml").write_text(
        "defaults:\n  - /base/search@_here_\n  - _self_\n\nname: mine\nworker_recycle_payback: 25\n"
    )
    result = subprocess.run(
        [str(BIN / "rnn-sweep"), "--config-dir", str(tmp_path), "search=mine", "data=sentences"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    [line] = [t for t in result.stderr.splitlines() if t.strip()]
    assert "worker_recycle_payback" in line and line.startswith("error: "), result.stderr


def test_auto_is_one_worker_per_core_never_more_than_the_trials_and_the_cores_are_shared(
    sweep_overrides,
):
    cfg = compose([*sweep_overrides, "search.n_workers=auto"])
    assert worker_count(cfg, trials_left=1000) == usable_cores()
    assert worker_count(cfg, trials_left=1) == 1
    assert worker_threads(cfg, 2) == {"intra_op": max(1, usable_cores() // 2), "inter_op": 1}
    pinned = compose([*sweep_overrides, "train.threads.intra_op=3", "train.threads.inter_op=2"])
    assert worker_threads(pinned, 2) == {"intra_op": 3, "inter_op": 2}, (
        "threads the user set are kept"
    )


@pytest.mark.slow
def test_two_workers_run_each_requested_trial_once_under_one_parent_run(tmp_path, sweep_overrides):
    overrides = [
        *sweep_overrides,
        "search=quick",
        "train.epochs=1",  # the workers' bookkeeping is under test, not the training
        f"search.n_trials={TRIALS}",
        "search.n_workers=2",
        "search.show_progress_bar=true",
        "search.confirm_top_k=1",
        "search.confirm_seeds=1",
    ]
    result = subprocess.run(
        [str(BIN / "rnn-sweep"), *overrides],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for noise in (
        "oneDNN",
        "ExperimentalWarning",
        "Creating initial MLflow database tables",
        "[INFO]",
    ):
        assert noise not in result.stderr + result.stdout, (
            f"issue 28: no chatter on the terminal:\n{result.stderr[-3000:]}"
        )
    assert "confirmation 2 of 2: trial " in result.stderr, "the confirmation's progress"
    assert result.stderr.count(" trials done (") == TRIALS, (
        "one plain line per finished trial off a terminal"
    )
    cfg = compose(overrides)

    trials = read_trials(cfg)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) == TRIALS and all(
        t.state.is_finished() for t in trials
    )
    runs = runs_of(cfg)
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    [confirmation] = [r for r in runs if r.data.tags.get("confirm") == "true"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags and r is not confirmation]
    threads = {
        key: confirmation.data.params[f"train.threads.{key}"] for key in ("intra_op", "inter_op")
    }
    assert threads == {"intra_op": str(usable_cores()), "inter_op": "1"}, (
        "the invoker's threads, not the worker's"
    )
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert sorted(int(r.data.tags["trial_number"]) for r in children) == sorted(numbers), (
        "one child run per trial"
    )
    assert all(r.info.status == "FINISHED" for r in runs)
    assert {r.data.params["train.threads.intra_op"] for r in children} == {
        str(max(1, usable_cores() // 2))
    }
    assert_every_trial_has_its_chart(MlflowClient(cfg.tracking.uri), children)

    assert result.stdout.count(f"this run added {TRIALS} trials") == 1, result.stdout
    assert result.stdout.count(f"MLflow parent run {parent.info.run_id} in experiment") == 1
    [log] = Path(cfg.paths.log_dir).glob("sweep/*/sweep.log")
    assert "[worker 0]" in log.read_text() and "[worker 1]" in log.read_text(), (
        "both workers ran trials"
    )
    assert "train.threads cannot change now" not in log.read_text(), (
        "every process trains with the threads it has"
    )


@pytest.mark.slow
def test_workers_leave_sigint_and_sigterm_to_their_invoker_even_while_they_start(sweep_overrides):
    overrides = [*sweep_overrides, "search=quick", "search.n_trials=2", "search.n_workers=2"]
    with Pool(compose(overrides), overrides) as pool:
        for process in pool.processes:  # systemd's stop reaches every process, these still starting
            os.kill(process.pid, signal.SIGTERM)
            os.kill(process.pid, signal.SIGINT)
        for process in pool.processes:
            wait_until_it_ignores_sigint_and_sigterm(process.pid)
        assert all(process.is_alive() for process in pool.processes)
    assert [process.exitcode for process in pool.processes] == [0, 0], (
        "told there is no work, each exits 0"
    )


def test_a_second_signal_while_workers_start_leaves_none_waiting(sweep_overrides, monkeypatch):
    """A second signal raises Interrupted as the hold on signals ends, right after a worker
    started. That worker was not recorded yet, so nothing killed it and the invocation's exit
    waited for it forever (it waits for orders)."""
    from pipeline.core import signals

    @contextlib.contextmanager
    def second_signal_on_leaving():
        yield
        raise signals.Interrupted(signal.SIGTERM)

    monkeypatch.setattr(signals, "held_for_helpers", second_signal_on_leaving)
    overrides = [*sweep_overrides, "search=quick", "search.n_trials=2", "search.n_workers=2"]
    before = set(multiprocessing.active_children())
    try:
        with pytest.raises(signals.Interrupted):
            Pool(compose(overrides), overrides)
        assert not set(multiprocessing.active_children()) - before, "no worker left waiting"
    finally:
        for process in set(multiprocessing.active_children()) - before:
            process.kill()


@pytest.mark.slow  # a real-data end-to-end sweep: CI runs it, the quick loop does not
def test_a_worker_that_ran_its_max_trials_is_replaced_until_every_trial_ran_once(
    tmp_path, sweep_overrides
):
    overrides = [
        *sweep_overrides,
        "search=quick",
        "train.epochs=1",
        "search.n_trials=5",
        "search.n_workers=1",
        "search.worker_max_trials=2",
    ]
    result = subprocess.run(
        [str(BIN / "rnn-sweep"), *overrides],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    cfg = compose(overrides)
    trials = read_trials(cfg)
    assert sorted(t.number for t in trials) == [0, 1, 2, 3, 4] and all(
        t.state.is_finished() for t in trials
    )
    runs = runs_of(cfg)
    assert len(runs) == 6 and all(r.info.status == "FINISHED" for r in runs), (
        "one parent run, one child per trial"
    )
    [log] = Path(cfg.paths.log_dir).glob("sweep/*/sweep.log")
    text = log.read_text()
    assert text.count("a fresh process takes its place") == 2, text[-3000:]
    recycled = re.findall(
        r"\[worker (\d)\] ran 2 trials \(search.worker_max_trials\): recycled", text
    )
    assert recycled == ["0", "1"], text[-3000:]
    startups = re.findall(r"\[worker \d\] ready for trials: a start-up of ([\d.]+) s", text)
    assert len(startups) == 3, text[-3000:]
    assert all(float(seconds) >= 1.0 for seconds in startups), (
        "a start-up holds Python's and TensorFlow's imports: seconds"
    )
    assert (
        text.count("trials_complete") <= 1 and result.stdout.count("this run added 5 trials") == 1
    ), result.stdout


@pytest.mark.parametrize("n_trials, processes", [(2, 0), (3, 1)])
def test_one_worker_runs_in_the_invoker_unless_the_trials_outnumber_worker_max_trials(
    sweep_overrides, n_trials, processes
):
    """A worker process costs a TensorFlow start-up (~6 s): one is only worth it when it may be
    recycled."""
    overrides = [
        *sweep_overrides,
        "search=quick",
        f"search.n_trials={n_trials}",
        "search.n_workers=1",
        "search.worker_max_trials=2",
    ]
    with Pool(compose(overrides), overrides) as pool:
        assert len(pool.processes) == processes
        if processes:  # search.worker_max_trials: the pool's max_tasks_per_child (a task: a trial)
            assert pool.executor._max_tasks_per_child == 2


@pytest.mark.slow  # a real-data end-to-end sweep: CI runs it, the quick loop does not
def test_no_fresh_worker_is_started_once_the_study_is_complete(tmp_path, sweep_overrides):
    """The worker recycled after trial 1: search.max_total_trials is reached, so the invoker
    submits no third trial. The pool may start a fresh process in its place (ProcessPoolExecutor
    replaces a worker that reached max_tasks_per_child at once); it gets no trial and the
    command does not wait for it."""
    overrides = [
        *sweep_overrides,
        "search=quick",
        "train.epochs=1",
        "search.n_trials=3",
        "search.max_total_trials=2",
        "search.n_workers=1",
        "search.worker_max_trials=2",
    ]
    result = subprocess.run(
        [str(BIN / "rnn-sweep"), *overrides],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    cfg = compose(overrides)
    assert sorted(t.number for t in read_trials(cfg)) == [0, 1], "no task for a third trial"
    [log] = Path(cfg.paths.log_dir).glob("sweep/*/sweep.log")
    text = log.read_text()
    assert ": recycled" in text, text[-3000:]
    assert "ready for trials" not in text.split(": recycled")[1], (
        "a fresh process the pool may start is not waited for: it never gets ready"
    )


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["SIGTERM to the invocation", "SIGKILL to one worker"])
def test_a_stop_ends_every_worker_and_leaves_no_run_running(tmp_path, sweep_overrides, stop):
    overrides = [
        *sweep_overrides,
        "search=plateau",
        "train.epochs=25",
        f"search.n_trials={TRIALS}",
        "search.n_workers=2",
    ]
    cfg = compose(overrides)
    with open(tmp_path / "sweep.err", "w") as stderr:
        sweep = subprocess.Popen(
            [str(BIN / "rnn-sweep"), *overrides],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: [
                t
                for t in read_trials(cfg)
                if t.state == TrialState.RUNNING and "mlflow_run_id" in t.user_attrs
            ],
            300,
            "a trial to run",
            sweep,
            tmp_path / "sweep.err",
        )
        time.sleep(1.0)  # well inside the trial
        workers = [
            pid
            for pid in children_of(sweep.pid)
            if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()
        ]
        charts = [
            pid
            for pid in children_of(sweep.pid)
            if "pipeline.report.charts" in Path(f"/proc/{pid}/cmdline").read_text()
        ]
        assert len(workers) == 2 and len(charts) == 1
        if stop.startswith("SIGTERM"):
            os.kill(
                sweep.pid, signal.SIGTERM
            )  # the invoking process alone, as systemd's stop or `timeout` sends it
        else:
            os.kill(
                workers[0], signal.SIGKILL
            )  # the OOM killer's way: the other worker finishes its trial
        code = sweep.wait(300)
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
    stderr = (tmp_path / "sweep.err").read_text()
    assert code == (143 if stop.startswith("SIGTERM") else 1), stderr[-3000:]
    assert not [pid for pid in workers + charts if running(pid)], (
        "no worker and no chart process outlives the invocation"
    )

    trials = read_trials(cfg)
    assert trials and not [t for t in trials if t.state == TrialState.RUNNING]
    assert [r for r in runs_of(cfg) if r.info.status == "RUNNING"] == [], (
        "no MLflow run left RUNNING"
    )
    assert len([r for r in runs_of(cfg) if "mlflow.parentRunId" not in r.data.tags]) == 1
    if stop.startswith("SIGTERM"):
        assert "interrupted by SIGTERM" in stderr and "Traceback" not in stderr
        assert {t.user_attrs.get("fail_kind") for t in trials if t.state == TrialState.FAIL} == {
            "interrupted"
        }
    else:
        assert "died (killed by SIGKILL)" in stderr
        assert "worker_died" in {
            t.user_attrs.get("fail_kind") for t in trials if t.state == TrialState.FAIL
        }


class Died:
    """A worker process the pool's manager found dead (kill -9, the OOM killer)."""

    pid, exitcode = 4242, -signal.SIGKILL


def test_a_worker_that_died_is_named_with_its_pid_and_how_it_died():
    """A dead worker breaks the pool: every future fails with BrokenProcessPool, which does not say
    which worker died. The invoker names it from the processes it saw, and then starts no trial."""
    broken = concurrent.futures.Future()
    broken.set_exception(concurrent.futures.process.BrokenProcessPool("terminated abruptly"))
    pool = types.SimpleNamespace(processes=[Died()])
    assert Pool.outcome(pool, broken) == (
        "died",
        "rnn-sweep worker process 4242 died (killed by SIGKILL)",
    )


@pytest.mark.parametrize("passed_on", [False, True], ids=["just arrived", "passed on"])
def test_no_trial_is_submitted_once_a_signal_arrived(monkeypatch, passed_on):
    """Ctrl-C while the invoker decided to submit one more trial (it reads the study: seconds on
    a busy database) came after the loop's look for a signal: the task, and the fresh process it
    may start, were submitted anyway. The look is repeated with the signals held, just before
    the submit."""
    from pipeline.core import signals

    monkeypatch.setattr(signals, "received", lambda: None if passed_on else signal.SIGINT)

    def unsubmittable(*args):
        raise AssertionError("a trial was submitted after the signal")

    pool = types.SimpleNamespace(
        job=types.SimpleNamespace(
            stop=types.SimpleNamespace(value=signal.SIGINT if passed_on else 0)
        ),
        executor=types.SimpleNamespace(submit=unsubmittable),
        futures={},
    )
    assert Pool.submit(pool) is False and pool.futures == {}


def test_no_fresh_worker_while_the_running_trials_will_complete_the_study(tmp_path):
    """max_total_trials 3, two finished and this invocation's third running in another worker: a
    trial task submitted now would find the study complete (docs/reliability.md promises none is
    submitted)."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/optuna.db", direction="maximize")
    for value in (0.5, 0.6):
        study.add_trial(optuna.trial.create_trial(value=value, params={}, distributions={}))
    running = study.ask()
    running.set_user_attr(Attr.mlflow_parent_run_id, "parent")
    orders = types.SimpleNamespace(
        deadline=None,
        parent_run_id="parent",
        cfg=OmegaConf.create({"search": {"max_total_trials": 3}}),
    )
    assert open_for_trials(orders, study), (
        "a worker that is up may still take a trial: the running one may fail"
    )
    assert not open_for_trials(orders, study, counting_running=True), "no trial task submitted"
    study.tell(running, state=TrialState.FAIL)
    assert open_for_trials(orders, study, counting_running=True)


def test_a_worker_killed_between_creating_its_trial_and_naming_its_parent_leaves_no_trial_running(
    tmp_path,
):
    """CI of ac98484: SIGKILL to a worker just after study.ask() created its trial, before the
    objective's first line named the parent run. Nothing named the trial as this invocation's:
    it stayed RUNNING for good. A trial that another invocation is creating at that moment names
    its own parent run within the wait: it is left alone."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/optuna.db", direction="maximize")
    asked = time.time()
    orphan, foreign = study.ask(), study.ask()
    threading.Timer(
        0.3, foreign.set_user_attr, (Attr.mlflow_parent_run_id, "another invocation")
    ).start()
    end_orphans(study, "parent", asked_since=[asked])
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {orphan.number: TrialState.FAIL, foreign.number: TrialState.RUNNING}


def test_a_trial_created_before_the_dead_worker_asked_is_not_its_orphan(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/optuna.db", direction="maximize")
    earlier = study.ask()  # another invocation's, whose first line is slow: not this worker's
    time.sleep(0.05)
    end_orphans(study, "parent", asked_since=[time.time()])
    end_orphans(study, "parent", asked_since=[])
    assert study.get_trials()[earlier.number].state == TrialState.RUNNING


@pytest.mark.slow
def test_a_preset_of_your_own_config_dir_reaches_every_worker(tmp_path, sweep_overrides):
    """Issue 27, case 2: `--config-dir` with model/tiny.yaml worked in one process, but spawned
    workers composed from the package's conf/ only: `Could not find 'model/tiny'`, trial 0 left
    WAITING, the parent run FAILED."""
    presets = tmp_path / "my-conf" / "model"
    presets.mkdir(parents=True)
    (presets / "tiny.yaml").write_text(
        "defaults:\n  - /base/model@_here_\n  - _self_\n\nbody: pooling\nembedding_dim: 8\n"
    )
    overrides = [
        *sweep_overrides,
        "model=tiny",
        "search=plateau",
        "train.epochs=1",
        "search.n_trials=2",
        "search.n_workers=2",
        "search.space.learning_rate.choices=[0.01,0.001]",
    ]
    result = subprocess.run(
        [str(BIN / "rnn-sweep"), "--config-dir", str(tmp_path / "my-conf"), *overrides],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 worker processes" in (next((tmp_path / "logs").rglob("*.log"))).read_text()
    cfg = compose(
        [o for o in overrides if not o.startswith("model=")]
    )  # the test's process knows no model/tiny
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment).experiment_id
    trials = client.search_runs([experiment], "tags.mlflow.parentRunId != ''")
    assert len(trials) == 2 and {t.data.params["model.embedding_dim"] for t in trials} == {"8"}


def test_a_worker_killed_a_moment_ago_is_named_though_not_yet_reaped():
    """The pool breaks as soon as a worker's pipe closes, before the dead process is reaped: its
    exit code was still unknown, and the error said only 'a rnn-sweep worker process died'."""
    process = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(60,))
    process.start()
    os.kill(process.pid, signal.SIGKILL)
    broken = concurrent.futures.Future()
    broken.set_exception(concurrent.futures.process.BrokenProcessPool("terminated abruptly"))
    pool = types.SimpleNamespace(processes=[process])
    assert Pool.outcome(pool, broken) == (
        "died",
        f"rnn-sweep worker process {process.pid} died (killed by SIGKILL)",
    )


def hold_the_lock(logs, holding) -> None:
    logs._wlock.acquire()  # as a worker's queue feeder does while it writes a log record
    holding.set()
    time.sleep(60)


def test_closing_the_logs_ends_though_a_killed_worker_held_the_queues_lock():
    """A worker killed (a second signal, a sibling's death) while it wrote a log record keeps the
    log queue's lock forever: the listener's stop waited for a record no one could write, and the
    command never exited."""
    context = multiprocessing.get_context("spawn")
    logs, holding = context.Queue(), context.Event()
    holder = context.Process(target=hold_the_lock, args=(logs, holding))
    holder.start()
    assert holding.wait(60)
    holder.kill()
    holder.join()
    listener = logging.handlers.QueueListener(logs)
    listener.start()
    pool = types.SimpleNamespace(listener=listener, job=types.SimpleNamespace(logs=logs))
    closing = threading.Thread(target=Pool.close_logs, args=(pool,), daemon=True)
    closing.start()
    closing.join(30)
    logs.cancel_join_thread()  # this test's own exit must not wait for the locked queue either
    assert not closing.is_alive(), "closing the logs waited forever"


@pytest.mark.slow
def test_the_orders_never_touch_the_disk(sweep_overrides, tmp_path, monkeypatch):
    """The orders (the whole config: a storage URL with its password) went to a file in /tmp, which
    a kill -9 of the invoker left there. They travel in shared memory, gone with the processes."""
    from pipeline.search.workers import read_given_orders

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    overrides = [*sweep_overrides, "search=quick", "search.n_trials=2", "search.n_workers=2"]
    cfg = compose(overrides)
    orders = Orders(cfg, "parent", "1", f"sqlite:///{tmp_path / 'mlflow.db'}", None)
    with Pool(cfg, overrides) as pool:
        pool.give(orders)
        assert not list(tmp_path.glob("rnn-sweep-orders-*")), "the orders went to a file"
        assert read_given_orders(pool.job) == orders


@pytest.mark.slow
def test_a_timeout_shorter_than_the_workers_start_up_still_runs_a_trial(tmp_path, sweep_overrides):
    """search.timeout counted from before the workers were up: with a few seconds, every task
    found it past, and the invocation added no trial at all (one process runs its first trial
    whatever the timeout, as Optuna does)."""
    overrides = [
        *sweep_overrides,
        "search=quick",
        "train.epochs=1",
        "search.n_trials=4",
        "search.n_workers=2",
        "search.timeout=1",
    ]
    result = subprocess.run(
        [str(BIN / "rnn-sweep"), *overrides], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    finished = [t for t in read_trials(compose(overrides)) if t.state.is_finished()]
    assert finished, "the invocation ran no trial"
