"""The package's layers: nothing heavy before the config is checked, no upward import, one list of
allowed values shared by the checks and the code that builds from them."""

import subprocess
import sys

import pytest

from tests.conftest import BIN, REPO

HEAVY = ("tensorflow", "keras", "mlflow", "matplotlib", "gensim")
LIGHT_MODULES = [
    "pipeline",
    "pipeline.config",
    "pipeline.cli.sweep",
    "pipeline.cli.train",
    "pipeline.cli.lr_find",
    "pipeline.cli.predict",
    "pipeline.cli.ui",
    "pipeline.cli.dashboard",
    "pipeline.cli.vectors",
]


def imported_modules(*python_args: str) -> tuple[set[str], subprocess.CompletedProcess]:
    """The top-level packages a Python process imported (from -X importtime), and the process."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *python_args], capture_output=True, text=True, cwd=REPO
    )
    names = {
        line.split("|")[-1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return names, result


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_importing_pipeline_its_config_and_its_commands_loads_nothing_heavy(module):
    names, result = imported_modules("-c", f"import {module}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "pipeline" in names and "hydra" in names or module == "pipeline"
    assert not names & set(HEAVY), f"import {module} loaded {sorted(names & set(HEAVY))}"


def test_the_chart_process_draws_without_tensorflow():
    """Issue 28: the chart process printed TensorFlow's oneDNN lines: the report layer imported Keras."""
    names, result = imported_modules(
        "-c", "import pipeline.report.charts, pipeline.report.sweep_report"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "matplotlib" in names and not names & {"tensorflow", "keras"}, sorted(
        names & {"tensorflow", "keras"}
    )


def test_a_bad_value_is_answered_before_tensorflow_loads():
    names, result = imported_modules("-m", "pipeline.cli.train", "train.epochs=0")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert errors == ["error: train.epochs=0; it must be an integer >= 1"]
    assert not names & set(HEAVY), sorted(names & set(HEAVY))


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            "search.space.learning_rate.low=-1",
            "error: search.space.learning_rate: log=true needs low > 0, got low=-1",
        ),
        (
            "search.register_as=a/b",
            "error: search.register_as='a/b'; it must be null or a model name without '/' or ':'",
        ),
        (
            "search.register_as=..champ",
            "error: search.register_as='..champ'; it must be null or a model name without "
            "'/' or ':'",
        ),
        (
            "search.register_as=.",
            "error: search.register_as='.'; it must be null or a model name without '/' or ':'",
        ),
        (
            "search.portfolio=[{bodi: gru}]",
            "error: search.portfolio[0].bodi: not an entry of search.space; allowed: "
            "body, units, dropout, learning_rate",
        ),
    ],
)
def test_a_bad_sweep_setting_is_answered_before_tensorflow_loads(bad, message):
    """Issue 28: the space, registered name and portfolio were checked after 6 s of TensorFlow imports."""
    names, result = imported_modules(
        "-m", "pipeline.cli.sweep", "data=sentences", "search=quick", bad
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert errors == [message]
    assert not names & set(HEAVY), sorted(names & set(HEAVY))


def test_a_setting_rnn_predict_does_not_read_is_one_line_at_once():
    """Issue 31: rnn-predict had no check, so +predict.foo=1 passed unnoticed (after 6 s of imports)."""
    names, result = imported_modules(
        "-m", "pipeline.cli.predict", "+predict.foo=1", "predict.texts=[fine]"
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert errors == [
        "error: predict.foo: rnn-predict reads no such setting; it reads predict.model, "
        "predict.texts, predict.input, predict.column, predict.output"
    ]
    assert not names & set(HEAVY), sorted(names & set(HEAVY))


@pytest.mark.parametrize(
    "bad, message",
    [
        ("+foo=1", "error: foo is not a setting rnnsweep reads; allowed at the top: "),
        ("+paths.foo=1", "error: paths.foo is not a setting rnnsweep reads; allowed under paths: "),
        ("predict.column=[1]", "error: predict.column=[1]; it must be the name of a column"),
        ("predict.texts=fine", "error: predict.texts='fine'; it must be a list of texts, e.g. "),
    ],
)
def test_rnn_predict_checks_its_whole_config_like_the_other_commands(bad, message):
    """Issue 31: rnn-predict had no schema: +foo=1 and +paths.foo=1 passed unnoticed, and a
    column that is no name reached pandas."""
    texts = [] if bad.startswith("predict.texts") else ["predict.texts=[fine]"]
    names, result = imported_modules("-m", "pipeline.cli.predict", *texts, bad)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert len(errors) == 1 and errors[0].startswith(message), errors
    assert not names & set(HEAVY), sorted(names & set(HEAVY))


def test_help_is_answered_before_tensorflow_loads():
    names, result = imported_modules("-m", "pipeline.cli.sweep", "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "search" in result.stdout
    assert not names & set(HEAVY), sorted(names & set(HEAVY))


def test_the_layers_contract_holds():
    """pyproject.toml's import-linter contracts: each layer imports only those below it, and the
    config layer nothing heavy (CI runs lint-imports too)."""
    result = subprocess.run([BIN / "lint-imports"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_the_config_layer_allows_what_the_loaders_and_the_zoo_build():
    from pipeline.config import choices
    from pipeline.data.texts import LOADERS
    from pipeline.models.zoo import RECURRENT_LAYERS

    assert tuple(LOADERS) == choices.LOADER_NAMES
    assert tuple(RECURRENT_LAYERS) == choices.RECURRENT_BODIES
