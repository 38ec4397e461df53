"""rnn-train: one model trained once on one config, recorded as one MLflow run."""

from omegaconf import DictConfig, OmegaConf

from pipeline import config
from pipeline.cli.entry import command
from pipeline.core import signals


def train(cfg: DictConfig) -> None:
    # freeze ${oc.env:...} now: MLflow sets MLFLOW_TRACKING_URI once configured
    OmegaConf.resolve(cfg)
    config.check(cfg)  # before TensorFlow and MLflow are imported: a bad value answers at once
    from pipeline.training.train import run_training

    signals.run_one(lambda checked_cfg: run_training(checked_cfg, checked=True), cfg)


cli = command(
    "rnn-train",
    "train",
    train,
    settings=[
        "train.epochs",
        "train.batch_size",
        "optimizer.learning_rate",
        "model.units",
        "model.dropout",
        "data.subset",
        "data.path",
    ],
    examples=[
        "rnn-train data=sentences model=gru",
        "rnn-train optimizer.learning_rate=0.01 train.epochs=10",
    ],
)

if __name__ == "__main__":
    cli()
