"""rnn-lr-find: a learning-rate range test, recorded as one MLflow run with its curve."""

from omegaconf import DictConfig, OmegaConf

from pipeline import config
from pipeline.cli.entry import command
from pipeline.core import signals


def lr_find(cfg: DictConfig) -> None:
    # freeze ${oc.env:...} now: MLflow sets MLFLOW_TRACKING_URI once configured
    OmegaConf.resolve(cfg)
    config.check(cfg)  # before TensorFlow and MLflow are imported: a bad value answers at once
    from pipeline.training.lr_find import run_lr_find

    signals.run_one(lambda checked_cfg: run_lr_find(checked_cfg, checked=True), cfg)


cli = command(
    "rnn-lr-find",
    "lr_find",
    lr_find,
    settings=["lr_find.start_lr", "lr_find.end_lr", "lr_find.steps", "data.subset"],
    examples=["rnn-lr-find data=sentences model=gru optimizer=rmsprop"],
)

if __name__ == "__main__":
    cli()
