"""search.lr_range=auto: a sweep's learning-rate bounds from a range test (pipeline/lr_find.py) on
its base config.

The space's `optimizer.learning_rate` entry then runs from the plateau edge (below it: the plateau
zone) to the learning rate of the minimum loss (beyond it: larger steps stop helping). The bounds
are stored in the study, so the same command continues the same search on the same bounds without
testing again.
"""

import dataclasses
import logging

import mlflow
import optuna
from omegaconf import DictConfig, OmegaConf

from pipeline.report import lr_curve
from pipeline.core.errors import InputError
from pipeline.config import LR_PATH, lr_entry
from pipeline.training.lr_find import RangeTest, range_test, read_curve

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LearningRateRange:
    """The bounds search.lr_range=auto gives the learning-rate entry, where they came from, and the
    range test with its figures when one ran in this invocation."""

    low: float
    high: float
    origin: str
    ran: tuple[RangeTest, lr_curve.RangeFigures] | None = None


STUDY_ATTR = "lr_range"  # [low, high] as the first range test of the study set them


def lr_range_of(cfg: DictConfig, data, study: optuna.Study) -> LearningRateRange | None:
    """With search.lr_range=auto, the learning-rate entry's low and high: the study's, or a range
    test's run now (kept in the study). None when search.lr_range is null."""
    if cfg.search.lr_range != "auto":
        return None
    if STUDY_ATTR in study.user_attrs:
        low, high = study.user_attrs[STUDY_ATTR]
        found = LearningRateRange(low, high, f"kept from study {study.study_name!r}")
    else:
        test = range_test(cfg, data)
        figures = read_curve(test, cfg.lr_find)
        low, high = bounds(figures)
        study.set_user_attr(STUDY_ATTR, [low, high])
        found = LearningRateRange(
            low,
            high,
            f"range test of {len(test.losses)} steps, {test.seconds:.1f} s",
            (test, figures),
        )
    print(
        f"search.lr_range=auto: {LR_PATH} from {found.low:.3g} (plateau edge) to {found.high:.3g} "
        f"(minimum loss), {found.origin}"
    )
    return found


def with_lr_range(cfg: DictConfig, found: LearningRateRange | None) -> DictConfig:
    """The sweep's config with the learning-rate entry bounded by `found`: a new config, `cfg`
    unchanged."""
    if found is None:
        return cfg
    return OmegaConf.merge(
        cfg, {"search": {"space": {lr_entry(cfg): {"low": found.low, "high": found.high}}}}
    )


def bounds(figures: lr_curve.RangeFigures) -> tuple[float, float]:
    if figures.plateau_edge_lr is None or not figures.plateau_edge_lr < figures.min_loss_lr:
        raise InputError(
            "search.lr_range=auto: the range test's loss never fell from its start before lr "
            f"{figures.last_lr:.3g}; raise lr_find.end_lr or lr_find.steps, or set the entry's low "
            "and high"
        )
    return figures.plateau_edge_lr, figures.min_loss_lr


def log_lr_range(
    result: tuple[RangeTest, lr_curve.RangeFigures] | None, cfg: DictConfig, chance_loss: float
) -> None:
    """The range test on the sweep's parent run: its figures prefixed lr_find_, its plot
    lr_find.png."""
    if result is None:
        return
    test, figures = result
    mlflow.log_metrics({f"lr_find_{name}": value for name, value in figures.metrics().items()})
    figure = lr_curve.range_figure(
        test.lrs,
        test.losses,
        cfg.lr_find.smoothing,
        figures,
        chance_loss,
        cfg.lr_find.tolerance,
        f"range test before sweep {cfg.search.study_name}",
    )
    mlflow.log_figure(figure, "lr_find.png")
    lr_curve.plt.close(figure)
