"""The sweep's pages in a real browser: rnn-ui and rnn-dashboard over a small sweep's stores, each page
the sweep links to opened in headless Chromium (installed by tests/setup-browser.sh when missing), its
rendered text checked and a screenshot kept (in the test's tmp_path; RNNSWEEP_SCREENSHOTS=DIR copies
them there to look at)."""

import html
import json
import os
import re
import shutil
import signal
import subprocess
from contextlib import contextmanager

import pytest
from tests.conftest import BIN, CHARTS, REPO
from tests.services import free_port
from tests.helpers.sweeps import runs_of, study_of, sweep
from tests.helpers.http import wait_for_http

CHROMIUM = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--window-size=1920,1400",
    "--virtual-time-budget=30000",
]


def chromium() -> str:
    if not shutil.which("chromium"):
        subprocess.run(["bash", REPO / "tests" / "setup-browser.sh"], check=True)
    return shutil.which("chromium")


def page(url: str, screenshot) -> tuple[str, str]:
    """The page's DOM after its JavaScript ran, and its text; its screenshot saved to `screenshot`."""
    dom = subprocess.run(
        [chromium(), *CHROMIUM, f"--screenshot={screenshot}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=screenshot.parent,
    ).stdout
    text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", dom, flags=re.S)
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text)))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", screenshot
    keep = os.environ.get("RNNSWEEP_SCREENSHOTS")
    if keep:
        shutil.copy(screenshot, keep)
    return dom, text


@contextmanager
def serving(command: list, health: str, log_file):
    with open(log_file, "w") as log:
        server = subprocess.Popen(
            command,
            cwd=log_file.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_http(health, server, log_file)
        yield
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def printed_links(out: str) -> dict[str, str]:
    """The links the sweep's last lines give: the parent run, its trials and their curves."""
    lines = out.strip().splitlines()
    return {
        "parent": next(line for line in lines if "then open " in line)
        .split("then open ")[-1]
        .strip(),
        "trials": next(line for line in lines if "its trials, best first: " in line)
        .split(": ", 1)[-1]
        .strip(),
        "curves": next(line for line in lines if "their curves: " in line)
        .split(": ", 1)[-1]
        .strip(),
    }


@pytest.mark.slow
def test_the_sweeps_pages_read_well_in_a_real_browser(sweep_overrides, tmp_path, capsys):
    name = f"browser-{tmp_path.name}"
    overrides = [
        *sweep_overrides,
        CHARTS,  # the winner's page as a user sees it, its learning_curves.png included
        "search=quick",
        "search.n_trials=11",
        "search.space.body.choices=[pooling]",
        "~search.space.units",
        "search.pruner_startup_trials=2",
        "search.pruner_warmup_epochs=0",
        "search.confirm_top_k=1",
        "search.confirm_seeds=2",
        f"search.register_as={name}",
        f"tracking.uri=sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
    ]  # rnn-ui serves the local store
    assert sweep(overrides) == 0
    ui_port, dashboard_port = free_port(), free_port()
    links = {
        key: link.replace(":5000/", f":{ui_port}/")
        for key, link in printed_links(capsys.readouterr().out).items()
    }
    client, [parent], children = runs_of(overrides)
    trial_runs = [c for c in children if "confirm" not in c.data.tags]
    assert len(trial_runs) == 11 > 10, (
        "more trials than the 10 runs MLflow's charts draw unless told"
    )
    assert links["parent"].endswith(
        f"/#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id}"
        "?workflowType=machine_learning"
    )
    best = str(int(parent.data.metrics["best_trial"]))
    winner = next(
        c
        for c in children
        if c.data.tags.get("trial_number") == best and "confirm" not in c.data.tags
    )
    paths = [f"paths.mlruns_dir={tmp_path / 'mlruns'}", f"paths.log_dir={tmp_path / 'logs'}"]
    ui = [BIN / "rnn-ui", f"tracking.ui_port={ui_port}", *paths]
    dashboard = [BIN / "rnn-dashboard", f"search.dashboard_port={dashboard_port}", *paths]
    with (
        serving(ui, f"http://127.0.0.1:{ui_port}/health", tmp_path / "ui.log"),
        serving(dashboard, f"http://127.0.0.1:{dashboard_port}/", tmp_path / "dashboard.log"),
    ):
        _, parent_page = page(links["parent"], tmp_path / "1-parent-run.png")
        _, trials_page = page(links["trials"], tmp_path / "2-trials.png")
        _, winner_page = page(
            links["parent"].replace(parent.info.run_id, winner.info.run_id),
            tmp_path / "3-winner-run.png",
        )
        _, version_page = page(
            f"http://127.0.0.1:{ui_port}/#/models/{name}/versions/1",
            tmp_path / "4-model-version.png",
        )
        curves_dom, _ = page(links["curves"], tmp_path / "5-compare-charts.png")
        _, study_page = page(
            f"http://127.0.0.1:{dashboard_port}/dashboard/studies/1",
            tmp_path / "6-optuna-dashboard.png",
        )
        _, note_page = page(
            f"http://127.0.0.1:{dashboard_port}/dashboard/studies/1/note",
            tmp_path / "7-study-note.png",
        )

    assert parent.info.run_name in parent_page and f"Winner: trial {best}" in parent_page
    assert (
        f"Registered as models:/{name}@champion" in parent_page
        and "All trials of the study, best first" in parent_page
    )
    assert "sentences-train" in parent_page and "Datasets None" not in parent_page, "the dataset"
    assert "| parameter | value |" not in parent_page, (
        "the description's Markdown table is rendered"
    )

    assert "best_val_accuracy" in trials_page and "test_accuracy" in trials_page, "metric columns"
    assert (
        "optimizer.learning_rate" in trials_page
        and "trial_state" in trials_page
        and "PRUNED" in trials_page
    )
    assert all(run.info.run_name in trials_page for run in trial_runs), "every trial listed"
    assert not any(c.info.run_name in trials_page for c in children if "confirm" in c.data.tags), (
        "trials only"
    )
    assert parent.info.run_name not in trials_page
    pruned = [c for c in children if c.data.tags.get("trial_state") == "PRUNED"]
    assert pruned and all(c.info.run_name.endswith("-pruned") for c in pruned), (
        "pruned trials say so by name"
    )

    assert "Logged models (1)" in winner_page and f"Registered models {name}" in winner_page, (
        "the winner: its model"
    )
    assert f"Trial {best} of quick-sentences" in winner_page, "its description"
    assert winner.info.run_name.startswith(f"t{best}-") and "-lr" in winner.info.run_name, (
        "a name that says what it trained"
    )

    assert (
        f"Trial {best} of study quick-sentences: val_accuracy " in version_page
        and "over 3 seeds" in version_page
    )
    assert "test accuracy" in version_page and "champion" in version_page

    view = json.loads(
        client.get_experiment(parent.info.experiment_id).tags[
            "mlflow.sharedViewState.quick-sentences"
        ]
    )
    assert view["runsHiddenMode"] == "SHOW_ALL"
    assert "VisibleOffIcon" not in curves_dom, "no run hidden from the charts"

    assert "val_accuracy" in study_page and "Objective 0" not in study_page, "the metric's name"
    assert f"Champion: trial {best}" in note_page and f"models:/{name}@champion" in note_page
    assert "Best Trial ranks each trial on its own training seed" in note_page
    assert len(study_of(overrides).trials) == 11
