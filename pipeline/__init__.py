"""rnnsweep: hyperparameter sweeps for recurrent text classifiers.

Subpackages follow the data's path; each imports only the ones listed before it:

- core: errors and exit codes, secrets kept out of output, signals, the names of figures, one
  ranking order
- config: compose conf/ with Hydra and check it once; the schemas, the allowed values, the search
  space
- data: read a corpus, vectorize it once, cache it; length-bucketed batches
- models: the model zoo, the scores of a K-class head, the exported string-in model
- report: the sweep's summary, its charts and the plateau diagnosis (text and matplotlib)
- tracking: MLflow runs, the stores and their checks, claims, the model registry, predictions
- training: one training run, its figures and cross-validation folds; the learning-rate range test
- search: the Optuna study, its objective, workers, warm start, seed confirmation
- cli: the console commands (rnn-sweep, rnn-train, ...): thin; nothing heavy before the config is
  checked

`import pipeline` imports no TensorFlow, Keras, MLflow or matplotlib (tests/test_layers.py).
"""

import os
from pathlib import Path

# absolute: the apps run from any directory
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")

# 3: TensorFlow's C++ log lines stay off the terminal, the ERROR line "oneDNN supports DT_BOOL only
# on platforms with AVX-512" too (a notice that it falls back to Eigen, printed at a masked model's
# first step)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
