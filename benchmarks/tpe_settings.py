"""TPE's start-up and multivariate/group settings on the conditional space (search=default), measured.

    python benchmarks/tpe_settings.py                                # UCI sentences, 30 trials, seeds 1 2 3, five settings
    python benchmarks/tpe_settings.py --data imdb --subset 4000 --trials 20 --seeds 1
    python benchmarks/tpe_settings.py --tiny                         # CI: 6 trials of 1 epoch, one seed, one setting

Each setting runs the `rnn-sweep` command as a user runs it (default workers, pruner, cost guard, baseline and
portfolio first, no confirmation), with the sampler's arguments given as overrides, on the same data split. From
the study: the best complete trial among the first k (by trial number); the seconds from the first trial's start
to each target; of the trials the sampler drew (not the enqueued baseline and portfolio), the median of their
best epochs (a pruned trial's too), how many reached the first target and their median seconds; the pruned count.

`tpe` is TPE as rnnsweep ships it, Optuna 5's defaults: constant_liar; 10 random start-up trials, the enqueued
ones included; multivariate, so the parameters every trial has (body, embedding, dropout, optimizer, learning
rate, batch size) are drawn jointly and the conditional ones (units, layers, bidirectional, recurrent dropout)
each on its own. `group` draws each conditional subspace jointly too. `random` is the floor.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

BIN = Path(sys.executable).parent
TPE = "++search.samplers.tpe"  # ++: set or add, whichever the conf has
SETTINGS = {
    "tpe": [],  # as shipped
    "tpe-independent": [f"{TPE}.multivariate=false"],
    "tpe-group": [f"{TPE}.group=true"],
    "tpe-startup-5": [f"{TPE}.n_startup_trials=5"],
    "random": ["search.sampler=random"],
    "tpe-group-startup-5": [f"{TPE}.group=true", f"{TPE}.n_startup_trials=5"],
}
DEFAULT_SETTINGS = ["tpe", "tpe-independent", "tpe-group", "tpe-startup-5", "random"]


def run(args, setting: str, seed: int, folder: Path) -> tuple[optuna.Study, float]:
    """One `rnn-sweep` command; its study and wall seconds."""
    storage = f"sqlite:///{folder}/optuna.db"
    command = [
        str(BIN / "rnn-sweep"),
        "search=default",
        f"data={args.data}",
        "search.cv_folds=1",
        f"seed={seed}",
        "data.split_seed=42",
        f"search.n_trials={args.trials}",
        f"search.storage={storage}",
        "search.study_name=tpe-settings",
        "search.show_progress_bar=false",
        "search.confirm_top_k=0",
        "search.register_as=null",
        f"paths.mlruns_dir={folder}/mlruns",
        f"paths.log_dir={folder}/logs",
        f"hydra.run.dir={folder}/hydra",
        *([f"data.subset={args.subset}"] if args.subset else []),
        *SETTINGS[setting],
        *args.overrides,
    ]
    started = time.time()
    result = subprocess.run(
        command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    if result.returncode != 0:
        sys.exit(
            f"{setting} seed {seed}: rnn-sweep exited {result.returncode}: {result.stderr.strip().splitlines()[-1:]}"
        )
    return optuna.load_study(study_name="tpe-settings", storage=storage), time.time() - started


def figures(study: optuna.Study, wall: float, checkpoints: list[int], targets: list[float]) -> dict:
    """Best complete trial among the first k, seconds to each target, pruned count and trial seconds of one study."""
    trials = sorted((t for t in study.trials if t.state.is_finished()), key=lambda t: t.number)
    start = min(t.datetime_start for t in trials)
    complete = [
        t for t in trials if t.state == optuna.trial.TrialState.COMPLETE
    ]  # what the sweep can answer with
    sampled = [
        t for t in trials if "fixed_params" not in t.system_attrs
    ]  # drawn by the sampler, not enqueued
    reached_by = [
        max([*t.intermediate_values.values(), t.value or 0.0]) for t in sampled
    ]  # a pruned one's best epoch

    def reached(target):
        times = [
            (t.datetime_complete - start).total_seconds() for t in complete if t.value >= target
        ]
        return min(times) if times else None

    return {
        "best": {
            k: max((t.value for t in complete if t.number < k), default=float("nan"))
            for k in checkpoints
        },
        "to": {target: reached(target) for target in targets},
        "sampled_median": statistics.median(reached_by) if reached_by else float("nan"),
        "sampled_good": sum(value >= targets[0] for value in reached_by),
        "sampled_s": statistics.median(
            (t.datetime_complete - t.datetime_start).total_seconds() for t in sampled
        )
        if sampled
        else float("nan"),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in trials),
        "trial_s": statistics.median(
            (t.datetime_complete - t.datetime_start).total_seconds() for t in trials
        ),
        "wall": wall,
    }


def median_range(values: list[float | None], fmt: str) -> str:
    """'median (low–high)' over seeds; a target not reached by a seed counts as slower than every reached one."""
    reached = sorted(v for v in values if v is not None)
    missing = len(values) - len(reached)
    if len(reached) <= len(values) // 2:
        return f"not reached ({missing} of {len(values)})"
    ordered = reached + [float("inf")] * missing
    low, high = ordered[0], ordered[-1]
    text = f"{format(statistics.median(ordered), fmt)} ({format(low, fmt)}–{'not reached' if high == float('inf') else format(high, fmt)})"
    return text if len(values) > 1 else format(low, fmt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="sentences")
    parser.add_argument(
        "--subset", type=int, default=0, help="train and test texts kept (stratified); 0 keeps all"
    )
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS, choices=list(SETTINGS))
    parser.add_argument("--targets", type=float, nargs="+", default=[0.80, 0.82])
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="6 trials of 1 epoch on 400 texts, seed 1, one setting (CI)",
    )
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every command")
    args = parser.parse_args()
    if args.tiny:
        args.trials, args.seeds, args.settings = 6, [1], ["tpe-group-startup-5"]
        args.subset = args.subset or 400
        args.overrides += ["train.epochs=1", "train.log_model=false"]
    checkpoints = sorted({k for k in (10, 20, 30, args.trials) if k <= args.trials})
    results: dict[str, list[dict]] = {}
    for (
        seed
    ) in args.seeds:  # seeds outermost, so slow drift of the machine spreads over every setting
        for setting in args.settings:
            with tempfile.TemporaryDirectory(prefix="rnnsweep-tpe-") as folder:
                study, wall = run(args, setting, seed, Path(folder))
                results.setdefault(setting, []).append(
                    figures(study, wall, checkpoints, args.targets)
                )
            row = results[setting][-1]
            print(
                f"{time.strftime('%H:%M:%S')} {setting} seed {seed}: best@{checkpoints[-1]} {row['best'][checkpoints[-1]]:.4f}, "
                f"{row['pruned']} pruned, {row['wall']:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    print(
        f"\n{args.data}{f' {args.subset}' if args.subset else ''}, search=default, {args.trials} trials per command, "
        f"seeds {' '.join(map(str, args.seeds))}; median (range) over seeds\n"
    )
    print(
        "| setting | "
        + " | ".join(f"best of first {k}" for k in checkpoints)
        + " | "
        + " | ".join(f"s to {t}" for t in args.targets)
        + " | sampled trials: median best epoch | sampled trials "
        f"reaching {args.targets[0]} | sampled trials: median s | pruned | median trial s | command s |"
    )
    print("|---|" + "---|" * (len(checkpoints) + len(args.targets) + 6))
    for setting, rows in results.items():
        cells = [median_range([r["best"][k] for r in rows], ".4f") for k in checkpoints]
        cells += [median_range([r["to"][t] for r in rows], ".0f") for t in args.targets]
        cells += [
            median_range([r["sampled_median"] for r in rows], ".4f"),
            median_range([r["sampled_good"] for r in rows], "g"),
            median_range([r["sampled_s"] for r in rows], ".1f"),
        ]
        cells += [
            median_range([r["pruned"] for r in rows], "g"),
            median_range([r["trial_s"] for r in rows], ".1f"),
            median_range([r["wall"] for r in rows], ".0f"),
        ]
        print(f"| {setting} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
