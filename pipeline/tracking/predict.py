"""rnn-predict: each text's label (a class name), its probability and every class's (p_CLASS
columns), from a logged model (run id, models:/ URI or local path).

Texts come from the command line (`predict.texts`), a text file (one per line) or a CSV/TSV/Parquet
column; the table is printed or written to `predict.output`. The model is the MLflow model rnn-train
and rnn-sweep log (pipeline/export.py), loaded with `mlflow.pyfunc.load_model`; a bad model, file or
column is one line, exit 2.
"""

import logging
import re
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.types import DataType
from omegaconf import DictConfig

from pipeline.models import export
from pipeline.tracking import stores, mlflow_runs
from pipeline.core.errors import InputError

log = logging.getLogger(__name__)
RUN_ID = re.compile(r"[0-9a-f]{32}")
TABLES = {".csv": ",", ".tsv": "\t", ".parquet": None}
OUTPUTS = (".csv", ".tsv", ".parquet", ".jsonl")
SHOWN_CHARACTERS = 70  # of each text in the printed table (the written file keeps them whole)


def read_texts(predict_cfg: DictConfig) -> list[str]:
    given = predict_cfg.texts
    texts = [given] if isinstance(given, str) else [str(text) for text in (given or [])]
    if texts and predict_cfg.input:
        raise InputError("predict.texts and predict.input are both set; give the texts one way")
    if predict_cfg.input:
        texts = read_file(Path(predict_cfg.input).expanduser(), str(predict_cfg.column))
    if not texts:
        raise InputError("no text to score: set predict.texts=[...] or predict.input=FILE")
    return texts


def read_file(path: Path, column: str) -> list[str]:
    if not path.is_file():
        raise InputError(f"predict.input={path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in TABLES:
        texts = [line.rstrip("\r") for line in decode(path).split("\n")]
        texts = [text for text in texts if text.strip()]
    else:
        frame = read_table(path, suffix)
        if column not in frame.columns:
            raise InputError(
                f"predict.input={path}: no column {column!r} (predict.column); columns are "
                f"{list(frame.columns)}"
            )
        texts = [str(text) for text in frame[column].tolist()]
    if not texts:
        raise InputError(f"predict.input={path}: the file holds no text")
    return texts


def decode(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(
            f"predict.input={path}: not valid utf-8 text ({error.reason} at byte {error.start})"
        ) from None


def read_table(path: Path, suffix: str) -> pd.DataFrame:
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep=TABLES[suffix], dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise InputError(f"predict.input={path}: the file holds no text") from None
    except (pd.errors.ParserError, OSError, ValueError, UnicodeDecodeError) as error:
        raise InputError(
            f"predict.input={path}: cannot be read as {suffix[1:]} ({str(error).splitlines()[0]})"
        ) from None
    frame.columns = [str(name) for name in frame.columns]
    return frame


# ------------------------------------------------------------------------------------------ model


def load_model(spec, cfg: DictConfig):
    """A model with predict(DataFrame) -> label, probability: from a local path, a models:/ URI or a
    run id."""
    if not spec:
        raise InputError(
            "predict.model is not set; give a run id, models:/NAME@champion or a model folder"
        )
    spec = str(spec)
    path = Path(spec).expanduser()
    if path.exists():
        return load_local(path)
    if not (spec.startswith(("models:/", "runs:/")) or RUN_ID.fullmatch(spec)):
        raise InputError(
            f"predict.model={spec}: no such file or folder, and not a run id or models:/ URI"
        )
    open_store(cfg)
    uri = spec if not RUN_ID.fullmatch(spec) else model_of_run(spec)
    try:
        return takes_text(mlflow.pyfunc.load_model(uri), spec)
    except MlflowException as error:
        raise InputError(f"predict.model={spec}: {first_line(error.message)}") from None


def load_local(path: Path):
    if path.is_file() and path.suffix == ".keras":
        return export.TextClassifier.from_keras(path)
    if not (path / "MLmodel").is_file():
        raise InputError(
            f"predict.model={path}: neither an MLflow model folder (no MLmodel file) nor a .keras "
            "file"
        )
    try:
        return takes_text(mlflow.pyfunc.load_model(str(path)), path)
    except MlflowException as error:
        raise InputError(f"predict.model={path}: {first_line(error.message)}") from None


def takes_text(model, spec):
    schema = model.metadata.get_input_schema()
    if schema is not None and schema.input_types()[0] != DataType.string:
        raise InputError(
            f"predict.model={spec}: this model takes token ids, not text (it was trained on "
            "data=keras_imdb)"
        )
    return model


def open_store(cfg: DictConfig) -> None:
    """Point MLflow at the configured store, which must exist: a run id or a models:/ URI is looked
    up there."""
    uri = mlflow_runs.tracking_uri(cfg)
    file = stores.sqlite_file(uri)
    if file is not None and not file.is_file():
        raise InputError(
            f"no MLflow store at {file} (paths.mlruns_dir, tracking.uri): the model cannot be "
            "looked up"
        )
    if file is None:  # a server or database answers now, not after minutes of MLflow's HTTP retries
        stores.check_before_writing({}, [stores.mlflow_store(uri)])
    mlflow.set_tracking_uri(uri)


def model_of_run(run_id: str) -> str:
    try:
        model_id = export.model_of_run(run_id)
    except MlflowException as error:
        raise InputError(f"predict.model={run_id}: {first_line(error.message)}") from None
    if model_id is None:
        raise InputError(
            f"predict.model={run_id}: the run logged no model (it ran with train.log_model=false)"
        )
    return f"models:/{model_id}"


def first_line(message: str) -> str:
    return " ".join(message.strip().splitlines()[:1])


# ------------------------------------------------------------------------------------------ output


def predict(model, texts: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({export.TEXT_COLUMN: texts})
    scores = (
        model.predict_frame(frame)
        if isinstance(model, export.TextClassifier)
        else model.predict(frame)
    )
    return pd.concat([pd.DataFrame({"text": texts}), scores.reset_index(drop=True)], axis=1)


def output_suffix(output: str) -> str:
    suffix = Path(output).suffix.lower()
    if suffix not in OUTPUTS:
        raise InputError(
            f"predict.output={output}: unknown file type {suffix or '(none)'}; allowed: "
            f"{', '.join(OUTPUTS)}"
        )
    return suffix


def write(table: pd.DataFrame, output: str) -> None:
    path, suffix = Path(output).expanduser(), output_suffix(output)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".parquet":
            table.to_parquet(path, index=False)
        elif suffix == ".jsonl":
            table.to_json(path, orient="records", lines=True, force_ascii=False)
        else:
            table.to_csv(path, sep="," if suffix == ".csv" else "\t", index=False)
    except OSError as error:
        raise InputError(f"predict.output={output}: cannot be written ({error.strerror})") from None


def shown(table: pd.DataFrame) -> str:
    cut = lambda text: text if len(text) <= SHOWN_CHARACTERS else text[: SHOWN_CHARACTERS - 1] + "…"
    scores = {
        name: table[name].map("{:.4f}".format)
        for name in table.columns
        if name not in ("text", "label")
    }
    return table.assign(text=table["text"].map(cut), **scores).to_string(index=False)


def run_predict(cfg: DictConfig) -> pd.DataFrame:
    texts = read_texts(cfg.predict)
    if cfg.predict.output:
        output_suffix(cfg.predict.output)  # before the model loads: a bad name costs nothing
    model = load_model(cfg.predict.model, cfg)
    table = predict(model, texts)
    if cfg.predict.output:
        write(table, cfg.predict.output)
        print(f"{len(table)} texts scored: {cfg.predict.output}")
    else:
        print(shown(table))
    return table
