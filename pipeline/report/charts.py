"""Each trial's learning-curve chart, drawn off the trial's path by a chart process.

Drawing the PNG took 0.34 s of a sweep trial's ~1 s outside model.fit (benchmarks/overhead.py). In a
thread of the trial's process matplotlib holds the GIL and slowed the next trial's own logging, so a
separate process draws it: `python -P -m pipeline.report.charts` (-P: a `pipeline/` folder where the
user stands is not imported instead), which imports matplotlib and MLflow, not TensorFlow. The
invoking process tells it which runs finished (one JSON line each on its stdin, written by a thread,
so a chart process that falls behind never holds up the sweep); it reads the run's per-epoch
metrics, title and chance level from MLflow, draws, and logs `learning_curves.png` to the run. It
ignores SIGINT and SIGTERM: the invoker stops the sweep and then closes its stdin, and the process
draws what is left and exits. It also exits, at once, when its invoker is gone.
"""

import json
import logging
import math
import os
import queue
import subprocess
import sys
import threading
import time

from optuna.trial import FrozenTrial

from pipeline.core import signals
from pipeline.core.names import Attr, Fig
from pipeline.core.redaction import redact
from pipeline.core.startup import WITHOUT_TENSORFLOW

log = logging.getLogger(__name__)
ARTIFACT = "learning_curves.png"
CURVES = ("loss", "val_loss", "accuracy", "val_accuracy", "grad_norm", "update_ratio")
# at the end of the trials, how long the charts still queued may take before they are given up
CLOSE_SECONDS = 120
# the same when a signal or an error stopped the sweep (systemd waits 90 s in all)
STOPPED_CLOSE_SECONDS = 10


class Charts:
    """The invoker's side: starts the chart process, sends each finished trial's run once, waits for
    it at the end."""

    def __init__(self):
        self.sent, self.orders = set(), queue.SimpleQueue()
        # the chart process ignores them from its first line: only the invoker hears them
        with signals.held_for_helpers():
            self.process = subprocess.Popen(
                [sys.executable, "-P", "-m", "pipeline.report.charts", str(os.getpid())],
                stdin=subprocess.PIPE,
                text=True,
                env=os.environ | {WITHOUT_TENSORFLOW: "1"},
            )
        self.writer = threading.Thread(target=self.write, daemon=True, name="charts")
        self.writer.start()

    def send(self, trial: FrozenTrial, tracking_uri: str) -> None:
        """Have the trial's chart drawn, once, if it trained (it has a run and an epoch)."""
        run_id = trial.user_attrs.get(Attr.mlflow_run_id)
        if (
            run_id in self.sent
            or not run_id
            or not trial.state.is_finished()
            or Fig.epochs_run not in trial.user_attrs
        ):
            return
        self.sent.add(run_id)
        self.orders.put({"tracking_uri": tracking_uri, "run_id": run_id})

    def write(self) -> None:
        """The writer thread: orders to the chart process's stdin (a full pipe blocks this thread,
        not the sweep)."""
        gone = False
        while (order := self.orders.get()) is not None:
            if gone:
                continue
            try:
                self.process.stdin.write(json.dumps(order) + "\n")
                self.process.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                gone = True
                log.warning(
                    "the chart process is gone (exit code %s): from run %s on, trials have no %s",
                    self.process.poll(),
                    order["run_id"],
                    ARTIFACT,
                )
        try:
            self.process.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    def close(self, seconds: float = CLOSE_SECONDS) -> None:
        """No more trials: the charts still queued are drawn (at most `seconds`), then the process
        ends."""
        self.orders.put(None)
        deadline = time.monotonic() + seconds
        try:
            self.writer.join(seconds)
            self.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning(
                "the chart process was stopped after %d s: the last trials may have no %s",
                seconds,
                ARTIFACT,
            )
        finally:  # a second signal while waiting lands here too
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "Charts":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(STOPPED_CLOSE_SECONDS if exc_type else CLOSE_SECONDS)


class NoCharts:
    """tracking.trial_charts=false: no chart process, no learning_curves.png."""

    def send(self, trial: FrozenTrial, tracking_uri: str) -> None:
        pass

    def __enter__(self) -> "NoCharts":
        return self

    def __exit__(self, *exc) -> None:
        pass


def drawer(trial_charts: bool) -> Charts | NoCharts:
    return Charts() if trial_charts else NoCharts()


# --------------------------------------------------------------------------- the chart process


def draw(client, run_id: str) -> None:
    """The run's learning curves, titled with its trial and study; the values MLflow stores for ±inf
    are not drawn."""
    from pipeline.report.sweep_report import learning_curves_figure, plt

    run = client.get_run(run_id)
    history = {}
    for name in CURVES:
        if name in run.data.metrics:
            points = sorted(client.get_metric_history(run_id, name), key=lambda point: point.step)
            history[name] = [
                point.value if abs(point.value) < 1e308 else math.nan for point in points
            ]
    title = f"trial {run.data.tags.get('trial_number', '?')} of {run.data.tags.get('study', '?')}"
    figure = learning_curves_figure(history, title, run.data.metrics.get(Fig.chance_loss))
    client.log_figure(run_id, figure, ARTIFACT)
    plt.close(figure)


def exit_when_orphaned(invoker_pid: int) -> None:
    """The invoker gone (killed): stop at once, whatever is left (a dead store could keep retrying
    for minutes)."""
    while os.getppid() == invoker_pid:
        time.sleep(1.0)
    os._exit(0)


def main() -> None:
    signals.ignore_here()
    import mlflow

    threading.Thread(target=exit_when_orphaned, args=(int(sys.argv[1]),), daemon=True).start()
    clients = {}
    for line in sys.stdin:
        try:
            order = json.loads(line)
            if order["tracking_uri"] not in clients:
                clients[order["tracking_uri"]] = mlflow.MlflowClient(order["tracking_uri"])
            draw(clients[order["tracking_uri"]], order["run_id"])
        # one chart lost is a warning; the run and its metrics are kept
        except Exception as error:  # noqa: BLE001
            print(
                f"warning: a trial's {ARTIFACT} was not drawn: "
                f"{' '.join(redact(str(error)).split())[:500]}",
                file=sys.stderr,
            )


if __name__ == "__main__":
    main()
