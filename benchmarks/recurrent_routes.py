"""Recurrent inner loops measured against Keras' own (issue 30, benchmarks/recurrent_steps.py): none
went into the product (benchmarks/RESULTS.md says why); kept here so they can be measured again.

Keras' LSTM, GRU and SimpleRNN with another inner loop, the same weights, masking and results
(gradients within 1e-7 of Keras' in a check on masked, pre- and post-padded, stacked and
bidirectional models):

- "block" (LSTM only): TensorFlow's fused whole-sequence CPU kernel `BlockLSTM` for the forward
  pass, fed Keras' weights in its gate order (i, c, f, o), no forget bias, no cell clip. Its
  registered gradient `BlockLSTMGrad` was slower than Keras' loop (0.8x a layer's forward and
  backward), so the backward pass here is our own (`fused_lstm`): only the gates' gradients and
  dh·Uᵀ per step, the gradients of x, the kernel and the bias as large matmuls over all steps.
  `BlockLSTMV2` takes Keras' gate order, but TensorFlow 2.21 registers BlockLSTM's gradient for
  it (tensorflow/python/ops/rnn_grad.py): its kernel and bias gradients come out in the wrong gate
  order (errors as large as the gradients themselves), so it cannot train. The kernel knows one
  length for the whole batch, so masked steps are taken out first: each row's unmasked steps are
  moved to its front, in order, the last real step's state is the final state, and a masked step's
  output is the last real one before it, or zeros, as Keras gives them.
- "hoist": Keras' own loop (`backend.rnn`, the same masking) with the input projection taken out
  of it: x·W + b for all steps as one large matmul, only h·U in the loop (what cuDNN does).
- "unroll": Keras' own loop with unroll=True where the traced length is static (one graph per
  length), with a fix for Keras 3.15's unrolled masked outputs of a backwards layer (`unrolled`).
- "keras": Keras' loop unchanged.
"""

import keras
import tensorflow as tf
from keras import layers
from keras.src import backend as keras_backend

from pipeline.models import zoo

ROUTES = ("keras", "unroll", "block", "hoist")


class RoutedRecurrent:
    """Keras' recurrent layer whose inner loop is `route` (set on the layer; Keras' loop by
    default). A setting a route cannot follow exactly (recurrent dropout, another activation, no
    bias, an unknown length to unroll) runs Keras' loop."""

    route = "keras"

    def route_for(self, training, length) -> str:
        cell = self.cell
        if self.route == "unroll":
            return "unroll" if length is not None and not self.unroll else "keras"
        if (
            self.route == "keras"
            or self.unroll
            or not cell.use_bias
            or (training and cell.recurrent_dropout)
            or cell.activation is not keras.activations.tanh
        ):
            return "keras"
        if self.route == "block" and cell.recurrent_activation is not keras.activations.sigmoid:
            return "keras"
        if isinstance(cell, layers.GRUCell) and not cell.reset_after:
            return "keras"
        return self.route

    def inner_loop(self, sequences, initial_state, mask, training=False):
        route = self.route_for(training, sequences.shape[1])
        if route == "keras":
            return super().inner_loop(sequences, initial_state, mask=mask, training=training)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if route == "unroll":
            return unrolled(self, sequences, initial_state, mask, training)
        if training and self.cell.dropout:
            # Keras' mask for this call, drawn by RNN.call before the loop
            sequences = sequences * tf.expand_dims(self.cell.get_dropout_mask(sequences[:, 0]), 1)
        states = (
            list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        )
        if route == "block":
            return block_lstm(self, sequences, states, mask)
        return hoisted(self, sequences, states, mask)


@keras.saving.register_keras_serializable(package="rnnsweep_bench")
class RoutedLSTM(RoutedRecurrent, layers.LSTM):
    pass


@keras.saving.register_keras_serializable(package="rnnsweep_bench")
class RoutedGRU(RoutedRecurrent, layers.GRU):
    pass


@keras.saving.register_keras_serializable(package="rnnsweep_bench")
class RoutedSimpleRNN(RoutedRecurrent, layers.SimpleRNN):
    pass


ROUTED_LAYERS = {"simple_rnn": RoutedSimpleRNN, "lstm": RoutedLSTM, "gru": RoutedGRU}


def set_route(model: keras.Model, route: str) -> None:
    for layer in model._flatten_layers():
        if isinstance(layer, RoutedRecurrent):
            layer.route = route


def routed_model(model_cfg, vocab_size: int, route: str, seed: int) -> keras.Model:
    """The zoo's model (pipeline/models/zoo.py) built from `seed` with these layers on `route`
    ("keras": Keras' own loop)."""
    keras.utils.set_random_seed(seed)
    original = zoo.RECURRENT_LAYERS
    zoo.RECURRENT_LAYERS = ROUTED_LAYERS
    try:
        model = zoo.build_model(model_cfg, vocab_size)
    finally:
        zoo.RECURRENT_LAYERS = original
    set_route(model, route)
    return model


# ------------------------------------------------------------------------------------ the routes


def unrolled(layer, sequences, initial_state, mask, training):
    """Keras' own loop with unroll=True, for the length this trace knows. Keras 3.15's unrolled
    loop zeroes a backwards layer's masked outputs (zero_output_for_mask, which Bidirectional sets
    when it returns sequences) at the unreversed mask's steps, that is at real steps of the
    reversed output: its zeros are applied here instead, at the reversed mask's."""
    fix = layer.go_backwards and layer.zero_output_for_mask and mask is not None
    layer.unroll, zero_output_for_mask = True, layer.zero_output_for_mask
    layer.zero_output_for_mask = zero_output_for_mask and not fix
    try:
        last, outputs, states = super(RoutedRecurrent, layer).inner_loop(
            sequences, initial_state, mask=mask, training=training
        )
    finally:
        layer.unroll, layer.zero_output_for_mask = False, zero_output_for_mask
    if fix:
        processed = tf.reverse(tf.cast(mask, tf.bool), [1])
        outputs = tf.where(processed[:, :, None], outputs, tf.zeros_like(outputs))
        last = tf.where(processed[:, -1:], last, tf.zeros_like(last))
    return last, outputs, states


def hoisted(layer, sequences, states, mask):
    """Keras' loop over x·W + b computed for all steps at once (one matmul), h·U in the loop."""
    cell = layer.cell
    projected = tf.einsum("btd,dk->btk", sequences, cell.kernel)
    if isinstance(cell, layers.GRUCell):
        bias = cell.bias[0] if cell.reset_after else cell.bias
        step = gru_step(cell)
    else:
        bias = cell.bias
        step = lstm_step(cell) if isinstance(cell, layers.LSTMCell) else simple_step(cell)
    return keras_backend.rnn(
        step,
        projected + bias,
        states,
        go_backwards=layer.go_backwards,
        mask=mask,
        unroll=False,
        input_length=sequences.shape[1],
        zero_output_for_mask=layer.zero_output_for_mask,
        return_all_outputs=layer.return_sequences,
    )


def lstm_step(cell):
    def step(projected, states):
        h, c = states
        z = projected + tf.matmul(h, cell.recurrent_kernel)
        i, f, candidate, o = tf.split(z, 4, axis=-1)
        c = cell.recurrent_activation(f) * c + cell.recurrent_activation(i) * cell.activation(
            candidate
        )
        h = cell.recurrent_activation(o) * cell.activation(c)
        return h, [h, c]

    return step


def gru_step(cell):
    """Keras' GRUCell with reset_after (its default): the reset gate scales h·U_h + b_h."""
    units = cell.units

    def step(projected, states):
        h = states[0]
        recurrent = tf.matmul(h, cell.recurrent_kernel) + cell.bias[1]
        z = cell.recurrent_activation(projected[:, :units] + recurrent[:, :units])
        r = cell.recurrent_activation(
            projected[:, units : 2 * units] + recurrent[:, units : 2 * units]
        )
        candidate = cell.activation(projected[:, 2 * units :] + r * recurrent[:, 2 * units :])
        h = z * h + (1 - z) * candidate
        return h, [h]

    return step


def simple_step(cell):
    def step(projected, states):
        h = cell.activation(projected + tf.matmul(states[0], cell.recurrent_kernel))
        return h, [h]

    return step


def block_lstm(layer, sequences, states, mask):
    """BlockLSTM over the sequence in Keras' processing order, masked steps taken out (see the
    module's doc); returns what backend.rnn returns: (last output, outputs, [h, c])."""
    cell = layer.cell
    h0, c0 = states
    x = tf.reverse(sequences, [1]) if layer.go_backwards else sequences
    steps = tf.shape(x)[1]
    if mask is not None:
        mask = tf.cast(mask, tf.bool)
        mask = tf.reverse(mask, [1]) if layer.go_backwards else mask
        # each row's unmasked steps first, in order: sorted on (masked, position)
        position = tf.range(tf.shape(mask)[1])[None]
        order = tf.argsort(tf.where(mask, position, position + tf.shape(mask)[1]), axis=1)
        x = tf.gather(x, order, axis=1, batch_dims=1)
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        steps = tf.maximum(tf.reduce_max(lengths), 1)  # a batch without a token: one step
        x = x[:, :steps]

    def icfo(matrix):  # Keras' gate order (i, f, c, o) -> BlockLSTM's (i, c, f, o)
        i, f, candidate, o = tf.split(matrix, 4, axis=-1)
        return tf.concat([i, candidate, f, o], axis=-1)

    h, cs = fused_lstm(
        tf.transpose(x, [1, 0, 2]),
        h0,
        c0,
        icfo(tf.concat([cell.kernel, cell.recurrent_kernel], axis=0)),
        icfo(cell.bias),
    )
    h = tf.transpose(h, [1, 0, 2])
    cs = tf.transpose(cs, [1, 0, 2])
    if mask is None:
        return h[:, -1], h, [h[:, -1], cs[:, -1]]
    # a row without any step keeps its initial state
    last = tf.maximum(lengths - 1, 0)[:, None]
    has_steps = (lengths > 0)[:, None]
    h_last = tf.where(has_steps, tf.gather(h, last, axis=1, batch_dims=1)[:, 0], h0)
    c_last = tf.where(has_steps, tf.gather(cs, last, axis=1, batch_dims=1)[:, 0], c0)
    if not layer.return_sequences:
        return h_last, h_last, [h_last, c_last]
    # a masked step's output: zeros (zero_output_for_mask) or the last output before it
    done = tf.cumsum(tf.cast(mask, tf.int32), axis=1)
    outputs = tf.gather(h, tf.maximum(done - 1, 0), axis=1, batch_dims=1)
    keep = mask if layer.zero_output_for_mask else done > 0
    outputs = tf.where(keep[:, :, None], outputs, tf.zeros_like(outputs))
    return h_last, outputs, [h_last, c_last]


@tf.custom_gradient
def fused_lstm(x, h0, c0, w, b):
    """BlockLSTM's forward over time-major `x` (all steps) -> (h, cs) of every step, with a
    backward pass of our own: BlockLSTMGrad multiplies [x, h] by the whole kernel and adds to the
    kernel's gradient at every step (slower than Keras' loop); here only the recurrent part is
    sequential (the gates' gradients and dh·Uᵀ per step), and the gradients of x, the kernel and
    the bias are three large matmuls over all steps at once."""
    units = tf.shape(h0)[1]
    no_peephole = tf.zeros([units], x.dtype)
    i, cs, f, o, ci, co, h = tf.raw_ops.BlockLSTM(
        seq_len_max=tf.cast(tf.shape(x)[0], tf.int64),
        x=x,
        cs_prev=c0,
        h_prev=h0,
        w=w,
        wci=no_peephole,
        wcf=no_peephole,
        wco=no_peephole,
        b=b,
        forget_bias=0.0,
        cell_clip=-1.0,  # none
        use_peephole=False,
    )

    def backward(dh, dcs):
        inputs = tf.shape(x)[2]
        c_prev = tf.concat([c0[None], cs[:-1]], axis=0)
        h_prev = tf.concat([h0[None], h[:-1]], axis=0)
        # d(gate pre-activation) = [dc, dc, dc, dh] * factor, the factors known from the forward
        factor = tf.concat(
            [ci * i * (1 - i), i * (1 - ci * ci), c_prev * f * (1 - f), co * o * (1 - o)], axis=-1
        )
        through_c = o * (1 - co * co)  # dc += dh * through_c
        recurrent_t = tf.transpose(w[inputs:])
        steps = tf.shape(x)[0]
        dcs = tf.zeros_like(cs) if dcs is None else dcs

        def step(t, dh_next, dc_next, gates):
            dh_t = dh[t] + dh_next
            dc_t = dcs[t] + dc_next + dh_t * through_c[t]
            d_gates = tf.concat([dc_t, dc_t, dc_t, dh_t], axis=-1) * factor[t]
            return (
                t - 1,
                tf.matmul(d_gates, recurrent_t),
                dc_t * f[t],
                gates.write(t, d_gates),
            )

        _, dh0, dc0, gates = tf.while_loop(
            lambda t, *_: t >= 0,
            step,
            (steps - 1, tf.zeros_like(h0), tf.zeros_like(c0), tf.TensorArray(x.dtype, steps)),
        )
        d_gates = gates.stack()  # [T, B, 4u]
        flat = tf.reshape(d_gates, [-1, 4 * units])
        xh = tf.concat([x, h_prev], axis=-1)
        dw = tf.matmul(tf.reshape(xh, [-1, tf.shape(xh)[2]]), flat, transpose_a=True)
        dx = tf.einsum("tbk,dk->tbd", d_gates, w[:inputs])
        return dx, dh0, dc0, dw, tf.reduce_sum(flat, axis=0)

    return (h, cs), backward
