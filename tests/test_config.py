"""The config is checked once per entry point (and once per trial), before data or MLflow are touched, by one
rule per setting: the schema's types (pipeline/config/schema.py) and the range table (pipeline/config/__init__.py RULES)."""

import dataclasses
import re
import subprocess
import typing

import pytest
from omegaconf import OmegaConf

from pipeline import config
from pipeline.config import schema
from pipeline.config import RULES, check, compose
from pipeline.core.errors import InputError
from pipeline.config.space import parse_space
from pipeline.search.sweep import run_sweep
from pipeline.training.train import run_training
from tests.conftest import BIN

BAD_VALUES = [  # (override, the one line it gets)
    ("model.units=true", "model.units=true; it must be an integer >= 1"),
    ("model.num_layers=true", "model.num_layers=true; it must be an integer >= 1"),
    ("train.bucket_pool=true", "train.bucket_pool=true; it must be an integer >= 1"),
    ("train.epochs=abc", "train.epochs='abc'; it must be an integer >= 1"),
    ("model.dropout=1.0", "model.dropout=1.0; it must lie in [0, 1)"),
    ("train.verbose=true", "train.verbose=true; allowed: 0, 1, 2"),
]


def integer_keys() -> list[str]:
    """Every setting the schemas type as an integer."""
    keys = []
    for group, cls in [*schema.SCHEMAS.items(), ("data", schema.SentencesData)]:
        for field in dataclasses.fields(cls):
            if field.type in (int, typing.Optional[int]):
                keys.append(f"{group}.{field.name}")
    return keys


@pytest.mark.parametrize("key", integer_keys())
def test_true_is_no_integer_anywhere(key):
    """One integer rule for every integer setting: the old checks took model.units=true as 1."""
    with pytest.raises(
        InputError,
        match=rf"^{re.escape(key)}=true; (it must be (null or )?an integer|allowed: 0, 1, 2$)",
    ):
        check(compose([f"{key}=true", "data=sentences"]))


UNBOUNDED = [
    "search.timeout",
    "search.cost_guard",
    "optimizer.learning_rate",
    "lr_find.start_lr",
    "lr_find.end_lr",
    "lr_find.divergence",
]  # numbers with no upper bound in their rule


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
@pytest.mark.parametrize("key", UNBOUNDED)
def test_a_number_setting_is_finite(key, value):
    """optimizer.learning_rate=inf trained (a NaN loss at once, blamed on the trial) and search.cost_guard=inf
    was taken for a setting: a number rule asks for a finite number."""
    with pytest.raises(
        InputError,
        match=rf"^{re.escape(key)}={value}; it must be (null( \(off\))? or )?a finite number",
    ):
        check(compose([f"{key}={value}", "data=sentences"]))


def test_a_number_no_float_can_hold_gets_the_one_line_message():
    """search.timeout=1 followed by 400 zeros raised OverflowError in math.isfinite: a traceback, exit 1."""
    huge = "1" + "0" * 400
    with pytest.raises(
        InputError,
        match=rf"^search.timeout={huge}; it must be null or a finite number of seconds > 0$",
    ):
        check(compose([f"search.timeout={huge}", "data=sentences"]))


def test_more_trials_than_the_workers_counter_holds_are_refused():
    """The workers take trials from a counter that is a C int: 4294967297 wrapped to 1 trial, 2147483648 to none."""
    with pytest.raises(
        InputError,
        match=r"^search.n_trials=4294967297; it must be an integer from 1 to 1000000000$",
    ):
        check(compose(["search.n_trials=4294967297", "data=sentences"]))
    check(compose(["search.n_trials=1000000000", "data=sentences"]))


@pytest.mark.parametrize("value", ["0", "1", "nan", "inf", "1.5", "-0.1"])
def test_sgd_momentum_is_a_float_from_0_to_1(value):
    """optimizer.momentum=0 (as the preset's comment said, for plain SGD) failed in Keras' SGD, which takes a float
    only; nan passed Keras' own range check and trained on NaN."""
    with pytest.raises(
        InputError,
        match=rf"^optimizer.momentum={value}; it must be a number from 0.0 to 1.0, with its decimal point",
    ):
        check(compose(["optimizer=sgd", f"optimizer.momentum={value}", "data=sentences"]))
    check(compose(["optimizer=sgd", "optimizer.momentum=0.0", "data=sentences"]))


def test_every_rule_names_a_setting_of_the_schema_or_of_the_conf_catalogs():
    """A rule for a misspelt key would never fire: each names a schema key, or a key the shipped conf states in one
    of the free-form catalogs (an optimizer preset, search.samplers)."""
    known = schema.schema_keys()
    presets = [
        compose(["data=sentences", f"optimizer={name}"])
        for name in config.group_options("optimizer")
    ]
    assert [
        key
        for key in RULES
        if key not in known and all(OmegaConf.select(c, key) is None for c in presets)
    ] == []
    catalogs = ("optimizer.", "search.samplers.")
    assert [key for key in RULES if key not in known and not key.startswith(catalogs)] == []


@pytest.mark.parametrize("entry", ["rnn-train", "rnn-sweep"])
@pytest.mark.parametrize("bad, line", BAD_VALUES, ids=[bad for bad, _ in BAD_VALUES])
def test_each_entry_point_rejects_a_bad_value_before_data_or_mlflow(tmp_path, entry, bad, line):
    cache, mlruns = tmp_path / "cache", tmp_path / "mlruns"
    command = [
        str(BIN / entry),
        "data=sentences",
        bad,
        f"paths.cache_dir={cache}",
        f"paths.mlruns_dir={mlruns}",
        f"paths.log_dir={tmp_path / 'logs'}",
        "tracking.uri=null",
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [f"error: {line}"]
    assert not cache.exists() and not mlruns.exists(), "nothing read, downloaded or recorded"


class CountChecks:
    """Records every config.check call; the check itself still runs."""

    def __init__(self, monkeypatch):
        self.configs = []
        real = config.check

        def counting(cfg):
            self.configs.append(cfg)
            return real(cfg)

        monkeypatch.setattr(
            "pipeline.config.check", counting
        )  # train, sweep and objective call config.check
        monkeypatch.setattr(
            "pipeline.config.space.check", counting
        )  # the probes of the search space


def test_rnn_train_checks_its_config_once(make_cfg, monkeypatch):
    calls = CountChecks(monkeypatch)
    run_training(make_cfg("tracking.experiment=check-once"))
    assert len(calls.configs) == 1, "prepare_data, build_model and train_model check nothing again"


def test_a_sweep_checks_its_base_once_each_probe_once_and_each_trial_once(
    sweep_overrides, monkeypatch
):
    overrides = [*sweep_overrides, "search=quick", "search.n_trials=2", "search.pruner=none"]
    cfg = compose(overrides)
    probes = sum(len(entry.probe_values()) for entry in parse_space(cfg))
    calls = CountChecks(monkeypatch)
    assert run_sweep(cfg, overrides) == 0
    assert len(calls.configs) == 1 + probes + 2
    trial_configs = calls.configs[1 + probes :]
    assert all(
        OmegaConf.select(c, "search.study_name") == cfg.search.study_name for c in trial_configs
    )


@pytest.mark.parametrize("search", ["default", "quick"])
def test_a_trial_composed_from_cached_groups_equals_hydras_own_composition(sweep_overrides, search):
    import optuna

    from pipeline.config import chosen_groups, compose_with_values
    from pipeline.config.space import suggest

    base = [*sweep_overrides, f"search={search}", "model=gru"]
    cfg, groups = compose(base), chosen_groups(base)
    study, chosen = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7)), set()
    for _ in range(25):
        sampled = suggest(study.ask(), parse_space(cfg), cfg, groups)
        group_choices = [o for o in sampled if o.split("=", 1)[0] in groups]
        chosen.update(group_choices)
        values = [o for o in sampled if o not in group_choices] + ["search.study_name='a b: c'"]
        fast = compose_with_values([*base, *group_choices], values)
        assert OmegaConf.to_container(fast) == OmegaConf.to_container(
            compose([*base, *group_choices, *values])
        ), sampled
    assert chosen == (
        {"optimizer=adam", "optimizer=rmsprop", "optimizer=sgd"} if search == "default" else set()
    ), chosen


def test_a_bad_value_applied_to_cached_groups_is_the_same_one_line_error(sweep_overrides):
    from pipeline.config import compose_with_values

    for bad in ["model.units=true", "model.unitz=3"]:
        with pytest.raises(InputError) as composed:
            compose([*sweep_overrides, bad])
        with pytest.raises(InputError) as fast:
            compose_with_values(sweep_overrides, [bad])
        assert str(fast.value) == str(composed.value) and "\n" not in str(fast.value)
