"""Resident memory of one sweep process over many trials: prints a markdown table.

    python benchmarks/sweep_memory.py              # 50 trials of search=default on the UCI sentences, 1 epoch each
    python benchmarks/sweep_memory.py --tiny       # CI: 2 x 2 trials on 400 texts, no confirmation

The study is resumed in chunks inside one process (as a scheduled worker would), and the process's
resident set size is read after each chunk. Keras state is cleared between trials, so it should stay flat.
"""

import argparse
import tempfile
import time
from pathlib import Path

from pipeline.search import objective
from pipeline.search.sweep import compose, run_sweep
from quiet_sweep import NO_CHARTS

TINY = ["data.subset=400", "search.confirm_top_k=0", NO_CHARTS]


def resident_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 2**20


def count_trainings() -> list:
    """A list that grows by one for each model this process trains."""
    trained, train_model = [], objective.train_model

    def counted(*args, **kwargs):
        trained.append(1)
        return train_model(*args, **kwargs)

    objective.train_model = counted
    return trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50, help="trials in all")
    parser.add_argument("--chunk", type=int, default=10, help="trials per resumed invocation")
    parser.add_argument("--tiny", action="store_true", help="2 x 2 trials (seconds)")
    args = parser.parse_args()
    if args.tiny:
        args.trials, args.chunk = 4, 2
    with tempfile.TemporaryDirectory() as folder:
        overrides = [
            "search=default",
            "data=sentences",
            "search.cv_folds=1",
            # every trial in this process, whose memory is read (by default they ran in workers)
            "search.n_workers=1",
            "search.worker_max_trials=null",
            "data.max_len=20",
            "train.epochs=1",
            f"search.n_trials={args.chunk}",
            "search.show_progress_bar=false",
            "train.log_model=false",
            f"paths.mlruns_dir={folder}/mlruns",
            f"paths.log_dir={folder}/logs",
            f"tracking.uri=sqlite:///{folder}/mlflow.db",
            *(TINY if args.tiny else []),
        ]
        cfg = compose(overrides)
        rows, started, trained = [], time.perf_counter(), count_trainings()
        for done in range(args.chunk, args.trials + 1, args.chunk):
            run_sweep(cfg, overrides)
            if len(trained) < done:
                raise SystemExit(
                    f"{done} trials done, {len(trained)} trained in this process: its memory "
                    "would not be the trials'"
                )
            rows.append((done, resident_mib(), time.perf_counter() - started))
    print("| trials done | resident MiB | growth since the first chunk (MiB) | wall s |")
    print("|---|---|---|---|")
    for done, mib, seconds in rows:
        print(f"| {done} | {mib:.0f} | {mib - rows[0][1]:+.0f} | {seconds:.0f} |")
    sizes = [mib for _, mib, _ in rows]
    print(
        f"\nAfter {rows[0][0]} to {rows[-1][0]} trials the resident set stays between {min(sizes):.0f} and {max(sizes):.0f} MiB; "
        f"the last reading is {sizes[-1] - sizes[0]:+.0f} MiB from the first (flat means no steady climb)"
    )


if __name__ == "__main__":
    main()
