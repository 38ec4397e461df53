"""TensorFlow imported without its C++ start-up lines: what `import pipeline` does first.

TensorFlow 2.21 prints absl INFO lines when it loads (`oneDNN custom operations are on ...`, after
`WARNING: All log messages before absl::InitializeLog() is called are written to STDERR`), twice,
whatever TF_CPP_MIN_LOG_LEVEL says. They would precede every `error: ...` line and fill cron logs.
TensorFlow is imported here with file descriptor 2 caught; every other line it printed is passed on
unchanged.
"""

import os
import re
import sys
import tempfile

# set to 1 by a process that never runs a model (the chart process)
WITHOUT_TENSORFLOW = "RNNSWEEP_WITHOUT_TENSORFLOW"
ABSL_INFO = re.compile(
    rb"^(I\d{4} [\d:.]+ +\d+ \S+:\d+\] |WARNING: All log messages before absl::InitializeLog\(\))"
)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow, dropping its absl INFO lines; nothing changes when TF_CPP_MIN_LOG_LEVEL
    asks for INFO."""
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0").strip() in (
        "",
        "0",
    ):
        return
    if os.environ.get(WITHOUT_TENSORFLOW) == "1":  # 0.5 GB and seconds of start-up it would not use
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    # no stderr file descriptor: nothing to keep clean
    except (AttributeError, OSError, ValueError):
        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [
                line
                for line in caught.read().splitlines(keepends=True)
                if not ABSL_INFO.match(line)
            ]
            if kept:
                os.write(2, b"".join(kept))
