"""Real text data -> split, vectorized, cached integer arrays.

One loader per `data.name` reads its source into `Texts` (or token ids for `keras_imdb`); the
vectorizer is adapted on the training part only; the arrays are cached on disk under a key made
from the data config, so a second run with the same config reads one file.
"""

import dataclasses
import hashlib
import json
import logging
import os
import re
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf
from sklearn.model_selection import train_test_split

from pipeline.config.choices import SENTENCE_FILES
from pipeline.core.errors import DiskFull, InputError, free_bytes, megabytes, no_space_error

log = logging.getLogger(__name__)

CACHE_FORMAT = 3  # bump when the cached arrays change meaning (3: class names, K classes)
IMDB_SPLITS = ("train", "test")
IMDB_LABELS = {"neg": 0, "pos": 1}
SENTIMENT_CLASSES = ["negative", "positive"]  # class 0 and 1 of data.target=sentiment
IMDB_RATING_GROUPS = {
    1: "1-2",
    2: "1-2",
    3: "3-4",
    4: "3-4",
    7: "7-8",
    8: "7-8",
    9: "9-10",
    10: "9-10",
}
KERAS_IMDB_START, KERAS_IMDB_OOV, KERAS_IMDB_INDEX_FROM = 1, 2, 3
VECTORIZER_OOV = 1  # TextVectorization's [UNK] id
# what training adapts; the exported model repeats it (pipeline/export.py)
VECTORIZER_TEXT_SETTINGS = {"standardize": "lower_and_strip_punctuation", "split": "whitespace"}


@dataclasses.dataclass
class Texts:
    """Raw splits as a loader returns them: texts (or token-id lists) and class indices 0..K-1.

    `val` is None unless the data has its own validation file (data.val_path): then nothing is cut
    from train.
    """

    train: list
    train_labels: np.ndarray
    test: list
    test_labels: np.ndarray
    class_names: list[str]
    val: list | None = None
    val_labels: np.ndarray | None = None


@dataclasses.dataclass
class Dataset:
    """Padded int32 token arrays (0 = padding) and float32 class indices, ready for Keras."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    vocab_size: int
    vocabulary: list[str]
    class_names: list[str] = dataclasses.field(default_factory=lambda: list(SENTIMENT_CLASSES))
    # texts with no token: dropped (train, val) or one OOV token (test)
    empty_texts: dict[str, int] = dataclasses.field(default_factory=dict)
    cache_hit: bool = False
    prep_seconds: float = 0.0
    cache_file: str = ""

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def prior(self) -> np.ndarray:
        """Each class's share of the training split."""
        counts = np.bincount(self.y_train.astype(np.int64), minlength=self.num_classes)
        return counts / max(counts.sum(), 1)

    def chance_loss(self) -> float:
        """Cross-entropy of always predicting the training label frequency (the prior's entropy): ln
        K when the K classes are balanced, ln 2 on balanced binary data."""
        p = np.clip(self.prior(), 1e-7, 1)
        return float(-(p * np.log(p)).sum())

    def chance_accuracy(self) -> float:
        """The accuracy of always answering the training split's most frequent class."""
        return float(self.prior().max())


def prepare_data(data_cfg: DictConfig, cache_dir: str) -> Dataset:
    """Load, split and vectorize the data of `data_cfg` (checked by config.check), or read the
    result from the cache."""
    started = time.perf_counter()
    cache_dir = Path(cache_dir).expanduser()
    try:
        (cache_dir / "vectors").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(
            f"paths.cache_dir={cache_dir}: cannot be created ({error.strerror}: {error.filename})"
        ) from None
    cache_file = cache_dir / "vectors" / f"{data_cfg.name}-{cache_key(data_cfg)}.npz"
    dataset = load_cached(cache_file) if cache_file.exists() else None
    cache_hit = dataset is not None
    if not cache_hit:
        texts = LOADERS[data_cfg.name](data_cfg, cache_dir / "downloads")
        dataset = split_and_vectorize(texts, data_cfg)
        save_cached(dataset, cache_file)
    dataset.cache_hit, dataset.cache_file = cache_hit, str(cache_file)
    dataset.prep_seconds = time.perf_counter() - started
    log.info(
        "data %s: cache %s, %.2f s to prepare, sizes %s (%s)",
        data_cfg.name,
        "hit" if cache_hit else "miss",
        dataset.prep_seconds,
        dataset.sizes(),
        cache_file,
    )
    if any(dataset.empty_texts.values()):
        log.warning(
            "data %s: %d texts are empty or have no word after standardization: %d dropped from "
            "train, %d from validation, %d kept in test as one OOV token",
            data_cfg.name,
            sum(dataset.empty_texts.values()),
            *dataset.empty_texts.values(),
        )
    return dataset


def cache_key(data_cfg: DictConfig) -> str:
    """A hash of everything that decides the arrays: the data config and the local source files'
    stats."""
    payload = {
        "format": CACHE_FORMAT,
        "data": OmegaConf.to_container(data_cfg, resolve=True),
        "sources": [local_file_stamp(path) for path in local_sources(data_cfg)],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


def local_sources(data_cfg: DictConfig) -> list[Path]:
    """The user's own files a config reads (downloaded archives are identified by their URL)."""
    if data_cfg.name == "table":
        paths = (data_cfg.path, data_cfg.get("val_path"), data_cfg.test_path)
        return [Path(p).expanduser() for p in paths if p]
    if data_cfg.name == "sentences" and data_cfg.local_dir:
        return [
            Path(data_cfg.local_dir).expanduser() / SENTENCE_FILES.get(s, s)
            for s in data_cfg.sources
        ]
    return []


def local_file_stamp(path: Path) -> list:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


# ---------------------------------------------------------------------------------------- cache


def save_cached(dataset: Dataset, cache_file: Path) -> None:
    """Write atomically: a crash mid-write never leaves a half file under the real name."""
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        f.name: getattr(dataset, f.name)
        for f in dataclasses.fields(Dataset)
        if f.name.startswith(("x_", "y_"))
    }
    empty = {f"empty_{split}": count for split, count in dataset.empty_texts.items()}
    vocabulary = np.array(dataset.vocabulary, dtype=str)
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(dir=cache_file.parent, suffix=".tmp.npz")
        with os.fdopen(fd, "wb") as tmp:
            np.savez(
                tmp,
                vocab_size=dataset.vocab_size,
                vocabulary=vocabulary,
                class_names=np.array(dataset.class_names, dtype=str),
                **arrays,
                **empty,
            )
        os.replace(tmp_name, cache_file)
    except BaseException as error:
        if tmp_name:
            Path(tmp_name).unlink(missing_ok=True)
        if no_space_error(error) is None:
            raise
        needed = sum(a.nbytes for a in arrays.values()) + vocabulary.nbytes
        free = free_bytes(cache_file.parent)
        raise DiskFull(
            f"paths.cache_dir={cache_file.parent.parent}: no space left on device for the vector "
            f"cache {cache_file.name}: it needs about {megabytes(needed)}, {megabytes(free)} is "
            "free there; free some space there or choose another paths.cache_dir"
        ) from None


def load_cached(cache_file: Path) -> Dataset | None:
    """The cached arrays, or None when the file cannot be read (a cache is rebuilt, never trusted
    blindly)."""
    try:
        with np.load(cache_file) as stored:
            fields = {name: stored[name] for name in stored.files if name.startswith(("x_", "y_"))}
            empty = {
                name.removeprefix("empty_"): int(stored[name])
                for name in stored.files
                if name.startswith("empty_")
            }
            return Dataset(
                **fields,
                vocab_size=int(stored["vocab_size"]),
                vocabulary=stored["vocabulary"].tolist(),
                class_names=stored["class_names"].tolist(),
                empty_texts=empty,
            )
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as error:
        log.warning("vector cache %s is unreadable (%s): rebuilding it", cache_file, error)
        return None


# ---------------------------------------------------------------------------- split + vectorize


def split_and_vectorize(texts: Texts, data_cfg: DictConfig) -> Dataset:
    seed = data_cfg.split_seed
    train, train_labels = stratified_subset(texts.train, texts.train_labels, data_cfg.subset, seed)
    test, test_labels = stratified_subset(texts.test, texts.test_labels, data_cfg.subset, seed)
    if texts.val is None:
        fit_idx, val_idx = stratified_split(
            train_labels, "validation", test_size=data_cfg.val_split, random_state=seed
        )
        fit_part, val_part = [train[i] for i in fit_idx], [train[i] for i in val_idx]
        fit_labels, val_labels = train_labels[fit_idx], train_labels[val_idx]
    else:  # the data's own validation file: the training file loses nothing
        fit_part, fit_labels = train, train_labels
        val_part, val_labels = stratified_subset(texts.val, texts.val_labels, data_cfg.subset, seed)
    if texts_are_token_ids(train):
        vocabulary, to_ids = [], lambda part: part
        vocab_size, oov = data_cfg.vocab_size, KERAS_IMDB_OOV
    else:
        vocabulary, to_ids = adapt_vectorizer(fit_part, data_cfg.vocab_size, data_cfg.name)
        vocab_size, oov = len(vocabulary), VECTORIZER_OOV
    pad = lambda part: pad_sequences(
        to_ids(part), data_cfg.max_len, data_cfg.truncate, data_cfg.padding
    )
    labels = lambda y: np.asarray(y, dtype=np.float32)
    x_train, y_train, dropped_train = drop_empty_rows(pad(fit_part), labels(fit_labels))
    x_val, y_val, dropped_val = drop_empty_rows(pad(val_part), labels(val_labels))
    x_test, test_as_oov = fill_empty_rows(pad(test), oov, data_cfg.padding)
    check_labels(
        y_train,
        f"the training split less its {dropped_train} texts without a token",
        texts.class_names,
    )
    check_labels(
        y_val,
        f"the validation split less its {dropped_val} texts without a token",
        texts.class_names,
    )
    return Dataset(
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=labels(test_labels),
        vocab_size=vocab_size,
        vocabulary=vocabulary,
        class_names=list(texts.class_names),
        empty_texts={"train": dropped_train, "val": dropped_val, "test": test_as_oov},
    )


def drop_empty_rows(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Leave out rows without a single token (a text of punctuation only): no model can learn from
    padding."""
    kept = x.any(axis=1)
    return x[kept], y[kept], int((~kept).sum())


def fill_empty_rows(x: np.ndarray, oov: int, padding: str) -> tuple[np.ndarray, int]:
    """Give a tokenless row one OOV token instead: the test split is scored whole, never shrunk by
    preprocessing."""
    empty = ~x.any(axis=1)
    x[empty, -1 if padding == "pre" else 0] = oov
    return x, int(empty.sum())


def stratified_subset(items: list, labels: np.ndarray, size: int | None, seed: int):
    if size is None or size >= len(items):
        return items, labels
    keep, _ = stratified_split(labels, "subset", train_size=size, random_state=seed)
    keep.sort()
    return [items[i] for i in keep], labels[keep]


def stratified_split(labels: np.ndarray, purpose: str, **sizes) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a seeded split that keeps the label ratio in both parts."""
    try:
        return train_test_split(np.arange(len(labels)), stratify=labels, **sizes)
    except ValueError as error:
        raise InputError(
            f"cannot make the {purpose} split of {len(labels)} examples: {error}"
        ) from None


def texts_are_token_ids(items: list) -> bool:
    return bool(items) and not isinstance(items[0], str)


def adapt_vectorizer(fit_texts: list[str], vocab_size: int, where: str = "data"):
    """Adapt a TextVectorization on the fitting texts only; return its vocabulary and a texts->ids
    function."""
    import tensorflow as tf
    from keras.layers import TextVectorization

    vectorizer = TextVectorization(max_tokens=vocab_size, ragged=True, **VECTORIZER_TEXT_SETTINGS)
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(fit_texts).batch(2048))
    # only padding and [UNK]: nothing to learn from
    if len(vectorizer.get_vocabulary()) <= VECTORIZER_OOV + 1:
        raise InputError(
            f"{where}: no training text has a word after standardization "
            f"(lower case, punctuation stripped); {len(fit_texts)} texts are all empty or "
            "punctuation"
        )

    def to_ids(texts: list[str]):
        ragged = vectorizer(tf.constant(texts, dtype=tf.string))
        return ragged.flat_values.numpy(), ragged.row_lengths().numpy()

    return vectorizer.get_vocabulary(), to_ids


def pad_sequences(sequences, max_len: int, truncate: str, padding: str) -> np.ndarray:
    """Pad with 0 to `max_len` after (`post`) or before (`pre`) each text; keep the first (`post`)
    or last (`pre`) tokens of longer ones.

    `sequences` is a list of id lists, or (flat ids, lengths) as TextVectorization's ragged output
    gives.
    """
    if isinstance(sequences, tuple):
        flat, lengths = sequences
    else:
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        flat = np.fromiter(
            (t for s in sequences for t in s), dtype=np.int64, count=int(lengths.sum())
        )
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    kept = np.minimum(lengths, max_len)
    if truncate == "pre":
        starts = starts + lengths - kept
    columns = np.arange(max_len)
    filled = columns < kept[:, None]
    padded = np.zeros((len(lengths), max_len), dtype=np.int32)
    padded[filled] = flat[(starts[:, None] + columns)[filled]]
    if padding == "pre":  # each row's tokens moved to its end, in their order
        padded = padded[
            np.arange(len(lengths))[:, None], (columns - (max_len - kept)[:, None]) % max_len
        ]
    return padded


# -------------------------------------------------------------------------------------- loaders


def fetch(url: str, downloads: Path, sha256: str | None = None, fname: str | None = None) -> Path:
    """The file at `url`, from the download cache when it is already there (then never
    re-downloaded)."""
    import keras

    fname = fname or url.rsplit("/", 1)[-1]
    downloads.mkdir(parents=True, exist_ok=True)  # else get_file silently falls back to /tmp/.keras
    try:
        return Path(
            keras.utils.get_file(
                fname=fname,
                origin=url,
                file_hash=sha256,
                cache_dir=str(downloads.parent),
                cache_subdir=downloads.name,
            )
        )
    except Exception as error:  # get_file raises bare Exception for network and checksum failures
        raise InputError(
            f"cannot fetch {url} into {downloads / fname} ({error}); on an offline machine place "
            "the file there"
        ) from error


def decode(raw: bytes, where: str, encoding: str) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        raise InputError(
            f"{where}: not valid {encoding} text ({error.reason} at byte {error.start})"
        ) from None


def check_some_text(texts: list[str], where: str) -> None:
    """An empty text is dropped like one of punctuation only (counted in empty_texts); a file of
    nothing but is an error."""
    if texts and not any(text.strip() for text in texts):
        raise InputError(f"{where}: every text is empty ({len(texts)} rows)")


def check_labels(labels: np.ndarray, where: str, class_names=SENTIMENT_CLASSES) -> None:
    if len(labels) == 0:
        raise InputError(f"{where}: no examples")
    if len(set(labels.tolist())) < 2:
        raise InputError(
            f"{where}: only label {class_names[int(labels[0])]!r} occurs; a classifier needs at "
            "least two classes"
        )


def load_imdb(data_cfg: DictConfig, downloads: Path) -> Texts:
    """Read the aclImdb archive in place (train|test / pos|neg / *.txt): nothing is extracted to
    disk."""
    archive = fetch(data_cfg.url, downloads, data_cfg.sha256)
    found = {(split, label): [] for split in IMDB_SPLITS for label in IMDB_LABELS}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                parts = member.name.split("/")
                if member.isfile() and len(parts) == 4 and (parts[1], parts[2]) in found:
                    text = decode(
                        tar.extractfile(member).read(),
                        f"{archive}:{member.name}",
                        data_cfg.encoding,
                    )
                    found[parts[1], parts[2]].append((member.name, text.replace("<br />", " ")))
    except (tarfile.TarError, OSError, EOFError) as error:
        raise InputError(f"{archive}: not a readable .tar.gz archive ({error})") from None
    for (split, label), items in found.items():
        if not items:
            raise InputError(f"{archive}: no reviews under aclImdb/{split}/{label}/")
    class_of, class_names = imdb_target(data_cfg.get("target", "sentiment"))
    splits = {}
    for split in IMDB_SPLITS:
        items = [
            (name, text, label)
            for label in IMDB_LABELS
            for name, text in sorted(found[split, label])
        ]
        splits[split] = (
            [text for _, text, _ in items],
            np.array([class_of(name, label) for name, _, label in items], dtype=np.int64),
        )
    return Texts(*splits["train"], *splits["test"], class_names=class_names)


def imdb_target(target: str):
    """(a review's class from its file name and folder, the class names) for data.target."""
    if target == "sentiment":
        return (lambda name, label: IMDB_LABELS[label]), list(SENTIMENT_CLASSES)
    if target == "rating":
        names = [str(rating) for rating in IMDB_RATING_GROUPS]
        return (lambda name, label: names.index(str(imdb_rating(name)))), names
    groups = list(dict.fromkeys(IMDB_RATING_GROUPS.values()))
    return (lambda name, label: groups.index(IMDB_RATING_GROUPS[imdb_rating(name)])), groups


def imdb_rating(member_name: str) -> int:
    """The star rating in a review's file name: aclImdb/train/pos/123_8.txt has 8 stars."""
    stem = member_name.rsplit("/", 1)[-1].removesuffix(".txt")
    try:
        rating = int(stem.rsplit("_", 1)[1])
    except (IndexError, ValueError):
        raise InputError(
            f"{member_name}: no star rating in the file name (expected ID_RATING.txt)"
        ) from None
    if rating not in IMDB_RATING_GROUPS:
        raise InputError(
            f"{member_name}: rating {rating}; allowed: {', '.join(map(str, IMDB_RATING_GROUPS))}"
        )
    return rating


def load_sentences(data_cfg: DictConfig, downloads: Path) -> Texts:
    folder = (
        Path(data_cfg.local_dir).expanduser()
        if data_cfg.local_dir
        else fetch_sentences(data_cfg, downloads)
    )
    by_source = data_cfg.get("target", "sentiment") == "source"
    class_names = sorted(data_cfg.sources) if by_source else list(SENTIMENT_CLASSES)
    texts, labels = [], []
    for source in data_cfg.sources:
        source_texts, source_labels = read_labelled_lines(
            folder / SENTENCE_FILES[source], data_cfg.encoding
        )
        texts += source_texts
        labels += [class_names.index(source)] * len(source_labels) if by_source else source_labels
    check_some_text(texts, str(folder))
    return hold_out_test(
        texts, np.array(labels, dtype=np.int64), data_cfg, str(folder), class_names
    )


def fetch_sentences(data_cfg: DictConfig, downloads: Path) -> Path:
    """The folder of *_labelled.txt files in the download cache, unzipped there from the public zip
    once."""
    folder = downloads / "sentiment_labelled_sentences"
    if all((folder / name).is_file() for name in SENTENCE_FILES.values()):
        return folder
    archive = fetch(data_cfg.url, downloads, fname="sentiment_labelled_sentences.zip")
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zipped:
        for member in zipped.namelist():
            name = member.rsplit("/", 1)[-1]
            if name in SENTENCE_FILES.values() and "__MACOSX" not in member:
                (folder / name).write_bytes(zipped.read(member))
    return folder


def read_labelled_lines(path: Path, encoding: str) -> tuple[list[str], list[int]]:
    """Lines of `sentence<TAB>label`; blank lines are skipped, a label with an empty text is kept
    (and dropped later with the texts that have no word).

    Split on newlines only: str.splitlines would also break at U+0085, which occurs inside
    sentences.
    """
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    texts, labels = [], []
    for number, line in enumerate(
        decode(path.read_bytes(), str(path), encoding).split("\n"), start=1
    ):
        if not line.strip():
            continue
        text, tab, label = line.rstrip("\r").rpartition("\t")
        if not tab:
            raise InputError(f"{path}:{number}: expected 'sentence<TAB>label', found no tab")
        if label.strip() not in ("0", "1"):
            raise InputError(
                f"{path}:{number}: label {label.strip()!r} is not binary; allowed: 0, 1"
            )
        texts.append(text.strip())
        labels.append(int(label))
    return texts, labels


def hold_out_test(
    texts: list,
    labels: np.ndarray,
    data_cfg: DictConfig,
    where: str,
    class_names: list[str],
    val: tuple | None = None,
) -> Texts:
    check_labels(labels, where, class_names)
    train_idx, test_idx = stratified_split(
        labels, "test", test_size=data_cfg.test_split, random_state=data_cfg.split_seed
    )
    return Texts(
        [texts[i] for i in train_idx],
        labels[train_idx],
        [texts[i] for i in test_idx],
        labels[test_idx],
        class_names,
        *(val or (None, None)),
    )


def load_keras_imdb(data_cfg: DictConfig, downloads: Path) -> Texts:
    """keras.datasets.imdb's arrays with its own id scheme: 1 starts, 2 is OOV, words from 3 on."""
    path = fetch(data_cfg.url, downloads, data_cfg.sha256, fname="imdb.npz")
    try:
        with np.load(path, allow_pickle=True) as stored:
            splits = [(stored[f"x_{s}"], stored[f"y_{s}"]) for s in IMDB_SPLITS]
    except (OSError, KeyError, ValueError) as error:
        raise InputError(f"{path}: not a keras imdb.npz file ({error})") from None

    def to_ids(review) -> list[int]:
        ids = [KERAS_IMDB_START] + [int(w) + KERAS_IMDB_INDEX_FROM for w in review]
        return [i if i < data_cfg.vocab_size else KERAS_IMDB_OOV for i in ids]

    parts = []
    for (x, y), split in zip(splits, IMDB_SPLITS):
        labels = np.asarray(y, dtype=np.int64)
        check_labels(labels, f"{path}:y_{split}")
        parts += [[to_ids(review) for review in x], labels]
    return Texts(*parts, class_names=list(SENTIMENT_CLASSES))


def load_table(data_cfg: DictConfig, downloads: Path) -> Texts:
    """The training file, and the validation and test files when given (else both are cut from
    it)."""
    texts, raw_labels = read_table(Path(data_cfg.path).expanduser(), data_cfg)
    class_names, index = label_index(raw_labels, data_cfg.label_map, data_cfg.path)
    labels = to_classes(raw_labels, index, data_cfg.path)
    val = None
    if data_cfg.get("val_path"):
        val_texts, val_raw = read_table(Path(data_cfg.val_path).expanduser(), data_cfg)
        val = (val_texts, to_classes(val_raw, index, data_cfg.val_path))
    if data_cfg.test_path is None:
        return hold_out_test(texts, labels, data_cfg, data_cfg.path, class_names, val)
    test_texts, test_raw = read_table(Path(data_cfg.test_path).expanduser(), data_cfg)
    check_labels(labels, data_cfg.path, class_names)
    return Texts(
        texts,
        labels,
        test_texts,
        to_classes(test_raw, index, data_cfg.test_path),
        class_names,
        *(val or (None, None)),
    )


def read_table(path: Path, data_cfg: DictConfig) -> tuple[list[str], list]:
    """The text column (a missing text as "", which is dropped like a text of punctuation) and the
    raw labels."""
    import pandas as pd

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    file_format = (
        data_cfg.format
        if data_cfg.format != "auto"
        else ("parquet" if path.suffix == ".parquet" else "csv")
    )
    try:
        if file_format == "parquet":
            frame = pd.read_parquet(path)
        elif file_format == "csv":
            sep = data_cfg.sep or ("\t" if path.suffix in (".tsv", ".txt") else ",")
            frame = pd.read_csv(
                path,
                sep=sep,
                header=0 if data_cfg.header else None,
                dtype=str,
                keep_default_na=False,
                encoding=data_cfg.encoding,
            )
        else:
            raise InputError(f"data.format={data_cfg.format!r}; allowed: auto, csv, parquet")
    except UnicodeDecodeError as error:
        raise InputError(
            f"{path}: not valid {data_cfg.encoding} text ({error.reason} at byte {error.start})"
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, ValueError) as error:
        raise InputError(
            f"{path}: cannot be read as {file_format} ({str(error).splitlines()[0]})"
        ) from None
    frame.columns = [str(column) for column in frame.columns]
    for key in ("text_column", "label_column"):
        if str(data_cfg[key]) not in frame.columns:
            raise InputError(
                f"{path}: no column {str(data_cfg[key])!r} (data.{key}); columns are "
                f"{list(frame.columns)}"
            )
    texts = ["" if missing(text) else str(text) for text in frame[str(data_cfg.text_column)]]
    check_some_text(texts, str(path))
    return texts, frame[str(data_cfg.label_column)].tolist()


# what tables
MISSING_MARKS = frozenset({"", "nan", "NaN", "NAN", "null", "NULL", "<NA>", "#N/A", "N/A", "n/a"})
# write for a missing value (pandas' own marks, less words a text or a class may be: None, NA)


def missing(value) -> bool:
    """None, NaN or NaT (a Parquet file's missing value), or a text file's mark for one
    (MISSING_MARKS)."""
    import pandas as pd

    if isinstance(value, str):
        return value.strip() in MISSING_MARKS
    return value is None or bool(pd.isna(value))


def label_key(value) -> str:
    """A raw label as the text the label map and the class names use: 3 and 3.0 from Parquet are
    "3"."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def label_index(raw: list, label_map, path) -> tuple[list[str], dict[str, int]]:
    """The class names and raw label -> class index: from data.label_map (checked by config.check),
    or every label of the training file in sorted order (numbers by value)."""
    if label_map:
        index = {str(key): int(value) for key, value in label_map.items()}
        names = [
            "|".join(k for k in index if index[k] == i) for i in range(max(index.values()) + 1)
        ]
        return names, index
    keys = {
        label_key(value) for value in raw if not missing(value) and not missing(label_key(value))
    }
    numeric = all(re.fullmatch(r"[-+]?\d+", key) for key in keys)
    names = sorted(keys, key=int) if numeric else sorted(keys)
    if len(names) < 2:
        raise InputError(
            f"{path}: {'only label ' + repr(names[0]) if names else 'no label'} occurs; "
            "a classifier needs at least two classes"
        )
    log.info("%s: %d classes, in this order: %s", path, len(names), ", ".join(names))
    return names, {name: number for number, name in enumerate(names)}


def to_classes(raw: list, index: dict[str, int], path) -> np.ndarray:
    """Class indices of `raw`; a missing label, or one the label map (or the training file) lacks,
    is an error."""
    classes = []
    for row, value in enumerate(raw):
        key = "" if missing(value) else label_key(value)
        if missing(key):
            raise InputError(f"{path}: label missing at row {row}; every row needs a label")
        if key not in index:
            raise InputError(
                f"{path}: label {key!r} at row {row} is not a known class; allowed: "
                f"{', '.join(index)} (data.label_map, or the labels of data.path)"
            )
        classes.append(index[key])
    return np.array(classes, dtype=np.int64)


LOADERS = {
    "imdb": load_imdb,
    "sentences": load_sentences,
    "keras_imdb": load_keras_imdb,
    "table": load_table,
}
