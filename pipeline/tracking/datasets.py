"""The prepared splits as MLflow datasets: the runs table's Dataset column, one digest per data
config.

The digest is the vector-cache key (pipeline.data.cache_key): two runs on the same data settings and
source files show the same digest, and it names the cache file that holds the arrays.
"""

import re
import time

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.data.dataset_source_registry import get_registered_sources
from mlflow.data.http_dataset_source import HTTPDatasetSource
from mlflow.entities import Dataset as DatasetEntity, DatasetInput, InputTag
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT
from omegaconf import DictConfig

from pipeline.data.texts import cache_key

DATASET_TRIES = 5
SAME_DATASET_AT_ONCE = re.compile(
    r"dataset_pk|UNIQUE constraint failed: datasets|duplicate key value", re.I
)
# Dataset's split -> MLflow's input context
SPLITS = {"train": "training", "val": "validation", "test": "test"}


def source_of(data_cfg: DictConfig):
    """Where the texts came from: the user's file or folder, or the download URL."""
    local = data_cfg.get("path") or data_cfg.get("local_dir")
    if local:  # MLflow makes its local-file source class at import time: found by name
        local_source = next(
            source
            for source in get_registered_sources()
            if source.__name__ == "LocalArtifactDatasetSource"
        )
        return local_source(str(local))
    return HTTPDatasetSource(data_cfg.url)


def split_dataset(data, data_cfg: DictConfig, split: str, key: str):
    x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
    return mlflow.data.from_numpy(
        features=x,
        targets=y,
        source=source_of(data_cfg),
        name=f"{data_cfg.name}-{split}",
        digest=key,
    )


def dataset_inputs(data, data_cfg: DictConfig, splits) -> list[DatasetInput]:
    key = cache_key(data_cfg)
    inputs = []
    for split in splits:
        entity = DatasetEntity(**split_dataset(data, data_cfg, split, key).to_dict())
        inputs.append(DatasetInput(entity, tags=[InputTag(MLFLOW_DATASET_CONTEXT, SPLITS[split])]))
    return inputs


def log_datasets(data, data_cfg: DictConfig, splits, run_id: str | None = None) -> None:
    """Log `splits` of the prepared data as inputs of `run_id` (the active run by default), one
    call.

    Invocations that log the same new dataset at once race in the store: the one whose INSERT comes
    second fails on the unique key, although the dataset it wanted now exists. It logs again."""
    run_id = run_id or mlflow.active_run().info.run_id
    inputs = dataset_inputs(data, data_cfg, splits)
    for attempt in range(1, DATASET_TRIES + 1):
        try:
            mlflow.MlflowClient().log_inputs(run_id, datasets=inputs)
            return
        except MlflowException as error:
            if attempt == DATASET_TRIES or not SAME_DATASET_AT_ONCE.search(str(error)):
                raise
            time.sleep(0.1 * attempt)
