"""The trials a study starts with, before its sampler chooses: the baseline (the composed config's
own values), the search preset's portfolio (configurations measured strong on IMDB and the UCI
sentences), and the best trials of an earlier study (`search.warm_start_from`). Each is placed once
per study; a value its space does not hold is left to the sampler."""

import dataclasses
import logging

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState

from pipeline import config
from pipeline.core import ranking
from pipeline.tracking import stores
from pipeline.core.errors import InputError
from pipeline.core.names import Attr, start_label
from pipeline.search.objective import FAIL_HYPERPARAMETERS
from pipeline.core.redaction import redact
from pipeline.config.space import Entry, baseline_params, parse_space

log = logging.getLogger(__name__)


def earlier_best(cfg: DictConfig, storage: str) -> list[FrozenTrial]:
    """The search.warm_start_top_k best finished trials of search.warm_start_from (none when it is
    null)."""
    search = cfg.search
    if not search.warm_start_from:
        return []
    url = search.warm_start_storage or storage
    if url == storage and search.warm_start_from == search.study_name:
        raise InputError(
            f"search.warm_start_from={search.warm_start_from} is this sweep's own study; name an "
            "earlier one"
        )
    store = dataclasses.replace(
        stores.optuna_store(url),
        setting="search.warm_start_storage" if search.warm_start_storage else "search.storage",
    )
    if search.warm_start_storage and store.file and not store.file.is_file():  # read, never created
        raise InputError(f"search.warm_start_storage={redact(url)}: no such file {store.file}")
    # this sweep's store, not made yet
    if store.file and not (store.file.is_file() and store.file.stat().st_size):
        raise InputError(
            f"search.warm_start_from={search.warm_start_from}: no such study in {redact(url)}; "
            "studies there: none"
        )
    with stores.opening(store):
        names = [summary.study_name for summary in optuna.get_all_study_summaries(url)]
        if search.warm_start_from not in names:
            raise InputError(
                f"search.warm_start_from={search.warm_start_from}: no such study in {redact(url)}; "
                f"studies there: {', '.join(names) or 'none'}"
            )
        earlier = optuna.load_study(study_name=search.warm_start_from, storage=url)
    if len(earlier.directions) > 1:
        return earlier.best_trials[: search.warm_start_top_k]
    done = earlier.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    maximize = earlier.direction == optuna.study.StudyDirection.MAXIMIZE
    return ranking.ranked_trials(done, maximize)[: search.warm_start_top_k]


def enqueue_start(
    study: optuna.Study, cfg: DictConfig, base_overrides: list[str], earlier: list[FrozenTrial]
) -> None:
    """Place the baseline, the portfolio and the earlier study's best trials, each unless the study
    has run it."""
    if config.is_grid(cfg):  # a grid covers every point anyway
        return
    entries = parse_space(cfg)
    if cfg.search.baseline_first:
        params, outside = baseline_params(cfg, base_overrides)
        place(study, entries, params | outside, "baseline", frozenset(outside))
    for index, params in enumerate(cfg.search.portfolio):
        place(study, entries, OmegaConf.to_container(params), f"portfolio {index}")
    for trial in earlier:  # its values outside its space (a baseline's) are run as given here too
        outside = trial.user_attrs.get(Attr.outside_space, {})
        place(
            study,
            entries,
            trial.params | outside,
            f"{cfg.search.warm_start_from} trial {trial.number}",
            frozenset(outside),
        )


def place(
    study: optuna.Study,
    entries: list[Entry],
    params: dict,
    label: str,
    keep: frozenset = frozenset(),
) -> None:
    """Enqueue `params` as the trial `label`, once per study: again only when its try failed for
    another reason than its values (a data error, a signal). A value the space holds is a fixed
    parameter; one it does not hold is run as it is when its name is in `keep` (Attr.outside_space:
    an extra point, never a sample), else left to the sampler."""
    tries = [t for t in study.get_trials(deepcopy=False) if start_label(t) == label]
    if any(
        t.state != TrialState.FAIL or t.user_attrs.get(Attr.fail_kind) == FAIL_HYPERPARAMETERS
        for t in tries
    ):
        return
    named = {entry.name: entry for entry in entries if entry.name in params}
    held = {name: params[name] for name, entry in named.items() if entry.contains(params[name])}
    outside = {name: params[name] for name in named if name not in held and name in keep}
    left = sorted(set(params) - set(held) - set(outside))
    if left:
        log.info("%s: %s left to the sampler (not in this search.space)", label, ", ".join(left))
    if outside:
        log.info(
            "%s: %s outside search.space: run as an extra point",
            label,
            ", ".join(f"{k}={v}" for k, v in outside.items()),
        )
    attrs = {Attr.start: label} | ({Attr.baseline: True} if label == "baseline" else {})
    study.enqueue_trial(held, attrs | ({Attr.outside_space: outside} if outside else {}))
