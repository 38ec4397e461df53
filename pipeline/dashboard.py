"""rnn-dashboard: Optuna's own UI (optuna-dashboard) over the sweep's study storage, as rnn-ui is MLflow's."""

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from pipeline import CONFIG_DIR, config, stores
from pipeline.errors import InputError, exit_on_input_error
from pipeline.redaction import redact
from pipeline.sweep import storage_url


def dashboard_command(cfg: DictConfig) -> list[str]:
    port = cfg.search.dashboard_port
    url = storage_url(cfg)
    file = stores.sqlite_file(url)
    if file is not None and not file.is_file():
        raise InputError(f"no study storage at {file} (paths.mlruns_dir, search.storage): run rnn-sweep first")
    dashboard = Path(sys.executable).parent / "optuna-dashboard"
    return [sys.executable, str(dashboard), url, "--host", cfg.tracking.ui_host, "--port", str(port)]  # this interpreter, whatever the script's #! says


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="sweep")
def dashboard_main(cfg: DictConfig) -> None:
    """rnn-dashboard: optuna-dashboard on tracking.ui_host:search.dashboard_port over the study storage."""
    with exit_on_input_error():
        config.check(cfg)
        command = dashboard_command(cfg)
    print(" ".join(redact(part) for part in command), file=sys.stderr)
    print(f"open http://{cfg.tracking.ui_host}:{cfg.search.dashboard_port}", file=sys.stderr)
    os.execv(command[0], command)

