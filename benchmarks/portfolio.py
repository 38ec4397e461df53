"""The warm-start portfolio, measured: the baseline and each `search.portfolio` configuration of a preset, trained as
`rnn-sweep` runs them first in a new study (no pruning, no cost guard, one worker), on IMDB and the UCI sentences.

    python benchmarks/portfolio.py                      # search=default: IMDB 10k subset and the UCI sentences
    python benchmarks/portfolio.py --tiny               # CI: the UCI sentences, 1 epoch
    python benchmarks/portfolio.py --overrides 'search.portfolio=[{body: gru, units: 64}]'   # try other candidates

Prints one row per trial: how it was placed, its values, its best val_accuracy and epoch, its seconds of fit,
and when (seconds since the command started) its best epoch ended.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from pipeline.config import compose
from pipeline.core.names import Fig, start_label

BIN = Path(sys.executable).parent
DATA = {
    "imdb": ["data=imdb", "data.subset=10000", "data.split_seed=42"],
    "sentences": ["data=sentences"],
}


def measure(dataset: str, args, workdir: Path) -> tuple[optuna.Study, float]:
    overrides = [f"search={args.search}", *DATA[dataset], "search.cv_folds=1", *args.overrides]
    trials = 1 + len(compose(overrides).search.portfolio)
    storage = f"sqlite:///{workdir}/optuna.db"
    command = [
        str(BIN / "rnn-sweep"),
        *overrides,
        f"search.n_trials={trials}",
        "search.pruner=none",
        "search.cost_guard=null",
        "search.confirm_top_k=0",
        "search.n_workers=1",
        "search.show_progress_bar=false",
        f"search.storage={storage}",
        f"paths.mlruns_dir={workdir}/mlruns",
        f"paths.log_dir={workdir}/logs",
        "search.register_as=null",
    ]
    started = time.time()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    study = optuna.load_study(study_name=compose(overrides).search.study_name, storage=storage)
    return study, started


def rows(dataset: str, study: optuna.Study, started: float) -> list[str]:
    lines = []
    for trial in study.trials:
        attrs = trial.user_attrs
        values = ", ".join(
            f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"
            for name, value in trial.params.items()
        )
        ended = (
            (trial.datetime_complete.timestamp() - started)
            if trial.datetime_complete
            else float("nan")
        )
        lines.append(
            f"| {dataset} | {start_label(trial) or 'sampled'} | {values} | {trial.value:.4f} | {attrs.get(Fig.best_epoch)} | "
            f"{attrs.get(Fig.fit_seconds, float('nan')):.0f} | {ended:.0f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--search", default="default", help="the conf/search preset whose portfolio is measured"
    )
    parser.add_argument("--data", nargs="+", default=["imdb", "sentences"], choices=list(DATA))
    parser.add_argument(
        "--overrides", nargs="*", default=[], help="extra overrides of the rnn-sweep command"
    )
    parser.add_argument(
        "--tiny", action="store_true", help="400 UCI sentences, 1 epoch (seconds; CI)"
    )
    args = parser.parse_args()
    if args.tiny:
        args.data = ["sentences"]
        args.overrides = [*args.overrides, "train.epochs=1", "data.subset=400"]
    print(
        f"search={args.search}, overrides {args.overrides or 'none'}, started {time.strftime('%Y-%m-%d %H:%M')}"
    )
    print(
        "| data | placed as | values | best val_accuracy | best epoch | fit s | trial ended at s |"
    )
    print("|---|---|---|---|---|---|---|")
    for dataset in args.data:
        with tempfile.TemporaryDirectory(prefix=f"portfolio-{dataset}-") as workdir:
            study, started = measure(dataset, args, Path(workdir))
            print("\n".join(rows(dataset, study, started)), flush=True)


if __name__ == "__main__":
    main()
