"""Figures and terminal summaries made from training histories."""

import matplotlib

matplotlib.use("Agg")  # files only: runs are often unattended, with no display
import matplotlib.pyplot as plt  # noqa: E402


def learning_curves_figure(history: dict[str, list[float]], title: str) -> plt.Figure:
    """Loss and accuracy per epoch, training vs validation, side by side."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for axis, metric in zip(axes, ("loss", "accuracy")):
        for prefix, label in (("", "train"), ("val_", "validation")):
            values = history.get(prefix + metric, [])
            axis.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=label)
        axis.set(xlabel="epoch", ylabel=metric, title=metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    return figure


def format_summary(summary: dict[str, float]) -> str:
    """One `name  value` line per figure, for the end of a run."""
    width = max(map(len, summary), default=0)
    return "\n".join(f"  {name:<{width}}  {value:.4g}" for name, value in summary.items())
