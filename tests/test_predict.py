"""rnn-predict: every input form and model reference, and every bad input as one line with exit 2."""

import subprocess
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from pipeline import CONFIG_DIR
from pipeline.models import export
from pipeline.core.errors import InputError
from pipeline.tracking.predict import run_predict
from pipeline.tracking.registry import CHAMPION
from pipeline.training.train import run_training
from tests.conftest import BIN, SHRINK, compose_config

TEXTS = [
    "a great film, I loved it",
    "dull plot, awful acting",
    "the food was cold, the service slow",
]


@pytest.fixture(scope="module")
def logged(tmp_path_factory, data_cache, mlflow_uri):
    """One trained model logged by rnn-train's code, registered as NAME@champion, and downloaded to a folder."""
    folder = tmp_path_factory.mktemp("predict")
    cfg = compose_config(
        "data=sentences",
        *SHRINK,
        "data.subset=400",
        "data.max_len=20",
        "model=pooling",
        "train.log_model=true",
        f"paths.cache_dir={data_cache}",
        f"paths.mlruns_dir={folder / 'mlruns'}",
        f"tracking.uri={mlflow_uri}",
        "tracking.experiment=test-predict",
    )
    run_training(cfg)
    client = mlflow.MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("test-predict")
    [run] = client.search_runs([experiment.experiment_id])
    model_id = export.model_of_run(run.info.run_id)
    name = f"predict-{folder.name}"
    version = mlflow.register_model(f"models:/{model_id}", name)
    client.set_registered_model_alias(name, CHAMPION, version.version)
    local = Path(
        mlflow.artifacts.download_artifacts(f"models:/{model_id}", dst_path=str(folder / "model"))
    )
    expected = mlflow.pyfunc.load_model(f"models:/{model_id}").predict(pd.Series(TEXTS))
    return {
        "run_id": run.info.run_id,
        "uri": f"models:/{name}@{CHAMPION}",
        "folder": local,
        "folder_root": folder,
        "keras": local / "artifacts" / export.KERAS_FILE,
        "expected": expected,
        "tracking": mlflow_uri,
    }


def rnn_predict(logged, cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    command = [
        BIN / "rnn-predict",
        f"tracking.uri={logged['tracking']}",
        f"paths.log_dir={cwd / 'logs'}",
        *overrides,
    ]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd)


def printed_probabilities(stdout: str) -> list[float]:
    return [
        float(line.split()[-3]) for line in stdout.strip().splitlines()[1:]
    ]  # then p_negative, p_positive


@pytest.mark.slow
def test_texts_on_the_command_line_with_a_run_id(logged, tmp_path):
    quoted = ",".join(f'"{text}"' for text in TEXTS)
    result = rnn_predict(
        logged, tmp_path, f"predict.model={logged['run_id']}", f"predict.texts=[{quoted}]"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_allclose(
        printed_probabilities(result.stdout), logged["expected"]["probability"], atol=5e-5
    )
    assert result.stdout.splitlines()[0].split() == [
        "text",
        "label",
        "probability",
        "p_negative",
        "p_positive",
    ]


@pytest.mark.slow
def test_a_text_file_with_a_registry_alias_written_to_csv(logged, tmp_path):
    (tmp_path / "texts.txt").write_text("\n".join(TEXTS) + "\n\n")  # a blank line is no text
    result = rnn_predict(
        logged,
        tmp_path,
        f"predict.model={logged['uri']}",
        "predict.input=texts.txt",
        "predict.output=out/scores.csv",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    scores = pd.read_csv(tmp_path / "out" / "scores.csv")
    assert (
        scores["text"].tolist() == TEXTS
        and scores["label"].tolist() == logged["expected"]["label"].tolist()
    )
    np.testing.assert_allclose(scores["probability"], logged["expected"]["probability"], atol=1e-6)


@pytest.mark.slow
def test_table_columns_with_a_local_model_folder_and_a_keras_file(logged, tmp_path):
    table = pd.DataFrame({"id": [1, 2, 3], "review": TEXTS})
    table.to_parquet(tmp_path / "reviews.parquet")
    table.to_csv(tmp_path / "reviews.tsv", sep="\t", index=False)
    runs = [
        (logged["folder"], "reviews.parquet", "scores.parquet"),
        (logged["keras"], "reviews.tsv", "scores.jsonl"),
    ]
    for model, source, output in runs:
        result = rnn_predict(
            logged,
            tmp_path,
            f"predict.model={model}",
            f"predict.input={source}",
            "predict.column=review",
            f"predict.output={output}",
        )
        assert result.returncode == 0, result.stderr[-2000:]
        scores = (
            pd.read_parquet(tmp_path / output)
            if output.endswith(".parquet")
            else pd.read_json(tmp_path / output, lines=True)
        )
        np.testing.assert_allclose(
            scores["probability"], logged["expected"]["probability"], atol=1e-6
        )


def predict_cfg(logged, tmp_path, *overrides: str):
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        return compose(
            "predict",
            overrides=[
                f"tracking.uri={logged['tracking']}",
                f"paths.log_dir={tmp_path}",
                *overrides,
            ],
        )


def test_a_csv_column_in_process(logged, tmp_path):
    pd.DataFrame({"text": TEXTS, "label": [1, 0, 0]}).to_csv(tmp_path / "reviews.csv", index=False)
    table = run_predict(
        predict_cfg(
            logged,
            tmp_path,
            f"predict.model={logged['folder']}",
            f"predict.input={tmp_path / 'reviews.csv'}",
        )
    )
    np.testing.assert_allclose(table["probability"], logged["expected"]["probability"], atol=1e-6)


BAD = [
    (
        ["predict.model=models:/no-such-model@champion", "predict.texts=[fine]"],
        r"predict.model=models:/no-such-model@champion: Registered Model with name=no-such-model not found",
    ),
    (
        ["predict.model=0123456789abcdef0123456789abcdef", "predict.texts=[fine]"],
        r"predict.model=0123456789abcdef0123456789abcdef: Run .* not found",
    ),
    (
        ["predict.model=no/such/folder", "predict.texts=[fine]"],
        r"predict.model=no/such/folder: no such file or folder, and not a run id or models:/ URI",
    ),
    (["predict.texts=[fine]"], r"predict.model is not set"),
    (
        ["predict.model=FOLDER"],
        r"no text to score: set predict.texts=\[...\] or predict.input=FILE",
    ),
    (
        ["predict.model=FOLDER", "predict.input=TMP/empty.txt"],
        r"predict.input=.*empty.txt: the file holds no text",
    ),
    (
        ["predict.model=FOLDER", "predict.input=TMP/blank.csv"],
        r"predict.input=.*blank.csv: the file holds no text",
    ),
    (
        ["predict.model=FOLDER", "predict.input=TMP/missing.txt"],
        r"predict.input=.*missing.txt: no such file",
    ),
    (
        ["predict.model=FOLDER", "predict.input=TMP/reviews.csv", "predict.column=review"],
        r"no column 'review' \(predict.column\); columns are \['text', 'label'\]",
    ),
    (
        ["predict.model=FOLDER", "predict.texts=[fine]", "predict.output=scores.xlsx"],
        r"predict.output=scores.xlsx: unknown file type .xlsx",
    ),
    (
        ["predict.model=FOLDER", "predict.texts=[fine]", "predict.input=TMP/reviews.csv"],
        r"predict.texts and predict.input are both set",
    ),
    (
        ["predict.model=TMP", "predict.texts=[fine]"],
        r"neither an MLflow model folder \(no MLmodel file\) nor a .keras file",
    ),
]


@pytest.mark.parametrize("overrides, message", BAD)
def test_bad_input_is_one_input_error(logged, tmp_path, overrides, message):
    (tmp_path / "empty.txt").write_text("\n \n")
    (tmp_path / "blank.csv").write_text("")
    pd.DataFrame({"text": TEXTS, "label": [1, 0, 0]}).to_csv(tmp_path / "reviews.csv", index=False)
    filled = [
        o.replace("FOLDER", str(logged["folder"])).replace("TMP", str(tmp_path)) for o in overrides
    ]
    with pytest.raises(InputError, match=message):
        run_predict(predict_cfg(logged, tmp_path, *filled))


@pytest.mark.slow
def test_bad_input_on_the_command_line_is_one_line_and_exit_2(logged, tmp_path):
    for overrides in (
        ["predict.model=models:/no-such-model@champion", "predict.texts=[fine]"],
        [f"predict.model={logged['folder']}", "predict.input=empty.txt"],
        [f"predict.model={logged['folder']}", "predict.input=reviews.csv", "predict.column=review"],
    ):
        (tmp_path / "empty.txt").write_text("")
        pd.DataFrame({"text": TEXTS}).to_csv(tmp_path / "reviews.csv", index=False)
        result = rnn_predict(logged, tmp_path, *overrides)
        assert result.returncode == 2 and result.stdout == "", result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith(
            "error: predict."
        ), result.stderr


def test_an_unreachable_tracking_server_is_one_line_at_once(tmp_path):
    """Issue 27, case 8: rnn-predict took 268 s of MLflow's HTTP retries before its one line; the other commands
    probe the store first and fail at once."""
    import time

    started = time.monotonic()
    command = [
        BIN / "rnn-predict",
        "tracking.uri=http://127.0.0.1:9",
        f"paths.log_dir={tmp_path / 'logs'}",
        "predict.model=models:/reviews@champion",
        "predict.texts=[fine]",
    ]  # port 9: nothing listens
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    seconds = time.monotonic() - started
    assert result.returncode == 2 and result.stdout == "", result.stderr[-2000:]
    [line] = result.stderr.strip().splitlines()
    assert (
        line.startswith("error: tracking.uri=http://127.0.0.1:9")
        and "cannot connect to 127.0.0.1:9" in line
    ), line
    assert seconds < 60, f"{seconds:.0f} s: the store is probed before MLflow's retries"
