"""The throughput benchmark's ceiling: a body's training FLOP per token from its shapes, and the
time steps each side's recurrent layers run."""

from types import SimpleNamespace

import numpy as np
import pytest
from omegaconf import OmegaConf

from pipeline.data.batching import cut_to_longest, length_sorted_batches
from tests.helpers.benchmarks import load_benchmark


@pytest.fixture(scope="module")
def throughput():
    return load_benchmark("throughput")


def model(**values):
    base = {"body": "lstm", "bidirectional": False, "num_layers": 1, "units": 64}
    return OmegaConf.create({"embedding_dim": 16, **base, **values})


def test_the_stacked_bilstm_costs_what_measured_md_says(throughput):
    stacked = model(bidirectional=True, num_layers=2)
    # forward: 2 directions x 2 x 4 gates x 64 x (16 + 64), then x (128 + 64); training: x 3
    assert throughput.flop_per_token(stacked) == 3 * (2 * 8 * 64 * 80 + 2 * 8 * 64 * 192)
    assert throughput.flop_per_token(stacked) / 1e6 == pytest.approx(0.84, abs=0.005)
    assert throughput.flop_per_token(model(body="gru", units=32)) == 3 * 2 * 3 * 32 * 48
    assert throughput.flop_per_token(model(body="simple_rnn")) == 3 * 2 * 64 * 80
    assert throughput.flop_per_token(model(body="pooling")) == 0


def test_processed_tokens_are_full_width_for_the_classic_script_and_the_buckets_for_rnnsweep(
    throughput,
):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 30, 50)
    x = np.zeros((50, 30), dtype="int32")
    for row, n in enumerate(lengths):
        x[row, :n] = 1
    data = SimpleNamespace(x_train=x)
    train = {"length_buckets": True, "seed": 7, "shuffle": True, "epochs": 2}
    train |= {"batch_size": 8, "bucket_pool": 2}
    cfg = OmegaConf.create({"train": train, "model": {"mask_padding": True}})
    assert throughput.processed_tokens("classic", cfg, data) == x.size
    replay = np.random.default_rng(7)
    for _ in range(2):  # the stream reshuffles every epoch: the last epoch's batches
        batches = length_sorted_batches(lengths, 8, 2, replay)
    expected = sum(cut_to_longest(x[rows]).size for rows in batches)
    assert throughput.processed_tokens("rnnsweep", cfg, data) == expected < x.size
