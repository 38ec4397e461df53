"""search.n_workers: one invocation, several worker processes on one study.

The invoking process does everything that happens once (the checks, the study, the baseline, the parent
MLflow run, confirmation, the summary) and shows the one progress bar; the workers only run trials. They
are spawned processes, each with a fresh TensorFlow whose threads are set before it starts (the cores split
between them), and they take trials one at a time from a shared counter, so a worker that drew fast models
keeps working while another trains a slow one. A worker that ran at least search.worker_max_trials trials, which
took search.worker_recycle_payback times its own start-up, exits and a fresh process takes its place while trials
are left (a process's training slows as it ages; a fresh one would cost more than it saves on a few seconds-long
trials, or when it would not be up before search.timeout).

Signals: the workers start with SIGINT and SIGTERM blocked and then ignore them, so a signal sent to the
process group (Ctrl-C) or to every process (systemd) is handled once, by the invoker. It passes the signal on through shared
memory, and each worker stops at its next batch exactly as a single process does (the trial FAIL, its run
FAILED). A second signal kills the workers at once; the invoker then fails their trials and ends their runs.
A worker also stops when the invoker is gone. A worker that dies stops the others taking new trials, and
its trial is failed, its run KILLED, when the others are done.
"""

import dataclasses
import datetime
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.resource_tracker
import os
import queue
import signal
import sys
import threading
import time
import traceback

import mlflow
import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from pipeline import config
from pipeline.core import signals
from pipeline.core.errors import InputError, Terminal, as_disk_full
from pipeline.core.names import Attr
from pipeline.report.progress import SweepProgress
from pipeline.core.redaction import install_log_redaction, redact

log = logging.getLogger(__name__)
SEED_STRIDE = 100_003  # worker k's sampler seed: the single-process seed + k * this (no two workers draw alike)
POLL_SECONDS = (
    1.0  # how often the invoker looks at signals, dead workers and the study (for the progress bar)
)
WORKER_KILLED = "worker_died"  # fail_kind of a trial whose worker died or was killed
UNNAMED_WAIT_SECONDS = 2.0  # a live worker names its new trial's parent run well within this
EXIT_RECYCLED = (
    64  # a worker recycled (search.worker_max_trials): the invoker starts a fresh one in its place
)


class WorkerDied(Exception):
    """A worker process ended with an unexpected error or was killed by someone else."""


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def worker_count(cfg: DictConfig, trials_left: int) -> int:
    """search.n_workers (auto: one per usable core), never more than the trials there are to run."""
    wanted = usable_cores() if cfg.search.n_workers == "auto" else cfg.search.n_workers
    return max(1, min(wanted, trials_left))


def outlives_one_process(cfg: DictConfig) -> bool:
    """This invocation runs more trials than one process may (search.worker_max_trials): they need recycled workers."""
    limit = cfg.search.worker_max_trials
    return limit is not None and cfg.search.n_trials > limit


def worker_threads(cfg: DictConfig, count: int) -> dict[str, int]:
    """Each worker's share of the cores; a thread count the user set (not 0) is kept as it is."""
    intra = cfg.train.threads.intra_op or max(1, usable_cores() // count)
    inter = (
        cfg.train.threads.inter_op or 1
    )  # one op at a time: the cores are already shared between workers
    return {"intra_op": intra, "inter_op": inter}


def thread_overrides(threads: dict[str, int]) -> list[str]:
    """A trial's config records the threads its process really has."""
    return [f"train.threads.{key}={value}" for key, value in threads.items()]


def invoker_threads(cfg: DictConfig) -> dict[str, int]:
    """The invoking process trains (trials with one worker, lr range test, confirmations) with a lone worker's threads:
    TensorFlow's default two inter-op threads on 2 cores made the same model's epochs vary 2.8-7.2 s, one thread
    4.2-5.0 s (benchmarks/RESULTS.md)."""
    return worker_threads(cfg, 1)


@dataclasses.dataclass
class Job:
    """What every worker is given when it starts: its threads, the sweep's overrides and the shared counters."""

    threads: dict[str, int]  # the worker's train.threads
    base_overrides: list[
        str
    ]  # the sweep's, and the worker's threads: every trial's config has them
    show_progress_bar: bool
    invoker_pid: int
    max_trials: int | None  # search.worker_max_trials
    recycle_payback: float  # search.worker_recycle_payback
    log_files: list[str]
    tickets: object  # multiprocessing.Value: trials still to start
    stop: object  # multiprocessing.Value: the signal number to stop on, 0 while running
    messages: object  # multiprocessing.Queue: (kind, text) of a worker that failed
    orders: object  # multiprocessing.Queue: one Orders per worker once the study and the parent run exist, or None
    asking: object  # multiprocessing.Array: per worker, the time.time() it began its current trial, 0 between trials
    config_sources: (
        list  # the invoker's config search path (config.config_sources): the user's presets too
    )


@dataclasses.dataclass
class Orders:
    """What a worker is told once the study and the parent run exist."""

    cfg: DictConfig  # the sweep's config as the invoker finished it (search.lr_range=auto sets bounds)
    parent_run_id: str
    experiment_id: str
    tracking_uri: str
    deadline: float | None  # time.time() after which no trial starts (search.timeout)


# ------------------------------------------------------------------------------- the invoker


class Pool:
    """search.n_workers worker processes, started as soon as the sweep's config and data are known, so that their
    start-up (Python, TensorFlow) overlaps the invoker's (stores, study, baseline, parent run). With one worker
    that would never be recycled there are none: the invoker runs the trials itself. Leaving the `with` block,
    no worker is left."""

    def __init__(self, cfg: DictConfig, base_overrides: list[str]):
        self.count = worker_count(cfg, cfg.search.n_trials)
        self.processes = []
        if self.count == 1 and not outlives_one_process(cfg):
            return
        self.context = multiprocessing.get_context("spawn")
        threads = worker_threads(cfg, self.count)
        self.job = Job(
            threads=threads,
            show_progress_bar=cfg.search.show_progress_bar,
            base_overrides=[*base_overrides, *thread_overrides(threads)],
            invoker_pid=os.getpid(),
            max_trials=cfg.search.worker_max_trials,
            recycle_payback=cfg.search.worker_recycle_payback,
            log_files=[
                h.baseFilename
                for h in logging.getLogger().handlers
                if isinstance(h, logging.FileHandler)
            ],
            tickets=self.context.Value("i", 0),
            stop=self.context.Value("i", 0),
            messages=self.context.Queue(),
            orders=self.context.Queue(),
            asking=self.context.Array("d", self.count),
            config_sources=config.config_sources(),
        )
        log.info("%d worker processes, each with train.threads %s", self.count, threads)
        try:
            for index in range(self.count):
                self.start_worker(index)
        except (
            BaseException
        ):  # a second signal while they start: none is left waiting for orders (exit would hang)
            self.kill_all()
            raise

    @property
    def in_workers(self) -> bool:
        return bool(self.processes)

    def start_worker(self, index: int, orders: Orders | None = None) -> bool:
        """Worker `index` started (a fresh one in the place of one that exited, given `orders`) and recorded before
        a signal held meanwhile is handled, so that a second signal's stop finds it to kill. A fresh one is not
        started once a signal arrived: looked at with the signals held, none can arrive between the look and the start."""
        process = self.context.Process(
            target=work, args=(index, self.job, time.monotonic()), name=f"rnn-sweep worker {index}"
        )
        multiprocessing.resource_tracker.ensure_running()  # started inside the hold, it would unblock the signals
        with (
            signals.held_for_helpers()
        ):  # the worker ignores them from its first line: only the invoker hears a signal
            if orders is not None:
                if stopping(self.job):
                    return False
                self.job.orders.put(orders)
            process.start()
            self.processes[index : index + 1] = [
                process
            ]  # in the place of the one that exited, or appended
        return True

    def kill_all(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.kill()
            process.join()

    def dead_workers_asked_since(self) -> list[float]:
        """When each worker that did not exit cleanly began its last trial (none: it was between trials)."""
        ended = (0, EXIT_RECYCLED)
        return [
            self.job.asking[i]
            for i, p in enumerate(self.processes)
            if p.exitcode not in ended and self.job.asking[i]
        ]

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc) -> None:
        """Workers that were never given work are told so (or, after a second signal, killed)."""
        if any(p.is_alive() for p in self.processes):
            for _ in self.processes:
                self.job.orders.put(None)
            deadline = time.monotonic() + 60
            for process in self.processes:
                process.join(max(0.0, deadline - time.monotonic()))
        self.kill_all()

    def run(
        self, study: optuna.Study, objective, n_trials: int, timeout: float | None, drawer
    ) -> None:
        """Run `n_trials` trials of `study` in the workers under the objective's parent run, with one progress
        bar, each finished trial's chart sent to `drawer` (pipeline/charts.py); return when all are done.
        Interrupted on a signal, InputError or WorkerDied when a worker failed, after every worker has exited and
        no trial of theirs is left RUNNING."""
        job = self.job
        job.tickets.value = n_trials
        orders = Orders(
            cfg=objective.cfg,
            parent_run_id=objective.parent_run_id,
            experiment_id=mlflow.active_run().info.experiment_id,
            tracking_uri=mlflow.get_tracking_uri(),
            deadline=time.time() + timeout if timeout else None,
        )
        for _ in self.processes:
            job.orders.put(orders)
        progress = Progress(study, objective, n_trials, drawer)
        failures = []

        def replace(
            index: int,
        ) -> bool:  # a recycled worker: a fresh one, same orders, if it will find a trial to run
            if not fresh_worker_has_work(orders, study) or not self.start_worker(index, orders):
                return False
            log.info("worker %d was recycled: a fresh process takes its place", index)
            return True

        try:
            failures = supervise(self.processes, job, progress, replace)
        finally:
            self.kill_all()  # a second signal, or an error of our own: no worker outlives the invocation
            try:
                objective.ran = [t.number for t in mine(study, objective.parent_run_id)]
                end_orphans(study, objective.parent_run_id, self.dead_workers_asked_since())
            finally:
                progress.close()  # the last trials' charts are sent even if the store failed here
        if signals.received() is not None:
            raise signals.Interrupted(signals.received())
        for kind, text in failures:
            raise InputError(text) if kind == "input" else WorkerDied(text)


def supervise(processes, job: Job, progress: "Progress", replace) -> list[tuple[str, str]]:
    """Wait for the workers, passing a signal on, replacing a recycled one while trials are left and stopping new
    trials once one failed; their failures."""
    failures = []
    reported = set()
    while True:
        alive = [
            p for p in processes if p.is_alive()
        ]  # before looking at exit codes: a worker ending now is seen next round
        if signals.received() is not None and not job.stop.value:
            job.stop.value = signals.received()
        failures += drain(job.messages)
        for index, process in enumerate(
            processes
        ):  # deaths first: one seen in this round stops every replacement
            if process.exitcode not in (None, 0, EXIT_RECYCLED) and index not in reported:
                reported.add(index)
                if not job.stop.value and not any(failures):
                    failures.append(
                        ("died", f"rnn-sweep worker {index} died ({exit_reason(process.exitcode)})")
                    )
                with job.tickets.get_lock():
                    job.tickets.value = 0  # the others finish their trial and start no other
        replaced = False
        for index, process in enumerate(processes):
            if (
                process.exitcode == EXIT_RECYCLED
                and job.tickets.value > 0
                and not failures
                and not stopping(job)
            ):
                replaced = replace(index) or replaced
        progress.update()
        if not alive and not replaced:
            return failures + drain(job.messages)
        multiprocessing.connection.wait(
            [p.sentinel for p in processes if p.is_alive()], timeout=POLL_SECONDS
        )


def stopping(job: Job) -> bool:
    """A signal was passed on to the workers, or has just arrived and will be."""
    return bool(job.stop.value) or signals.received() is not None


def drain(messages) -> list[tuple[str, str]]:
    found = []
    while True:
        try:
            found.append(messages.get_nowait())
        except queue.Empty:
            return found


def exit_reason(code: int) -> str:
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


def mine(study: optuna.Study, parent_run_id: str) -> list:
    return [
        t
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get(Attr.mlflow_parent_run_id) == parent_run_id
    ]


def end_orphans(study: optuna.Study, parent_run_id: str, asked_since: list[float]) -> None:
    """Trials of this invocation still RUNNING once its workers are gone (one was killed): FAIL, their runs KILLED.
    `asked_since`: when each dead worker began its last trial; one killed before the objective's first line named
    the trial's parent run left a RUNNING trial without it."""
    for trial in mine(study, parent_run_id) + unnamed_since(study, asked_since):
        if trial.state != TrialState.RUNNING:
            continue
        study._storage.set_trial_user_attr(trial._trial_id, Attr.fail_kind, WORKER_KILLED)
        study.tell(trial.number, state=TrialState.FAIL)
        run_id = trial.user_attrs.get(Attr.mlflow_run_id)
        if run_id and mlflow.MlflowClient().get_run(run_id).info.status == "RUNNING":
            mlflow.MlflowClient().set_terminated(run_id, status="KILLED")
        log.warning(
            "trial %d: its worker was gone; the trial is FAIL, its MLflow run KILLED", trial.number
        )


def unnamed_since(study: optuna.Study, asked_since: list[float]) -> list:
    """RUNNING trials created since the earliest of `asked_since` that still name no parent run after a wait long
    enough for another invocation's worker, creating one at this moment, to name its own."""
    if not asked_since:
        return []

    def unnamed():
        since = datetime.datetime.fromtimestamp(min(asked_since))  # the worker's clock sets both
        return {
            t.number: t
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if Attr.mlflow_parent_run_id not in t.user_attrs and t.datetime_start >= since
        }

    before = unnamed()
    if not before:
        return []
    time.sleep(UNNAMED_WAIT_SECONDS)
    return [trial for number, trial in unnamed().items() if number in before]  # unnamed both times


class Progress:
    """What the invoker shows of its workers' trials (the live display, report.progress), and each
    finished trial's chart, sent to the chart process."""

    def __init__(self, study: optuna.Study, objective, total: int, drawer):
        self.study, self.parent_run_id, self.shown, self.drawer = (
            study,
            objective.parent_run_id,
            None,
            drawer,
        )
        if objective.cfg.search.show_progress_bar:
            self.shown = SweepProgress(
                study,
                objective.parent_run_id,
                total,
                objective.cfg.search.objective,
                pruner=f"the {objective.cfg.search.pruner} pruner",
            )

    def update(self) -> None:
        for trial in mine(self.study, self.parent_run_id):
            if trial.state.is_finished():
                self.drawer.send(trial, mlflow.get_tracking_uri())
        if self.shown is not None:
            self.shown.update()

    def close(self) -> None:
        try:
            self.update()
        finally:
            if self.shown is not None:
                self.shown.close()


# ------------------------------------------------------------------------------- a worker


def work(index: int, job: Job, started: float) -> None:
    """One worker process, started at time.monotonic() `started`: start TensorFlow, wait for the invoker's orders,
    then run trials of the study until the counter, the deadline, a stop or recycling says no more."""
    signals.ignore_here()
    sys.stdout, sys.stderr = Terminal(sys.stdout), Terminal(sys.stderr)
    log_to(job.log_files, index)
    threading.Thread(target=watch, args=(job,), daemon=True).start()
    try:
        config.use_config_sources(job.config_sources)  # before anything composes a config here
        from pipeline.training.train import configure_threads

        configure_threads(OmegaConf.create(job.threads))  # before TensorFlow runs anything here
        if job.show_progress_bar:
            optuna.logging.set_verbosity(
                optuna.logging.WARNING
            )  # the invoker's bar shows each trial
        waiting = time.monotonic()
        orders = await_orders(job)
        if (
            orders is not None
        ):  # its start-up is counted without the wait for the invoker's study and parent run
            run_trials(index, job, orders, started + time.monotonic() - waiting)
    except signals.Interrupted as stop:
        sys.exit(stop.exit_code)
    except InputError as error:
        job.messages.put(("input", str(error)))
        sys.exit(2)
    except Exception as error:  # noqa: BLE001 - told to the invoker, which reports it and exits 1
        if full := as_disk_full(error):
            job.messages.put(("input", str(full)))
            sys.exit(2)
        job.messages.put(
            ("error", f"rnn-sweep worker {index} failed:\n{redact(traceback.format_exc())}")
        )
        sys.exit(1)


def run_trials(index: int, job: Job, orders: Orders, started: float) -> None:
    """The worker's trials: its own sampler on the shared study, one trial per ticket, until it is recycled. Its
    start-up runs from `started` (time.monotonic(), system-wide on Linux, less the wait for orders) to its first trial."""
    from pipeline.search import study as studies
    from pipeline.search.objective import Objective, TrialFailed

    cfg = OmegaConf.merge(
        orders.cfg, {"train": {"threads": job.threads}}
    )  # a new config: the checked one stays
    mlflow.set_tracking_uri(orders.tracking_uri)
    mlflow.set_experiment(experiment_id=orders.experiment_id)
    objective = Objective(cfg, job.base_overrides)
    objective.parent_run_id = orders.parent_run_id
    study = studies.make_study(cfg)
    study.sampler = studies.make_sampler(cfg, offset=len(study.trials) + SEED_STRIDE * (index + 1))
    objective.dataset(
        cfg
    )  # the data (its vector cache) is read now: a fresh process pays it as part of its start-up
    ran, busy, startup = 0, 0.0, time.monotonic() - started
    while take_ticket(job, orders, study):
        began, job.asking[index] = time.monotonic(), time.time()
        study.optimize(objective, n_trials=1, catch=(TrialFailed,), show_progress_bar=False)
        job.asking[index] = 0.0
        ran, busy = ran + 1, busy + time.monotonic() - began
        if recycle_due(ran, busy, startup, job, orders.deadline):
            log.info(
                "ran %d trials in %.0f s, %.1f times its start-up of %.1f s: recycled",
                ran,
                busy,
                busy / startup,
                startup,
            )
            sys.exit(
                EXIT_RECYCLED
            )  # the invoker starts a fresh process in this one's place if trials are left
        if ran == job.max_trials:
            log.info(
                "ran %d trials in %.0f s, less than %g times its start-up of %.1f s (search.worker_recycle_payback): "
                "not recycled yet",
                ran,
                busy,
                job.recycle_payback,
                startup,
            )


def recycle_due(ran: int, busy: float, startup: float, job: Job, deadline: float | None) -> bool:
    """After search.worker_max_trials trials, a worker is replaced once they took worker_recycle_payback times its
    start-up: a fresh process costs that start-up, an ageing one more the longer it has trained (RESULTS.md). Not
    when a fresh one would be up only after the deadline (search.timeout): it would start no trial."""
    if job.max_trials is None or ran < job.max_trials or busy < job.recycle_payback * startup:
        return False
    return deadline is None or time.time() + startup < deadline


def await_orders(job: Job) -> Orders | None:
    while True:
        signals.check()  # the invoker gone
        try:
            return job.orders.get(timeout=0.5)
        except queue.Empty:
            continue


def open_for_trials(orders: Orders, study: optuna.Study, counting_running: bool = False) -> bool:
    """Time remains (search.timeout) and the study is not complete (search.max_total_trials); `counting_running`:
    not even once this invocation's running trials have finished (a fresh worker would start for nothing)."""
    if orders.deadline is not None and time.time() >= orders.deadline:
        return False
    cap = orders.cfg.search.max_total_trials
    if cap is None:
        return True
    finished = len(
        study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    )
    running = (
        [t for t in mine(study, orders.parent_run_id) if t.state == TrialState.RUNNING]
        if counting_running
        else []
    )
    return finished + len(running) < cap


def fresh_worker_has_work(orders: Orders, study: optuna.Study) -> bool:
    """Would a fresh worker, in a recycled one's place, find a trial to run? Not if this invocation's running trials
    will complete the study (search.max_total_trials)."""
    return open_for_trials(orders, study, counting_running=True)


def take_ticket(job: Job, orders: Orders, study: optuna.Study) -> bool:
    """May this worker start one more trial? Yes while trials are left, the study is open and nobody said stop."""
    signals.check()
    if not open_for_trials(orders, study):
        return False
    with job.tickets.get_lock():
        if job.tickets.value <= 0:
            return False
        job.tickets.value -= 1
        return True


def watch(job: Job) -> None:
    """The worker's stand-in for a signal handler: the invoker's signal, or the invoker gone, stops it."""
    while True:
        if job.stop.value:
            signals.request_stop(job.stop.value)
            return
        if os.getppid() != job.invoker_pid:
            signals.request_stop(signal.SIGTERM)
            return
        time.sleep(0.2)


def log_to(files: list[str], index: int) -> None:
    """The invoker's log file(s), each line marked with the worker; warnings on the terminal too."""
    install_log_redaction()
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    file_format = logging.Formatter(
        f"[%(asctime)s][worker {index}][%(name)s][%(levelname)s] - %(message)s"
    )
    for path in files:
        handler = logging.FileHandler(path, mode="a", encoding="utf-8")
        handler.setFormatter(file_format)
        root.addHandler(handler)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)
    console.setFormatter(
        logging.Formatter(f"[worker {index}][%(name)s][%(levelname)s] - %(message)s")
    )
    root.addHandler(console)
