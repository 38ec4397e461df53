"""The model a user can run: raw strings in, class probabilities out, saved in Keras format and
logged as an MLflow model.

`text_model` wraps the trained model (token ids in) in a Keras model whose first layer repeats what
pipeline/data.py did to the training texts: the same TextVectorization standardization and
vocabulary, the first (`data.truncate=post`) or last (`pre`) `data.max_len` tokens, post-padding
with 0 and one OOV token for a text without any; its last layer names the classes and gives every
class its probability (two columns for a binary model's one sigmoid output). `log_model` logs it as
an MLflow 3 LoggedModel (a pyfunc taking a column of strings) linked to the run and its best epoch.
`data=keras_imdb` has no raw text (its reviews are integer sequences): its logged model takes token
ids instead, and says so.
"""

import contextlib
import fcntl
import functools
import importlib.metadata
import logging
import os
import platform
import tempfile
import types
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import keras
import mlflow
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import layers
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, Schema
from mlflow.types.schema import Array
from omegaconf import DictConfig

import pipeline

# registers the trained models' own layers for loading
from pipeline.models import zoo as _custom_layers  # noqa: F401
from pipeline.data.texts import (
    KERAS_IMDB_OOV,
    VECTORIZER_OOV,
    VECTORIZER_TEXT_SETTINGS,
    pad_sequences,
)
from pipeline.core.errors import InputError, check_space, existing_parent
from pipeline.models.scores import compile_classifier, num_classes_of

log = logging.getLogger(__name__)
# room the stores keep to record the run's end (SQLite needs its journal to write)
STORE_MARGIN = 10**6


class NoSchemaCheckLine(logging.Filter):
    """MLflow says at INFO that it checks the input example against the signature: once per trial,
    it breaks the sweep's progress bar and says nothing a user acts on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(
            "Validating input example against model signature"
        )


logging.getLogger("mlflow.pyfunc").addFilter(NoSchemaCheckLine())

MODEL_NAME = "model"  # the LoggedModel's name, and its folder in the run's Models tab
# the Keras-format file inside the MLflow model (the end-to-end model, or the id model)
KERAS_FILE = "model.keras"
TEXT_COLUMN, IDS_COLUMN = "text", "token_ids"  # the pyfunc's input column
PROBABILITY_PREFIX = "p_"  # a class's probability column: p_negative, p_amazon, p_7
INPUT_EXAMPLE = ["a great film, well worth seeing", "dull plot and wooden acting"]
PREDICT_BATCH = 256


@keras.saving.register_keras_serializable(package="rnnsweep")
class TokenIds(layers.Layer):
    """Raw strings -> padded int32 token ids, exactly as pipeline/data.py vectorizes the test
    split."""

    def __init__(
        self, vocabulary: list[str], max_len: int, truncate: str, padding: str = "post", **kwargs
    ):
        super().__init__(**kwargs)
        # the vocabulary stays in the vectorizer
        self.max_len, self.truncate, self.padding = int(max_len), truncate, padding
        self.vectorizer = layers.TextVectorization(
            vocabulary=list(vocabulary), ragged=True, **VECTORIZER_TEXT_SETTINGS
        )

    def build(self, input_shape=None):
        pass  # nothing to create: the vocabulary is fixed at construction

    def call(self, texts):
        ragged = self.vectorizer(tf.reshape(texts, [-1]))
        kept = ragged[:, -self.max_len :] if self.truncate == "pre" else ragged[:, : self.max_len]
        ids = tf.cast(kept.to_tensor(default_value=0, shape=[None, self.max_len]), "int32")
        # the tokens at the end, in order: reverse each text's tokens, then the whole row
        if self.padding == "pre":
            ids = tf.reverse(
                tf.reverse_sequence(ids, kept.row_lengths(), seq_axis=1, batch_axis=0), axis=[1]
            )
        # a text of punctuation only: one OOV token, as data.py does
        tokenless = tf.equal(kept.row_lengths(), 0)
        side = -1 if self.padding == "pre" else 0
        oov = tf.where(tokenless, tf.constant(VECTORIZER_OOV, "int32"), ids[:, side])
        return (
            tf.concat([ids[:, :-1], oov[:, None]], axis=1)
            if side
            else tf.concat([oov[:, None], ids[:, 1:]], axis=1)
        )

    def compute_output_spec(self, texts):
        return keras.KerasTensor((texts.shape[0], self.max_len), dtype="int32")

    def get_config(self):
        return super().get_config() | {
            "vocabulary": self.vectorizer.get_vocabulary(),
            "max_len": self.max_len,
            "truncate": self.truncate,
            "padding": self.padding,
        }


@keras.saving.register_keras_serializable(package="rnnsweep")
class ClassProbabilities(layers.Layer):
    """The trained output as one probability per class, named: a sigmoid's p becomes (1 - p, p), a
    softmax passes as it is. The class names travel in the saved model, so nothing else is needed to
    label a text."""

    def __init__(self, class_names: list[str], **kwargs):
        super().__init__(**kwargs)
        self.class_names = [str(name) for name in class_names]

    def call(self, scores):
        if len(self.class_names) == 2 and scores.shape[-1] == 1:
            return keras.ops.concatenate([1 - scores, scores], axis=-1)
        return scores

    def compute_output_spec(self, scores):
        return keras.KerasTensor((scores.shape[0], len(self.class_names)), dtype=scores.dtype)

    def get_config(self):
        return super().get_config() | {"class_names": self.class_names}


def text_model(
    trained: keras.Model, vocabulary: list[str], data_cfg: DictConfig, class_names: list[str]
) -> keras.Model:
    """The trained model behind the vectorizer of its training data: one string in, each class's
    probability out."""
    texts = keras.Input(shape=(1,), dtype="string", name=TEXT_COLUMN)
    ids = TokenIds(
        vocabulary, data_cfg.max_len, data_cfg.truncate, data_cfg.padding, name="token_ids"
    )(texts)
    probabilities = ClassProbabilities(class_names, name="classes")(trained(ids))
    return keras.Model(texts, probabilities, name=f"{trained.name}_on_text")


def takes_text(data) -> bool:
    """Only data with a vocabulary has raw text; keras_imdb's reviews come as integer sequences."""
    return bool(data.vocabulary)


def exported_model(trained: keras.Model, data, data_cfg: DictConfig) -> keras.Model:
    if takes_text(data):
        return text_model(trained, data.vocabulary, data_cfg, data.class_names)
    log.info(
        "data=%s has no raw text (integer sequences): the logged model takes token ids, not "
        "strings",
        data_cfg.name,
    )
    ids = keras.Input(shape=(None,), dtype="int32", name=IDS_COLUMN)
    return keras.Model(
        ids, ClassProbabilities(data.class_names, name="classes")(trained(ids)), name=trained.name
    )


def class_names_of(model: keras.Model) -> list[str]:
    return model.get_layer("classes").class_names


def trained_part(model: keras.Model) -> keras.Model:
    """The id model inside an end-to-end model (or the model itself when it takes ids): what the
    test split scores."""
    inner = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return inner[0] if inner else model


# -------------------------------------------------------------------------------------- pyfunc


class TextClassifier(mlflow.pyfunc.PythonModel):
    """MLflow's generic interface to the Keras model: a column of texts (or token-id lists) ->
    label, probability.

    Built by pipeline/pyfunc_model.py (MLflow's models from code); a model taking token ids finds
    the data's max_len and truncate side in its model_config."""

    @classmethod
    def from_keras(cls, path) -> "TextClassifier":
        """The same interface over a bare end-to-end .keras file (no MLflow model around it)."""
        scorer = cls()
        scorer.model, scorer.padding = keras.saving.load_model(path, compile=False), {}
        scorer.takes_text = scorer.model.inputs[0].dtype == "string"
        scorer.class_names = class_names_of(scorer.model)
        if not scorer.takes_text:
            raise InputError(
                f"{path}: this model takes token ids, not text (data=keras_imdb); use its MLflow "
                "model"
            )
        return scorer

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.predict(None, frame)

    def load_context(self, context):
        self.model = keras.saving.load_model(context.artifacts["keras_model"], compile=False)
        self.takes_text = self.model.inputs[0].dtype == "string"
        self.padding = context.model_config or {}
        self.class_names = class_names_of(self.model)

    # the signature makes any input a DataFrame
    def predict(self, context, model_input: pd.DataFrame, params=None):
        rows = column_of(model_input)
        shape = (0, len(self.class_names))
        probabilities = self.probabilities(rows) if len(rows) else np.zeros(shape, dtype=np.float32)
        return labelled(probabilities.astype(np.float64), self.class_names)

    def probabilities(self, rows: list) -> np.ndarray:
        if self.takes_text:
            inputs = tf.constant([str(text) for text in rows])[:, None]
        else:
            inputs = tf.constant(
                pad_ids(
                    rows,
                    self.padding["max_len"],
                    self.padding["truncate"],
                    self.padding.get("padding", "post"),
                )
            )
        # one batch (a few texts, a served request): called eagerly, no predict function to trace
        if len(rows) <= PREDICT_BATCH:
            return keras.ops.convert_to_numpy(self.model(inputs, training=False))
        batches = tf.data.Dataset.from_tensor_slices(inputs).batch(PREDICT_BATCH)
        return self.model.predict(batches, verbose=0)


def labelled(probabilities: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    """label: the most probable class's name; probability: its probability; p_CLASS: every
    class's."""
    best = probabilities.argmax(axis=1)
    frame = pd.DataFrame(
        {
            "label": np.array(class_names, dtype=object)[best],
            "probability": probabilities[np.arange(len(best)), best],
        }
    )
    for column, name in enumerate(class_names):
        frame[PROBABILITY_PREFIX + name] = probabilities[:, column]
    return frame


def column_of(model_input) -> list:
    """The texts of a DataFrame's text column (or its only column), a Series, an array or a list."""
    if isinstance(model_input, pd.DataFrame):
        for name in (TEXT_COLUMN, IDS_COLUMN):
            if name in model_input.columns:
                return model_input[name].tolist()
        return model_input.iloc[:, 0].tolist()
    if isinstance(model_input, (pd.Series, np.ndarray)):
        return np.asarray(model_input).reshape(len(model_input), -1)[:, 0].tolist()
    return list(model_input)


def pad_ids(rows: list, max_len: int, truncate: str, padding: str) -> np.ndarray:
    padded = pad_sequences([list(map(int, row)) for row in rows], max_len, truncate, padding)
    padded[~padded.any(axis=1), -1 if padding == "pre" else 0] = KERAS_IMDB_OOV
    return padded


def signature(text: bool, class_names: list[str]) -> ModelSignature:
    # unnamed: a Series, a list or a one-column DataFrame of any name is accepted
    column = ColSpec(DataType.string) if text else ColSpec(Array(DataType.long))
    classes = [ColSpec(DataType.double, PROBABILITY_PREFIX + name) for name in class_names]
    outputs = Schema(
        [ColSpec(DataType.string, "label"), ColSpec(DataType.double, "probability"), *classes]
    )
    return ModelSignature(inputs=Schema([column]), outputs=outputs)


def input_example(data, text: bool) -> pd.DataFrame:
    if text:
        return pd.DataFrame({TEXT_COLUMN: INPUT_EXAMPLE})
    return pd.DataFrame(
        {IDS_COLUMN: [row[row > 0].astype(np.int64).tolist() for row in data.x_val[:2]]}
    )


@functools.cache
def requirements() -> list[str]:
    """The packages the model needs to load and predict, at the versions it was logged with (no
    inference run)."""
    tensorflow = "tensorflow-cpu" if platform.machine() in ("x86_64", "AMD64") else "tensorflow"
    names = [tensorflow, "keras", "mlflow", "pandas", "numpy", "omegaconf"]
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def save_pyfunc(path, mlflow_model, validate_serving_input=True, **kwargs):
    """mlflow.pyfunc.save_model for Model.log, which passes its validate_serving_input on to the
    flavor."""
    return mlflow.pyfunc.save_model(path=path, mlflow_model=mlflow_model, **kwargs)


PYFUNC_WITHOUT_SERVING_CHECK = types.SimpleNamespace(
    __name__=mlflow.pyfunc.__name__, save_model=save_pyfunc
)


def log_model(trained: keras.Model, data, data_cfg: DictConfig, best_epoch: int | None) -> str:
    """Log the exported model to the active run as an MLflow model; return its model id.

    `step=best_epoch` links the run's metrics of that epoch to the model (MLflow does it at log
    time)."""
    model = exported_model(trained, data, data_cfg)
    text = takes_text(data)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / KERAS_FILE
        model.save(path)
        with room_for(path):
            info = mlflow.models.Model.log(
                artifact_path=None,
                name=MODEL_NAME,
                flavor=PYFUNC_WITHOUT_SERVING_CHECK,
                # what mlflow.pyfunc.log_model names a model from code
                flavor_name="pyfunc.ModelFromCode",
                # MLflow's check loads and runs the model: 0.3 to 0.5 s a trial (tests serve it for
                # real)
                validate_serving_input=False,
                python_model=str(Path(__file__).with_name("pyfunc_model.py")),
                artifacts={"keras_model": str(path)},
                # the custom layers: the model loads without rnnsweep installed
                code_paths=[str(Path(pipeline.__file__).parent)],
                model_config=None
                if text
                else {
                    "max_len": data_cfg.max_len,
                    "truncate": data_cfg.truncate,
                    "padding": data_cfg.padding,
                },
                signature=signature(text, data.class_names),
                input_example=input_example(data, text),
                pip_requirements=requirements(),
                step=best_epoch or 0,
                tags={
                    "input": TEXT_COLUMN if text else IDS_COLUMN,
                    "data": data_cfg.name,
                    "classes": ", ".join(data.class_names),
                },
            )
    return info.model_id


@contextlib.contextmanager
def room_for(keras_file: Path):
    """DiskFull before MLflow copies the model into a local artifact store without room for it (a
    partial copy would leave the stores no room to record the failure): the file, rnnsweep's code,
    and a margin for the stores. Each process holds the device's lock from the check to the copy's
    end: two workers that both found room for one model would fill the disk with two, and the first
    line would be whatever write met the full disk first."""
    location = mlflow.get_artifact_uri()
    if not location.startswith("file:"):
        yield
        return
    code = sum(p.stat().st_size for p in Path(pipeline.__file__).parent.rglob("*.py"))
    needed = keras_file.stat().st_size + code + STORE_MARGIN
    folder = Path(url2pathname(urlsplit(location).path))
    device = os.stat(existing_parent(folder)).st_dev
    # one per user too: another user's lock file in a shared /tmp could not be opened
    lock_file = Path(tempfile.gettempdir()) / f"rnnsweep-model-copy-{os.getuid()}-{device}.lock"
    with open(lock_file, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        check_space(
            f"no space left on device for the run's model in {folder}",
            folder,
            needed,
            "move paths.mlruns_dir (or the tracking server's artifact root) to a larger disk",
        )
        yield


# ------------------------------------------------------------------------------ finding a model


def load_keras(model_id: str) -> keras.Model:
    """The Keras model inside a logged MLflow model (the end-to-end model, or the id model for
    keras_imdb)."""
    location = mlflow.MlflowClient().get_logged_model(model_id).artifact_location
    return keras.saving.load_model(
        mlflow.artifacts.download_artifacts(f"{location}/artifacts/{KERAS_FILE}"), compile=False
    )


def stored_id_model(model_id: str) -> keras.Model:
    """The trained token-id model a logged model wraps, compiled as training compiles it: for
    scoring the test split."""
    return stored_scorer(model_id)[0]


def stored_scorer(model_id: str):
    """stored_id_model and its compiled scores.MacroF1, whose confusion matrix holds its last
    evaluation."""
    model = trained_part(load_keras(model_id))
    return model, compile_classifier(model, num_classes_of(model))


def model_of_run(run_id: str) -> str | None:
    """The id of the model a run logged (its last), or None."""
    outputs = mlflow.MlflowClient().get_run(run_id).outputs
    models = outputs.model_outputs if outputs else []
    return models[-1].model_id if models else None
