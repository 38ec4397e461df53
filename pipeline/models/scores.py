"""Scores of a K-class classifier: its head and loss, macro-F1 per epoch, and the report on the test
split.

Two classes keep one sigmoid output and binary cross-entropy; more use a softmax over K outputs and
sparse categorical cross-entropy (labels are class indices either way). `MacroF1` keeps a running
confusion matrix (rows: true class, columns: predicted), so the one evaluation that scores the test
split also gives its per-class precision, recall and F1 (`class_report`).
"""

import re

import keras
import numpy as np

BINARY_THRESHOLD = 0.5  # a sigmoid output says class 1 above it, as Keras' binary accuracy counts


def output_units(num_classes: int) -> int:
    return 1 if num_classes == 2 else num_classes


def num_classes_of(model: keras.Model) -> int:
    """K from a classifier's output width: one sigmoid output is two classes."""
    width = int(model.outputs[0].shape[-1])
    return 2 if width == 1 else width


def loss_name(num_classes: int) -> str:
    return "binary_crossentropy" if num_classes == 2 else "sparse_categorical_crossentropy"


def compile_classifier(model: keras.Model, num_classes: int, optimizer="rmsprop") -> "MacroF1":
    """Compile with the loss of K classes, accuracy and macro-F1; return the macro-F1 metric, whose
    confusion matrix holds the last evaluation's counts."""
    f1 = MacroF1(num_classes)
    model.compile(optimizer=optimizer, loss=loss_name(num_classes), metrics=["accuracy", f1])
    return f1


@keras.saving.register_keras_serializable(package="rnnsweep")
class MacroF1(keras.metrics.Metric):
    """Macro-averaged F1 from a running confusion matrix: the mean F1 of the classes that occur (as
    true or predicted labels), as scikit-learn's f1_score(average="macro") counts it."""

    def __init__(self, num_classes: int = 2, name: str = "macro_f1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.matrix = self.add_variable(
            shape=(self.num_classes, self.num_classes),
            initializer="zeros",
            dtype="float32",
            name="confusion_matrix",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        ops = keras.ops
        true = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        if y_pred.shape[-1] == 1:
            predicted = ops.cast(ops.reshape(y_pred, (-1,)) > BINARY_THRESHOLD, "int32")
        else:
            predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        counts = ops.matmul(
            ops.transpose(ops.one_hot(true, self.num_classes)),
            ops.one_hot(predicted, self.num_classes),
        )
        self.matrix.assign_add(ops.cast(counts, "float32"))

    def result(self):
        ops = keras.ops
        hits = ops.diagonal(self.matrix)
        occurs = ops.sum(self.matrix, axis=0) + ops.sum(self.matrix, axis=1)  # predicted + true
        f1 = 2 * hits / ops.maximum(occurs, 1)
        present = ops.cast(occurs > 0, "float32")
        return ops.sum(f1 * present) / ops.maximum(ops.sum(present), 1)

    def reset_state(self):
        self.matrix.assign(keras.ops.zeros((self.num_classes, self.num_classes)))

    def get_config(self):
        return super().get_config() | {"num_classes": self.num_classes}


def class_report(confusion: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy, macro-F1 and per-class precision, recall, F1 and support from a confusion
    matrix."""
    confusion = np.asarray(confusion, dtype=np.int64)
    hits, true, predicted = np.diag(confusion), confusion.sum(axis=1), confusion.sum(axis=0)
    share = lambda top, bottom: np.divide(top, bottom, out=np.zeros(len(top)), where=bottom > 0)
    f1 = share(2 * hits, true + predicted)
    present = (true + predicted) > 0
    classes = [
        {
            "class": name,
            "precision": float(p),
            "recall": float(r),
            "f1": float(f),
            "support": int(n),
        }
        for name, p, r, f, n in zip(
            class_names, share(hits, predicted), share(hits, true), f1, true
        )
    ]
    return {
        "accuracy": float(hits.sum() / max(confusion.sum(), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "classes": classes,
        "class_names": list(class_names),
        "confusion_matrix": confusion.tolist(),
    }


def metric_key(name: str) -> str:
    """A class name as part of an MLflow metric name (letters, digits, _ - . / and spaces only)."""
    return re.sub(r"[^\w\-. /]", "_", str(name))


def per_class_metrics(report: dict, prefix: str = "test_") -> dict[str, float]:
    """test_f1.CLASS, test_precision.CLASS, test_recall.CLASS: one metric each, for the runs
    table."""
    figures = {}
    for row in report["classes"]:
        for score in ("precision", "recall", "f1"):
            figures[f"{prefix}{score}.{metric_key(row['class'])}"] = row[score]
    return figures
