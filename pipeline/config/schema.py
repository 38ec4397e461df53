"""The config's types: one dataclass per config group, registered in Hydra's ConfigStore as `schema/<group>`,
the base of conf/base/<group>.yaml, which every preset of the group extends (Hydra's structured-config schema
pattern; kept out of the group folders so that neither shows up as a preset).

Values and their one-line comments live in conf/; these classes only say which keys exist and their type,
so Hydra rejects `model.units=true` or `train.epochs=abc` while composing. Ranges and allowed values are
checked by the table in pipeline/config.py. Optimizer and callbacks are free-form Hydra `_target_` nodes.
"""

import dataclasses
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclasses.dataclass
class PathsConfig:
    cache_dir: str = MISSING
    mlruns_dir: str = MISSING
    log_dir: str = MISSING


@dataclasses.dataclass
class DataConfig:
    name: str = MISSING
    vocab_size: int = MISSING
    max_len: int = MISSING
    truncate: str = MISSING
    padding: str = MISSING
    val_split: float = MISSING
    split_seed: int = MISSING
    subset: Optional[int] = MISSING


@dataclasses.dataclass
class ImdbData(DataConfig):
    url: str = MISSING
    sha256: Optional[str] = MISSING
    encoding: str = MISSING
    target: str = MISSING


@dataclasses.dataclass
class KerasImdbData(DataConfig):
    url: str = MISSING
    sha256: Optional[str] = MISSING


@dataclasses.dataclass
class SentencesData(DataConfig):
    url: str = MISSING
    local_dir: Optional[str] = MISSING
    sources: list[str] = MISSING
    encoding: str = MISSING
    test_split: float = MISSING
    target: str = MISSING


@dataclasses.dataclass
class TableData(DataConfig):
    path: str = MISSING
    val_path: Optional[str] = MISSING
    test_path: Optional[str] = MISSING
    format: str = MISSING
    sep: Optional[str] = MISSING
    header: bool = MISSING
    text_column: Any = MISSING  # a name, or a position when header is false
    label_column: Any = MISSING
    label_map: Any = MISSING  # null, or {raw label: class index 0..K-1}
    encoding: str = MISSING
    test_split: float = MISSING


@dataclasses.dataclass
class EmbeddingConfig:
    vectors: Optional[str] = MISSING  # a word-vector file, or null: learned from scratch
    trainable: bool = MISSING


@dataclasses.dataclass
class ModelConfig:
    body: str = MISSING
    pooling: str = MISSING
    mask_padding: bool = MISSING
    embedding_dim: int = MISSING
    units: int = MISSING
    num_layers: int = MISSING
    bidirectional: bool = MISSING
    dropout: float = MISSING
    recurrent_dropout: float = MISSING
    head_units: int = MISSING
    embedding: EmbeddingConfig = dataclasses.field(default_factory=EmbeddingConfig)


@dataclasses.dataclass
class ThreadsConfig:
    intra_op: int = MISSING
    inter_op: int = MISSING


@dataclasses.dataclass
class TrainConfig:
    epochs: int = MISSING
    batch_size: int = MISSING
    seed: int = MISSING
    monitor: str = MISSING
    shuffle: bool = MISSING
    length_buckets: bool = MISSING
    bucket_pool: int = MISSING
    evaluate_test: bool = MISSING
    plateau_tolerance: float = MISSING
    chance_tolerance: float = MISSING
    divergence_factor: float = MISSING
    verbose: int = MISSING
    log_model: bool = MISSING
    log_gradients: bool = MISSING
    threads: ThreadsConfig = dataclasses.field(default_factory=ThreadsConfig)


@dataclasses.dataclass
class LrFindConfig:
    start_lr: float = MISSING
    end_lr: float = MISSING
    steps: int = MISSING
    smoothing: float = MISSING
    start_steps: int = MISSING
    tolerance: float = MISSING
    divergence: float = MISSING


@dataclasses.dataclass
class TrackingConfig:
    uri: Optional[str] = MISSING
    experiment: str = MISSING
    run_name: Optional[str] = MISSING
    ui_host: str = MISSING
    ui_port: int = MISSING


@dataclasses.dataclass
class SearchConfig:
    name: str = MISSING
    study_name: str = MISSING
    storage: Optional[str] = MISSING
    n_trials: int = MISSING
    n_workers: Any = MISSING  # an integer >= 1, or auto
    worker_max_trials: Optional[int] = MISSING
    timeout: Optional[Any] = MISSING  # seconds, an integer or a float
    max_total_trials: Optional[int] = MISSING
    sampler: str = MISSING
    samplers: dict[str, Any] = MISSING  # name -> Hydra node with _target_ (any Optuna sampler)
    baseline_first: bool = MISSING
    portfolio: list[Any] = MISSING  # each a mapping of search.space names to values
    warm_start_from: Optional[str] = MISSING
    warm_start_storage: Optional[str] = MISSING
    warm_start_top_k: int = MISSING
    cost_guard: Optional[float] = MISSING
    cost_guard_trials: int = MISSING
    seed: int = MISSING
    pruner: str = MISSING
    pruners: dict[str, Any] = MISSING  # name -> Hydra node with _target_ (any Optuna pruner)
    pruner_startup_trials: int = MISSING
    pruner_warmup_epochs: int = MISSING
    pruner_patience: int = MISSING
    objective: str = MISSING
    direction: str = MISSING
    second_objective: Optional[str] = MISSING
    confirm_top_k: int = MISSING
    confirm_seeds: int = MISSING
    cv_folds: Any = MISSING  # auto, or an integer from 1 to 20
    cv_auto_below: int = MISSING
    register_as: Optional[str] = MISSING
    heartbeat_seconds: int = MISSING
    grace_seconds: int = MISSING
    max_retry: int = MISSING
    show_progress_bar: bool = MISSING
    dashboard_port: int = MISSING
    lr_range: Optional[str] = MISSING
    space: dict[str, Any] = MISSING  # name -> {path, type, low, high, log, step, choices, when}


@dataclasses.dataclass
class VectorsConfig:
    output: Optional[str] = MISSING
    dim: int = MISSING
    window: int = MISSING
    min_count: int = MISSING
    epochs: int = MISSING
    skip_gram: bool = MISSING
    threads: int = MISSING
    seed: int = MISSING


SCHEMAS = {
    "paths": PathsConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "tracking": TrackingConfig,
    "search": SearchConfig,
    "lr_find": LrFindConfig,
}
# the data group has one schema per loader (schema/data_imdb, ...), each the base of its preset
DATA_SCHEMAS = {
    "imdb": ImdbData,
    "keras_imdb": KerasImdbData,
    "sentences": SentencesData,
    "table": TableData,
}
# the settings of a command beside training (rnn-vectors): no training config has them
COMMAND_SCHEMAS = {"vectors": VectorsConfig}


def register() -> None:
    store = ConfigStore.instance()
    for group, schema in {**SCHEMAS, **COMMAND_SCHEMAS}.items():
        store.store(group="schema", name=group, node=schema)
    for loader, schema in DATA_SCHEMAS.items():
        store.store(group="schema", name=f"data_{loader}", node=schema)


def schema_keys() -> frozenset[str]:
    """Every dotted key the schemas declare (free-form dict keys excluded): the keys rnnsweep reads."""
    keys = set()
    data = [("data", schema) for schema in DATA_SCHEMAS.values()]
    for group, schema in [*SCHEMAS.items(), *COMMAND_SCHEMAS.items(), *data]:
        keys |= {group, *(f"{group}.{key}" for key in fields_of(schema))}
    return frozenset(keys | {"seed", "optimizer", "callbacks"})


def fields_of(schema, prefix: str = ""):
    for field in dataclasses.fields(schema):
        yield f"{prefix}{field.name}"
        if dataclasses.is_dataclass(field.type):
            yield from fields_of(field.type, f"{prefix}{field.name}.")
