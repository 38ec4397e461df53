"""rnn-predict: labels and class probabilities for new texts, from a registered or logged model."""

from omegaconf import DictConfig, OmegaConf

from pipeline import config
from pipeline.cli.entry import command


def predict(cfg: DictConfig) -> None:
    OmegaConf.resolve(cfg)
    config.check(cfg)  # before MLflow and TensorFlow are imported: a bad value answers at once
    OmegaConf.set_readonly(cfg, True)  # checked: never changed after
    from pipeline.tracking.predict import run_predict

    run_predict(cfg)


cli = command(
    "rnn-predict",
    "predict",
    predict,
    settings=[
        "predict.model",
        "predict.texts",
        "predict.input",
        "predict.column",
        "predict.output",
    ],
    examples=[
        "rnn-predict predict.model=models:/quick-sentences@champion 'predict.texts=[\"a great "
        "film\"]'",
        "rnn-predict predict.model=RUN_ID predict.input=reviews.csv predict.output=scores.csv",
    ],
)

if __name__ == "__main__":
    cli()
