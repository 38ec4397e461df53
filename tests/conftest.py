"""Tests compose the real config from conf/ and shrink it here (small data, one epoch, temporary stores).

Real data comes from ../shared/data (or $RNNSWEEP_SHARED_DATA), linked into a temporary download
cache exactly where the product looks for its downloads; no test touches the network.
"""

import os
import re
import sys
from pathlib import Path

import pytest
from hydra import initialize_config_dir

from pipeline import CONFIG_DIR
from pipeline.config import compose

pytest_plugins = ["tests.cpu_time"]  # the processor seconds each test used, summed up at the end


def pytest_collection_modifyitems(items):
    """The modules that hold slow tests first: with one test process per core, a long test that
    starts last leaves the other core idle until it ends (longest first spreads jobs best). Each
    module's tests stay together, so its module-scoped fixtures are made once per test process."""
    with_slow = {item.module for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module not in with_slow)


REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("RNNSWEEP_SHARED_DATA", REPO.parent / "shared" / "data"))
SHRINK = ["train.epochs=1", "train.verbose=0", "train.batch_size=64", "train.log_model=false"]
BIN = Path(sys.executable).parent


def compose_config(*overrides: str):
    """rnn-train's config, as the product composes it (a value of the wrong type: one InputError line)."""
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        return compose(list(overrides), "train", resolve=False)


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory) -> Path:
    """A cache dir whose downloads/ holds the real archives, as an offline user would place them."""
    if not (SHARED_DATA / "aclImdb_v1.tar.gz").is_file():
        pytest.fail(f"real data not found in {SHARED_DATA}; set RNNSWEEP_SHARED_DATA")
    cache = tmp_path_factory.mktemp("cache")
    downloads = cache / "downloads"
    downloads.mkdir()
    (downloads / "aclImdb_v1.tar.gz").symlink_to(SHARED_DATA / "aclImdb_v1.tar.gz")
    (downloads / "sentiment_labelled_sentences").symlink_to(
        SHARED_DATA / "sentiment_labelled_sentences"
    )
    return cache


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory) -> str:
    """One sqlite MLflow store for the session (creating its tables takes a while)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlruns') / 'mlflow.db'}"


@pytest.fixture
def make_cfg(tmp_path, data_cache, mlflow_uri):
    """The real composed config, shrunk: the sentences data, one epoch, temporary stores."""

    def make(*overrides: str):
        return compose_config(
            "data=sentences",
            *SHRINK,
            f"paths.cache_dir={data_cache}",
            f"paths.mlruns_dir={tmp_path / 'mlruns'}",
            f"paths.log_dir={tmp_path / 'logs'}",
            f"tracking.uri={mlflow_uri}",
            *overrides,
        )

    return make


@pytest.fixture(autouse=True)
def _forget_mlflow_uri():
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; keep one test's store out of the next."""
    yield
    os.environ.pop("MLFLOW_TRACKING_URI", None)


SWEEP_SHRINK = [
    "data=sentences",
    "data.subset=400",
    "data.max_len=20",
    "train.epochs=2",
    "train.batch_size=64",
    "search.n_trials=3",
    "search.confirm_top_k=0",
    "search.show_progress_bar=false",
    "search.heartbeat_seconds=1",
    "search.grace_seconds=2",
    "search.n_workers=1",  # trial order and counts are asserted; tests/test_n_workers.py runs several workers
    "search.worker_max_trials=null",  # every trial in the test's process, however many (tests/test_n_workers.py recycles)
    "search.cv_folds=1",  # one validation split: tests/test_small_data.py cross-validates
    # no chart process (4 processor seconds a sweep): CHARTS where a test looks at charts or processes
    "tracking.trial_charts=false",
]
CHARTS = "tracking.trial_charts=true"  # each trial's chart drawn by a chart process, as by default


@pytest.fixture
def sweep_overrides(tmp_path, data_cache, mlflow_uri, request):
    """Command-line overrides of a tiny sweep with its own study database and MLflow experiment."""
    experiment = re.sub(r"\W+", "-", request.node.name)[:100]
    return [
        *SWEEP_SHRINK,
        f"paths.cache_dir={data_cache}",
        f"paths.mlruns_dir={tmp_path / 'mlruns'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"tracking.uri={mlflow_uri}",
        f"tracking.experiment={experiment}",
    ]
