"""rnn-dashboard: Optuna's own UI (optuna-dashboard) over the sweep's study storage, as rnn-ui is
MLflow's."""

import os
import sys
from pathlib import Path

from omegaconf import DictConfig

from pipeline import config
from pipeline.cli.entry import command
from pipeline.core.errors import InputError
from pipeline.core.redaction import redact


def dashboard_command(cfg: DictConfig) -> list[str]:
    from pipeline.tracking import stores  # MLflow's errors: after the check

    port = cfg.search.dashboard_port
    url = stores.storage_url(cfg)
    file = stores.sqlite_file(url)
    if file is not None and not file.is_file():
        raise InputError(
            f"no study storage at {file} (paths.mlruns_dir, search.storage): run rnn-sweep first"
        )
    dashboard = Path(sys.executable).parent / "optuna-dashboard"
    return [
        sys.executable,
        str(dashboard),
        url,
        "--host",
        cfg.tracking.ui_host,
        "--port",
        str(port),
    ]  # this interpreter, whatever the script's #! says


def dashboard(cfg: DictConfig) -> None:
    """optuna-dashboard on tracking.ui_host:search.dashboard_port over the study storage."""
    config.check(cfg)
    dashboard_line = dashboard_command(cfg)
    print(" ".join(redact(part) for part in dashboard_line), file=sys.stderr)
    print(
        f"open http://{cfg.tracking.ui_host}:{cfg.search.dashboard_port} "
        "(its first start can take a minute)",
        file=sys.stderr,
    )
    os.execv(dashboard_line[0], dashboard_line)


cli = command(
    "rnn-dashboard",
    "sweep",
    dashboard,
    settings=["search.dashboard_port", "tracking.ui_host", "search.storage", "paths.mlruns_dir"],
    examples=["rnn-dashboard", "rnn-dashboard search.storage=postgresql://user@host/optuna"],
    summary="optuna-dashboard over the studies rnn-sweep stored.",
    presets=False,
)

if __name__ == "__main__":
    cli()
