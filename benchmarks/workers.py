"""Trials per hour of the quick sweep on this machine: 1 worker x 2 threads vs 2 workers x 1 thread.

    python benchmarks/workers.py             # 12 trials per layout, layouts alternated, 2 rounds
    python benchmarks/workers.py --tiny      # CI: 2 trials per layout, 1 epoch, 1 round

Workers share a real PostgreSQL study and a real `mlflow server` (both started here, on 127.0.0.1,
as in tests/test_workers.py). Every trial trains to the end (pruner=none), so the layouts do the same
kind of work; each worker gets its own sampler seed.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.services import mlflow_server, postgres_server

BIN = Path(sys.executable).parent
LAYOUTS = (("1 worker x 2 threads", 1, 2), ("2 workers x 1 thread", 2, 1))


def run_layout(name, workers, threads, trials, extra, postgres, url, folder, round_index) -> float:
    study = f"{name.replace(' ', '')}-{round_index}"
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [str(BIN / "rnn-sweep"), "search=quick", "data=sentences", "search.pruner=none", f"search.n_trials={trials // workers}",
             f"search.storage={postgres}/optuna", f"search.study_name={study}", f"tracking.uri={url}",
             "tracking.experiment=workers-benchmark", f"train.threads.intra_op={threads}", f"train.threads.inter_op={threads}",
             f"search.seed={index + 1}", "search.show_progress_bar=false", f"paths.log_dir={folder}/logs", *extra],
            cwd=folder, stdout=subprocess.DEVNULL, stderr=open(Path(folder) / f"{study}-{index}.err", "w"),
        )
        for index in range(workers)
    ]
    codes = [process.wait() for process in processes]
    if codes != [0] * workers:
        errors = "".join((Path(folder) / f"{study}-{i}.err").read_text()[-3000:] for i in range(workers))
        raise SystemExit(f"{name}: workers exited {codes}\n{errors}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12, help="trials per layout and round (even)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="2 trials of 1 epoch, 1 round (seconds)")
    args = parser.parse_args()
    extra = []
    if args.tiny:
        args.trials, args.rounds, extra = 2, 1, ["train.epochs=1", "data.subset=200"]
    results = {name: [] for name, _, _ in LAYOUTS}
    with tempfile.TemporaryDirectory() as folder, postgres_server(("optuna", "mlflow")) as (postgres, _):
        with mlflow_server(f"{postgres}/mlflow", Path(folder) / "artifacts", Path(folder) / "mlflow.log") as url:
            for round_index in range(args.rounds):
                for name, workers, threads in LAYOUTS:
                    seconds = run_layout(name, workers, threads, args.trials, extra, postgres, url, folder, round_index)
                    results[name].append(seconds)
    print(f"Quick sweep on the UCI sentences, {args.trials} trials per layout and round, {args.rounds} round(s), {sys.platform}")
    print("| layout | wall s per round | trials/hour |")
    print("|---|---|---|")
    for name, seconds in results.items():
        per_round = ", ".join(f"{s:.0f}" for s in seconds)
        print(f"| {name} | {per_round} | {args.trials * len(seconds) / sum(seconds) * 3600:.0f} |")


if __name__ == "__main__":
    main()
