"""User-facing errors: bad input becomes one line on stderr and exit code 2; no output shows a
password."""

import contextlib
import errno
import functools
import logging
import shutil
import sys
import threading
import traceback
from pathlib import Path

from pipeline.core.redaction import install_log_redaction, redact, save_hydra_files

EXIT_UNEXPECTED = 1
EXIT_INPUT_ERROR = 2
_task_started = False  # set once Hydra has composed the config and handed it to a task function
log = logging.getLogger(__name__)


class InputError(ValueError):
    """A bad value from the user: a config value, a data file, a column or a label."""


@contextlib.contextmanager
def exit_on_input_error():
    """Turn an InputError into `error: <message>` on stderr and exit code 2, without a traceback."""
    try:
        yield
    except InputError as error:
        message = f"error: {redact(str(error))}"
        print(message, file=sys.stderr)
        to_log_file(message)
        sys.exit(EXIT_INPUT_ERROR)


def hydra_task(task):
    """Decorate a Hydra task function: its InputErrors exit 2, the config is known to have composed,
    and no password reaches the log, Hydra's run folder or a traceback (an unexpected error:
    redacted, exit 1)."""

    @functools.wraps(task)
    def run(cfg):
        global _task_started
        _task_started = True
        if isinstance(sys.stderr, Terminal):
            sys.stderr.release()
        install_log_redaction()
        try:
            save_hydra_files(cfg)
        except OSError as error:
            log.warning("the run folder's .hydra files were not written: %s", error)
        try:
            with exit_on_input_error(), full_disk_as_input_error(cfg):
                return task(cfg)
        # Hydra would print it, with every override, password included
        except Exception:  # noqa: BLE001
            text = redact(traceback.format_exc())
            sys.stderr.write(text)
            to_log_file(f"unexpected error, exit {EXIT_UNEXPECTED}:\n{text}")
            sys.exit(EXIT_UNEXPECTED)

    return run


@contextlib.contextmanager
def full_disk_as_input_error(cfg):
    """A full disk met where no part of rnnsweep expected it: one DiskFull line too, not a
    traceback."""
    try:
        yield
    except InputError:
        raise
    except Exception as error:
        full = as_disk_full(error, cfg.paths.mlruns_dir if "paths" in cfg else None)
        if full is None:
            raise
        raise full from None


def to_log_file(message: str) -> None:
    """Write `message` to the run's log file(s) only (Hydra's console handler already showed it, or
    must not)."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (message,), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


class Terminal:
    """sys.stdout or sys.stderr with every write redacted; stderr is also held back until released,
    so that what Hydra prints before the task starts becomes one line if the command line does not
    compose (and is passed on unchanged otherwise)."""

    def __init__(self, real, holding: bool = False):
        self.real, self.held, self.holding = real, [], holding

    def write(self, text: str) -> int:
        if self.holding:
            self.held.append(text)
            return len(text)
        self.real.write(redact(text))
        return len(text)

    def flush(self) -> None:
        if not self.holding:
            self.real.flush()

    def release(self) -> None:
        if self.holding:
            self.holding = False
            self.write("".join(self.held))
            self.held.clear()
            self.flush()

    def __getattr__(self, name):  # encoding, isatty, fileno, buffer, ... of the real stream
        return getattr(self.real, name)


def one_line(hydra_output: str) -> str:
    """Hydra's error output as one line: the message, without its hint, search path listing or
    traceback frames."""
    lines = [
        line
        for line in hydra_output.splitlines()
        if line.strip() and "HYDRA_FULL_ERROR" not in line
    ]
    if "Config search path:" in lines:
        lines = lines[: lines.index("Config search path:")]
    frames = [index for index, line in enumerate(lines) if line.startswith("  File ")]
    # a traceback: its last exception, i.e. the lines after the last frame's source lines
    if frames:
        lines = [line for line in lines[frames[-1] + 1 :] if not line.startswith("    ")]
    return redact(" ".join(" ".join(lines).split()))


def console_entry(app, explain=lambda hydra_output: None):
    """A console script for a @hydra.main app that exits 2, not Hydra's 1, when the command line
    does not compose (unknown override path, missing group option, a YAML error): before the task
    starts, every 1 is that, and Hydra's many lines become one `error: ...` line (`explain`'s words
    when it has some, e.g. for a value of the wrong type). Whatever Python prints is redacted."""

    @functools.wraps(app)
    def entry():
        global _task_started
        _task_started = False
        real = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = Terminal(sys.stdout), Terminal(sys.stderr, holding=True)
        held = sys.stderr
        try:
            app()
        except SystemExit as exiting:
            if exiting.code == 1 and not _task_started and held.holding:
                held.holding = False
                output = "".join(held.held)
                print(f"error: {redact(explain(output) or one_line(output))}", file=held.real)
                sys.exit(EXIT_INPUT_ERROR)
            raise
        finally:
            held.release()
            sys.stdout, sys.stderr = real

    return entry


# ------------------------------------------------------------------------------------- full disk

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# SQLite's; TensorFlow's and drivers'
NO_SPACE_TEXTS = ("database or disk is full", "No space left on device")


class DiskFull(InputError):
    """No space left on a device rnnsweep writes to: the folder's doing, never the
    hyperparameters'."""


def chain(error: BaseException | None):
    """`error`, then what caused it or was being handled when it came, and so on."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def no_space_error(error: BaseException | None) -> BaseException | None:
    """The full-disk error in `error`'s chain, or None: a DiskFull already named first, else an
    OSError ENOSPC / EDQUOT or an error whose message says so (SQLite, TensorFlow, database
    drivers)."""
    found = [e for e in chain(error) if isinstance(e, DiskFull)]
    found += [
        e
        for e in chain(error)
        if isinstance(e, OSError)
        and e.errno in NO_SPACE
        or any(text in str(e) for text in NO_SPACE_TEXTS)
    ]
    return found[0] if found else None


def quiet_full_disk_in_threads() -> None:
    """A library's thread that meets a full disk (Optuna's heartbeat) ends without its traceback:
    the trial's own next write meets the same disk and the command says so in one line. Any other
    error of a thread is printed as before."""
    printed = threading.excepthook
    if getattr(printed, "quiet_full_disk", False):
        return

    def excepthook(args: threading.ExceptHookArgs) -> None:
        if no_space_error(args.exc_value) is None:
            printed(args)
        else:
            name = args.thread.name if args.thread else "a thread"
            log.info("%s ended on a full disk: %s", name, args.exc_value)

    excepthook.quiet_full_disk = True
    threading.excepthook = excepthook


def free_bytes(path: Path) -> int:
    """The free space of the device `path` is (or would be) on."""
    return shutil.disk_usage(existing_parent(path)).free


def existing_parent(path: Path) -> Path:
    """The path, or its nearest parent that exists (a folder not made yet is on its parent's
    device)."""
    path = Path(path).absolute()
    return next(folder for folder in (path, *path.parents) if folder.exists())


def megabytes(count: float) -> str:
    return f"{count / 10**6:.2f} MB"


def drop_partial_copy(cause: BaseException) -> int | None:
    """A copy that ran out of space (OSError with a source and a target): its partial target is
    removed, since it holds the space the stores need to record the failure; returns the source's
    size if it still exists."""
    if not (isinstance(cause, OSError) and cause.filename2):
        return None
    with contextlib.suppress(OSError):
        Path(cause.filename2).unlink()
    with contextlib.suppress(OSError):
        return Path(cause.filename).stat().st_size
    return None


def as_disk_full(
    error: BaseException, folder: str | Path | None = None, setting: str = "paths.mlruns_dir"
) -> DiskFull | None:
    """`error` as one DiskFull line if a device was full, its partial copy removed first; None if
    not. `setting` is named as the way out when the full path lies under `folder` (or no path is
    known)."""
    cause = no_space_error(error)
    if cause is None or isinstance(cause, DiskFull):
        return cause
    needed = drop_partial_copy(cause)
    path = (
        Path(cause.filename2 or cause.filename)
        if isinstance(cause, OSError) and cause.filename
        else None
    )
    inside = folder is not None and (
        path is None or path.absolute().is_relative_to(Path(folder).absolute())
    )
    advice = (
        f"free some space there or choose another {setting}" if inside else "free some space there"
    )
    if path is not None:
        size = f"it needs {megabytes(needed)}, " if needed is not None else ""
        return DiskFull(
            f"no space left on device for {path}: {size}{megabytes(free_bytes(path.parent))} is "
            f"free there; {advice}"
        )
    what = (
        "an SQLite store could not grow"
        if NO_SPACE_TEXTS[0] in str(cause)
        else " ".join(str(cause).split())
    )
    where = (
        f" under {setting}={folder} ({megabytes(free_bytes(Path(folder)))} free)" if folder else ""
    )
    return DiskFull(f"no space left on device: {what}{where}; {advice}")


def check_space(what: str, path: Path, needed: int, advice: str) -> None:
    """DiskFull unless `path`'s device has `needed` bytes free: checked before the writing
    starts."""
    free = free_bytes(path)
    if free < needed:
        raise DiskFull(
            f"{what}: {megabytes(needed)} is needed on its device, {megabytes(free)} is free; "
            f"free some space there or {advice}"
        )
