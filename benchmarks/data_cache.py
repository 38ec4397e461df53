"""Data preparation with a cold and a warm vector cache: prints a markdown table.

    python benchmarks/data_cache.py                      # IMDB and sentences, full size
    python benchmarks/data_cache.py --tiny               # CI: the sentences only

The archives come from the download cache (RNNSWEEP_CACHE_DIR or ~/.cache/rnnsweep/downloads);
the vectors go to a fresh temporary cache, so the first preparation is always a miss.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from pipeline import CONFIG_DIR
from pipeline.data.texts import prepare_data


def measure(dataset: str, downloads: Path) -> tuple[float, float, dict]:
    with tempfile.TemporaryDirectory() as cache:
        os.symlink(downloads, Path(cache) / "downloads")
        with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
            cfg = compose("train", overrides=[f"data={dataset}"])
        started = time.perf_counter()
        cold = prepare_data(cfg.data, cache)
        cold_seconds = time.perf_counter() - started
        started = time.perf_counter()
        warm = prepare_data(cfg.data, cache)
        warm_seconds = time.perf_counter() - started
        assert (cold.cache_hit, warm.cache_hit) == (False, True)
        return cold_seconds, warm_seconds, warm.sizes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="sentences only (seconds)")
    args = parser.parse_args()
    cache_dir = Path(os.environ.get("RNNSWEEP_CACHE_DIR", "~/.cache/rnnsweep")).expanduser()
    datasets = ["sentences"] if args.tiny else ["imdb", "sentences"]
    print(
        "| data | sizes (train/val/test) | cold: read + vectorize (s) | warm: cache hit (s) | speed-up |"
    )
    print("|---|---|---|---|---|")
    for dataset in datasets:
        cold, warm, sizes = measure(dataset, cache_dir / "downloads")
        print(
            f"| {dataset} | {sizes['train']}/{sizes['val']}/{sizes['test']} | {cold:.2f} | {warm:.3f} | {cold / warm:.0f}x |"
        )


if __name__ == "__main__":
    main()
