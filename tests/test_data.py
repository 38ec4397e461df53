"""Every loader on small fixtures of its real format, each bad-input case, the split, the vectorizer and the cache."""

import io
import subprocess
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from pipeline.config import check
from pipeline.data.texts import pad_sequences, prepare_data
from pipeline.core.errors import InputError
from tests.conftest import BIN, compose_config
from tests.helpers.corpora import (
    data_config,
    imdb_config,
    reviews,
    write_imdb_archive,
    write_sentences,
)


def test_imdb_archive_is_read_in_place_with_its_splits_and_labels(tmp_path):
    cfg, downloads = imdb_config(tmp_path)
    write_imdb_archive(downloads / "aclImdb_v1.tar.gz")
    data = prepare_data(cfg, tmp_path / "cache")
    assert data.sizes() == {"train": 16, "val": 4, "test": 20}
    assert sorted(data.y_test.tolist()) == [0] * 10 + [1] * 10
    assert "br" not in data.vocabulary, "the archive's <br /> markup must not become a token"
    assert {"wonderful", "dull", "end"} <= set(data.vocabulary)
    assert not list(downloads.glob("aclImdb/*")), "the archive is read in place, never extracted"


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            {"aclImdb/train/pos/99_9.txt": b"caf\xe9 au lait"},
            "aclImdb/train/pos/99_9.txt: not valid utf-8",
        ),
    ],
)
def test_imdb_bad_member_is_named(tmp_path, extra, message):
    cfg, downloads = imdb_config(tmp_path)
    write_imdb_archive(downloads / "aclImdb_v1.tar.gz", extra=extra)
    with pytest.raises(InputError, match=message):
        prepare_data(cfg, tmp_path / "cache")


def test_imdb_archive_without_a_split_is_rejected(tmp_path):
    cfg, downloads = imdb_config(tmp_path)
    archive = downloads / "aclImdb_v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("aclImdb/train/pos/0_9.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"good"))
    with pytest.raises(InputError, match=r"no reviews under aclImdb/train/neg/"):
        prepare_data(cfg, tmp_path / "cache")


def test_imdb_file_that_is_not_an_archive_is_rejected(tmp_path):
    cfg, downloads = imdb_config(tmp_path)
    (downloads / "aclImdb_v1.tar.gz").write_bytes(b"<html>not found</html>")
    with pytest.raises(InputError, match=r"aclImdb_v1.tar.gz: not a readable .tar.gz archive"):
        prepare_data(cfg, tmp_path / "cache")


def test_missing_download_names_the_url_and_where_to_place_the_file(tmp_path):
    cfg, downloads = imdb_config(tmp_path)  # the file:// URL points at nothing: fetching fails
    with pytest.raises(
        InputError, match=r"cannot fetch file://.*aclImdb_v1.tar.gz into .*; on an offline machine"
    ):
        prepare_data(cfg, tmp_path / "cache")


def test_archive_is_fetched_once_then_used_from_the_download_cache(tmp_path):
    source = write_imdb_archive(tmp_path / "published.tar.gz")
    cfg = data_config("imdb", url=source.as_uri(), max_len=12)
    prepare_data(cfg, tmp_path / "cache")
    source.unlink()  # the "server" is gone; the cached download must be used
    cfg.vocab_size = (
        50  # a different data config: the vectors are rebuilt, the archive is not re-fetched
    )
    assert not prepare_data(cfg, tmp_path / "cache").cache_hit


# ------------------------------------------------------------------------------------- sentences


def test_sentences_from_a_local_dir_with_selected_sources(tmp_path):
    folder = write_sentences(tmp_path / "uci")
    cfg = data_config("sentences", local_dir=str(folder), sources=["amazon", "yelp"])
    data = prepare_data(cfg, tmp_path / "cache")
    assert sum(data.sizes().values()) == 24
    assert data.sizes()["test"] == 6  # test_split 0.25, stratified
    assert "amazon" in data.vocabulary and "imdb" not in data.vocabulary


def test_sentences_zip_is_downloaded_and_unpacked_into_the_cache_once(tmp_path):
    folder = write_sentences(tmp_path / "uci")
    zip_path = tmp_path / "sentiment+labelled+sentences.zip"
    with zipfile.ZipFile(zip_path, "w") as zipped:
        for file in folder.iterdir():
            zipped.write(file, f"sentiment labelled sentences/{file.name}")
            zipped.writestr(f"__MACOSX/sentiment labelled sentences/._{file.name}", b"\x00\x05")
    cfg = data_config("sentences", url=zip_path.as_uri())
    data = prepare_data(cfg, tmp_path / "cache")
    assert sum(data.sizes().values()) == 36
    unpacked = tmp_path / "cache" / "downloads" / "sentiment_labelled_sentences"
    assert sorted(p.name for p in unpacked.iterdir()) == sorted(p.name for p in folder.iterdir())


def test_sentence_with_a_next_line_character_stays_one_sentence(tmp_path):
    """The real imdb_labelled.txt has U+0085 inside sentences; it must not split a line."""
    folder = write_sentences(
        tmp_path / "uci",
        overrides={
            "imdb": "The script is\u0085was there a script?\t0\n".encode() * 6 + b"fine\t1\n" * 6
        },
    )
    cfg = data_config("sentences", local_dir=str(folder), sources=["imdb"])
    assert sum(prepare_data(cfg, tmp_path / "cache").sizes().values()) == 12


@pytest.mark.parametrize(
    "content, message",
    [
        (
            b"good phone\t1\nbad phone\t7\n",
            r"amazon_cells_labelled.txt:2: label '7' is not binary; allowed: 0, 1",
        ),
        (
            b"good phone\t1\nno tab here 0\n",
            r"amazon_cells_labelled.txt:2: expected 'sentence<TAB>label'",
        ),
        (b"good phone\t1\nna\xefve\t0\n", r"amazon_cells_labelled.txt: not valid utf-8"),
    ],
)
def test_sentences_bad_lines_are_named(tmp_path, content, message):
    folder = write_sentences(tmp_path / "uci", overrides={"amazon": content})
    with pytest.raises(InputError, match=message):
        prepare_data(data_config("sentences", local_dir=str(folder)), tmp_path / "cache")


def test_sentences_unknown_or_no_source_and_missing_file(tmp_path):
    folder = write_sentences(tmp_path / "uci")
    cfg = compose_config("data=sentences", f"data.local_dir={folder}")
    cfg.data.sources = ["twitter"]
    with pytest.raises(InputError, match=r"unknown source 'twitter'; allowed: amazon, imdb, yelp"):
        check(cfg)
    cfg.data.sources = []
    with pytest.raises(
        InputError, match=r"data.sources=\[\]: no source; allowed: amazon, imdb, yelp"
    ):
        check(cfg)
    (folder / "yelp_labelled.txt").unlink()
    with pytest.raises(InputError, match=r"yelp_labelled.txt: no such file"):
        prepare_data(data_config("sentences", local_dir=str(folder)), tmp_path / "cache")


# ------------------------------------------------------------------------------------ keras_imdb


def test_keras_imdb_ids_follow_keras_scheme(tmp_path):
    """start id 1, word ids shifted by 3, ids >= vocab_size become the OOV id 2, as keras.datasets.imdb does."""
    rng = np.random.default_rng(0)
    make = lambda n: np.array(
        [list(rng.integers(1, 40, size=5)) for _ in range(n)] + [[1, 2, 60]], dtype=object
    )
    labels = lambda n: np.array([0, 1] * (n // 2) + [1])
    path = tmp_path / "imdb.npz"
    np.savez(path, x_train=make(20), y_train=labels(20), x_test=make(10), y_test=labels(10))
    cfg = data_config("keras_imdb", url=path.as_uri(), sha256=None, vocab_size=30, max_len=8)
    data = prepare_data(cfg, tmp_path / "cache")
    assert data.sizes() == {"train": 16, "val": 5, "test": 11}
    everything = np.concatenate([data.x_train, data.x_val, data.x_test])
    assert (everything[:, 0] == 1).all() and everything.max() < 30 and (everything == 2).any()
    assert [1, 4, 5, 2, 0, 0, 0, 0] in data.x_test.tolist()


def test_keras_imdb_checksum_mismatch_is_rejected(tmp_path):
    path = tmp_path / "imdb.npz"
    np.savez(
        path,
        x_train=np.array([[1]]),
        y_train=np.array([1]),
        x_test=np.array([[1]]),
        y_test=np.array([0]),
    )
    cfg = data_config("keras_imdb", url=path.as_uri())  # the config keeps Keras' real checksum
    with pytest.raises(InputError, match=r"cannot fetch .*imdb.npz"):
        prepare_data(cfg, tmp_path / "cache")


# ----------------------------------------------------------------------------------------- table


def table_frame(count=10, positive="pos", negative="neg"):
    pos, neg = reviews(count)
    return pd.DataFrame(
        {
            "review": pos + neg,
            "sentiment": [positive] * count + [negative] * count,
            "id": range(2 * count),
        }
    )


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_table_formats_with_label_map(tmp_path, suffix):
    path = tmp_path / f"reviews{suffix}"
    frame = table_frame()
    if suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)
    cfg = data_config(
        "table",
        path=str(path),
        text_column="review",
        label_column="sentiment",
        label_map={"neg": 0, "pos": 1},
        max_len=10,
    )
    data = prepare_data(cfg, tmp_path / "cache")
    assert sum(data.sizes().values()) == 20 and data.sizes()["test"] == 5
    assert "wonderful" in data.vocabulary


def test_table_headerless_with_separate_test_file_and_custom_separator(tmp_path):
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    table_frame(positive="1", negative="0")[["sentiment", "review"]].to_csv(
        train, sep="|", index=False, header=False
    )
    table_frame(count=3, positive="1", negative="0")[["sentiment", "review"]].to_csv(
        test, sep="|", index=False, header=False
    )
    cfg = data_config(
        "table",
        path=str(train),
        test_path=str(test),
        sep="|",
        header=False,
        text_column=1,
        label_column=0,
    )
    assert prepare_data(cfg, tmp_path / "cache").sizes() == {"train": 16, "val": 4, "test": 6}


@pytest.mark.parametrize(
    "mutate, values, message",
    [
        (
            lambda f: f,
            {"text_column": "body"},
            r"no column 'body' \(data.text_column\); columns are \['review', 'sentiment', 'id'\]",
        ),
        (
            lambda f: f.assign(sentiment=["pos"] * 7 + [""] + ["neg"] * 12),
            {},
            r"reviews.csv: label missing at row 7",
        ),
        (
            lambda f: f.assign(sentiment=["pos"] * 19 + ["meh"]),
            {"label_map": {"pos": 1, "neg": 0}},
            r"label 'meh' at row 19 is not a known class; allowed: pos, neg",
        ),
        (
            lambda f: f.assign(sentiment=["pos"] * 20),
            {"label_map": {"pos": 1, "neg": 0}},
            r"only label 'pos' occurs",
        ),
        (
            lambda f: f.assign(sentiment=["pos"] * 20),
            {},
            r"only label 'pos' occurs; a classifier needs at least two",
        ),
        (
            lambda f: f.assign(review=[""] * 10 + ["  "] * 10),
            {},
            r"reviews.csv: every text is empty \(20 rows\)",
        ),
        (
            lambda f: f.assign(review=["..."] * 10 + ["?!"] * 10),
            {},
            r"no training text has a word after standardization",
        ),
    ],
)
def test_table_bad_input_is_named(tmp_path, mutate, values, message):
    path = tmp_path / "reviews.csv"
    mutate(table_frame()).to_csv(path, index=False)
    columns = {"text_column": "review", "label_column": "sentiment"}
    cfg = data_config("table", path=str(path), **(columns | values))
    with pytest.raises(InputError, match=message):
        prepare_data(cfg, tmp_path / "cache")


def test_table_missing_and_undecodable_files(tmp_path):
    with pytest.raises(InputError, match=r"nowhere.csv: no such file"):
        prepare_data(data_config("table", path=str(tmp_path / "nowhere.csv")), tmp_path / "cache")
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\ncaf\xe9 cr\xe8me,1\nbad,0\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1.csv: not valid utf-8 text"):
        prepare_data(data_config("table", path=str(path)), tmp_path / "cache")
    cfg = data_config("table", path=str(path), encoding="latin-1", test_split=0.5)
    with pytest.raises(InputError, match=r"cannot make the test split of 2 examples: .*too few"):
        prepare_data(cfg, tmp_path / "cache")  # decodes now, but two rows are too few to split


@pytest.mark.parametrize(
    "values, message",
    [
        (
            {"name": "csv"},
            r"data.name='csv' is not a loader; allowed: imdb, sentences, keras_imdb, table",
        ),
        ({"truncate": "middle"}, r"data.truncate='middle'; allowed: pre, post"),
        ({"padding": "middle"}, r"data.padding='middle'; allowed: post, pre"),
        ({"val_split": 1.5}, r"data.val_split=1.5; it must lie strictly between 0 and 1"),
        ({"max_len": 0}, r"data.max_len=0; it must be an integer >= 3"),
        ({"subset": -5}, r"data.subset=-5; it must be null or an integer >= 4"),
    ],
)
def test_bad_data_settings_are_rejected(tmp_path, values, message):
    cfg = compose_config("data=table", "data.path=x.csv")
    for key, value in values.items():
        OmegaConf.update(cfg, f"data.{key}", value)
    with pytest.raises(InputError, match=message):
        check(cfg)


# ---------------------------------------------------------------------------- split + vectorize


def test_vectorizer_sees_only_the_fitting_part_and_split_is_stratified_and_seeded(tmp_path):
    frame = table_frame(count=40, positive="1", negative="0")
    frame.loc[len(frame)] = ["onlyintest zebra", "1", 99]
    frame.loc[len(frame)] = ["onlyintest yak", "0", 100]
    train_path, test_path = tmp_path / "train.csv", tmp_path / "test.csv"
    frame.iloc[:80].to_csv(train_path, index=False)
    frame.iloc[80:].to_csv(test_path, index=False)
    cfg = data_config(
        "table",
        path=str(train_path),
        test_path=str(test_path),
        text_column="review",
        label_column="sentiment",
    )
    first = prepare_data(cfg, tmp_path / "a")
    assert "onlyintest" not in first.vocabulary
    assert first.y_val.mean() == 0.5 and first.y_train.mean() == 0.5  # stratified
    again = prepare_data(cfg, tmp_path / "b")
    assert np.array_equal(first.x_val, again.x_val)  # same seed, same split
    cfg.split_seed = 8
    assert not np.array_equal(first.x_val, prepare_data(cfg, tmp_path / "c").x_val)


def test_pad_sequences_truncates_on_the_chosen_side_and_post_pads():
    sequences = [[1, 2, 3, 4, 5], [6, 7], []]
    assert pad_sequences(sequences, 3, "post", "post").tolist() == [[1, 2, 3], [6, 7, 0], [0, 0, 0]]
    assert pad_sequences(sequences, 3, "pre", "post").tolist() == [[3, 4, 5], [6, 7, 0], [0, 0, 0]]


def test_pre_padding_puts_the_zeros_before_each_text_in_its_order():
    sequences = [[1, 2, 3, 4, 5], [6, 7], [8], []]
    assert pad_sequences(sequences, 3, "pre", "pre").tolist() == [
        [3, 4, 5],
        [0, 6, 7],
        [0, 0, 8],
        [0, 0, 0],
    ]
    assert pad_sequences(sequences, 3, "post", "pre").tolist() == [
        [1, 2, 3],
        [0, 6, 7],
        [0, 0, 8],
        [0, 0, 0],
    ]


def test_subset_is_stratified(tmp_path):
    cfg, downloads = imdb_config(tmp_path, subset=8)
    write_imdb_archive(downloads / "aclImdb_v1.tar.gz")
    data = prepare_data(cfg, tmp_path / "cache")
    assert len(data.y_train) + len(data.y_val) == 8 and len(data.y_test) == 8
    assert data.y_test.mean() == 0.5


# ----------------------------------------------------------------------------------------- cache


def test_second_preparation_is_a_cache_hit_that_never_reads_the_source(tmp_path):
    path = tmp_path / "reviews.csv"
    table_frame(positive="1", negative="0").to_csv(path, index=False)
    cfg = data_config("table", path=str(path), text_column="review", label_column="sentiment")
    first = prepare_data(cfg, tmp_path / "cache")
    second = prepare_data(cfg, tmp_path / "cache")
    assert (first.cache_hit, second.cache_hit) == (False, True)
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert np.array_equal(getattr(first, name), getattr(second, name))
    assert second.vocabulary == first.vocabulary
    cfg.max_len = 7
    assert not prepare_data(cfg, tmp_path / "cache").cache_hit, (
        "another data config is another cache entry"
    )


def test_editing_a_local_file_invalidates_its_cache_entry(tmp_path):
    path = tmp_path / "reviews.csv"
    table_frame(positive="1", negative="0").to_csv(path, index=False)
    cfg = data_config("table", path=str(path), text_column="review", label_column="sentiment")
    prepare_data(cfg, tmp_path / "cache")
    table_frame(count=12, positive="1", negative="0").to_csv(path, index=False)
    data = prepare_data(cfg, tmp_path / "cache")
    assert not data.cache_hit and sum(data.sizes().values()) == 24


def test_cli_bad_data_exits_2_with_one_line_and_creates_no_run(tmp_path):
    result = subprocess.run(
        [
            BIN / "rnn-train",
            "data=table",
            f"data.path={tmp_path / 'missing.csv'}",
            f"paths.mlruns_dir={tmp_path / 'mlruns'}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"paths.log_dir={tmp_path / 'logs'}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": str(BIN), "HOME": str(tmp_path)},
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {tmp_path / 'missing.csv'}: no such file"]
    assert not (tmp_path / "mlruns").exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_damaged_cache_entry_is_rebuilt_and_said_so(tmp_path, caplog, damage):
    path = tmp_path / "reviews.csv"
    table_frame(positive="1", negative="0").to_csv(path, index=False)
    cfg = data_config("table", path=str(path), text_column="review", label_column="sentiment")
    first = prepare_data(cfg, tmp_path / "cache")
    cached = Path(first.cache_file)
    content = cached.read_bytes()
    cached.write_bytes(
        {"truncate": content[: len(content) // 2], "garbage": b"\x00not a zip" * 50, "empty": b""}[
            damage
        ]
    )
    with caplog.at_level("WARNING"):
        again = prepare_data(cfg, tmp_path / "cache")
    assert not again.cache_hit and "is unreadable" in caplog.text and "rebuilding it" in caplog.text
    assert np.array_equal(again.x_train, first.x_train) and np.array_equal(
        again.y_test, first.y_test
    )
    assert prepare_data(cfg, tmp_path / "cache").cache_hit, "the rebuilt entry is whole again"


def test_a_cache_dir_that_cannot_be_created_is_one_input_error(tmp_path):
    (tmp_path / "plain-file").write_text("not a folder")
    cfg = data_config("sentences", local_dir=str(write_sentences(tmp_path / "uci")))
    with pytest.raises(
        InputError, match=r"paths.cache_dir=.*plain-file/cache: cannot be created \(Not a directory"
    ):
        prepare_data(cfg, tmp_path / "plain-file" / "cache")
