"""Seconds to log one trained model per run: the MLflow model of pipeline/models/export.py against the plain .keras artifact.

    python benchmarks/model_logging.py            # pooling and GRU on the UCI sentences, 5 logs each way
    python benchmarks/model_logging.py --tiny     # CI: pooling only, 2 logs each way

Each way logs the same trained model into its own run of a fresh sqlite store that already holds the run's
per-epoch metrics (as a trial's run does). "plain .keras" is what rnnsweep logged before issue 12;
"pyfunc with serving check" is `mlflow.pyfunc.log_model`, which loads the logged model and predicts the input
example again; rnnsweep skips that check per trial (tests/test_registry.py serves the model for real).
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import mlflow

from pipeline.models import export
from pipeline.config import compose
from pipeline.data.texts import prepare_data
from pipeline.training.train import train_model


def plain_keras(model, data, cfg) -> None:
    with tempfile.TemporaryDirectory() as folder:
        model.save(Path(folder) / "model.keras")
        mlflow.log_artifact(str(Path(folder) / "model.keras"))


def exported(model, data, cfg) -> None:
    export.log_model(model, data, cfg.data, best_epoch=1)


def pyfunc_with_serving_check(model, data, cfg) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / export.KERAS_FILE
        export.exported_model(model, data, cfg.data).save(path)
        mlflow.pyfunc.log_model(
            name=export.MODEL_NAME,
            python_model=str(Path(export.__file__).with_name("pyfunc_model.py")),
            artifacts={"keras_model": str(path)},
            code_paths=[str(Path(export.__file__).parent)],
            signature=export.signature(True),
            input_example=export.input_example(data, True),
            pip_requirements=export.requirements(),
            step=1,
        )


WAYS = {
    "plain .keras (before)": plain_keras,
    "MLflow model (now)": exported,
    "pyfunc with serving check": pyfunc_with_serving_check,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    models = ["pooling"] if args.tiny else ["pooling", "gru"]
    repeat = 2 if args.tiny else args.repeat
    print("| model | way | seconds per log: median (min, max) |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
        mlflow.set_experiment("model-logging")
        for name in models:
            cfg = compose(
                [
                    "data=sentences",
                    f"model={name}",
                    "train.epochs=2",
                    "train.verbose=0",
                    "data.max_len=40",
                ]
            )
            data = prepare_data(cfg.data, cfg.paths.cache_dir)
            model = train_model(cfg, data).model
            for way, log in WAYS.items():
                seconds = []
                for _ in range(repeat):
                    with mlflow.start_run():
                        mlflow.log_metrics(
                            {"loss": 0.6, "val_loss": 0.6, "accuracy": 0.5, "val_accuracy": 0.5},
                            step=1,
                        )
                        started = time.perf_counter()
                        log(model, data, cfg)
                        seconds.append(time.perf_counter() - started)
                print(
                    f"| {name} | {way} | {statistics.median(seconds):.3f} ({min(seconds):.3f}, {max(seconds):.3f}) |"
                )


if __name__ == "__main__":
    main()
