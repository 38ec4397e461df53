"""What a setting may hold: a Rule tests a value and says, in one line, what is allowed. The
schemas (schema.py) give each setting its rule; config.RULES collects them."""

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

from pipeline.config.choices import BODIES, LOADER_NAMES, PADDING_SIDES, POOLINGS, TRUNCATE_SIDES
from pipeline.core.names import MONITORED


@dataclasses.dataclass(frozen=True)
class Rule:
    """What one setting may hold; `needs` completes the message `key=value; needs`."""

    test: Callable[[Any], bool]
    needs: str
    quoted: bool = True  # show a bad string value in quotes (choices) or as typed (numbers)
    applies: Callable[[DictConfig], bool] = lambda cfg: True

    def message(self, key: str, value) -> str:
        if value is None or isinstance(value, bool):
            shown = yaml_word(value)
        else:
            shown = repr(value) if self.quoted else value
        return f"{key}={shown}{'' if self.needs.startswith(' ') else '; '}{self.needs}"


def is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite int or float: inf and nan are no setting, and neither is true, nor an int no float
    can hold."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    # an int of over 308 digits: the traceback it gave was no one-line message
    except OverflowError:
        return False


def is_path(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


def integer(low: int, high: int | None = None, nullable: bool = False, **kwargs) -> Rule:
    def test(value):
        return (nullable and value is None) or (
            is_integer(value) and value >= low and (high is None or value <= high)
        )

    needs = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"
    return Rule(test, f"it must be {'null or ' if nullable else ''}{needs}", **kwargs)


def one_of(*allowed, what: str = "", **kwargs) -> Rule:
    def test(value):  # of the same type too: true is not 1
        return any(value == option and type(value) is type(option) for option in allowed)

    return Rule(test, f"{what}allowed: {', '.join(map(yaml_word, allowed))}", **kwargs)


def yaml_word(value) -> str:
    """A value as it is written in conf/ and on the command line: null, true, 0.5, gru."""
    return (
        "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    )


# a switch is typed Any in the schemas: a bool-typed node would turn 3 into true unseen
BOOLEAN = Rule(lambda value: isinstance(value, bool), "allowed: true, false")
FRACTION = Rule(
    lambda value: is_number(value) and 0 <= value < 1, "it must lie in [0, 1)", quoted=False
)
POSITIVE = Rule(lambda value: is_number(value) and value > 0, "it must be a finite number > 0")
SHARE = Rule(
    lambda value: is_number(value) and 0 < value < 1,
    "it must lie strictly between 0 and 1",
    quoted=False,
)
PATH = Rule(is_path, "it must be a non-empty path")
PORT = integer(1, 65535)
MAX_TRIALS = 1_000_000_000  # the workers share the trials left in a C int: 2**32 + 1 wrapped to 1
LOADER = one_of(*LOADER_NAMES, what=" is not a loader; ")
BODY = one_of(*BODIES)
POOLING = one_of(*POOLINGS, applies=lambda cfg: cfg.model.body == "pooling")
TRUNCATE = one_of(*TRUNCATE_SIDES)
PADDING = one_of(*PADDING_SIDES)
METRIC = one_of(*MONITORED)


def recurrent(rule_of: Callable[..., Rule], *args) -> Rule:
    """`rule_of(*args)`, for recurrent bodies only: pooling has no recurrent layers to size."""
    return rule_of(*args, applies=lambda cfg: cfg.model.body != "pooling")
