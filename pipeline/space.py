"""The search-space language of conf/search/: entries name a config path or group, a type and a range or
choices, and optionally `when` another path holds one of some values. Checked once; sampled per trial."""

import math
from pathlib import Path

import optuna
from omegaconf import DictConfig, OmegaConf

from pipeline import CONFIG_DIR
from pipeline.config import chosen_groups, override
from pipeline.errors import InputError

PARAM_TYPES = ("float", "int", "categorical")
_ABSENT = object()


def validate_entry(name: str, entry: DictConfig, sampler: str) -> None:
    where = f"search.space.{name}"
    if not isinstance(entry, DictConfig) or not entry.get("path"):
        raise InputError(f"{where} needs a path: the config value or group it searches, e.g. model.units")
    if entry.get("type") not in PARAM_TYPES:
        raise InputError(f"{where}.type={entry.get('type')!r}; allowed: {', '.join(PARAM_TYPES)}")
    if entry.type == "categorical":
        if not entry.get("choices"):
            raise InputError(f"{where}.choices is empty; list at least one value")
    else:
        low, high = entry.get("low"), entry.get("high")
        if not isinstance(low, (int, float)) or not isinstance(high, (int, float)) or low >= high:
            raise InputError(f"{where}: low={low} must be a number below high={high}")
        if entry.get("log") and low <= 0:
            raise InputError(f"{where}: log=true needs low > 0, got low={low}")
        if entry.get("log") and entry.get("step"):
            raise InputError(f"{where}: log and step cannot be combined")
        if entry.get("step") is not None and not entry.step > 0:
            raise InputError(f"{where}.step={entry.step}; it must be > 0")
        if sampler == "grid":
            raise InputError(f"{where}: search.sampler=grid needs categorical entries only, this one is {entry.type}")
    when = entry.get("when")
    if when is not None and (not when.get("path") or not when.get("in")):
        raise InputError(f"{where}.when needs a path and a non-empty list 'in', e.g. {{path: model.body, in: [lstm]}}")


def probe_values(entry: DictConfig) -> list:
    """The values whose composition proves an entry well-formed: every choice, or both ends of a range."""
    return list(entry.choices) if entry.type == "categorical" else [entry.low, entry.high]


def validate_paths(cfg: DictConfig, groups: dict[str, str]) -> None:
    """Each path searched once, never the sweep's own settings; a `when` names a config value, a group or another
    searched path, with values that path can take: a typo would make an entry silently never apply."""
    searched = {}
    for name, entry in cfg.search.space.items():
        if entry.path.startswith("search.") or entry.path == "train.monitor":
            raise InputError(f"search.space.{name}.path={entry.path}: the sweep's own settings cannot be searched")
        if entry.path in searched:
            raise InputError(f"search.space.{name}.path={entry.path} is searched by search.space.{searched[entry.path]} already")
        searched[entry.path] = name
    for name, entry in cfg.search.space.items():
        if entry.get("when"):
            validate_when(f"search.space.{name}.when", entry, cfg, groups, searched)


def validate_when(where: str, entry: DictConfig, cfg: DictConfig, groups: dict[str, str], searched: dict[str, str]) -> None:
    path, values = entry.when.path, list(entry.when["in"])
    if path == entry.path:
        raise InputError(f"{where}.path={path} is the entry's own path; name another one, e.g. model.body")
    if path in searched:
        other = cfg.search.space[searched[path]]
        possible = list(other.choices) if other.type == "categorical" else None
    elif path in groups:
        possible = sorted(option.stem for option in (Path(CONFIG_DIR) / path).glob("*.yaml"))
    else:
        value = OmegaConf.select(cfg, path, default=_ABSENT)
        if value is _ABSENT or isinstance(value, DictConfig):
            raise InputError(f"{where}.path={path!r} is not a config value or group; e.g. model.body, optimizer")
        possible = None  # any value of that setting may be meant
    unknown = [value for value in values if possible is not None and value not in possible]
    if unknown:
        raise InputError(f"{where}.in={values}: {path} never takes {unknown[0]!r}; allowed: {', '.join(map(str, possible))}")


def current_value(cfg: DictConfig, path: str, groups: dict[str, str]):
    """The composed config's value at `path`; for a config group, the option chosen (e.g. optimizer: adam)."""
    return groups[path] if path in groups else OmegaConf.select(cfg, path)


def baseline_params(cfg: DictConfig, base_overrides: list[str]) -> dict:
    """The space's parameters at the composed config's own values (those inside the space): the baseline trial."""
    groups = chosen_groups(base_overrides)
    params = {}
    for name, entry in cfg.search.space.items():
        value = current_value(cfg, entry.path, groups)
        if in_space(value, entry):
            params[name] = value
    return params


def in_space(value, entry: DictConfig) -> bool:
    if entry.type == "categorical":
        return value in list(entry.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not entry.low <= value <= entry.high:
        return False
    step = entry.get("step") or (1 if entry.type == "int" else None)
    return step is None or math.isclose((value - entry.low) / step, round((value - entry.low) / step), abs_tol=1e-9)


def suggest(trial: optuna.Trial, cfg: DictConfig, groups: dict[str, str]) -> list[str]:
    """Sample the space (define-by-run: an entry whose `when` does not hold is skipped); return overrides.

    `groups`: the config groups' options chosen by the base command line (chosen_groups)."""
    chosen = {}
    for name, entry in cfg.search.space.items():
        when = entry.get("when")
        if when and chosen.get(when.path, current_value(cfg, when.path, groups)) not in list(when["in"]):
            continue
        if entry.type == "categorical":
            chosen[entry.path] = trial.suggest_categorical(name, list(entry.choices))
        elif entry.type == "int":
            step = entry.get("step") or 1
            chosen[entry.path] = trial.suggest_int(name, entry.low, entry.high, step=step, log=bool(entry.get("log")))
        else:
            step, log_scale = entry.get("step"), bool(entry.get("log"))
            chosen[entry.path] = trial.suggest_float(name, entry.low, entry.high, step=step, log=log_scale)
    return [override(path, value) for path, value in chosen.items()]
