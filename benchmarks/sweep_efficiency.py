"""Sweep efficiency: rnnsweep (TPE + median pruning) vs Keras Tuner Hyperband and RandomSearch.

    python benchmarks/sweep_efficiency.py                          # IMDB, 10k train reviews, search=default, 12 min each
    python benchmarks/sweep_efficiency.py --budget 300 --subset 4000 --targets 0.8 0.85
    python benchmarks/sweep_efficiency.py --tiny                   # CI: UCI sentences, search=quick, seconds each

Same search space (a `conf/search` preset, read by all three), same data, same model zoo and the same
length-bucketed training streams, same wall budget: no tool starts a trial after it (a running trial
finishes, as with Optuna's timeout). rnnsweep runs as its command line, as a user runs it, so its clock
includes start-up, MLflow logging and the Optuna storage; Keras Tuner runs in this process. From every
epoch's validation accuracy and the time it was reached: the best so far at fractions of the budget
and the time to reach each target. Needs the benchmark extra: pip install -e '.[benchmark]'.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras
import keras_tuner as kt
import mlflow
from omegaconf import DictConfig

from pipeline.batching import evaluation_stream, training_stream
from pipeline.data import prepare_data
from pipeline.model import build_model
from pipeline.config import compose, override
from pipeline.config import configured_callbacks, instantiate

BIN = Path(sys.executable).parent


def base_overrides(args) -> list[str]:
    return [f"search={args.search}", f"data={args.data}", f"data.subset={args.subset or 'null'}"]


# ----------------------------------------------------------------------------------- rnnsweep


def run_rnnsweep(args, workdir: Path) -> list[tuple[float, float]]:
    """The `rnn-sweep` command with a timeout; (seconds since launch, val_accuracy) of every epoch, from MLflow."""
    tracking_uri = f"sqlite:///{workdir}/mlflow.db"
    command = [
        str(BIN / "rnn-sweep"), *base_overrides(args), "search.n_trials=100000", f"search.timeout={args.budget}",
        f"search.storage=sqlite:///{workdir}/optuna.db", "search.show_progress_bar=false", f"hydra.run.dir={workdir}/hydra",
        *args.rnnsweep_overrides,
    ]
    started = time.time()
    subprocess.run(command, cwd=workdir, env=os.environ | {"MLFLOW_TRACKING_URI": tracking_uri}, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(compose(base_overrides(args)).tracking.experiment)
    children = client.search_runs([experiment.experiment_id], "tags.mlflow.parentRunId != ''", max_results=10000)
    trials = [run for run in children if run.data.tags.get("confirm") != "true"]  # seed confirmations come after the budget
    return [(point.timestamp / 1000 - started, point.value)
            for run in trials for point in client.get_metric_history(run.info.run_id, "val_accuracy")]


# -------------------------------------------------------------------------------- Keras Tuner


class EpochClock(keras.callbacks.Callback):
    """Every epoch's val_accuracy with its time; class-level because Keras Tuner deep-copies callbacks."""

    started = 0.0
    events: list[tuple[float, float]] = []

    def on_epoch_end(self, epoch, logs=None):
        EpochClock.events.append((time.time() - EpochClock.started, logs["val_accuracy"]))


class ZooHyperModel(kt.HyperModel):
    """The search preset's space as Keras Tuner hyperparameters (its `when` as conditional scopes)."""

    def __init__(self, args, data):
        super().__init__()
        self.base, self.data = base_overrides(args), data
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
        self.cfg = cfg = self.config(hp)  # fit() follows for the same values: compose once per trial
        model = build_model(cfg.model, self.data.vocab_size)
        model.compile(optimizer=instantiate(cfg.optimizer, "optimizer"), loss="binary_crossentropy", metrics=["accuracy"])
        return model

    def fit(self, hp, model, *args, callbacks=(), **kwargs):
        cfg, data = self.cfg, self.data
        return model.fit(
            training_stream(data.x_train, data.y_train, cfg.train, cfg.seed),
            validation_data=evaluation_stream(data.x_val, data.y_val, cfg.train),
            shuffle=False, callbacks=[*callbacks, *configured_callbacks(cfg)], **kwargs,
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
            if time.time() > self.deadline:  # the oracle stops at max_trials: start no trial after the budget
                self.oracle.max_trials = len(self.oracle.trials)

    return Budgeted


def run_keras_tuner(kind: str, args, workdir: Path) -> list[tuple[float, float]]:
    EpochClock.events, EpochClock.started = [], time.time()
    cfg = compose(base_overrides(args))
    data = prepare_data(cfg.data, cfg.paths.cache_dir)
    common = {"objective": "val_accuracy", "seed": cfg.seed, "directory": str(workdir), "project_name": kind,
              "deadline": EpochClock.started + args.budget}
    if kind == "hyperband":
        tuner = with_deadline(kt.Hyperband)(ZooHyperModel(args, data), max_epochs=cfg.train.epochs, factor=3,
                                            hyperband_iterations=100000, **common)
    else:
        tuner = with_deadline(kt.RandomSearch)(ZooHyperModel(args, data), max_trials=100000, **common)
    tuner.search(epochs=cfg.train.epochs, callbacks=[EpochClock()], verbose=0)
    return list(EpochClock.events)


# ------------------------------------------------------------------------------------ report


def best_by(events, seconds: float) -> float | None:
    reached = [value for at, value in events if at <= seconds]
    return max(reached) if reached else None


def time_to(events, target: float) -> float | None:
    return min((at for at, value in events if value >= target), default=None)


def row(tool: str, events, args) -> str:
    fractions = [best_by(events, args.budget * f) for f in (0.25, 0.5, 0.75, 1.0)]
    best_cells = [f"{v:.4f}" if v is not None else "-" for v in fractions]
    target_cells = [f"{t:.0f}" if (t := time_to(events, target)) is not None else "not reached" for target in args.targets]
    end = max((at for at, _ in events), default=0.0)
    return f"| {tool} | {len(events)} | {end:.0f} | {' | '.join(best_cells)} | {' | '.join(target_cells)} |"


def ratio_lines(results: dict, targets) -> list[str]:
    lines = []
    for target in targets:
        ours = time_to(results["rnnsweep"], target)
        for rival in ("hyperband", "random"):
            theirs = time_to(results[rival], target)
            if ours is None or theirs is None:
                lines.append(f"- val_accuracy {target}: rnnsweep {fmt(ours)}, {rival} {fmt(theirs)}: no ratio")
            else:
                verdict = "met" if rival != "hyperband" or ours <= theirs / 2 else "NOT met"
                lines.append(f"- val_accuracy {target}: rnnsweep {ours:.0f} s vs {rival} {theirs:.0f} s: "
                             f"{ours / theirs:.2f} of its time" + (f" (target <= 0.5: {verdict})" if rival == "hyperband" else ""))
    return lines


def fmt(seconds) -> str:
    return "not reached" if seconds is None else f"{seconds:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="imdb")
    parser.add_argument("--subset", type=int, default=10000, help="train and test reviews kept (stratified); 0 keeps all")
    parser.add_argument("--search", default="default", help="the conf/search preset whose space all tools search")
    parser.add_argument("--budget", type=float, default=720, help="wall seconds per tool")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.80, 0.85, 0.87], help="val_accuracy targets")
    parser.add_argument("--rnnsweep-overrides", nargs="*", default=[], help="extra overrides of the rnn-sweep command")
    parser.add_argument("--tools", nargs="+", default=["hyperband", "rnnsweep", "random"])
    parser.add_argument("--tiny", action="store_true", help="UCI sentences, search=quick, 15 s per tool (CI)")
    args = parser.parse_args()
    if args.tiny:
        args.data, args.subset, args.search, args.budget, args.targets = "sentences", 0, "quick", 15, [0.6, 0.7]
    prepare_data(compose(base_overrides(args)).data, compose(base_overrides(args)).paths.cache_dir)  # vectorized before any clock
    started = time.strftime("%Y-%m-%d %H:%M")
    results, rows = {}, []
    for tool in args.tools:
        with tempfile.TemporaryDirectory(prefix=f"efficiency-{tool}-") as workdir:
            runner = run_rnnsweep if tool == "rnnsweep" else lambda a, w: run_keras_tuner(tool, a, w)
            results[tool] = runner(args, Path(workdir))
        keras.backend.clear_session()
        rows.append(row(tool, results[tool], args))
        print(rows[-1], flush=True)
    print(f"\n{args.data} (subset {args.subset or 'all'}), search={args.search}, budget {args.budget:.0f} s per tool, "
          f"rnnsweep overrides {args.rnnsweep_overrides or 'none'}, started {started}; keras-tuner {kt.__version__}")
    quarters = " | ".join(f"best val_acc at {int(f * args.budget)} s" for f in (0.25, 0.5, 0.75, 1.0))
    targets = " | ".join(f"s to val_acc {t}" for t in args.targets)
    print(f"| tool | epochs trained | last epoch at s | {quarters} | {targets} |")
    print("|---|---|---|" + "---|" * (4 + len(args.targets)))
    print("\n".join(rows))
    if {"rnnsweep", "hyperband", "random"} <= results.keys():
        print("\n" + "\n".join(ratio_lines(results, args.targets)))


if __name__ == "__main__":
    main()
