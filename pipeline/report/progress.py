"""What the terminal shows while a sweep runs, read from the study itself (so it covers every
worker).

On a terminal: a live panel (rich) with the trials done of those asked for, pruned and failed
counts, the best value so far with its metric's name, and one line per running trial with its model,
learning rate and epoch (or fold). Elsewhere (cron, CI, a pipe): one plain line per finished trial,
with the same facts, so a log file tells the same story.
"""

import sys
import time

import optuna
from optuna.trial import TrialState

from pipeline.core import ranking
from pipeline.core.names import Attr

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class SweepProgress:
    """Call `update()` as often as you like (it reads the study), `close()` at the end."""

    def __init__(
        self,
        study: optuna.Study,
        parent_run_id: str | None,
        total: int,
        objective: str,
        live: bool | None = None,
        stream=None,
        pruner: str = "the pruner",
    ):
        self.study, self.parent_run_id, self.total, self.objective = (
            study,
            parent_run_id,
            total,
            objective,
        )
        self.pruner = pruner
        self.stream = stream or sys.stderr
        self.started, self.reported = time.monotonic(), set()
        self.live = None
        if live if live is not None else self.stream.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(
                console=Console(file=self.stream), refresh_per_second=2, transient=False
            )
            self.live.start()

    def mine(self) -> list:
        trials = self.study.get_trials(deepcopy=False)
        return [
            t
            for t in trials
            if self.parent_run_id is None
            or t.user_attrs.get(Attr.mlflow_parent_run_id) == self.parent_run_id
        ]

    def update(self) -> None:
        """A line per newly finished trial (above the live panel on a terminal), then the panel."""
        trials = self.mine()
        for trial in sorted((t for t in trials if t.state in FINISHED), key=lambda t: t.number):
            if trial.number not in self.reported:
                self.reported.add(trial.number)
                self.say(self.finished_line(trial, trials))
        if self.live is not None:
            self.live.update(self.panel(trials))

    def say(self, line: str) -> None:
        """One line for the record: above the live panel, or on its own."""
        if self.live is not None:
            self.live.console.print(line, highlight=False, markup=False)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        try:
            self.update()
        finally:
            if self.live is not None:
                # the cursor back and the terminal as it was, whatever update() met
                self.live.stop()

    def counts(self, trials: list) -> str:
        done = [t for t in trials if t.state in FINISHED]
        pruned = sum(t.state == TrialState.PRUNED for t in done)
        failed = sum(t.state == TrialState.FAIL for t in done)
        return (
            f"{len(done)} of {self.total} trial{'' if self.total == 1 else 's'} done ({pruned} "
            f"pruned, {failed} failed)"
        )

    def best(self) -> str:
        """The study's best trial so far (earlier invocations' too: the one to beat), on the
        objective; a second objective is left to the summary."""
        done = [
            t
            for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.values
        ]
        if not done:
            return f"best {self.objective}: none yet"
        maximize = self.study.directions[0].name == "MAXIMIZE"
        top = min(
            done,
            key=lambda t: ranking.rank_key(t.values[0], t.user_attrs.get(Attr.tie_break), maximize),
        )
        return f"best {self.objective} {top.values[0]:.4f} (trial {top.number})"

    def finished_line(self, trial, trials: list) -> str:
        state = trial.state.name.lower()
        value = (
            f" {self.objective} {trial.values[0]:.4f}"
            if trial.state == TrialState.COMPLETE and trial.values
            else ""
        )
        if trial.state == TrialState.PRUNED:
            state += (
                f" {where_pruned(trial)} by {trial.user_attrs.get(Attr.pruned_by, self.pruner)}"
            )
        return (
            f"trial {trial.number} {state}{value} [{what(trial)}] · {self.counts(trials)} · "
            f"{self.best()} · {elapsed(self.started)}"
        )

    def panel(self, trials: list):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        header = Text(f"{self.counts(trials)} · {self.best()} · {elapsed(self.started)}")
        table = Table(box=None, show_header=True, padding=(0, 2, 0, 0))
        for column in ("running", "model", "progress"):
            table.add_column(column, no_wrap=True)
        for trial in running(trials):
            table.add_row(f"trial {trial.number}", what(trial), step(trial))
        return Group(header, table) if running(trials) else header


def running(trials: list) -> list:
    return [t for t in trials if t.state == TrialState.RUNNING]


def what(trial) -> str:
    """The trial's model in a few characters: its run name less the trial number
    (gru32-lr1.2e-3)."""
    name = trial.user_attrs.get(Attr.run_name, "")
    return (
        name.split("-", 1)[1]
        if "-" in name
        else name or ("starting" if trial.state == TrialState.RUNNING else "—")
    )


def where_pruned(trial) -> str:
    """At which epoch (or after which fold) the pruner stopped the trial: its last reported step."""
    step_number = (trial.last_step or 0) + 1
    folds = trial.user_attrs.get(Attr.folds_planned, 1)
    if folds and folds > 1:
        return (
            "after its last fold (no final model)"
            if step_number == folds
            else f"after fold {step_number}"
        )
    return f"at epoch {step_number}"


def step(trial) -> str:
    """How far the trial is: its epoch of the planned ones (or its fold when cross-validated)."""
    folds = trial.user_attrs.get(Attr.folds_planned, 1)
    if folds and folds > 1:
        return f"fold {min(len(trial.intermediate_values) + 1, folds)} of {folds}"
    planned = trial.user_attrs.get(Attr.epochs_planned)
    epoch = trial.user_attrs.get(Attr.epochs_done, 0) + 1
    return f"epoch {min(epoch, planned)} of {planned}" if planned else f"epoch {epoch}"


def elapsed(started: float) -> str:
    seconds = int(time.monotonic() - started)
    return f"{seconds // 60} min {seconds % 60:02d} s"
