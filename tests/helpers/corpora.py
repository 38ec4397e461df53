"""Small corpora written by a test: an IMDB-shaped archive, UCI-shaped sentence files, data configs."""

import io
import tarfile

from omegaconf import OmegaConf

from tests.conftest import compose_config

POSITIVE = [
    "a wonderful film",
    "great acting and a great story",
    "loved every minute",
    "superb and moving",
]
NEGATIVE = [
    "a dull film",
    "terrible acting and a weak story",
    "hated every minute",
    "boring and silly",
]


def reviews(count: int, offset: int = 0):
    """`count` positive and `count` negative texts, all distinct."""
    return (
        [f"{POSITIVE[i % 4]} number{i + offset}" for i in range(count)],
        [f"{NEGATIVE[i % 4]} number{i + offset}" for i in range(count)],
    )


# ------------------------------------------------------------------------------------------ imdb


def data_config(loader: str, **values):
    cfg = compose_config(f"data={loader}", "seed=7").data
    OmegaConf.resolve(cfg)
    for key, value in values.items():
        OmegaConf.update(cfg, key, value, force_add=True)
    return cfg


def write_imdb_archive(path, count=10, extra=None):
    """A tiny aclImdb_v1.tar.gz in the original layout; `extra` maps member names to bytes."""
    members = {}
    for split, offset in (("train", 0), ("test", 1000)):
        pos, neg = reviews(count, offset)
        for label, texts in (("pos", pos), ("neg", neg)):
            for i, text in enumerate(texts):
                members[f"aclImdb/{split}/{label}/{i}_7.txt"] = (
                    text + "<br /><br />the end"
                ).encode()
    members["aclImdb/README"] = b"readme"
    members.update(extra or {})
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            if content is None:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def imdb_config(tmp_path, **values):
    downloads = tmp_path / "cache" / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    return data_config(
        "imdb", url=(downloads / "aclImdb_v1.tar.gz").as_uri(), max_len=12, **values
    ), downloads


def write_sentences(folder, lines_per_source=12, overrides=None):
    folder.mkdir(parents=True, exist_ok=True)
    for source, name in {
        "amazon": "amazon_cells_labelled.txt",
        "imdb": "imdb_labelled.txt",
        "yelp": "yelp_labelled.txt",
    }.items():
        pos, neg = reviews(lines_per_source // 2)
        lines = [f"{text} {source}\t1" for text in pos] + [f"{text} {source}\t0" for text in neg]
        content = ("\n".join(lines) + "\n").encode()
        (folder / name).write_bytes((overrides or {}).get(source, content))
    return folder
