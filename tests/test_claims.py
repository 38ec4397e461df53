"""Claims on work in the study's storage (pipeline/tracking/claims.py): processes started together do each piece of
work once, a claim of a killed process passes to another, and a waiting process still answers a stop signal.
On an SQLite store and on a real PostgreSQL server."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import optuna
import pytest

from pipeline.core import signals
from pipeline.tracking.claims import Claims, do_once
from tests.services import postgres_server

WORKER = textwrap.dedent("""
    import os, sys, time, optuna
    from pathlib import Path
    from pipeline.tracking.claims import Claims, do_once

    url, log, start = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    study = optuna.load_study(study_name="s", storage=url)
    while not start.exists():  # every process imported and ready: released together
        time.sleep(0.01)

    def work(key):
        def run():
            with open(log, "a") as file:
                file.write(f"{key} {os.getpid()}\\n")
            time.sleep(0.5)
            study.set_user_attr(key, 1)
        return run

    do_once(Claims(url), "s/", lambda key: key in study.user_attrs, {f"seed:{i}": work(f"seed:{i}") for i in range(6)})
""")

HOLDER = textwrap.dedent("""
    import sys, time
    from pipeline.tracking.claims import Claims

    with Claims(sys.argv[1]).hold("s/seed:0", wait=True):
        print("held", flush=True)
        time.sleep(600)
""")


def python(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )


def four_processes_do_each_piece_once(url: str, log: Path) -> None:
    optuna.create_study(study_name="s", storage=url)
    start = log.with_name("start")
    processes = [python(WORKER, url, str(log), str(start)) for _ in range(4)]
    time.sleep(8)  # their imports
    start.touch()
    assert [p.wait(120) for p in processes] == [0, 0, 0, 0]
    done = [line.split() for line in log.read_text().splitlines()]
    assert sorted(key for key, _ in done) == [f"seed:{i}" for i in range(6)], (
        f"each piece of work once: {done}"
    )
    assert len({pid for _, pid in done}) >= 2, f"the processes shared the work: {done}"
    assert set(optuna.load_study(study_name="s", storage=url).user_attrs) == {
        f"seed:{i}" for i in range(6)
    }


def a_killed_holder_s_claim_passes_on(url: str) -> None:
    holder = python(HOLDER, url)
    assert holder.stdout.readline().strip() == "held"
    claims = Claims(url)
    with claims.hold("s/seed:0", wait=False) as held:
        assert not held, "another process holds it"
    with claims.hold("s/seed:1", wait=False) as held:
        assert held, "other work is free"
    holder.send_signal(signal.SIGKILL)
    holder.wait(30)
    started = time.monotonic()
    with claims.hold("s/seed:0", wait=True) as held:
        assert held and time.monotonic() - started < 10


def test_an_sqlite_store_s_work_is_done_once(tmp_path):
    four_processes_do_each_piece_once(f"sqlite:///{tmp_path / 'optuna.db'}", tmp_path / "done.log")


def test_an_sqlite_claim_of_a_killed_process_passes_on(tmp_path):
    a_killed_holder_s_claim_passes_on(f"sqlite:///{tmp_path / 'optuna.db'}")


def test_a_process_waiting_for_a_claim_answers_a_stop_signal(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    holder = python(HOLDER, url)
    assert holder.stdout.readline().strip() == "held"
    try:
        threading.Timer(1.0, signals.request_stop, (signal.SIGTERM,)).start()  # while it waits
        started = time.monotonic()
        with pytest.raises(signals.Interrupted), Claims(url).hold("s/seed:0", wait=True):
            pass
        assert 0.9 < time.monotonic() - started < 5
    finally:
        signals._received = None
        holder.kill()
        holder.wait(30)


def test_work_stored_meanwhile_is_not_done_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    study.set_user_attr("seed:0", 1)
    ran = []
    do_once(
        Claims(url),
        "s/",
        lambda key: key in study.user_attrs,
        {"seed:0": lambda: ran.append(0), "seed:1": lambda: ran.append(1)},
    )
    assert ran == [1]


@pytest.mark.slow
def test_a_postgresql_store_s_work_is_done_once_and_a_killed_claim_passes_on(tmp_path):
    with postgres_server(("optuna",)) as (server, _):
        four_processes_do_each_piece_once(f"{server}/optuna", tmp_path / "done.log")
        a_killed_holder_s_claim_passes_on(f"{server}/optuna")


def heartbeat_study(tmp_path: Path) -> optuna.Study:
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat_interval=1, grace_period=2
    )
    study = optuna.create_study(study_name="s", storage=storage)
    study.add_trial(optuna.trial.create_trial(value=1.0, params={}, distributions={}))
    return study


def test_a_finished_invocation_waits_for_the_trials_others_are_running(tmp_path):
    """Issue 27 case 6: an invocation that confirmed while others still ran trials could pick another winner."""
    import threading

    from omegaconf import OmegaConf

    from pipeline.search.sweep import wait_for_running_trials

    study = heartbeat_study(tmp_path)
    trial = study.ask()
    study._storage.record_heartbeat(trial._trial_id)
    threading.Timer(1.5, lambda: study.tell(trial, 0.5)).start()
    started = time.monotonic()
    wait_for_running_trials(study, OmegaConf.create({"search": {"grace_seconds": 60}}))
    assert (
        time.monotonic() - started >= 1.4
        and study.trials[-1].state == optuna.trial.TrialState.COMPLETE
    )


def test_a_dead_invocation_s_trial_is_waited_for_no_longer_than_its_heartbeat_or_the_limit(
    tmp_path, caplog
):
    from omegaconf import OmegaConf

    from pipeline.search.sweep import wait_for_running_trials

    study = heartbeat_study(tmp_path)
    stale = study.ask()
    study._storage.record_heartbeat(stale._trial_id)  # then it stops: a killed invocation
    started = time.monotonic()
    wait_for_running_trials(study, OmegaConf.create({"search": {"grace_seconds": 60}}))
    assert (
        time.monotonic() - started < 10
        and study.trials[stale.number].state == optuna.trial.TrialState.FAIL
    )
    silent = study.ask()  # no heartbeat ever: killed between creating it and its first heartbeat
    started = time.monotonic()
    wait_for_running_trials(study, OmegaConf.create({"search": {"grace_seconds": 2}}))
    assert (
        1.9 <= time.monotonic() - started < 10
        and study.trials[silent.number].state.name == "RUNNING"
    )
    assert f"stopped waiting for trial {silent.number}: running past 2 s" in caplog.text


def test_a_claim_on_a_database_that_went_away_is_one_line_without_the_password():
    """A store lost mid-sweep is the store's fault: one InputError line (exit 2), never a traceback."""
    from pipeline.core.errors import InputError
    from tests.services import free_port

    url = f"postgresql://sweeper:pw-never-shown@127.0.0.1:{free_port()}/optuna"
    with pytest.raises(
        InputError, match=r"^search.storage=postgresql://sweeper:\*\*\*@127.0.0.1:\d+/optuna: "
    ) as raised:
        with Claims(url).hold("s/seed:0", wait=False):
            pass
    assert "pw-never-shown" not in str(raised.value)
