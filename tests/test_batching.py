"""Length buckets: every text once per epoch, batches cut to their longest text, same results as full width."""

import re

import keras
import numpy as np
import pytest

from pipeline.data.batching import (
    batch_stream,
    evaluation_stream,
    length_sorted_batches,
    text_lengths,
    training_stream,
)
from pipeline.core.errors import InputError
from pipeline.models.zoo import VariableLengthModel, build_model
from pipeline.config import check, compose
from tests.conftest import compose_config

VOCAB = 40


def padded_texts(lengths, width=30, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((len(lengths), width), dtype="int32")
    for row, length in enumerate(lengths):
        x[row, :length] = rng.integers(1, VOCAB, size=length)
    return x


def test_pools_are_sorted_by_length_and_every_row_comes_once():
    lengths = np.random.default_rng(1).integers(1, 30, size=103)
    batches = length_sorted_batches(
        lengths, batch_size=10, pool_batches=4, rng=np.random.default_rng(2)
    )
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(103))
    assert sorted(len(batch) for batch in batches) == [3] + [10] * 10
    shuffled = np.random.default_rng(2).permutation(
        103
    )  # the pools: 40 consecutive shuffled rows each
    for batch in batches:
        pool = {index // 40 for index, row in enumerate(shuffled) if row in batch}
        assert len(pool) == 1, "a batch never mixes two pools"
    widths = [lengths[batch].max() - lengths[batch].min() for batch in batches]
    assert np.mean(widths) < 10, "sorting within pools groups similar lengths"


def test_seeded_epochs_differ_and_repeat_with_the_seed():
    lengths = np.random.default_rng(1).integers(1, 30, size=64)
    first_rng, again_rng = np.random.default_rng(7), np.random.default_rng(7)
    epoch_1 = length_sorted_batches(lengths, 8, 2, first_rng)
    epoch_2 = length_sorted_batches(lengths, 8, 2, first_rng)
    assert any(not np.array_equal(a, b) for a, b in zip(epoch_1, epoch_2))
    assert all(
        np.array_equal(a, b)
        for a, b in zip(epoch_1, length_sorted_batches(lengths, 8, 2, again_rng))
    )


def test_without_rng_or_pools_the_order_is_kept():
    lengths = np.array([5, 1, 4, 2, 3])
    assert [b.tolist() for b in length_sorted_batches(lengths, 2, 0)] == [[0, 1], [2, 3], [4]]
    assert [b.tolist() for b in length_sorted_batches(lengths, 2, 3)] == [[1, 3], [4, 2], [0]]


def test_stream_batches_are_cut_to_their_longest_text():
    lengths = [3, 30, 7, 2, 12, 5, 9, 1]
    x, y = padded_texts(lengths), np.arange(8, dtype="float32")
    batches = list(batch_stream(x, y, batch_size=3, pool_batches=3, seed=None).as_numpy_iterator())
    assert [xb.shape for xb, _ in batches] == [(3, 3), (3, 9), (2, 30)]
    for xb, yb in batches:
        rows = yb.astype(int)
        np.testing.assert_array_equal(xb, x[rows, : xb.shape[1]])
        assert text_lengths(xb).tolist() == [lengths[row] for row in rows], "no token is cut"
    full = list(batch_stream(x, y, batch_size=3, pool_batches=0, seed=None).as_numpy_iterator())
    assert [xb.shape for xb, _ in full] == [(3, 30), (3, 30), (2, 30)]


def test_training_stream_reshuffles_every_epoch_and_knows_its_length():
    x, y = padded_texts(range(1, 25)), np.arange(24, dtype="float32")
    train_cfg = compose_config("train.batch_size=4", "train.bucket_pool=2").train
    stream = training_stream(x, y, train_cfg, seed=3)
    assert int(stream.cardinality()) == 6
    epochs = [np.concatenate([yb for _, yb in stream.as_numpy_iterator()]) for _ in range(2)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(24))
    assert not np.array_equal(epochs[0], epochs[1])


@pytest.mark.parametrize("preset", ["pooling", "gru", "bilstm_stacked"])
def test_buckets_give_the_same_scores_as_full_width(preset):
    lengths = np.random.default_rng(4).integers(1, 30, size=48)
    x, y = padded_texts(lengths, seed=5), np.tile([0.0, 1.0], 24).astype("float32")
    cfg = compose_config(f"model={preset}", "train.batch_size=8")
    model = build_model(cfg.model, VOCAB)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    bucketed = model.evaluate(evaluation_stream(x, y, cfg.train), verbose=0)
    cfg.train.length_buckets = False
    full_width = model.evaluate(evaluation_stream(x, y, cfg.train), verbose=0)
    np.testing.assert_allclose(bucketed, full_width, rtol=1e-5)


def test_fit_on_varying_lengths_reuses_one_generic_trace():
    lengths = np.random.default_rng(6).integers(1, 30, size=64)
    x, y = padded_texts(lengths), np.tile([0.0, 1.0], 32).astype("float32")
    cfg = compose_config("model=gru", "train.batch_size=8", "train.bucket_pool=8")
    model = build_model(cfg.model, VOCAB)
    assert isinstance(model, VariableLengthModel)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(training_stream(x, y, cfg.train, seed=0), epochs=2, shuffle=False, verbose=0)
    widths = {xb.shape[1] for xb, _ in training_stream(x, y, cfg.train, seed=0).as_numpy_iterator()}
    assert len(widths) >= 6
    # one trace for every width: 64 texts make 8 full batches of 8. Left to tf.function: the first
    # width twice (the optimizer made its variables in the first trace), then one for any width
    assert model.train_function.traced.experimental_get_tracing_count() == 1
    # a shorter last batch: one more trace, for any batch size (the first keeps the full batches')
    model.fit(training_stream(x[:60], y[:60], cfg.train, seed=0), epochs=2, verbose=0)
    assert model.train_function.traced.experimental_get_tracing_count() == 2
    model.evaluate(evaluation_stream(x, y, cfg.train), verbose=0)
    assert model.test_function.traced.experimental_get_tracing_count() == 1


class KerasStepModel(keras.Model):
    """A functional model trained through Keras' own step functions."""


@pytest.mark.parametrize("buckets", [True, False])
def test_one_trace_per_batch_size_trains_as_keras_own_step_does(buckets):
    """The same seed, the same stream: the same losses and weights as Keras' make_train_function."""
    lengths = np.random.default_rng(8).integers(1, 30, size=60)
    x, y = padded_texts(lengths), np.tile([0.0, 1.0], 30).astype("float32")
    cfg = compose_config("model=gru", "train.batch_size=8", f"train.length_buckets={buckets}")
    histories, weights = [], []
    for keras_step in (False, True):
        keras.utils.set_random_seed(3)
        model = build_model(cfg.model, VOCAB)
        if keras_step:
            model = KerasStepModel(model.inputs, model.outputs)
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        fitted = model.fit(
            training_stream(x, y, cfg.train, seed=0),
            validation_data=evaluation_stream(x, y, cfg.train),
            epochs=3,
            shuffle=False,
            verbose=0,
        )
        histories.append(fitted.history)
        weights.append(model.get_weights())
    assert histories[0].keys() == histories[1].keys()
    for key in histories[0]:
        np.testing.assert_allclose(histories[0][key], histories[1][key], rtol=1e-6, err_msg=key)
    for ours, keras_own in zip(*weights):
        np.testing.assert_allclose(ours, keras_own, rtol=1e-5, atol=1e-7)


def test_reloaded_model_keeps_its_class(tmp_path):
    model = build_model(compose_config("model=gru").model, VOCAB)
    model.save(tmp_path / "model.keras")
    assert isinstance(keras.saving.load_model(tmp_path / "model.keras"), VariableLengthModel)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.length_buckets=maybe", "train.length_buckets='maybe'; allowed: true, false"),
        ("train.bucket_pool=0", "train.bucket_pool=0; it must be an integer >= 1"),
        ("train.bucket_pool=2.5", "train.bucket_pool=2.5; it must be an integer >= 1"),
    ],
)
def test_bad_bucket_settings_are_named(override, message):
    with pytest.raises(InputError, match=re.escape(message)):
        check(compose([override]))
