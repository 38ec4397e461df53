"""Recurrent training steps per inner loop (benchmarks/recurrent_routes.py), interleaved in one process.

    python benchmarks/recurrent_steps.py                          # every body, lengths 32 128 500
    python benchmarks/recurrent_steps.py --bodies bilstm_stacked --lengths 64 256 --rounds 4
    python benchmarks/recurrent_steps.py --explored --intra 1 --inter 1   # + block, hoist; 1 thread
    python benchmarks/recurrent_steps.py --tiny                   # CI: seconds

Each body (the presets' sizes) trains with `train_on_batch` on random texts of a batch's length
(post-padded, masked: lengths drawn between 3/4 of it and all of it, as a length bucket holds) for
every route: "keras" (Keras' own loop), "unroll" (Keras' loop with unroll=True: one traced graph
per length, so only up to --unroll-max steps) and, with --explored, "block" (LSTM: TensorFlow's
fused BlockLSTM kernel, our backward pass) and "hoist" (the input projection as one matmul, Keras'
loop for h·U). Every step function here is traced for its one length (train_on_batch on one shape). "first step s" is the first step's
time: tracing the step function (an unrolled graph takes longer), then one step. The routes alternate in rounds (A B
C, then C B A), each timed over `--steps` steps after two warm-up steps; the table gives each route's
step time as a ratio to "keras" in the same round (median, min-max over rounds) and its tokens/s.
"""

import argparse
import statistics
import time

import keras
import numpy as np
import tensorflow as tf
from hydra import compose, initialize_config_dir

import recurrent_routes
from pipeline import CONFIG_DIR

BODIES = ("lstm", "gru", "simple_rnn", "bilstm_stacked")
VOCAB = 10_000


def model_config(preset: str):
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        return compose("train", overrides=[f"model={preset}"]).model


def routes_of(body: str, length: int, args) -> list[str]:
    routes = ["keras"] + (["unroll"] if length <= args.unroll_max else [])
    if args.explored:
        routes += ["block", "hoist"] if body == "lstm" else ["hoist"]
    return routes


def built(model_cfg, route: str) -> keras.Model:
    """The preset's model (pipeline/models/zoo.py) with benchmarks/recurrent_routes.py's layers on
    `route`; "keras" is Keras' own loop."""
    model = recurrent_routes.routed_model(model_cfg, VOCAB, route, seed=0)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def texts(batch: int, length: int, rng) -> tuple[np.ndarray, np.ndarray]:
    lengths = rng.integers(max(1, length * 3 // 4), length + 1, batch)
    lengths[0] = length
    x = np.zeros((batch, length), "int32")
    for row, n in enumerate(lengths):
        x[row, :n] = rng.integers(2, VOCAB, n)
    return x, rng.integers(0, 2, (batch, 1)).astype("float32")


def measure(body: str, length: int, args) -> list[str]:
    preset = body
    model_cfg = model_config(preset)
    rng = np.random.default_rng(0)
    x, y = texts(args.batch, length, rng)
    routes = routes_of(model_cfg.body, length, args)
    models, trace = {}, {}
    for route in routes:
        models[route] = built(model_cfg, route)
        started = time.perf_counter()
        models[route].train_on_batch(x, y)
        trace[route] = time.perf_counter() - started
        models[route].train_on_batch(x, y)
    seconds = {route: [] for route in routes}
    for round_ in range(args.rounds):
        for route in routes if round_ % 2 == 0 else routes[::-1]:
            started = time.perf_counter()
            for _ in range(args.steps):
                models[route].train_on_batch(x, y)
            seconds[route].append((time.perf_counter() - started) / args.steps)
    tokens = int((x > 0).sum())
    rows = []
    for route in routes:
        ratios = [k / r for k, r in zip(seconds["keras"], seconds[route])]
        rows.append(
            f"| {body} | {length} | {route} | {statistics.median(ratios):.2f}x "
            f"({min(ratios):.2f}-{max(ratios):.2f}) | "
            f"{tokens / statistics.median(seconds[route]) / 1000:.0f}k | {trace[route]:.1f} |"
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", nargs="+", default=list(BODIES), choices=BODIES)
    parser.add_argument("--lengths", nargs="+", type=int, default=[32, 128, 500])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per route and round")
    parser.add_argument("--unroll-max", type=int, default=64, help="longest length to unroll")
    parser.add_argument(
        "--explored", action="store_true", help="also the routes that lost: block and hoist"
    )
    parser.add_argument("--intra", type=int, default=0, help="intra-op threads (0: TensorFlow's)")
    parser.add_argument("--inter", type=int, default=0, help="inter-op threads (0: TensorFlow's)")
    parser.add_argument("--tiny", action="store_true", help="lstm at 16 steps, batch 64, 2 rounds")
    args = parser.parse_args()
    if args.tiny:
        args.bodies, args.lengths, args.batch, args.rounds, args.unroll_max = (
            ["lstm"],
            [16],
            64,
            2,
            16,
        )
    tf.config.threading.set_intra_op_parallelism_threads(args.intra)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter)
    started = time.strftime("%Y-%m-%d %H:%M")
    print("| body | steps | route | speed vs keras (median, min-max) | tokens/s | first step s |")
    print("|---|---|---|---|---|---|")
    for body in args.bodies:
        for length in args.lengths:
            measure(body, length, args)
    print(
        f"\nthreads intra {args.intra} inter {args.inter} (0: TensorFlow's choice); "
        f"batch {args.batch}, {args.rounds} rounds of {args.steps} steps per route; "
        f"started {started}; keras {keras.__version__}"
    )


if __name__ == "__main__":
    main()
