"""rnn-ui: the MLflow UI on tracking.ui_host:ui_port over the store rnn-train and rnn-sweep write
to."""

import os
import sys
from pathlib import Path

from omegaconf import DictConfig

from pipeline import config
from pipeline.cli.entry import command
from pipeline.core.redaction import redact


def ui(cfg: DictConfig) -> None:
    config.check(cfg)
    from pipeline.tracking.mlflow_runs import ui_command

    ui_line = ui_command(cfg)
    print(" ".join(redact(part) for part in ui_line), file=sys.stderr)
    print(
        f"starting the MLflow UI on http://{cfg.tracking.ui_host}:{cfg.tracking.ui_port} "
        "(its first start can take a minute)",
        file=sys.stderr,
    )
    Path(cfg.paths.mlruns_dir).mkdir(parents=True, exist_ok=True)
    # MLflow 3.17
    os.environ.setdefault("PYTHONWARNINGS", "ignore:starlette.middleware.wsgi is deprecated")
    # MLflow's job runner (GenAI jobs: 8 more processes, ~20 processor seconds at start) has no
    # work from rnnsweep's runs
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    os.execvp(ui_line[0], ui_line)


cli = command(
    "rnn-ui",
    "train",
    ui,
    settings=["tracking.ui_port", "tracking.ui_host", "paths.mlruns_dir"],
    examples=["rnn-ui", "rnn-ui tracking.ui_port=5001"],
    summary="the MLflow UI over the runs rnn-train and rnn-sweep recorded.",
    presets=False,
)

if __name__ == "__main__":
    cli()
