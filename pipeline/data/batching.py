"""Batches of similar-length texts, each cut to its longest text, so recurrent layers skip most
padding.

The vectorized arrays are padded to `data.max_len` (after each text, or before it: data.padding);
over half of an IMDB batch is padding. Masking keeps padding out of the results but not out of the
compute, so training batches are formed from texts of similar length (sorted within shuffled pools
of a few batches) and each batch keeps only the columns that hold its longest text. Results do not
change: the padding that is cut was masked anyway. Unmasked padding (model.mask_padding=false) is
input: then train.length_buckets is off and every batch keeps data.max_len columns.
"""

import numpy as np
import tensorflow as tf
from omegaconf import DictConfig


def text_lengths(x: np.ndarray) -> np.ndarray:
    """Tokens per row of a padded array (0 is padding only)."""
    return np.count_nonzero(x, axis=1)


def length_sorted_batches(
    lengths: np.ndarray, batch_size: int, pool_batches: int, rng=None
) -> list[np.ndarray]:
    """Row indices per batch: pools of `pool_batches` batches are sorted by length, then cut into
    batches.

    With `rng` the rows are shuffled before pooling and the batches after it (training); without it
    the original order is pooled and the batches keep the pools' order. `pool_batches` 0 sorts
    nothing.
    """
    order = rng.permutation(len(lengths)) if rng is not None else np.arange(len(lengths))
    pool = batch_size * pool_batches or batch_size
    batches = []
    for start in range(0, len(order), pool):
        members = order[start : start + pool]
        if pool_batches:
            members = members[np.argsort(lengths[members], kind="stable")]
        batches += [members[i : i + batch_size] for i in range(0, len(members), batch_size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def batch_stream(
    x: np.ndarray, y: np.ndarray, batch_size: int, pool_batches: int, seed: int | None
) -> tf.data.Dataset:
    """(tokens, labels) batches, reshuffled every epoch when seeded; with pools, cut to their
    longest text.

    `pool_batches` 0 keeps every batch at the arrays' full width, as the classic scripts do.
    """
    lengths = text_lengths(x)
    rng = np.random.default_rng(seed) if seed is not None else None

    def batches():
        for rows in length_sorted_batches(lengths, batch_size, pool_batches, rng):
            yield (cut_to_longest(x[rows]) if pool_batches else x[rows]), y[rows]

    signature = (
        tf.TensorSpec((None, None), tf.as_dtype(x.dtype)),
        tf.TensorSpec((None,), tf.as_dtype(y.dtype)),
    )
    stream = tf.data.Dataset.from_generator(batches, output_signature=signature)
    return stream.apply(tf.data.experimental.assert_cardinality(-(-len(y) // batch_size))).prefetch(
        2
    )


def cut_to_longest(block: np.ndarray) -> np.ndarray:
    """The columns from the first to the last that hold a token in some row: the batch cut to its
    longest text, whichever side it is padded on (data.padding). At least one column, even for rows
    of padding only."""
    used = np.flatnonzero(block.any(axis=0))
    return block[:, used[0] : used[-1] + 1] if len(used) else block[:, :1]


def training_stream(
    x: np.ndarray, y: np.ndarray, train_cfg: DictConfig, seed: int
) -> tf.data.Dataset:
    """The training split's batches: length-bucketed in pools of `train.bucket_pool` batches, or
    full width."""
    pool_batches = train_cfg.bucket_pool if train_cfg.length_buckets else 0
    return batch_stream(
        x, y, train_cfg.batch_size, pool_batches, seed if train_cfg.shuffle else None
    )


def evaluation_stream(x: np.ndarray, y: np.ndarray, train_cfg: DictConfig) -> tf.data.Dataset:
    """Validation or test batches in a fixed order: with buckets, all texts sorted by length (least
    padding)."""
    pool_batches = -(-len(y) // train_cfg.batch_size) if train_cfg.length_buckets else 0
    return batch_stream(x, y, train_cfg.batch_size, pool_batches, seed=None)
