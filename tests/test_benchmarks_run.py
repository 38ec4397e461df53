"""Every benchmark runs in its tiny mode and exits 0. Their figures are measured in full runs only.

They run inside the suite, so that the test processes fill the cores while others wait on servers.
"""

import os
import subprocess
import sys

import pytest
from tests.conftest import REPO

# longest first (seconds alone, 2 cores): the test processes take them in this order
TINY_BENCHMARKS = [
    "sweep_efficiency",
    "vectors",
    "steady_speed",
    "cv_trust",
    "workers",
    "tpe_settings",
    "portfolio",
    "overhead",
    "sweep_memory",
    "throughput",
    "recurrent_steps",
    "data_cache",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", TINY_BENCHMARKS)
def test_the_benchmark_runs_in_its_tiny_mode(name, data_cache, tmp_path):
    log = tmp_path / f"{name}.log"
    with open(log, "w") as out:
        finished = subprocess.run(
            [sys.executable, f"benchmarks/{name}.py", "--tiny"],
            cwd=REPO,
            env={**os.environ, "RNNSWEEP_CACHE_DIR": str(data_cache)},
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=900,
        )
    assert finished.returncode == 0, log.read_text()[-6000:]
