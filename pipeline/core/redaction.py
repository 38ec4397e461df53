"""Passwords never leave the process: hidden in every log record, traceback and file Hydra keeps of
a run.

A storage or tracking URL may carry a password (`postgresql://user:PASSWORD@host/db`, or
`?password=`). `redact` hides it; `install_log_redaction` applies it to every log record of the
process (root logger, Optuna's and MLflow's own handlers, the log file), and `save_hydra_files`
writes the run folder's `.hydra/` files redacted: Hydra's own copies are turned off
(`hydra.output_subdir: null` in conf/), because Hydra writes them in plain text before any code of
ours runs.
"""

import logging
import re
from pathlib import Path

from omegaconf import OmegaConf

# up to the last @: a password may hold one
SECRET_IN_URL = re.compile(r"(?P<scheme>\w[\w+.-]*://)(?P<user>[^:/@\s]*):(?P<password>\S+)@")
SECRET_PARAMETER = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd)=)(?P<password>[^&\s'\"]+)", re.IGNORECASE
)
HIDDEN = "***"


def redact(text: str) -> str:
    """Hide the password of any URL inside `text` (storage and tracking URLs may carry one)."""
    text = SECRET_IN_URL.sub(rf"\g<scheme>\g<user>:{HIDDEN}@", text)
    return SECRET_PARAMETER.sub(rf"\g<key>{HIDDEN}", text)


def install_log_redaction() -> None:
    """Every log record made from now on, by any logger, has its message and traceback redacted.

    A record factory, not a filter on some handlers: Optuna and MLflow log through handlers of their
    own (not the root logger's), and a handler added later is covered too.
    """
    factory = logging.getLogRecordFactory()
    if getattr(factory, "redacts", False):
        return

    def redacted_record(*args, **kwargs) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it when the record is emitted
            return record
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        hidden = [
            redact(part) if part else part for part in (message, record.exc_text, record.stack_info)
        ]
        if hidden != [message, record.exc_text, record.stack_info]:
            record.msg, record.args = hidden[0], ()
            record.exc_text, record.stack_info = hidden[1], hidden[2]
        return record

    redacted_record.redacts = True
    logging.setLogRecordFactory(redacted_record)


def save_hydra_files(task_cfg) -> None:
    """config.yaml, hydra.yaml and overrides.yaml in `<run dir>/.hydra/`, as Hydra writes them, but
    redacted.

    In a multirun, the sweep folder's multirun.yaml (which Hydra's sweeper writes itself) is
    redacted in place.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():  # a task function called without Hydra (tests)
        return
    hydra_cfg = HydraConfig.instance().cfg  # {"hydra": ...}, as Hydra saves it in hydra.yaml
    hydra = hydra_cfg.hydra
    folder = Path(hydra.runtime.output_dir) / (hydra.output_subdir or ".hydra")
    folder.mkdir(parents=True, exist_ok=True)
    for name, node in {
        "config.yaml": task_cfg,
        "hydra.yaml": hydra_cfg,
        "overrides.yaml": hydra.overrides.task,
    }.items():
        (folder / name).write_text(redact(OmegaConf.to_yaml(node)), encoding="utf-8")
    if hydra.mode == RunMode.MULTIRUN:
        multirun = Path(hydra.sweep.dir) / "multirun.yaml"
        if multirun.is_file():
            multirun.write_text(redact(multirun.read_text(encoding="utf-8")), encoding="utf-8")
