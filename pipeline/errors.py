"""User-facing errors: bad input becomes one line on stderr and exit code 2."""

import contextlib
import sys

EXIT_INPUT_ERROR = 2


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
