"""Figures and terminal summaries made from training histories."""

import logging
import math
import statistics

import matplotlib

matplotlib.use("Agg")  # files only: runs are often unattended, with no display
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from optuna.trial import TrialState

from pipeline.core import ranking
from pipeline.report.diagnosis import plateau_diagnosis
from pipeline.core.names import Attr, Fig, start_label


def learning_curves_figure(
    history: dict[str, list[float]], title: str, chance_loss: float | None = None
) -> plt.Figure:
    """Loss and accuracy per epoch, training vs validation, side by side; chance level dashed on the
    loss; and the gradient signal (grad_norm, update_ratio) when it was logged
    (train.log_gradients)."""
    gradients = "grad_norm" in history
    figure, axes = plt.subplots(
        1, 3 if gradients else 2, figsize=(15 if gradients else 10, 4), constrained_layout=True
    )
    if gradients:
        draw_gradient_signal(axes[2], history)
    for axis, metric in zip(axes, ("loss", "accuracy")):
        for prefix, label in (("", "train"), ("val_", "validation")):
            values = history.get(prefix + metric, [])
            axis.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=label)
        axis.set(xlabel="epoch", ylabel=metric, title=metric)
        axis.grid(alpha=0.3)
    if chance_loss is not None:
        draw_chance(axes[0], chance_loss)
    fix_loss_range(axes[0], [history.get("loss", []), history.get("val_loss", [])], chance_loss)
    axes[1].set_ylim(0, 1.02)
    for axis in axes:
        whole_epochs(axis)
    for axis in axes[:2]:
        axis.legend()
    figure.suptitle(title)
    return figure


def whole_epochs(axis) -> None:
    """Epoch ticks at whole numbers (a run of 3 epochs had ticks at 1.25, 1.5, ...)."""
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))


def fix_loss_range(axis, curves: list[list[float]], chance_loss: float | None) -> None:
    """A loss axis from 0 to a little above chance (or the highest loss, up to 3 x chance): a
    plateau at chance looks flat, not like a steady fall autoscaled to 0.683-0.693."""
    finite = [v for curve in curves for v in curve if v is not None and math.isfinite(v)]
    if not finite:
        return
    top = (
        max(finite) if chance_loss is None else max(chance_loss, min(max(finite), 3 * chance_loss))
    )
    axis.set_ylim(0, top * 1.15)


def draw_gradient_signal(axis, history: dict[str, list[float]]) -> None:
    """grad_norm (left scale) and update_ratio (right scale) per epoch, both logarithmic: a
    vanishing gradient falls on both; a large gradient without progress keeps its norm while the
    loss stays flat."""
    epochs = range(1, len(history["grad_norm"]) + 1)
    axis.plot(epochs, history["grad_norm"], marker="o", markersize=3, color="C2", label="grad_norm")
    axis.set(
        xlabel="epoch",
        ylabel="grad_norm (mean over the epoch's steps)",
        yscale="log",
        title="gradient signal",
    )
    axis.grid(alpha=0.3)
    ratio_axis = axis.twinx()
    ratio_axis.plot(
        epochs,
        history.get("update_ratio", []),
        marker="s",
        markersize=3,
        color="C3",
        label="update_ratio",
    )
    ratio_axis.set(ylabel="update_ratio (|Δw| / |w| per step)", yscale="log")
    handles = [*axis.get_legend_handles_labels()[0], *ratio_axis.get_legend_handles_labels()[0]]
    axis.legend(handles=handles, loc="best")


def draw_chance(axis, chance_loss: float) -> None:
    """The loss of predicting the training label frequency: a curve on this line has learned nothing
    yet."""
    axis.axhline(
        chance_loss, color="grey", linestyle="--", linewidth=1, label=f"chance ({chance_loss:.3f})"
    )


def confusion_figure(report: dict) -> plt.Figure:
    """The test split's confusion matrix with class names (rows: true class), each cell its count
    and row share."""
    names, matrix = report["class_names"], report["confusion_matrix"]
    size = max(4.0, 0.7 * len(names) + 2.5)
    figure, axis = plt.subplots(figsize=(size + 1, size), constrained_layout=True)
    totals = [max(sum(row), 1) for row in matrix]
    shares = [[n / total for n in row] for row, total in zip(matrix, totals)]
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            colour = "white" if shares[i][j] > 0.6 else "black"
            axis.text(
                j,
                i,
                f"{count}\n{shares[i][j]:.0%}",
                ha="center",
                va="center",
                color=colour,
                fontsize="small",
            )
    axis.set_xticks(
        range(len(names)), names, rotation=45 if max(map(len, names)) > 4 else 0, ha="right"
    )
    axis.set_yticks(range(len(names)), names)
    axis.set(
        xlabel="predicted class",
        ylabel="true class",
        title=f"test: accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}",
    )
    figure.colorbar(image, ax=axis, label="share of the true class")
    return figure


def format_report(report: dict) -> list[str]:
    """The confusion matrix (rows: true class) and per-class scores as aligned text lines."""
    names = report["class_names"]
    width = max(8, *(len(name) for name in names))
    counts = (len(str(n)) for row in report["confusion_matrix"] for n in row)
    # a longer class name is cut in the header
    cell = max(6, *(min(len(name), 12) for name in names), *counts)
    lines = [
        "Confusion matrix (rows: true class, columns: predicted):",
        f"  {'':<{width}}  " + " ".join(f"{name[:cell]:>{cell}}" for name in names),
    ]
    lines += [
        f"  {name:<{width}}  " + " ".join(f"{n:>{cell}}" for n in row)
        for name, row in zip(names, report["confusion_matrix"])
    ]
    lines.append(f"  {'class':<{width}}  {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}")
    lines += [
        f"  {row['class']:<{width}}  {row['precision']:>9.4f} {row['recall']:>9.4f} "
        f"{row['f1']:>9.4f} {row['support']:>8}"
        for row in report["classes"]
    ]
    return lines


def format_summary(summary: dict[str, float]) -> str:
    """One `name  value` line per figure, for the end of a run."""
    width = max(map(len, summary), default=0)
    return "\n".join(f"  {name:<{width}}  {value:.4g}" for name, value in summary.items())


# ---------------------------------------------------------------------------------------- sweeps


def best_trial(study):
    """The best trial (ranking's order: a tie on the value goes to the lower validation loss); in a
    two-objective study, the Pareto trial best on the first objective."""
    if len(study.directions) == 1:
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not done:
            raise ValueError("No trials are completed yet.")
        return ranking.ranked_trials(done, study.direction.name == "MAXIMIZE")[0]
    pick = max if study.directions[0].name == "MAXIMIZE" else min
    return pick(study.best_trials, key=lambda trial: trial.values[0])


def sweep_counts(trials) -> dict[str, int]:
    states = [trial.state.name for trial in trials]
    return {
        f"trials_{state.lower()}": states.count(state) for state in ("COMPLETE", "PRUNED", "FAIL")
    }


def counts_line(study, mine, wall_seconds: float) -> str:
    """What this invocation added, and what the study holds now."""
    counts, total = sweep_counts(mine), sweep_counts(study.trials)
    return (
        f"Study {study.study_name!r}: this run added {plural(len(mine), 'trial')} in "
        f"{wall_seconds:.0f} s ({counts['trials_complete']} complete, {counts['trials_pruned']} "
        f"pruned, {counts['trials_fail']} failed); the study holds {len(study.trials)} "
        f"({total['trials_complete']} complete, {total['trials_pruned']} pruned, "
        f"{total['trials_fail']} failed)"
    )


def sweep_summary(
    study,
    mine,
    wall_seconds: float,
    confirmed: list,
    confirm_seconds: float,
    data,
    stopped: Exception | None = None,
    objective: str = "val_accuracy",
    folds: int = 1,
    can_fold: bool = True,
) -> str:
    """The end-of-sweep text: this invocation's counts and wall time, what the data lost, plateaus
    stopped early, the winner confirmed over seeds (or the study's best trial), the Pareto front."""
    counts, total = sweep_counts(mine), sweep_counts(study.trials)
    lines = [counts_line(study, mine, wall_seconds)]
    if stopped is not None:
        lines.append(f"Stopped: {stopped}")
    lines.append(data_line(data))
    if folds > 1:
        lines.append(
            f"Validation: {folds}-fold cross-validation over the {validated(data, folds)} training "
            "and validation texts (search.cv_folds); each trial's value is the mean over its folds"
        )
    empty_texts = data.empty_texts
    if any(empty_texts.values()):
        lines.append(
            f"Data: texts with no token after standardization: {empty_texts.get('train', 0)} "
            f"dropped from train, {empty_texts.get('val', 0)} from validation, "
            f"{empty_texts.get('test', 0)} kept in test as one OOV token"
        )
    if counts["trials_pruned"]:
        lines.append(pruning_line(mine, counts["trials_pruned"], wall_seconds))
    lines += censored_plateau_lines(mine)
    lines += plateau_table_lines(study.trials)
    lines += plateau_diagnosis(study.trials)
    if not total["trials_complete"]:
        return "\n".join(lines + ["No trial has completed yet."])
    lines += winner_lines(study, confirmed, confirm_seconds, objective)
    return "\n".join(lines + warning_lines(study, confirmed, data, objective, folds, can_fold))


def validated(data, folds: int) -> int:
    """How many texts a trial's value was measured on: the validation split, or every text once
    across the folds."""
    sizes = data.sizes()
    return sizes["val"] + (sizes["train"] if folds > 1 else 0)


def warning_lines(
    study, confirmed: list, data, objective: str, folds: int = 1, can_fold: bool = True
) -> list[str]:
    """Plain warnings about the answer itself: leaders the validation split cannot tell apart, a
    winner within noise of chance on the test split, a winner whose best epoch was its first."""
    if len(study.directions) > 1:
        return []
    winner = confirmed[0].trial if confirmed else best_trial(study)
    lines = leaders_warning(study, winner, validated(data, folds), objective, folds, can_fold)
    lines += chance_warning(confirmed, data)
    if winner.user_attrs.get(Fig.best_epoch) == 1:
        planned = winner.user_attrs.get(Attr.epochs_planned)
        lines.append(
            "Warning: the winner's best epoch was its first (of "
            f"{winner.user_attrs.get(Fig.epochs_run, planned):.0f} run): it may have barely "
            "trained. Look at its curves; raise train.epochs or lower the learning rate."
        )
    return lines


def standard_error(share: float, count: int) -> float:
    """The standard error of a share (an accuracy) measured on `count` texts; a share of 0 or 1
    counts as 1/count from its bound (one text more or less), not as an exact figure."""
    share = min(max(share, 1 / count), 1 - 1 / count)
    return math.sqrt(share * (1 - share) / count)


def leaders_warning(
    study, winner, n_val: int, objective: str, folds: int = 1, can_fold: bool = True
) -> list[str]:
    """Trials whose value ties the winner's, or (an accuracy or F1 objective) lies within one
    standard error of it."""
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.number != winner.number
    ]
    tied = [t for t in done if ranking.ties(t.value, winner.value)]
    error = standard_error(winner.value, n_val) if n_val and "loss" not in objective else 0.0
    close = [t for t in done if abs(t.value - winner.value) <= error]
    if not close and not tied:
        return []
    how = (
        f"{others(len(tied), 'ties', 'tie')} with it at {objective} {winner.value:.4f}; the lower "
        "validation loss decided"
        if tied
        else f"{others(len(close), 'scores', 'score')} within one standard error (±{error:.3f} "
        f"on {n_val} validation texts) of its {objective} {winner.value:.4f}"
    )
    remedy = (
        "More data would separate them."
        if folds > 1 or not can_fold
        else "More data, or search.cv_folds=5, would separate them."
    )
    return [f"Warning: the validation split cannot tell the leaders apart: {how}. {remedy}"]


def others(count: int, one: str, many: str) -> str:
    return f"1 other trial {one}" if count == 1 else f"{count} other trials {many}"


def chance_warning(confirmed: list, data) -> list[str]:
    """The winner's test accuracy within two standard errors of always answering the most frequent
    class."""
    tests = confirmed[0].test_accuracies if confirmed else []
    n_test = data.sizes()["test"]
    if not tests or not n_test:
        return []
    accuracy, chance = mean_sd(tests)[0], data.chance_accuracy()
    noise = 2 * standard_error(chance, n_test)
    if accuracy - chance > noise:
        return []
    return [
        f"Warning: the winner's test accuracy {accuracy:.4f} is within noise of chance "
        f"({chance:.4f} ± {noise:.4f} on {n_test} test texts): it may have learned nothing. Try "
        "more epochs, other learning rates or more data."
    ]


def data_line(data) -> str:
    """The classes, the split sizes and chance level, in the terms of K classes."""
    sizes = data.sizes()
    names = ", ".join(data.class_names)
    return (
        f"Data: {data.num_classes} classes ({names}); {sizes['train']} train, {sizes['val']} "
        f"validation, {sizes['test']} test texts. Chance level: loss {data.chance_loss():.4f} (the "
        f"entropy of the training label frequencies; ln {data.num_classes} = "
        f"{math.log(data.num_classes):.4f} if balanced), accuracy {data.chance_accuracy():.4f} "
        "(always the most frequent class)"
    )


def test_report_lines(confirmed: list) -> list[str]:
    """The winner's own model on the test split: accuracy, macro-F1, the confusion matrix, per-class
    scores."""
    report = confirmed[0].test_report if confirmed else None
    if not report:
        return []
    winner = confirmed[0]
    # the confirmation table has the mean
    seed = f", seed {winner.seeds[0]}" if len(winner.seeds) > 1 else ""
    lines = [
        f"Winner on the test split (trial {winner.trial.number}'s own model{seed}): "
        f"accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}"
    ]
    return lines + [f"  {line}" for line in format_report(report)]


def winner_lines(
    study, confirmed: list, confirm_seconds: float, objective: str = "val_accuracy"
) -> list[str]:
    """The best trial against the baseline, the winner's parameters, its confirmation over seeds,
    the Pareto front. Figures are named by the objective (`val_accuracy 0.7889`), not as a bare
    value."""
    best = best_trial(study)
    name = objective if len(study.directions) == 1 else "values"
    values = ", ".join(f"{v:.4f}" for v in best.values)
    folds = best.user_attrs.get(Fig.cv_folds, 1)
    spread = (
        f", the mean of {folds:.0f} folds, sd {best.user_attrs[Fig.cv_sd]:.4f}" if folds > 1 else ""
    )
    lines = [
        f"Best trial {best.number}: {name} {values} (best epoch "
        f"{best.user_attrs.get(Fig.best_epoch, 0):.0f}{spread})"
    ]
    baseline = next((t for t in study.trials if t.user_attrs.get(Attr.baseline) and t.values), None)
    if baseline and len(study.directions) == 1:
        lines.append(
            f"  {'baseline':<20} trial {baseline.number} (the config's own values): {name} "
            f"{baseline.value:.4f}"
        )
    placed = [
        t
        for t in study.trials
        if start_label(t) not in (None, "baseline") and t.values and len(t.values) == 1
    ]
    lines += [
        f"  {start_label(t):<20} trial {t.number} (placed before the sampler chose): {name} "
        f"{t.value:.4f}"
        for t in placed
    ]
    winner = confirmed[0].trial if confirmed else best
    if winner.number != best.number:
        lines.append(
            f"Winner: trial {winner.number}, by its mean over seeds (the table below). Its "
            "settings:"
        )
    lines += [f"  {key:<20} {value}" for key, value in winner.params.items()]
    lines += confirmation_lines(best, confirmed, confirm_seconds)
    lines += test_report_lines(confirmed)
    if len(study.directions) > 1:
        lines.append("Pareto front (trial: values):")
        lines += [
            f"  {t.number}: {', '.join(f'{v:.4f}' for v in t.values)}"
            for t in sorted(study.best_trials, key=lambda t: t.number)
        ]
    return lines


def censored_plateau_lines(trials) -> list[str]:
    """How many trials ended while still on their loss plateau: their plateau_epochs is a lower
    bound."""
    censored = [
        t
        for t in trials
        if t.user_attrs.get(Fig.plateau_censored) and t.user_attrs.get(Fig.plateau_epochs, 0) >= 2
    ]
    if not censored:
        return []
    pruned = sum(t.state.name == "PRUNED" for t in censored)
    its = "its" if len(censored) == 1 else "their"
    return [
        f"Stopped on their plateau: {plural(len(censored), 'trial')} ({pruned} pruned) ended while "
        f"{its} training loss was still flat, so {its} plateau_epochs is a lower bound (marked in "
        "plateau_vs_learning_rate.png); search.pruner=patient lets slow starters run on"
    ]


def confirmation_lines(best, confirmed: list, confirm_seconds: float) -> list[str]:
    """The seed-confirmation table and the winner by mean, or the single best trial's test score."""
    if not confirmed:
        return []
    winner = confirmed[0]
    if len(confirmed) == 1 and len(winner.seeds) == 1:
        tests = winner.test_accuracies
        return (
            [
                f"  {'test accuracy':<20} {tests[0]:.4f} (its model, evaluated once on the test "
                "split)"
            ]
            if tests
            else []
        )
    lines = [
        confirmation_heading(len(confirmed), len(winner.seeds) - 1, confirm_seconds),
        f"  {'trial':>5}  {'seeds':<12} {'value mean ± sd':<18} {'test accuracy mean ± sd':<24} "
        "config",
    ]
    for row in confirmed:
        config = " ".join(
            f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}"
            for name, value in row.trial.params.items()
        )
        seeds = ",".join(map(str, row.seeds))
        lines.append(
            f"  {row.trial.number:>5}  {seeds:<12} {row.describe(row.values):<18} "
            f"{row.describe(row.test_accuracies):<24} {config}"
        )
    changed = winner.trial.number != best.number
    lines.append(
        f"Winner by mean over seeds: trial {winner.trial.number} — "
        + (
            f"confirmation changed the ranking (the single best trial was {best.number})"
            if changed
            else "the single best trial held its place"
        )
    )
    return lines


def confirmation_heading(trials: int, extra_seeds: int, seconds: float) -> str:
    top = "the best trial" if trials == 1 else f"the top {trials} trials"
    seeds = (
        f"{extra_seeds} more training "
        f"seed{'' if extra_seeds == 1 else 's'}{'' if trials == 1 else ' each'}"
    )
    return f"Confirmation: {top} with {seeds} (+{seconds:.0f} s; the data split stays fixed)"


def version_description(confirmed: list, objective: str, study_name: str) -> str:
    """The registered version's description: what won, its scores over seeds and on the test
    split."""
    winner = confirmed[0]
    value, value_sd = mean_sd(winner.values)
    seeds = plural(len(winner.seeds), "seed")
    text = (
        f"Trial {winner.trial.number} of study {study_name}: {objective} {value:.4f} ± "
        f"{value_sd:.4f} over {seeds}"
    )
    if winner.test_accuracies:
        accuracy, accuracy_sd = mean_sd(winner.test_accuracies)
        text += f"; test accuracy {accuracy:.4f} ± {accuracy_sd:.4f}"
    if winner.test_report:
        text += f", macro-F1 {winner.test_report['macro_f1']:.4f}"
    settings = ", ".join(
        f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in winner.trial.params.items()
    )
    return f"{text}. Settings: {settings}."


def champion_note(confirmed: list, objective: str, study_name: str, registered: str | None) -> str:
    """optuna-dashboard's note on the study (Markdown): the champion, and why it can differ from the
    dashboard's own Best Trial."""
    winner = confirmed[0]
    where = (
        f"Registered as `{registered}`."
        if registered
        else "Not registered (search.register_as is null)."
    )
    return "\n".join(
        [
            f"## Champion: trial {winner.trial.number}",
            "",
            where,
            "",
            version_description(confirmed, objective, study_name),
            "",
            "Best Trial ranks each trial on its own training seed. The champion has the best mean "
            "over seeds (rnn-sweep trains its top trials again with more seeds), so the two can "
            "differ.",
        ]
    )


def winner_figures(confirmed: list, confirm_seconds: float) -> dict[str, float]:
    """The sweep's answer as parent-run metrics: the winner, its mean and spread over seeds."""
    if not confirmed:
        return {}
    winner = confirmed[0]
    value_mean, value_sd = mean_sd(winner.values)
    figures = {
        "best_trial": winner.trial.number,
        "best_value_mean": value_mean,
        "best_value_sd": value_sd,
        "confirm_seeds_per_trial": len(winner.seeds),
        "confirm_seconds": confirm_seconds,
    }
    if winner.test_accuracies:
        figures["best_test_accuracy"], figures["best_test_accuracy_sd"] = mean_sd(
            winner.test_accuracies
        )
    if winner.test_report:
        figures["best_test_macro_f1"] = winner.test_report["macro_f1"]
    return figures


def mean_sd(figures: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation of the finite figures (sd 0 for one, NaN for none)."""
    finite = [f for f in figures if math.isfinite(f)]
    if not finite:
        return math.nan, math.nan
    return statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else 0.0


def plural(count: int, noun: str) -> str:
    """'1 trial', '2 trials'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def pruning_line(mine, pruned: int, wall_seconds: float) -> str:
    """What pruning saved, said against this run's own time: the epochs not trained, and how long
    the run would have taken without pruning (the trials' saved seconds shared by the trials that
    ran at once), so no saving reads as larger than the run."""
    saved_epochs, saved_seconds = pruning_savings(mine)
    longer = saved_seconds / max(1, most_at_once(mine))
    return (
        f"Pruning stopped {plural(pruned, 'trial')} early: {plural(saved_epochs, 'epoch')} not "
        f"trained; without pruning this run would have taken about {wall_seconds + longer:.0f} s, "
        f"not {wall_seconds:.0f} s"
    )


def most_at_once(trials) -> int:
    """The most trials that ran at the same moment (worker processes, or invocations of one
    study)."""
    events = sorted(
        [(t.datetime_start, 1) for t in trials if t.datetime_start and t.datetime_complete]
        + [(t.datetime_complete, -1) for t in trials if t.datetime_start and t.datetime_complete]
    )
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def pruning_savings(trials) -> tuple[int, float]:
    """Epochs the pruned trials did not train, and those epochs' seconds at each trial's own epoch
    pace."""
    epochs, seconds = 0, 0.0
    for trial in trials:
        attrs = trial.user_attrs
        if trial.state.name == "PRUNED" and attrs.get(Fig.epochs_run):
            trained = attrs.get(Fig.epochs_trained, attrs[Fig.epochs_run])
            missing = attrs[Attr.epochs_planned] - attrs[Fig.epochs_run]
            # the folds not run and the final model, each at most epochs_planned
            if attrs.get(Fig.cv_folds, 1) > 1:
                missing += attrs[Attr.epochs_planned] * (
                    attrs[Fig.cv_folds] - attrs[Fig.cv_folds_run] + 1
                )
            epochs += int(missing)
            seconds += missing * attrs[Fig.fit_seconds] / trained
    return epochs, seconds


def sweep_figures(study, objective: str) -> dict[str, plt.Figure]:
    """Optuna's own plots of the study, and ours of the learning rate against the curves and the
    plateau."""
    import warnings

    from optuna.visualization import matplotlib as optuna_plots

    target = None if len(study.directions) == 1 else (lambda trial: trial.values[0])
    makers = {
        "optimization_history": optuna_plots.plot_optimization_history,
        "param_importances": optuna_plots.plot_param_importances,
        "parallel_coordinates": optuna_plots.plot_parallel_coordinate,
    }
    figures = {}
    for name, make in makers.items():
        try:
            # rc_context: Optuna's plots switch matplotlib to its ggplot style for good; ours keep
            # the default
            with warnings.catch_warnings(), matplotlib.rc_context():
                # experimental-API and few-trials warnings: the plot says enough
                warnings.simplefilter("ignore")
                figures[name] = readable(make(study, target=target, target_name=objective).figure)
        # too few trials or values for this plot
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            logging.getLogger(__name__).info("no %s plot: %s", name, error)
    charted = [t for t in study.trials if Attr.curve("loss") in t.user_attrs]
    if charted:
        figures["learning_curves_by_learning_rate"] = curves_by_learning_rate(charted)
        figures["plateau_vs_learning_rate"] = plateau_vs_learning_rate(charted)
    return figures


def readable(figure: plt.Figure) -> plt.Figure:
    """Optuna's plot at a size where its parameter names fit ('rning_rate' was clipped), laid out
    anew."""
    width, height = figure.get_size_inches()
    figure.set_size_inches(max(width, 10), max(height, 5))
    figure.tight_layout()
    return figure


def curves_by_learning_rate(trials) -> plt.Figure:
    """Every trial's training and validation loss per epoch, coloured by its learning rate."""
    from matplotlib import cm, colors

    rates = [t.user_attrs[Attr.learning_rate] for t in trials]
    norm = colors.LogNorm(min(rates), max(rates) * (1.0001 if min(rates) == max(rates) else 1))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for trial in trials:
        colour = cm.viridis(norm(trial.user_attrs[Attr.learning_rate]))
        for axis, curve in zip(axes, (Attr.curve("loss"), Attr.curve("val_loss"))):
            values = [v if v is not None else float("nan") for v in trial.user_attrs.get(curve, [])]
            axis.plot(range(1, len(values) + 1), values, color=colour, alpha=0.8)
    chance = next(
        (t.user_attrs[Fig.chance_loss] for t in trials if Fig.chance_loss in t.user_attrs), None
    )
    for axis, title, curve in zip(axes, ("training loss", "validation loss"), ("loss", "val_loss")):
        axis.set(xlabel="epoch", ylabel="loss", title=title)
        axis.grid(alpha=0.3)
        whole_epochs(axis)
        fix_loss_range(axis, [t.user_attrs.get(Attr.curve(curve), []) for t in trials], chance)
        if chance is not None:
            draw_chance(axis, chance)
            axis.legend(loc="upper right")
    figure.colorbar(cm.ScalarMappable(norm=norm, cmap=cm.viridis), ax=axes, label="learning rate")
    return figure


def plateau_vs_learning_rate(trials) -> plt.Figure:
    """plateau_epochs of every trial against its learning rate: the plateau reveal. A trial that
    ended still on its plateau (censored) is drawn as an upward triangle: read it as "at least this
    many epochs". When the search also varied categorical settings such as model.mask_padding or
    data.padding, each setting is one series (one colour, points nudged apart sideways so equal
    values stay visible)."""
    figure, axis = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    series = plateau_series(trials)
    if len(series) == 1:
        draw_states(axis, trials)
    else:
        for index, (label, members) in enumerate(series.items()):
            draw_series(
                axis,
                members,
                label,
                f"C{index % 10}",
                10 ** ((index - (len(series) - 1) / 2) * 0.04),
            )
        if any(t.user_attrs.get(Fig.plateau_censored) for t in trials):
            axis.scatter(
                [],
                [],
                marker="^",
                facecolors="none",
                edgecolors="grey",
                label="still on its plateau (≥)",
            )
        # a legend entry only for a mark drawn
        for state, marker in (("PRUNED", "x"), ("FAIL", "s")):
            if any(
                t.state.name == state and not t.user_attrs.get(Fig.plateau_censored) for t in trials
            ):
                axis.scatter([], [], marker=marker, color="grey", label=state.lower())
    axis.set(
        xscale="log",
        xlabel="learning rate",
        ylabel="plateau_epochs",
        title="loss plateau vs learning rate",
    )
    axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    return figure


def draw_states(axis, trials) -> None:
    """One colour per trial state; censored plateaus hollow triangles."""
    for state, marker in (("COMPLETE", "o"), ("PRUNED", "x"), ("FAIL", "s")):
        for censored in (False, True):
            chosen = [
                t
                for t in trials
                if t.state.name == state
                and bool(t.user_attrs.get(Fig.plateau_censored)) == censored
            ]
            if chosen:
                rates = [t.user_attrs[Attr.learning_rate] for t in chosen]
                plateaus = [t.user_attrs[Fig.plateau_epochs] for t in chosen]
                style = (
                    {
                        "marker": "^",
                        "facecolors": "none",
                        "edgecolors": f"C{('COMPLETE', 'PRUNED', 'FAIL').index(state)}",
                    }
                    if censored
                    else {
                        "marker": marker,
                        "color": f"C{('COMPLETE', 'PRUNED', 'FAIL').index(state)}",
                    }
                )
                label = f"{state.lower()}, still on its plateau (≥)" if censored else state.lower()
                axis.scatter(rates, plateaus, label=label, **style)


def draw_series(axis, trials, label: str, colour: str, nudge: float) -> None:
    """One setting's trials: a line through its mean plateau per learning rate, a marker per trial
    (hollow triangle: censored, x: pruned, square: failed)."""
    by_rate = {}
    for trial in trials:
        by_rate.setdefault(trial.user_attrs[Attr.learning_rate], []).append(
            trial.user_attrs[Fig.plateau_epochs]
        )
    rates = sorted(by_rate)
    axis.plot(
        [r * nudge for r in rates],
        [statistics.fmean(by_rate[r]) for r in rates],
        color=colour,
        alpha=0.6,
        label=label,
    )
    for trial in trials:
        x, y = trial.user_attrs[Attr.learning_rate] * nudge, trial.user_attrs[Fig.plateau_epochs]
        if trial.user_attrs.get(Fig.plateau_censored):
            axis.scatter([x], [y], marker="^", facecolors="none", edgecolors=colour, s=60)
        else:
            axis.scatter(
                [x],
                [y],
                marker={"PRUNED": "x", "FAIL": "s"}.get(trial.state.name, "o"),
                color=colour,
            )


MAX_SERIES = 8  # more settings than this make the chart unreadable: then it draws all trials as one


def setting(trial) -> str:
    """The trial's values of the searched categorical settings that are not numbers
    (model.mask_padding, data.padding, optimizer, model.body ...), as `name=value` text; "" when the
    search varied none."""
    from optuna.distributions import CategoricalDistribution

    chosen = [
        (name, trial.params[name])
        for name, distribution in trial.distributions.items()
        if isinstance(distribution, CategoricalDistribution)
        and all(isinstance(choice, (bool, str)) for choice in distribution.choices)
    ]
    return ", ".join(
        f"{name}={str(value).lower() if isinstance(value, bool) else value}"
        for name, value in chosen
    )


def plateau_series(trials) -> dict[str, list]:
    """The trials grouped by their setting (see `setting`); one group when there are none or too
    many."""
    series = {}
    for trial in sorted(trials, key=setting):
        series.setdefault(setting(trial), []).append(trial)
    return series if len(series) <= MAX_SERIES else {"": list(trials)}


def plateau_table_lines(trials) -> list[str]:
    """plateau_epochs by setting (rows) and learning rate (columns), when the trials form such a
    grid: at most 10 learning rates, and at least half of the cells filled. `≥n`: censored, the run
    ended still on its plateau; several trials in one cell: their values, comma-separated."""
    charted = [
        t
        for t in trials
        if Fig.plateau_epochs in t.user_attrs and Attr.learning_rate in t.user_attrs
    ]
    series = plateau_series(charted)
    rates = sorted({t.user_attrs[Attr.learning_rate] for t in charted})
    cells = {
        (t.user_attrs[Attr.learning_rate], label)
        for label, members in series.items()
        for t in members
    }
    if not charted or len(rates) > 10 or len(cells) * 2 < len(rates) * len(series):
        return []
    width = max(len(label) for label in series) or len("plateau_epochs")
    lines = [
        "Plateau epochs by "
        + ("setting and " if len(series) > 1 else "")
        + "learning rate (≥: still on its plateau when the run ended):",
        f"  {'learning rate':<{width}}  " + "  ".join(f"{rate:>7.3g}" for rate in rates),
    ]
    for label, members in series.items():
        row = []
        for rate in rates:
            values = [
                f"{'≥' if t.user_attrs.get(Fig.plateau_censored) else ''}"
                f"{t.user_attrs[Fig.plateau_epochs]:.0f}"
                for t in members
                if t.user_attrs[Attr.learning_rate] == rate
            ]
            row.append(f"{','.join(values) or '-':>7}")
        lines.append(f"  {label or 'plateau_epochs':<{width}}  " + "  ".join(row))
    return lines


def sweep_note(
    study_name: str,
    summary: str,
    confirmed: list,
    registered: str | None,
    trials_href: str | None = None,
) -> str:
    """The parent run's description in the MLflow UI (Markdown): the winner, its parameters, its
    test score, where its model is registered, a link to the study's trials (`trials_href`), then
    the whole end-of-sweep summary (counts, plateaus, confirmation)."""
    lines = [f"### Sweep `{study_name}`", ""]
    if trials_href:
        lines += [f"[All trials of the study, best first]({trials_href})", ""]
    if confirmed:
        winner = confirmed[0]
        test = winner.describe(winner.test_accuracies)
        lines += [
            f"**Winner: trial {winner.trial.number}**, objective {winner.describe(winner.values)} "
            f"over {len(winner.seeds)} training seed(s); test accuracy {test}.",
            "",
        ]
        if registered:
            lines += [f"Registered as `{registered}`.", ""]
        lines += ["| parameter | value |", "|---|---|"]
        lines += [
            f"| {name} | {value:.4g} |" if isinstance(value, float) else f"| {name} | {value} |"
            for name, value in winner.trial.params.items()
        ]
        lines.append("")
    return "\n".join(lines + summary_markdown(summary))


# a block of aligned columns stays a code block up to this width; wider ones wrap as text
PRE_WIDTH = 100


def summary_markdown(summary: str) -> list[str]:
    """The end-of-sweep summary as Markdown that wraps in the UI: a line is a bullet, a block of
    indented lines is a code block when it is a narrow table and nested bullets when it is prose."""
    lines, block = [], []

    def flush():
        if block and max(map(len, block)) <= PRE_WIDTH:
            lines.extend(["", "```", *block, "```", ""])
        else:
            lines.extend(f"  - {line.strip()}" for line in block)
        block.clear()

    for line in summary.strip("\n").splitlines():
        if line.startswith("  ") and line.strip():
            block.append(line)
            continue
        flush()
        if line.strip():
            lines.append(f"- {line.strip()}")
    flush()
    return lines
