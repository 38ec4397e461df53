"""Pretrained word vectors: a file of them -> the starting weights of a data set's embedding.

gensim's KeyedVectors reads the file (GloVe text, word2vec/fastText .vec text, word2vec binary
*.bin) and trains word2vec for rnn-vectors; it is imported only when vectors are used. The rows of
the vocabulary's words are cached per vocabulary and file under paths.cache_dir/embeddings, so a
file is read once however many runs and trials start from it.
"""

import codecs
import dataclasses
import gzip
import hashlib
import json
import logging
import os
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from pipeline.config import VECTOR_FILES
from pipeline.core.errors import InputError
from pipeline.core.names import Fig
from pipeline.data.texts import (
    LOADERS,
    Dataset,
    adapt_vectorizer,
    local_file_stamp,
    stratified_subset,
    texts_are_token_ids,
)

log = logging.getLogger(__name__)
logging.getLogger("gensim").setLevel(logging.WARNING)  # an INFO line per epoch and file: no news

CACHE_FORMAT = 1  # bump when the cached rows change meaning
CACHE_FOLDER = "embeddings"
BINARY_SUFFIXES = (".bin", ".bin.gz")  # word2vec's C binary format; any other name is read as text
FIRST_WORD = 2  # row 0 is padding and row 1 TextVectorization's [UNK]: no file has them
SNIFFED_BYTES = 1 << 16
SETTING = "model.embedding.vectors"


@dataclasses.dataclass
class WordVectors:
    """A file's vectors for one vocabulary: row i is word i's vector, zeros where the file lacks
    the word."""

    path: str
    vectors: np.ndarray  # float32, (vocabulary size, dim)
    found: np.ndarray  # bool per vocabulary row: the file has this word
    file_words: int  # the number of words in the file
    cache_hit: bool = False

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def vocabulary_coverage(self) -> float:
        """The share of the vocabulary's words (padding and [UNK] left out) that the file has."""
        words = self.found[FIRST_WORD:]
        return float(words.mean()) if words.size else 0.0

    def token_coverage(self, x_train: np.ndarray) -> float:
        """The share of the training split's tokens (padding left out, [UNK] counted as missing)
        that the file has."""
        tokens = x_train[x_train > 0]
        return float(self.found[tokens].mean()) if tokens.size else 0.0

    def matrix(self, seed: int) -> np.ndarray:
        """The embedding's starting weights: the file's vector for each word it has, a seeded
        random one at the file's own scale for each other word, zeros for padding."""
        missing = ~self.found
        scale = float(self.vectors[self.found].std())
        matrix = self.vectors.copy()
        draws = np.random.default_rng(seed).normal(0.0, scale, (int(missing.sum()), self.dim))
        matrix[missing] = draws
        matrix[0] = 0.0
        return matrix

    def figures(self, x_train: np.ndarray) -> dict[str, float]:
        return {
            Fig.vectors_dim: self.dim,
            Fig.vectors_vocabulary_coverage: self.vocabulary_coverage(),
            Fig.vectors_token_coverage: self.token_coverage(x_train),
        }

    def summary_line(self, x_train: np.ndarray) -> str:
        words, vocabulary = int(self.found[FIRST_WORD:].sum()), len(self.found) - FIRST_WORD
        return (
            f"word vectors {self.path}: {self.dim} dimensions; they cover {words} of the "
            f"{vocabulary} vocabulary words ({self.vocabulary_coverage():.1%}) and "
            f"{self.token_coverage(x_train):.1%} of the training tokens"
        )


_loaded: dict[str, WordVectors] = {}  # by cache file: a sweep's trials read it once per process


def word_vectors(path: str, data: Dataset, cache_dir: str, announce: bool = True) -> WordVectors:
    """The vectors of `path` for `data`'s vocabulary, read from the cache or, once, from the file.
    `announce`: print and log their coverage (a command does, once; its trials and folds need
    not)."""
    if not data.vocabulary:
        raise InputError(f"{SETTING} needs data with words; data=keras_imdb has token ids")
    file = Path(path).expanduser()
    key = cache_key(file, data.vocabulary)
    cache_file = Path(cache_dir).expanduser() / CACHE_FOLDER / f"{file.name}-{key}.npz"
    vectors = _loaded.get(str(cache_file)) or load_cached(cache_file, path)
    if vectors is None:
        started = time.perf_counter()
        vectors = vectors_for(read_file(file, path), data.vocabulary, path)
        check_coverage(vectors, path)
        save_cached(vectors, cache_file)
        seconds = time.perf_counter() - started
        log.info("word vectors %s read in %.1f s, cached in %s", path, seconds, cache_file)
    _loaded[str(cache_file)] = vectors
    if announce:  # on the terminal and in the log file
        line = vectors.summary_line(data.x_train)
        print(line)
        log.info(line)
    return vectors


def cache_key(file: Path, vocabulary: list[str]) -> str:
    """What decides the cached rows: the vocabulary (so, the data config) and the file (its path,
    size and time)."""
    payload = {
        "format": CACHE_FORMAT,
        "file": local_file_stamp(file),
        "vocabulary": hashlib.sha256("\n".join(vocabulary).encode()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]


def check_coverage(vectors: WordVectors, path: str) -> None:
    if not vectors.found.any():
        words = len(vectors.found) - FIRST_WORD
        raise InputError(
            f"{SETTING}={path}: none of the {words} vocabulary words is in its "
            f"{vectors.file_words} words; the file must hold vectors for the data's "
            "words (lower case, punctuation stripped)"
        )


# ---------------------------------------------------------------------------------------- cache


def save_cached(vectors: WordVectors, cache_file: Path) -> None:
    """Written atomically: a crash mid-write never leaves a half file under the real name."""
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=cache_file.parent, suffix=".tmp.npz")
    try:
        with os.fdopen(fd, "wb") as tmp:
            np.savez(
                tmp, vectors=vectors.vectors, found=vectors.found, file_words=vectors.file_words
            )
        os.replace(tmp_name, cache_file)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def load_cached(cache_file: Path, path: str) -> WordVectors | None:
    """The cached rows, or None when there are none or they cannot be read (the file is then read
    again)."""
    if not cache_file.exists():
        return None
    try:
        with np.load(cache_file) as stored:
            return WordVectors(
                path, stored["vectors"], stored["found"], int(stored["file_words"]), cache_hit=True
            )
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        log.warning(
            "word-vector cache %s is unreadable (%s): reading %s again", cache_file, error, path
        )
        return None


# ------------------------------------------------------------------------------------- reading


def vectors_for(keyed, vocabulary: list[str], path: str) -> WordVectors:
    """The rows of the vocabulary's words: the file's own word, else its first word of the same
    lower case (a cased file such as word2vec's GoogleNews has 'Film' but maybe not 'film')."""
    rows = np.zeros((len(vocabulary), keyed.vector_size), dtype=np.float32)
    found = np.zeros(len(vocabulary), dtype=bool)
    lowered = None
    for row, word in enumerate(vocabulary[FIRST_WORD:], start=FIRST_WORD):
        index = keyed.key_to_index.get(word)
        if index is None:
            lowered = lowered if lowered is not None else lower_case_index(keyed.index_to_key)
            index = lowered.get(word)
        if index is not None:
            rows[row], found[row] = keyed.vectors[index], True
    return WordVectors(path, rows, found, len(keyed.index_to_key))


def lower_case_index(words: list[str]) -> dict[str, int]:
    index: dict[str, int] = {}
    for position, word in enumerate(words):
        index.setdefault(word.lower(), position)
    return index


def read_file(file: Path, path: str):
    """The file as gensim KeyedVectors; a file that is not one of VECTOR_FILES is one InputError
    line."""
    from gensim.models import KeyedVectors

    binary = file.name.endswith(BINARY_SUFFIXES)
    header = binary or check_text(file, path)
    try:
        keyed = KeyedVectors.load_word2vec_format(str(file), binary=binary, no_header=not header)
    except (ValueError, TypeError, EOFError, UnicodeDecodeError, OSError) as error:
        raise InputError(file_problem(file, path, binary, header, error)) from None
    if keyed.vector_size == 0 or not keyed.index_to_key:
        raise InputError(file_problem(file, path, binary, header, None))
    return keyed


def opened(file: Path):
    return gzip.open(file, "rb") if file.suffix == ".gz" else open(file, "rb")


def check_text(file: Path, path: str) -> bool:
    """Whether a text file starts with word2vec's 'COUNT DIM' header (GloVe's files have none);
    binary data where text vectors are expected is one InputError line."""
    try:
        with opened(file) as stream:
            head = stream.read(SNIFFED_BYTES)
    except OSError as error:
        raise InputError(
            f"{SETTING}={path}: cannot be read ({error.strerror or error}); allowed: {VECTOR_FILES}"
        ) from None
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as error:
        raise InputError(
            f"{SETTING}={path}: binary data at byte {error.start}, not text vectors; "
            "a word2vec binary file must be named *.bin"
        ) from None
    first = head.split(b"\n", 1)[0].split()
    return len(first) == 2 and all(part.isdigit() for part in first)


def file_problem(file: Path, path: str, binary: bool, header: bool, error: Exception | None) -> str:
    """The one line for a file gensim could not read: the first bad row of a text file, else
    gensim's reason."""
    where = f"{SETTING}={path}"
    if not binary:
        problem = first_bad_row(file, header)
        if problem:
            return f"{where}: {problem}"
    reason = " ".join(str(error).split()) if error else "no vectors in it"
    kind = "word2vec binary file" if binary else "word-vector text file"
    return f"{where}: not a {kind} ({reason}); allowed: {VECTOR_FILES}"


def first_bad_row(file: Path, header: bool) -> str | None:
    """Where a text file breaks the format: a row whose count of numbers differs, a value that is
    no number."""
    dim, rows = None, 0
    with opened(file) as stream:
        for number, raw in enumerate(stream, start=1):
            parts = raw.decode("utf-8", errors="replace").rstrip().split(" ")
            if number == 1 and header:
                dim = int(parts[1])
                continue
            rows += 1
            values = parts[1:]
            if dim is None:
                dim = len(values)
            if not values or len(values) != dim:
                expected = f"{'the header says' if header else 'the first row has'} {dim}"
                return (
                    f"line {number} has {len(values)} numbers after its word {parts[0]!r}, "
                    f"{expected}; every row must be a word and the same count of numbers"
                )
            bad = next((value for value in values if not is_number(value)), None)
            if bad is not None:
                return (
                    f"line {number}: {bad!r} is not a number; every row must be a word and numbers"
                )
    return "the file holds no vectors" if rows == 0 else None


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------------ word2vec


def training_texts(cfg: DictConfig) -> list[str]:
    """The data set's training texts (the validation part included: no label is used), with
    data.subset applied."""
    data_cfg = cfg.data
    texts = LOADERS[data_cfg.name](data_cfg, Path(cfg.paths.cache_dir).expanduser() / "downloads")
    if texts_are_token_ids(texts.train):
        raise InputError(
            f"data={data_cfg.name}: its reviews are token ids, not words; allowed: "
            "data=imdb, sentences or table"
        )
    subset, seed = data_cfg.subset, data_cfg.split_seed
    return stratified_subset(texts.train, texts.train_labels, subset, seed)[0]


def tokenized(texts: list[str]) -> list[list[str]]:
    """Each text as the words training sees: the vectorizer's own standardization and split, every
    word kept."""
    vocabulary, to_ids = adapt_vectorizer(texts, None, "rnn-vectors")
    flat, lengths = to_ids(texts)
    words = np.asarray(vocabulary, dtype=object)[flat]
    return [part.tolist() for part in np.split(words, np.cumsum(lengths)[:-1])]


def train_word2vec(sentences: list[list[str]], vectors_cfg: DictConfig):
    """gensim's Word2Vec on the tokenized texts; its KeyedVectors."""
    from gensim.models import Word2Vec

    model = Word2Vec(
        sentences,
        vector_size=vectors_cfg.dim,
        window=vectors_cfg.window,
        min_count=vectors_cfg.min_count,
        sg=int(vectors_cfg.skip_gram),
        epochs=vectors_cfg.epochs,
        workers=vectors_cfg.threads or os.cpu_count() or 1,
        seed=vectors_cfg.seed,
    )
    if not model.wv.index_to_key:
        raise InputError(
            f"vectors.min_count={vectors_cfg.min_count}: no word occurs that often "
            f"in the {len(sentences)} training texts; lower it"
        )
    return model.wv


def write_text(keyed, output: Path) -> None:
    """word2vec's text format (a 'COUNT DIM' header, then a word and its numbers per line),
    written atomically."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=output.parent, suffix=".tmp")
    os.close(fd)
    try:
        keyed.save_word2vec_format(tmp_name, binary=False)
        os.chmod(tmp_name, 0o666 & ~current_umask())  # as open() makes it; mkstemp's is private
        os.replace(tmp_name, output)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def make_vectors(cfg: DictConfig) -> str:
    """rnn-vectors' job: word2vec trained on the data set's training texts, written as text;
    returns what it did."""
    started = time.perf_counter()
    sentences = tokenized(training_texts(cfg))
    keyed = train_word2vec(sentences, cfg.vectors)
    output = Path(cfg.vectors.output).expanduser()
    write_text(keyed, output)
    tokens = sum(map(len, sentences))
    words = len(keyed.index_to_key)
    return (
        f"{words} words x {keyed.vector_size} dimensions from {tokens} tokens "
        f"of {len(sentences)} training texts of data={cfg.data.name}, written to {output} in "
        f"{time.perf_counter() - started:.0f} s.\n"
        f"Start a model from them: model.embedding.vectors={output}"
    )
