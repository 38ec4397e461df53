"""rnn-dashboard: optuna-dashboard on loopback over the study a sweep made."""

import json
import os
import signal
import subprocess

import pytest

from pipeline.config import check
from pipeline.cli.dashboard import dashboard_command
from pipeline.core.errors import InputError
from pipeline.search.sweep import compose
from tests.conftest import BIN
from tests.services import free_port
from tests.helpers.sweeps import sweep
from tests.helpers.http import wait_for_http

FAST = [
    "model=pooling",
    "search=quick",
    "search.space.body.choices=[pooling]",
    "~search.space.units",
    "search.n_trials=1",
    "search.pruner=none",
    "train.log_model=false",
]


@pytest.mark.slow
def test_rnn_dashboard_answers_on_loopback_over_the_sweeps_study(sweep_overrides, tmp_path):
    overrides = [*sweep_overrides, *FAST]
    assert sweep(overrides) == 0
    port = free_port()
    command = [
        BIN / "rnn-dashboard",
        f"search.dashboard_port={port}",
        *[o for o in overrides if o.startswith("paths.")],
    ]
    with open(tmp_path / "dashboard.log", "w") as log:
        server = subprocess.Popen(
            command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        answer = wait_for_http(
            f"http://127.0.0.1:{port}/api/studies", server, tmp_path / "dashboard.log"
        )
        studies = json.loads(answer)["study_summaries"]
        assert [study["study_name"] for study in studies] == [compose(overrides).search.study_name]
        assert "--host 127.0.0.1" in (tmp_path / "dashboard.log").read_text()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def test_rnn_dashboard_without_a_study_or_with_a_bad_port_is_one_line(sweep_overrides):
    with pytest.raises(
        InputError,
        match=r"no study storage at .*optuna.db \(paths.mlruns_dir, search.storage\): run rnn-sweep first",
    ):
        dashboard_command(compose(sweep_overrides))
    with pytest.raises(
        InputError, match=r"search.dashboard_port=0; it must be an integer from 1 to 65535"
    ):
        check(
            compose([*sweep_overrides, "search.dashboard_port=0"])
        )  # rnn-dashboard's check, as every entry point's
