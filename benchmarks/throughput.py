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
"""

import argparse
import time

import keras
from hydra import compose, initialize_config_dir
from keras import layers

from pipeline import CONFIG_DIR
from pipeline.data.batching import evaluation_stream, training_stream
from pipeline.data.texts import prepare_data
from pipeline.models.zoo import build_model
from pipeline.training.train import EpochStats, train_model

MODELS = ("pooling", "simple_rnn", "lstm", "gru", "bilstm_stacked")
SEED_SIZES = {"embedding_dim": 16}  # the seeds' scripts all used 16-dimensional embeddings


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


def row(side: str, model: str, outcome: dict, data) -> str:
    history = outcome["history"]
    useful_tokens = int((data.x_train > 0).sum())
    reviews_per_second = history["samples_per_second"][-1]
    train_seconds = len(data.y_train) / reviews_per_second
    return (
        f"| {model} | {side} | {history['epoch_seconds'][-1]:.1f} | {reviews_per_second:.0f} | "
        f"{useful_tokens / train_seconds / 1000:.1f}k | {outcome['test_accuracy']:.4f} |"
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
    rows = []
    for model in args.models:
        cfg = config(model, args.epochs, args.batch_size, args.subset)
        data = prepare_data(cfg.data, cfg.paths.cache_dir)
        sides = [("classic", run_classic), ("rnnsweep", run_rnnsweep)]
        sides += [("buckets, Keras' step", run_keras_step)] if args.ablation else []
        for side, train in sides:
            keras.backend.clear_session()
            rows.append(row(side, model, train(cfg, data), data))
            print(rows[-1], flush=True)  # as they come: a full run takes a while
    padding = 1 - (data.x_train > 0).mean()
    print(
        f"\nIMDB {data.sizes()}, maxlen 500 ({padding:.0%} of training steps are padding), batch {args.batch_size}, "
        f"{args.epochs} epoch(s), figures of the last epoch; started {started}; keras {keras.__version__}"
    )
    print("| model | training | epoch s | reviews/s | useful tokens/s | test accuracy |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
