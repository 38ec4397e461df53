"""The search-space language of conf/search/: each entry names a config path or group, a type and a
range or choices, and optionally `when` another path holds one of some values. Entries become Optuna
distributions (Optuna rejects a bad range; its reason is given in one line naming the entry),
checked once before a sweep starts and sampled per trial."""

import dataclasses
import math

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from omegaconf import DictConfig, OmegaConf

from pipeline.config import (
    check,
    chosen_groups,
    compose,
    compose_with_values,
    group_options,
    is_grid,
    override,
)
from pipeline.core.errors import InputError

TYPES = {"float": FloatDistribution, "int": IntDistribution, "categorical": CategoricalDistribution}
_ABSENT = object()


@dataclasses.dataclass(frozen=True)
class Entry:
    """One searched setting: the config path (or group) it sets, its distribution, and its
    condition."""

    name: str
    path: str
    distribution: BaseDistribution
    when_path: str | None = None
    when_in: tuple = ()
    # low and high as written (Optuna may round high down to a whole number of steps)
    written_ends: tuple = ()

    def probe_values(self) -> list:
        """The values whose composition proves the entry well-formed: every choice, or both ends of
        a range."""
        if isinstance(self.distribution, CategoricalDistribution):
            return list(self.distribution.choices)
        return list(self.written_ends)

    def contains(self, value) -> bool:
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return value in d.choices
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not d.low <= value <= d.high
        ):
            return False
        steps = None if d.step is None else (value - d.low) / d.step
        return steps is None or math.isclose(steps, round(steps), abs_tol=1e-9)

    def sample(self, trial: optuna.Trial):
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return trial.suggest_categorical(self.name, d.choices)
        if isinstance(d, IntDistribution):
            return trial.suggest_int(self.name, d.low, d.high, step=d.step, log=d.log)
        return trial.suggest_float(self.name, d.low, d.high, step=d.step, log=d.log)


def parse_entry(name: str, node) -> Entry:
    where = f"search.space.{name}"
    if not isinstance(node, DictConfig) or not node.get("path"):
        raise InputError(
            f"{where} needs a path: the config value or group it searches, e.g. model.units"
        )
    if node.get("type") not in TYPES:
        raise InputError(f"{where}.type={node.get('type')!r}; allowed: {', '.join(TYPES)}")
    when = node.get("when")
    if when is not None and (not when.get("path") or not when.get("in")):
        raise InputError(
            f"{where}.when needs a path and a non-empty list 'in', e.g. {{path: model.body, in: "
            "[lstm]}"
        )
    try:
        distribution = make_distribution(node)
    # Optuna's distributions judge the entry; the line says it our way
    except (ValueError, TypeError) as error:
        raise InputError(rejected_entry(where, node, error)) from None
    ends = () if node.type == "categorical" else (node.low, node.high)
    return Entry(
        name, node.path, distribution, when and when.path, tuple(when["in"]) if when else (), ends
    )


def rejected_entry(where: str, node: DictConfig, error: Exception) -> str:
    """The one line for an entry Optuna refused, in the words of the search-space language."""
    if node.type == "categorical":
        return (
            f"{where}.choices is empty"
            if not node.get("choices")
            else f"{where}: {' '.join(str(error).split())}"
        )
    numbers = all(
        isinstance(node.get(end), (int, float)) and not isinstance(node.get(end), bool)
        for end in ("low", "high")
    )
    if numbers and node.get("log") and node.low <= 0:
        return f"{where}: log=true needs low > 0, got low={node.low}"
    if numbers and node.low >= node.high:
        return f"{where}: low={node.low} must be a number below high={node.high}"
    return f"{where}: {' '.join(str(error).split())}"


def make_distribution(node: DictConfig) -> BaseDistribution:
    if node.type == "categorical":
        return CategoricalDistribution(list(node.get("choices") or []))
    number = int if node.type == "int" else (int, float)
    for end in ("low", "high"):
        if not isinstance(node.get(end), number) or isinstance(node.get(end), bool):
            raise ValueError(
                f"{end}={node.get(end)!r} must be "
                f"{'an integer' if node.type == 'int' else 'a number'}"
            )
    if node.low >= node.high:  # Optuna takes low == high as a range of one value: no search at all
        raise ValueError(f"low={node.low} is not below high={node.high}")
    step = node.get("step") or (1 if node.type == "int" else None)
    return TYPES[node.type](node.low, node.high, log=bool(node.get("log")), step=step)


def parse_space(cfg: DictConfig) -> list[Entry]:
    return [parse_entry(name, node) for name, node in cfg.search.space.items()]


def check_space(cfg: DictConfig, base_overrides: list[str], groups: dict[str, str]) -> list[Entry]:
    """Every entry well-formed, every value it can take a valid config, every path and condition
    meaningful: before any study or run exists. Returns the parsed space."""
    if not cfg.search.space:
        raise InputError("search.space is empty; name at least one config path to search")
    entries = parse_space(cfg)
    if is_grid(cfg):
        ranged = next(
            (e for e in entries if not isinstance(e.distribution, CategoricalDistribution)), None
        )
        if ranged:
            raise InputError(
                f"search.space.{ranged.name}: search.sampler={cfg.search.sampler} needs "
                f"categorical entries only, this one is {type(ranged.distribution).__name__}"
            )
    searched = check_paths(entries)
    check_vectors_axis(entries)
    for entry in entries:
        for value in entry.probe_values():
            try:
                check(probe(base_overrides, groups, override(entry.path, value)))
            except InputError as error:
                raise InputError(
                    f"search.space.{entry.name} ({entry.path}={value}): {error}"
                ) from None
    for entry in entries:
        if entry.when_path:
            check_when(entry, cfg, groups, searched)
    return entries


def probe(base_overrides: list[str], groups: dict[str, str], choice: str) -> DictConfig:
    """The config of the base overrides plus one searched value: a config group's option is composed
    by Hydra, a value is applied to the base config as Hydra would (as a trial's config is made)."""
    if choice.split("=", 1)[0] in groups:
        return compose([*base_overrides, choice])
    return compose_with_values(base_overrides, [choice])


def check_paths(entries: list[Entry]) -> dict[str, Entry]:
    """Each path searched once, never the sweep's own settings; returns the entries by path."""
    searched = {}
    for entry in entries:
        if entry.path.startswith("search.") or entry.path == "train.monitor":
            raise InputError(
                f"search.space.{entry.name}.path={entry.path}: the sweep's own settings cannot be "
                "searched"
            )
        if entry.path in searched:
            raise InputError(
                f"search.space.{entry.name}.path={entry.path} is searched by "
                f"search.space.{searched[entry.path].name} already"
            )
        searched[entry.path] = entry
    return searched


VECTORS = "model.embedding.vectors"


def check_vectors_axis(entries: list[Entry]) -> None:
    """A search over word-vector files names at least one (search=vectors takes it from the command
    line)."""
    for entry in entries:
        choices = getattr(entry.distribution, "choices", None)
        if entry.path == VECTORS and choices is not None and not any(choices):
            raise InputError(
                f"search.space.{entry.name} searches no word-vector file; set "
                f"{VECTORS}=PATH (a GloVe or word2vec file: docs/vectors.md)"
            )


def vector_files(cfg: DictConfig) -> list[str]:
    """Every word-vector file a sweep may start a model from: the config's own and the space's
    choices."""
    files = [OmegaConf.select(cfg, VECTORS)]
    files += [
        choice
        for entry in parse_space(cfg)
        if entry.path == VECTORS
        for choice in getattr(entry.distribution, "choices", ())
    ]
    return list(dict.fromkeys(path for path in files if path is not None))


def check_when(
    entry: Entry, cfg: DictConfig, groups: dict[str, str], searched: dict[str, Entry]
) -> None:
    """A `when` names a config value, a group or another searched path, with values that path can
    take: a typo would make the entry silently never apply."""
    where, path, values = f"search.space.{entry.name}.when", entry.when_path, list(entry.when_in)
    if path == entry.path:
        raise InputError(
            f"{where}.path={path} is the entry's own path; name another one, e.g. model.body"
        )
    if path in searched:
        other = searched[path].distribution
        possible = list(other.choices) if isinstance(other, CategoricalDistribution) else None
    elif path in groups:
        possible = group_options(path)
    else:
        value = OmegaConf.select(cfg, path, default=_ABSENT)
        if value is _ABSENT or isinstance(value, DictConfig):
            raise InputError(
                f"{where}.path={path!r} is not a config value or group; e.g. model.body, optimizer"
            )
        possible = None  # any value of that setting may be meant
    unknown = [value for value in values if possible is not None and value not in possible]
    if unknown:
        raise InputError(
            f"{where}.in={values}: {path} never takes {unknown[0]!r}; allowed: "
            f"{', '.join(map(str, possible))}"
        )


def current_value(cfg: DictConfig, path: str, groups: dict[str, str]):
    """The composed config's value at `path`; for a config group, the option chosen (e.g. optimizer:
    adam)."""
    return groups[path] if path in groups else OmegaConf.select(cfg, path)


def baseline_params(cfg: DictConfig, base_overrides: list[str]) -> tuple[dict, dict]:
    """The baseline trial: the space's parameters at the composed config's own values, and apart
    those of its values that lie outside the space (entries whose `when` holds for the config), run
    as they are."""
    groups, params, outside = chosen_groups(base_overrides), {}, {}
    for entry in parse_space(cfg):
        value = current_value(cfg, entry.path, groups)
        if entry.contains(value):
            params[entry.name] = value
        elif not entry.when_path or current_value(cfg, entry.when_path, groups) in entry.when_in:
            outside[entry.name] = value
    return params, outside


def suggest(
    trial: optuna.Trial,
    entries: list[Entry],
    cfg: DictConfig,
    groups: dict[str, str],
    given: dict | None = None,
) -> list[str]:
    """Sample the space (define-by-run: an entry whose `when` does not hold is skipped); return
    overrides.

    `groups`: the config groups' options chosen by the base command line (config.chosen_groups);
    `given`: values outside the space that the trial runs as they are, unsampled
    (Attr.outside_space: the baseline's)."""
    given, chosen = given or {}, {}
    for entry in entries:
        if (
            entry.when_path
            and chosen.get(entry.when_path, current_value(cfg, entry.when_path, groups))
            not in entry.when_in
        ):
            continue
        chosen[entry.path] = given[entry.name] if entry.name in given else entry.sample(trial)
    return [override(path, value) for path, value in chosen.items()]


def check_sweep(cfg: DictConfig, base_overrides: list[str]) -> list[Entry]:
    """rnn-sweep's one check, before TensorFlow, MLflow, any data, study or run: the base config (a
    bad setting is named as itself, not as a search entry's), then the space (each value it can take
    must compose to a valid config); config.check holds the checks of the study's other settings.
    Returns the parsed space."""
    check(cfg)  # the registered model's name, the portfolio and the learning-rate range too
    return check_space(cfg, base_overrides, chosen_groups(base_overrides))
