"""The allowed values of settings whose owners live in heavier layers: the checks read them here,
and the data loaders and the model zoo build from the same tuples (tests/test_layers.py holds them
equal)."""

LOADER_NAMES = ("imdb", "sentences", "keras_imdb", "table")  # data.name
TRUNCATE_SIDES = ("pre", "post")  # data.truncate
PADDING_SIDES = ("post", "pre")  # data.padding
SENTENCE_FILES = {
    "amazon": "amazon_cells_labelled.txt",
    "imdb": "imdb_labelled.txt",
    "yelp": "yelp_labelled.txt",
}
TARGETS = {  # data.target: what each built-in data set can be labelled by (sentiment: the default)
    "imdb": ("sentiment", "rating", "rating_group"),
    "sentences": ("sentiment", "source"),
}
RECURRENT_BODIES = ("simple_rnn", "lstm", "gru")  # model.body values that are a recurrent layer
BODIES = ("pooling", *RECURRENT_BODIES)  # model.body
POOLINGS = ("average", "max")  # model.pooling
