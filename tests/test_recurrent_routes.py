"""The recurrent inner loops benchmarks/recurrent_steps.py measures against Keras' own
(benchmarks/recurrent_routes.py: unrolled, TensorFlow's fused BlockLSTM, the input projection
hoisted) train as Keras' layers do: the same losses, weights and predictions from the same seed,
with masks on either side, a text without a token, and batches of two lengths. A speed compared
is a speed of the same computation.

Tolerance: 1e-5 absolute on losses, weights and predictions after four Adam steps at learning
rate 0.05 (measured: gradients within 1e-7 of Keras', float32 summation order).
"""

import keras
import numpy as np
import pytest

from pipeline.data.batching import cut_to_longest
from pipeline.models import zoo
from tests.conftest import compose_config
from tests.helpers.benchmarks import load_benchmark

VOCAB = 40
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def routes():
    return load_benchmark("recurrent_routes")


def model_config(**values):
    cfg = compose_config("model=lstm").model
    for key, value in {"units": 8, "embedding_dim": 6, "head_units": 4, **values}.items():
        cfg[key] = value
    return cfg


def padded_batches(padding: str) -> list[np.ndarray]:
    """Two length buckets (9 and 4 steps) of texts of several lengths, one without any token,
    padded on `padding`'s side and cut to their longest text as training cuts them."""
    rng = np.random.default_rng(5)
    batches = []
    for lengths in ([9, 5, 1, 0, 3, 7], [4, 2, 4, 1, 3, 2]):
        block = np.zeros((len(lengths), 12), dtype="int32")
        for row, n in enumerate(lengths):
            if n:
                tokens = rng.integers(1, VOCAB, n)
                if padding == "post":
                    block[row, :n] = tokens
                else:
                    block[row, -n:] = tokens
        batches.append(cut_to_longest(block))
    return batches


# Stacked and bidirectional: both directions, a layer fed by a layer; post-padding, where a mask
# matters most, and pre-padding for the fused kernel, which moves each row's steps to its front.
# (Every body x route x 1 or 2 layers x padding: 28 cases, 218 processor seconds; these: about 60.)
CASES = [
    ("lstm", "unroll", "post"),
    ("lstm", "block", "post"),
    ("lstm", "block", "pre"),
    ("lstm", "hoist", "post"),
    ("gru", "unroll", "post"),
]


@pytest.mark.parametrize("body, route, padding", CASES)
def test_every_route_trains_as_keras_loop_does(routes, body, route, padding):
    model_cfg = model_config(body=body, bidirectional=True, num_layers=2)
    plain = zoo.build_model(model_cfg, VOCAB)
    fast = routes.routed_model(model_cfg, VOCAB, route, seed=3)
    fast.set_weights(plain.get_weights())
    inner = [layer for layer in fast._flatten_layers() if isinstance(layer, routes.RoutedRecurrent)]
    assert inner and {layer.route_for(True, 9) for layer in inner} == {route}
    for model in (fast, plain):
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    batches = padded_batches(padding)
    labels = np.array([0, 1, 1, 0, 1, 0], dtype="float32")
    for step in range(4):
        x = batches[step % 2]
        losses = [model.train_on_batch(x, labels) for model in (fast, plain)]
        np.testing.assert_allclose(losses[0], losses[1], atol=TOLERANCE)
    for mine, theirs in zip(fast.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(mine, theirs, atol=TOLERANCE)
    for x in batches:
        np.testing.assert_allclose(fast(x), plain(x), atol=TOLERANCE)


def test_keras_unrolled_backwards_layer_zeroes_real_steps_which_the_unroll_route_fixes(routes):
    """Keras 3.15: unroll=True, go_backwards, a mask and zero_output_for_mask (what Bidirectional
    sets when it returns sequences) zero the outputs at the unreversed mask's padding, which are
    real steps of the reversed output. If this fails, Keras has fixed it: `unrolled` can go."""
    x = np.random.default_rng(0).normal(size=(1, 5, 3)).astype("float32")
    mask = np.array([[True, True, True, False, False]])
    outputs = {}
    for unroll in (False, True):
        keras.utils.set_random_seed(0)
        layer = keras.layers.SimpleRNN(
            2, return_sequences=True, go_backwards=True, unroll=unroll, zero_output_for_mask=True
        )
        outputs[unroll] = np.asarray(layer(x, mask=mask))
    assert np.all(outputs[True][0, 3:] == 0) and not np.allclose(outputs[True], outputs[False])
    keras.utils.set_random_seed(0)
    fixed = routes.RoutedSimpleRNN(2, return_sequences=True, go_backwards=True)
    fixed.zero_output_for_mask, fixed.route = True, "unroll"
    np.testing.assert_allclose(np.asarray(fixed(x, mask=mask)), outputs[False], atol=1e-6)
