"""The tracking layer: where results are kept. MLflow runs and what each records (mlflow_runs), the
stores and their checks (stores), claims that make concurrent invocations do a piece of work once
(claims), the prepared data as MLflow datasets (datasets), the model registry (registry) and
predictions from a logged or registered model (predict). Imports every layer below training.
"""
