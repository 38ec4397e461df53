"""The config layer: conf/ composed the way the command line does (Hydra), and checked once, here.

Owns: `compose` and `check` (this module), the typed schemas (schema.py), the allowed values that
heavier layers build from (choices.py), and the search space (space.py). Types come from the
schemas (Hydra rejects a wrong type while composing; `explain` turns its many lines into one); ranges
and allowed values from the table RULES; the rules between values from CROSS_CHECKS. `check` runs
once per entry point and once per sweep trial. Imports only pipeline.core, Hydra and OmegaConf: a
bad command line is answered before TensorFlow, MLflow or matplotlib is loaded.
"""

import codecs
import contextlib
import copy
import dataclasses
import functools
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra._internal.config_loader_impl import (
    ConfigLoaderImpl,
)  # its override step: what compose does after the groups
from hydra._internal.config_search_path_impl import ConfigSearchPathImpl
from hydra._internal.hydra import Hydra
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from pipeline import CONFIG_DIR
from pipeline.config import schema
from pipeline.config.choices import (
    BODIES,
    LOADER_NAMES,
    PADDING_SIDES,
    POOLINGS,
    SENTENCE_FILES,
    TARGETS,
    TRUNCATE_SIDES,
)
from pipeline.config.schema import schema_keys
from pipeline.core.errors import InputError
from pipeline.core.names import MONITORED, higher_is_better


def data_label(name: str, target: str | None = None, path: str | None = None) -> str:
    """What a study's default name says of its data: the data set (a table: its file's stem), and the
    target when it is not sentiment, so that a sweep of other labels or another file never resumes
    this one's study."""
    label = re.sub(r"[^\w.-]+", "_", Path(str(path)).stem) if name == "table" and path else name
    return label if target in (None, "sentiment") else f"{label}_{target}"


def body_label(space, body: str) -> str:
    """What a study's default name says of the model: '-gru' when the search keeps the preset's body,
    nothing when it searches the body itself (a study of pooling, GRU and LSTM is no '-lstm' study)."""
    entries = space.values() if isinstance(space, DictConfig) else []
    searched = any(
        isinstance(entry, DictConfig) and entry.get("path") in ("model", "model.body")
        for entry in entries
    )
    return "" if searched else f"-{body}"


def vectors_label(path: str | None) -> str:
    """What a study's default name says of the word vectors it starts from: '-glove.6B.100d' for
    a file (a study keeps the file it was made with), nothing without one."""
    if path is None:
        return ""
    stem = Path(str(path)).name.removesuffix(".gz").rsplit(".", 1)[0]
    return "-" + re.sub(r"[^\w.-]+", "_", stem)


# ${best_mode:val_accuracy} = max: Keras' word for the direction of a monitored metric
OmegaConf.register_new_resolver(
    "best_mode", lambda metric: "max" if higher_is_better(metric) else "min", replace=True
)
# ${data_label:${data.name},...}: conf/base/search.yaml's default study name
OmegaConf.register_new_resolver("data_label", data_label, replace=True)
# ${body_label:${search.space},${model.body}}: the same name's model part
OmegaConf.register_new_resolver("body_label", body_label, replace=True)
# ${vectors_label:${model.embedding.vectors}}: the same name's word-vector part
OmegaConf.register_new_resolver("vectors_label", vectors_label, replace=True)
schema.register()  # the config groups' typed bases (Hydra's ConfigStore), before anything composes conf/


def compose(overrides: list[str], config_name: str = "sweep", resolve: bool = True) -> DictConfig:
    """The config for these command-line overrides, composed by Hydra (interpolations resolved); a value of the
    wrong type or a bad override is one InputError line."""
    with composition_errors():
        with hydra_context():
            cfg = hydra.compose(config_name, overrides=overrides)
        if resolve:
            OmegaConf.resolve(cfg)
    return cfg


def compose_with_values(groups: list[str], values: list[str]) -> DictConfig:
    """compose(groups + values) for a sweep trial, faster: Hydra composes `groups` (every override that may choose
    a config group) once per distinct list, and each call applies `values` (key=value overrides only) to a copy
    the way Hydra's compose applies them, after the groups. ~10 ms instead of ~0.13 s per trial."""
    with composition_errors():
        cfg = copy.deepcopy(composed_unresolved(tuple(groups)))
        ConfigLoaderImpl._apply_overrides_to_config(
            OverridesParser.create().parse_overrides(values), cfg
        )
        OmegaConf.resolve(cfg)
    return cfg


@functools.lru_cache(maxsize=16)
def composed_unresolved(overrides: tuple[str, ...]) -> DictConfig:
    return compose(list(overrides), resolve=False)


@contextlib.contextmanager
def composition_errors():
    try:
        yield
    except HydraException as error:
        raise InputError(explain(hydra_error_text(error)) or " ".join(str(error).split())) from None


@contextlib.contextmanager
def hydra_context():
    """Hydra's config search path: the running app's, or conf/ when called from a library or a test."""
    if GlobalHydra.instance().is_initialized():
        yield
    else:
        with hydra.initialize_config_dir(CONFIG_DIR, version_base="1.3"):
            yield


def config_sources() -> list[dict[str, str]]:
    """The running app's config search path (conf/, --config-dir, --config-path, hydra.searchpath); [] outside one."""
    if not HydraConfig.initialized():
        return []
    return [
        {"provider": s.provider, "schema": s.schema, "path": s.path}
        for s in HydraConfig.get().runtime.config_sources
    ]


def use_config_sources(sources: list[dict[str, str]]) -> None:
    """Compose from `sources` (config_sources of the invoking app) in this process: a spawned worker then finds
    the presets of the user's own config folders, as its invoker did."""
    if not sources or GlobalHydra.instance().is_initialized():
        return
    Plugins.instance()  # registers Hydra's config source kinds (file, pkg, structured), as hydra.main does
    search_path = ConfigSearchPathImpl()
    for source in sources:
        search_path.append(source["provider"], f"{source['schema']}://{source['path']}")
    Hydra.create_main_hydra2("rnn-sweep", search_path)


def chosen_groups(overrides: list[str]) -> dict[str, str]:
    """Which option of each config group these overrides select, e.g. {"optimizer": "adam"}."""
    with hydra_context():
        cfg = hydra.compose("sweep", overrides=overrides, return_hydra_config=True)
    return OmegaConf.to_container(cfg.hydra.runtime.choices)


def override(path: str, value) -> str:
    """A Hydra override assigning `value` to `path`."""
    if isinstance(value, bool):
        return f"{path}={str(value).lower()}"
    if value is None:
        return f"{path}=null"
    return f"{path}={value}"


def quoted_override(path: str, text: str) -> str:
    """A Hydra override assigning the string `text` as it is (spaces, commas, colons and quotes included)."""
    return f"{path}='{text.replace(chr(39), chr(92) + chr(39))}'"


def group_options(group: str) -> list[str]:
    """The presets of a config group, e.g. optimizer: adam, rmsprop, sgd."""
    return sorted(path.stem for path in (Path(CONFIG_DIR) / group).glob("*.yaml"))


# ------------------------------------------------------------------------------------------ rules


@dataclasses.dataclass(frozen=True)
class Rule:
    """What one setting may hold; `needs` completes the message `key=value; needs`."""

    test: Callable[[Any], bool]
    needs: str
    quoted: bool = True  # show a bad string value in quotes (choices) or as typed (numbers)
    applies: Callable[[DictConfig], bool] = lambda cfg: True

    def message(self, key: str, value) -> str:
        if value is None or isinstance(value, bool):
            shown = yaml_word(value)
        else:
            shown = repr(value) if self.quoted else value
        return f"{key}={shown}{'' if self.needs.startswith(' ') else '; '}{self.needs}"


def is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite int or float: inf and nan are no setting, and neither is true, nor an int no float can hold."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except (
        OverflowError
    ):  # an int of over 308 digits: the traceback it gave was no one-line message
        return False


def is_path(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


def integer(low: int, high: int | None = None, nullable: bool = False, **kwargs) -> Rule:
    def test(value):
        return (nullable and value is None) or (
            is_integer(value) and value >= low and (high is None or value <= high)
        )

    needs = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"
    return Rule(test, f"it must be {'null or ' if nullable else ''}{needs}", **kwargs)


def one_of(*allowed, what: str = "", **kwargs) -> Rule:
    def test(value):  # of the same type too: true is not 1
        return any(value == option and type(value) is type(option) for option in allowed)

    return Rule(test, f"{what}allowed: {', '.join(map(yaml_word, allowed))}", **kwargs)


def yaml_word(value) -> str:
    """A value as it is written in conf/ and on the command line: null, true, 0.5, gru."""
    return (
        "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    )


BOOLEAN = Rule(lambda value: isinstance(value, bool), "allowed: true, false")
FRACTION = Rule(
    lambda value: is_number(value) and 0 <= value < 1, "it must lie in [0, 1)", quoted=False
)
POSITIVE = Rule(lambda value: is_number(value) and value > 0, "it must be a finite number > 0")
SHARE = Rule(
    lambda value: is_number(value) and 0 < value < 1,
    "it must lie strictly between 0 and 1",
    quoted=False,
)
MAX_TRIALS = 1_000_000_000  # the workers share the trials left in a C int: 2**32 + 1 wrapped to 1
recurrent = dict(
    applies=lambda cfg: cfg.model.body != "pooling"
)  # pooling has no recurrent layers to size

RULES: dict[
    str, Rule
] = {  # in this order: a sweep's settings first (train.monitor follows search.objective)
    "search.n_trials": integer(1, MAX_TRIALS),
    "search.n_workers": Rule(
        lambda value: value == "auto" or is_integer(value) and value >= 1,
        "it must be an integer >= 1, or auto (one worker per CPU core)",
    ),
    "search.timeout": Rule(
        lambda value: value is None or is_number(value) and value > 0,
        "it must be null or a finite number of seconds > 0",
        quoted=False,
    ),
    "search.max_total_trials": integer(1, nullable=True),
    "search.worker_max_trials": integer(1, nullable=True),
    "search.baseline_first": BOOLEAN,
    "search.warm_start_top_k": integer(1),
    "search.cost_guard": Rule(
        lambda value: value is None or is_number(value) and value > 1,
        "it must be null (off) or a finite number > 1: how many times the median epoch time",
        quoted=False,
    ),
    "search.cost_guard_trials": integer(1),
    "search.seed": integer(0),
    "search.pruner_startup_trials": integer(0),
    "search.pruner_warmup_epochs": integer(0),
    "search.pruner_patience": integer(0),
    "search.objective": one_of(*MONITORED),
    "search.direction": one_of("maximize", "minimize"),
    "search.second_objective": one_of(None, "fit_seconds"),
    "search.confirm_top_k": integer(0),
    "search.confirm_seeds": integer(0),
    "search.cv_folds": Rule(
        lambda value: value == "auto" or is_integer(value) and 1 <= value <= 20,
        "it must be auto, 1 (one validation split) or a number of folds from 2 to 20",
    ),
    "search.cv_auto_below": integer(0),
    "search.heartbeat_seconds": integer(1),
    "search.grace_seconds": integer(1),
    "search.max_retry": integer(0),
    "search.show_progress_bar": BOOLEAN,
    "search.dashboard_port": integer(1, 65535),
    "search.lr_range": one_of(None, "auto"),
    "search.samplers.tpe.n_startup_trials": integer(
        0
    ),  # the catalog's own TPE keys; others reach Optuna as given
    "search.samplers.tpe.multivariate": BOOLEAN,
    "search.samplers.tpe.constant_liar": BOOLEAN,
    "seed": integer(0),
    "data.name": one_of(*LOADER_NAMES, what=" is not a loader; "),
    "data.truncate": one_of(*TRUNCATE_SIDES),
    "data.padding": one_of(*PADDING_SIDES),
    "data.val_split": SHARE,
    "data.test_split": SHARE,
    "data.vocab_size": integer(3),
    "data.max_len": integer(3),
    "data.subset": integer(4, nullable=True),
    "data.split_seed": integer(0),
    "data.header": BOOLEAN,
    "model.body": one_of(*BODIES),
    "model.mask_padding": BOOLEAN,
    "model.pooling": one_of(*POOLINGS, applies=lambda cfg: cfg.model.body == "pooling"),
    "model.embedding_dim": integer(1),
    "model.units": integer(1, **recurrent),
    "model.num_layers": integer(1, **recurrent),
    "model.bidirectional": BOOLEAN,
    "model.head_units": integer(0),
    "model.dropout": FRACTION,
    "model.recurrent_dropout": FRACTION,
    "model.embedding.vectors": Rule(
        lambda value: value is None or is_path(value),
        "it must be null or the path of a word-vector file",
    ),
    "model.embedding.trainable": BOOLEAN,
    "optimizer.learning_rate": Rule(
        lambda value: is_number(value) and value > 0, "it must be a finite number > 0", quoted=False
    ),
    "optimizer.momentum": Rule(
        lambda value: isinstance(value, float) and 0 <= value <= 1,  # nan passed Keras' own check
        "it must be a number from 0.0 to 1.0, with its decimal point (Keras' SGD takes a float)",
        quoted=False,
    ),
    "train.epochs": integer(1),
    "train.batch_size": integer(1),
    "train.seed": Rule(is_integer, "it must be an integer"),
    "train.monitor": one_of(*MONITORED),
    "train.shuffle": BOOLEAN,
    "train.length_buckets": BOOLEAN,
    "train.bucket_pool": integer(1),
    "train.evaluate_test": BOOLEAN,
    "train.plateau_tolerance": FRACTION,
    "train.chance_tolerance": FRACTION,
    "train.divergence_factor": Rule(
        lambda value: is_number(value) and value > 1, "it must be a number > 1"
    ),
    "train.verbose": one_of(0, 1, 2),
    "train.log_model": BOOLEAN,
    "train.log_gradients": BOOLEAN,
    "train.threads.intra_op": integer(0),
    "train.threads.inter_op": integer(0),
    "lr_find.start_lr": POSITIVE,
    "lr_find.end_lr": POSITIVE,
    "lr_find.steps": integer(2),
    "lr_find.start_steps": integer(1),
    "lr_find.smoothing": FRACTION,
    "lr_find.tolerance": FRACTION,
    "lr_find.divergence": Rule(
        lambda value: is_number(value) and value > 1, "it must be a finite number > 1"
    ),
    "vectors.output": Rule(
        is_path, "it must be the path of the text file to write, e.g. vectors.output=imdb-w2v.txt"
    ),
    "vectors.dim": integer(1),
    "vectors.window": integer(1),
    "vectors.min_count": integer(1),
    "vectors.epochs": integer(1),
    "vectors.skip_gram": BOOLEAN,
    "vectors.threads": integer(0),
    "vectors.seed": integer(0),
    "tracking.experiment": Rule(
        lambda value: isinstance(value, str) and value != "", "it must be a non-empty name"
    ),
    "tracking.ui_port": integer(1, 65535),
}


def check(cfg: DictConfig) -> None:
    """The one check of a composed config (rnn-train's, a sweep's, a trial's): every key known, every value in
    its range, the values consistent. The first problem is raised as one InputError line."""
    check_known_keys(cfg)
    for key, rule in RULES.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is not _ABSENT and rule.applies(cfg) and not rule.test(value):
            raise InputError(rule.message(key, value))
    for cross_check in CROSS_CHECKS:
        cross_check(cfg)


_ABSENT = object()
PREDICT_KEYS = (
    "model",
    "texts",
    "input",
    "column",
    "output",
)  # conf/predict.yaml: what rnn-predict reads


def check_predict(cfg: DictConfig) -> None:
    """rnn-predict's check, before any model or data is loaded: a key it does not read is a typo."""
    unknown = sorted(set(cfg.predict) - set(PREDICT_KEYS))
    if unknown:
        raise InputError(
            f"predict.{unknown[0]}: rnn-predict reads no such setting; it reads "
            f"{', '.join(f'predict.{key}' for key in PREDICT_KEYS)}"
        )


def check_sources(cfg: DictConfig) -> None:
    sources = cfg.data.get("sources")
    if sources is None:
        return
    unknown = [source for source in sources if source not in SENTENCE_FILES]
    if unknown or not sources:
        problem = f"unknown source {unknown[0]!r}" if unknown else "no source"
        raise InputError(
            f"data.sources={list(sources)}: {problem}; allowed: {', '.join(SENTENCE_FILES)}"
        )


def check_target(cfg: DictConfig) -> None:
    target = cfg.data.get("target")
    if target is None:
        return
    allowed = TARGETS.get(cfg.data.name)
    if allowed is None:
        raise InputError(
            f"data.target is not a setting of data={cfg.data.name}; the data sets with targets: "
            f"{', '.join(TARGETS)}"
        )
    if target not in allowed:
        raise InputError(
            f"data.target={target!r} is not a target of data={cfg.data.name}; allowed: {', '.join(allowed)}"
        )
    if target == "source" and len(set(cfg.data.sources)) < 2:
        raise InputError(
            f"data.target=source with data.sources={list(cfg.data.sources)}: one class per source needs "
            "at least two sources"
        )


def check_label_map(cfg: DictConfig) -> None:
    """data.label_map maps raw labels onto the class indices 0..K-1, each used, K >= 2."""
    label_map = cfg.data.get("label_map")
    if label_map is None:
        return
    values = list(label_map.values()) if isinstance(label_map, DictConfig) else None
    if (
        not values
        or not all(is_integer(v) for v in values)
        or sorted(set(values)) != list(range(max(values) + 1))
        or max(values) < 1
    ):
        shown = (
            OmegaConf.to_container(label_map) if isinstance(label_map, DictConfig) else label_map
        )
        raise InputError(
            f"data.label_map={shown}; it must map raw labels onto the class indices 0, 1, ... K-1, "
            "each used, at least two (e.g. {neg: 0, pos: 1})"
        )


def check_encoding(cfg: DictConfig) -> None:
    if cfg.data.get("encoding") is None:
        return
    try:
        codecs.lookup(cfg.data.encoding)
    except LookupError:
        raise InputError(
            f"data.encoding={cfg.data.encoding!r} is not a text encoding Python knows (e.g. utf-8, latin-1)"
        ) from None


def check_study_settings(cfg: DictConfig) -> None:
    """A sweep's settings that depend on each other (a config without `search` has none)."""
    search = cfg.get("search")
    if search is None:
        return
    for kind in ("sampler", "pruner"):
        catalog = search[f"{kind}s"]
        if search[kind] not in catalog:
            raise InputError(f"search.{kind}={search[kind]!r}; allowed: {', '.join(catalog)}")
    if search.second_objective and not is_pruner(cfg, "NopPruner"):
        raise InputError(
            f"search.pruner={search.pruner} cannot prune a two-objective study; set search.pruner=none"
        )
    natural = "maximize" if higher_is_better(search.objective) else "minimize"
    if search.direction != natural:
        raise InputError(
            f"search.direction={search.direction} does not fit search.objective={search.objective}; allowed: {natural}"
        )
    if is_integer(search.cv_folds) and search.cv_folds > 1 and cfg.data.get("val_path"):
        raise InputError(
            f"search.cv_folds={search.cv_folds} with data.val_path: a validation file is the validation "
            f"split; allowed: search.cv_folds=1 or auto, or drop data.val_path"
        )
    if cfg.train.monitor != search.objective:
        raise InputError(
            f"train.monitor={cfg.train.monitor} must be search.objective={search.objective} in a sweep: "
            "a trial's value and its kept weights come from one epoch"
        )


def is_pruner(cfg: DictConfig, class_name: str) -> bool:
    return cfg.search.pruners[cfg.search.pruner]._target_.rsplit(".", 1)[-1] == class_name


def is_grid(cfg: DictConfig) -> bool:
    return cfg.search.samplers[cfg.search.sampler]._target_.rsplit(".", 1)[-1] == "GridSampler"


def check_lr_find(cfg: DictConfig) -> None:
    lr_find = cfg.get("lr_find")
    if lr_find is None:
        return
    if not lr_find.start_lr < lr_find.end_lr:
        raise InputError(
            f"lr_find.start_lr={lr_find.start_lr} >= lr_find.end_lr={lr_find.end_lr}; the range must rise"
        )
    if lr_find.start_steps >= lr_find.steps:
        raise InputError(
            f"lr_find.start_steps={lr_find.start_steps}; it must be below lr_find.steps={lr_find.steps}"
        )


def check_padding_cut(cfg: DictConfig) -> None:
    if "train" not in cfg or "model" not in cfg:  # rnn-vectors trains no classifier
        return
    if cfg.train.length_buckets and not cfg.model.mask_padding:
        raise InputError(
            "train.length_buckets=true with model.mask_padding=false: unmasked padding is input, cutting it "
            "would change what the model sees; leave train.length_buckets to follow model.mask_padding"
        )


VECTOR_FILES = "a GloVe or word2vec/fastText .vec text file, or a word2vec binary file *.bin"


def check_vectors_file(cfg: DictConfig) -> None:
    """model.embedding.vectors names a readable file, for data with words: checked before any
    data is read."""
    vectors = OmegaConf.select(cfg, "model.embedding.vectors")
    if vectors is None:
        return
    if cfg.data.name == "keras_imdb":
        raise InputError(
            "model.embedding.vectors with data=keras_imdb: its reviews are token "
            "ids, not words; allowed: data=imdb, sentences or table"
        )
    path = Path(vectors).expanduser()
    problem = (
        "no such file"
        if not path.exists()
        else "a folder, not a file"
        if path.is_dir()
        else "cannot be read (permission denied)"
        if not os.access(path, os.R_OK)
        else None
    )
    if problem:
        raise InputError(f"model.embedding.vectors={vectors}: {problem}; allowed: {VECTOR_FILES}")


CROSS_CHECKS = (
    check_sources,
    check_target,
    check_label_map,
    check_encoding,
    check_study_settings,
    check_lr_find,
    check_padding_cut,
    check_vectors_file,
)


def check_instantiable(cfg: DictConfig) -> None:
    """The optimizer and callbacks can be made from their _target_ nodes (an unknown argument, a misspelt class):
    once per entry point, before any data or run; training then instantiates them once."""
    instantiate(cfg.optimizer, "optimizer")
    configured_callbacks(cfg)


def instantiate(node: DictConfig, what: str, **kwargs):
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except (
        Exception
    ) as error:  # Hydra wraps the target's TypeError/ImportError in InstantiationException
        raise InputError(f"{what}: {' '.join(str(error).split())}") from None


def configured_callbacks(cfg: DictConfig) -> list:
    return list(instantiate(cfg.callbacks, "callbacks").values()) if cfg.get("callbacks") else []


FREE_FORM = (
    "optimizer",
    "callbacks",
    "search.space",
    "search.samplers",
    "search.pruners",
    "data.label_map",
)  # any keys: checked by their consumers


def dotted_keys(node, prefix: str = ""):
    for key, value in node.items() if isinstance(node, dict) else ():
        yield f"{prefix}{key}"
        if isinstance(value, dict):
            yield from dotted_keys(value, f"{prefix}{key}.")


def check_known_keys(cfg: DictConfig) -> None:
    """Reject a key no part of rnnsweep reads (e.g. +train.foo=1): a typo would silently change nothing."""
    known = schema_keys()
    for key in dotted_keys(OmegaConf.to_container(cfg)):
        if (
            key == "hydra"
            or key.startswith("hydra.")
            or any(key.startswith(f"{free}.") for free in FREE_FORM)
        ):
            continue
        if key not in known:
            parent = key.rpartition(".")[0]
            siblings = sorted(k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == parent)
            raise InputError(
                f"{key} is not a setting rnnsweep reads; allowed {'under ' + parent if parent else 'at the top'}: {', '.join(siblings)}"
            )


# --------------------------------------------------------------------------- Hydra's type errors

MERGING = re.compile(r"Error merging override (?P<key>[\w.]+)=(?P<value>\S*)")


def hydra_error_text(error: BaseException) -> str:
    """A composition error with its causes (the schema's type error is the cause of Hydra's)."""
    parts = []
    while error is not None:
        parts.append(str(error))
        error = error.__cause__
    return "\n".join(parts)


def explain(hydra_output: str) -> str | None:
    """A value of the wrong type on the command line (model.units=true, train.epochs=abc) in the words of its
    rule, e.g. 'model.units=true; it must be an integer >= 1'; None when the output is about something else."""
    match = MERGING.search(hydra_output)
    if not match:
        return None
    key, text = match["key"], f"{match['key']}={match['value']}"
    rule = RULES.get(key)
    if rule is None:
        return None
    try:
        value = OverridesParser.create().parse_override(text).value()
    except HydraException:
        value = match["value"]
    return rule.message(key, value)
