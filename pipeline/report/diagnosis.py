"""The plateau diagnosis of a sweep: a short paragraph written from the study's own figures.

Every sentence carries a number from this study (trials, epochs, learning rates, losses, gradient
norms); where the trials cannot tell, it says "not enough trials" instead of guessing. Reads the
figures each trial keeps in the study (objective.remember): plateau_epochs, plateau_censored,
plateau_at_chance, plateau_loss, chance_loss, learning_rate, and the gradient figures when
train.log_gradients logged them.
"""

import math
import statistics

from optuna.trial import FrozenTrial, TrialState

from pipeline.core.names import Attr, Fig

MIN_PLATEAU = 2  # epochs: one flat epoch is no plateau (train.plateau_level agrees)
RECORDED = (TrialState.COMPLETE, TrialState.PRUNED)


def plateau_diagnosis(trials: list[FrozenTrial]) -> list[str]:
    """The paragraph as lines: which trials plateaued and how long, at what loss, the learning-rate
    threshold, what the gradient did, and what to change."""
    measured = [
        t
        for t in trials
        if t.state in RECORDED
        and Fig.plateau_epochs in t.user_attrs
        and Attr.learning_rate in t.user_attrs
    ]
    if len(measured) < 2:
        return [
            f"Plateau diagnosis: not enough trials ({len(measured)} with plateau figures; 2 or "
            "more needed)."
        ]
    flat = [t for t in measured if t.user_attrs[Fig.plateau_epochs] >= MIN_PLATEAU]
    lines = ["Plateau diagnosis:", f"  {who_plateaued(flat, measured)}"]
    if flat:
        lines += [f"  {line}" for line in (plateau_level(flat), gradient_signal(flat)) if line]
    threshold = learning_rate_threshold(measured)
    lines.append(f"  {threshold[0]}")
    lines.append(f"  {advice(flat, measured, threshold[1])}")
    return lines


def attr(trial: FrozenTrial, name: str, default=None):
    return trial.user_attrs.get(name, default)


def epochs_text(trial: FrozenTrial) -> str:
    plateau = int(attr(trial, Fig.plateau_epochs))
    return f"≥ {plateau}" if attr(trial, Fig.plateau_censored) else f"{plateau}"


def who_plateaued(flat: list[FrozenTrial], measured: list[FrozenTrial]) -> str:
    if not flat:
        longest = max(int(attr(t, Fig.plateau_epochs)) for t in measured)
        return (
            f"no trial of {len(measured)} sat on a loss plateau of {MIN_PLATEAU}+ epochs (the "
            f"longest flat start: {longest} epoch)."
        )
    by_lr = sorted(flat, key=lambda t: (attr(t, Attr.learning_rate), -attr(t, Fig.plateau_epochs)))
    shown = ", ".join(
        f"trial {t.number} (lr {attr(t, Attr.learning_rate):.2g}{setting_text(t)}): "
        f"{epochs_text(t)}"
        for t in by_lr[:6]
    )
    more = f", and {len(by_lr) - 6} more" if len(by_lr) > 6 else ""
    censored = sum(bool(attr(t, Fig.plateau_censored)) for t in flat)
    tail = f"; {censored} ended still flat (≥: a lower bound)" if censored else ""
    return (
        f"{len(flat)} of {len(measured)} trials sat on a loss plateau of {MIN_PLATEAU}+ epochs — "
        f"{shown}{more}{tail}."
    )


def setting_text(trial: FrozenTrial) -> str:
    """The searched settings other than the learning rate that tell plateaus apart (body, optimizer,
    masking)."""
    keys = [k for k in ("body", "optimizer", "mask_padding", "padding") if k in trial.params]
    return "".join(
        f", {k} "
        f"{str(trial.params[k]).lower() if isinstance(trial.params[k], bool) else trial.params[k]}"
        for k in keys
    )


def plateau_level(flat: list[FrozenTrial]) -> str | None:
    placed = [
        t
        for t in flat
        if attr(t, Fig.plateau_loss) is not None and attr(t, Fig.chance_loss) is not None
    ]
    if not placed:
        return None
    chance = attr(placed[0], Fig.chance_loss)
    classes = int(attr(placed[0], Fig.num_classes, 2))
    chance_text = f"{chance:.3f}, the entropy of the {classes} classes' training frequencies"
    at_chance = [t for t in placed if attr(t, Fig.plateau_at_chance)]
    mean_loss = statistics.fmean(attr(t, Fig.plateau_loss) for t in placed)
    if len(at_chance) == len(placed):
        every = "The one plateau" if len(placed) == 1 else f"All {len(placed)} plateaus"
        return (
            f"{every} sat at chance level (mean training loss {mean_loss:.3f} against chance "
            f"{chance_text}): the model predicted the label frequency of each of the {classes} "
            "classes and nothing else."
        )
    return (
        f"{len(at_chance)} of {len(placed)} plateau{'' if len(placed) == 1 else 's'} sat at chance "
        f"level ({chance_text}); the mean plateau loss was {mean_loss:.3f}: "
        f"{'the others had learned something before stalling' if at_chance else 'none predicted the label frequency alone'}."  # noqa: E501
    )


def gradient_signal(flat: list[FrozenTrial]) -> str:
    logged = [t for t in flat if attr(t, Fig.plateau_grad_norm) is not None]
    if not logged:
        return (
            "No gradient figures were logged for these trials (train.log_gradients), so the "
            "gradient signal cannot be told apart."
        )
    escaped = [
        t
        for t in logged
        if attr(t, Fig.escape_grad_norm) is not None and attr(t, Fig.plateau_grad_norm) > 0
    ]
    step_size = step_size_statement(logged)
    if not escaped:
        return (
            "During the plateaus the mean gradient norm was "
            f"{statistics.fmean(attr(t, Fig.plateau_grad_norm) for t in logged):.3g}; no plateaued "
            f"trial escaped, so there is no after to compare with.{step_size}"
        )
    shown = "; ".join(
        before_and_after(t) for t in sorted(escaped, key=lambda t: attr(t, Attr.learning_rate))[:4]
    )
    ratio = statistics.median(
        attr(t, Fig.escape_grad_norm) / attr(t, Fig.plateau_grad_norm) for t in escaped
    )
    if ratio >= 2:
        kind = f"the gradient grew {ratio:.2g}× once the loss moved (median)"
    elif ratio > 0.5:
        kind = (
            f"the gradient was about as large on the plateau as after it (×{ratio:.2g}, median): "
            "steps of some size, without a direction yet"
        )
    else:
        kind = (
            f"the gradient was larger on the plateau than after it (×{ratio:.2g}, median): large "
            "steps that did not lower the loss"
        )
    return f"On the plateau → after the escape: {shown}. So {kind}.{step_size}"


def step_size_statement(logged: list[FrozenTrial]) -> str:
    """Whether the learning rate, not the gradient, set the pace: the same gradient norm on the
    plateau at two learning rates, but steps that grew with the learning rate."""
    paced = sorted(
        (t for t in logged if attr(t, Fig.plateau_update_ratio)),
        key=lambda t: attr(t, Attr.learning_rate),
    )
    if len(paced) < 2 or attr(paced[0], Attr.learning_rate) == attr(paced[-1], Attr.learning_rate):
        return ""
    low, high = paced[0], paced[-1]
    gradients = attr(high, Fig.plateau_grad_norm) / attr(low, Fig.plateau_grad_norm)
    steps = attr(high, Fig.plateau_update_ratio) / attr(low, Fig.plateau_update_ratio)
    rates = attr(high, Attr.learning_rate) / attr(low, Attr.learning_rate)
    if not (2 / 3 <= gradients <= 3 / 2 and steps >= 2):
        return ""
    return (
        " On the plateau the gradient norm was about the same at lr "
        f"{attr(low, Attr.learning_rate):.2g} and {attr(high, Attr.learning_rate):.2g} "
        f"({attr(low, Fig.plateau_grad_norm):.3g} vs {attr(high, Fig.plateau_grad_norm):.3g}), "
        f"while each step moved the weights {steps:.2g}× as far (for {rates:.2g}× the learning "
        "rate): the step size, not a vanishing gradient, set how long the plateau lasted."
    )


def before_and_after(trial: FrozenTrial) -> str:
    text = (
        f"lr {attr(trial, Attr.learning_rate):.2g}{setting_text(trial)}: gradient norm "
        f"{attr(trial, Fig.plateau_grad_norm):.3g} → {attr(trial, Fig.escape_grad_norm):.3g}"
    )
    if (
        attr(trial, Fig.plateau_update_ratio) is not None
        and attr(trial, Fig.escape_update_ratio) is not None
    ):
        text += (
            f", step {attr(trial, Fig.plateau_update_ratio):.2g} → "
            f"{attr(trial, Fig.escape_update_ratio):.2g} of the weights' norm"
        )
    return text


def shortest_between(low: float, high: float) -> float:
    """The number with the fewest significant digits in (low, high], rounded down from `high`: the
    threshold as said ('at least 0.0044' for a trial at 0.00449: rounding to the nearest said 0.0045
    and ruled out the very trial that showed it), still above every learning rate that plateaued."""
    for digits in range(1, 16):
        step = 10 ** (math.floor(math.log10(high)) - digits + 1)
        shown = float(f"{math.floor(high / step + 1e-9) * step:.{digits}g}")
        if low < shown <= high:
            return shown
    return high


def learning_rate_threshold(measured: list[FrozenTrial]) -> tuple[str, float | None]:
    """The lowest learning rate from which on no trial plateaued, when trials on both sides show
    it."""
    rates = sorted({attr(t, Attr.learning_rate) for t in measured})
    for rate in rates:
        above = [t for t in measured if attr(t, Attr.learning_rate) >= rate]
        below = [t for t in measured if attr(t, Attr.learning_rate) < rate]
        if all(attr(t, Fig.plateau_epochs) < MIN_PLATEAU for t in above):
            if not below:
                return (
                    f"No trial plateaued at any learning rate tried ({rates[0]:.2g} to "
                    f"{rates[-1]:.2g}).",
                    None,
                )
            if len(above) < 2 or not any(attr(t, Fig.plateau_epochs) >= MIN_PLATEAU for t in below):
                break
            rate = shortest_between(max(attr(t, Attr.learning_rate) for t in below), rate)
            return (
                f"No trial with a learning rate of {rate:.15g} or more plateaued ({len(above)} "
                "trials); below it "
                f"{sum(attr(t, Fig.plateau_epochs) >= MIN_PLATEAU for t in below)} of "
                f"{len(below)} did.",
                rate,
            )
    return (
        "Not enough trials to place a learning-rate threshold: trials that plateaued and trials "
        "that did not overlap in learning rate, or too few lie above the last plateau.",
        None,
    )


def advice(flat: list[FrozenTrial], measured: list[FrozenTrial], threshold: float | None) -> str:
    if not flat:
        return (
            "To change: nothing for plateaus; every trial left its starting loss within one epoch."
        )
    steps = []
    if threshold is not None:
        steps.append(f"use a learning rate of at least {threshold:.15g} for these settings")
    masked = masking_contrast(measured)
    if masked:
        steps.append(masked)
    pruned = [t for t in flat if t.state == TrialState.PRUNED and attr(t, Fig.plateau_censored)]
    if len(pruned) == 1:
        steps.append(
            "1 pruned trial was still on its plateau: search.pruner=patient would let it show "
            "whether it escapes"
        )
    elif pruned:
        steps.append(
            f"{len(pruned)} pruned trials were still on their plateau: search.pruner=patient would "
            "let them show whether they escape"
        )
    if not steps:
        return (
            "To change: not enough trials to say which setting ends the plateaus; search the "
            "learning rate wider."
        )
    return "To change: " + "; ".join(steps) + "."


def masking_contrast(measured: list[FrozenTrial]) -> str | None:
    groups = {
        value: [
            attr(t, Fig.plateau_epochs) for t in measured if t.params.get("mask_padding") == value
        ]
        for value in (True, False)
    }
    if not groups[True] or not groups[False]:
        return None
    masked, unmasked = statistics.fmean(groups[True]), statistics.fmean(groups[False])
    if unmasked <= masked:
        return None
    return (
        f"keep model.mask_padding=true (plateaus {masked:.1f} epochs on average masked, "
        f"{unmasked:.1f} unmasked)"
    )
