"""The config is checked once per entry point (and once per trial), before data or MLflow are touched, by one
rule per setting: the schema's types (pipeline/config/schema.py) and the range table (pipeline/config/__init__.py RULES)."""

import dataclasses
import re
import subprocess
import typing
from pathlib import Path

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


def boolean_keys() -> list[str]:
    """Every setting of a sweep on the sentences whose rule is true or false (all but data.header,
    a table's, and vectors.skip_gram, rnn-vectors')."""
    sweep = compose(["data=sentences"])
    return [
        setting.key
        for setting in schema.all_declared()
        if setting.rule is schema.BOOLEAN and OmegaConf.select(sweep, setting.key) is not None
    ]


@pytest.mark.parametrize("value, shown", [("3", "3"), ("0", "0"), ("yes", "'yes'")])
@pytest.mark.parametrize("key", boolean_keys())
def test_a_switch_is_true_or_false_not_a_number(key, value, shown):
    """OmegaConf turned tracking.trial_charts=3 into true (and 0 into false) before any rule
    saw it: a typo ran a whole sweep."""
    with pytest.raises(InputError, match=rf"^{re.escape(key)}={shown}; allowed: true, false$"):
        check(compose([f"{key}={value}", "data=sentences"]))


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


def test_every_setting_declares_a_one_line_doc():
    """Issue 31: a setting's doc lives beside its type, default and rule in schema.py; --help and
    docs/configuration.md show it, so none may be missing."""
    undocumented = [s.key for s in schema.all_declared() if not s.doc.strip() or "\n" in s.doc]
    assert undocumented == []


def test_each_rule_agrees_with_its_field():
    """A field and its rule disagree when the rule refuses the field's own default or accepts a
    value of another type (an integer field whose rule asks for a name)."""
    other_type = {int: "abc", float: "abc", bool: 1, str: 1}
    disagreeing = []
    for cls in {cls for _, cls in schema.prefixed_schemas()}:
        for field in dataclasses.fields(cls):
            rule = field.metadata.get("rule")
            if rule is None:
                continue
            default, kind = field.default, typing.get_args(field.type) or (field.type,)
            required = field.metadata["doc"].startswith("required")  # null until the user sets it
            concrete = default is not dataclasses.MISSING and not (
                isinstance(default, str) and default.startswith(("${", "???")) or required
            )
            if concrete and not rule.test(default):
                disagreeing.append(f"{cls.__name__}.{field.name}={default!r}")
            if kind[0] in other_type and rule.test(other_type[kind[0]]):
                disagreeing.append(f"{cls.__name__}.{field.name} takes {other_type[kind[0]]!r}")
    assert disagreeing == []


def test_the_rules_are_the_ones_the_schema_fields_declare():
    assert RULES == schema.rules()
    declared = {s.key for s in schema.all_declared()}
    assert [key for key in RULES if key not in declared] == []


def test_a_preset_states_only_what_differs_from_its_schema():
    """conf/ holds no default twice: a group preset's value differs from its schema's default
    (free-form groups, optimizer and callbacks, have no schema defaults)."""
    from pipeline import CONFIG_DIR
    from pipeline.cli.help import preset_values

    defaults = {s.key: s.default for s in schema.all_declared()}
    repeated = []
    for path in sorted(Path(CONFIG_DIR).glob("*/*.yaml")):
        group = path.parent.name
        if group in ("optimizer", "callbacks", "hydra") or path.read_text().startswith("# @pack"):
            continue
        loader = schema.DATA_SCHEMAS.get(path.stem) if group == "data" else None
        own = {s.key: s.default for s in schema.declared(loader, "data.")} if loader else {}
        for key, value in preset_values(path).items():
            if {**defaults, **own}.get(f"{group}.{key}", dataclasses.MISSING) == value:
                repeated.append(f"{path.relative_to(CONFIG_DIR)}: {key}")
    assert repeated == []


def test_every_key_of_the_free_form_presets_is_documented():
    """optimizer and callbacks are Hydra _target_ nodes with any keys: the ones the shipped
    presets state carry a doc (schema.TopLevel's `keys`)."""
    from pipeline import CONFIG_DIR
    from pipeline.cli.help import preset_values

    documented = {s.key for s in schema.declared(schema.TopLevel)}
    undocumented = [
        f"{path.parent.name}.{key}"
        for group in ("optimizer", "callbacks")
        for path in sorted((Path(CONFIG_DIR) / group).glob("*.yaml"))
        for key, value in preset_values(path).items()
        if not key.endswith("_target_") and not isinstance(value, dict)
        if f"{group}.{key}" not in documented
    ]
    assert undocumented == []


@pytest.mark.parametrize(
    "bad, line",
    [
        (["search.register_as=a/b"], "search.register_as='a/b'; it must be null or a model name"),
        (["search.portfolio=[{bodi: gru}]"], "search.portfolio[0].bodi: not an entry of search"),
        (["search=plateau", "search.lr_range=auto"], "search.lr_range=auto needs a float entry"),
    ],
)
def test_the_one_check_holds_the_sweeps_own_checks(bad, line):
    """Issue 31: the registry name, the portfolio and the learning-rate range were checked beside
    config.check, by rnn-sweep's entry point only; now config.check itself refuses them."""
    with pytest.raises(InputError, match=f"^{re.escape(line)}"):
        check(compose(["data=sentences", *bad]))
