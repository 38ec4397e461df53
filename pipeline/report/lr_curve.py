"""What a learning-rate range test's loss curve says: where the loss leaves its start, falls
fastest, blows up.

Pure functions over (learning rate, training loss) per step; pipeline/lr_find.py records the curve.
"""

import dataclasses
import math

import numpy as np

from pipeline.report.sweep_report import draw_chance, plt


class SmoothedLoss:
    """Exponential moving average of the per-step loss, bias-corrected (Adam's correction): its
    first values are averages of the steps seen so far, not pulled towards 0."""

    def __init__(self, smoothing: float):
        self.smoothing, self.average, self.count = smoothing, 0.0, 0

    def add(self, loss: float) -> float:
        self.count += 1
        self.average = self.smoothing * self.average + (1 - self.smoothing) * loss
        return self.average / (1 - self.smoothing**self.count)


def smoothed(losses: list[float], smoothing: float) -> list[float]:
    average = SmoothedLoss(smoothing)
    return [average.add(loss) for loss in losses]


def blown_up(loss: float, minimum: float, divergence: float) -> bool:
    """The smoothed loss is not a number any more, or above `divergence` times its minimum so
    far."""
    return not math.isfinite(loss) or loss > divergence * minimum


def delay(step: int, smoothing: float) -> int:
    """How many steps the smoothed loss at `step` trails the raw one: the mean age of the losses it
    averages (smoothing / (1 - smoothing) once warmed up, 9 steps at 0.9; less in its first
    steps)."""
    ages = np.arange(step + 1)
    weights = smoothing**ages
    return round(float(np.sum(ages * weights) / np.sum(weights)))


def reflected_steps(count: int, smoothing: float) -> np.ndarray:
    """For each step of the smoothed curve, the step whose losses it reflects: the delay taken
    off."""
    return np.array([step - delay(step, smoothing) for step in range(count)])


@dataclasses.dataclass(frozen=True)
class RangeFigures:
    """Each learning rate is placed where the losses behind a smoothed value were taken (the delay
    taken off)."""

    start_loss: float  # the starting level: mean loss of the first start_steps steps
    last_lr: float  # the learning rate of the last step run
    # where the smoothed loss first lies beyond tolerance of the start; None: it never left
    plateau_edge_lr: float | None
    # the learning rates summed over the steps before the edge: what it took to leave
    escape_lr_steps: float | None
    # most negative d(smoothed loss)/d(log10 lr) before the minimum; None: it never fell
    steepest_lr: float | None
    steepest_slope: float | None  # that slope: loss change per decade of learning rate
    min_loss_lr: float
    min_loss: float
    # where the smoothed loss blew up; None: it never did within the range
    divergence_lr: float | None

    def metrics(self) -> dict[str, float]:
        """The figures as MLflow metrics; those not found are left out (and flagged by left_start /
        diverged)."""
        found = {key: value for key, value in dataclasses.asdict(self).items() if value is not None}
        return found | {
            "left_start": int(self.plateau_edge_lr is not None),
            "diverged": int(self.divergence_lr is not None),
        }

    def plateau_steps_at(self, learning_rate: float) -> float | None:
        """Steps a plateau should last at a constant `learning_rate`, if leaving it takes the same
        sum of learning rates."""
        return None if self.escape_lr_steps is None else self.escape_lr_steps / learning_rate


def analyse(
    lrs: list[float],
    losses: list[float],
    smoothing: float,
    start_steps: int,
    tolerance: float,
    divergence: float,
) -> RangeFigures:
    """The figures of a range test's curve: raw per-step `losses` at learning rates `lrs`
    (rising)."""
    curve = np.array(smoothed(losses, smoothing))
    lrs = np.asarray(lrs, dtype=float)
    behind = reflected_steps(len(curve), smoothing)
    start = float(np.mean(losses[:start_steps]))
    end = divergence_step(curve, divergence)
    usable = curve[:end] if end is not None else curve
    lowest = int(np.nanargmin(usable))
    away = np.flatnonzero(np.abs(usable[start_steps:] - start) > tolerance * abs(start))
    edge = int(behind[start_steps + away[0]]) if away.size else None
    # the average's own span: shorter slopes measure single batches
    window = max(1, round(1 / (1 - smoothing)))
    steepest, slope = steepest_descent(np.log10(lrs[: lowest + 1]), usable[: lowest + 1], window)
    return RangeFigures(
        start_loss=start,
        last_lr=float(lrs[-1]),
        plateau_edge_lr=float(lrs[edge]) if edge is not None else None,
        escape_lr_steps=float(np.sum(lrs[:edge])) if edge is not None else None,
        steepest_lr=float(lrs[behind[steepest]]) if steepest is not None else None,
        steepest_slope=slope,
        min_loss_lr=float(lrs[behind[lowest]]),
        min_loss=float(usable[lowest]),
        divergence_lr=float(lrs[behind[end]]) if end is not None else None,
    )


def divergence_step(curve: np.ndarray, divergence: float) -> int | None:
    """The first step whose smoothed loss blew up against the minimum before it."""
    minimum = math.inf
    for step, loss in enumerate(curve):
        if step and blown_up(loss, minimum, divergence):
            return step
        minimum = min(minimum, loss)
    return None


def steepest_descent(
    log_lrs: np.ndarray, curve: np.ndarray, window: int
) -> tuple[int | None, float | None]:
    """The step of the most negative slope d(loss)/d(log10 lr), each measured across `window` steps
    and placed at their middle step: from one step to the next, an exponential average moves by that
    step's batch noise."""
    if len(curve) <= window:
        return None, None
    slopes = (curve[window:] - curve[:-window]) / (log_lrs[window:] - log_lrs[:-window])
    steepest = int(np.nanargmin(slopes))
    if not slopes[steepest] < 0:
        return None, None
    return steepest + window // 2, float(slopes[steepest])


def format_table(
    figures: RangeFigures,
    chance_loss: float,
    tolerance: float,
    divergence: float,
    learning_rate: float,
    steps_per_epoch: int,
) -> str:
    """The figures as a short table: what each learning rate means; the plateau to expect at
    `learning_rate`."""
    rows = [("starting loss", f"{figures.start_loss:.4f}", f"chance level {chance_loss:.4f}")]
    if figures.plateau_edge_lr is None:
        rows.append(
            (
                "plateau edge",
                "none",
                f"the smoothed loss stayed within {tolerance:.0%} of its start up to lr "
                f"{figures.last_lr:.2g}",
            )
        )
    else:
        rows.append(
            (
                "plateau edge",
                f"lr {figures.plateau_edge_lr:.2g}",
                f"the smoothed loss leaves {figures.start_loss:.3f} ± {tolerance:.0%}; below it: "
                "the plateau zone",
            )
        )
        plateau = figures.plateau_steps_at(learning_rate)
        rows.append(
            (
                "escape",
                f"{figures.escape_lr_steps:.3g}",
                "the learning rates summed over the steps before the edge",
            )
        )
        rows.append(
            (
                f"plateau at {learning_rate:g}",
                f"{plateau:.0f} steps",
                f"= {plateau / steps_per_epoch:.1f} epochs of {steps_per_epoch} steps, if leaving "
                "takes the same sum at a constant lr",
            )
        )
    if figures.steepest_lr is None:
        rows.append(("steepest descent", "none", "the smoothed loss never fell"))
    else:
        rows.append(
            (
                "steepest descent",
                f"lr {figures.steepest_lr:.2g}",
                f"{figures.steepest_slope:+.3f} loss per decade of lr",
            )
        )
    rows.append(
        ("minimum loss", f"lr {figures.min_loss_lr:.2g}", f"smoothed loss {figures.min_loss:.4f}")
    )
    if figures.divergence_lr is None:
        rows.append(
            (
                "blows up",
                "none",
                f"the smoothed loss stayed below {divergence:g} × its minimum up to lr "
                f"{figures.last_lr:.2g}",
            )
        )
    else:
        rows.append(
            (
                "blows up",
                f"lr {figures.divergence_lr:.2g}",
                f"the smoothed loss passed {divergence:g} × its minimum",
            )
        )
    width = max(len(name) for name, _, _ in rows)
    return "\n".join(f"  {name:<{width}}  {value:<10} {meaning}" for name, value, meaning in rows)


def range_figure(
    lrs: list[float],
    losses: list[float],
    smoothing: float,
    figures: RangeFigures,
    chance_loss: float,
    tolerance: float,
    title: str,
) -> plt.Figure:
    """Loss against learning rate (log axis): raw steps faint, the smoothed curve (drawn at the
    learning rates whose losses it averages, like the marks), the plateau band, chance level and the
    three marks."""
    figure, axis = plt.subplots(figsize=(8, 4.5), constrained_layout=True)
    axis.plot(lrs, losses, color="tab:blue", alpha=0.25, linewidth=0.8, label="loss per step")
    behind = reflected_steps(len(losses), smoothing)
    axis.plot(
        np.asarray(lrs)[behind],
        smoothed(losses, smoothing),
        color="tab:blue",
        linewidth=1.8,
        label="smoothed loss",
    )
    axis.axhspan(
        figures.start_loss * (1 - tolerance),
        figures.start_loss * (1 + tolerance),
        color="grey",
        alpha=0.15,
        label=f"starting level ± {tolerance:.0%}",
    )
    draw_chance(axis, chance_loss)
    marks = (
        ("plateau edge", figures.plateau_edge_lr, "tab:orange"),
        ("steepest descent", figures.steepest_lr, "tab:green"),
        ("blows up", figures.divergence_lr, "tab:red"),
    )
    for name, lr, colour in marks:
        if lr is not None:
            axis.axvline(lr, color=colour, linestyle=":", linewidth=1.5, label=f"{name} ({lr:.2g})")
    axis.plot(
        [figures.min_loss_lr],
        [figures.min_loss],
        "v",
        color="black",
        label=f"minimum ({figures.min_loss_lr:.2g})",
    )
    # a blown-up loss leaves the top: its height says nothing
    axis.set_ylim(0, max(chance_loss, figures.start_loss) * 1.6)
    axis.set(
        xscale="log", xlabel="learning rate (rises each step)", ylabel="training loss", title=title
    )
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return figure
