"""What a newcomer meets first: each command's --help, --cfg job, default study names, and summary
lines that say one thing once (issue 28)."""

import datetime
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from pipeline.config import compose
from pipeline.report.sweep_report import pruning_line
from tests.conftest import REPO

COMMANDS = {
    "sweep": "rnn-sweep",
    "train": "rnn-train",
    "lr_find": "rnn-lr-find",
    "predict": "rnn-predict",
    "ui": "rnn-ui",
    "dashboard": "rnn-dashboard",
    "vectors": "rnn-vectors",
}


def run(module: str, *arguments: str) -> tuple[subprocess.CompletedProcess, float]:
    began = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", f"pipeline.cli.{module}", *arguments],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    return result, time.perf_counter() - began


@pytest.mark.parametrize("module", COMMANDS)
def test_help_says_what_the_command_does_and_hides_the_internal_groups(module):
    result, seconds = run(module, "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    assert text.startswith(f"{COMMANDS[module]}: "), text[:200]
    assert "powered by Hydra" not in text and "schema" not in text and "base=" not in text
    assert "Settings you will change most" in text and "Examples:" in text
    assert seconds < 10, (
        f"{seconds:.1f} s: --help must not wait for TensorFlow (about 1 s on an idle machine)"
    )


@pytest.mark.parametrize("module", COMMANDS)
def test_every_setting_help_names_is_declared_in_conf(module):
    import importlib

    from pipeline.cli.help import defaults_of, setting_doc

    cli = importlib.import_module(f"pipeline.cli.{module}").cli
    missing = [
        key for key in cli.settings if setting_doc(key, defaults_of(cli.config_name)) is None
    ]
    assert not missing, (
        f"{COMMANDS[module]} --help names settings conf/ does not declare: {missing}"
    )


def test_rnn_train_help_lists_only_the_groups_it_uses():
    text = run("train", "--help")[0].stdout
    assert "  model=  (default: lstm)" in text and "    gru " in text
    assert "search=" not in text and "lr_find=" not in text
    sweep = run("sweep", "--help")[0].stdout
    assert "  search=  (default: default)" in sweep and "    quick " in sweep


def test_cfg_job_shows_the_config_resolved():
    result, _ = run("train", "--cfg", "job", "seed=7")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "split_seed: 7" in result.stdout and "${" not in result.stdout


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        (["search=quick", "data=sentences"], "quick-sentences"),  # the search varies the body
        (["search=plateau", "data=sentences"], "plateau-sentences-gru"),  # the body stays GRU
        (["search=quick", "data=sentences", "data.target=source"], "quick-sentences_source"),
    ],
)
def test_a_default_study_name_says_what_the_search_keeps_fixed(overrides, name):
    """Issue 28: a search over pooling, GRU and LSTM was named quick-sentences-lstm."""
    cfg = compose(overrides)
    assert cfg.search.study_name == name and cfg.search.register_as == name


def pruned(start: int, seconds: int, epochs_run: int) -> optuna.trial.FrozenTrial:
    """A trial pruned after `epochs_run` of 10 planned epochs, `seconds` s of fitting."""
    began = datetime.datetime(2026, 12, 7, 12, 0, 0) + datetime.timedelta(seconds=start)
    frozen = optuna.trial.create_trial(
        state=TrialState.PRUNED,
        user_attrs={"epochs_run": epochs_run, "epochs_planned": 10, "fit_seconds": float(seconds)},
    )
    frozen.datetime_start, frozen.datetime_complete = (
        began,
        began + datetime.timedelta(seconds=seconds),
    )
    return frozen


def test_the_pruning_saving_is_said_against_the_run_s_own_time():
    """Issue 28: 'about 154 s saved' in a 115 s run read as a saving larger than the run."""
    alone = [
        pruned(0, 20, 2),
        pruned(20, 20, 2),
    ]  # one after the other: 80 s of epochs not trained each
    line = pruning_line(alone, 2, wall_seconds=60)
    assert line == (
        "Pruning stopped 2 trials early: 16 epochs not trained; without pruning this run "
        "would have taken about 220 s, not 60 s"
    )
    together = [
        pruned(0, 20, 2),
        pruned(5, 20, 2),
    ]  # two workers: the 160 s are shared between them
    assert "about 140 s, not 60 s" in pruning_line(together, 2, wall_seconds=60)
    assert pruning_line([pruned(0, 10, 9)], 1, 30).startswith(
        "Pruning stopped 1 trial early: 1 epoch not"
    )


def test_the_parent_run_s_description_wraps_prose_and_keeps_narrow_tables():
    """Issue 28: the summary was one 2,184-px-wide code block that pushed the run's figures off screen."""
    from pipeline.report.sweep_report import PRE_WIDTH, summary_markdown

    summary = "\n".join(
        [
            "Study 'quick-sentences': this run added 8 trials in 158 s "
            + "(2 complete, 6 pruned, 0 failed); " * 3,
            "Plateau diagnosis:",
            "  3 of 8 trials sat on a loss plateau of 2+ epochs — "
            + "trial 2 (lr 0.0001, body gru): ≥ 5, " * 4,
            "  To change: use a learning rate of at least 0.001 for these settings.",
            "Confirmation: the top 2 trials with 2 more training seeds each (+82 s)",
            "  trial  seeds        value mean ± sd",
            "      1  42,43,44     0.8436 ± 0.0012",
        ]
    )
    markdown = summary_markdown(summary)
    fences = [i for i, line in enumerate(markdown) if line == "```"]
    assert len(fences) == 2, markdown
    inside = markdown[fences[0] + 1 : fences[1]]
    assert inside == [
        "  trial  seeds        value mean ± sd",
        "      1  42,43,44     0.8436 ± 0.0012",
    ]
    assert all(len(line) <= PRE_WIDTH for line in inside)
    assert (
        markdown[0].startswith("- Study 'quick-sentences'") and "- Plateau diagnosis:" in markdown
    )
    assert "  - 3 of 8 trials sat on a loss plateau" in "\n".join(markdown), (
        "long prose: nested bullets"
    )


def progress_study() -> optuna.Study:
    """A study with one complete, one pruned and one running trial, as the objective leaves them."""
    study = optuna.create_study(direction="maximize")
    for number, (state, value, name) in enumerate(
        [
            (TrialState.COMPLETE, 0.8, "t0-gru32-lr1e-3"),
            (TrialState.PRUNED, None, "t1-lstm16-lr3e-4"),
            (TrialState.RUNNING, None, "t2-average_pooling-lr1e-2"),
        ]
    ):
        trial = study.ask()
        for key, attr in (
            ("mlflow_parent_run_id", "parent"),
            ("run_name", name),
            ("epochs_planned", 5),
            ("epochs_done", 2),
            ("folds_planned", 1),
        ):
            trial.set_user_attr(key, attr)
        trial.report(0.5, 0)
        trial.report(0.6, 1)
        if state != TrialState.RUNNING:
            study.tell(trial, value, state=state)
    return study


def test_progress_off_a_terminal_is_one_line_per_finished_trial_with_the_same_facts():
    import io

    from pipeline.report.progress import SweepProgress

    out = io.StringIO()
    shown = SweepProgress(
        progress_study(), "parent", 4, "val_accuracy", stream=out, pruner="the median pruner"
    )
    shown.update()
    shown.update()  # nothing twice
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(
        "trial 0 complete val_accuracy 0.8000 [gru32-lr1e-3] · 2 of 4 trials done"
    )
    assert lines[1].startswith(
        "trial 1 pruned at epoch 2 by the median pruner [lstm16-lr3e-4] · 2 of 4 trials done "
        "(1 pruned, 0 failed) · best val_accuracy 0.8000 (trial 0)"
    )


def test_a_trial_the_cost_guard_pruned_says_so_in_its_line():
    import io

    from pipeline.report.progress import SweepProgress

    from optuna.trial import create_trial

    from pipeline.search.cost_guard import CostGuard

    guard = CostGuard(optuna.pruners.NopPruner(), slowdown=4, min_trials=2)
    study = optuna.create_study(direction="maximize", pruner=guard)
    study.add_trials(
        [
            create_trial(
                state=TrialState.COMPLETE,
                value=0.9,
                user_attrs={"epoch_seconds": seconds},
                intermediate_values={0: 0.7, 1: 0.9},
            )
            for seconds in (4.0, 5.0)
        ]
    )
    slow = study.ask()
    for key, value in (
        ("mlflow_parent_run_id", "parent"),
        ("run_name", "t2-lstm128-lr1e-3"),
        ("epoch_seconds", 50.0),
    ):
        slow.set_user_attr(key, value)
    slow.report(0.5, step=0)
    assert slow.should_prune()
    study.tell(slow, state=TrialState.PRUNED)
    out = io.StringIO()
    SweepProgress(
        study, "parent", 3, "val_accuracy", stream=out, pruner="the median pruner"
    ).update()
    assert out.getvalue().startswith(
        "trial 2 pruned at epoch 1 by the cost guard (11.1x the median seconds per "
        "epoch, no better) [lstm128-lr1e-3] · 1 of 3 trials done (1 pruned, 0 failed)"
    )


def test_progress_on_a_terminal_shows_each_running_trial_and_its_epoch():
    import io

    from pipeline.report.progress import SweepProgress

    out = io.StringIO()
    shown = SweepProgress(progress_study(), "parent", 4, "val_accuracy", live=True, stream=out)
    shown.close()
    text = out.getvalue()
    assert "2 of 4 trials done (1 pruned, 0 failed) · best val_accuracy 0.8000 (trial 0)" in text
    assert "trial 1 pruned at epoch 2 by the pruner [lstm16-lr3e-4]" in text, (
        "finished trials above the panel"
    )
    assert "trial 2" in text and "average_pooling-lr1e-2" in text and "epoch 3 of 5" in text


def test_the_configuration_reference_is_current():
    """docs/configuration.md is written from conf/ and the check's rules; regenerate it with
    `python -m pipeline.cli.reference > docs/configuration.md` after changing a setting."""
    from pipeline.cli.reference import reference

    written = (REPO / "docs" / "configuration.md").read_text()
    assert written == reference() + "\n", "docs/configuration.md is stale: regenerate it"
    assert "| `search.n_trials` | `20` | an integer from 1 to 1000000000 |" in written


def test_the_confirmation_says_each_step_it_starts(capsys):
    from pipeline.search.confirm import announced

    done = []
    work = announced(
        {
            "test:3": lambda: done.append("test"),
            "confirm:3:43": lambda: done.append(43),
            "confirm:3:44": lambda: done.append(44),
        }
    )
    work["confirm:3:44"]()  # the others were done by another invocation
    work["test:3"]()
    lines = capsys.readouterr().err.splitlines()
    assert done == [44, "test"]
    assert lines[0].startswith("confirmation 1 of 3: trial 3 trained with seed 44 · ")
    assert lines[1].startswith("confirmation 2 of 3: trial 3's model scored on the test split · ")


def test_the_summary_counts_one_trial_as_one_trial():
    """Found by hand: "this run added 1 trials in 35 s"."""
    from pipeline.report.sweep_report import counts_line

    study = optuna.create_study(study_name="one", direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    assert counts_line(study, study.trials, 35.2) == (
        "Study 'one': this run added 1 trial in 35 s (1 complete, 0 pruned, 0 failed); "
        "the study holds 1 (1 complete, 0 pruned, 0 failed)"
    )


def test_one_trial_stopped_on_its_plateau_is_said_in_the_singular():
    from optuna.trial import create_trial

    from pipeline.report.sweep_report import censored_plateau_lines

    flat = create_trial(
        state=TrialState.PRUNED,
        value=None,
        intermediate_values={0: 0.5},
        user_attrs={"plateau_censored": 1, "plateau_epochs": 3},
    )
    [line] = censored_plateau_lines([flat])
    assert line.startswith(
        "Stopped on their plateau: 1 trial (1 pruned) ended while its training loss was "
        "still flat, so its plateau_epochs is a lower bound"
    )


@pytest.mark.parametrize("study", ["quick-sentences", "it's", "a\\", "a b", "a-b"])
def test_each_studys_trials_view_finds_its_runs_and_only_them(tmp_path, study):
    """Review of issue 28: a quote emptied the view's filter (every run listed), a backslash broke it,
    and `a b` and `a-b` shared one view."""
    import mlflow

    from pipeline.tracking import mlflow_runs

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("views")
    for name, entry in (
        (study, "rnn-sweep trial"),
        ("other", "rnn-sweep trial"),
        (study, "rnn-sweep confirm"),
        (study, "rnn-sweep"),
    ):
        client.create_run(experiment, tags={"study": name, "entry": entry})
    found = client.search_runs([experiment], mlflow_runs.study_filter(study))
    assert [(run.data.tags["study"], run.data.tags["entry"]) for run in found] == [
        (study, "rnn-sweep trial")
    ]
    assert mlflow_runs.view_key("a b") != mlflow_runs.view_key("a-b") == "a-b"


def test_a_stored_study_refuses_other_choices_and_keeps_a_wider_range():
    from pipeline.config.space import parse_space
    from pipeline.core.errors import InputError
    from pipeline.search.study import check_space_fits

    study = optuna.create_study(study_name="stored", direction="maximize")
    cfg = compose(["search=quick"])
    entries = parse_space(cfg)
    study.enqueue_trial({"body": "gru", "units": 16, "dropout": 0.0, "learning_rate": 1e-3})
    trial = study.ask()
    for entry in entries:
        entry.sample(trial)
    study.tell(trial, 0.5)
    check_space_fits(
        study, parse_space(compose(["search=quick", "search.space.learning_rate.high=0.5"]))
    )
    narrower = parse_space(compose(["search=quick", "search.space.body.choices=[pooling]"]))
    with pytest.raises(
        InputError,
        match=r"^search.space.body: study 'stored' searched body over \['pooling', "
        r"'gru', 'lstm'\], this sweep over \['pooling'\]",
    ):
        check_space_fits(study, narrower)


def test_the_ui_servers_help_offers_no_multirun():
    from pipeline.cli.help import help_text

    assert "-m KEY=A,B" not in help_text(
        "rnn-ui", "train", ["tracking.ui_port"], ["rnn-ui"], presets=False
    )
    assert "rnn-sweep -m KEY=A,B" in help_text(
        "rnn-sweep", "sweep", ["search.n_trials"], ["rnn-sweep"]
    )


def test_a_trial_pruned_after_its_last_fold_says_its_final_model_was_not_trained():
    import io

    from pipeline.report.progress import SweepProgress

    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    for key, value in (
        ("mlflow_parent_run_id", "parent"),
        ("run_name", "t0-gru16-lr1e-3"),
        ("folds_planned", 3),
    ):
        trial.set_user_attr(key, value)
    for fold in range(3):
        trial.report(0.5, fold)
    study.tell(trial, state=TrialState.PRUNED)
    out = io.StringIO()
    SweepProgress(
        study, "parent", 1, "val_accuracy", stream=out, pruner="the median pruner"
    ).update()
    assert out.getvalue().startswith(
        "trial 0 pruned after its last fold (no final model) by the median pruner [gru16-lr1e-3]"
    )


def test_a_study_keeps_the_word_vector_file_it_started_from(tmp_path):
    """Review of issue 29: the study name holds only the file's stem, so a.txt moved or written again
    continued the study with other vectors."""
    from pipeline.core.errors import InputError
    from pipeline.search.study import check_vectors_fit

    study = optuna.create_study(study_name="vectors-w2v")
    first = tmp_path / "w2v.txt"
    first.write_text("film 0.1 0.2\n")
    check_vectors_fit(study, [str(first)])
    check_vectors_fit(study, [str(first)])  # the same file again
    (tmp_path / "elsewhere").mkdir()
    moved = tmp_path / "elsewhere" / "w2v.txt"
    moved.write_text("film 0.1 0.2\n")
    check_vectors_fit(study, [str(moved)])  # moved: the same name and size
    first.write_text("film 0.1 0.2 0.3\nplot 0.4 0.5 0.6\n")
    with pytest.raises(
        InputError,
        match=r"^model.embedding.vectors: study 'vectors-w2v' was run with w2v.txt "
        r"\(13 bytes\), this sweep with w2v.txt \(34 bytes\); a study keeps",
    ):
        check_vectors_fit(study, [str(first)])
