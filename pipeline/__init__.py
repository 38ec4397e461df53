"""rnnsweep: hyperparameter sweeps for recurrent text classifiers.

The data's path through the package: config (conf/) -> data -> model -> train -> sweep -> report,
with tracking (MLflow) alongside.
"""

import os
import re
from pathlib import Path

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")  # absolute, so the apps run from any directory

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter off the terminal

from omegaconf import OmegaConf  # noqa: E402


MONITORED = ("val_accuracy", "val_loss", "accuracy", "loss", "val_macro_f1", "macro_f1")  # a best epoch's metric


def higher_is_better(metric: str) -> bool:
    """Accuracies and F1 are maximized, losses minimized: the direction follows from the metric, it is no setting."""
    return "accuracy" in metric or "f1" in metric


# ${best_mode:val_accuracy} = max: Keras' word for the direction of a monitored metric (EarlyStopping's mode)
OmegaConf.register_new_resolver("best_mode", lambda metric: "max" if higher_is_better(metric) else "min", replace=True)



def data_label(name: str, target: str | None = None, path: str | None = None) -> str:
    """What a study's default name says of its data: the data set (a table: its file's stem), and the target
    when it is not sentiment, so that a sweep of other labels or another file never resumes this one's study."""
    label = re.sub(r"[^\w.-]+", "_", Path(str(path)).stem) if name == "table" and path else name
    return label if target in (None, "sentiment") else f"{label}_{target}"


# ${data_label:${data.name},...}: conf/base/search.yaml's default study name
OmegaConf.register_new_resolver("data_label", data_label, replace=True)

from pipeline import schema  # noqa: E402

schema.register()  # the config groups' typed bases (Hydra's ConfigStore), before anything composes conf/

from pipeline.startup import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()  # and the start-up lines TensorFlow prints whatever TF_CPP_MIN_LOG_LEVEL says
