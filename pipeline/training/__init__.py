"""The training layer: one model trained on one config, with its per-epoch figures, plateau figures
and best epoch (train), the gradient signal (gradients), cross-validation folds (folds) and the
learning-rate range test (lr_find). Imports every layer below search.
"""

from pipeline.core.startup import import_tensorflow_quietly

import_tensorflow_quietly()  # before any module of this layer imports TensorFlow or Keras
