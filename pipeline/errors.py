"""User-facing errors: bad input becomes one line on stderr and exit code 2."""

import contextlib
import functools
import sys

EXIT_INPUT_ERROR = 2
_task_started = False  # set once Hydra has composed the config and handed it to a task function


class InputError(ValueError):
    """A bad value from the user: a config value, a data file, a column or a label."""


@contextlib.contextmanager
def exit_on_input_error():
    """Turn an InputError into `error: <message>` on stderr and exit code 2, without a traceback."""
    try:
        yield
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_INPUT_ERROR)


def hydra_task(task):
    """Decorate a Hydra task function: its InputErrors exit 2, and the config is known to have composed."""

    @functools.wraps(task)
    def run(cfg):
        global _task_started
        _task_started = True
        with exit_on_input_error():
            return task(cfg)

    return run


def console_entry(app):
    """A console script for a @hydra.main app that exits 2, not Hydra's 1, when the command line does not
    compose (unknown override path, missing group option): before the task starts, every 1 is that."""

    @functools.wraps(app)
    def entry():
        try:
            app()
        except SystemExit as exiting:
            if exiting.code == 1 and not _task_started:
                sys.exit(EXIT_INPUT_ERROR)
            raise

    return entry
