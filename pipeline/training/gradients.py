"""The gradient signal per epoch: the global gradient norm and the update-to-weight ratio, step
means.

A plateau with a vanishing gradient (tiny norm, tiny updates) reads differently from one whose
gradient is large but leads nowhere (a sizeable norm whose updates cancel out): both figures are
per-epoch logs. The model's training step measures each step inside its own graph
(VariableLengthModel.train_step) and adds to this callback's means; they are read once per epoch, so
measuring never waits on a batch.
"""

import keras
import tensorflow as tf

from pipeline.core.names import Fig

GRADIENT_METRICS = ("grad_norm", "update_ratio")  # the names in History, MLflow and the run summary


class GradientSignal(keras.callbacks.Callback):
    """Adds `grad_norm` (the global L2 norm of the gradients, mean over the epoch's steps) and
    `update_ratio` (‖Δw‖/‖w‖ of all trainable weights per step, mean over the epoch's steps) to
    every epoch's logs."""

    def __init__(self):
        super().__init__()
        # per epoch: each figure summed over the steps, and the steps; two variables, so a step adds
        # three small ops
        self.sums = tf.Variable(tf.zeros(len(GRADIENT_METRICS)), trainable=False)
        self.steps = tf.Variable(0.0, trainable=False)

    def set_model(self, model):
        super().set_model(model)
        model.gradient_signal = self  # read by the model's train_step when its graph is traced

    def record(self, gradients: list, before: list, after: list) -> None:
        """Called inside the traced training step: the gradients applied, the weights before and
        after."""
        change = tf.linalg.global_norm([a - b for a, b in zip(after, before)])
        ratio = change / tf.maximum(tf.linalg.global_norm(before), 1e-12)
        # the order of GRADIENT_METRICS
        self.sums.assign_add(tf.stack([tf.linalg.global_norm(gradients), ratio]))
        self.steps.assign_add(1.0)

    def on_epoch_begin(self, epoch, logs=None):
        self.sums.assign(tf.zeros_like(self.sums))
        self.steps.assign(0.0)

    def on_epoch_end(self, epoch, logs=None):
        means = self.sums.numpy() / max(float(self.steps.numpy()), 1.0)
        logs.update({name: float(value) for name, value in zip(GRADIENT_METRICS, means)})

    def on_train_end(self, logs=None):
        self.model.gradient_signal = None


def plateau_gradient_figures(history: dict[str, list[float]], plateau: int) -> dict[str, float]:
    """Mean grad_norm and update_ratio over the plateau's epochs and over the epochs after its
    escape.

    Only for a plateau of 2+ epochs (one epoch is no plateau); the escape figures only when the run
    left it."""
    figures = {}
    if plateau < 2:
        return figures
    for name in GRADIENT_METRICS:
        values = history.get(name, [])
        if len(values) >= plateau:
            figures[Fig(f"plateau_{name}")] = mean(values[:plateau])
        if len(values) > plateau:
            figures[Fig(f"escape_{name}")] = mean(values[plateau:])
    return figures


def mean(values: list[float]) -> float:
    return sum(values) / len(values)
