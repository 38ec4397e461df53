"""Every setting, declared once: its type, default, one-line doc and allowed values, as the
fields of one dataclass per config group. Each is registered in Hydra's ConfigStore as
`schema/<group>`, the base of the group's presets (Hydra's structured-config schema pattern), so
Hydra rejects `model.units=true` while composing; config.RULES, --help and docs/configuration.md
read the rest from the fields' metadata. The presets in conf/ state only what differs. Optimizer
and callbacks are free-form Hydra `_target_` nodes: their keys' docs and rules are the `keys` of
their field.
"""

import copy
import dataclasses
from collections.abc import Iterator
from typing import Any, NamedTuple, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, ListConfig

from pipeline.config.rules import (
    BODY,
    BOOLEAN,
    FRACTION,
    LOADER,
    MAX_TRIALS,
    METRIC,
    PADDING,
    POOLING,
    PORT,
    POSITIVE,
    SHARE,
    TRUNCATE,
    Rule,
    integer,
    is_integer,
    is_number,
    is_path,
    one_of,
    recurrent,
)


class Key(NamedTuple):
    """The doc and rule of one key of a free-form node (an optimizer argument)."""

    doc: str
    rule: Rule | None = None


def setting(default: Any = MISSING, doc: str = "", rule: Rule | None = None, keys=None) -> Any:
    """A config field: its default (MISSING: a preset or the user sets it), its one-line doc and
    its rule (None: the type says all). `keys`: {dotted sub-key: Key} of a free-form node."""
    metadata = {"doc": doc, "rule": rule, "keys": keys or {}}
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# ----------------------------------------------------------------------------- the top level

LEARNING_RATE = Rule(
    lambda value: is_number(value) and value > 0, "it must be a finite number > 0", quoted=False
)
MOMENTUM = Rule(
    lambda value: isinstance(value, float) and 0 <= value <= 1,  # nan passed Keras' own check
    "it must be a number from 0.0 to 1.0, with its decimal point (Keras' SGD takes a float)",
    quoted=False,
)


@dataclasses.dataclass
class TopLevel:
    """The keys beside the groups (untyped in the ConfigStore: the root configs differ per
    command)."""

    seed: int = setting(
        42,
        "seeds Python, NumPy, TensorFlow and word2vec; also the validation split unless "
        "data.split_seed is set",
        integer(0),
    )
    optimizer: Any = setting(
        doc="a Keras optimizer, made by Hydra from its _target_; any argument of it may be added "
        "with +optimizer.NAME=VALUE",
        keys={
            "learning_rate": Key("step size", LEARNING_RATE),
            "momentum": Key("0.0 for plain SGD (a float, as Keras asks)", MOMENTUM),
            "nesterov": Key("Nesterov momentum"),
        },
    )
    callbacks: Any = setting(
        doc="extra Keras callbacks by name, each made by Hydra from its _target_",
        keys={
            "early_stopping.monitor": Key(
                "stop when the metric that picks the best epoch stops improving"
            ),
            "early_stopping.mode": Key(
                "max for accuracies, min for losses: derived from train.monitor, as its best "
                "epoch is"
            ),
            "early_stopping.patience": Key("epochs without improvement before stopping"),
            "early_stopping.restore_best_weights": Key(
                "the best epoch's weights are restored in any case (train.monitor), with or "
                "without early stopping"
            ),
        },
    )


@dataclasses.dataclass
class PathsConfig:
    cache_dir: str = setting(
        "${oc.env:RNNSWEEP_CACHE_DIR,'~/.cache/rnnsweep'}",
        "downloads/ (archives) and vectors/ (prepared arrays)",
    )
    mlruns_dir: str = setting("mlruns", "local MLflow store: mlflow.db + artifacts/")
    log_dir: str = setting("logs", "Hydra run directories and log files")


# ----------------------------------------------------------------------------- data

LOADER_DOC = "loader: imdb | sentences | keras_imdb | table"
DOWNLOAD_DOC = "fetched once into ${paths.cache_dir}/downloads"


@dataclasses.dataclass
class DataConfig:
    name: str = setting(doc=LOADER_DOC, rule=LOADER)
    vocab_size: int = setting(
        10000,
        "TextVectorization max_tokens (padding and OOV included), adapted on the training split "
        "only",
        integer(3),
    )
    max_len: int = setting(500, "tokens kept per text", integer(3))
    truncate: str = setting(
        "pre",
        "pre keeps the last max_len tokens (as keras pad_sequences does), post the first",
        TRUNCATE,
    )
    padding: str = setting(
        "post",
        "post puts the padding zeros after a text, pre before it (only matters with "
        "model.mask_padding=false)",
        PADDING,
    )
    val_split: float = setting(
        0.2, "fraction of the training split held out (stratified) for validation", SHARE
    )
    split_seed: int = setting(
        "${seed}",
        "seed of the validation split (and of the test split where one is held out)",
        integer(0),
    )
    subset: Optional[int] = setting(
        None,
        "keep this many train and this many test texts (stratified) for quick runs; null keeps all",
        integer(4, nullable=True),
    )


@dataclasses.dataclass
class ImdbData(DataConfig):
    name: str = setting("imdb", LOADER_DOC, LOADER)
    url: str = setting(
        "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz", DOWNLOAD_DOC
    )
    sha256: Optional[str] = setting(None, "expected checksum of the archive; null skips the check")
    encoding: str = setting("utf-8", "text encoding of the review files")
    target: str = setting(
        "sentiment",
        "sentiment (neg/pos, 2 classes) | rating (stars from the file names: 1-4 and 7-10, 8 "
        "classes) | rating_group (1-2, 3-4, 7-8, 9-10: 4 classes)",
    )


@dataclasses.dataclass
class KerasImdbData(DataConfig):
    name: str = setting("keras_imdb", LOADER_DOC, LOADER)
    url: str = setting(
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb.npz", DOWNLOAD_DOC
    )
    sha256: Optional[str] = setting(
        "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f",
        "Keras' published checksum; null skips the check",
    )


@dataclasses.dataclass
class SentencesData(DataConfig):
    name: str = setting("sentences", LOADER_DOC, LOADER)
    url: str = setting(
        "https://archive.ics.uci.edu/static/public/331/sentiment+labelled+sentences.zip",
        DOWNLOAD_DOC,
    )
    local_dir: Optional[str] = setting(
        None, "directory already holding the *_labelled.txt files; null uses the download cache"
    )
    sources: list[str] = setting(["amazon", "imdb", "yelp"], "which files to use")
    encoding: str = setting("utf-8", "text encoding of the files")
    test_split: float = setting(0.25, "fraction held out (stratified) as the test split", SHARE)
    target: str = setting(
        "sentiment",
        "sentiment (the 0/1 labels) | source (which site a sentence comes from: one class per "
        "source)",
    )


@dataclasses.dataclass
class TableData(DataConfig):
    name: str = setting("table", LOADER_DOC, LOADER)
    path: str = setting(
        doc="with data=table, your training file (.csv, .tsv, .txt, .parquet); required there, "
        "e.g. data.path=reviews.csv",
    )
    val_path: Optional[str] = setting(
        None, "a separate validation file in the same format; null cuts val_split of path instead"
    )
    test_path: Optional[str] = setting(
        None, "a separate test file in the same format; null holds out test_split of path instead"
    )
    format: str = setting("auto", "auto (from the extension) | csv | parquet")
    sep: Optional[str] = setting(
        None, "column separator for text files; null means tab for .tsv/.txt and comma otherwise"
    )
    header: Any = setting(
        True,
        "whether the text file's first line names the columns (false: columns are 0, 1, ...)",
        BOOLEAN,
    )
    text_column: Any = setting(  # a name, or a position when header is false
        "text", "column holding the text (an empty or missing text is dropped, and counted)"
    )
    label_column: Any = setting("label", "column holding the label")
    label_map: Any = setting(  # free-form: checked by config.check_label_map
        None,
        "raw label -> class index 0..K-1, e.g. {neg: 0, pos: 1}; null takes the labels in "
        "sorted order (numbers by value)",
    )
    encoding: str = setting("utf-8", "text encoding of text files")
    test_split: float = setting(
        0.25, "fraction held out (stratified) as test when test_path is null", SHARE
    )


# ----------------------------------------------------------------------------- model

RECURRENT_ONLY = "(unused by body=pooling)"


@dataclasses.dataclass
class EmbeddingConfig:
    vectors: Optional[str] = setting(
        None,
        "a file of pretrained word vectors to start the embedding from: GloVe or word2vec/fastText "
        ".vec text, or word2vec binary (*.bin); words it lacks start random (seeded by "
        "train.seed); null: learned from scratch (docs/vectors.md)",
        Rule(
            lambda value: value is None or is_path(value),
            "it must be null or the path of a word-vector file",
        ),
    )
    trainable: Any = setting(
        True,
        "true: training moves the embedding (fine-tuned vectors, or learned from scratch); "
        "false: frozen",
        BOOLEAN,
    )


@dataclasses.dataclass
class ModelConfig:
    body: str = setting("lstm", "pooling | simple_rnn | lstm | gru", BODY)
    pooling: str = setting(
        "average",
        "average | max (padding is masked out of both); used by body=pooling only",
        POOLING,
    )
    mask_padding: Any = setting(
        True,
        "the Embedding masks token 0, so padding never reaches a layer; false feeds it to them "
        "(and pads every batch to data.max_len), as the classic scripts do",
        BOOLEAN,
    )
    embedding_dim: int = setting(
        32,
        "width of the word vectors (unused with embedding.vectors: the file sets it)",
        integer(1),
    )
    units: int = setting(
        64,
        f"recurrent units per layer and direction {RECURRENT_ONLY}",
        recurrent(integer, 1),
    )
    num_layers: int = setting(
        1, f"stacked recurrent layers {RECURRENT_ONLY}", recurrent(integer, 1)
    )
    bidirectional: Any = setting(
        False, f"wrap each recurrent layer in Bidirectional {RECURRENT_ONLY}", BOOLEAN
    )
    dropout: float = setting(0.0, "dropout on recurrent inputs and before the head", FRACTION)
    recurrent_dropout: float = setting(
        0.0,
        "dropout on the recurrent state (recurrent bodies only; non-zero disables cuDNN on GPU)",
        FRACTION,
    )
    head_units: int = setting(
        0, "hidden Dense units before the sigmoid output; 0 for none", integer(0)
    )
    embedding: EmbeddingConfig = setting(
        EmbeddingConfig(), "the Embedding layer: where its vectors start, whether they train"
    )


# ----------------------------------------------------------------------------- train


@dataclasses.dataclass
class ThreadsConfig:
    intra_op: int = setting(
        0,
        "threads inside one op (a matmul); 0 lets TensorFlow use every core (rnn-sweep: the "
        "worker's share)",
        integer(0),
    )
    inter_op: int = setting(
        0,
        "independent ops run at once; 0 lets TensorFlow choose (rnn-sweep: 1, steadier epochs: "
        "benchmarks/RESULTS.md)",
        integer(0),
    )


@dataclasses.dataclass
class TrainConfig:
    epochs: int = setting(5, "upper bound; early stopping may end sooner", integer(1))
    batch_size: int = setting(128, "examples per step", integer(1))
    seed: int = setting(
        "${seed}",
        "training seed: initial weights, shuffling, dropout; the data split keeps ${seed} "
        "(data.split_seed)",
        Rule(is_integer, "it must be an integer"),
    )
    monitor: str = setting(
        "val_loss",
        "per-epoch metric (val_loss | val_accuracy | loss | accuracy) whose best epoch (lowest "
        "loss, highest accuracy) is kept, stored, reported as best_epoch and tested",
        METRIC,
    )
    shuffle: Any = setting(True, "reshuffle the training split every epoch", BOOLEAN)
    length_buckets: Any = setting(
        "${model.mask_padding}",
        "batch texts of similar length and cut each batch to its longest text (masked padding, "
        "same results, less compute); false pads every batch to data.max_len; follows "
        "model.mask_padding, since unmasked padding is input that must not be cut",
        BOOLEAN,
    )
    bucket_pool: int = setting(
        16,
        "texts are sorted by length within shuffled pools of this many batches: larger pools cut "
        "more padding, smaller ones mix lengths more",
        integer(1),
    )
    evaluate_test: Any = setting(
        True,
        "evaluate the restored best model once on the test split (never used for selection)",
        BOOLEAN,
    )
    plateau_tolerance: float = setting(
        0.02,
        "plateau_epochs counts leading epochs whose training loss stays within this relative "
        "distance of epoch 1's",
        FRACTION,
    )
    chance_tolerance: float = setting(
        0.03,
        "a plateau sits at chance (predicts the label prior) when its mean training loss is "
        "within this relative distance of chance_loss",
        FRACTION,
    )
    divergence_factor: float = setting(
        10,
        "an epoch whose training loss passes this many times the larger of chance_loss and ln K "
        "(an untrained model's loss) ends training as diverged (a trial FAILs, like NaN): on "
        "balanced data the right class then gets a probability of about chance^10 on average "
        "(1e-3 for two classes), worse than any model that learned or guesses the prior",
        Rule(lambda value: is_number(value) and value > 1, "it must be a number > 1"),
    )
    verbose: int = setting(
        2, "Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch", one_of(0, 1, 2)
    )
    log_model: Any = setting(
        True,
        "log the trained model as an MLflow model that scores raw text (Keras format inside; "
        "pipeline/models/export.py)",
        BOOLEAN,
    )
    log_gradients: Any = setting(
        True,
        "log grad_norm (global gradient norm) and update_ratio (|Δw|/|w|) per epoch, each the "
        "mean over the epoch's steps",
        BOOLEAN,
    )
    threads: ThreadsConfig = setting(
        ThreadsConfig(),
        "TensorFlow CPU threads of this process (rnn-sweep: 0 is each process's share of the "
        "cores, and 1 inter-op thread)",
    )


@dataclasses.dataclass
class LrFindConfig:
    start_lr: float = setting(1.0e-6, "learning rate of the first step", POSITIVE)
    end_lr: float = setting(1.0, "learning rate of the last step", POSITIVE)
    steps: int = setting(
        300,
        "training steps (batches) over the range; beyond one epoch the training split is "
        "reshuffled and goes on",
        integer(2),
    )
    smoothing: float = setting(
        0.9,
        "weight of the past in the exponential moving average of the loss (bias-corrected; 0 "
        "smooths nothing); it trails the raw loss by about smoothing/(1-smoothing) steps",
        FRACTION,
    )
    start_steps: int = setting(
        10, "the starting level is the mean training loss of the first this many steps", integer(1)
    )
    tolerance: float = setting(
        "${train.plateau_tolerance}",
        "the loss has left its starting level once the smoothed loss lies this relative distance "
        "from it; lower learning rates: the plateau zone",
        FRACTION,
    )
    divergence: float = setting(
        4.0,
        "the loss blows up when the smoothed loss passes this multiple of its minimum so far; "
        "the test stops there",
        Rule(lambda value: is_number(value) and value > 1, "it must be a finite number > 1"),
    )


@dataclasses.dataclass
class TrackingConfig:
    uri: Optional[str] = setting(
        "${oc.env:MLFLOW_TRACKING_URI,null}",
        "any MLflow tracking URI (http://host:5000, sqlite:///file.db, ...)",
    )
    experiment: str = setting(
        "rnnsweep",
        "experiment the runs go to",
        Rule(lambda value: isinstance(value, str) and value != "", "it must be a non-empty name"),
    )
    run_name: Optional[str] = setting(None, "name of the run; null names it <model>-<data>")
    trial_charts: Any = setting(
        True, "each trial's learning curves drawn into its run (learning_curves.png)", BOOLEAN
    )
    ui_host: str = setting("127.0.0.1", "rnn-ui binds here (loopback only by default)")
    ui_port: int = setting(5000, "rnn-ui port", PORT)


# ----------------------------------------------------------------------------- search

SAMPLERS = {
    "tpe": {
        "_target_": "optuna.samplers.TPESampler",
        "constant_liar": True,
        "multivariate": True,
        "n_startup_trials": 10,
    },
    "random": {"_target_": "optuna.samplers.RandomSampler"},
    "cmaes": {"_target_": "optuna.samplers.CmaEsSampler"},
    "grid": {"_target_": "optuna.samplers.GridSampler"},
}
PRUNERS = {
    "median": {
        "_target_": "optuna.pruners.MedianPruner",
        "n_startup_trials": "${search.pruner_startup_trials}",
        "n_warmup_steps": "${search.pruner_warmup_epochs}",
    },
    "patient": {
        "_target_": "optuna.pruners.PatientPruner",
        "wrapped_pruner": "${search.pruners.median}",
        "patience": "${search.pruner_patience}",
    },
    "hyperband": {
        "_target_": "optuna.pruners.HyperbandPruner",
        "min_resource": 1,
        "max_resource": "${train.epochs}",
    },
    "none": {"_target_": "optuna.pruners.NopPruner"},
}
STUDY_NAME = (
    "${search.name}-${data_label:${data.name},${oc.select:data.target,null},"
    "${oc.select:data.path,null}}${body_label:${search.space},${model.body}}"
    "${vectors_label:${model.embedding.vectors}}"
)
N_WORKERS = Rule(
    lambda value: value == "auto" or is_integer(value) and value >= 1,
    "it must be an integer >= 1, or auto (one worker per CPU core)",
)
TIMEOUT = Rule(
    lambda value: value is None or is_number(value) and value > 0,
    "it must be null or a finite number of seconds > 0",
    quoted=False,
)
COST_GUARD = Rule(
    lambda value: value is None or is_number(value) and value > 1,
    "it must be null (off) or a finite number > 1: how many times the median epoch time",
    quoted=False,
)
CV_FOLDS = Rule(
    lambda value: value == "auto" or is_integer(value) and 1 <= value <= 20,
    "it must be auto, 1 (one validation split) or a number of folds from 2 to 20",
)


@dataclasses.dataclass
class SearchConfig:
    name: str = setting(doc="set by each preset; part of the default study name")
    study_name: str = setting(
        STUDY_NAME,
        "the same command resumes the same study; a table is named by its file, a target other "
        "than sentiment is added, the body when the search keeps it fixed, and the word-vector "
        "file (model.embedding.vectors) when one is set",
    )
    storage: Optional[str] = setting(
        None,
        "Optuna storage URL (sqlite:///..., postgresql://...); null: sqlite file "
        "${paths.mlruns_dir}/optuna.db",
    )
    n_trials: int = setting(
        20,
        "trials this invocation adds to the study (at most 1000000000)",
        integer(1, MAX_TRIALS),
    )
    n_workers: Any = setting(
        "auto",
        "worker processes running those trials at once on this machine, the cores split between "
        "them (train.threads); auto: one per usable CPU core (2 workers x 1 thread beat 1 x 2 "
        "threads on 2 cores: benchmarks/RESULTS.md); 1: one worker process (a lone trial, or no "
        "more than search.worker_max_trials, runs in the invoking process)",
        N_WORKERS,
    )
    worker_max_trials: Optional[int] = setting(
        5,
        "a worker process runs at most this many trials, then a fresh one takes its place (~6-7 s "
        "to start; the pool's max_tasks_per_child): TensorFlow's training slows as a process ages "
        "(the same model 1.10-1.20x slower after 9-19 trials in one process, 0.99-1.07x when "
        "replaced every 5; benchmarks/RESULTS.md); with n_workers 1 and more trials than this, "
        "trials run in a worker process; null: never replaced",
        integer(1, nullable=True),
    )
    timeout: Optional[Any] = setting(  # an integer or a float
        None,
        "seconds after which this invocation starts no new trial (its first trial always "
        "starts); null: no limit",
        TIMEOUT,
    )
    max_total_trials: Optional[int] = setting(
        None,
        "the study is complete at this many complete + pruned trials: later invocations exit at "
        "once",
        integer(1, nullable=True),
    )
    sampler: str = setting("tpe", "a name from search.samplers")
    samplers: dict[str, Any] = setting(
        SAMPLERS,
        "Optuna samplers by name, instantiated with Hydra (add any other with its _target_); "
        "rnnsweep passes seed, and the grid its search_space (grid: every combination of the "
        "categorical space once)",
        # the catalog's own TPE keys; others reach Optuna as given
        keys={
            "tpe.n_startup_trials": Key(
                "5 start-up trials were no better at 30 trials (benchmarks/tpe_settings.py, "
                "RESULTS.md)",
                integer(0),
            ),
            "tpe.multivariate": Key(
                "the shared parameters drawn jointly: better and faster trials than independent "
                "or group sampling on the conditional space",
                BOOLEAN,
            ),
            "tpe.constant_liar": Key(
                "running trials count as bad, so parallel workers do not sample the same point",
                BOOLEAN,
            ),
        },
    )
    baseline_first: Any = setting(
        True,
        "the study runs the composed config's own values (model, optimizer, ...) once, first when "
        "it is new, so every search is measured against a known baseline",
        BOOLEAN,
    )
    portfolio: list[Any] = setting(
        [],
        "configurations the study runs once, after the baseline and before the sampler chooses: "
        "a list of {NAME: value} over search.space names (the presets give ones measured strong "
        "on IMDB and the UCI sentences: benchmarks/RESULTS.md); a value the space does not hold "
        "is left to the sampler",
    )
    warm_start_from: Optional[str] = setting(
        None,
        "the name of an earlier study (another data set, an earlier space) whose best trials this "
        "study runs once, after the portfolio; null: none",
    )
    warm_start_storage: Optional[str] = setting(
        None, "that study's Optuna storage URL; null: this sweep's storage"
    )
    warm_start_top_k: int = setting(
        3, "how many of the earlier study's best complete trials are run", integer(1)
    )
    cost_guard: Optional[float] = setting(
        4,
        "a trial whose epochs take this many times the median of the study's finished trials, "
        "and whose value is no better than theirs at the same epoch, is pruned; null: off (the "
        "none and hyperband pruners are never wrapped)",
        COST_GUARD,
    )
    cost_guard_trials: int = setting(
        2, "finished trials with epoch times needed before the cost guard judges", integer(1)
    )
    seed: int = setting(
        "${seed}",
        "the sampler's seed; give each worker of a shared study its own (the data split keeps "
        "${seed})",
        integer(0),
    )
    pruner: str = setting("median", "a name from search.pruners; fed the objective every epoch")
    pruners: dict[str, Any] = setting(
        PRUNERS,
        "Optuna pruners by name, instantiated with Hydra (add any other with its _target_); "
        "patient: the median rule only after pruner_patience epochs without progress, so slow "
        "starters on a plateau survive; none: every trial runs all its epochs",
    )
    pruner_startup_trials: int = setting(
        4, "median, patient: trials that finish before any is pruned", integer(0)
    )
    pruner_warmup_epochs: int = setting(
        1, "median, patient: epochs of each trial before it may be pruned", integer(0)
    )
    pruner_patience: int = setting(
        3,
        "patient: epochs without a better objective before the median rule may prune a trial",
        integer(0),
    )
    objective: str = setting(
        "val_accuracy", "per-epoch metric to optimize; a trial's value is its best epoch's", METRIC
    )
    direction: str = setting("maximize", "maximize | minimize", one_of("maximize", "minimize"))
    second_objective: Optional[str] = setting(
        None,
        "fit_seconds (minimized) for a two-objective study with a Pareto front; needs pruner=none",
        one_of(None, "fit_seconds"),
    )
    confirm_top_k: int = setting(
        3,
        "after the search, the top k trials are trained again with confirm_seeds more training "
        "seeds; the best mean wins (0: the single best trial wins)",
        integer(0),
    )
    confirm_seeds: int = setting(
        2,
        "extra training seeds per confirmed trial (train.seed + 1, + 2, ...); the data split "
        "stays fixed",
        integer(0),
    )
    cv_folds: Any = setting(
        "auto",
        "k: each trial trains k models, each validated on its own stratified fold of the training "
        "data (validation split included); its value is their mean. The pruner judges after each "
        "fold (its steps are then folds: pruner_warmup_epochs and pruner_patience count folds; "
        "hyperband needs 1), and the trial's model is trained again on all of that data for the "
        "folds' median best epoch. auto: 5 folds when that data holds fewer than cv_auto_below "
        "texts, else 1; 1: one validation split (data.val_split or data.val_path). A study keeps "
        "the folds it was made with",
        CV_FOLDS,
    )
    cv_auto_below: int = setting(
        5000,
        "auto cross-validates below this many texts: one split's validation set then holds under "
        "1000 texts, whose standard error (±1.3 points at accuracy 0.8) exceeds the gaps between "
        "good configurations (benchmarks/RESULTS.md)",
        integer(0),
    )
    register_as: Optional[str] = setting(
        "${search.study_name}",
        "the winner's model is registered in the MLflow Model Registry under this name, alias "
        "champion (models:/NAME@champion); null registers nothing",
    )
    heartbeat_seconds: int = setting(5, "a running trial's heartbeat in the storage", integer(1))
    grace_seconds: int = setting(
        20,
        "a trial silent this long belongs to a dead worker: it is failed and retried",
        integer(1),
    )
    max_retry: int = setting(1, "how often a dead worker's trial is retried", integer(0))
    show_progress_bar: Any = setting(
        True,
        "the live display on a terminal (trials, running epochs, the best so far); elsewhere one "
        "line per finished trial",
        BOOLEAN,
    )
    dashboard_port: int = setting(
        8080,
        "rnn-dashboard (optuna-dashboard over the study storage) listens here, on tracking.ui_host",
        PORT,
    )
    lr_range: Optional[str] = setting(
        None,
        "null | auto: a learning-rate range test on the base config first sets the low and high "
        "of the space's optimizer.learning_rate entry (plateau edge to minimum-loss lr), kept in "
        "the study",
        one_of(None, "auto"),
    )
    space: dict[str, Any] = setting(
        {},
        "NAME: {path, type: float|int|categorical, low, high, log, step, choices, when: {path, "
        "in}}",
    )


# ----------------------------------------------------------------------------- other commands


@dataclasses.dataclass
class VectorsConfig:
    output: Optional[str] = setting(
        None,
        "required: the text file to write (word2vec's format: a 'COUNT DIM' header, then a word "
        "and its numbers per line)",
        Rule(
            is_path,
            "it must be the path of the text file to write, e.g. vectors.output=imdb-w2v.txt",
        ),
    )
    dim: int = setting(100, "width of each word's vector", integer(1))
    window: int = setting(5, "words on each side that count as a word's context", integer(1))
    min_count: int = setting(
        5, "words seen fewer times get no vector (they start random in a model)", integer(1)
    )
    epochs: int = setting(5, "passes over the texts", integer(1))
    skip_gram: Any = setting(
        False, "true: skip-gram (slower, better for rare words); false: CBOW", BOOLEAN
    )
    threads: int = setting(
        0,
        "gensim worker threads; 0: one per CPU core (only 1 thread gives the same vectors every "
        "run)",
        integer(0),
    )
    seed: int = setting("${seed}", "word2vec's seed", integer(0))


@dataclasses.dataclass
class PredictConfig:
    model: Optional[str] = setting(
        None,
        "required: a run id, models:/NAME@champion, models:/NAME/VERSION, models:/m-<id>, or a "
        "local MLflow model folder or .keras file",
    )
    texts: list[str] = setting(
        [],
        'texts to score, e.g. \'predict.texts=["a great film","dull plot"]\'',
        Rule(
            lambda value: isinstance(value, (list, ListConfig)),
            "it must be a list of texts, e.g. 'predict.texts=[\"a great film\"]'",
        ),
    )
    input: Optional[str] = setting(
        None,
        "or a file of texts: .csv, .tsv or .parquet (the column predict.column); any other file "
        "is one text per line",
    )
    column: str = setting(
        "text",
        "the column of a CSV/TSV/Parquet input that holds the texts",
        Rule(is_path, "it must be the name of a column"),
    )
    output: Optional[str] = setting(
        None,
        "write the table (text, label, probability) to this .csv, .tsv, .parquet or .jsonl file; "
        "null prints it",
    )


# ----------------------------------------------------------------------------- the registry

SCHEMAS = {
    "paths": PathsConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "tracking": TrackingConfig,
    "search": SearchConfig,
    "lr_find": LrFindConfig,
}
# the data group has one schema per loader (schema/data_imdb, ...), each the base of its preset
DATA_SCHEMAS = {
    "imdb": ImdbData,
    "keras_imdb": KerasImdbData,
    "sentences": SentencesData,
    "table": TableData,
}
# the settings of a command beside training (rnn-vectors, rnn-predict): no training config has them
COMMAND_SCHEMAS = {"vectors": VectorsConfig, "predict": PredictConfig}


def register() -> None:
    store = ConfigStore.instance()
    for group, schema in {**SCHEMAS, **COMMAND_SCHEMAS}.items():
        store.store(group="schema", name=group, node=schema)
    for loader, schema in DATA_SCHEMAS.items():
        store.store(group="schema", name=f"data_{loader}", node=schema)
    # the root configs' own keys, untyped: a typed root would have to declare every group
    store.store(group="schema", name="top", node={"seed": TopLevel.seed})


def prefixed_schemas() -> list[tuple[str, type]]:
    """(key prefix, schema) of every schema, a sweep's settings first: a bad search.objective is
    named as itself, not as train.monitor, which follows it."""
    return [
        ("search.", SearchConfig),
        ("", TopLevel),
        ("data.", DataConfig),
        *(("data.", schema) for schema in DATA_SCHEMAS.values()),
        *((f"{group}.", schema) for group, schema in SCHEMAS.items() if group != "search"),
        *((f"{group}.", schema) for group, schema in COMMAND_SCHEMAS.items()),
    ]


class Declared(NamedTuple):
    """One declared setting: its dotted key, doc, rule, and default (MISSING for a free-form key,
    whose preset states it)."""

    key: str
    doc: str
    rule: Rule | None
    default: Any


def declared(schema: type, prefix: str = "") -> Iterator[Declared]:
    """Every setting `schema` declares, nested dataclasses and free-form keys included, in order."""
    for field in dataclasses.fields(schema):
        key = prefix + field.name
        default = field.default_factory() if callable(field.default_factory) else field.default
        yield Declared(key, field.metadata.get("doc", ""), field.metadata.get("rule"), default)
        for sub, spec in field.metadata.get("keys", {}).items():
            yield Declared(f"{key}.{sub}", spec.doc, spec.rule, MISSING)
        if dataclasses.is_dataclass(field.type):
            yield from declared(field.type, f"{key}.")


def all_declared() -> Iterator[Declared]:
    for prefix, schema in prefixed_schemas():
        yield from declared(schema, prefix)


def rules() -> dict[str, Rule]:
    """The rule of every setting that has one, in prefixed_schemas' order."""
    found: dict[str, Rule] = {}
    for setting_ in all_declared():
        if setting_.rule is not None:
            found.setdefault(setting_.key, setting_.rule)
    return found


def schema_keys() -> frozenset[str]:
    """Every dotted key the schemas declare (free-form dict keys excluded): the keys rnnsweep
    reads."""
    keys = set()
    for prefix, schema in prefixed_schemas():
        if prefix:
            keys.add(prefix.rstrip("."))
        keys |= {f"{prefix}{key}" for key in fields_of(schema)}
    return frozenset(keys)


def fields_of(schema, prefix: str = ""):
    for field in dataclasses.fields(schema):
        yield f"{prefix}{field.name}"
        if dataclasses.is_dataclass(field.type):
            yield from fields_of(field.type, f"{prefix}{field.name}.")
