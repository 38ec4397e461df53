"""rnnsweep: hyperparameter sweeps for recurrent text classifiers.

The data's path through the package: config (conf/) -> data -> model -> train -> sweep -> report,
with tracking (MLflow) alongside.
"""

import os
from pathlib import Path

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")  # absolute, so the apps run from any directory

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter off the terminal
