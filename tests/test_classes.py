"""Any text classification task: K classes, string labels, a validation file, empty and missing texts."""

import math
import subprocess

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from pipeline.models import export
from pipeline.config import check
from pipeline.data.texts import prepare_data
from pipeline.core.errors import InputError
from pipeline.models.scores import MacroF1, class_report
from pipeline.report.sweep_report import format_report
from pipeline.training.train import train_model
from tests.conftest import BIN, SHRINK, compose_config
from tests.helpers.corpora import data_config, imdb_config, write_imdb_archive, write_sentences

TOPICS = {  # four clear-cut topics, a few words each, for a 4-class table with string labels
    "sport": [
        "the striker scored a late goal",
        "a great match for the home team",
        "the coach praised the keeper",
    ],
    "food": [
        "the soup was rich and spicy",
        "fresh bread and a sweet pie",
        "we cooked pasta with garlic",
    ],
    "tech": [
        "the laptop boots fast",
        "a phone with a sharp screen",
        "the software update fixed the bug",
    ],
    "weather": ["heavy rain and strong wind", "a sunny warm afternoon", "snow fell all night long"],
}


def topic_table(count: int = 12, offset: int = 0) -> pd.DataFrame:
    rows = [
        (f"{texts[i % 3]} {word}{i + offset}", topic)
        for topic, texts in TOPICS.items()
        for i in range(count)
        for word in ("day",)
    ]
    return pd.DataFrame(rows, columns=["text", "label"])


# ---------------------------------------------------------------------------------------- scores


@pytest.mark.parametrize("classes", [2, 4])
def test_macro_f1_and_the_class_report_agree_with_scikit_learn(classes):
    rng = np.random.default_rng(3)
    truth = rng.integers(0, classes, size=300)
    scores = rng.random((300, 1 if classes == 2 else classes)).astype("float32")
    predicted = (scores[:, 0] > 0.5).astype(int) if classes == 2 else scores.argmax(axis=1)
    metric = MacroF1(classes)
    for start in range(0, 300, 64):  # batch by batch, as Keras updates it
        metric.update_state(truth[start : start + 64].astype("float32"), scores[start : start + 64])
    assert float(metric.result()) == pytest.approx(
        f1_score(truth, predicted, average="macro"), abs=1e-6
    )
    report = class_report(
        keras.ops.convert_to_numpy(metric.matrix), [f"c{i}" for i in range(classes)]
    )
    np.testing.assert_array_equal(report["confusion_matrix"], confusion_matrix(truth, predicted))
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted)
    assert [row["f1"] for row in report["classes"]] == pytest.approx(list(f1))
    assert [row["precision"] for row in report["classes"]] == pytest.approx(list(precision))
    assert [row["recall"] for row in report["classes"]] == pytest.approx(list(recall))
    assert [row["support"] for row in report["classes"]] == list(support)
    assert report["accuracy"] == pytest.approx(float((truth == predicted).mean()))
    assert "c1" in format_report(report)[1]
    header = format_report(class_report([[3, 1], [0, 2]], ["negative", "positive"]))[1]
    assert header.split() == ["negative", "positive"], (
        "class names are not cut to the counts' width"
    )


# ------------------------------------------------------------------------------------------ data


def test_string_labels_become_classes_in_sorted_order_and_numbers_by_value(tmp_path):
    path = tmp_path / "topics.csv"
    topic_table().to_csv(path, index=False)
    data = prepare_data(data_config("table", path=str(path), max_len=10), tmp_path / "cache")
    assert data.class_names == ["food", "sport", "tech", "weather"] and data.num_classes == 4
    assert sorted(set(data.y_train.tolist())) == [0, 1, 2, 3]
    assert data.chance_loss() == pytest.approx(math.log(4), abs=0.01)
    stars = topic_table().assign(
        label=lambda f: f["label"].map({"sport": 10, "food": 2, "tech": 9, "weather": 1})
    )
    stars.to_csv(path, index=False)
    data = prepare_data(data_config("table", path=str(path), max_len=10), tmp_path / "cache")
    assert data.class_names == ["1", "2", "9", "10"]  # by value, not "1", "10", "2", "9"


def test_a_label_map_names_its_classes_and_a_bad_one_is_one_line():
    cfg = compose_config(
        "data=table", "data.path=x.csv", "+data.label_map={bad: 0, ok: 1, great: 2}"
    )
    check(cfg)
    for bad in ("{neg: 0, pos: 2}", "{neg: 1, pos: 1}", "{neg: 0}", "{neg: zero, pos: 1}"):
        cfg = compose_config("data=table", "data.path=x.csv", f"+data.label_map={bad}")
        with pytest.raises(
            InputError, match=r"data.label_map=.*; it must map raw labels onto the class indices"
        ):
            check(cfg)


def test_empty_and_missing_texts_are_dropped_and_counted_and_a_missing_label_names_its_row(
    tmp_path,
):
    """Acceptance d: a TSV with 4 empty-text rows and 2 NaN texts trains and reports 6 dropped."""
    frame = topic_table(count=12)
    frame.loc[[3, 17, 30, 41], "text"] = ["", "   ", "\t", ""]
    frame.loc[[8, 25], "text"] = ["NaN", "nan"]
    path = tmp_path / "topics.tsv"
    frame.to_csv(path, sep="\t", index=False)
    cfg = data_config("table", path=str(path), max_len=10, test_split=0.2)
    data = prepare_data(cfg, tmp_path / "cache")
    assert sum(data.empty_texts.values()) == 6
    assert data.empty_texts["train"] + data.empty_texts["val"] + data.empty_texts["test"] == 6
    assert (
        sum(data.sizes().values())
        == len(frame) - data.empty_texts["train"] - data.empty_texts["val"]
    )
    assert "nan" not in data.vocabulary
    frame.loc[20, "label"] = float("nan")
    frame.to_csv(path, sep="\t", index=False)
    with pytest.raises(
        InputError, match=r"topics.tsv: label missing at row 20; every row needs a label"
    ):
        prepare_data(cfg, tmp_path / "cache")


def test_missing_texts_in_parquet_are_empty_texts_not_the_word_none(tmp_path):
    frame = topic_table(count=12).astype({"text": object})
    frame.loc[[2, 9], "text"] = [None, float("nan")]
    frame.to_parquet(tmp_path / "topics.parquet")
    data = prepare_data(
        data_config("table", path=str(tmp_path / "topics.parquet"), max_len=10), tmp_path / "cache"
    )
    assert sum(data.empty_texts.values()) == 2 and "none" not in data.vocabulary


def test_a_validation_file_is_the_validation_split_and_the_training_file_loses_nothing(tmp_path):
    """Acceptance e."""
    train, val, test = tmp_path / "train.csv", tmp_path / "dev.csv", tmp_path / "test.csv"
    topic_table(count=12).to_csv(train, index=False)
    topic_table(count=5, offset=100).to_csv(val, index=False)
    topic_table(count=4, offset=200).to_csv(test, index=False)
    cfg = data_config("table", path=str(train), val_path=str(val), test_path=str(test), max_len=10)
    data = prepare_data(cfg, tmp_path / "cache")
    assert data.sizes() == {"train": 48, "val": 20, "test": 16}
    vectorized_val = {tuple(row[row > 0]) for row in data.x_val}
    own = {tuple(row[row > 0]) for row in data.x_train}
    assert not vectorized_val & own, "no validation text comes from the training file"
    assert "day100" not in data.vocabulary, "the vocabulary is adapted on the training file only"
    topic_table(count=2, offset=300).assign(label="music").to_csv(val, index=False)
    with pytest.raises(InputError, match=r"dev.csv: label 'music' at row 0 is not a known class"):
        prepare_data(cfg, tmp_path / "cache")


def test_the_sentences_by_source_are_three_classes(tmp_path):
    folder = write_sentences(tmp_path / "uci")
    data = prepare_data(
        data_config("sentences", local_dir=str(folder), target="source"), tmp_path / "cache"
    )
    assert data.class_names == ["amazon", "imdb", "yelp"]
    assert sorted(
        np.bincount(np.concatenate([data.y_train, data.y_val, data.y_test]).astype(int)).tolist()
    ) == [12, 12, 12]


def test_imdb_star_ratings_from_the_file_names(tmp_path):
    cfg, downloads = imdb_config(tmp_path, target="rating", vocab_size=100)
    extra = {
        f"aclImdb/{split}/{folder}/{i + 50}_{stars}.txt": f"{word} film number {i} {split}".encode()
        for split in ("train", "test")
        for folder, ratings in (("neg", (1, 2, 3, 4)), ("pos", (7, 8, 9, 10)))
        for stars, word in zip(ratings, ("awful", "bad", "weak", "meh"))
        for i in range(6)
    }
    write_imdb_archive(downloads / "aclImdb_v1.tar.gz", extra=extra)
    data = prepare_data(cfg, tmp_path / "cache")
    assert data.class_names == ["1", "2", "3", "4", "7", "8", "9", "10"]
    counts = np.bincount(data.y_test.astype(int), minlength=8)
    assert counts.tolist() == [
        6,
        6,
        6,
        6,
        26,
        6,
        6,
        6,
    ]  # the fixture's 20 other reviews have 7 stars
    grouped = prepare_data(
        imdb_config(tmp_path, target="rating_group", vocab_size=100)[0], tmp_path / "cache"
    )
    assert grouped.class_names == ["1-2", "3-4", "7-8", "9-10"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["data=imdb", "data.target=stars"],
            r"data.target='stars' is not a target of data=imdb; allowed: sentiment, rating, rating_group",
        ),
        (
            ["data=sentences", "data.target=source", "data.sources=[yelp]"],
            r"data.target=source with data.sources=\['yelp'\]",
        ),
        (
            ["data=table", "data.path=x.csv", "+data.target=source"],
            r"data.target is not a setting of data=table; the data sets with targets: imdb, sentences",
        ),
    ],
)
def test_a_bad_target_is_one_line(overrides, message):
    with pytest.raises(InputError, match=message):
        check(compose_config(*overrides))


def test_a_nan_label_is_one_line_and_exit_2_with_nothing_stored(tmp_path):
    frame = topic_table(count=6)
    frame.loc[13, "label"] = None
    frame.to_csv(tmp_path / "topics.tsv", sep="\t", index=False)
    result = subprocess.run(
        [
            BIN / "rnn-train",
            "data=table",
            f"data.path={tmp_path / 'topics.tsv'}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"paths.mlruns_dir={tmp_path / 'mlruns'}",
            f"paths.log_dir={tmp_path / 'logs'}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("topics.tsv: label missing at row 13; every row needs a label")
    )
    assert not (tmp_path / "mlruns").exists()


# -------------------------------------------------------------------------------- model and export


def test_four_classes_train_with_a_softmax_and_the_exported_model_names_them(tmp_path):
    path = tmp_path / "topics.csv"
    topic_table(count=15).to_csv(path, index=False)
    cfg = compose_config(
        "data=table",
        f"data.path={path}",
        "data.max_len=10",
        *SHRINK,
        "train.epochs=3",
        "model=pooling",
        "train.evaluate_test=true",
        f"paths.cache_dir={tmp_path / 'cache'}",
    )
    data = prepare_data(cfg.data, cfg.paths.cache_dir)
    result = train_model(cfg, data)
    assert (
        result.model.outputs[0].shape[-1] == 4
        and result.model.loss == "sparse_categorical_crossentropy"
    )
    assert {"macro_f1", "val_macro_f1"} <= set(result.history)
    assert result.test_report["class_names"] == ["food", "sport", "tech", "weather"]
    assert sum(map(sum, result.test_report["confusion_matrix"])) == len(data.y_test)
    assert result.summary["test_macro_f1"] == pytest.approx(result.test_report["macro_f1"])
    exported = export.exported_model(result.model, data, cfg.data)
    exported.save(tmp_path / "topics.keras")
    scorer = export.TextClassifier.from_keras(tmp_path / "topics.keras")
    texts = ["the keeper saved a penalty", "rain and wind all day", "a laptop with a fast screen"]
    table = scorer.predict_frame(pd.DataFrame({"text": texts}))
    columns = ["p_food", "p_sport", "p_tech", "p_weather"]
    assert list(table.columns) == ["label", "probability", *columns]
    np.testing.assert_allclose(table[columns].sum(axis=1), 1.0, atol=1e-6)
    assert set(table["label"]) <= set(TOPICS)
    on_ids = result.model.predict(data.x_test[:5], verbose=0)
    np.testing.assert_allclose(exported.get_layer("classes")(on_ids), on_ids, atol=1e-7)


# ---------------------------------------------------------------------------- end to end (slow)


@pytest.mark.slow
def test_a_four_class_sweep_registers_a_champion_that_predict_and_a_real_server_label_by_name(
    sweep_overrides, tmp_path, capsys
):
    """Acceptance a: string labels, search=quick, a champion; rnn-predict and `mlflow models serve` give class
    names and probabilities that sum to 1."""
    import mlflow

    from pipeline.tracking.registry import CHAMPION
    from pipeline.search.sweep import compose
    from tests.helpers.serving import post, serve
    from tests.helpers.sweeps import study_of, sweep

    path = tmp_path / "topics.csv"
    topic_table(count=30).to_csv(path, index=False)
    name = f"topics-{tmp_path.name}"
    overrides = [
        *sweep_overrides,
        "search=quick",
        "data=table",
        f"data.path={path}",
        "data.max_len=12",
        "search.n_trials=3",
        "search.confirm_top_k=1",
        "search.confirm_seeds=1",
        "train.epochs=4",
        f"search.register_as={name}",
    ]
    assert sweep(overrides) == 0
    printed = capsys.readouterr().out
    assert "Data: 4 classes (food, sport, tech, weather)" in printed and "ln 4 = 1.3863" in printed
    assert (
        "Confusion matrix (rows: true class, columns: predicted):" in printed
        and "macro-F1" in printed
    )
    best = study_of(overrides).best_trial
    assert best.user_attrs["num_classes"] == 4
    cfg = compose(overrides)
    uri = f"models:/{name}@{CHAMPION}"
    texts = [
        "the keeper saved a late goal",
        "rain and wind all night",
        "pasta with garlic and bread",
    ]
    columns = ["p_food", "p_sport", "p_tech", "p_weather"]

    quoted = ",".join(f'"{text}"' for text in texts)
    out = tmp_path / "scores.csv"
    result = subprocess.run(
        [
            BIN / "rnn-predict",
            f"tracking.uri={cfg.tracking.uri}",
            f"predict.model={uri}",
            f"predict.texts=[{quoted}]",
            f"predict.output={out}",
            f"paths.log_dir={tmp_path / 'logs'}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    table = pd.read_csv(out)
    assert list(table.columns) == ["text", "label", "probability", *columns]
    np.testing.assert_allclose(table[columns].sum(axis=1), 1.0, atol=1e-6)
    assert set(table["label"]) <= set(TOPICS)

    server, url, log = serve(uri, cfg.tracking.uri, tmp_path)
    try:
        answer = post(url, {"inputs": texts})["predictions"]
    finally:
        import os
        import signal

        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
        log.close()
    assert [row["label"] for row in answer] == table["label"].tolist()
    for row, expected in zip(answer, table[columns].to_numpy()):
        assert sum(row[column] for column in columns) == pytest.approx(1.0, abs=1e-6)
        np.testing.assert_allclose([row[column] for column in columns], expected, atol=1e-5)
    mlflow.set_tracking_uri(cfg.tracking.uri)
    version = mlflow.MlflowClient().get_model_version_by_alias(name, CHAMPION)
    assert version.source == f"models:/{best.user_attrs['mlflow_model_id']}" or version.run_id


BEFORE_K_CLASSES = "cf855ab"  # the last commit whose every model was binary


@pytest.mark.slow
def test_a_binary_sweep_is_the_same_as_before_k_classes(sweep_overrides, tmp_path):
    """Acceptance b: the commit before K classes runs the same tiny binary sweep in a subprocess; trial values,
    the stored model (weights and probabilities) and the test accuracy agree to 1e-6."""
    import os
    import sys

    import mlflow
    import optuna

    from pipeline.config import compose
    from tests.conftest import REPO

    old = tmp_path / "before"
    old.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", BEFORE_K_CLASSES, "pipeline", "conf"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    runs = {}
    for label, pythonpath in (("before", str(old)), ("now", str(REPO))):
        since = (
            ("search.cv_folds", "tracking.trial_charts") if label == "before" else ()
        )  # settings that commit did not have yet
        overrides = [
            *(
                o
                for o in sweep_overrides
                if not o.startswith(("paths.mlruns_dir", "tracking.uri", *since))
            ),
            "search=quick",
            "search.n_trials=2",
            "search.pruner=none",
            f"paths.mlruns_dir={tmp_path / label}",
            "model.units=32",  # a baseline inside the space: that commit sampled the units of one outside it
            "search.objective=val_loss",
            "search.direction=minimize",  # no ties: that commit took the first
            f"tracking.uri=sqlite:///{tmp_path / label / 'mlflow.db'}",
            "search.study_name=same-seed",
        ]
        env = {**os.environ, "PYTHONPATH": pythonpath}
        module = (
            "pipeline.sweep" if label == "before" else "pipeline.cli.sweep"
        )  # the layout before subpackages
        result = subprocess.run(
            [sys.executable, "-m", module, *overrides],
            capture_output=True,
            text=True,
            cwd=pythonpath,
            env=env,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        cfg = compose(overrides)
        study = optuna.load_study(
            study_name="same-seed", storage=f"sqlite:///{tmp_path / label / 'optuna.db'}"
        )
        runs[label] = (cfg, study)
    (_, before), (cfg, now) = runs["before"], runs["now"]
    assert [t.params for t in now.trials] == [t.params for t in before.trials]
    np.testing.assert_allclose(
        [t.value for t in now.trials], [t.value for t in before.trials], atol=1e-6
    )
    best = now.best_trial.number
    assert before.best_trial.number == best
    test_now, test_before = now.user_attrs[f"test:{best}"], before.user_attrs[f"test:{best}"]
    assert test_now == pytest.approx(test_before, abs=1e-6)
    models = {}
    for label, (run_cfg, study) in runs.items():
        mlflow.set_tracking_uri(run_cfg.tracking.uri)
        models[label] = export.load_keras(study.best_trial.user_attrs["mlflow_model_id"])
    trained_now, trained_before = (
        export.trained_part(models["now"]),
        export.trained_part(models["before"]),
    )
    for new, old_weights in zip(
        trained_now.get_weights(), trained_before.get_weights(), strict=True
    ):
        np.testing.assert_allclose(new, old_weights, atol=1e-6)
    import tensorflow as tf

    texts = tf.constant([["a great film, I loved it"], ["dull plot, awful acting"]])
    before_p = keras.ops.convert_to_numpy(models["before"](texts)).reshape(-1)
    now_p = keras.ops.convert_to_numpy(models["now"](texts))
    np.testing.assert_allclose(now_p[:, 1], before_p, atol=1e-6)
    np.testing.assert_allclose(now_p.sum(axis=1), 1.0, atol=1e-6)
