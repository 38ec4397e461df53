"""Pretrained word vectors (issue 29): a file starts the embedding, frozen or fine-tuned, searched
like any setting, inside the exported model; rnn-vectors makes such a file; a bad file is one line
and exit 2."""

import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline.config import check, compose
from pipeline.core.errors import InputError
from pipeline.core.names import Fig
from pipeline.data import word_vectors as vectors_module
from pipeline.data.texts import LOADERS, prepare_data, stratified_subset
from pipeline.data.word_vectors import FIRST_WORD, word_vectors
from pipeline.models import export
from pipeline.training.train import new_model, run_training, train_model
from tests.conftest import BIN, REPO
from tests.helpers.processes import one_error_line

SMALL = ["data.subset=400", "data.max_len=12", "model=pooling", "train.epochs=2"]
DIM = 6
ALLOWED = "allowed: a GloVe or word2vec/fastText .vec text file, or a word2vec binary file *.bin"


def file_vectors(vocabulary: list[str]) -> dict[str, np.ndarray]:
    """Vectors for every other one of the first 40 words, and for two words no data has; each
    value a multiple of 1/64, which text holds exactly."""
    rng = np.random.default_rng(0)
    words = vocabulary[FIRST_WORD:42:2] + ["zzzunseen", "qqqnowhere"]
    return {word: (rng.integers(-64, 64, DIM) / 64).astype(np.float32) for word in words}


def write_glove(path: Path, table: dict[str, np.ndarray]) -> Path:
    path.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in table.items()))
    return path


@pytest.fixture
def sentences(make_cfg, tmp_path):
    """The tiny sentences config, its data, and a GloVe file covering some of its words."""
    cfg = make_cfg(*SMALL)
    data = prepare_data(cfg.data, cfg.paths.cache_dir)
    table = file_vectors(data.vocabulary)
    return cfg, data, table, write_glove(tmp_path / "glove.6d.txt", table)


def with_vectors(make_cfg, path: Path, *overrides: str):
    return make_cfg(*SMALL, f"model.embedding.vectors={path}", *overrides)


def embedding_of(model) -> np.ndarray:
    return model.get_layer("embedding").get_weights()[0]


def covered_rows(vocabulary: list[str], table: dict) -> list[int]:
    return [row for row, word in enumerate(vocabulary) if word in table]


def file_rows_of(rows: list[int], vocabulary: list[str], table: dict) -> np.ndarray:
    return np.stack([table[vocabulary[row]] for row in rows])


# ------------------------------------------------------------------------------- acceptance a


def test_a_glove_file_starts_the_embedding_for_exactly_the_words_it_covers(make_cfg, sentences):
    _, data, table, path = sentences
    model, figures = new_model(with_vectors(make_cfg, path), data)
    weights = embedding_of(model)
    rows = covered_rows(data.vocabulary, table)
    assert rows == list(range(FIRST_WORD, 42, 2)), "the file's words of the vocabulary, no other"
    np.testing.assert_array_equal(weights[rows], file_rows_of(rows, data.vocabulary, table))
    others = [row for row in range(1, len(data.vocabulary)) if row not in rows]
    taken = (weights[others][:, None, :] == np.stack(list(table.values()))[None]).all(axis=2)
    assert not taken.any(), "no other word took a file vector"
    assert np.abs(weights[others]).min(axis=1).max() > 0, "the other words start random"
    assert not weights[0].any(), "padding starts at zero"
    assert weights.shape == (data.vocab_size, DIM), "the file sets the width, not embedding_dim"
    assert figures[Fig.vectors_dim] == DIM
    words = len(data.vocabulary) - FIRST_WORD
    assert figures[Fig.vectors_vocabulary_coverage] == pytest.approx(len(rows) / words)
    tokens = data.x_train[data.x_train > 0]
    assert figures[Fig.vectors_token_coverage] == pytest.approx(np.isin(tokens, rows).mean())


def test_missing_words_start_random_from_the_training_seed(make_cfg, sentences):
    _, data, table, path = sentences
    first = embedding_of(new_model(with_vectors(make_cfg, path, "train.seed=1"), data)[0])
    again = embedding_of(new_model(with_vectors(make_cfg, path, "train.seed=1"), data)[0])
    other = embedding_of(new_model(with_vectors(make_cfg, path, "train.seed=2"), data)[0])
    rows = covered_rows(data.vocabulary, table)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first[rows], other[rows])
    assert (first[-1] != other[-1]).all(), "a word the file lacks starts elsewhere, other seed"


def test_frozen_vectors_stay_fine_tuned_ones_move_and_the_logged_model_scores_raw_text_the_same(
    make_cfg, sentences
):
    _, data, table, path = sentences
    rows = covered_rows(data.vocabulary, table)
    frozen_cfg = with_vectors(
        make_cfg,
        path,
        "model.embedding.trainable=false",
        "train.log_model=true",
        "tracking.experiment=test-vectors-frozen",
    )
    start = new_model(frozen_cfg, data)[0]
    frozen = run_training(frozen_cfg)
    np.testing.assert_array_equal(embedding_of(frozen.model), embedding_of(start), "frozen: moved")
    assert frozen.model.get_layer("embedding").trainable is False

    tuned = train_model(with_vectors(make_cfg, path, "model.embedding.trainable=true"), data)
    moved = np.abs(embedding_of(tuned.model)[rows] - embedding_of(start)[rows]).max(axis=1)
    assert (moved > 1e-4).mean() > 0.9, "fine-tuned: the file's vectors of words in the texts move"

    client = MlflowClient(frozen_cfg.tracking.uri)
    experiment = client.get_experiment_by_name("test-vectors-frozen")
    run = client.search_runs([experiment.experiment_id])[0]
    assert run.data.metrics[Fig.vectors_dim] == DIM
    assert run.data.params["model.embedding.trainable"] == "False"
    model_id = export.model_of_run(run.info.run_id)
    stored = export.trained_part(export.load_keras(model_id))
    expected = file_rows_of(rows, data.vocabulary, table)
    np.testing.assert_array_equal(embedding_of(stored)[rows], expected, "inside the saved model")
    logged = mlflow.pyfunc.load_model(f"models:/{model_id}")
    on_text = logged.predict(pd.Series(raw_test_texts(frozen_cfg)))["p_positive"].to_numpy()
    on_ids = frozen.model.predict(data.x_test, verbose=0).reshape(-1)
    np.testing.assert_allclose(on_text, on_ids, atol=1e-6)


def raw_test_texts(cfg) -> list[str]:
    """The test split's texts as the loader reads them, in the order of the vectorized x_test."""
    texts = LOADERS[cfg.data.name](cfg.data, Path(cfg.paths.cache_dir) / "downloads")
    subset, seed = cfg.data.subset, cfg.data.split_seed
    return stratified_subset(texts.test, texts.test_labels, subset, seed)[0]


# ------------------------------------------------------------------------------ formats, cache


def write_formats(folder: Path, table: dict[str, np.ndarray]) -> list[Path]:
    """The same vectors as word2vec text with a header, gzipped GloVe text, and word2vec binary;
    the binary file has one word only in upper case, found through its lower case."""
    from gensim.models import KeyedVectors

    values = np.stack(list(table.values()))
    keyed = KeyedVectors(DIM)
    keyed.add_vectors(list(table), values)
    keyed.save_word2vec_format(str(folder / "w2v.vec"), binary=False)
    with gzip.open(folder / "glove.txt.gz", "wt") as stream:
        stream.write("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in table.items()))
    cased = KeyedVectors(DIM)
    cased.add_vectors([w.upper() if i == 0 else w for i, w in enumerate(table)], values)
    cased.save_word2vec_format(str(folder / "w2v.bin"), binary=True)
    return [folder / "w2v.vec", folder / "glove.txt.gz", folder / "w2v.bin"]


def test_word2vec_text_gzipped_glove_and_word2vec_binary_give_the_same_rows(sentences, tmp_path):
    cfg, data, table, glove = sentences
    expected = word_vectors(str(glove), data, cfg.paths.cache_dir)
    for path in write_formats(tmp_path, table):
        read = word_vectors(str(path), data, cfg.paths.cache_dir)
        np.testing.assert_array_equal(read.found, expected.found, str(path))
        np.testing.assert_array_equal(read.vectors, expected.vectors, str(path))
        assert read.file_words == len(table)


def cache_file_of(cfg, path: Path, data) -> Path:
    key = vectors_module.cache_key(path, data.vocabulary)
    return Path(cfg.paths.cache_dir) / "embeddings" / f"{path.name}-{key}.npz"


def test_a_second_run_reads_the_vectors_from_the_cache_and_a_changed_file_is_read_again(
    sentences, monkeypatch
):
    cfg, data, table, path = sentences
    first = word_vectors(str(path), data, cfg.paths.cache_dir)
    assert not first.cache_hit and cache_file_of(cfg, path, data).is_file()
    monkeypatch.setattr(vectors_module, "_loaded", {})  # a new process: the disk cache only
    monkeypatch.setattr(vectors_module, "read_file", lambda *args: pytest.fail("read again"))
    second = word_vectors(str(path), data, cfg.paths.cache_dir)
    assert second.cache_hit
    np.testing.assert_array_equal(second.vectors, first.vectors)
    monkeypatch.undo()
    write_glove(path, {word: vector + 1 for word, vector in table.items()})
    os.utime(path, ns=(1, 1))  # the same size: the stamp's time tells the files apart
    changed = word_vectors(str(path), data, cfg.paths.cache_dir)
    assert not changed.cache_hit
    assert changed.vectors[FIRST_WORD, 0] == first.vectors[FIRST_WORD, 0] + 1


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_damaged_vectors_cache_is_read_again_from_the_file_with_a_warning(
    sentences, monkeypatch, caplog, damage
):
    cfg, data, _, path = sentences
    first = word_vectors(str(path), data, cfg.paths.cache_dir)
    cached = cache_file_of(cfg, path, data)
    content = cached.read_bytes()
    damaged = {"truncate": content[:100], "garbage": b"not a cache" * 50, "empty": b""}
    cached.write_bytes(damaged[damage])
    monkeypatch.setattr(vectors_module, "_loaded", {})
    again = word_vectors(str(path), data, cfg.paths.cache_dir)
    assert not again.cache_hit and "is unreadable" in caplog.text
    assert f"reading {path} again" in caplog.text
    np.testing.assert_array_equal(again.vectors, first.vectors)
    assert cached.read_bytes() == content, "the cache is written again whole"


# ------------------------------------------------------------------------------ acceptance c


def bad_files(tmp_path: Path, vocabulary: list[str]) -> dict[str, tuple[Path, str]]:
    """Each bad input and the end of the line it gets."""
    ragged = tmp_path / "ragged.txt"
    ragged.write_text(f"{vocabulary[2]} 0.1 0.2 0.3\n{vocabulary[3]} 0.4 0.5 0.6\ncat 0.7 0.8\n")
    from gensim.models import KeyedVectors

    keyed = KeyedVectors(3)
    keyed.add_vectors(vocabulary[2:5], np.ones((3, 3)))
    keyed.save_word2vec_format(str(tmp_path / "w2v.bin"), binary=True)
    (tmp_path / "w2v.bin").rename(tmp_path / "binary.txt")
    unseen = {"zzzunseen": np.ones(3), "qqqnowhere": np.ones(3)}
    strangers = write_glove(tmp_path / "strangers.txt", unseen)
    in_its = r": none of the \d+ vocabulary words is in its 2 words; "
    return {
        "missing": (tmp_path / "nowhere.txt", re.escape(f": no such file; {ALLOWED}")),
        "folder": (tmp_path, re.escape(f": a folder, not a file; {ALLOWED}")),
        "ragged": (
            ragged,
            re.escape(
                ": line 3 has 2 numbers after its word 'cat', the first row "
                "has 3; every row must be a word and the same count of "
                "numbers"
            ),
        ),
        "binary": (
            tmp_path / "binary.txt",
            r": binary data at byte \d+, not text vectors; a "
            r"word2vec binary file must be named \*.bin",
        ),
        "no word": (
            strangers,
            in_its + r"the file must hold vectors for the data's words "
            r"\(lower case, punctuation stripped\)",
        ),
    }


BAD = ["missing", "folder", "ragged", "binary", "no word"]


def test_a_value_that_is_no_number_is_named_with_its_line(sentences, tmp_path):
    cfg, data, _, _ = sentences
    path = tmp_path / "words.txt"
    path.write_text(f"{data.vocabulary[2]} 0.1 0.2\n{data.vocabulary[3]} 0.3 high\n")
    line = f"model.embedding.vectors={path}: line 2: 'high' is not a number; every row must be"
    with pytest.raises(InputError, match=re.escape(line + " a word and numbers")):
        word_vectors(str(path), data, cfg.paths.cache_dir)


@pytest.mark.parametrize("bad", BAD)
def test_a_bad_vectors_file_is_one_line_exit_2_and_nothing_stored(sentences, tmp_path, bad):
    cfg, data, _, _ = sentences
    path, ending = bad_files(tmp_path, data.vocabulary)[bad]
    result = subprocess.run(
        [
            BIN / "rnn-train",
            "data=sentences",
            *SMALL,
            f"model.embedding.vectors={path}",
            f"paths.cache_dir={cfg.paths.cache_dir}",
            f"paths.mlruns_dir={tmp_path / 'mlruns'}",
            f"paths.log_dir={tmp_path / 'logs'}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    line = one_error_line(result.stderr)
    assert re.fullmatch(re.escape(f"error: model.embedding.vectors={path}") + ending, line), line
    assert not (tmp_path / "mlruns").exists(), "no run, no store"
    cached = (Path(cfg.paths.cache_dir) / "embeddings").glob(f"{path.name}-*")
    assert not list(cached), "no vectors cached"


def test_a_sweep_over_a_file_without_the_datas_words_stops_before_any_study(
    sweep_overrides, tmp_path
):
    from tests.helpers.sweeps import runs_of

    strangers = write_glove(tmp_path / "strangers.txt", {"zzzunseen": np.ones(3)})
    overrides = [*sweep_overrides, "search=vectors", f"model.embedding.vectors={strangers}"]
    result = subprocess.run(
        [BIN / "rnn-sweep", *overrides], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "none of the" in one_error_line(result.stderr)
    assert not (Path(compose(overrides).paths.mlruns_dir) / "optuna.db").exists()
    assert runs_of(overrides)[1:] == ([], [])


def test_search_vectors_without_a_file_is_one_line(sweep_overrides):
    from pipeline.search.sweep import check_sweep

    overrides = [*sweep_overrides, "search=vectors"]
    with pytest.raises(
        InputError,
        match=r"^search.space.vectors searches no word-vector file; "
        r"set model.embedding.vectors=PATH",
    ):
        check_sweep(compose(overrides), overrides)


def test_vectors_need_data_with_words():
    with pytest.raises(
        InputError, match="^model.embedding.vectors with data=keras_imdb: its reviews are token ids"
    ):
        check(compose(["data=keras_imdb", f"model.embedding.vectors={REPO / 'README.md'}"]))


# ---------------------------------------------------------------------------------- the axis


@pytest.mark.slow  # a real-data sweep: CI runs it, the quick loop does not
def test_search_vectors_runs_scratch_frozen_and_fine_tuned_trials(sweep_overrides, sentences):
    from tests.helpers.sweeps import runs_of, study_of, sweep

    _, _, _, path = sentences
    portfolio = f"[{{vectors: null}}, {{vectors: '{path}', trainable: false}}]"
    overrides = [
        *sweep_overrides,
        "search=vectors",
        f"model.embedding.vectors={path}",
        "train.epochs=1",
        "search.pruner=none",
        f"search.portfolio={portfolio}",
    ]
    assert compose(overrides).search.study_name == "vectors-sentences-glove.6d"
    assert sweep(overrides) == 0
    trials = study_of(overrides).trials
    assert [(t.params["vectors"], t.params.get("trainable")) for t in trials] == [
        (str(path), True),
        (None, None),
        (str(path), False),
    ]
    assert all(t.state.name == "COMPLETE" for t in trials)
    _, _, children = runs_of(overrides)
    by_trial = {int(run.data.tags["trial_number"]): run for run in children}
    assert Fig.vectors_token_coverage in by_trial[2].data.metrics
    assert Fig.vectors_token_coverage not in by_trial[1].data.metrics
    assert by_trial[2].data.params["model.embedding.trainable"] == "False"


# ---------------------------------------------------------------------------------- rnn-vectors


def test_rnn_vectors_writes_word2vec_text_whose_words_are_the_vocabularys(data_cache, tmp_path):
    output = tmp_path / "out" / "sentences-w2v.txt"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli.vectors",
            "data=sentences",
            f"vectors.output={output}",
            "vectors.dim=8",
            "vectors.min_count=1",
            "vectors.epochs=1",
            "vectors.threads=1",
            f"paths.cache_dir={data_cache}",
            f"paths.log_dir={tmp_path / 'logs'}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"model.embedding.vectors={output}" in result.stdout
    count, dim = map(int, output.read_text().split("\n", 1)[0].split())
    assert dim == 8 and count > 1000
    umask = os.umask(0)
    os.umask(umask)
    assert output.stat().st_mode & 0o777 == 0o666 & ~umask, "made as open() makes a file"
    cfg = compose(["data=sentences", f"paths.cache_dir={data_cache}"])
    data = prepare_data(cfg.data, cfg.paths.cache_dir)
    read = word_vectors(str(output), data, str(tmp_path / "cache"))
    assert read.vocabulary_coverage() == 1.0, "the vectorizer's standardization and split"


def test_rnn_vectors_needs_an_output_file():
    with pytest.raises(InputError, match=r"^vectors.output=null; it must be the path of the text"):
        check(compose(["data=sentences"], config_name="vectors"))
