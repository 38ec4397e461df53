"""Each trial's learning-curve chart, drawn off the trial's path by a chart process.

Drawing the PNG took 0.34 s of a sweep trial's ~1 s outside model.fit (benchmarks/overhead.py). In a thread of the
trial's process matplotlib holds the GIL and slowed the next trial's own logging, so a separate process draws
it: `python -P -m pipeline.charts` (-P: a `pipeline/` folder where the user stands is not imported instead),
which imports matplotlib and MLflow, not TensorFlow. The invoking process tells
it which trials finished (one JSON line each on its stdin); it reads the run's per-epoch metrics from MLflow,
draws, and logs `learning_curves.png` to the trial's run. It ignores SIGINT and SIGTERM (the invoker stops the
sweep and then closes its stdin); at the end of its stdin it draws what is left and exits, so it also ends when
the invoker is killed.
"""

import json
import logging
import os
import subprocess
import sys
import time

from optuna.trial import FrozenTrial

from pipeline.figures import Attr, Fig
from pipeline.redaction import redact
from pipeline.startup import WITHOUT_TENSORFLOW

log = logging.getLogger(__name__)
ARTIFACT = "learning_curves.png"
CURVES = ("loss", "val_loss", "accuracy", "val_accuracy", "grad_norm", "update_ratio")
CLOSE_SECONDS = 120  # at the end of a sweep, how long the charts still queued may take before they are given up


class Charts:
    """The invoker's side: starts the chart process, sends each finished trial once, waits for it at the end."""

    def __init__(self, study_name: str):
        self.study_name, self.sent = study_name, set()
        from pipeline import signals  # here: it imports Keras, which the chart process must not

        with signals.ignored():  # inherited through exec: only the invoker hears Ctrl-C or SIGTERM
            self.process = subprocess.Popen([sys.executable, "-P", "-m", "pipeline.charts"], stdin=subprocess.PIPE, text=True,
                                            env=os.environ | {WITHOUT_TENSORFLOW: "1"})

    def send(self, trial: FrozenTrial, tracking_uri: str) -> None:
        """Have the trial's chart drawn, once, if it trained (it has a run and an epoch)."""
        run_id = trial.user_attrs.get(Attr.mlflow_run_id)
        if trial.number in self.sent or not run_id or not trial.state.is_finished() or Fig.epochs_run not in trial.user_attrs:
            return
        self.sent.add(trial.number)
        order = {"tracking_uri": tracking_uri, "run_id": run_id, "title": f"trial {trial.number} of {self.study_name}",
                 "chance_loss": trial.user_attrs.get(Fig.chance_loss)}
        try:
            self.process.stdin.write(json.dumps(order) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            log.warning("the chart process is gone (exit code %s): trial %d has no %s", self.process.poll(), trial.number, ARTIFACT)

    def close(self) -> None:
        """No more trials: the charts still queued are drawn (at most CLOSE_SECONDS), then the process ends."""
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.process.wait(CLOSE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            log.warning("the chart process was stopped after %d s: the last trials may have no %s", CLOSE_SECONDS, ARTIFACT)

    def __enter__(self) -> "Charts":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------- the chart process


def draw(client, order: dict) -> None:
    from pipeline.report import learning_curves_figure, plt

    metrics = client.get_run(order["run_id"]).data.metrics
    history = {}
    for name in CURVES:
        if name in metrics:
            points = sorted(client.get_metric_history(order["run_id"], name), key=lambda point: point.step)
            history[name] = [point.value for point in points]
    figure = learning_curves_figure(history, order["title"], order["chance_loss"])
    client.log_figure(order["run_id"], figure, ARTIFACT)
    plt.close(figure)


def main() -> None:
    import mlflow

    clients = {}
    for line in sys.stdin:
        order = json.loads(line)
        client = clients.setdefault(order["tracking_uri"], mlflow.MlflowClient(order["tracking_uri"]))
        started = time.perf_counter()
        try:
            draw(client, order)
        except Exception as error:  # noqa: BLE001 - one chart lost is a warning; the run and its metrics are kept
            print(f"warning: the chart of run {order['run_id']} was not drawn: {redact(str(error))}", file=sys.stderr)
        log.debug("chart of run %s: %.2f s", order["run_id"], time.perf_counter() - started)


if __name__ == "__main__":
    main()
