"""The data layer: a corpus read from its source (the IMDB archive, the UCI sentences, a table of
your own), split, vectorized once on the training texts and cached (texts), and batched by length
(batching). Imports pipeline.core and pipeline.config.
"""

from pipeline.core.startup import import_tensorflow_quietly

import_tensorflow_quietly()  # before any module of this layer imports TensorFlow or Keras
