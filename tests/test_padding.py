"""The padding axis: model.mask_padding (masked or fed to the layers, cut or full-width batches) and
data.padding (zeros after or before each text), and the search=plateau_padding preset that crosses them."""

import subprocess
from pathlib import Path

import keras
import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient

from pipeline.report import sweep_report
from pipeline.data.batching import evaluation_stream, training_stream
from pipeline.config import compose
from pipeline.data.texts import prepare_data
from pipeline.core.errors import InputError
from pipeline.models.zoo import build_model
from pipeline.search.sweep import run_sweep
from pipeline.config import check as check_config
from tests.conftest import BIN, compose_config

VOCAB = 50
TOKENS = np.array([[5, 17, 3, 42, 8, 11, 29]], dtype="int32")


def model_config(preset: str, **values):
    cfg = compose_config(f"model={preset}").model
    for key, value in values.items():
        cfg[key] = value
    return cfg


def predictions_with_padding(
    model, tokens: np.ndarray, pads: list[int], side: str
) -> list[np.ndarray]:
    """The model's output for one text padded with each number of zeros, after (post) or before (pre) it."""
    outputs = []
    for count in pads:
        zeros = np.zeros((1, count), dtype="int32")
        padded = np.concatenate([tokens, zeros] if side == "post" else [zeros, tokens], axis=1)
        outputs.append(model.predict(padded, verbose=0))
    return outputs


@pytest.mark.parametrize("preset", ["gru", "pooling"])
def test_without_the_mask_the_padding_reaches_the_model(preset):
    for mask_padding in (True, False):
        keras.utils.set_random_seed(3)
        model = build_model(
            model_config(preset, mask_padding=mask_padding, units=8, embedding_dim=6), VOCAB
        )
        short, long = predictions_with_padding(model, TOKENS, [3, 33], "post")
        if mask_padding:
            np.testing.assert_allclose(short, long, rtol=1e-5, atol=1e-6)
        else:
            assert not np.allclose(short, long, atol=1e-6), (
                "30 more zeros must change an unmasked model's output"
            )


def test_unmasked_average_pooling_is_the_plain_mean_over_every_step_padding_included():
    keras.utils.set_random_seed(3)
    model = build_model(model_config("pooling", mask_padding=False, embedding_dim=6), VOCAB)
    rows = np.array([[5, 17, 0, 0], [0, 0, 0, 0]], dtype="int32")
    pooled = keras.Model(model.inputs, model.get_layer("average_pool").output).predict(
        rows, verbose=0
    )
    embedded = keras.Model(model.inputs, model.get_layer("embedding").output).predict(
        rows, verbose=0
    )
    np.testing.assert_allclose(pooled, embedded.mean(axis=1), rtol=1e-6)
    assert np.isfinite(pooled).all() and not np.allclose(pooled[1], 0), (
        "a row of padding averages padding's embedding"
    )


def test_pre_padding_puts_the_zeros_in_front_and_keeps_each_text(make_cfg):
    post = prepare_data(make_cfg().data, make_cfg().paths.cache_dir)
    pre = prepare_data(make_cfg("data.padding=pre").data, make_cfg().paths.cache_dir)
    assert pre.cache_file != post.cache_file, "the cache key includes data.padding"
    assert (pre.x_train[:, -1] != 0).all() and (post.x_train[:, 0] != 0).all()
    for pre_row, post_row in zip(pre.x_train, post.x_train):
        tokens = np.count_nonzero(pre_row)
        assert not pre_row[:-tokens].any() and (pre_row[-tokens:] == post_row[:tokens]).all()
    assert pre.sizes() == post.sizes() and pre.vocabulary == post.vocabulary


def test_unmasked_batches_keep_the_full_length_and_masked_ones_are_cut(make_cfg):
    masked, unmasked = make_cfg("model=gru"), make_cfg("model=gru", "model.mask_padding=false")
    assert masked.train.length_buckets and not unmasked.train.length_buckets, (
        "length buckets follow the mask"
    )
    data = prepare_data(masked.data, masked.paths.cache_dir)
    widths = lambda stream: {tokens.shape[1] for tokens, _ in stream.as_numpy_iterator()}
    assert widths(training_stream(data.x_train, data.y_train, unmasked.train, 0)) == {
        masked.data.max_len
    }
    assert widths(evaluation_stream(data.x_val, data.y_val, unmasked.train)) == {
        masked.data.max_len
    }
    assert (
        min(widths(training_stream(data.x_train, data.y_train, masked.train, 0)))
        < masked.data.max_len
    )


def test_cut_batches_of_pre_padded_texts_keep_every_token(make_cfg):
    cfg = make_cfg("data.padding=pre")
    data = prepare_data(cfg.data, cfg.paths.cache_dir)
    batches = list(training_stream(data.x_train, data.y_train, cfg.train, 0).as_numpy_iterator())
    assert sum(np.count_nonzero(tokens) for tokens, _ in batches) == np.count_nonzero(data.x_train)
    assert any(tokens.shape[1] < cfg.data.max_len for tokens, _ in batches)


def test_cutting_unmasked_padding_is_refused(make_cfg):
    with pytest.raises(InputError, match="train.length_buckets=true with model.mask_padding=false"):
        check_config(make_cfg("model.mask_padding=false", "train.length_buckets=true"))


@pytest.mark.parametrize(
    "bad, message",
    [
        ("model.mask_padding=maybe", "error: model.mask_padding='maybe'; allowed: true, false"),
        ("data.padding=middle", "error: data.padding='middle'; allowed: post, pre"),
    ],
)
def test_cli_bad_padding_values_exit_2_with_one_line(tmp_path, bad, message):
    result = subprocess.run(
        [
            BIN / "rnn-train",
            "data=sentences",
            bad,
            f"paths.mlruns_dir={tmp_path / 'mlruns'}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"paths.log_dir={tmp_path / 'logs'}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": str(BIN), "HOME": str(tmp_path)},
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [message]
    assert not (tmp_path / "mlruns").exists()


def test_plateau_padding_preset_composes_to_the_seed_model_and_its_grid():
    cfg = compose(["search=plateau_padding", "data=sentences"])
    assert (cfg.model.body, cfg.model.units, cfg.optimizer._target_) == (
        "gru",
        32,
        "keras.optimizers.RMSprop",
    )
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.search.sampler, cfg.search.pruner) == (
        40,
        128,
        "grid",
        "none",
    )
    assert not cfg.callbacks, "no early stopping: a plateau is watched to its end"
    space = cfg.search.space
    assert {entry.path for entry in space.values()} == {
        "optimizer.learning_rate",
        "model.mask_padding",
        "data.padding",
    }
    grid = np.prod([len(entry.choices) for entry in space.values()])
    assert cfg.search.n_trials == grid, "one invocation runs the whole grid"


@pytest.mark.slow
def test_a_tiny_plateau_padding_sweep_runs_every_setting_and_tabulates_them(
    sweep_overrides, capsys
):
    overrides = [
        *sweep_overrides,
        "search=plateau_padding",
        "train.epochs=1",
        "search.n_trials=4",
        "search.space.learning_rate.choices=[1.0e-2]",
    ]
    assert run_sweep(compose(overrides), overrides) == 0
    cfg = compose(overrides)
    study = optuna.load_study(
        study_name=cfg.search.study_name,
        storage=f"sqlite:///{Path(cfg.paths.mlruns_dir) / 'optuna.db'}",
    )
    settings = {
        (t.params["mask_padding"], t.params["padding"])
        for t in study.trials
        if t.state.name == "COMPLETE"
    }
    assert settings == {(True, "post"), (True, "pre"), (False, "post"), (False, "pre")}
    out = capsys.readouterr().out
    assert "Plateau epochs by setting and learning rate" in out
    for label in ("mask_padding=true, padding=post", "mask_padding=false, padding=pre"):
        assert any(line.strip().startswith(label) for line in out.splitlines()), label
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    [parent] = [
        r
        for r in client.search_runs([experiment.experiment_id])
        if "mlflow.parentRunId" not in r.data.tags
    ]
    assert "plateau_vs_learning_rate.png" in {
        a.path for a in client.list_artifacts(parent.info.run_id)
    }


def fabricated(
    number,
    rate,
    mask,
    side,
    plateau,
    censored,
    rates=optuna.distributions.CategoricalDistribution([1e-4, 1e-2]),
):
    distributions = {
        "learning_rate": rates,
        "mask_padding": optuna.distributions.CategoricalDistribution([True, False]),
        "padding": optuna.distributions.CategoricalDistribution(["post", "pre"]),
    }
    attrs = {
        "learning_rate": rate,
        "plateau_epochs": plateau,
        "plateau_censored": int(censored),
        "curve_loss": [0.69],
    }
    return optuna.trial.create_trial(
        state=optuna.trial.TrialState.COMPLETE,
        value=0.5,
        user_attrs=attrs,
        params={"learning_rate": rate, "mask_padding": mask, "padding": side},
        distributions=distributions,
    )


def test_plateau_chart_and_table_show_one_series_per_setting():
    trials = [
        fabricated(0, 1e-4, False, "post", 40, True),
        fabricated(1, 1e-2, False, "post", 10, False),
        fabricated(2, 1e-4, True, "post", 20, False),
        fabricated(3, 1e-2, True, "post", 1, False),
    ]
    lines = sweep_report.plateau_table_lines(trials)
    rows = {line.split("  ")[1].strip(): line.split()[-2:] for line in lines[2:]}
    assert rows == {
        "mask_padding=false, padding=post": ["≥40", "10"],
        "mask_padding=true, padding=post": ["20", "1"],
    }
    figure = sweep_report.plateau_vs_learning_rate(trials)
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert labels == [
        "mask_padding=false, padding=post",
        "mask_padding=true, padding=post",
        "still on its plateau (≥)",
    ]
    hollow = [
        c
        for c in figure.axes[0].collections
        if len(c.get_facecolors()) == 0 and len(c.get_offsets())
    ]
    assert [tuple(c.get_offsets()[0])[1] for c in hollow] == [40], (
        "the censored plateau is the one hollow triangle"
    )
    sweep_report.plt.close(figure)


def test_a_search_without_a_grid_of_learning_rates_gets_no_table():
    rates = optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True)
    trials = [
        fabricated(n, rate, True, "post", 2, False, rates)
        for n, rate in enumerate(np.geomspace(1e-5, 1e-1, 12))
    ]
    assert sweep_report.plateau_table_lines(trials) == []
