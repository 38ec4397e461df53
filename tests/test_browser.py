"""The MLflow UI in a real browser: rnn-ui over a tiny sweep's store, the printed parent-run link opened in
headless Chromium (installed by tests/setup-browser.sh when missing), the rendered page checked, a screenshot kept."""

import html
import os
import re
import shutil
import signal
import subprocess

import pytest
from tests.conftest import BIN, REPO
from tests.services import free_port
from tests.helpers.sweeps import runs_of, sweep
from tests.helpers.http import wait_for_http

CHROMIUM = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1600,2400",
            "--virtual-time-budget=30000"]


def chromium() -> str:
    if not shutil.which("chromium"):
        subprocess.run(["bash", REPO / "tests" / "setup-browser.sh"], check=True)
    return shutil.which("chromium")


def rendered_text(browser: str, url: str, screenshot) -> str:
    """The page's text after its JavaScript ran; the screenshot of the same page saved to `screenshot`."""
    dom = subprocess.run([browser, *CHROMIUM, "--dump-dom", url], capture_output=True, text=True, timeout=180).stdout
    subprocess.run([browser, *CHROMIUM, f"--screenshot={screenshot}", url], capture_output=True, timeout=180)
    text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text)))


@pytest.mark.slow
def test_the_printed_parent_run_link_shows_the_sweep_in_a_real_browser(sweep_overrides, tmp_path, capsys):
    overrides = [*sweep_overrides, "search=quick", "search.pruner=none", f"search.register_as=browser-{tmp_path.name}",
                 f"tracking.uri=sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"]  # rnn-ui serves the local store
    assert sweep(overrides) == 0
    link = capsys.readouterr().out.strip().splitlines()[-2].split("then open ")[-1].strip()
    _, [parent], children = runs_of(overrides)
    port = free_port()
    link = link.replace(":5000/", f":{port}/")
    assert link.endswith(f"/#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id}?workflowType=machine_learning")
    command = [BIN / "rnn-ui", f"tracking.ui_port={port}", f"paths.mlruns_dir={tmp_path / 'mlruns'}", f"paths.log_dir={tmp_path / 'logs'}"]
    with open(tmp_path / "ui.log", "w") as log:
        ui = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", ui, tmp_path / "ui.log")
        page = rendered_text(chromium(), link, tmp_path / "parent-run.png")
        best = str(int(parent.data.metrics["best_trial"]))
        winner = next(c for c in children if c.data.tags.get("trial_number") == best and "confirm" not in c.data.tags)
        trial_link = link.replace(parent.info.run_id, winner.info.run_id)
        trial_page = rendered_text(chromium(), trial_link, tmp_path / "winner-run.png")
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(30)
    assert parent.info.run_name in page and "Winner: trial" in page and "Registered as models:/browser-" in page
    assert all(child.info.run_name in page for child in children), "the child runs are listed"
    assert "sentences-train" in page and "Datasets None" not in page, "the dataset"
    assert "Logged models (1)" in trial_page and "Registered models browser-" in trial_page, "the winner's page: its model"
    assert f"Trial {best} of quick-sentences" in trial_page, "its description"
    assert winner.info.run_name.startswith(f"t{best}-") and "-lr" in winner.info.run_name, "a name that says what it trained"
    for screenshot in ("parent-run.png", "winner-run.png"):
        assert (tmp_path / screenshot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "trial-page.txt").write_text(trial_page)
