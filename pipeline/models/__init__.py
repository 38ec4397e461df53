"""The models layer: the zoo of Keras bodies (zoo), the head, loss and scores of a K-class
classifier (scores), and the string-in model that is exported and registered, with its MLflow pyfunc
wrapper (export, pyfunc_model). Imports pipeline.core, pipeline.config and pipeline.data.
"""

from pipeline.core.startup import import_tensorflow_quietly

import_tensorflow_quietly()  # before any module of this layer imports TensorFlow or Keras
