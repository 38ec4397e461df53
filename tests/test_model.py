"""The model zoo: every preset builds and fits a step; padding never changes a prediction."""

import keras
import numpy as np
import pytest

from pipeline.config import check, compose, group_options, override
from pipeline.core.errors import InputError
from pipeline.models.zoo import POOLINGS, build_model
from tests.conftest import compose_config

PRESETS = group_options("model")
VOCAB = 50


def model_config(preset: str, **values):
    cfg = compose_config(f"model={preset}").model
    for key, value in values.items():
        cfg[key] = value
    return cfg


def test_presets_are_the_seeds_models():
    assert PRESETS == ["bilstm_stacked", "gru", "lstm", "pooling", "simple_rnn"]
    stacked = model_config("bilstm_stacked")
    assert (stacked.body, stacked.num_layers, stacked.bidirectional, stacked.units) == (
        "lstm",
        2,
        True,
        64,
    )


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_builds_and_fits_a_step(preset):
    model = build_model(model_config(preset), VOCAB)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).integers(1, VOCAB, size=(8, 12)).astype("int32")
    x[:4, 7:] = 0
    y = np.array([0, 1] * 4, dtype="float32")
    before = [w.copy() for w in model.get_weights()]
    loss, accuracy = model.train_on_batch(x, y)
    assert np.isfinite(loss) and 0 <= accuracy <= 1
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights())), (
        "one step must move the weights"
    )
    assert model.predict(x, verbose=0).shape == (8, 1)


def test_saved_model_reloads_with_its_masked_max_pooling(tmp_path):
    model = build_model(model_config("pooling", pooling="max"), VOCAB)
    x = np.array([[3, 4, 5, 0, 0]], dtype="int32")
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )


MASKED_VARIANTS = [
    {"body": body, "bidirectional": bidirectional, "num_layers": layers}
    for body in ("simple_rnn", "lstm", "gru")
    for bidirectional in (False, True)
    for layers in (1, 2)
] + [{"body": "pooling", "pooling": "average"}, {"body": "pooling", "pooling": "max"}]


@pytest.mark.parametrize(
    "variant", MASKED_VARIANTS, ids=lambda v: "-".join(str(x) for x in v.values())
)
def test_post_padding_gives_the_same_prediction_as_no_padding(variant):
    keras.utils.set_random_seed(1)
    model = build_model(
        model_config("lstm", units=8, embedding_dim=6, head_units=4, **variant), VOCAB
    )
    tokens = np.array([[5, 17, 3, 42, 8, 11, 29]], dtype="int32")
    padded = np.concatenate([tokens, np.zeros((1, 23), dtype="int32")], axis=1)
    unpadded_prediction = model.predict(tokens, verbose=0)
    np.testing.assert_allclose(
        model.predict(padded, verbose=0), unpadded_prediction, rtol=1e-5, atol=1e-6
    )
    # the check is not vacuous: a recurrent state depends on the last real token, a pooled vector on the tokens
    other = (
        tokens + 1
        if variant["body"] == "pooling"
        else np.array([[5, 17, 3, 42, 8, 11, 30]], dtype="int32")
    )
    assert not np.allclose(model.predict(other, verbose=0), unpadded_prediction, atol=1e-7)


@pytest.mark.parametrize(
    "values, message",
    [
        (
            {"body": "transformer"},
            r"model.body='transformer'; allowed: pooling, simple_rnn, lstm, gru",
        ),
        (
            {"body": "pooling", "pooling": "median"},
            r"model.pooling='median'; allowed: average, max",
        ),
        ({"units": 0}, r"model.units=0; it must be an integer >= 1"),
        ({"num_layers": 1.5}, r"model.num_layers=1.5; it must be an integer >= 1"),
        ({"dropout": 1.0}, r"model.dropout=1.0; it must lie in \[0, 1\)"),
        ({"head_units": -1}, r"model.head_units=-1; it must be an integer >= 0"),
    ],
)
def test_bad_model_settings_are_rejected(values, message):
    overrides = [override(f"model.{key}", value) for key, value in values.items()]
    with pytest.raises(InputError, match=message):
        check(compose(["model=lstm", *overrides]))


@pytest.mark.parametrize(
    "variant", MASKED_VARIANTS, ids=lambda v: "-".join(str(x) for x in v.values())
)
def test_a_row_without_a_single_token_gives_a_finite_prediction(variant):
    """The second line of defence (the data never sends such rows): masked pooling of nothing is 0, not 0/0 (average)
    nor the float minimum (max), which the head's weights turned into inf and NaN in some initialisations (CI)."""
    model = build_model(
        model_config("lstm", units=8, embedding_dim=6, head_units=4, **variant), VOCAB
    )
    rows = np.array([[0, 0, 0, 0], [5, 17, 0, 0]], dtype="int32")
    assert np.isfinite(model.predict(rows, verbose=0)).all()
    if variant.get("pooling") in POOLINGS:
        pooled = keras.Model(
            model.inputs, model.get_layer(f"{variant['pooling']}_pool").output
        ).predict(rows, verbose=0)
        np.testing.assert_array_equal(pooled[0], np.zeros_like(pooled[0]))
        assert np.isfinite(pooled[1]).all() and pooled[1].any(), (
            "a row with tokens pools to its own values"
        )
