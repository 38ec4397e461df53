"""Trials per hour of the quick sweep on this machine: `search.n_workers=1` (one process, every core) against
`search.n_workers=2` (two worker processes, the cores split between them), each one plain rnn-sweep command.

    python benchmarks/workers.py              # 16 trials per layout, layouts alternated, 2 rounds
    python benchmarks/workers.py --rounds 1   # one round
    python benchmarks/workers.py --tiny       # CI: 2 trials of 1 epoch, 1 round
    python benchmarks/workers.py --recycling --preset default --trials 20   # a fresh worker every
        trial, every 5 trials (as shipped), never

Every invocation starts a new study on the local stores (SQLite, as a user gets them by default) in a
temporary folder; every trial trains to the end (pruner=none) and nothing is confirmed, so the layouts do
the same kind of work; no worker is recycled (search.worker_max_trials=null), so n_workers=1 runs in the invoking
process and the layouts differ only in how the cores are split (--recycling: two workers, and how they are replaced). "wall" is the whole command, start-up included; "search" is the first trial's start
to the last trial's end, read from the study. The load average before each run is printed: on a shared
machine the figures are only comparable within one round.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

BIN = Path(sys.executable).parent
LAYOUTS = (
    (
        "n_workers=1 (1 process x all cores)",
        ["search.n_workers=1", "search.worker_max_trials=null"],
    ),
    (
        "n_workers=2 (2 processes x cores/2)",
        ["search.n_workers=2", "search.worker_max_trials=null"],
    ),
)
RECYCLING = (
    ("2 workers, a fresh one every trial", ["search.n_workers=2", "search.worker_max_trials=1"]),
    ("2 workers, as shipped (a fresh one every 5 trials)", ["search.n_workers=2"]),
    ("2 workers, never replaced", ["search.n_workers=2", "search.worker_max_trials=null"]),
)


def run_layout(
    index: int, layout: list[str], args, extra: list[str], folder: Path, round_index: int
) -> dict:
    study, mlruns = f"layout{index}-round{round_index}", folder / f"mlruns-{index}-{round_index}"
    load = os.getloadavg()[0]
    started = time.perf_counter()
    result = subprocess.run(
        [
            str(BIN / "rnn-sweep"),
            f"search={args.preset}",
            "data=sentences",
            "search.cv_folds=1",
            "search.pruner=none",
            "search.confirm_top_k=0",
            *layout,
            f"search.n_trials={args.trials}",
            f"search.study_name={study}",
            "search.show_progress_bar=false",
            *([f"paths.cache_dir={args.cache}"] if args.cache else []),
            f"paths.mlruns_dir={mlruns}",
            f"paths.log_dir={folder}/logs-{index}-{round_index}",
            *extra,
        ],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"{layout}: rnn-sweep exited {result.returncode}\n{result.stderr[-3000:]}")
    log = "".join(p.read_text() for p in (folder / f"logs-{index}-{round_index}").rglob("*.log"))
    done = optuna.load_study(study_name=study, storage=f"sqlite:///{mlruns}/optuna.db").trials
    search = (
        max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)
    ).total_seconds()
    return {
        "wall": wall,
        "search": search,
        "trials": len(done),
        "load": load,
        "fresh": log.count("a fresh process takes its place"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16, help="trials per layout and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--cache",
        help="paths.cache_dir (default: the product's own, RNNSWEEP_CACHE_DIR or ~/.cache/rnnsweep)",
    )
    parser.add_argument("--preset", default="quick", help="the search preset (search=...)")
    parser.add_argument(
        "--recycling",
        action="store_true",
        help="compare how workers are replaced, not how cores are split",
    )
    parser.add_argument(
        "--tiny", action="store_true", help="2 trials of 1 epoch, 1 round (seconds)"
    )
    args = parser.parse_args()
    extra = []
    if args.tiny:
        args.trials, args.rounds, extra = 2, 1, ["train.epochs=1", "data.subset=200"]
    layouts = RECYCLING if args.recycling else LAYOUTS
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for round_index in range(args.rounds):
            for index, (name, layout) in enumerate(layouts):
                rows.append(
                    (
                        round_index + 1,
                        name,
                        run_layout(index, layout, args, extra, Path(folder), round_index),
                    )
                )
    print(
        f"search={args.preset} on the UCI sentences (pruner=none, confirm_top_k=0), {args.trials} trials per run, "
        f"{os.cpu_count()} cores, {sys.platform}"
    )
    print(
        "| round | layout | load avg before | wall s | trials/hour (wall) | search s | trials/hour (search) | fresh workers |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for round_number, name, r in rows:
        print(
            f"| {round_number} | {name} | {r['load']:.1f} | {r['wall']:.0f} | {r['trials'] / r['wall'] * 3600:.0f} "
            f"| {r['search']:.0f} | {r['trials'] / r['search'] * 3600:.0f} | {r['fresh']} |"
        )
    for name, _ in layouts:
        mine = [r for _, n, r in rows if n == name]
        wall, search = sum(r["wall"] for r in mine), sum(r["search"] for r in mine)
        print(
            f"{name}: {sum(r['trials'] for r in mine) / wall * 3600:.0f} trials/hour over the whole commands, "
            f"{sum(r['trials'] for r in mine) / search * 3600:.0f} over the search itself"
        )


if __name__ == "__main__":
    main()
