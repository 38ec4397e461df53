"""The model a user can run: raw text in, as MLflow logs it, with its datasets, links and descriptions."""

import logging
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline.models import export
from pipeline.tracking import mlflow_runs
from pipeline.data.texts import LOADERS, VECTORIZER_OOV, cache_key, prepare_data, stratified_subset
from pipeline.training.train import run_training, train_model

SMALL = [
    "data.subset=400",
    "data.max_len=12",
    "train.epochs=2",
    "train.log_model=true",
]  # 12 tokens: most sentences are cut


def raw_test_texts(cfg) -> list[str]:
    """The test split's texts as the loader reads them, in the order of the vectorized x_test."""
    texts = LOADERS[cfg.data.name](cfg.data, Path(cfg.paths.cache_dir) / "downloads")
    return stratified_subset(texts.test, texts.test_labels, cfg.data.subset, cfg.data.split_seed)[0]


def last_run(cfg):
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    return client.search_runs(
        [experiment.experiment_id], order_by=["start_time DESC"], max_results=1
    )[0]


@pytest.mark.parametrize(
    "model, truncate, extra",
    [
        ("pooling", "pre", []),
        ("gru", "post", []),
        (
            "gru",
            "pre",
            ["model.mask_padding=false", "data.padding=pre"],
        ),  # unmasked: the padding side is part of the input
    ],
)
def test_logged_model_scores_raw_text_as_the_trained_model_scores_its_ids(
    make_cfg, model, truncate, extra
):
    cfg = make_cfg(
        f"model={model}",
        f"data.truncate={truncate}",
        *SMALL,
        *extra,
        f"tracking.experiment=test-export-{model}",
    )
    result = run_training(cfg)
    data = prepare_data(cfg.data, cfg.paths.cache_dir)
    texts = raw_test_texts(cfg)
    assert (
        len(texts) == len(data.y_test) and max(len(t.split()) for t in texts) > cfg.data.max_len
    ), "precondition: texts get cut"
    on_ids = result.model.predict(data.x_test, verbose=0).reshape(-1)

    run = last_run(cfg)
    model_id = export.model_of_run(run.info.run_id)
    logged = mlflow.pyfunc.load_model(f"models:/{model_id}")
    scores = logged.predict(pd.Series(texts))
    np.testing.assert_allclose(scores["p_positive"].to_numpy(), on_ids, atol=1e-6)
    np.testing.assert_allclose(
        scores["probability"].to_numpy(), np.maximum(on_ids, 1 - on_ids), atol=1e-6
    )
    np.testing.assert_array_equal(
        scores["label"].to_numpy(), np.where(on_ids > 0.5, "positive", "negative")
    )
    assert list(logged.predict(pd.Series(["great film"])).columns) == [
        "label",
        "probability",
        "p_negative",
        "p_positive",
    ]
    assert logged.metadata.get_input_schema().input_types() == [mlflow.types.DataType.string]
    assert logged.metadata.saved_input_example_info is not None


def test_the_logged_model_is_linked_to_its_run_and_best_epoch(make_cfg):
    cfg = make_cfg(
        "model=pooling",
        *SMALL,
        "train.epochs=3",
        "callbacks=none",
        "tracking.experiment=test-export-links",
    )
    result = run_training(cfg)
    run = last_run(cfg)
    client = MlflowClient(cfg.tracking.uri)
    model = client.get_logged_model(export.model_of_run(run.info.run_id))
    assert (
        model.source_run_id == run.info.run_id
        and run.data.params["model.body"] == model.params["model.body"]
    )
    linked = {(metric.key, metric.step): metric.value for metric in model.metrics}
    best = int(result.summary["best_epoch"])
    assert linked[("val_loss", best)] == pytest.approx(result.summary["best_val_loss"])
    assert linked[("best_val_loss", 0)] == pytest.approx(result.summary["best_val_loss"])
    assert linked[("test_accuracy", 0)] == pytest.approx(result.summary["test_accuracy"])
    assert not any(key == "val_loss" and step != best for key, step in linked), (
        "only the kept epoch is the model's"
    )
    assert run.data.metrics["log_model_seconds"] > 0
    folder = Path(client.download_artifacts(run.info.run_id, ""))
    assert not (folder / "model.keras").exists(), "one copy of the model: inside the MLflow model"


def test_a_text_without_a_token_scores_as_one_oov_token_and_both_cut_sides_match_the_data(make_cfg):
    cfg = make_cfg("model=pooling", *SMALL)
    data = prepare_data(cfg.data, cfg.paths.cache_dir)
    trained = train_model(cfg, data).model
    on_text = export.text_model(trained, data.vocabulary, cfg.data, data.class_names)
    oov_row = np.zeros((1, cfg.data.max_len), dtype=np.int32)
    oov_row[0, 0] = VECTORIZER_OOV
    np.testing.assert_allclose(
        on_text(np.array([["..."]]))[:, 1:], trained(oov_row), atol=1e-6
    )  # p_positive
    long_text = " ".join(data.vocabulary[2 : 2 + 3 * cfg.data.max_len])
    ids = export.TokenIds(data.vocabulary, cfg.data.max_len, "pre")(np.array([[long_text]]))
    assert ids.numpy()[0].tolist() == list(
        range(2 + 2 * cfg.data.max_len, 2 + 3 * cfg.data.max_len)
    ), "pre keeps the last tokens"
    ids = export.TokenIds(data.vocabulary, cfg.data.max_len, "post")(np.array([[long_text]]))
    assert ids.numpy()[0].tolist() == list(range(2, 2 + cfg.data.max_len)), "post keeps the first"


def test_data_without_raw_text_logs_a_model_of_token_ids_and_says_so(make_cfg, caplog):
    """keras_imdb's reviews are integer sequences: no vocabulary, so the logged model takes id lists."""
    caplog.set_level(logging.INFO, logger="pipeline.models.export")
    cfg = make_cfg("model=pooling", *SMALL, "tracking.experiment=test-export-ids")
    data = prepare_data(cfg.data, cfg.paths.cache_dir)
    data.vocabulary = []  # what pipeline.data gives for keras_imdb
    trained = train_model(cfg, data).model
    mlflow_runs.configure(cfg)
    with mlflow.start_run():
        model_id = export.log_model(trained, data, cfg.data, best_epoch=1)
    assert "has no raw text" in caplog.text
    logged = mlflow.pyfunc.load_model(f"models:/{model_id}")
    rows = [row[row > 0].tolist() for row in data.x_test[:5]]
    scores = logged.predict(pd.DataFrame({"token_ids": rows}))
    np.testing.assert_allclose(
        scores["p_positive"], trained.predict(data.x_test[:5], verbose=0).reshape(-1), atol=1e-6
    )


def test_runs_log_their_splits_as_datasets_with_the_cache_key_as_digest(make_cfg):
    cfg = make_cfg(
        "model=pooling",
        "data.subset=400",
        "data.max_len=12",
        "tracking.experiment=test-export-datasets",
    )
    sizes = prepare_data(cfg.data, cfg.paths.cache_dir).sizes()
    run_training(cfg)
    first = last_run(cfg)
    run_training(cfg)
    second = last_run(cfg)
    assert first.info.run_id != second.info.run_id
    for run in (first, second):
        inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
        assert set(inputs) == {"training", "validation", "test"}
        assert {d.digest for d in inputs.values()} == {cache_key(cfg.data)}
        assert (
            inputs["training"].name == "sentences-train"
            and f'"features_shape": [{sizes["train"]}, 12]' in inputs["training"].profile
        )
        assert "archive.ics.uci.edu" in inputs["test"].source


def test_experiment_opens_on_model_training_and_the_run_link_says_so(make_cfg, capsys):
    cfg = make_cfg(
        "model=pooling", "data.subset=400", "data.max_len=12", "tracking.experiment=test-export-ui"
    )
    run_training(cfg)
    run = last_run(cfg)
    experiment = MlflowClient(cfg.tracking.uri).get_experiment(run.info.experiment_id)
    assert experiment.tags[mlflow_runs.EXPERIMENT_KIND] == "custom_model_development"
    link = f"http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}?workflowType=machine_learning"
    assert link in capsys.readouterr().out.splitlines()[-2]
    assert run.data.tags[mlflow_runs.NOTE].startswith(
        "average_pooling on sentences: best_val_loss "
    )
