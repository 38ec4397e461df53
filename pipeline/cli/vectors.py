"""rnn-vectors: word2vec trained on a data set's training texts, for model.embedding.vectors."""

from omegaconf import DictConfig, OmegaConf

from pipeline import config
from pipeline.cli.entry import command


def vectors(cfg: DictConfig) -> None:
    OmegaConf.resolve(cfg)
    config.check(cfg)  # before TensorFlow and gensim are imported: a bad value answers at once
    OmegaConf.set_readonly(cfg, True)  # checked: never changed after
    from pipeline.data.word_vectors import make_vectors

    print(make_vectors(cfg))


cli = command(
    "rnn-vectors",
    "vectors",
    vectors,
    settings=[
        "vectors.output",
        "vectors.dim",
        "vectors.min_count",
        "vectors.epochs",
        "data.subset",
    ],
    examples=[
        "rnn-vectors data=imdb vectors.output=imdb-w2v.txt",
        "rnn-train data=sentences model.embedding.vectors=imdb-w2v.txt "
        "model.embedding.trainable=false",
    ],
)

if __name__ == "__main__":
    cli()
