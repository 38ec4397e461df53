"""SIGINT and SIGTERM: stop at the next safe point, end the trial and its runs, exit 130 / 143.

The handler only records the signal; training checks it after every batch (StopOnSignal) and the sweep
before every trial, so the stop never lands inside a database write or a TensorFlow call. A second
signal stops at once.
"""

import contextlib
import signal
import sys

import keras

HANDLED = (signal.SIGINT, signal.SIGTERM)
_received: int | None = None


class Interrupted(Exception):
    """A stop asked for by a signal. An Exception, not a KeyboardInterrupt: Optuna fails the trial and re-raises it."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _record(signum, frame) -> None:
    global _received
    if _received is not None:
        raise Interrupted(signum)
    _received = signum


def received() -> int | None:
    return _received


def request_stop(signum: int) -> None:
    """Record a stop as if `signum` had come: a worker process is told by its invoker, not by a signal."""
    global _received
    _received = signum


def check() -> None:
    """Raise Interrupted if a signal came: call it where stopping is safe."""
    if _received is not None:
        raise Interrupted(_received)


@contextlib.contextmanager
def ignored():
    """SIGINT and SIGTERM ignored inside (a process started inside inherits that), the handlers restored after."""
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in HANDLED}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def stop_on_signals():
    """Inside: SIGINT and SIGTERM are recorded for check(), instead of killing or interrupting anywhere."""
    global _received
    _received = None
    previous = {signum: signal.signal(signum, _record) for signum in HANDLED}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class StopOnSignal(keras.callbacks.Callback):
    """Ends fit() or evaluate() with Interrupted at the first batch boundary after a signal."""

    def on_train_batch_end(self, batch, logs=None):
        check()

    def on_test_batch_end(self, batch, logs=None):
        check()


def run_one(job, cfg) -> None:
    """A one-run command (rnn-train, rnn-lr-find) under SIGINT/SIGTERM: its run is ended FAILED, nothing else
    changes, and the command exits 128 + the signal's number."""
    with stop_on_signals():
        try:
            job(cfg)
            check()
        except Interrupted as stop:
            print(f"{stop}: the run was ended (FAILED), nothing else changed", file=sys.stderr)
            raise SystemExit(stop.exit_code) from None
