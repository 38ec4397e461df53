"""Watching the processes a test started: their trials in the study, their signals, their errors."""

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import optuna

TrialState = optuna.trial.TrialState


def wait_for(condition, seconds: float, what: str, worker: subprocess.Popen, log: Path):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and worker.poll() is None:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    state = "timed out" if worker.poll() is None else f"the worker exited {worker.returncode}"
    raise AssertionError(f"{state} waiting for {what}:\n{log.read_text()[-3000:]}")


def read_trials(cfg) -> list:
    """The study's trials, read without ever creating the worker's tables or study ourselves."""
    database = Path(cfg.paths.mlruns_dir) / "optuna.db"
    if not database.exists():
        return []
    try:  # read-only first: Optuna's storage would write its schema version into a half-made database
        with contextlib.closing(
            sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)
        ) as connection:
            if not connection.execute(
                "SELECT 1 FROM studies WHERE study_name = ?", (cfg.search.study_name,)
            ).fetchall():
                return []
    except sqlite3.OperationalError:  # no tables yet, or locked for a moment
        return []
    return optuna.load_study(
        study_name=cfg.search.study_name, storage=f"sqlite:///{database}"
    ).trials


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan is reaped only if the container's first process reaps)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def start_and_wait_for_second_trial(cfg, command, tmp_path) -> subprocess.Popen:
    with open(
        tmp_path / "worker.err", "w"
    ) as stderr:  # a file, not a pipe: a full pipe would stall the worker
        worker = subprocess.Popen(
            command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True
        )
    try:
        wait_for(
            lambda: [
                t
                for t in read_trials(cfg)
                if t.number == 1
                and t.state == TrialState.RUNNING
                and "mlflow_run_id" in t.user_attrs
            ],
            240,
            "trial 1 to run",
            worker,
            tmp_path / "worker.err",
        )
    except AssertionError:
        os.killpg(worker.pid, signal.SIGKILL)
        raise
    time.sleep(1.0)  # well inside the trial
    return worker


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-3000:]
    return lines[0]


def ignored_and_blocked(pid: int) -> tuple[set[int], set[int]]:
    """Which of SIGINT and SIGTERM the process ignores, and which its main thread blocks."""
    fields = dict(
        line.split(":\t", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":\t" in line
    )
    return tuple(
        {s for s in (signal.SIGINT, signal.SIGTERM) if int(fields[mask], 16) >> (s - 1) & 1}
        for mask in ("SigIgn", "SigBlk")
    )


def wait_until_it_ignores_sigint_and_sigterm(pid: int, seconds: float = 120) -> None:
    """A helper process starts with both blocked (held by its invoker) and must end up ignoring them, unblocked."""
    deadline = time.monotonic() + seconds
    while ignored_and_blocked(pid) != ({signal.SIGINT, signal.SIGTERM}, set()):
        assert time.monotonic() < deadline, (
            f"after {seconds} s: ignored, blocked = {ignored_and_blocked(pid)}"
        )
        time.sleep(0.05)


def session_command_lines(session: int) -> list[str]:
    """The command lines of the live processes in the session `session` leads."""
    lines = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == session:
                lines.append(stat.with_name("cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we read it
    return lines
