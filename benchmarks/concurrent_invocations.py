"""Four invocations of one study released together: is each confirmation seed trained once, and the winner
registered once? (issue 27 case 6)

Each repetition starts 4 copies of the README's sweep (`rnn-sweep search=quick data=sentences`: workers,
cross-validation, confirmation and registration as configured) at the same instant on a new mlruns/, then
reads the stores and prints one row: exit codes, trials, confirmation trainings per (trial, seed), registered
versions, the winners the invocations named, and `PRAGMA integrity_check` of both SQLite files.

    python benchmarks/concurrent_invocations.py                  # 3 repetitions, 2 trials per invocation
    python benchmarks/concurrent_invocations.py --repetitions 1 --trials 1 -- data.subset=400   # shorter
"""

import argparse
import contextlib
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parent.parent
INVOCATIONS = 4


def integrity(database: Path) -> str:
    with contextlib.closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as db:
        return " ".join(row[0] for row in db.execute("PRAGMA integrity_check"))


def repetition(trials: int, extra: list[str]) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="rnnsweep-concurrent-"))
    command = [
        sys.executable,
        "-m",
        "pipeline.cli.sweep",
        "search=quick",
        "data=sentences",
        f"search.n_trials={trials}",
        "search.show_progress_bar=false",
        f"paths.mlruns_dir={folder}/mlruns",
        f"paths.log_dir={folder}/logs",
        *extra,
    ]
    started = time.perf_counter()
    processes = []
    for index in range(INVOCATIONS):
        with open(folder / f"invocation{index}.log", "w") as log:
            processes.append(
                subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
            )
    codes = [process.wait() for process in processes]
    wall = time.perf_counter() - started
    mlruns = folder / "mlruns"
    client = MlflowClient(f"sqlite:///{mlruns / 'mlflow.db'}")
    runs = client.search_runs(
        [client.get_experiment_by_name("rnnsweep").experiment_id], max_results=5000
    )
    seeds = Counter(
        (r.data.tags["confirm_of_trial"], r.data.tags["train_seed"])
        for r in runs
        if r.data.tags.get("confirm") == "true" and "fold" not in r.data.tags
    )
    models = client.search_registered_models()
    versions = sum(len(client.search_model_versions(f"name='{m.name}'")) for m in models)
    [summary] = optuna.get_all_study_summaries(f"sqlite:///{mlruns / 'optuna.db'}")
    winners = set()
    for index in range(INVOCATIONS):
        lines = (folder / f"invocation{index}.log").read_text().splitlines()
        winners |= {
            line.split(":", 1)[1].split("—")[0].strip()
            for line in lines
            if line.startswith("Winner by mean")
        }
    return {
        "codes": codes,
        "wall": wall,
        "trials": summary.n_trials,
        "seeds": seeds,
        "versions": versions,
        "winners": sorted(winners),
        "integrity": (integrity(mlruns / "optuna.db"), integrity(mlruns / "mlflow.db")),
        "folder": folder,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--trials", type=int, default=2, help="search.n_trials of each invocation")
    parser.add_argument("overrides", nargs="*", help="more overrides for every invocation")
    args = parser.parse_args()
    print(
        f"{INVOCATIONS} invocations of `rnn-sweep search=quick data=sentences search.n_trials={args.trials} "
        f"{' '.join(args.overrides)}` released together\n"
    )
    print(
        "| rep | exit codes | wall s | trials | confirmation seeds | trained per seed | registered versions | "
        "winners named | integrity (optuna, mlflow) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    ok = True
    for index in range(1, args.repetitions + 1):
        row = repetition(args.trials, args.overrides)
        per_seed = sorted(set(row["seeds"].values()))
        print(
            f"| {index} | {row['codes']} | {row['wall']:.0f} | {row['trials']} | {len(row['seeds'])} | {per_seed} | "
            f"{row['versions']} | {', '.join(row['winners'])} | {', '.join(row['integrity'])} |",
            flush=True,
        )
        ok &= (
            row["codes"] == [0] * INVOCATIONS
            and per_seed == [1]
            and row["versions"] == 1
            and row["integrity"] == ("ok", "ok")
            and len(row["winners"]) == 1
        )
    print(
        "\nall repetitions: each seed trained once, one version, one winner, stores ok"
        if ok
        else "\nFAILED"
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
