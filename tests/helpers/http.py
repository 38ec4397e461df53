"""Waiting for a server this test started."""

import subprocess
import time
import urllib.request
from pathlib import Path


def wait_for_http(url: str, process: subprocess.Popen, log: Path, seconds: float = 120) -> bytes:
    """The body of `url`'s first 200 answer; fails with the end of `log` if `process` exits first or
    `seconds` pass."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return answer.read()
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            state = f"exited {process.returncode}" if process.poll() is not None else "timed out"
            raise AssertionError(
                f"{url} did not answer ({state}):\n{Path(log).read_text()[-3000:]}"
            )
        time.sleep(0.5)
