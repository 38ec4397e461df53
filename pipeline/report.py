"""Figures and terminal summaries made from training histories."""

import logging

import matplotlib

matplotlib.use("Agg")  # files only: runs are often unattended, with no display
import matplotlib.pyplot as plt


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


# ---------------------------------------------------------------------------------------- sweeps


def best_trial(study):
    """The best trial; in a two-objective study, the Pareto trial best on the first objective."""
    if len(study.directions) == 1:
        return study.best_trial
    pick = max if study.directions[0].name == "MAXIMIZE" else min
    return pick(study.best_trials, key=lambda trial: trial.values[0])


def sweep_counts(trials) -> dict[str, int]:
    states = [trial.state.name for trial in trials]
    return {f"trials_{state.lower()}": states.count(state) for state in ("COMPLETE", "PRUNED", "FAIL")}


def sweep_summary(study, mine, wall_seconds: float, best_test: dict) -> str:
    """The end-of-sweep table: this invocation's counts and wall time, the study's best trial, the Pareto front."""
    counts = sweep_counts(mine)
    total = sweep_counts(study.trials)
    lines = [
        f"\nStudy {study.study_name!r}: this run added {len(mine)} trials in {wall_seconds:.0f} s "
        f"({counts['trials_complete']} complete, {counts['trials_pruned']} pruned, {counts['trials_fail']} failed); "
        f"the study holds {len(study.trials)} ({total['trials_complete']} complete, {total['trials_pruned']} pruned, "
        f"{total['trials_fail']} failed)",
    ]
    saved_epochs, saved_seconds = pruning_savings(mine)
    if counts["trials_pruned"]:
        lines.append(f"Pruning stopped {counts['trials_pruned']} trials early: {saved_epochs} epochs not trained, about {saved_seconds:.0f} s saved")
    if not total["trials_complete"]:
        return "\n".join(lines + ["No trial has completed yet."])
    best = best_trial(study)
    values = ", ".join(f"{v:.4f}" for v in best.values)
    lines.append(f"Best trial {best.number}: value {values}")
    baseline = next((t for t in study.trials if t.user_attrs.get("baseline") and t.values), None)
    if baseline and len(study.directions) == 1:
        lines.append(f"  {'baseline':<20} trial {baseline.number} (the config's own values): value {baseline.value:.4f}")
    lines += [f"  {name:<20} {value}" for name, value in best.params.items()]
    if best_test:
        lines.append(f"  {'test accuracy':<20} {best_test['best_test_accuracy']:.4f} (its model, evaluated once on the test split)")
    if len(study.directions) > 1:
        lines.append("Pareto front (trial: values):")
        lines += [f"  {t.number}: {', '.join(f'{v:.4f}' for v in t.values)}" for t in sorted(study.best_trials, key=lambda t: t.number)]
    return "\n".join(lines)


def pruning_savings(trials) -> tuple[int, float]:
    """Epochs the pruned trials did not train, and those epochs' seconds at each trial's own epoch pace."""
    epochs, seconds = 0, 0.0
    for trial in trials:
        attrs = trial.user_attrs
        if trial.state.name == "PRUNED" and attrs.get("epochs_run"):
            missing = attrs["epochs_planned"] - attrs["epochs_run"]
            epochs += int(missing)
            seconds += missing * attrs["fit_seconds"] / attrs["epochs_run"]
    return epochs, seconds


def sweep_figures(study, objective: str) -> dict[str, plt.Figure]:
    """Optuna's own plots of the study, and ours of the learning rate against the curves and the plateau."""
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
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # experimental-API and few-trials warnings: the plot says enough
                figures[name] = make(study, target=target, target_name=objective).figure
        except (ValueError, RuntimeError, ZeroDivisionError) as error:  # too few trials or values for this plot
            logging.getLogger(__name__).info("no %s plot: %s", name, error)
    charted = [t for t in study.trials if "curve_loss" in t.user_attrs]
    if charted:
        figures["learning_curves_by_learning_rate"] = curves_by_learning_rate(charted)
        figures["plateau_vs_learning_rate"] = plateau_vs_learning_rate(charted)
    return figures


def curves_by_learning_rate(trials) -> plt.Figure:
    """Every trial's training and validation loss per epoch, coloured by its learning rate."""
    from matplotlib import cm, colors

    rates = [t.user_attrs["learning_rate"] for t in trials]
    norm = colors.LogNorm(min(rates), max(rates) * (1.0001 if min(rates) == max(rates) else 1))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for trial in trials:
        colour = cm.viridis(norm(trial.user_attrs["learning_rate"]))
        for axis, curve in zip(axes, ("curve_loss", "curve_val_loss")):
            values = [v if v is not None else float("nan") for v in trial.user_attrs.get(curve, [])]
            axis.plot(range(1, len(values) + 1), values, color=colour, alpha=0.8)
    for axis, title in zip(axes, ("training loss", "validation loss")):
        axis.set(xlabel="epoch", ylabel="loss", title=title)
        axis.grid(alpha=0.3)
    figure.colorbar(cm.ScalarMappable(norm=norm, cmap=cm.viridis), ax=axes, label="learning rate")
    return figure


def plateau_vs_learning_rate(trials) -> plt.Figure:
    """plateau_epochs of every trial against its learning rate: the plateau reveal."""
    figure, axis = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for state, marker in (("COMPLETE", "o"), ("PRUNED", "x"), ("FAIL", "s")):
        chosen = [t for t in trials if t.state.name == state]
        if chosen:
            rates = [t.user_attrs["learning_rate"] for t in chosen]
            plateaus = [t.user_attrs["plateau_epochs"] for t in chosen]
            axis.scatter(rates, plateaus, marker=marker, label=state.lower())
    axis.set(xscale="log", xlabel="learning rate", ylabel="plateau_epochs", title="loss plateau vs learning rate")
    axis.grid(alpha=0.3)
    axis.legend()
    return figure
