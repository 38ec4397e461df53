"""Does a sweep process slow down as it ages? The same model trained as trial 1 and again as trial 20 of one
`rnn-sweep` command, other models of search=default in between, then once more in a fresh process; prints each
epoch's seconds of the three.

    python benchmarks/steady_speed.py                                  # IMDB, 6,000 reviews (4,800 to train) of 400 tokens, 4 epochs, 20 trials, as shipped: a fresh worker every 5 trials (search.worker_max_trials)
    python benchmarks/steady_speed.py search.worker_max_trials=null    # every trial in the invoking process: the ageing of one process
    python benchmarks/steady_speed.py search.worker_max_trials=10   # a fresh worker every 10 trials
    python benchmarks/steady_speed.py --tiny                           # CI: UCI sentences, trial 1 and trial 4, 2 epochs

Trial 1 is the sweep's baseline (the config's own values). After it the trials draw from the default space
(TPE's random start-up: every body, up to 2 layers of 128 units, any batch size), all trained to the end (pruner
none, every trial the same epochs). While the command runs, this script watches the study and, as the
second-to-last trial starts, enqueues the baseline's parameters: the last trial of the command trains the same
model again, in whichever process runs it (with search.worker_max_trials=null: the invoking process). Epoch 1
includes tracing, so the figure compared is the median epoch time of epochs 2 and later.

The control: right after, the same model is trained once more by a second `rnn-sweep` command, a fresh process.
The last trial of the first command against this one, a minute apart on the same machine, tells the ageing of the
process from a drift of the machine (other load, clock, thermal).
"""

import argparse
import contextlib
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import mlflow
import optuna

from pipeline.config import compose
from pipeline.core.names import Attr

RNN_SWEEP = str(Path(sys.executable).with_name("rnn-sweep"))


def epoch_seconds(client: mlflow.MlflowClient, trial: optuna.trial.FrozenTrial) -> list[float]:
    history = client.get_metric_history(trial.user_attrs[Attr.mlflow_run_id], "epoch_seconds")
    return [m.value for m in sorted(history, key=lambda m: m.step)]


def enqueue_probe_before_last(
    storage: str, study_name: str, trials: int, done: threading.Event
) -> None:
    """Once the study holds trials - 1 trials (the second-to-last has started), enqueue trial 0's parameters: the
    command's last trial trains the baseline model again. It counts the trials with one read-only SQL query a
    second, so that watching costs the measured process nothing."""
    database = Path(storage.removeprefix("sqlite:///"))
    while not done.wait(1.0):
        try:  # read-only: the command creates the database and its tables, under its lock
            with contextlib.closing(
                sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)
            ) as connection:
                [(count,)] = connection.execute("SELECT COUNT(*) FROM trials").fetchall()
        except sqlite3.OperationalError:  # not created yet, or locked for a moment
            continue
        if count >= trials - 1:
            study = optuna.load_study(study_name=study_name, storage=storage)
            study.enqueue_trial(study.trials[0].params)
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trials", type=int, default=20, help="trials of the command, the repeated one included"
    )
    parser.add_argument("--subset", type=int, default=6000, help="IMDB reviews kept (data.subset)")
    parser.add_argument(
        "--max-len", type=int, default=400, help="tokens kept per review (data.max_len)"
    )
    parser.add_argument("--epochs", type=int, default=4, help="epochs of every trial")
    parser.add_argument(
        "--tiny", action="store_true", help="4 trials of 2 epochs on 400 UCI sentences (seconds)"
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        help="extra Hydra overrides for the sweeps, e.g. search.worker_max_trials=5",
    )
    args = parser.parse_args()
    if args.tiny:
        args.trials, args.epochs = 4, 2
    folder = tempfile.mkdtemp(prefix="rnnsweep-steady-")
    data = (
        ["data=sentences", "data.subset=400", "data.max_len=20"]
        if args.tiny
        else ["data=imdb", f"data.subset={args.subset}", f"data.max_len={args.max_len}"]
    )
    overrides = [
        "search=default",
        "search.portfolio=[]",
        *data,
        "search.cv_folds=1",
        "search.pruner=none",
        "search.confirm_top_k=0",
        "search.n_workers=1",
        "search.show_progress_bar=false",
        f"train.epochs={args.epochs}",
        f"paths.mlruns_dir={folder}/mlruns",
        f"paths.log_dir={folder}/logs",
        f"hydra.run.dir={folder}/hydra",
        *args.overrides,
    ]
    storage, study_name = (
        f"sqlite:///{folder}/mlruns/optuna.db",
        compose([o for o in overrides if not o.startswith("hydra.")]).search.study_name,
    )
    done = threading.Event()
    watcher = threading.Thread(
        target=enqueue_probe_before_last, args=(storage, study_name, args.trials, done), daemon=True
    )
    watcher.start()
    loads = [os.getloadavg()[0]]
    subprocess.run(
        [RNN_SWEEP, *overrides, f"search.n_trials={args.trials}"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    done.set()
    study = optuna.load_study(study_name=study_name, storage=storage)
    study.enqueue_trial(study.trials[0].params)
    loads.append(os.getloadavg()[0])
    subprocess.run(
        [RNN_SWEEP, *overrides, "search.n_trials=1"], check=True, stdout=subprocess.DEVNULL
    )  # the control
    study = optuna.load_study(study_name=study_name, storage=storage)
    report(study, mlflow.MlflowClient(f"sqlite:///{folder}/mlruns/mlflow.db"), loads, args)
    report_recycling(Path(folder) / "hydra", args.trials)


def report_recycling(run_dir: Path, trials: int) -> None:
    """How many trials each replaced worker ran (the log; the control, one trial in its own process, adds no such
    line), so which trial of its process the command's last one was."""
    [log] = run_dir.glob("*.log")
    recycled = re.findall(
        r"ran (\d+) trials in (\d+) s, ([\d.]+) times its start-up of ([\d.]+) s: recycled",
        log.read_text(),
    )
    for ran, busy, times, startup in recycled:
        print(
            f"A worker recycled after {ran} trials, {busy} s of trials, {times} times its start-up of {startup} s"
        )
    if "worker processes, each with" in log.read_text():
        before = sum(int(r[0]) for r in recycled)
        position = (
            int(recycled[-1][0]) if before == trials else trials - before
        )  # its own worker recycled at the end, or not
        print(f"Trial {trials} ran as trial {position} of its worker process")
    else:
        print(f"Trial {trials} ran in the invoking process, as its trial {trials}")


def report(study: optuna.Study, client: mlflow.MlflowClient, loads: list[float], args) -> None:
    first, last, fresh = study.trials[0], study.trials[args.trials - 1], study.trials[args.trials]
    assert first.params == last.params == fresh.params, (
        "the probe was not placed as the command's last trial"
    )
    rows = [
        (f"{t.number + 1}{label}", epoch_seconds(client, t))
        for t, label in ((first, ""), (last, " (same command)"), (fresh, " (fresh process)"))
    ]
    print(
        f"\nSame model ({first.params}), {args.epochs} epochs each time; overrides {args.overrides or 'none'}; load average "
        f"before the command and before the control: {loads[0]:.1f}, {loads[1]:.1f}"
    )
    print(
        "| trial | "
        + " | ".join(f"epoch {i + 1} s" for i in range(args.epochs))
        + " | epochs 2+ median s |"
    )
    print("|---" * (args.epochs + 2) + "|")
    steady = []
    for name, seconds in rows:
        steady.append(statistics.median(seconds[1:] or seconds))
        print(f"| {name} | " + " | ".join(f"{s:.2f}" for s in seconds) + f" | {steady[-1]:.2f} |")
    print(
        f"\nTrial {args.trials} / trial 1, epochs 2+: {steady[1] / steady[0]:.3f} (target: within 10%, <= 1.10)"
    )
    print(
        f"Control: the fresh process's trial / trial 1: {steady[2] / steady[0]:.3f}; trial {args.trials} / the fresh "
        f"process's: {steady[1] / steady[2]:.3f} (the ageing, apart from any drift of the machine)"
    )


if __name__ == "__main__":
    main()
