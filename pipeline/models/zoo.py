"""The model zoo: Embedding (mask_zero) -> pooling or stacked (Bi)RNN -> dense head -> sigmoid (2
classes) or softmax.

Token id 0 is padding; the Embedding's mask carries through every body, so padding never reaches a
recurrent layer's final state or a pooled vector. With model.mask_padding=false there is no mask:
the padding's embedding is fed to the layers and averaged into pooled vectors, as in the classic
scripts.
"""

import functools

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from omegaconf import DictConfig

from pipeline.config.choices import BODIES, POOLINGS  # noqa: F401 - the zoo's bodies and poolings
from pipeline.models.scores import output_units


RECURRENT_LAYERS = {"simple_rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}


@keras.saving.register_keras_serializable(package="rnnsweep")
class MaskedGlobalMaxPooling1D(layers.Layer):
    """GlobalMaxPooling1D that ignores masked (padding) steps; Keras' own one ignores the mask. A
    fully masked row (a text with no token) pools to zeros: its float minimum would turn into inf
    and NaN in the head."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return keras.ops.max(inputs, axis=1)
        lowest = keras.ops.full_like(
            inputs, float(np.finfo(keras.backend.standardize_dtype(inputs.dtype)).min)
        )
        pooled = keras.ops.max(
            keras.ops.where(keras.ops.expand_dims(mask, -1), inputs, lowest), axis=1
        )
        return keras.ops.where(
            keras.ops.any(mask, axis=1, keepdims=True), pooled, keras.ops.zeros_like(pooled)
        )

    def compute_mask(self, inputs, mask=None):
        return None


@keras.saving.register_keras_serializable(package="rnnsweep")
class MaskedGlobalAveragePooling1D(layers.GlobalAveragePooling1D):
    """GlobalAveragePooling1D whose fully masked row (a text with no token) averages to zeros, not
    0/0 = NaN. Without a mask (model.mask_padding=false) it is Keras' plain average over every step,
    padding included."""

    def call(self, inputs, mask=None):
        if mask is None:
            return super().call(inputs)
        steps = keras.ops.expand_dims(keras.ops.cast(mask, inputs.dtype), -1)
        total = keras.ops.sum(keras.ops.where(steps > 0, inputs, 0), axis=1)
        return total / keras.ops.maximum(keras.ops.sum(steps, axis=1), 1)


@keras.saving.register_keras_serializable(package="rnnsweep")
class VariableLengthModel(keras.Model):
    """A functional model whose fit and evaluate take each batch at its own length, at full speed.

    Keras' TensorFlow trainer runs its step inside a graph that reads the dataset; when batch
    lengths vary, that graph sees an unknown length, and the stacked BiLSTM trained 1.3x to 1.5x
    slower there than with the same batches fed from outside (benchmarks/RESULTS.md, "buckets,
    Keras' step"). Taking each batch out of the iterator first and passing it to one step function
    (step_per_batch: traced once for any length) keeps the fast path. One step per call:
    steps_per_execution 1.
    """

    # a gradients.GradientSignal while fit() logs the gradient figures (train.log_gradients)
    gradient_signal = None

    def train_step(self, data):
        if self.gradient_signal is None:
            return super().train_step(data)
        return measured_train_step(self, data, self.gradient_signal)

    def make_train_function(self, force=False):
        if self.train_function is None or force:
            self.train_function = step_per_batch(self.train_step, self)
        return self.train_function

    def make_test_function(self, force=False):
        if self.test_function is None or force:
            self.test_function = step_per_batch(self.test_step, self)
        return self.test_function


def measured_train_step(model: keras.Model, data, signal) -> dict:
    """Keras' TensorFlow train_step for our models (one loss, no sample weights), the same ops in
    the same order, plus the step's gradients and weights before and after the update handed to
    `signal` (GradientSignal.record)."""
    x, y = data
    with tf.GradientTape() as tape:
        y_pred = model(x, training=True)
        loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
        loss_tracker = next(metric for metric in model.metrics if metric.name == "loss")
        # weighted by batch size, as Keras does
        loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
        loss = model.optimizer.scale_loss(loss)
    weights = model.trainable_weights
    gradients = tape.gradient(loss, weights)
    before = [tf.identity(weight.value) for weight in weights]
    model.optimizer.apply_gradients(zip(gradients, weights))
    signal.record(gradients, before, [weight.value for weight in weights])
    return model.compute_metrics(x, y, y_pred)


def step_per_batch(step, model: keras.Model):
    """A function of the batch iterator that runs `step` on the next batch, in a graph traced once
    for any length at the first batch's size (a shorter last batch adds one trace, for any size),
    with every variable of the model, its metrics and its optimizer made before.

    Left to tf.function, a training step was traced for the first batch's shape (twice: the first
    trace made the optimizer's variables), then with the length left open, then with the size too:
    4 traces where 1 or 2 serve, ~0.8 s of a small trial's 2.6. The size stays fixed because a
    graph of open size ran a recurrent step 12-30 % slower on this CPU (open length: within noise).
    """
    # A partial, not the bound method or a nested def: TensorFlow counts traces per code object, so
    # every model of a sweep would add to one count and trigger its "frequent retracing" warning.
    traced = tf.function(functools.partial(step), reduce_retracing=True)

    def run(iterator):
        batch = next(iterator)  # StopIteration ends the epoch, as Keras expects
        if not traced.experimental_get_tracing_count():
            # what Keras does itself under a distribution strategy: build every variable from
            # the batch's shapes, so the trace below makes none and is not traced again
            model._symbolic_build(data_batch=batch)
            traced.get_concrete_function(any_length(batch))
        return traced(batch)

    run.traced = traced
    return run


def any_length(batch):
    """The batch's type with its size kept and every other dimension left open (its tensors or
    arrays; None, e.g. train_on_batch's sample weights, stays None)."""

    def spec(value):
        if value is None:
            return None
        size, *rest = value.shape
        return tf.TensorSpec([size] + [None] * len(rest), tf.as_dtype(value.dtype))

    return tf.nest.map_structure(spec, batch)


def model_label(model_cfg: DictConfig) -> str:
    """What the model is, for run names and tags: gru, bilstm, lstm_x2, max_pooling (not the preset
    it came from)."""
    if model_cfg.body == "pooling":
        return f"{model_cfg.pooling}_pooling"
    label = f"bi{model_cfg.body}" if model_cfg.bidirectional else model_cfg.body
    return f"{label}_x{model_cfg.num_layers}" if model_cfg.num_layers > 1 else label


def build_model(
    model_cfg: DictConfig,
    vocab_size: int,
    num_classes: int = 2,
    embedding: np.ndarray | None = None,
) -> keras.Model:
    """An uncompiled classifier over padded int sequences of any length (its config: checked by
    config.check): one sigmoid output for two classes, a softmax over `num_classes` outputs for
    more. `embedding`: the embedding's starting weights (vocab_size x width: pretrained word
    vectors), else random."""
    inputs = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    width = model_cfg.embedding_dim if embedding is None else embedding.shape[1]
    embedded = layers.Embedding(
        vocab_size,
        width,
        mask_zero=model_cfg.mask_padding,
        trainable=model_cfg.embedding.trainable,
        name="embedding",
    )
    x = embedded(inputs)
    if embedding is not None:
        embedded.set_weights([embedding])  # not an initializer: the saved config stays small
    x = pooled(x, model_cfg) if model_cfg.body == "pooling" else recurrent(x, model_cfg)
    if model_cfg.dropout:
        x = layers.Dropout(model_cfg.dropout, name="head_dropout")(x)
    if model_cfg.head_units:
        x = layers.Dense(model_cfg.head_units, activation="relu", name="head")(x)
    activation = "sigmoid" if num_classes == 2 else "softmax"
    outputs = layers.Dense(output_units(num_classes), activation=activation, name="output")(x)
    return VariableLengthModel(inputs, outputs, name=model_label(model_cfg))


def pooled(x, model_cfg: DictConfig):
    if model_cfg.pooling == "max":
        return MaskedGlobalMaxPooling1D(name="max_pool")(x)
    return MaskedGlobalAveragePooling1D(name="average_pool")(x)


def recurrent(x, model_cfg: DictConfig):
    layer_class = RECURRENT_LAYERS[model_cfg.body]
    for index in range(model_cfg.num_layers):
        layer = layer_class(
            model_cfg.units,
            dropout=model_cfg.dropout,
            recurrent_dropout=model_cfg.recurrent_dropout,
            return_sequences=index < model_cfg.num_layers - 1,
            name=f"{model_cfg.body}_{index + 1}",
        )
        x = (
            layers.Bidirectional(layer, name=f"bi_{layer.name}")(x)
            if model_cfg.bidirectional
            else layer(x)
        )
    return x
