"""A study's start: the baseline, the preset's portfolio and an earlier study's best trials, each placed once;
and the cost guard, which prunes a trial whose epochs are many times slower than the median's and no better."""

import re
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from pipeline.core import ranking
from pipeline.config import check, compose
from pipeline.search.cost_guard import CostGuard
from pipeline.core.errors import InputError
from pipeline.core.names import Attr, start_label
from pipeline.search.sweep import make_pruner
from tests.helpers.sweeps import runs_of, study_of, sweep

PORTFOLIO = "search.portfolio=[{body: pooling, dropout: 0.4, learning_rate: 0.05}, {body: gru, units: 16, dropout: 0.2}]"


@pytest.mark.slow  # a real-data end-to-end sweep: CI runs it, the quick loop does not
def test_the_portfolio_runs_after_the_baseline_once_per_study_values_outside_the_space_left_to_the_sampler(
    sweep_overrides, capsys
):
    overrides = [*sweep_overrides, "search=quick", PORTFOLIO, "search.n_trials=3"]
    assert sweep(overrides) == 0
    assert re.search(
        r"\n  portfolio 1 +trial 2 \(placed before the sampler chose\): val_accuracy 0\.\d{4}\n",
        capsys.readouterr().out,
    )
    assert (
        sweep([*overrides, "search.n_trials=1"]) == 0
    )  # the same command again: nothing placed a second time
    trials = study_of(overrides).trials
    assert [start_label(t) for t in trials] == ["baseline", "portfolio 0", "portfolio 1", None]
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert trials[1].params["body"] == "pooling" and trials[1].params["dropout"] == 0.4
    assert 1e-4 <= trials[1].params["learning_rate"] <= 3e-2, (
        "0.05 lies above the space's high (0.03): sampled instead"
    )
    assert {k: trials[2].params[k] for k in ("body", "units", "dropout")} == {
        "body": "gru",
        "units": 16,
        "dropout": 0.2,
    }
    assert all(t.user_attrs[Attr.epoch_seconds] > 0 for t in trials), (
        "every epoch stores its trial's seconds per epoch"
    )
    client, _, children = runs_of(overrides)
    assert sorted(run.data.tags.get("start", "-") for run in children) == [
        "-",
        "baseline",
        "portfolio 0",
        "portfolio 1",
    ]


@pytest.mark.slow  # a real-data end-to-end sweep: CI runs it, the quick loop does not
def test_warm_start_from_runs_an_earlier_studys_best_trials_first(sweep_overrides):
    earlier = [*sweep_overrides, "search=quick", "search.study_name=earlier", "search.n_trials=3"]
    assert sweep(earlier) == 0
    done = ranking.ranked_trials(
        study_of(earlier).get_trials(states=(TrialState.COMPLETE,)), maximize=True
    )
    later = [
        *sweep_overrides,
        "search=quick",
        "search.study_name=later",
        "search.n_trials=3",
        "search.baseline_first=false",
        "search.warm_start_from=earlier",
        "search.warm_start_top_k=3",
    ]
    assert sweep(later) == 0
    placed = study_of(later).trials[:3]
    assert [start_label(t) for t in placed] == [f"earlier trial {t.number}" for t in done[:3]]
    assert [t.params for t in placed] == [t.params for t in done[:3]]
    outside = [t.user_attrs.get(Attr.outside_space) for t in placed]
    assert (
        outside == [t.user_attrs.get(Attr.outside_space) for t in done[:3]]
        and {"units": 64} in outside
    ), (
        "the earlier baseline's 64 units (outside quick's 16, 32) are run as given again, not sampled"
    )


def test_a_missing_earlier_study_or_store_or_a_misnamed_portfolio_value_is_one_line_before_any_study(
    sweep_overrides,
):
    cfg_overrides = [*sweep_overrides, "search=quick"]
    with pytest.raises(
        InputError,
        match=r"search.warm_start_from=nope: no such study in sqlite:///\S+optuna.db; studies there: none",
    ):
        sweep([*cfg_overrides, "search.warm_start_from=nope"])
    with pytest.raises(
        InputError,
        match=r"search.warm_start_from=quick-sentences is this sweep's own study; name an earlier one",
    ):
        sweep([*cfg_overrides, "search.warm_start_from=quick-sentences"])
    gone = Path(compose(cfg_overrides).paths.mlruns_dir) / "gone.db"
    with pytest.raises(
        InputError, match=rf"search.warm_start_storage=sqlite:///{gone}: no such file {gone}$"
    ):
        sweep(
            [
                *cfg_overrides,
                "search.warm_start_from=earlier",
                f"search.warm_start_storage=sqlite:///{gone}",
            ]
        )
    assert not gone.exists(), "a store that is only read is never created"
    with pytest.raises(
        InputError,
        match=r"^search.warm_start_storage=postgresql://u:\*\*\*@127.0.0.1:9/db: connection failed",
    ):
        sweep(
            [
                *cfg_overrides,
                "search.warm_start_from=earlier",
                "search.warm_start_storage=postgresql://u:s3cret@127.0.0.1:9/db",
            ]
        )
    with pytest.raises(
        InputError,
        match=r"search.portfolio\[0\].unitz: not an entry of search.space; allowed: body, units, dropout, learning_rate",
    ):
        sweep([*cfg_overrides, "search.portfolio=[{unitz: 16}]"])
    assert not (Path(compose(cfg_overrides).paths.mlruns_dir) / "optuna.db").exists(), (
        "no store is made by a refusal"
    )


def test_the_default_preset_places_its_portfolio_and_guards_its_pruner():
    cfg = compose(["search=default"])
    assert len(cfg.search.portfolio) >= 2 and cfg.search.portfolio[0].body == "pooling"
    assert isinstance(make_pruner(cfg), CostGuard)
    assert not isinstance(
        make_pruner(compose(["search=default", "search.cost_guard=null"])), CostGuard
    )
    for alone in (
        "none",
        "hyperband",
    ):  # every epoch runs / TPE reads Hyperband's brackets from study.pruner
        assert not isinstance(
            make_pruner(compose(["search=default", f"search.pruner={alone}"])), CostGuard
        )
    with pytest.raises(
        InputError, match=r"search.cost_guard=1.0; it must be null \(off\) or a finite number > 1"
    ):
        check(compose(["search=default", "search.cost_guard=1"]))


def finished(seconds: float, values: list[float]):
    return create_trial(
        state=TrialState.COMPLETE,
        value=max(values),
        user_attrs={Attr.epoch_seconds: seconds},
        intermediate_values=dict(enumerate(values)),
    )


def guarded_study(*trials, direction="maximize") -> optuna.Study:
    study = optuna.create_study(
        direction=direction, pruner=CostGuard(optuna.pruners.NopPruner(), slowdown=4, min_trials=2)
    )
    study.add_trials(trials)
    return study


@pytest.mark.parametrize(
    "seconds, value, pruned",
    [
        (50.0, 0.50, True),  # 10x the median epoch, at chance: the slow useless start-up trial
        (50.0, 0.80, False),  # as slow, but better than the median: it may be worth its time
        (
            19.0,
            0.50,
            False,
        ),  # under 4x the median epoch: the median pruner's business, not the guard's
        (50.0, 0.70, True),  # equal to the median finished trial's best by epoch 1: no better
    ],
)
def test_the_cost_guard_prunes_only_a_slow_trial_that_is_no_better(seconds, value, pruned):
    study = guarded_study(
        finished(4.0, [0.60, 0.85]), finished(5.0, [0.70, 0.86]), finished(6.0, [0.80, 0.87])
    )
    trial = study.ask()
    trial.set_user_attr(Attr.epoch_seconds, seconds)
    trial.report(value, step=0)
    assert trial.should_prune() is pruned


def test_the_cost_guard_waits_for_enough_finished_trials_and_reads_direction_and_nan():
    study = guarded_study(finished(4.0, [0.60]))
    trial = study.ask()
    trial.set_user_attr(Attr.epoch_seconds, 100.0)
    trial.report(0.1, step=0)
    assert not trial.should_prune(), "one finished trial is no median"
    losses = guarded_study(
        finished(4.0, [0.70, 0.40]), finished(4.0, [0.69, 0.45]), direction="minimize"
    )
    slow = losses.ask()
    slow.set_user_attr(Attr.epoch_seconds, 40.0)
    slow.report(0.30, step=0)
    assert not slow.should_prune(), "a lower loss than theirs is better when minimizing"
    slow.report(float("nan"), step=1)
    assert not slow.should_prune(), "its best by epoch 2 is still 0.30"
    diverged = losses.ask()
    diverged.set_user_attr(Attr.epoch_seconds, 40.0)
    diverged.report(float("nan"), step=0)
    assert diverged.should_prune(), "a NaN loss is worst"
