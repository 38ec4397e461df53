"""The sweep's winner in the MLflow Model Registry: a version of `search.register_as` with the alias
`champion`.

`models:/NAME@champion` then always names the current winner: `mlflow models serve -m
models:/NAME@champion`, `rnn-predict predict.model=models:/NAME@champion`. A later invocation that
keeps the same winner adds no version.
"""

import contextlib
import io
import logging

import mlflow
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig

from pipeline.tracking.claims import Claims
from pipeline.core.names import Attr

log = logging.getLogger(__name__)
CHAMPION = "champion"  # the alias of the winning version


def register_winner(
    search_cfg: DictConfig, trial, claims: Claims, description: str = ""
) -> str | None:
    """Register the winning trial's logged model and point `champion` at it; return
    `models:/NAME@champion`. `description`: the version's text in the registry (its scores). Under a
    claim on the name in the study's storage: invocations that finish together add one version."""
    name = search_cfg.register_as
    model_id = trial.user_attrs.get(Attr.mlflow_model_id)
    if not name:
        return None
    if not model_id:
        log.warning(
            "trial %d has no logged model (train.log_model=false): nothing registered as %r",
            trial.number,
            name,
        )
        return None
    with claims.hold(f"registered model/{name}", wait=True):
        return register(search_cfg, trial, name, model_id, description)


def register(search_cfg: DictConfig, trial, name: str, model_id: str, description: str = "") -> str:
    client = mlflow.MlflowClient()
    current = champion(client, name)
    if current is not None and logged_model_of(current) == model_id:
        log.info(
            "models:/%s@%s is already trial %d's model (version %s)",
            name,
            CHAMPION,
            trial.number,
            current.version,
        )
        return f"models:/{name}@{CHAMPION}"
    tags = {"study": search_cfg.study_name, "trial": str(trial.number)}
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):  # MLflow prints "Successfully registered model"
            version = mlflow.register_model(f"models:/{model_id}", name, tags=tags)
    finally:  # what it printed goes to the log file, even when it failed
        log.info("MLflow: %s", " ".join(said.getvalue().split()))
    if description:
        client.update_model_version(name, version.version, description=description)
    client.set_registered_model_alias(name, CHAMPION, version.version)
    log.info(
        "registered trial %d's model as %s version %s, alias %s",
        trial.number,
        name,
        version.version,
        CHAMPION,
    )
    return f"models:/{name}@{CHAMPION}"


def champion(client: mlflow.MlflowClient, name: str):
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:  # no such model yet, or no version with the alias
        return None


def logged_model_of(version) -> str | None:
    """The LoggedModel id a registry version was made from (the sqlite store leaves version.model_id
    empty)."""
    return version.model_id or (
        version.source.removeprefix("models:/") if version.source.startswith("models:/") else None
    )
