"""SIGINT and SIGTERM: stop at the next safe point, end the trial and its runs, exit 130 / 143.

The handler only records the signal; training checks it after every batch (train.StopOnSignal) and
the sweep before every trial, so the stop never lands inside a database write or a TensorFlow call.
A second signal stops at once. Helper processes (workers, the chart process) leave both signals to
their invoker.
"""

import contextlib
import signal
import sys

HANDLED = (signal.SIGINT, signal.SIGTERM)
_received: int | None = None


class Interrupted(Exception):
    """A stop asked for by a signal. An Exception, not a KeyboardInterrupt: Optuna fails the trial
    and re-raises it."""

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
    """Record a stop as if `signum` had come: a worker process is told by its invoker, not by a
    signal."""
    global _received
    _received = signum


def check() -> None:
    """Raise Interrupted if a signal came: call it where stopping is safe."""
    if _received is not None:
        raise Interrupted(_received)


@contextlib.contextmanager
def held_for_helpers():
    """Start helper processes inside: SIGINT and SIGTERM are blocked in this thread, so a process
    started here begins with them blocked (until it calls ignore_here()). One that lands meanwhile
    is handled by this process, at the latest on leaving, where it used to be lost while the invoker
    briefly ignored them (multiprocessing starts its resource tracker the same way). A second signal
    raises Interrupted on leaving at the latest: record the started process inside, so the stop
    finds it."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def ignore_here() -> None:
    """First thing in a helper process started inside held_for_helpers(): SIGINT and SIGTERM ignored
    from now on (a Ctrl-C to the process group, or systemd's SIGTERM to every process, is the
    invoker's to handle); one that came while the helper started is dropped."""
    for signum in HANDLED:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)


@contextlib.contextmanager
def stop_on_signals():
    """Inside: SIGINT and SIGTERM are recorded for check(), instead of killing or interrupting
    anywhere."""
    global _received
    _received = None
    previous = {signum: signal.signal(signum, _record) for signum in HANDLED}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_one(job, cfg) -> None:
    """A one-run command (rnn-train, rnn-lr-find) under SIGINT/SIGTERM: its run is ended FAILED,
    nothing else changes, and the command exits 128 + the signal's number."""
    with stop_on_signals():
        try:
            job(cfg)
            check()
        except Interrupted as stop:
            print(f"{stop}: the run was ended (FAILED), nothing else changed", file=sys.stderr)
            raise SystemExit(stop.exit_code) from None
