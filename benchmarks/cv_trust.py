"""How much a sweep's answer depends on luck, with and without cross-validation (search.cv_folds).

Runs `rnn-sweep search=quick data=sentences` once per search.seed and fold setting, each in a new study and
MLflow store, and prints the winner's test accuracy (its own model, the parent run's best_test_accuracy) and the
wall time of each command; then, per setting, the sd of the winners' test accuracies across the seeds.

    python benchmarks/cv_trust.py                       # seeds 1 2 3, cv_folds 1 and 5 (about 15 min here)
    python benchmarks/cv_trust.py --tiny                # CI: a 400-text subset, 1 trial, one seed
"""

import argparse
import statistics
import tempfile
from pathlib import Path

from quiet_sweep import NO_CHARTS, run_sweep

REPO = Path(__file__).resolve().parent.parent


def run(seed: int, folds: int, extra: list[str]) -> tuple[float, float, int]:
    """One sweep: (winner's test accuracy, wall seconds, winner's trial number)."""
    folder = Path(tempfile.mkdtemp(prefix="rnnsweep-cv-"))
    overrides = [
        "search=quick",
        "data=sentences",
        f"search.seed={seed}",
        f"search.cv_folds={folds}",
    ]
    parent, wall = run_sweep(folder, overrides, extra)
    return parent.data.metrics["best_test_accuracy"], wall, int(parent.data.metrics["best_trial"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 5])
    parser.add_argument(
        "--tiny", action="store_true", help="a 400-text subset, 1 trial, one seed (seconds; CI)"
    )
    args = parser.parse_args()
    extra = (
        [
            "data.subset=400",
            "search.n_trials=1",
            "search.confirm_top_k=0",
            "train.epochs=2",
            NO_CHARTS,
        ]
        if args.tiny
        else []
    )
    seeds = args.seeds[:1] if args.tiny else args.seeds
    results = {}
    print(
        "| search.cv_folds | search.seed | winner (trial) | winner's test accuracy | wall s |\n|---|---|---|---|---|"
    )
    for seed in seeds:
        for (
            folds
        ) in args.folds:  # alternated, so that a slower stretch of the machine hits both settings
            accuracy, wall, trial = run(seed, folds, extra)
            results.setdefault(folds, []).append((accuracy, wall))
            print(f"| {folds} | {seed} | {trial} | {accuracy:.4f} | {wall:.0f} |", flush=True)
    print(
        "\n| search.cv_folds | winners' test accuracy: mean ± sd over seeds | wall s: mean |\n|---|---|---|"
    )
    for folds, rows in results.items():
        accuracies = [a for a, _ in rows]
        sd = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
        print(
            f"| {folds} | {statistics.fmean(accuracies):.4f} ± {sd:.4f} | {statistics.fmean(w for _, w in rows):.0f} |"
        )


if __name__ == "__main__":
    main()
