"""rnn-predict: labels and class probabilities for new texts, from a registered or logged model."""

from omegaconf import DictConfig, OmegaConf

from pipeline.cli.entry import command


def predict(cfg: DictConfig) -> None:
    OmegaConf.resolve(cfg)
    from pipeline.tracking.predict import run_predict

    run_predict(cfg)


cli = command("predict", predict)

if __name__ == "__main__":
    cli()
