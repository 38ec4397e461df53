"""rnn-sweep: an Optuna search over architecture, dropout and learning rate, tracked in MLflow."""

import sys

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from pipeline import config
from pipeline.cli.entry import command
from pipeline.core import signals


def sweep(cfg: DictConfig) -> int:
    OmegaConf.resolve(cfg)  # freeze ${oc.env:...} now: MLflow sets MLFLOW_TRACKING_URI once configured
    config.check(cfg)  # before TensorFlow and MLflow are imported: a bad value answers at once
    from pipeline.search import workers
    from pipeline.search.sweep import EXIT_WORKER_DIED, run_sweep

    with signals.stop_on_signals():
        try:
            code = run_sweep(cfg, list(HydraConfig.get().overrides.task), checked=True)
            signals.check()  # a signal during the final report: the work is saved, the exit code says so
        except signals.Interrupted as stop:
            print(f"{stop}: stopped cleanly (a trial it cut short is FAIL, no MLflow run is left "
                  "RUNNING); run the same command to continue", file=sys.stderr)
            code = stop.exit_code
        except workers.WorkerDied as died:  # the summary is printed; the others finished their trials
            print(f"error: {died}; its trial is FAIL, its MLflow run KILLED; run the same command to "
                  "continue", file=sys.stderr)
            code = EXIT_WORKER_DIED
    if code:
        raise SystemExit(code)
    return code


cli = command("sweep", sweep)

if __name__ == "__main__":
    cli()
