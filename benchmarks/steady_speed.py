"""Does a sweep process slow down as it ages? The same model trained as trial 1 and again as the last trial of one
sweep process, other models of search=default in between; prints each epoch's seconds of both.

    python benchmarks/steady_speed.py                  # IMDB, 6,000 reviews (4,800 to train) of 400 tokens, 3 epochs, 20 trials
    python benchmarks/steady_speed.py --trials 10      # fewer models in between
    python benchmarks/steady_speed.py --tiny           # CI: UCI sentences, trial 1 and trial 3, 2 epochs

Trial 0 is the sweep's baseline (the config's own values). After it, the other trials draw from the default space
(TPE's random start-up: every body, up to 2 layers of 128 units, any batch size), all trained to the end
(pruner none). Then the baseline's parameters are enqueued again and run as the last trial, in the same process
(run_sweep called again on the same study, as a scheduled worker resuming it would). The repeated model trains
6 epochs both times, the others 3. Epoch 1 includes tracing, so the figure compared is the median epoch time of
epochs 2 and later.
"""

import argparse
import os
import statistics
import tempfile
import mlflow
import optuna

from pipeline.figures import Attr
from pipeline.sweep import compose, run_sweep
from sweep_memory import resident_mib  # benchmarks/ is on the path of a script run from it


def epoch_seconds(client: mlflow.MlflowClient, trial: optuna.trial.FrozenTrial) -> list[float]:
    history = client.get_metric_history(trial.user_attrs[Attr.mlflow_run_id], "epoch_seconds")
    return [m.value for m in sorted(history, key=lambda m: m.step)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="trials in the process, the repeated one included")
    parser.add_argument("--subset", type=int, default=6000, help="IMDB reviews kept (data.subset)")
    parser.add_argument("--max-len", type=int, default=400, help="tokens kept per review (data.max_len)")
    parser.add_argument("--probe-epochs", type=int, default=6, help="epochs of the repeated model, each time")
    parser.add_argument("--tiny", action="store_true", help="3 trials of 2 epochs on the UCI sentences (seconds)")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="rnnsweep-steady-")
    data = ["data=sentences"] if args.tiny else ["data=imdb", f"data.subset={args.subset}", f"data.max_len={args.max_len}"]
    between, probe_epochs = (1, 2) if args.tiny else (args.trials - 2, args.probe_epochs)
    overrides = ["search=default", "search.portfolio=[]", *data, "search.pruner=none", "search.confirm_top_k=0", "search.n_workers=1",
                 "search.show_progress_bar=false", f"paths.mlruns_dir={folder}/mlruns", f"paths.log_dir={folder}/logs"]
    loads = [sweep(overrides, trials=1, epochs=probe_epochs)]  # trial 0: the baseline
    sweep(overrides, trials=between, epochs=1 if args.tiny else 3)
    study = optuna.load_study(study_name=compose(overrides).search.study_name, storage=f"sqlite:///{folder}/mlruns/optuna.db")
    study.enqueue_trial(study.trials[0].params)
    loads.append(sweep(overrides, trials=1, epochs=probe_epochs))
    study = optuna.load_study(study_name=study.study_name, storage=f"sqlite:///{folder}/mlruns/optuna.db")
    client = mlflow.MlflowClient(f"sqlite:///{folder}/mlruns/mlflow.db")
    rows = [(t.number + 1, epoch_seconds(client, t)) for t in (study.trials[0], study.trials[-1])]
    print(f"\nSame model ({study.trials[0].params}) as trial 1 and trial {rows[1][0]} of one process (pid {os.getpid()}, "
          f"LD_PRELOAD={os.environ.get('LD_PRELOAD', '')!r}); load average before each: {loads[0]:.1f}, {loads[1]:.1f}; "
          f"resident memory at the end {resident_mib():.0f} MiB")
    print("| trial | " + " | ".join(f"epoch {i + 1} s" for i in range(len(rows[0][1]))) + " | epochs 2+ median s |")
    print("|---" * (len(rows[0][1]) + 2) + "|")
    steady = []
    for number, seconds in rows:
        steady.append(statistics.median(seconds[1:] or seconds))
        print(f"| {number} | " + " | ".join(f"{s:.2f}" for s in seconds) + f" | {steady[-1]:.2f} |")
    print(f"\nTrial {rows[1][0]} / trial 1, epochs 2+: {steady[1] / steady[0]:.3f} (target: within 10%, <= 1.10)")


def sweep(overrides: list[str], trials: int, epochs: int) -> float:
    """run_sweep in this process: `trials` more trials of `epochs` epochs; returns the load average before it."""
    load = os.getloadavg()[0]
    command = [*overrides, f"search.n_trials={trials}", f"train.epochs={epochs}"]
    run_sweep(compose(command), command)
    return load


if __name__ == "__main__":
    main()
