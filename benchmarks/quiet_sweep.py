"""One rnn-sweep as the benchmarks run it: in its own folder, its output discarded."""

import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parent.parent
# tiny modes (CI): no chart process per sweep; their figures are not read
NO_CHARTS = "tracking.trial_charts=false"


def run_sweep(folder: Path, overrides: list[str], extra: list[str] = ()) -> tuple[object, float]:
    """Sweep with `overrides` (then `extra`) into `folder`; its MLflow parent run and wall seconds."""
    command = [
        *overrides,
        "search.show_progress_bar=false",
        "search.register_as=null",
        f"paths.mlruns_dir={folder}/mlruns",
        f"paths.log_dir={folder}/logs",
        f"tracking.uri=sqlite:///{folder}/mlflow.db",
        *extra,
    ]
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pipeline.cli.sweep", *command],
        check=True,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    client = MlflowClient(f"sqlite:///{folder}/mlflow.db")
    experiment = client.get_experiment_by_name("rnnsweep").experiment_id
    [parent] = client.search_runs([experiment], "tags.entry = 'rnn-sweep'")
    return parent, wall
