"""`mlflow models serve` started for a test, and requests to it."""

import json
import os
import subprocess
import sys
import urllib.request

from tests.helpers.http import wait_for_http
from tests.services import free_port


def serve(model_uri: str, tracking_uri: str, folder):
    """`mlflow models serve` on 127.0.0.1 (local environment); yields its URL once /ping answers."""
    shim = folder / "bin"  # mlflow starts `uvicorn` from PATH: make it this interpreter's
    shim.mkdir()
    (shim / "uvicorn").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m uvicorn "$@"\n')
    (shim / "uvicorn").chmod(0o755)
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}",
    }
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    log = open(folder / "serve.log", "w")
    server = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/ping", server, folder / "serve.log", seconds=180)
    return server, url, log


def post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())
