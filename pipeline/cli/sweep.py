"""rnn-sweep: an Optuna search over architecture, dropout and learning rate, tracked in MLflow."""

import sys

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from pipeline.config import space
from pipeline.cli.entry import command
from pipeline.core import signals


def sweep(cfg: DictConfig) -> int:
    # freeze ${oc.env:...} now: MLflow sets MLFLOW_TRACKING_URI once configured
    OmegaConf.resolve(cfg)
    # before TensorFlow and MLflow: at once
    space.check_sweep(cfg, list(HydraConfig.get().overrides.task))
    from pipeline.tracking import stores

    stores.probe_sweep(cfg)  # a store that cannot be used stops here, before TensorFlow loads
    from pipeline.search import workers
    from pipeline.search.sweep import EXIT_WORKER_DIED, run_sweep

    with signals.stop_on_signals():
        try:
            code = run_sweep(cfg, list(HydraConfig.get().overrides.task), checked=True)
            # a signal during the final report: the work is saved, the exit code says so
            signals.check()
        except signals.Interrupted as stop:
            print(
                f"{stop}: stopped cleanly (a trial it cut short is FAIL, no MLflow run is left "
                "RUNNING); run the same command to continue",
                file=sys.stderr,
            )
            code = stop.exit_code
        # the summary is printed; the pool's workers are gone
        except workers.WorkerDied as died:
            print(
                f"error: {died}; the invocation's running trials are FAIL, their MLflow runs "
                "KILLED; run the same command to continue",
                file=sys.stderr,
            )
            code = EXIT_WORKER_DIED
    if code:
        raise SystemExit(code)
    return code


cli = command(
    "rnn-sweep",
    "sweep",
    sweep,
    settings=[
        "search.n_trials",
        "search.n_workers",
        "search.objective",
        "search.timeout",
        "search.storage",
        "train.epochs",
        "data.subset",
        "data.path",
    ],
    examples=[
        "rnn-sweep search=quick data=sentences",
        "rnn-sweep model=gru data=imdb search.n_trials=40",
        "rnn-sweep data=table data.path=topics.csv data.label_column=topic",
    ],
)

if __name__ == "__main__":
    cli()
