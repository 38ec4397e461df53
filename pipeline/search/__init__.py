"""The search layer: the Optuna study and its sampler and pruner (study), the objective that turns a
trial into a training run (objective), the cost guard, warm starts and portfolios, worker processes,
seed confirmation, the learning-rate range of the space (lr_range) and the sweep itself (sweep).
Imports every layer below cli.
"""

from pipeline.core.startup import import_tensorflow_quietly

import_tensorflow_quietly()  # before any module of this layer imports TensorFlow or Keras
