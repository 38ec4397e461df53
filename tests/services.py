"""Real servers for the multi-worker tests: a PostgreSQL cluster and an `mlflow server`, on loopback only.

Both are started from the Debian packages (`.ci/run` installs postgresql) in temporary directories
and stopped afterwards; nothing is mocked.
"""

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from tests.helpers.http import wait_for_http

USER, PASSWORD = "sweeper", "s3cret-pw"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    if shutil.which("initdb"):
        return Path(shutil.which("initdb")).parent
    raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (see .ci/run)")


def as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its programs as the postgres account then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextlib.contextmanager
def postgres_server(databases: tuple[str, ...]):
    """A fresh cluster on 127.0.0.1 with password login; yields `postgresql://USER:PASSWORD@127.0.0.1:PORT`."""
    binaries, port = postgres_bin(), free_port()
    folder = Path(tempfile.mkdtemp(prefix="rnnsweep-pg-"))
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(folder, account.pw_uid, account.pw_gid)
    password_file = folder / "password"
    password_file.write_text(PASSWORD)
    run = lambda *command: subprocess.run(
        as_postgres_user([*command]), check=True, capture_output=True, text=True
    )
    if os.geteuid() == 0:
        os.chown(password_file, account.pw_uid, account.pw_gid)
    run(
        binaries / "initdb",
        "-D",
        folder / "data",
        "-U",
        USER,
        "--auth=scram-sha-256",
        f"--pwfile={password_file}",
    )
    options = f"-h 127.0.0.1 -p {port} -k {folder} -c max_connections=100"
    run(
        binaries / "pg_ctl",
        "-D",
        folder / "data",
        "-l",
        folder / "server.log",
        "-o",
        options,
        "-w",
        "start",
    )
    try:
        for database in databases:
            subprocess.run(
                [binaries / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", USER, database],
                check=True,
                capture_output=True,
                env={**os.environ, "PGPASSWORD": PASSWORD},
            )
        yield f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}", folder / "server.log"
    finally:
        run(binaries / "pg_ctl", "-D", folder / "data", "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, log_file: Path):
    """`mlflow server` over `backend_uri`, serving artifacts from `artifacts`; yields its http URL."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_uri,
        "--artifacts-destination",
        str(artifacts),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
    ]
    with open(log_file, "w") as log:
        server = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # as rnn-ui
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", server, log_file, seconds=180)
        yield url
    finally:
        if server.poll() is None:
            os.killpg(server.pid, 15)
            server.wait(30)
