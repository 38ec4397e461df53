"""What logging the gradient signal (train.log_gradients) costs per epoch, and that it changes no result.

    python benchmarks/gradient_overhead.py                                   # GRU 32 on sentences + SimpleRNN on an IMDB subset
    python benchmarks/gradient_overhead.py --cases sentences --repeats 3 --epochs 5

Each case trains the same config with train.log_gradients off and on, alternating which goes first, with
the same seed, in one process. An epoch's time is `epoch_seconds` (training and validation, wall clock)
and the CPU seconds the process spent in it (all its threads); the first epoch of each run also traces
the graph and is left out. The overhead is the mean over repetitions of (median epoch with logging /
median epoch without - 1); the spread over repetitions says how noisy the machine was. On a shared
machine the wall clock is mostly other people's load: `train.threads.intra_op=1 train.threads.inter_op=1`
(passed as overrides) makes the CPU seconds a steady measure of the work itself. Runs with the same seed must give the same training losses (to float rounding: TensorFlow's
threads may sum in another order even between two identical runs): logging only reads.
"""

import argparse
import statistics
import time

import keras

from hydra import compose, initialize_config_dir

from pipeline import CONFIG_DIR
from pipeline.data.texts import prepare_data
from pipeline.training.train import configure_threads, train_model

CASES = {
    "sentences": [
        "data=sentences",
        "model=gru",
        "optimizer=rmsprop",
        "optimizer.learning_rate=1e-3",
    ],
    "imdb": [
        "data=imdb",
        "data.subset=2000",
        "model=simple_rnn",
        "optimizer=rmsprop",
        "optimizer.learning_rate=1e-3",
    ],
}


def config(case: str, epochs: int, log_gradients: bool, extra: list[str]):
    overrides = [
        *CASES[case],
        f"train.epochs={epochs}",
        "train.batch_size=128",
        "callbacks=none",
        "train.verbose=0",
        "train.evaluate_test=false",
        f"train.log_gradients={str(log_gradients).lower()}",
        *extra,
    ]
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        return compose("train", overrides=overrides)


class CpuSeconds(keras.callbacks.Callback):
    """CPU seconds of this process (every thread) per epoch."""

    def on_train_begin(self, logs=None):
        self.per_epoch = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.per_epoch.append(time.process_time() - self.started)


def measure(case: str, epochs: int, repeats: int, extra: list[str]) -> None:
    data = prepare_data(
        config(case, epochs, False, extra).data, config(case, epochs, False, extra).paths.cache_dir
    )
    ratios, largest_difference = {"wall": [], "cpu": []}, 0.0
    for repeat in range(repeats):
        order = (False, True) if repeat % 2 == 0 else (True, False)
        medians, losses = {"wall": {}, "cpu": {}}, {}
        for log_gradients in order:
            cpu = CpuSeconds()
            history = train_model(
                config(case, epochs, log_gradients, extra), data, extra_callbacks=[cpu]
            ).history
            medians["wall"][log_gradients] = statistics.median(history["epoch_seconds"][1:])
            medians["cpu"][log_gradients] = statistics.median(cpu.per_epoch[1:])
            losses[log_gradients] = history["loss"]
        largest_difference = max(
            largest_difference, *(abs(a - b) / abs(b) for a, b in zip(losses[True], losses[False]))
        )
        for clock in ratios:
            ratios[clock].append(medians[clock][True] / medians[clock][False] - 1)
        print(
            f"{case} repeat {repeat + 1}: median epoch without / with logging: wall {medians['wall'][False]:.4f} / "
            f"{medians['wall'][True]:.4f} s ({ratios['wall'][-1]:+.1%}), CPU {medians['cpu'][False]:.4f} / "
            f"{medians['cpu'][True]:.4f} s ({ratios['cpu'][-1]:+.1%})",
            flush=True,
        )
    for clock, values in ratios.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(
            f"{case}: {clock} overhead {statistics.fmean(values):+.1%} ± {spread:.1%} (mean ± sd over {repeats} repeats, "
            f"{epochs - 1} timed epochs each)",
            flush=True,
        )
    print(
        f"{case}: largest relative difference of a training loss with and without: {largest_difference:.1e}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument(
        "overrides", nargs="*", help="extra Hydra overrides, e.g. paths.cache_dir=/tmp/x/cache"
    )
    args = parser.parse_args()
    configure_threads(config(args.cases[0], args.epochs, False, args.overrides).train.threads)
    for case in args.cases:
        measure(case, args.epochs, args.repeats, args.overrides)


if __name__ == "__main__":
    main()
