"""Sweep efficiency: rnnsweep (TPE + median pruning) vs Keras Tuner Hyperband and RandomSearch.

    python benchmarks/sweep_efficiency.py                          # IMDB, 10k train reviews, search=default, 10 min per tool and seed, seeds 1 2 3
    python benchmarks/sweep_efficiency.py --budget 300 --subset 4000 --seeds 1 --targets 0.8 0.85
    python benchmarks/sweep_efficiency.py --tiny                   # CI: UCI sentences, search=quick, seconds each, one seed

Same search space (a `conf/search` preset, read by all three), same data, same model zoo and the same
length-bucketed training streams, same wall budget: no tool starts a trial after it (a running trial
finishes, as with Optuna's timeout). rnnsweep runs as its command line, as a user runs it, so its clock
includes start-up, MLflow logging and the Optuna storage; Keras Tuner runs in this process. From every
epoch's validation accuracy and the time it was reached: the best so far at fractions of the budget
and the time to reach each target. Needs the benchmark extra: pip install -e '.[benchmark]'.
"""

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras
import keras_tuner as kt
import mlflow
from omegaconf import DictConfig

from pipeline.data.batching import evaluation_stream, training_stream
from pipeline.data.texts import prepare_data
from pipeline.models.zoo import build_model
from pipeline.config import compose, override
from pipeline.config import configured_callbacks, instantiate

BIN = Path(sys.executable).parent
SPLIT_SEED = 42  # every tool and seed trains and validates on the same reviews


def base_overrides(args, seed: int | None = None) -> list[str]:
    """The config every tool starts from; `seed` seeds sampling and training, while the data split stays fixed."""
    seeded = [f"seed={seed}"] if seed is not None else []
    return [
        f"search={args.search}",
        f"data={args.data}",
        f"data.subset={args.subset or 'null'}",
        f"data.split_seed={SPLIT_SEED}",
        "search.cv_folds=1",
        *seeded,
    ]


# ----------------------------------------------------------------------------------- rnnsweep


def run_rnnsweep(args, workdir: Path, seed: int) -> list[tuple[float, float]]:
    """The `rnn-sweep` command with a timeout; (seconds since launch, val_accuracy) of every epoch, from MLflow."""
    tracking_uri = f"sqlite:///{workdir}/mlflow.db"
    command = [
        str(BIN / "rnn-sweep"),
        *base_overrides(args, seed),
        "search.n_trials=100000",
        f"search.timeout={args.budget}",
        f"search.storage=sqlite:///{workdir}/optuna.db",
        "search.show_progress_bar=false",
        f"hydra.run.dir={workdir}/hydra",
        *args.rnnsweep_overrides,
    ]
    started = time.time()
    subprocess.run(
        command,
        cwd=workdir,
        env=os.environ | {"MLFLOW_TRACKING_URI": tracking_uri},
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(compose(base_overrides(args)).tracking.experiment)
    children = client.search_runs(
        [experiment.experiment_id], "tags.mlflow.parentRunId != ''", max_results=10000
    )
    trials = [
        run for run in children if run.data.tags.get("confirm") != "true"
    ]  # seed confirmations come after the budget
    within = [run for run in trials if run.info.start_time / 1000 - started <= args.budget]
    print(
        f"rnnsweep seed {seed}: {len(within)} trials started within the {args.budget:.0f} s budget "
        f"({3600 * len(within) / args.budget:.0f} trials/hour), {len(trials)} in all",
        flush=True,
    )
    return [
        (point.timestamp / 1000 - started, point.value)
        for run in trials
        for point in client.get_metric_history(run.info.run_id, "val_accuracy")
    ]


# -------------------------------------------------------------------------------- Keras Tuner


class EpochClock(keras.callbacks.Callback):
    """Every epoch's val_accuracy with its time; class-level because Keras Tuner deep-copies callbacks."""

    started = 0.0
    events: list[tuple[float, float]] = []

    def on_epoch_end(self, epoch, logs=None):
        EpochClock.events.append((time.time() - EpochClock.started, logs["val_accuracy"]))


class ZooHyperModel(kt.HyperModel):
    """The search preset's space as Keras Tuner hyperparameters (its `when` as conditional scopes)."""

    def __init__(self, args, data, seed: int):
        super().__init__()
        self.base, self.data = base_overrides(args, seed), data
        self.space = compose(self.base).search.space

    def config(self, hp) -> DictConfig:
        names_by_path = {entry.path: name for name, entry in self.space.items()}
        chosen = {}
        for name, entry in self.space.items():
            when = entry.get("when")
            if when:
                with hp.conditional_scope(names_by_path[when.path], list(when["in"])):
                    value = hyperparameter(hp, name, entry)
            else:
                value = hyperparameter(hp, name, entry)
            if value is not None:
                chosen[entry.path] = value
        return compose(self.base + [override(path, value) for path, value in chosen.items()])

    def build(self, hp):
        self.cfg = cfg = self.config(
            hp
        )  # fit() follows for the same values: compose once per trial
        model = build_model(cfg.model, self.data.vocab_size)
        model.compile(
            optimizer=instantiate(cfg.optimizer, "optimizer"),
            loss="binary_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def fit(self, hp, model, *args, callbacks=(), **kwargs):
        cfg, data = self.cfg, self.data
        return model.fit(
            training_stream(data.x_train, data.y_train, cfg.train, cfg.seed),
            validation_data=evaluation_stream(data.x_val, data.y_val, cfg.train),
            shuffle=False,
            callbacks=[*callbacks, *configured_callbacks(cfg)],
            **kwargs,
        )


def hyperparameter(hp, name: str, entry: DictConfig):
    if entry.type == "categorical":
        return hp.Choice(name, list(entry.choices))
    sampling = "log" if entry.get("log") else "linear"
    if entry.type == "int":
        return hp.Int(name, entry.low, entry.high, step=entry.get("step") or 1, sampling=sampling)
    return hp.Float(name, entry.low, entry.high, step=entry.get("step"), sampling=sampling)


def with_deadline(tuner_class):
    class Budgeted(tuner_class):
        def __init__(self, *args, deadline: float, **kwargs):
            super().__init__(*args, **kwargs)
            self.deadline = deadline

        def pre_create_trial(self):
            if (
                time.time() > self.deadline
            ):  # the oracle stops at max_trials: start no trial after the budget
                self.oracle.max_trials = len(self.oracle.trials)

    return Budgeted


def run_keras_tuner(kind: str, args, workdir: Path, seed: int) -> list[tuple[float, float]]:
    EpochClock.events, EpochClock.started = [], time.time()
    cfg = compose(base_overrides(args, seed))
    keras.utils.set_random_seed(seed)
    data = prepare_data(cfg.data, cfg.paths.cache_dir)
    common = {
        "objective": "val_accuracy",
        "seed": cfg.seed,
        "directory": str(workdir),
        "project_name": kind,
        "deadline": EpochClock.started + args.budget,
    }
    if kind == "hyperband":
        tuner = with_deadline(kt.Hyperband)(
            ZooHyperModel(args, data, seed),
            max_epochs=cfg.train.epochs,
            factor=3,
            hyperband_iterations=100000,
            **common,
        )
    else:
        tuner = with_deadline(kt.RandomSearch)(
            ZooHyperModel(args, data, seed), max_trials=100000, **common
        )
    tuner.search(epochs=cfg.train.epochs, callbacks=[EpochClock()], verbose=0)
    return list(EpochClock.events)


# ------------------------------------------------------------------------------------ report


def best_by(events, seconds: float) -> float | None:
    reached = [value for at, value in events if at <= seconds]
    return max(reached) if reached else None


def time_to(events, target: float) -> float:
    """Seconds until an epoch reached `target`; infinity if none did (so a median can count a miss)."""
    return min((at for at, value in events if value >= target), default=math.inf)


def fmt(seconds: float) -> str:
    return "not reached" if math.isinf(seconds) else f"{seconds:.0f}"


def run_row(tool: str, seed: int, events, args) -> str:
    fractions = [best_by(events, args.budget * f) for f in (0.25, 0.5, 0.75, 1.0)]
    best_cells = [f"{v:.4f}" if v is not None else "-" for v in fractions]
    target_cells = [fmt(time_to(events, target)) for target in args.targets]
    end = max((at for at, _ in events), default=0.0)
    return f"| {tool} | {seed} | {len(events)} | {end:.0f} | {' | '.join(best_cells)} | {' | '.join(target_cells)} |"


def spread(values: list[float], number=fmt) -> str:
    """Median and range of one figure over the seeds."""
    return f"{number(statistics.median(values))} ({number(min(values))}–{number(max(values))})"


def summary_row(tool: str, runs: list, args) -> str:
    best = [best_by(events, args.budget) or 0.0 for events in runs]
    cells = [spread(best, lambda v: f"{v:.4f}")] + [
        spread([time_to(e, t) for e in runs]) for t in args.targets
    ]
    return f"| {tool} | {len(runs)} | {' | '.join(cells)} |"


def time_ratio(ours: float, theirs: float, budget: float) -> tuple[str, str]:
    """Our time as a fraction of Hyperband's, and the verdict on <= 0.5. Hyperband not reaching the target within the
    budget bounds the ratio by ours / budget; neither reaching it is no verdict."""
    if math.isinf(ours) and math.isinf(theirs):
        return "neither reached it within the budget", ""
    if math.isinf(ours):
        return "only Hyperband reached it", "NOT met"
    if math.isinf(theirs):
        bound = ours / budget
        return (
            f"Hyperband did not reach it, so at most {bound:.2f} of its time",
            "met" if bound <= 0.5 else "not shown",
        )
    return f"{ours / theirs:.2f} of Hyperband's time", "met" if ours <= theirs / 2 else "NOT met"


def ratio_lines(results: dict, args) -> list[str]:
    """Each tool's median time to each target and median best, as a ratio of Hyperband's."""
    median_time = lambda tool, target: statistics.median(
        time_to(events, target) for events in results[tool]
    )
    median_best = lambda tool: statistics.median(
        best_by(events, args.budget) or 0.0 for events in results[tool]
    )
    lines = []
    for tool in [t for t in results if t != "hyperband"]:
        for target in args.targets:
            ours, theirs = median_time(tool, target), median_time("hyperband", target)
            ratio, goal = time_ratio(ours, theirs, args.budget)
            goal = f" (target <= 0.5: {goal})" if tool == "rnnsweep" and goal else ""
            lines.append(
                f"- {tool}, median time to {target}: {fmt(ours)} s vs Hyperband {fmt(theirs)} s: {ratio}{goal}"
            )
        ours, theirs = median_best(tool), median_best("hyperband")
        goal = (
            f" (target >= Hyperband: {'met' if ours >= theirs else 'NOT met'})"
            if tool == "rnnsweep"
            else ""
        )
        lines.append(
            f"- {tool}, median best val_accuracy at {args.budget:.0f} s: {ours:.4f} vs Hyperband {theirs:.4f}{goal}"
        )
    return lines


def print_report(results: dict, rows: list[str], args, started: str) -> None:
    print(
        f"\n{args.data} (subset {args.subset or 'all'}), search={args.search}, budget {args.budget:.0f} s per tool and seed, "
        f"seeds {args.seeds}, rnnsweep overrides {args.rnnsweep_overrides or 'none'}, started {started}; "
        f"keras-tuner {kt.__version__}"
    )
    quarters = " | ".join(
        f"best val_acc at {int(f * args.budget)} s" for f in (0.25, 0.5, 0.75, 1.0)
    )
    targets = " | ".join(f"s to val_acc {t}" for t in args.targets)
    print(f"| tool | seed | epochs trained | last epoch at s | {quarters} | {targets} |")
    print("|---|---|---|---|" + "---|" * (4 + len(args.targets)))
    print("\n".join(rows))
    print(f"\nMedian (range) over {len(args.seeds)} seed(s):")
    print(f"| tool | seeds | best val_acc at {args.budget:.0f} s | {targets} |")
    print("|---|---|---|" + "---|" * len(args.targets))
    print("\n".join(summary_row(tool, runs, args) for tool, runs in results.items()))
    if "hyperband" in results:
        print("\n" + "\n".join(ratio_lines(results, args)))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="imdb")
    parser.add_argument(
        "--subset",
        type=int,
        default=10000,
        help="train and test reviews kept (stratified); 0 keeps all",
    )
    parser.add_argument(
        "--search", default="default", help="the conf/search preset whose space all tools search"
    )
    parser.add_argument("--budget", type=float, default=600, help="wall seconds per tool and seed")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[1, 2, 3],
        help="each tool runs once per seed (sampler and training)",
    )
    parser.add_argument(
        "--targets", type=float, nargs="+", default=[0.85, 0.87, 0.88], help="val_accuracy targets"
    )
    parser.add_argument(
        "--rnnsweep-overrides",
        nargs="*",
        default=[],
        help="extra overrides of the rnn-sweep command",
    )
    parser.add_argument("--tools", nargs="+", default=["hyperband", "rnnsweep", "random"])
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="400 UCI sentences, search=quick, 10 s per tool, one seed (CI)",
    )
    args = parser.parse_args()
    if args.tiny:
        args.data, args.subset, args.search, args.budget, args.targets, args.seeds = (
            "sentences",
            400,
            "quick",
            10,
            [0.6, 0.7],
            [1],
        )
    return args


def main() -> None:
    args = parse_args()
    cfg = compose(base_overrides(args))
    prepare_data(cfg.data, cfg.paths.cache_dir)  # vectorized before any clock
    started = time.strftime("%Y-%m-%d %H:%M")
    results, rows = {tool: [] for tool in args.tools}, []
    for seed in (
        args.seeds
    ):  # seeds outermost: a drift of the machine over the hours touches every tool alike
        for tool in args.tools:
            with tempfile.TemporaryDirectory(prefix=f"efficiency-{tool}-") as workdir:
                runner = (
                    run_rnnsweep
                    if tool == "rnnsweep"
                    else lambda a, w, s: run_keras_tuner(tool, a, w, s)
                )
                results[tool].append(runner(args, Path(workdir), seed))
            keras.backend.clear_session()
            rows.append(run_row(tool, seed, results[tool][-1], args))
            print(rows[-1], flush=True)
    print_report(results, rows, args, started)


if __name__ == "__main__":
    main()
