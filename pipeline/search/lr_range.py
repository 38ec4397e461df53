"""search.lr_range=auto: a sweep's learning-rate bounds from a range test (pipeline/lr_find.py) on its base config.

The space's `optimizer.learning_rate` entry then runs from the plateau edge (below it: the plateau zone)
to the learning rate of the minimum loss (beyond it: larger steps stop helping). The bounds are stored in
the study, so the same command continues the same search on the same bounds without testing again.
"""

import logging

import mlflow
import optuna
from omegaconf import DictConfig

from pipeline.report import lr_curve
from pipeline.core.errors import InputError
from pipeline.training.lr_find import RangeTest, range_test, read_curve

log = logging.getLogger(__name__)
LR_PATH = "optimizer.learning_rate"
STUDY_ATTR = "lr_range"  # [low, high] as the first range test of the study set them


def lr_entry(cfg: DictConfig) -> str:
    """The name of the space's float entry over optimizer.learning_rate: the one search.lr_range=auto bounds."""
    names = [name for name, entry in cfg.search.space.items() if entry.get("path") == LR_PATH]
    if not names or cfg.search.space[names[0]].get("type") != "float":
        raise InputError(f"search.lr_range=auto needs a float entry over {LR_PATH} in search.space, "
                         f"e.g. learning_rate: {{path: {LR_PATH}, type: float, low: 1.0e-5, high: 1.0e-1, log: true}}")
    return names[0]


def apply_lr_range(cfg: DictConfig, data, study: optuna.Study) -> tuple[RangeTest, lr_curve.RangeFigures] | None:
    """With search.lr_range=auto, set the learning-rate entry's low and high; return the range test and its figures
    when one ran now (None when the study already held its bounds, or lr_range is null)."""
    if cfg.search.lr_range != "auto":
        return None
    entry = cfg.search.space[lr_entry(cfg)]
    result = None
    if STUDY_ATTR in study.user_attrs:
        low, high = study.user_attrs[STUDY_ATTR]
        origin = f"kept from study {study.study_name!r}"
    else:
        test = range_test(cfg, data)
        result = test, read_curve(test, cfg.lr_find)
        low, high = bounds(result[1])
        study.set_user_attr(STUDY_ATTR, [low, high])
        origin = f"range test of {len(test.losses)} steps, {test.seconds:.1f} s"
    entry.low, entry.high = low, high
    print(f"search.lr_range=auto: {LR_PATH} from {low:.3g} (plateau edge) to {high:.3g} (minimum loss), {origin}")
    return result


def bounds(figures: lr_curve.RangeFigures) -> tuple[float, float]:
    if figures.plateau_edge_lr is None or not figures.plateau_edge_lr < figures.min_loss_lr:
        raise InputError(f"search.lr_range=auto: the range test's loss never fell from its start before lr "
                         f"{figures.last_lr:.3g}; raise lr_find.end_lr or lr_find.steps, or set the entry's low and high")
    return figures.plateau_edge_lr, figures.min_loss_lr


def log_lr_range(result: tuple[RangeTest, lr_curve.RangeFigures] | None, cfg: DictConfig, chance_loss: float) -> None:
    """The range test on the sweep's parent run: its figures prefixed lr_find_, its plot lr_find.png."""
    if result is None:
        return
    test, figures = result
    mlflow.log_metrics({f"lr_find_{name}": value for name, value in figures.metrics().items()})
    figure = lr_curve.range_figure(test.lrs, test.losses, cfg.lr_find.smoothing, figures, chance_loss, cfg.lr_find.tolerance,
                                   f"range test before sweep {cfg.search.study_name}")
    mlflow.log_figure(figure, "lr_find.png")
    lr_curve.plt.close(figure)
