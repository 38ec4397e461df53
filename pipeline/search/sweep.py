"""rnn-sweep: Optuna searches the composed config; every trial is `train_model` inside a nested
MLflow run.

A trial's sampled values become Hydra overrides (`model.units=64`, `optimizer=rmsprop`) and Hydra
composes the trial's config exactly as it would a command line, so any value or config group can be
searched. The study lives in an Optuna storage, so the same command resumes it, and a trial left
behind by a dead worker is failed (heartbeat) and retried. After the search, the top trials are
trained again with other seeds (pipeline/confirm.py) and the best mean wins.
"""

import contextlib
import logging
import threading
import time

import mlflow
import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from pipeline import config
from pipeline.report import charts, sweep_report
from pipeline.core import signals
from pipeline.tracking import stores, mlflow_runs
from pipeline.tracking.stores import storage_url
from pipeline.search import warm_start, workers
from pipeline.config import chosen_groups, compose  # noqa: F401 - compose: the tests build sweep configs with it
from pipeline.tracking.claims import Claims
from pipeline.search.confirm import confirm
from pipeline.config import space
from pipeline.config.space import parse_space
from pipeline.search.study import check_space_fits, check_vectors_fit, make_sampler, make_study
from pipeline.search.study import make_pruner  # noqa: F401 - the tests import it from here
from pipeline.core.errors import InputError
from pipeline.training.folds import check_folds, check_stored_folds, fold_count, study_folds
from pipeline.search.lr_range import log_lr_range, lr_range_of, with_lr_range
from pipeline.search.objective import Objective, TrialFailed
from pipeline.report.progress import SweepProgress
from pipeline.tracking.datasets import log_datasets
from pipeline.tracking.registry import register_winner
from pipeline.config.space import vector_files
from pipeline.data.word_vectors import word_vectors
from pipeline.training.train import configure_threads

log = logging.getLogger(__name__)

EXIT_ALL_TRIALS_FAILED = 3
EXIT_WORKER_DIED = 1  # search.n_workers: a worker process was killed or failed unexpectedly
PROGRESS_SECONDS = 1  # how often the live display reads the study
# how often a finished invocation looks whether the others' running trials are done
RUNNING_POLL_SECONDS = 1
# what max_total_trials counts; FAIL trials may be retried
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def check_sweep(cfg: DictConfig, base_overrides: list[str], checked: bool = False) -> None:
    """The sweep's one check (pipeline.config.space.check_sweep), then what needs the libraries: the
    optimizer and callbacks made once. `checked`: the entry point has run the one check already."""
    if not checked:
        space.check_sweep(cfg, base_overrides)
    # before TensorFlow starts: it fixes its pools then
    configure_threads(OmegaConf.create(workers.invoker_threads(cfg)))
    config.check_instantiable(cfg)


# --------------------------------------------------------------------------------------- run


def run_sweep(cfg: DictConfig, base_overrides: list[str], checked: bool = False) -> int:
    """Validate, run `search.n_trials` more trials of the study, confirm the winner over seeds,
    report; return the exit code. `cfg` is the sweep config composed from `base_overrides`, which
    every trial's config starts from.
    """
    started = time.perf_counter()
    check_sweep(cfg, base_overrides, checked)
    # checked: never changed after (what the study decides makes a new config)
    OmegaConf.set_readonly(cfg, True)
    stores.probe_sweep(cfg)  # both stores, nothing written yet
    # search.warm_start_from, only read: a missing study stops
    earlier = warm_start.earlier_best(cfg, storage_url(cfg))
    # the study's folds against search.cv_folds, only read
    check_stored_folds(cfg, storage_url(cfg))
    objective = Objective(
        cfg, [*base_overrides, *workers.thread_overrides(workers.invoker_threads(cfg))]
    )
    # the base config's data, before any study or run exists: a data error stops here
    data = objective.dataset(cfg)
    check_folds(cfg, data)  # a class too small for search.cv_folds stops here too
    for path in vector_files(cfg):  # read and cached once: a bad file stops the sweep here
        word_vectors(path, data, cfg.paths.cache_dir)
    signals.check()
    # worker processes, if any: they start now, and wait for the study
    with workers.Pool(cfg, base_overrides) as pool:
        return search(cfg, objective, pool, started, earlier)


def search(
    cfg: DictConfig, objective: Objective, pool: workers.Pool, started: float, earlier: list
) -> int:
    """run_sweep once the config and data are known: the study, the parent run, the trials,
    confirmation, the summary."""
    if cfg.search.show_progress_bar:
        # the bar shows each trial's progress and the best value
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    mlflow_runs.configure(cfg)
    study = make_study(cfg)
    # a dead worker's trials: failed, their runs ended, retried
    optuna.storages.fail_stale_trials(study)
    if study_complete(study, cfg):
        return 0
    check_space_fits(study, parse_space(cfg))  # before the range test: a changed space stops here
    check_vectors_fit(study, vector_files(cfg))
    study.sampler = make_sampler(cfg, offset=len(study.trials))
    # search.lr_range=auto: before the baseline is placed
    lr_range = lr_range_of(cfg, objective.dataset(cfg), study)
    cfg = settled(cfg, lr_range, study_folds(study, cfg, objective.dataset(cfg)))
    objective.cfg = cfg
    warm_start.enqueue_start(study, cfg, objective.base_overrides, earlier)
    with mlflow.start_run(
        run_name=f"sweep-{cfg.search.study_name}", tags=parent_tags(cfg)
    ) as parent:
        objective.parent_run_id = parent.info.run_id
        view_key = mlflow_runs.share_trials_view(cfg, parent.info.experiment_id)
        log_sweep_inputs(cfg, objective, lr_range)
        summary, registered = trials_and_winner(study, objective, cfg, pool, started)
    print_end(cfg, parent, summary, registered, view_key)
    mine = objective.trials(study)
    all_failed = mine and all(t.state == TrialState.FAIL for t in mine)
    return EXIT_ALL_TRIALS_FAILED if all_failed else 0


def settled(cfg: DictConfig, lr_range, folds: int) -> DictConfig:
    """The sweep's config with what its study decided: the learning-rate range
    (search.lr_range=auto) and the folds (search.cv_folds=auto). A new config: the checked one is
    never changed."""
    return OmegaConf.merge(with_lr_range(cfg, lr_range), {"search": {"cv_folds": folds}})


def study_complete(study: optuna.Study, cfg: DictConfig) -> bool:
    cap = cfg.search.max_total_trials
    if cap is not None and len(study.get_trials(states=FINISHED)) >= cap:
        print(
            f"Study {study.study_name!r} is complete: it holds {cap} or more finished trials "
            "(search.max_total_trials)"
        )
        return True
    return False


def log_sweep_inputs(cfg: DictConfig, objective: Objective, lr_range) -> None:
    mlflow_runs.log_config(cfg)
    log_lr_range(lr_range and lr_range.ran, cfg, objective.dataset(cfg).chance_loss())
    # trials fit and select, the winner is tested
    log_datasets(objective.dataset(cfg), cfg.data, ("train", "val", "test"))
    mlflow.log_text(OmegaConf.to_yaml(cfg.search.space), "search_space.yaml")


def trials_and_winner(
    study: optuna.Study, objective: Objective, cfg: DictConfig, pool: workers.Pool, started: float
) -> tuple[str, str | None]:
    """The trials, the winner confirmed over seeds and registered; the summary (printed at once if a
    stop cuts it short)."""
    try:
        optimize(study, objective, cfg, pool)
        confirm_started = time.perf_counter()
        if (
            cfg.search.confirm_top_k or cfg.search.register_as
        ):  # what confirms and registers ranks every trial
            wait_for_running_trials(study, cfg)
        claims = Claims(storage_url(cfg))
        confirmed = confirm(study, objective, claims) if complete(study.trials) else []
        confirm_seconds = time.perf_counter() - confirm_started
        registered = None
        if confirmed:
            description = sweep_report.version_description(
                confirmed, cfg.search.objective, study.study_name
            )
            registered = register_winner(cfg.search, confirmed[0].trial, claims, description)
        if registered:
            study.set_user_attr("champion", f"trial {confirmed[0].trial.number}: {registered}")
        if (
            confirmed
        ):  # optuna-dashboard shows the note above its own Best Trial, which ranks without seeds
            note_on_study(
                study,
                sweep_report.champion_note(
                    confirmed, cfg.search.objective, study.study_name, registered
                ),
            )
    except (
        signals.Interrupted,
        InputError,
        workers.WorkerDied,
    ) as stop:  # the summary of what ran, then the stop itself
        print(
            "\n"
            + record_sweep(study, objective, time.perf_counter() - started, [], 0.0, stopped=stop)
        )
        raise
    return record_sweep(
        study,
        objective,
        time.perf_counter() - started,
        confirmed,
        confirm_seconds,
        registered=registered,
    ), registered


def note_on_study(study: optuna.Study, text: str) -> None:
    """The study's note in optuna-dashboard (Markdown), kept in the study's system attributes."""
    from optuna_dashboard import save_note  # a second of imports: only once a sweep has a winner

    save_note(study, text)


def wait_for_running_trials(study: optuna.Study, cfg: DictConfig) -> None:
    """Trials that other invocations of the study are running now belong in the ranking: wait for
    them (not for trials they start later), so that invocations finishing together confirm and
    register the same winner. A dead invocation's trial is failed by its heartbeat,
    search.grace_seconds after it stopped; one that died before its first heartbeat is never failed
    so, hence the limit: three times the longest finished trial."""
    running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    if not running:
        return
    finished = study.get_trials(deepcopy=False, states=FINISHED)
    longest = max((t.duration.total_seconds() for t in finished if t.duration), default=0.0)
    patience = max(3 * longest, cfg.search.grace_seconds)
    limit = time.monotonic() + patience
    print(
        f"Waiting for {len(running)} running trial{'s' if len(running) > 1 else ''} of other "
        f"invocations before the confirmation: {', '.join(map(str, sorted(running)))}"
    )
    while running and time.monotonic() < limit:
        signals.check()
        time.sleep(RUNNING_POLL_SECONDS)
        optuna.storages.fail_stale_trials(study)
        running &= {
            t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        }
    if running:
        log.warning(
            "stopped waiting for trial%s %s: running past %.0f s",
            "s" if len(running) > 1 else "",
            ", ".join(map(str, sorted(running))),
            patience,
        )


def print_end(
    cfg: DictConfig, parent: mlflow.ActiveRun, summary: str, registered: str | None, view_key: str
) -> None:
    print(f"\n{summary}")
    if registered:
        print(
            f"\nThe winner's model: {registered} (rnn-predict predict.model={registered} ..., or "
            f"mlflow models serve -m {registered})"
        )
    print(
        f"\nMLflow parent run {parent.info.run_id} in experiment {cfg.tracking.experiment!r}; "
        "to look at it:"
    )
    print(
        mlflow_runs.ui_hint(
            cfg, parent, mlflow_runs.trials_hint(cfg, parent.info.experiment_id, view_key)
        )
    )


def optimize(
    study: optuna.Study, objective: Objective, cfg: DictConfig, pool: workers.Pool
) -> None:
    """search.n_trials trials: in this process, or in the pool's worker processes
    (search.n_workers > 1, or more trials than search.worker_max_trials); each finished trial's
    chart is drawn by the chart process meanwhile (tracking.trial_charts)."""
    cap = cfg.search.max_total_trials
    with charts.drawer(cfg.tracking.trial_charts) as drawer:
        if pool.in_workers:
            pool.run(study, objective, cfg.search.n_trials, cfg.search.timeout, drawer)
            return
        with progress_shown(study, objective, cfg):
            study.optimize(
                objective,
                n_trials=cfg.search.n_trials,
                timeout=cfg.search.timeout,
                # a trial its hyperparameters failed is FAIL with its reason; the sweep goes on
                catch=(TrialFailed,),
                callbacks=[
                    lambda study, trial: drawer.send(trial, mlflow.get_tracking_uri()),
                    stop_on_signal,
                ]
                + ([optuna.study.MaxTrialsCallback(cap, states=FINISHED)] if cap else []),
            )
        # a stop that stop_on_signal saw: the sweep ends as interrupted,
        # after the trial it let finish
        signals.check()


@contextlib.contextmanager
def progress_shown(study: optuna.Study, objective: Objective, cfg: DictConfig):
    """The live display (search.show_progress_bar), refreshed from the study by a thread while this
    process trains: the training loop itself is never slowed by it."""
    if not cfg.search.show_progress_bar:
        yield
        return
    shown = SweepProgress(
        study,
        objective.parent_run_id,
        cfg.search.n_trials,
        cfg.search.objective,
        pruner=f"the {cfg.search.pruner} pruner",
    )
    done = threading.Event()

    def refresh():
        while not done.wait(PROGRESS_SECONDS):
            try:
                shown.update()
            except Exception as error:  # noqa: BLE001 - a busy store skips one refresh; the sweep goes on
                log.debug("live display not refreshed: %s", error)

    thread = threading.Thread(target=refresh, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        shown.close()


def stop_on_signal(study: optuna.Study, trial) -> None:
    """After each trial: a signal that arrived meanwhile starts no next trial. Seen only inside the
    next trial's objective, it came after Optuna had created that trial: an empty FAIL trial,
    counted as a try."""
    if signals.received() is not None:
        study.stop()


def record_sweep(
    study,
    objective: Objective,
    wall_seconds: float,
    confirmed: list,
    confirm_seconds: float,
    stopped: Exception | None = None,
    registered: str | None = None,
) -> str:
    """Log the sweep's figures, summary and charts to the parent run and the log file; return the
    summary."""
    mine = objective.trials(study)
    data = objective.dataset(objective.cfg)
    summary = sweep_report.sweep_summary(
        study,
        mine,
        wall_seconds,
        confirmed,
        confirm_seconds,
        data,
        stopped,
        objective.cfg.search.objective,
        fold_count(objective.cfg.search, objective.cfg.data, data),
        can_fold=not objective.cfg.data.get("val_path"),
    )
    saved_epochs, saved_seconds = sweep_report.pruning_savings(mine)
    counts = sweep_report.sweep_counts(mine)
    figures = counts | sweep_report.winner_figures(confirmed, confirm_seconds)
    mlflow.log_metrics(
        figures | {"pruning_saved_epochs": saved_epochs, "pruning_saved_seconds": saved_seconds}
    )
    mlflow.log_text(summary, "summary.txt")
    experiment_id = mlflow.active_run().info.experiment_id
    trials = mlflow_runs.trials_link(
        "", experiment_id, mlflow_runs.view_key(study.study_name)
    ).lstrip("/")
    mlflow_runs.describe_run(
        sweep_report.sweep_note(study.study_name, summary, confirmed, registered, trials)
    )
    if registered:
        mlflow.set_tag("registered_model", registered)
    for name, figure in sweep_report.sweep_figures(study, objective.cfg.search.objective).items():
        mlflow.log_figure(figure, f"{name}.png")
        sweep_report.plt.close(figure)
    log.info(
        "sweep %s: %s added (%d complete, %d pruned, %d failed), study %r holds %d, "
        "MLflow parent run %s",
        "stopped" if stopped else "finished",
        sweep_report.plural(len(mine), "trial"),
        counts["trials_complete"],
        counts["trials_pruned"],
        counts["trials_fail"],
        study.study_name,
        len(study.trials),
        objective.parent_run_id,
    )
    return summary


def complete(trials) -> list:
    return [t for t in trials if t.state == TrialState.COMPLETE]


def parent_tags(cfg: DictConfig) -> dict[str, str]:
    tags = mlflow_runs.run_tags(cfg, entry="rnn-sweep")
    return tags | {
        "study": cfg.search.study_name,
        "sampler": cfg.search.sampler,
        "pruner": cfg.search.pruner,
    }
