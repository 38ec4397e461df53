"""The config layer: conf/ composed the way the command line does (Hydra), and checked once, here.

Owns: `compose` and `check` (this module), the schemas that declare every setting once (schema.py:
type, default, doc, rule), the rules (rules.py), the allowed values that heavier layers build from
(choices.py), and the search space (space.py). Types come from the schemas (Hydra rejects a wrong
type while composing; `explain` turns its many lines into one); ranges and allowed values from
RULES, gathered from the schemas' fields; the rules between values (a sweep's included) from
CROSS_CHECKS. `check` runs once per entry point and once per sweep trial. Imports only
pipeline.core, Hydra and OmegaConf: a bad command line is answered before TensorFlow, MLflow or
matplotlib is loaded.
"""

import codecs
import contextlib
import copy
import functools
import os
import posixpath
import re
from pathlib import Path

import hydra

# its override step: what compose does after the groups
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.config_search_path_impl import ConfigSearchPathImpl
from hydra._internal.hydra import Hydra
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict

from pipeline import CONFIG_DIR
from pipeline.config import schema
from pipeline.config.choices import SENTENCE_FILES, TARGETS
from pipeline.config.rules import Rule, is_integer, is_path, yaml_word  # noqa: F401 - re-exported
from pipeline.config.schema import schema_keys
from pipeline.core.errors import InputError
from pipeline.core.names import higher_is_better


def data_label(name: str, target: str | None = None, path: str | None = None) -> str:
    """What a study's default name says of its data: the data set (a table: its file's stem), and
    the target when it is not sentiment, so that a sweep of other labels or another file never
    resumes this one's study."""
    label = re.sub(r"[^\w.-]+", "_", Path(str(path)).stem) if name == "table" and path else name
    return label if target in (None, "sentiment") else f"{label}_{target}"


def body_label(space, body: str) -> str:
    """What a study's default name says of the model: '-gru' when the search keeps the preset's
    body, nothing when it searches the body itself (a study of pooling, GRU and LSTM is no '-lstm'
    study)."""
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
# ${data_label:${data.name},...}: the default study name (schema.STUDY_NAME)
OmegaConf.register_new_resolver("data_label", data_label, replace=True)
# ${body_label:${search.space},${model.body}}: the same name's model part
OmegaConf.register_new_resolver("body_label", body_label, replace=True)
# ${vectors_label:${model.embedding.vectors}}: the same name's word-vector part
OmegaConf.register_new_resolver("vectors_label", vectors_label, replace=True)
# the config groups' typed bases (Hydra's ConfigStore), before anything composes conf/
schema.register()


def compose(overrides: list[str], config_name: str = "sweep", resolve: bool = True) -> DictConfig:
    """The config for these command-line overrides, composed by Hydra (interpolations resolved); a
    value of the wrong type or a bad override is one InputError line."""
    with composition_errors():
        cfg = copy.deepcopy(composed(config_name, tuple(overrides), search_path()))
        with open_dict(cfg):
            del cfg["hydra"]  # as hydra.compose leaves it without return_hydra_config
        if resolve:
            OmegaConf.resolve(cfg)
    return cfg


@functools.lru_cache(maxsize=64)
def composed(config_name: str, overrides: tuple[str, ...], sources: tuple) -> DictConfig:
    """Hydra's composition, unresolved, once per process for each list of overrides (~0.3 s each;
    the checks and the trials compose the same lists many times). `sources` only keys the cache:
    Hydra's config search path. Callers get deep copies: the cached config is never changed."""
    with hydra_context():
        return hydra.compose(config_name, overrides=list(overrides), return_hydra_config=True)


def search_path() -> tuple:
    """The config search path compose reads: the running app's, or conf/ outside one."""
    if not GlobalHydra.instance().is_initialized():
        return (CONFIG_DIR,)
    return tuple(
        source.full_path() for source in GlobalHydra.instance().config_loader().get_sources()
    )


def compose_with_values(groups: list[str], values: list[str]) -> DictConfig:
    """compose(groups + values) for a sweep trial, faster: Hydra composes `groups` (every override
    that may choose a config group) once per distinct list, and each call applies `values`
    (key=value overrides only) to a copy the way Hydra's compose applies them, after the groups. ~10
    ms instead of ~0.13 s per trial."""
    with composition_errors():
        cfg = copy.deepcopy(composed_unresolved(tuple(groups)))
        ConfigLoaderImpl._apply_overrides_to_config(
            OverridesParser.create().parse_overrides(values), cfg
        )
        OmegaConf.resolve(cfg)
    return cfg


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
    """Hydra's config search path: the running app's, or conf/ when called from a library or a
    test."""
    if GlobalHydra.instance().is_initialized():
        yield
    else:
        with hydra.initialize_config_dir(CONFIG_DIR, version_base="1.3"):
            yield


def config_sources() -> list[dict[str, str]]:
    """The running app's config search path (conf/, --config-dir, --config-path, hydra.searchpath);
    [] outside one."""
    if not HydraConfig.initialized():
        return []
    return [
        {"provider": s.provider, "schema": s.schema, "path": s.path}
        for s in HydraConfig.get().runtime.config_sources
    ]


def use_config_sources(sources: list[dict[str, str]]) -> None:
    """Compose from `sources` (config_sources of the invoking app) in this process: a spawned worker
    then finds the presets of the user's own config folders, as its invoker did."""
    if not sources or GlobalHydra.instance().is_initialized():
        return
    # registers Hydra's config source kinds (file, pkg, structured), as hydra.main does
    Plugins.instance()
    search_path = ConfigSearchPathImpl()
    for source in sources:
        search_path.append(source["provider"], f"{source['schema']}://{source['path']}")
    Hydra.create_main_hydra2("rnn-sweep", search_path)


def chosen_groups(overrides: list[str]) -> dict[str, str]:
    """Which option of each config group these overrides select, e.g. {"optimizer": "adam"}."""
    with composition_errors():
        cfg = composed("sweep", tuple(overrides), search_path())
    return OmegaConf.to_container(cfg.hydra.runtime.choices)


def override(path: str, value) -> str:
    """A Hydra override assigning `value` to `path`."""
    if isinstance(value, bool):
        return f"{path}={str(value).lower()}"
    if value is None:
        return f"{path}=null"
    return f"{path}={value}"


def quoted_override(path: str, text: str) -> str:
    """A Hydra override assigning the string `text` as it is (spaces, commas, colons and quotes
    included)."""
    return f"{path}='{text.replace(chr(39), chr(92) + chr(39))}'"


def group_options(group: str) -> list[str]:
    """The presets of a config group, e.g. optimizer: adam, rmsprop, sgd."""
    return sorted(path.stem for path in (Path(CONFIG_DIR) / group).glob("*.yaml"))


# ------------------------------------------------------------------------------------------ rules


# every setting's rule, from its schema field: search's first (train.monitor follows
# search.objective)
RULES: dict[str, Rule] = schema.rules()


def check(cfg: DictConfig) -> None:
    """The one check of a composed config (rnn-train's, a sweep's, a trial's): every key known,
    every value in its range, the values consistent. The first problem is raised as one InputError
    line."""
    check_known_keys(cfg)
    for key, rule in RULES.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is not _ABSENT and rule.applies(cfg) and not rule.test(value):
            raise InputError(rule.message(key, value))
    for cross_check in CROSS_CHECKS:
        cross_check(cfg)


_ABSENT = object()


def check_sources(cfg: DictConfig) -> None:
    sources = OmegaConf.select(cfg, "data.sources")
    if sources is None:
        return
    unknown = [source for source in sources if source not in SENTENCE_FILES]
    if unknown or not sources:
        problem = f"unknown source {unknown[0]!r}" if unknown else "no source"
        raise InputError(
            f"data.sources={list(sources)}: {problem}; allowed: {', '.join(SENTENCE_FILES)}"
        )


def check_target(cfg: DictConfig) -> None:
    target = OmegaConf.select(cfg, "data.target")
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
            f"data.target={target!r} is not a target of data={cfg.data.name}; allowed: "
            f"{', '.join(allowed)}"
        )
    if target == "source" and len(set(cfg.data.sources)) < 2:
        raise InputError(
            f"data.target=source with data.sources={list(cfg.data.sources)}: one class per source "
            "needs at least two sources"
        )


def check_label_map(cfg: DictConfig) -> None:
    """data.label_map maps raw labels onto the class indices 0..K-1, each used, K >= 2."""
    label_map = OmegaConf.select(cfg, "data.label_map")
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
    if OmegaConf.select(cfg, "data.encoding") is None:
        return
    try:
        codecs.lookup(cfg.data.encoding)
    except LookupError:
        raise InputError(
            f"data.encoding={cfg.data.encoding!r} is not a text encoding Python knows (e.g. utf-8, "
            "latin-1)"
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
            f"search.pruner={search.pruner} cannot prune a two-objective study; set "
            "search.pruner=none"
        )
    natural = "maximize" if higher_is_better(search.objective) else "minimize"
    if search.direction != natural:
        raise InputError(
            f"search.direction={search.direction} does not fit "
            f"search.objective={search.objective}; allowed: {natural}"
        )
    if is_integer(search.cv_folds) and search.cv_folds > 1 and cfg.data.get("val_path"):
        raise InputError(
            f"search.cv_folds={search.cv_folds} with data.val_path: a validation file is the "
            "validation split; allowed: search.cv_folds=1 or auto, or drop data.val_path"
        )
    if cfg.train.monitor != search.objective:
        raise InputError(
            f"train.monitor={cfg.train.monitor} must be search.objective={search.objective} in a "
            "sweep: a trial's value and its kept weights come from one epoch"
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
            f"lr_find.start_lr={lr_find.start_lr} >= lr_find.end_lr={lr_find.end_lr}; the range "
            "must rise"
        )
    if lr_find.start_steps >= lr_find.steps:
        raise InputError(
            f"lr_find.start_steps={lr_find.start_steps}; it must be below "
            f"lr_find.steps={lr_find.steps}"
        )


def check_padding_cut(cfg: DictConfig) -> None:
    if "train" not in cfg or "model" not in cfg:  # rnn-vectors trains no classifier
        return
    if cfg.train.length_buckets and not cfg.model.mask_padding:
        raise InputError(
            "train.length_buckets=true with model.mask_padding=false: unmasked padding is input, "
            "cutting it would change what the model sees; leave train.length_buckets to follow "
            "model.mask_padding"
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


def check_register_as(cfg: DictConfig) -> None:
    """MLflow's rule for a registered model's name (mlflow.utils.validation): not blank, no '/' or
    ':', a normalised path that is not '.' and does not start with '..'."""
    name = OmegaConf.select(cfg, "search.register_as")
    if name is None:
        return
    if (
        not isinstance(name, str)
        or not name.strip()
        or "/" in name
        or ":" in name
        or posixpath.normpath(name) != name
        or name == "."
        or name.startswith("..")
    ):
        raise InputError(
            f"search.register_as={name!r}; it must be null or a model name without '/' or ':'"
        )


def check_portfolio(cfg: DictConfig) -> None:
    """Every portfolio configuration is a mapping over the names of search.space: a typo is one
    error line."""
    if "search" not in cfg:
        return
    names = list(cfg.search.space)
    for index, params in enumerate(cfg.search.portfolio):
        where = f"search.portfolio[{index}]"
        if not OmegaConf.is_dict(params):
            raise InputError(
                f"{where}={params}; it must be a mapping of search.space names to values, "
                "e.g. {body: gru}"
            )
        unknown = [name for name in params if name not in names]
        if unknown:
            raise InputError(
                f"{where}.{unknown[0]}: not an entry of search.space; allowed: {', '.join(names)}"
            )


LR_PATH = "optimizer.learning_rate"  # the path search.lr_range=auto bounds


def check_lr_range(cfg: DictConfig) -> None:
    if OmegaConf.select(cfg, "search.lr_range") == "auto":
        lr_entry(cfg)


def lr_entry(cfg: DictConfig) -> str:
    """The name of the space's float entry over optimizer.learning_rate: the one
    search.lr_range=auto bounds."""
    names = [
        name
        for name, entry in cfg.search.space.items()
        if isinstance(entry, DictConfig) and entry.get("path") == LR_PATH
    ]
    if not names or cfg.search.space[names[0]].get("type") != "float":
        raise InputError(
            f"search.lr_range=auto needs a float entry over {LR_PATH} in search.space, "
            f"e.g. learning_rate: {{path: {LR_PATH}, type: float, low: 1.0e-5, high: 1.0e-1, "
            "log: true}"
        )
    return names[0]


CROSS_CHECKS = (
    check_sources,
    check_target,
    check_label_map,
    check_encoding,
    check_study_settings,
    check_register_as,
    check_portfolio,
    check_lr_range,
    check_lr_find,
    check_padding_cut,
    check_vectors_file,
)


def check_instantiable(cfg: DictConfig) -> None:
    """The optimizer and callbacks can be made from their _target_ nodes (an unknown argument, a
    misspelt class): once per entry point, before any data or run; training then instantiates them
    once."""
    instantiate(cfg.optimizer, "optimizer")
    configured_callbacks(cfg)


def instantiate(node: DictConfig, what: str, **kwargs):
    try:
        return hydra.utils.instantiate(node, **kwargs)
    # Hydra wraps the target's TypeError/ImportError in InstantiationException
    except Exception as error:
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


COMMAND_GROUPS = {  # a command's own group: its refusal names the command and what it reads
    "predict": "rnn-predict reads no such setting; it reads "
    + ", ".join(f"predict.{key}" for key in schema.fields_of(schema.PredictConfig))
}


def check_known_keys(cfg: DictConfig) -> None:
    """Reject a key no part of rnnsweep reads (e.g. +train.foo=1): a typo would silently change
    nothing."""
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
            if parent in COMMAND_GROUPS:
                raise InputError(f"{key}: {COMMAND_GROUPS[parent]}")
            siblings = sorted(k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == parent)
            raise InputError(
                f"{key} is not a setting rnnsweep reads; allowed "
                f"{'under ' + parent if parent else 'at the top'}: {', '.join(siblings)}"
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
    """A value of the wrong type on the command line (model.units=true, train.epochs=abc) in the
    words of its rule, e.g. 'model.units=true; it must be an integer >= 1'; None when the output is
    about something else."""
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
