"""The sweep's winner in the Model Registry as NAME@champion, served by a real `mlflow models serve`."""

import os
import re
import signal

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline.tracking import mlflow_runs
from pipeline.core.errors import InputError
from pipeline.tracking.claims import Claims
from pipeline.tracking.registry import CHAMPION, register_winner
from pipeline.search.sweep import compose
from tests.helpers.sweeps import runs_of, study_of, sweep

TEXTS = ["a great film, I loved every minute", "dull plot and awful acting", "the food was cold"]
from tests.helpers.serving import post, serve


@pytest.mark.slow
def test_the_winner_is_registered_as_champion_and_a_real_server_answers(sweep_overrides, tmp_path):
    name = f"champion-test-{tmp_path.name}"
    overrides = [
        *sweep_overrides,
        "search=quick",
        "search.pruner=none",
        f"search.register_as={name}",
    ]
    assert sweep(overrides) == 0
    cfg = compose(overrides)
    best = study_of(overrides).best_trial
    client = MlflowClient(cfg.tracking.uri)
    version = client.get_model_version_by_alias(name, CHAMPION)
    assert (
        version.source == f"models:/{best.user_attrs['mlflow_model_id']}"
        and version.run_id == best.user_attrs["mlflow_run_id"]
    )
    assert version.description.startswith(
        f"Trial {best.number} of study {cfg.search.study_name}: val_accuracy "
    )
    assert re.search(r" over \d+ seeds?; test accuracy 0\.\d{4} ± ", version.description), (
        version.description
    )
    assert "Settings: body=" in version.description
    study = study_of(overrides)
    assert study.user_attrs["champion"] == f"trial {best.number}: models:/{name}@{CHAMPION}", (
        "optuna-dashboard"
    )
    assert study.metric_names == ["val_accuracy"], "optuna-dashboard's axis names the objective"
    mlflow.set_tracking_uri(cfg.tracking.uri)
    champion = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
    assert champion.metadata.model_id == best.user_attrs["mlflow_model_id"]
    expected = champion.predict(pd.Series(TEXTS))

    _, [parent], children = runs_of(overrides)
    note = parent.data.tags[mlflow_runs.NOTE]
    assert (
        f"**Winner: trial {best.number}**" in note
        and f"`models:/{name}@{CHAMPION}`" in note
        and "| parameter | value |" in note
    )
    assert parent.data.tags["registered_model"] == f"models:/{name}@{CHAMPION}"
    assert all(child.data.tags[mlflow_runs.NOTE].startswith("Trial ") for child in children)

    server, url, log = serve(f"models:/{name}@{CHAMPION}", cfg.tracking.uri, tmp_path)
    try:
        answer = post(url, {"inputs": TEXTS})["predictions"]
        assert len(answer) == 3
        np.testing.assert_allclose(
            [row["probability"] for row in answer], expected["probability"], atol=1e-6
        )
        assert [row["label"] for row in answer] == expected["label"].tolist()
        records = post(url, {"dataframe_records": [{"text": text} for text in TEXTS]})[
            "predictions"
        ]
        assert records == answer
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
        log.close()


@pytest.mark.slow  # a real-data end-to-end sweep: CI runs it, the quick loop does not
def test_the_same_winner_again_adds_no_version_and_null_registers_nothing(
    sweep_overrides, tmp_path, capfd
):
    name = f"again-{tmp_path.name}"
    overrides = [
        *sweep_overrides,
        "model=pooling",
        "search=quick",
        "search.space.body.choices=[pooling]",
        "~search.space.units",
        "search.n_trials=1",
        "search.pruner=none",
        f"search.register_as={name}",
    ]
    assert sweep(overrides) == 0
    assert "Successfully registered" not in capfd.readouterr().err, (
        "MLflow's own lines go to the log file"
    )
    cfg, trial = compose(overrides), study_of(overrides).best_trial
    assert (
        register_winner(cfg.search, trial, Claims("sqlite:///:memory:"))
        == f"models:/{name}@{CHAMPION}"
    )
    client = MlflowClient(cfg.tracking.uri)
    assert [str(v.version) for v in client.search_model_versions(f"name='{name}'")] == ["1"]
    assert (
        register_winner(
            compose([*overrides, "search.register_as=null"]).search,
            trial,
            Claims("sqlite:///:memory:"),
        )
        is None
    )


@pytest.mark.parametrize(
    "bad", ["search.register_as=a/b", "search.register_as=models:x", "search.register_as=''"]
)
def test_a_bad_registered_name_is_named_before_anything_runs(sweep_overrides, bad):
    with pytest.raises(
        InputError, match=r"search.register_as=.*it must be null or a model name without '/' or ':'"
    ):
        sweep([*sweep_overrides, "search=quick", bad])
