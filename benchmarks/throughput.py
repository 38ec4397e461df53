"""Training throughput on IMDB per architecture: rnnsweep's training vs the classic plain-Keras script.

    python benchmarks/throughput.py                         # full 20k/5k/25k split, 2 epochs, every architecture
    python benchmarks/throughput.py --models bilstm_stacked --epochs 3
    python benchmarks/throughput.py --tiny                  # CI: 1,000 reviews, 1 epoch, pooling and gru
    python benchmarks/throughput.py --models bilstm_stacked --ablation   # + the buckets through Keras' own step

Both sides train on the same vectorized arrays (vocab 10k, 500 tokens, post-padded) with the same
batch size and seed, in the same process, alternating. The classic side is the seeds' script: the
model without a mask, fixed 500-step batches. rnnsweep's side is `train_model` with its preset
(masked padding, length buckets: each batch cut to its longest review), early stopping off so both
train the same epochs. Useful tokens are the non-padding tokens of the training split; reviews/s and
tokens/s come from the last epoch (the first one also traces the graph).

The ceiling, measured in the same run: this machine's float32 matmul speed (TensorFlow, 2048 x 2048,
the best of 5 after a warm-up: the least disturbed by other work on the machine), divided by the
body's floating-point operations per token of a training step, computed from its shapes:

    FLOP/token = 3 x sum over recurrent layers and directions of 2 x gates x units x (inputs + units)

(gates: LSTM 4, GRU 3, SimpleRNN 1; inputs: the embedding width, then the previous layer's output,
doubled when bidirectional; 2 FLOP per multiply-add; 3 = the forward matmuls, then the backward's
two of the same size, for the inputs' and the weights' gradients). Elementwise gate work, the
embedding and the head (once per text) are left out, so the ceiling is an upper bound. Processed
tokens are the time steps the recurrent layers run: every row's full width for the classic script,
each batch's rows x its longest text for rnnsweep's buckets (the last epoch's batches, replayed).
The share of the ceiling is processed tokens/s over ceiling tokens/s; the pooling body has no
recurrent matmuls and no ceiling.
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf
from hydra import compose, initialize_config_dir
from keras import layers

from pipeline import CONFIG_DIR
from pipeline.data.batching import (
    evaluation_stream,
    length_sorted_batches,
    text_lengths,
    training_stream,
)
from pipeline.data.texts import prepare_data
from pipeline.models.zoo import build_model
from pipeline.training.train import EpochStats, train_model

MODELS = ("pooling", "simple_rnn", "lstm", "gru", "bilstm_stacked")
SEED_SIZES = {"embedding_dim": 16}  # the seeds' scripts all used 16-dimensional embeddings
GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 matmul speed now: the best of `repeats` timed products after one
    warm-up."""
    a = tf.random.normal((size, size), seed=1)
    b = tf.random.normal((size, size), seed=2)
    tf.matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        tf.matmul(a, b).numpy()
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def flop_per_token(model_cfg) -> float:
    """A training step's matmul FLOP per time step of the recurrent body (the module's formula);
    0 for pooling."""
    if model_cfg.body == "pooling":
        return 0.0
    directions = 2 if model_cfg.bidirectional else 1
    units, inputs, forward = model_cfg.units, model_cfg.embedding_dim, 0
    for _ in range(model_cfg.num_layers):
        forward += directions * 2 * GATES[model_cfg.body] * units * (inputs + units)
        inputs = directions * units
    return 3.0 * forward


def processed_tokens(side: str, cfg, data) -> int:
    """Time steps the recurrent layers run in the last epoch: full width for the classic script;
    rows x longest text per batch for rnnsweep's buckets (replaying its stream's shuffles)."""
    if side == "classic" or not (cfg.train.length_buckets and cfg.model.mask_padding):
        return data.x_train.size
    lengths = text_lengths(data.x_train)
    rng = np.random.default_rng(cfg.train.seed) if cfg.train.shuffle else None
    for _ in range(cfg.train.epochs):
        batches = length_sorted_batches(lengths, cfg.train.batch_size, cfg.train.bucket_pool, rng)
    return sum(len(rows) * int(lengths[rows].max()) for rows in batches)


def config(model: str, epochs: int, batch_size: int, subset):
    overrides = [
        "data=imdb",
        f"model={model}",
        f"model.embedding_dim={SEED_SIZES['embedding_dim']}",
        f"train.epochs={epochs}",
        f"train.batch_size={batch_size}",
        "callbacks=none",
        "train.verbose=0",
        f"data.subset={subset or 'null'}",
    ]
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        return compose("train", overrides=overrides)


def classic_model(cfg, vocab_size: int) -> keras.Model:
    """The plain-Keras way: no mask, so every step of the 500 is computed and carried into the state."""
    model_cfg = cfg.model
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(vocab_size, model_cfg.embedding_dim)(inputs)
    if model_cfg.body == "pooling":
        x = layers.GlobalAveragePooling1D()(x)
    else:
        recurrent = {"simple_rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}[
            model_cfg.body
        ]
        for index in range(model_cfg.num_layers):
            layer = recurrent(model_cfg.units, return_sequences=index < model_cfg.num_layers - 1)
            x = layers.Bidirectional(layer)(x) if model_cfg.bidirectional else layer(x)
    if model_cfg.head_units:
        x = layers.Dense(model_cfg.head_units, activation="relu")(x)
    return keras.Model(inputs, layers.Dense(1, activation="sigmoid")(x))


def run_classic(cfg, data) -> dict:
    keras.utils.set_random_seed(cfg.seed)
    model = classic_model(cfg, data.vocab_size)
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.optimizer.learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    stats = EpochStats(len(data.y_train))
    history = model.fit(
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=cfg.train.epochs,
        batch_size=cfg.train.batch_size,
        callbacks=[stats],
        verbose=0,
    ).history
    _, accuracy = model.evaluate(
        data.x_test, data.y_test, batch_size=cfg.train.batch_size, verbose=0
    )
    return {"history": history, "test_accuracy": accuracy}


def run_keras_step(cfg, data) -> dict:
    """The ablation: rnnsweep's model and length-bucketed stream, but Keras' own step, which reads the stream in-graph."""
    keras.utils.set_random_seed(cfg.seed)
    zoo_model = build_model(cfg.model, data.vocab_size)
    model = keras.Model(
        zoo_model.inputs, zoo_model.outputs
    )  # a plain Functional: Keras' make_train_function
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.optimizer.learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(
        training_stream(data.x_train, data.y_train, cfg.train, cfg.seed),
        epochs=cfg.train.epochs,
        validation_data=evaluation_stream(data.x_val, data.y_val, cfg.train),
        shuffle=False,
        callbacks=[EpochStats(len(data.y_train))],
        verbose=0,
    ).history
    _, accuracy = model.evaluate(evaluation_stream(data.x_test, data.y_test, cfg.train), verbose=0)
    return {"history": history, "test_accuracy": accuracy}


def run_rnnsweep(cfg, data) -> dict:
    result = train_model(cfg, data)
    return {"history": result.history, "test_accuracy": result.summary["test_accuracy"]}


def row(side: str, model: str, outcome: dict, cfg, data, gflops: float) -> str:
    history = outcome["history"]
    useful_tokens = int((data.x_train > 0).sum())
    reviews_per_second = history["samples_per_second"][-1]
    train_seconds = len(data.y_train) / reviews_per_second
    processed = processed_tokens(side, cfg, data) / train_seconds
    flop = flop_per_token(cfg.model)
    if flop:
        ceiling = gflops * 1e9 / flop
        share = f"{ceiling / 1000:.0f}k | {processed / ceiling:.0%}"
    else:
        share = "- | -"
    return (
        f"| {model} | {side} | {history['epoch_seconds'][-1]:.1f} | {reviews_per_second:.0f} | "
        f"{useful_tokens / train_seconds / 1000:.1f}k | {processed / 1000:.1f}k | "
        f"{flop / 1e6:.3f} | {share} | {outcome['test_accuracy']:.4f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--batch-size", type=int, default=512, help="the classic script's fixed batch"
    )
    parser.add_argument(
        "--subset", type=int, default=None, help="train and test reviews to keep (stratified)"
    )
    parser.add_argument(
        "--ablation", action="store_true", help="also: buckets through Keras' own train step"
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="1,000 reviews, 1 epoch, pooling and gru, ablation too (seconds)",
    )
    args = parser.parse_args()
    if args.tiny:
        args.models, args.epochs, args.subset, args.ablation = ["pooling", "gru"], 1, 1000, True
    started = time.strftime("%Y-%m-%d %H:%M")
    gflops = matmul_gflops()
    print(f"matmul ceiling: {gflops:.0f} GFLOP/s (float32 2048x2048, best of 5)", flush=True)
    rows = []
    for model in args.models:
        cfg = config(model, args.epochs, args.batch_size, args.subset)
        data = prepare_data(cfg.data, cfg.paths.cache_dir)
        sides = [("classic", run_classic), ("rnnsweep", run_rnnsweep)]
        sides += [("buckets, Keras' step", run_keras_step)] if args.ablation else []
        for side, train in sides:
            keras.backend.clear_session()
            rows.append(row(side, model, train(cfg, data), cfg, data, gflops))
            print(rows[-1], flush=True)  # as they come: a full run takes a while
    padding = 1 - (data.x_train > 0).mean()
    print(
        f"\nIMDB {data.sizes()}, maxlen 500 ({padding:.0%} of training steps are padding), batch {args.batch_size}, "
        f"{args.epochs} epoch(s), figures of the last epoch; started {started}; keras {keras.__version__}; "
        f"matmul ceiling {gflops:.0f} GFLOP/s (float32 2048x2048, best of 5, measured at the start)"
    )
    print(
        "| model | training | epoch s | reviews/s | useful tokens/s | processed tokens/s | "
        "MFLOP/token | ceiling tokens/s | share of ceiling | test accuracy |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
