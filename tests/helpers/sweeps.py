"""Running a sweep in this process and reading the study and the MLflow runs it left."""

from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient

from pipeline.search.sweep import compose, run_sweep


def sweep(overrides: list[str]) -> int:
    return run_sweep(compose(overrides), overrides)


def study_of(overrides: list[str]) -> optuna.Study:
    cfg = compose(overrides)
    return optuna.load_study(
        study_name=cfg.search.study_name,
        storage=f"sqlite:///{Path(cfg.paths.mlruns_dir) / 'optuna.db'}",
    )


def runs_of(overrides: list[str]):
    cfg = compose(overrides)
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def assert_every_trial_has_its_chart(client, children) -> None:
    """The chart process drew each trial's learning curves into the trial's own run (a PNG), titled with its trial."""
    for child in children:
        folder = client.download_artifacts(child.info.run_id, "learning_curves.png")
        assert Path(folder).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", child.data.tags[
            "trial_number"
        ]
