"""Regenerate the charts and figures of docs/plateau.md from rnnsweep's own commands.

Runs, in a temporary MLflow store (or --store DIR, kept; a command whose run is already there is not run again):
  rnn-lr-find model=gru optimizer=rmsprop data=sentences
  rnn-sweep search=plateau data=sentences
  rnn-sweep search=plateau_padding data=sentences
then finds their runs with the MLflow client, copies their charts into the output folder as PNGs and writes the
figures it read to figures.json and figures.md. About 15 minutes on 2 shared CPU cores.

    .venv/bin/python docs/plateau/make_figures.py [--cache-dir DIR] [--store DIR] [OUT, default docs/plateau]
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bar per downloaded chart
import mlflow  # noqa: E402 (after the setting it reads)
from mlflow import MlflowClient  # noqa: E402

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent  # the venv's console scripts sit beside its python
GRID_LRS = (1e-4, 1e-3, 1e-2, 5e-2, 1e-1)  # conf/search/plateau.yaml, for the range test's predictions
COMMANDS = {
    "lr_find": ["rnn-lr-find", "model=gru", "optimizer=rmsprop", "data=sentences"],
    "plateau": ["rnn-sweep", "search=plateau", "data=sentences"],
    "plateau_padding": ["rnn-sweep", "search=plateau_padding", "data=sentences"],
}
FINDERS = {  # the MLflow filter of each command's (parent) run
    "lr_find": "tags.entry = 'rnn-lr-find'",
    "plateau": "tags.entry = 'rnn-sweep' and tags.study = 'plateau-sentences-gru'",
    "plateau_padding": "tags.entry = 'rnn-sweep' and tags.study = 'plateau_padding-sentences-gru'",
}
TRIAL_METRICS = ("plateau_epochs", "plateau_censored", "plateau_at_chance", "plateau_loss", "chance_loss",
                 "plateau_grad_norm", "escape_grad_norm", "plateau_update_ratio", "escape_update_ratio",
                 "best_val_accuracy", "best_epoch", "epochs_run", "fit_seconds")
EPOCHS_SHOWN = (1, 3, 5, 10, 20, 25, 40)  # per-epoch figures at these epochs (a median pruner compares val_accuracy)
PRUNER_EPOCHS = (5, 10, 20, 40)
CURVE_RATES = (1e-4, 1e-3)  # the trials whose learning_curves.png is copied: the long plateau and the short one
CURVES = ("loss", "accuracy", "val_accuracy", "grad_norm", "update_ratio")
RANGE_METRICS = ("start_loss", "chance_loss", "plateau_edge_lr", "escape_lr_steps", "expected_plateau_steps",
                 "expected_plateau_epochs", "steepest_lr", "steepest_slope", "min_loss_lr", "min_loss", "divergence_lr",
                 "steps_run", "range_seconds")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", type=Path, default=HERE, help="where the PNGs and figures go (default: docs/plateau/)")
    parser.add_argument("--cache-dir", help="rnnsweep's download cache (paths.cache_dir) holding the UCI sentences; "
                        "default: the commands' own (conf/paths/default.yaml)")
    parser.add_argument("--store", type=Path, help="keep the MLflow store and logs here instead of a temporary folder")
    return parser.parse_args()


# ------------------------------------------------------------------------------------------------ running


def run_command(name: str, store: Path, cache_dir: str | None) -> float:
    """One of COMMANDS inside `store`; its terminal output to store/<name>.out; returns its wall seconds."""
    argv = [str(BIN / COMMANDS[name][0]), *COMMANDS[name][1:], f"paths.mlruns_dir={store / 'mlruns'}",
            f"paths.log_dir={store / 'logs'}", *([f"paths.cache_dir={cache_dir}"] if cache_dir else [])]
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}  # the store is ours
    print(f"[{time.strftime('%H:%M:%S')}] {' '.join(COMMANDS[name])}", flush=True)
    started = time.perf_counter()
    with open(store / f"{name}.out", "w") as output:
        code = subprocess.run(argv, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=store).returncode
    seconds = time.perf_counter() - started
    if code != 0:
        sys.exit(f"error: {' '.join(COMMANDS[name])} exited {code} after {seconds:.0f} s; its output: {store / f'{name}.out'}")
    print(f"    done in {seconds:.0f} s", flush=True)
    (store / f"{name}.seconds").write_text(f"{seconds:.1f}\n")  # a later read of a kept --store still knows it
    return seconds


def command_seconds(store: Path) -> dict[str, float]:
    return {name: float((store / f"{name}.seconds").read_text()) for name in COMMANDS if (store / f"{name}.seconds").exists()}


def open_store(store: Path) -> MlflowClient:
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlruns' / 'mlflow.db'}")
    return MlflowClient()


def already_run(store: Path, name: str) -> bool:
    """A finished run of this command in a kept --store (never opens a store the commands have not made)."""
    if not (store / "mlruns" / "mlflow.db").exists():
        return False
    client = open_store(store)
    return client.get_experiment_by_name("rnnsweep") is not None and find_run(client, name) is not None


def find_run(client: MlflowClient, name: str):
    runs = client.search_runs(experiment_ids=[experiment_id(client)], filter_string=f"{FINDERS[name]} and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def experiment_id(client: MlflowClient) -> str:
    return client.get_experiment_by_name("rnnsweep").experiment_id


def children(client: MlflowClient, parent_id: str) -> list:
    return client.search_runs(experiment_ids=[experiment_id(client)], max_results=1000,
                              filter_string=f"tags.mlflow.parentRunId = '{parent_id}' and tags.entry = 'rnn-sweep trial'")


def download(run_id: str, artifact: str, target: Path) -> Path:
    """Copy one artifact of a run to `target`."""
    with tempfile.TemporaryDirectory() as folder:
        shutil.copyfile(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact, dst_path=folder), target)
    return target


# ------------------------------------------------------------------------------------------------ reading


def trial_figures(client: MlflowClient, run) -> dict:
    params = run.data.params
    figures = {"run_id": run.info.run_id, "run_name": run.info.run_name, "state": run.data.tags.get("trial_state"),
               "learning_rate": float(params["optimizer.learning_rate"]),
               "mask_padding": params.get("model.mask_padding"), "padding": params.get("data.padding")}
    figures |= {key: run.data.metrics[key] for key in TRIAL_METRICS if key in run.data.metrics}
    histories = {name: history(client, run.info.run_id, name) for name in CURVES}
    figures["at_epoch"] = {name: {e: h[e] for e in EPOCHS_SHOWN if e in h} for name, h in histories.items()}
    if histories["grad_norm"]:
        figures["grad_norm_peak_epoch"] = max(histories["grad_norm"], key=histories["grad_norm"].get)
        figures["grad_norm_peak"] = histories["grad_norm"][figures["grad_norm_peak_epoch"]]
    return figures


def history(client: MlflowClient, run_id: str, metric: str) -> dict[int, float]:
    """A per-epoch metric of a run: {epoch: value}."""
    return {m.step: m.value for m in client.get_metric_history(run_id, metric)}


def read_range_test(client: MlflowClient, out: Path) -> dict:
    run = find_run(client, "lr_find")
    download(run.info.run_id, "lr_find.png", out / "lr_find.png")
    figures = {key: run.data.metrics[key] for key in RANGE_METRICS if key in run.data.metrics}
    if "expected_plateau_steps" in figures:
        figures["steps_per_epoch"] = round(figures["expected_plateau_steps"] / figures["expected_plateau_epochs"])
    return {"run_id": run.info.run_id, "figures": figures}


def read_sweep(client: MlflowClient, name: str, out: Path, chart: str) -> dict:
    parent = find_run(client, name)
    download(parent.info.run_id, "plateau_vs_learning_rate.png", out / chart)
    with tempfile.TemporaryDirectory() as folder:
        summary = Path(mlflow.artifacts.download_artifacts(run_id=parent.info.run_id, artifact_path="summary.txt",
                                                           dst_path=folder)).read_text()
    trials = sorted((trial_figures(client, run) for run in children(client, parent.info.run_id)),
                    key=lambda t: (str(t["mask_padding"]), str(t["padding"]), t["learning_rate"]))
    return {"run_id": parent.info.run_id, "summary": summary, "trials": trials}


def copy_learning_curves(sweep: dict, out: Path, rates=CURVE_RATES) -> list[str]:
    """learning_curves.png of the trials at `rates` (the plateau of lr 1e-4, the short one of 1e-3)."""
    return [download(t["run_id"], "learning_curves.png", out / f"learning_curves_lr_{short(t['learning_rate'])}.png").name
            for t in sweep["trials"] if any(math.isclose(t["learning_rate"], rate) for rate in rates)]


def short(rate: float) -> str:
    """1e-4, not 0.0001: the file names of the learning-curve charts."""
    return f"{rate:.0e}".replace("e-0", "e-").replace("e+0", "e")


# ------------------------------------------------------------------------------------------------ writing


def number(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def plateau_cell(trial: dict) -> str:
    return f"{'≥' if trial.get('plateau_censored') else ''}{trial['plateau_epochs']:.0f}"


def ratio(after, before) -> str:
    return "-" if not after or not before else f"×{after / before:.2f}"


def range_section(range_test: dict, output: str) -> list[str]:
    f = range_test["figures"]
    lines = ["## 1. Range test: `rnn-lr-find model=gru optimizer=rmsprop data=sentences`", "",
             f"MLflow run `{range_test['run_id']}`; chart: `lr_find.png`. Its terminal table:", "", "```",
             *table_from_output(output), "```", "", "| figure | value |", "|---|---|"]
    lines += [f"| `{key}` | {number(value, 4)} |" for key, value in f.items()]
    if "escape_lr_steps" in f and "steps_per_epoch" in f:
        lines += ["", f"Plateau length the escape sum predicts at each learning rate of `search=plateau`'s grid "
                  f"(`escape_lr_steps / lr / {f['steps_per_epoch']}` steps per epoch):", "",
                  "| learning rate | predicted plateau (epochs) |", "|---|---|"]
        lines += [f"| {lr:g} | {f['escape_lr_steps'] / lr / f['steps_per_epoch']:.2g} |" for lr in GRID_LRS]
    return lines


def table_from_output(output: str) -> list[str]:
    """The range test's figure table (the lines from its `lr-find-...: N steps` header to the blank line after)."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("lr-find-")), None)
    if start is None:
        return ["(not found in the command's output)"]
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def plateau_section(sweep: dict, curves: list[str]) -> list[str]:
    lines = ["## 2. Plateau grid: `rnn-sweep search=plateau data=sentences`", "",
             f"Parent run `{sweep['run_id']}`; charts: `plateau_vs_learning_rate.png`, {', '.join(f'`{c}`' for c in curves)}.",
             "", "| learning rate | plateau_epochs | at chance | plateau_loss | chance_loss | grad norm plateau → after | "
             "update ratio plateau → after | peak grad_norm (epoch) | best val_accuracy (epoch) | val_accuracy at epoch "
             f"{', '.join(map(str, PRUNER_EPOCHS))} |", "|---|---|---|---|---|---|---|---|---|---|"]
    for t in sweep["trials"]:
        lines.append(
            f"| {t['learning_rate']:g} | {plateau_cell(t)} | {'yes' if t.get('plateau_at_chance') else 'no'} | "
            f"{number(t.get('plateau_loss'), 4)} | {number(t.get('chance_loss'), 4)} | "
            f"{number(t.get('plateau_grad_norm'))} → {number(t.get('escape_grad_norm'))} "
            f"({ratio(t.get('escape_grad_norm'), t.get('plateau_grad_norm'))}) | "
            f"{number(t.get('plateau_update_ratio'))} → {number(t.get('escape_update_ratio'))} "
            f"({ratio(t.get('escape_update_ratio'), t.get('plateau_update_ratio'))}) | "
            f"{number(t.get('grad_norm_peak'))} ({t.get('grad_norm_peak_epoch', '-')}) | "
            f"{number(t.get('best_val_accuracy'))} ({number(t.get('best_epoch'))}) | "
            f"{', '.join(number(t['at_epoch']['val_accuracy'].get(e)) for e in PRUNER_EPOCHS)} |")
    for t in sweep["trials"]:
        if any(math.isclose(t["learning_rate"], rate) for rate in CURVE_RATES):
            lines += ["", *epoch_table(t)]
    return lines + ["", "Its summary (`summary.txt` of the parent run):", "", "```", sweep["summary"].rstrip(), "```"]


def epoch_table(trial: dict) -> list[str]:
    """The trial's per-epoch curves at EPOCHS_SHOWN: what its learning_curves.png draws."""
    lines = [f"Learning rate {trial['learning_rate']:g} (`learning_curves_lr_{short(trial['learning_rate'])}.png`), per epoch:", "",
             "| epoch | " + " | ".join(CURVES) + " |", "|---" * (len(CURVES) + 1) + "|"]
    return lines + [f"| {epoch} | " + " | ".join(number(trial["at_epoch"][name].get(epoch)) for name in CURVES) + " |"
                    for epoch in EPOCHS_SHOWN]


def padding_section(sweep: dict) -> list[str]:
    lines = ["## 3. Padding axis: `rnn-sweep search=plateau_padding data=sentences`", "",
             f"Parent run `{sweep['run_id']}`; chart: `plateau_padding_vs_learning_rate.png`.", "",
             "| mask_padding | padding | learning rate | plateau_epochs | at chance | plateau_loss | grad_norm plateau → after | "
             "update_ratio plateau → after | best val_accuracy |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {t['mask_padding']} | {t['padding']} | {t['learning_rate']:g} | {plateau_cell(t)} | "
              f"{'yes' if t.get('plateau_at_chance') else 'no'} | {number(t.get('plateau_loss'), 4)} | "
              f"{number(t.get('plateau_grad_norm'))} → {number(t.get('escape_grad_norm'))} | "
              f"{number(t.get('plateau_update_ratio'))} → {number(t.get('escape_update_ratio'))} | "
              f"{number(t.get('best_val_accuracy'))} |" for t in sweep["trials"]]
    return lines + ["", "Its summary (`summary.txt` of the parent run):", "", "```", sweep["summary"].rstrip(), "```"]


def write_figures(out: Path, figures: dict, outputs: dict[str, str]) -> None:
    (out / "figures.json").write_text(json.dumps(figures, indent=1) + "\n")
    seconds = ", ".join(f"{name} {s:.0f} s" for name, s in figures["command_seconds"].items())
    lines = ["# Figures of docs/plateau.md", "", f"Written by `docs/plateau/make_figures.py` on {figures['generated']} "
             f"(commands' wall time: {seconds}). Do not edit: run the script again.", "",
             *range_section(figures["lr_find"], outputs.get("lr_find", "")), "",
             *plateau_section(figures["plateau"], figures["learning_curves"]), "",
             *padding_section(figures["plateau_padding"]), ""]
    (out / "figures.md").write_text("\n".join(lines))


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="plateau-doc-") as temporary:
        store = (args.store or Path(temporary)).resolve()
        store.mkdir(parents=True, exist_ok=True)
        for name in COMMANDS:
            if not already_run(store, name):
                run_command(name, store, args.cache_dir and str(Path(args.cache_dir).expanduser().resolve()))  # they run in store
        client = open_store(store)
        outputs = {name: (store / f"{name}.out").read_text() for name in COMMANDS if (store / f"{name}.out").exists()}
        plateau = read_sweep(client, "plateau", args.out, "plateau_vs_learning_rate.png")
        figures = {"generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command_seconds": command_seconds(store),
                   "lr_find": read_range_test(client, args.out), "plateau": plateau,
                   "learning_curves": copy_learning_curves(plateau, args.out),
                   "plateau_padding": read_sweep(client, "plateau_padding", args.out, "plateau_padding_vs_learning_rate.png")}
        write_figures(args.out, figures, outputs)
    print(f"wrote {', '.join(sorted(p.name for p in args.out.iterdir() if p.suffix in ('.png', '.md', '.json')))} to {args.out}")


if __name__ == "__main__":
    main()
