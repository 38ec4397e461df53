"""One order for everything the product ranks: a run's epochs (the weights kept, early stopping), a
study's trials, the confirmed configurations and so the champion. The objective first; a tie goes to
the lower validation loss. On small, easy data many epochs and trials reach val_accuracy 1.0: the
first of them, often an epoch-1 model that learned nothing yet, must not win by its place in the
order."""

import math

from pipeline.core.names import Attr

# objective values equal to this many decimals tie (float32 metrics of one split agree to ~1e-8)
TIE_DECIMALS = 7


def rank_key(value: float | None, val_loss: float | None, maximize: bool) -> tuple[float, float]:
    """Sort key, best first: the objective, then the validation loss; a missing or non-finite figure
    ranks last."""
    primary = round(value, TIE_DECIMALS) if finite(value) else None
    primary = math.inf if primary is None else (-primary if maximize else primary)
    return primary, val_loss if finite(val_loss) else math.inf


def ties(value: float, other: float) -> bool:
    """Two finite objective values that rank_key treats as equal."""
    return (
        finite(value) and finite(other) and round(value, TIE_DECIMALS) == round(other, TIE_DECIMALS)
    )


def finite(value) -> bool:
    return value is not None and math.isfinite(value)


def trial_key(trial, maximize: bool) -> tuple[float, float]:
    """A finished trial's rank key: its value and its best epoch's validation loss
    (Attr.tie_break)."""
    return rank_key(trial.values[0], trial.user_attrs.get(Attr.tie_break), maximize)


def ranked_trials(trials: list, maximize: bool) -> list:
    """`trials` (complete ones of a single-objective study) best first; equal keys keep their
    order."""
    return sorted(trials, key=lambda trial: trial_key(trial, maximize))
