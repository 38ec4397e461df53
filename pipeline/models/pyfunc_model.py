"""The logged MLflow model's code (MLflow's "models from code"): MLflow runs this file to build the
pyfunc."""

import mlflow

from pipeline.models.export import TextClassifier

mlflow.models.set_model(TextClassifier())
