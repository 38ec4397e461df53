"""Orchestration overhead per trial: the seconds a trial spends outside model.fit and model building.

    python benchmarks/overhead.py                      # runs search=quick on the UCI sentences, 10 trials
    python benchmarks/overhead.py --tiny               # CI: 3 trials of 1 epoch on 400 texts
    python benchmarks/overhead.py --storage sqlite:///mlruns/optuna.db --study default-imdb   # an existing study

A trial's wall time comes from Optuna's own start and completion stamps; `fit_seconds` and
`build_seconds` are what the trial recorded. The rest is orchestration: config composition, data
lookup, MLflow logging (params, per-epoch metrics, figure, model), Optuna storage and pruning.
"""

import argparse
import statistics
import tempfile

import optuna

from pipeline.core.names import Fig
from pipeline.search.sweep import compose, run_sweep
from quiet_sweep import NO_CHARTS


def run_fresh(trials: int, extra: list[str]) -> optuna.Study:
    folder = tempfile.mkdtemp(prefix="rnnsweep-overhead-")
    overrides = [
        "search=quick",
        "data=sentences",
        "search.cv_folds=1",
        "search.pruner=none",
        "search.n_workers=1",
        f"search.n_trials={trials}",
        "search.show_progress_bar=false",
        f"paths.mlruns_dir={folder}/mlruns",
        f"paths.log_dir={folder}/logs",
        *extra,
    ]
    cfg = compose(overrides)
    run_sweep(cfg, overrides)
    return optuna.load_study(
        study_name=cfg.search.study_name, storage=f"sqlite:///{folder}/mlruns/optuna.db"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument(
        "--tiny", action="store_true", help="3 trials of 1 epoch on 400 texts (seconds)"
    )
    parser.add_argument("--storage", help="read this Optuna storage instead of running a sweep")
    parser.add_argument("--study", help="the study to read from --storage")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="extra Hydra overrides for the sweep, e.g. train.log_model=false",
    )
    args = parser.parse_args()
    if args.storage:
        study = optuna.load_study(study_name=args.study, storage=args.storage)
    else:
        study = run_fresh(
            3 if args.tiny else args.trials,
            (["train.epochs=1", "data.subset=400", NO_CHARTS] if args.tiny else [])
            + args.overrides,
        )
    rows = []
    for trial in study.trials:
        if trial.datetime_complete is None or Fig.fit_seconds not in trial.user_attrs:
            continue
        wall = (trial.datetime_complete - trial.datetime_start).total_seconds()
        fit, build = trial.user_attrs[Fig.fit_seconds], trial.user_attrs.get(Fig.build_seconds, 0.0)
        rows.append((trial.number, trial.state.name.lower(), wall, fit, build, wall - fit - build))
    print(f"Study {study.study_name!r}: {len(rows)} finished trials")
    print("| trial | state | trial s | fit s | build s | orchestration s | orchestration % |")
    print("|---|---|---|---|---|---|---|")
    for number, state, wall, fit, build, rest in rows:
        print(
            f"| {number} | {state} | {wall:.2f} | {fit:.2f} | {build:.2f} | {rest:.2f} | {100 * rest / wall:.1f} |"
        )
    rest = [row[5] for row in rows]
    share = [100 * row[5] / row[2] for row in rows]
    print(
        f"\nOrchestration per trial: median {statistics.median(rest):.2f} s, max {max(rest):.2f} s; "
        f"median {statistics.median(share):.1f}% of the trial (target: < 1 s and < 2%)"
    )


if __name__ == "__main__":
    main()
