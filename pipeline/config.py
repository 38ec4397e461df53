"""Composing configs the way the command line does: Hydra's compose over conf/, for sweeps and their trials."""

import contextlib
import functools
from pathlib import Path

import hydra
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from pipeline import CONFIG_DIR
from pipeline.errors import InputError


def compose(overrides: list[str]) -> DictConfig:
    """The sweep config for these command-line overrides, composed by Hydra, interpolations resolved."""
    try:
        with hydra_context():
            cfg = hydra.compose("sweep", overrides=overrides)
        OmegaConf.resolve(cfg)
    except HydraException as error:
        raise InputError(" ".join(str(error).split())) from None
    return cfg


@contextlib.contextmanager
def hydra_context():
    """Hydra's config search path: the running app's, or conf/ when called from a library or a test."""
    if GlobalHydra.instance().is_initialized():
        yield
    else:
        with hydra.initialize_config_dir(CONFIG_DIR, version_base="1.3"):
            yield


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


FREE_FORM = ("optimizer", "callbacks", "search.space", "data.label_map")  # keys checked by their own consumers


@functools.cache
def declared_keys() -> frozenset[str]:
    """Every dotted key some file of conf/ declares (a group's keys over all its presets): the keys rnnsweep reads."""
    keys = set()
    for path in Path(CONFIG_DIR).rglob("*.yaml"):
        group = path.parent.relative_to(CONFIG_DIR).as_posix()
        node = OmegaConf.to_container(OmegaConf.load(path))
        node.pop("defaults", None)
        node.pop("hydra", None)
        if group == "." or "# @package _global_" in path.read_text():
            keys |= set(dotted_keys(node))
        else:
            keys |= {group, *dotted_keys(node, f"{group}.")}
    return frozenset(keys)


def dotted_keys(node, prefix: str = ""):
    for key, value in node.items() if isinstance(node, dict) else ():
        yield f"{prefix}{key}"
        if isinstance(value, dict):
            yield from dotted_keys(value, f"{prefix}{key}.")


def check_known_keys(cfg: DictConfig) -> None:
    """Reject a key no part of rnnsweep reads (e.g. +train.foo=1): a typo would silently change nothing."""
    known = declared_keys()
    for key in dotted_keys(OmegaConf.to_container(cfg)):
        if key == "hydra" or key.startswith("hydra.") or any(key.startswith(f"{free}.") for free in FREE_FORM):
            continue
        if key not in known:
            parent = key.rpartition(".")[0]
            siblings = sorted(k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == parent)
            raise InputError(f"{key} is not a setting rnnsweep reads; allowed {'under ' + parent if parent else 'at the top'}: {', '.join(siblings)}")
