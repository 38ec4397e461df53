"""Pretrained word vectors as a search axis (issue 29), measured on the UCI sentences.

First `rnn-vectors` trains word2vec on the 25k IMDB training reviews. Then `rnn-sweep
search=vectors data=sentences` runs once per study seed without the vectors axis (its `vectors` and
`trainable` entries deleted: every model learns its embedding from scratch) and once with it
(scratch, frozen or fine-tuned vectors), the arms alternated, each a new study and MLflow store
with the same budget. Prints the vectors' coverage of the sentences, each sweep's winner and its
test accuracy (the parent run's best_test_accuracy: the winner's mean over its confirmation
seeds), and per arm the mean ± sd over seeds.

    python benchmarks/vectors.py           # 3 seeds x 2 arms, 10 trials each (about 20 min here)
    python benchmarks/vectors.py --tiny    # CI: 2,000 reviews, 20 dimensions, 1 trial, 1 seed
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from pipeline.config import compose
from quiet_sweep import NO_CHARTS, run_sweep

REPO = Path(__file__).resolve().parent.parent
ARMS = {"scratch only": ["~search.space.vectors", "~search.space.trainable"], "vectors axis": []}
MODELS = {  # two of search=default's portfolio, rnn-train's 5 epochs
    "pooling": ["model=pooling", "optimizer.learning_rate=0.01"],
    "gru 32": ["model=gru", "model.units=32", "optimizer.learning_rate=0.003"],
}
STARTS = {"scratch": [], "frozen": ["model.embedding.trainable=false"], "fine-tuned": []}


def make_vectors(folder: Path, extra: list[str]) -> tuple[Path, int, float, str]:
    """rnn-vectors on the IMDB training reviews: (the file, its width, seconds, its first line)."""
    output = folder / "imdb-w2v.txt"
    started = time.perf_counter()
    command = [
        sys.executable,
        "-m",
        "pipeline.cli.vectors",
        "data=imdb",
        f"vectors.output={output}",
        f"paths.log_dir={folder}/logs",
        *extra,
    ]
    result = subprocess.run(command, check=True, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    dim = int(output.open().readline().split()[1])
    return output, dim, wall, result.stdout.splitlines()[0]


def coverage(vectors: Path, data_overrides: list[str]) -> str:
    """The vectors' share of the sentences' vocabulary and training tokens, as a run logs them."""
    from pipeline.data.texts import prepare_data
    from pipeline.data.word_vectors import word_vectors

    cfg = compose(["data=sentences", *data_overrides])
    data = prepare_data(cfg.data, cfg.paths.cache_dir)
    return word_vectors(str(vectors), data, cfg.paths.cache_dir).summary_line(data.x_train)


def sweep(arm: str, seed: int, vectors: Path, dim: int, extra: list) -> tuple[float, float, str]:
    """One sweep in a new store: (winner's test accuracy, wall seconds, the winner's values)."""
    folder = Path(tempfile.mkdtemp(prefix="rnnsweep-vectors-"))
    file = [] if arm == "scratch only" else [f"model.embedding.vectors={vectors}"]
    overrides = [
        "search=vectors",
        "data=sentences",
        *file,
        *ARMS[arm],
        f"model.embedding_dim={dim}",
        f"search.seed={seed}",
    ]
    parent, wall = run_sweep(folder, overrides, extra)
    study = optuna.load_study(
        study_name=compose([*overrides, *extra]).search.study_name,
        storage=f"sqlite:///{folder}/mlruns/optuna.db",
    )
    winner = study.trials[int(parent.data.metrics["best_trial"])]
    return parent.data.metrics["best_test_accuracy"], wall, described(winner.params, vectors)


def same_model(vectors: Path, dim: int, seeds: list[int], extra: list[str]) -> None:
    """Each model of MODELS trained from each start of STARTS, all else fixed: test accuracy over
    the training seeds (in this process; the data split stays fixed)."""
    from pipeline.config import check
    from pipeline.data.texts import prepare_data
    from pipeline.training.train import train_model

    print("\n| model | embedding | test accuracy: mean ± sd over training seeds |\n|---|---|---|")
    for model, model_overrides in MODELS.items():
        for start, start_overrides in STARTS.items():
            file = [] if start == "scratch" else [f"model.embedding.vectors={vectors}"]
            accuracies = []
            for seed in seeds:
                cfg = compose(
                    [
                        "data=sentences",
                        *model_overrides,
                        *file,
                        *start_overrides,
                        f"model.embedding_dim={dim}",
                        f"train.seed={seed}",
                        "train.verbose=0",
                        "train.log_model=false",
                        *extra,
                    ],
                    config_name="train",
                )
                check(cfg)
                result = train_model(cfg, prepare_data(cfg.data, cfg.paths.cache_dir))
                accuracies.append(result.summary["test_accuracy"])
            sd = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
            mean = statistics.fmean(accuracies)
            print(f"| {model} | {start} | {mean:.4f} ± {sd:.4f} |", flush=True)


def described(params: dict, vectors: Path) -> str:
    """The winner's values in words: 'embedding frozen, body gru, units 32, ...'."""
    tuned = "fine-tuned" if params.get("trainable") else "frozen"
    embedding = {None: "scratch", str(vectors): tuned}
    words = [f"embedding {embedding[params.get('vectors')]}"]
    words += [
        f"{name} {value:.2g}" if isinstance(value, float) else f"{name} {value}"
        for name, value in params.items()
        if name not in ("vectors", "trainable")
    ]
    return ", ".join(words)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--trials", type=int, default=10, help="search.n_trials of every sweep")
    parser.add_argument("--tiny", action="store_true", help="2,000 reviews, 1 trial, 1 seed (CI)")
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["sweeps", "same-model"],
        choices=["sweeps", "same-model"],
        help="what to measure after rnn-vectors",
    )
    args = parser.parse_args()
    vector_extra = ["data.subset=2000", "vectors.dim=20", "vectors.epochs=1"] if args.tiny else []
    data_extra = ["data.subset=400"] if args.tiny else []
    trials = 1 if args.tiny else args.trials
    sweep_extra = [*data_extra, "search.cv_folds=1", f"search.n_trials={trials}"]
    sweep_extra += ["search.confirm_top_k=0", "train.epochs=2", NO_CHARTS] if args.tiny else []
    seeds = args.seeds[:1] if args.tiny else args.seeds
    print(f"started {time.strftime('%Y-%m-%d %H:%M')}; every sweep: {' '.join(sweep_extra)}")
    with tempfile.TemporaryDirectory(prefix="rnnsweep-w2v-") as folder:
        vectors, dim, wall, made = make_vectors(Path(folder), vector_extra)
        print(f"rnn-vectors ({wall:.0f} s wall): {made}")
        print(f"on the UCI sentences: {coverage(vectors, data_extra)}")
        if "same-model" in args.parts:
            epochs = ["train.epochs=1"] if args.tiny else []
            same_model(vectors, dim, seeds, [*data_extra, *epochs])
        if "sweeps" in args.parts:
            sweeps(vectors, dim, seeds, sweep_extra)


def sweeps(vectors: Path, dim: int, seeds: list[int], extra: list[str]) -> None:
    """Each arm once per study seed, alternated: a slower stretch of the machine hits both."""
    results = {}
    print("\n| arm | search.seed | winner's test accuracy | winner | wall s |")
    print("|---|---|---|---|---|")
    for seed in seeds:
        for arm in ARMS:
            accuracy, wall, winner = sweep(arm, seed, vectors, dim, extra)
            results.setdefault(arm, []).append((accuracy, wall))
            print(f"| {arm} | {seed} | {accuracy:.4f} | {winner} | {wall:.0f} |", flush=True)
    print("\n| arm | winners' test accuracy: mean ± sd over seeds | wall s: mean |")
    print("|---|---|---|")
    for arm, rows in results.items():
        accuracies, walls = [a for a, _ in rows], [w for _, w in rows]
        sd = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
        mean = statistics.fmean(accuracies)
        print(f"| {arm} | {mean:.4f} ± {sd:.4f} | {statistics.fmean(walls):.0f} |")


if __name__ == "__main__":
    main()
