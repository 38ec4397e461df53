"""The trials a study starts with, before its sampler chooses: the baseline (the composed config's own values),
the search preset's portfolio (configurations measured strong on IMDB and the UCI sentences), and the best
trials of an earlier study (`search.warm_start_from`). Each is placed once per study; a value its space does
not hold is left to the sampler."""

import dataclasses
import logging

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState

from pipeline import config, stores
from pipeline.errors import InputError
from pipeline.figures import Attr, start_label
from pipeline.objective import FAIL_HYPERPARAMETERS
from pipeline.redaction import redact
from pipeline.space import Entry, baseline_params, parse_space

log = logging.getLogger(__name__)


def check_portfolio(cfg: DictConfig) -> None:
    """Every portfolio configuration is a mapping over the names of search.space: a typo is one error line."""
    names = [entry.name for entry in parse_space(cfg)]
    for index, params in enumerate(cfg.search.portfolio):
        where = f"search.portfolio[{index}]"
        if not OmegaConf.is_dict(params):
            raise InputError(f"{where}={params}; it must be a mapping of search.space names to values, e.g. {{body: gru}}")
        unknown = [name for name in params if name not in names]
        if unknown:
            raise InputError(f"{where}.{unknown[0]}: not an entry of search.space; allowed: {', '.join(names)}")


def earlier_best(cfg: DictConfig, storage: str) -> list[FrozenTrial]:
    """The search.warm_start_top_k best finished trials of search.warm_start_from (none when it is null)."""
    search = cfg.search
    if not search.warm_start_from:
        return []
    url = search.warm_start_storage or storage
    if url == storage and search.warm_start_from == search.study_name:
        raise InputError(f"search.warm_start_from={search.warm_start_from} is this sweep's own study; name an earlier one")
    store = dataclasses.replace(stores.optuna_store(url), setting="search.warm_start_storage" if search.warm_start_storage else "search.storage")
    if search.warm_start_storage and store.file and not store.file.is_file():  # read, never created
        raise InputError(f"search.warm_start_storage={redact(url)}: no such file {store.file}")
    with stores.opening(store):
        names = [summary.study_name for summary in optuna.get_all_study_summaries(url)]
        if search.warm_start_from not in names:
            raise InputError(f"search.warm_start_from={search.warm_start_from}: no such study in {redact(url)}; "
                             f"studies there: {', '.join(names) or 'none'}")
        earlier = optuna.load_study(study_name=search.warm_start_from, storage=url)
    if len(earlier.directions) > 1:
        return earlier.best_trials[: search.warm_start_top_k]
    done = earlier.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ranked = sorted(done, key=lambda t: t.value, reverse=earlier.direction == optuna.study.StudyDirection.MAXIMIZE)
    return ranked[: search.warm_start_top_k]


def enqueue_start(study: optuna.Study, cfg: DictConfig, base_overrides: list[str], earlier: list[FrozenTrial]) -> None:
    """Place the baseline, the portfolio and the earlier study's best trials, each unless the study has run it."""
    if config.is_grid(cfg):  # a grid covers every point anyway
        return
    entries = parse_space(cfg)
    if cfg.search.baseline_first:
        place(study, entries, baseline_params(cfg, base_overrides), "baseline")
    for index, params in enumerate(cfg.search.portfolio):
        place(study, entries, OmegaConf.to_container(params), f"portfolio {index}")
    for trial in earlier:
        place(study, entries, trial.params, f"{cfg.search.warm_start_from} trial {trial.number}")


def place(study: optuna.Study, entries: list[Entry], params: dict, label: str) -> None:
    """Enqueue `params` (those the space holds) as the trial `label`, once per study: again only when its try
    failed for another reason than its values (a data error, a signal)."""
    tries = [t for t in study.get_trials(deepcopy=False) if start_label(t) == label]
    if any(t.state != TrialState.FAIL or t.user_attrs.get(Attr.fail_kind) == FAIL_HYPERPARAMETERS for t in tries):
        return
    held = {entry.name: params[entry.name] for entry in entries if entry.name in params and entry.contains(params[entry.name])}
    left = sorted(set(params) - set(held))
    if left:
        log.info("%s: %s left to the sampler (not in this search.space)", label, ", ".join(left))
    attrs = {Attr.start: label} | ({Attr.baseline: True} if label == "baseline" else {})
    study.enqueue_trial(held, attrs)
