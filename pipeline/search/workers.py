"""search.n_workers: one invocation, several worker processes on one study.

The invoking process does everything that happens once (the checks, the study, the baseline, the
parent MLflow run, confirmation, the summary) and shows the one progress bar; the workers only run
trials. They are a concurrent.futures.ProcessPoolExecutor of spawned processes, each with a fresh
TensorFlow whose threads are set before it starts (the cores split between them). One task is one
trial of the study; the invoker keeps one task per worker in flight while the study needs trials,
so a worker that drew fast models keeps working while another trains a slow one. A worker process
runs at most search.worker_max_trials trials (the pool's max_tasks_per_child) and a fresh one takes
its place: a process's training slows as it ages. Log lines reach the invoker's handlers through a
queue (logging.handlers.QueueHandler/QueueListener); failures come back as the tasks' results.

Signals: the workers start with SIGINT and SIGTERM blocked and then ignore them, so a signal sent
to the process group (Ctrl-C) or to every process (systemd) is handled once, by the invoker. It
passes the signal on through shared memory, and each worker stops at its next batch exactly as a
single process does (the trial FAIL, its run FAILED). A second signal kills the workers at once;
the invoker then fails their trials and ends their runs. A worker also stops when the invoker is
gone. A worker that dies breaks the pool (BrokenProcessPool): the invoker kills the others, fails
every running trial of the invocation and ends their runs KILLED.
"""

import concurrent.futures
import ctypes
import concurrent.futures.process
import dataclasses
import datetime
import logging
import logging.handlers
import multiprocessing
import multiprocessing.resource_tracker
import os
import pickle
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
SEED_STRIDE = 100_003  # worker k's sampler seed: the single-process seed + k * this
POLL_SECONDS = 1.0  # how often the invoker looks at signals and the study (for the progress bar)
WORKER_KILLED = "worker_died"  # fail_kind of a trial whose worker died or was killed
UNNAMED_WAIT_SECONDS = 2.0  # a live worker names its new trial's parent run well within this
CLOSE_SECONDS = 60  # how long a worker told there is no more work may take to exit
ORDERS_BYTES = 2**20  # room for the pickled orders (a sweep's config: ~15 kB)
CLOSE_LOGS_SECONDS = 5  # how long the workers' last log records are waited for
REAPED_SECONDS = 5  # how long a worker that broke the pool may take to be reaped
IDLE_EXIT_SECONDS = (
    2  # after the last trial: a worker not gone by then is a fresh one, still starting
)


class WorkerDied(Exception):
    """A worker process ended with an unexpected error or was killed by someone else."""


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def worker_count(cfg: DictConfig, trials_left: int) -> int:
    """search.n_workers (auto: one per usable core), never more than the trials there are to
    run."""
    wanted = usable_cores() if cfg.search.n_workers == "auto" else cfg.search.n_workers
    return max(1, min(wanted, trials_left))


def outlives_one_process(cfg: DictConfig) -> bool:
    """More trials than one process may run (search.worker_max_trials): they need recycled
    workers."""
    limit = cfg.search.worker_max_trials
    return limit is not None and cfg.search.n_trials > limit


def worker_threads(cfg: DictConfig, count: int) -> dict[str, int]:
    """Each worker's share of the cores; a thread count the user set (not 0) is kept as it is."""
    intra = cfg.train.threads.intra_op or max(1, usable_cores() // count)
    inter = cfg.train.threads.inter_op or 1  # one op at a time: the cores are shared already
    return {"intra_op": intra, "inter_op": inter}


def thread_overrides(threads: dict[str, int]) -> list[str]:
    """A trial's config records the threads its process really has."""
    return [f"train.threads.{key}={value}" for key, value in threads.items()]


def invoker_threads(cfg: DictConfig) -> dict[str, int]:
    """The invoking process trains (trials with one worker, lr range test, confirmations) with a
    lone worker's threads: TensorFlow's default two inter-op threads on 2 cores made the same
    model's epochs vary 2.8-7.2 s, one thread 4.2-5.0 s (benchmarks/RESULTS.md)."""
    return worker_threads(cfg, 1)


@dataclasses.dataclass
class Job:
    """What every worker process is given when it starts (the pool's initializer's argument)."""

    threads: dict[str, int]  # the worker's train.threads
    base_overrides: list[
        str
    ]  # the sweep's, and the worker's threads: every trial's config has them
    show_progress_bar: bool
    invoker_pid: int
    max_trials: int | None  # search.worker_max_trials
    config_sources: list  # the invoker's config search path (config.config_sources)
    # the pickled Orders (None: no work), written once the study and parent run exist; shared
    # memory, not a file: they hold the config's secrets, and a kill -9 would leave a file behind
    orders: object  # multiprocessing.RawArray of bytes
    orders_size: object  # multiprocessing.Value: how many of those bytes are the orders
    ready: object  # multiprocessing.Event: the orders are written
    stop: object  # multiprocessing.Value: the signal number to stop on, 0 while running
    started: object  # multiprocessing.Value: worker processes started so far (a worker's index)
    logs: object  # multiprocessing.Queue: the workers' log records, for the invoker's handlers


@dataclasses.dataclass
class Orders:
    """What a worker is told once the study and the parent run exist."""

    cfg: DictConfig  # the sweep's config as the invoker finished it (lr_range=auto sets bounds)
    parent_run_id: str
    experiment_id: str
    tracking_uri: str
    deadline: float | None  # time.time() after which no trial starts (search.timeout)


# ------------------------------------------------------------------------------- the invoker


class Pool:
    """search.n_workers worker processes, started as soon as the sweep's config and data are
    known, so that their start-up (Python, TensorFlow) overlaps the invoker's (stores, study,
    baseline, parent run): one task each is submitted at once, and waits for the orders. With
    one worker that would never be recycled there are none: the invoker runs the trials itself.
    Leaving the `with` block, no worker is left."""

    def __init__(self, cfg: DictConfig, base_overrides: list[str]):
        self.count = worker_count(cfg, cfg.search.n_trials)
        self.executor, self.futures, self.seen = None, {}, {}
        self.orders_given = self.ran = False
        if self.count == 1 and not outlives_one_process(cfg):
            return
        context = multiprocessing.get_context("spawn")
        threads = worker_threads(cfg, self.count)
        self.job = Job(
            threads=threads,
            base_overrides=[*base_overrides, *thread_overrides(threads)],
            show_progress_bar=cfg.search.show_progress_bar,
            invoker_pid=os.getpid(),
            max_trials=cfg.search.worker_max_trials,
            config_sources=config.config_sources(),
            orders=context.RawArray("B", ORDERS_BYTES),
            orders_size=context.Value("i", 0),
            ready=context.Event(),
            stop=context.Value("i", 0),
            started=context.Value("i", 0),
            logs=context.Queue(),
        )
        self.listener = logging.handlers.QueueListener(
            self.job.logs, *logging.getLogger().handlers, respect_handler_level=True
        )
        self.listener.start()
        log.info("%d worker processes, each with train.threads %s", self.count, threads)
        self.executor = concurrent.futures.ProcessPoolExecutor(
            self.count,
            mp_context=context,
            initializer=start,
            initargs=(self.job,),
            max_tasks_per_child=cfg.search.worker_max_trials,
        )
        try:
            for _ in range(self.count):
                self.submit()
        except BaseException:  # a second signal while they start: none is left waiting for orders
            self.kill_all()
            self.close_logs()
            raise

    @property
    def in_workers(self) -> bool:
        return self.executor is not None

    @property
    def processes(self) -> list:
        """Every worker process this pool started, in the order it started them."""
        return self.refresh()

    def refresh(self) -> list:
        """The executor forgets a process that exited; this list keeps it. A fresh process in the
        place of a recycled one (search.worker_max_trials) is logged."""
        running = self.executor and self.executor._processes  # None once shut down
        for pid, process in list(running.items()) if running else ():
            if pid not in self.seen:
                self.seen[pid] = process
                if len(self.seen) > self.count:
                    log.info("worker process %d: a fresh process takes its place", pid)
        return list(self.seen.values())

    def submit(self) -> bool:
        """One more trial task, submitted (and the process it may start recorded) with SIGINT
        and SIGTERM held: a process started now, by this thread or by the pool's manager thread,
        which inherits the hold, begins with them blocked and ignores them from its first line.
        No task once a signal arrived: looked at with the signals held, none can arrive between
        the look and the start."""
        # the resource tracker, started inside the hold, would unblock the signals there
        multiprocessing.resource_tracker.ensure_running()
        with signals.held_for_helpers():
            if self.job.stop.value or signals.received() is not None:
                return False
            future = self.executor.submit(run_trial)
            self.futures[future] = time.time()
            self.refresh()  # a second signal on leaving the hold finds the new process to kill
        return True

    def give(self, orders: Orders | None) -> None:
        """The orders (None: no work) for every task, submitted or to come."""
        data = pickle.dumps(orders)
        if len(data) > ORDERS_BYTES:
            raise InputError(f"the sweep's config takes {len(data)} bytes; at most {ORDERS_BYTES}")
        ctypes.memmove(self.job.orders, data, len(data))
        self.job.orders_size.value = len(data)
        self.orders_given = True
        self.job.ready.set()

    def kill_all(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.kill()
            process.join()

    def close_logs(self) -> None:
        """The listener's last records, waited for a while: a worker killed while it wrote one
        holds the queue's lock forever, and QueueListener.stop would wait for ever."""
        self.listener.enqueue_sentinel()
        self.listener._thread.join(CLOSE_LOGS_SECONDS)
        self.listener._thread = None
        self.job.logs.cancel_join_thread()  # nor may this process's exit wait for that lock

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc) -> None:
        """Workers that were never given work are told so and exit; after a stop or a kill, none
        is left."""
        if self.executor is None:
            return
        try:
            if not self.orders_given:
                self.give(None)
            self.executor.shutdown(wait=False, cancel_futures=True)
            # after the trials, a worker still there is a fresh one, still starting: not waited for
            deadline = time.monotonic() + (IDLE_EXIT_SECONDS if self.ran else CLOSE_SECONDS)
            for process in self.processes:
                process.join(max(0.0, deadline - time.monotonic()))
        finally:  # a second signal meanwhile, too
            self.kill_all()
            self.executor.shutdown(wait=True)
            self.close_logs()

    def run(
        self, study: optuna.Study, objective, n_trials: int, timeout: float | None, drawer
    ) -> None:
        """Run `n_trials` trials of `study` in the workers under the objective's parent run,
        with one progress bar, each finished trial's chart sent to `drawer`
        (pipeline/charts.py); return when all are done. Interrupted on a signal, InputError or
        WorkerDied when a worker failed, after every worker has ended its trial and no trial of
        theirs is left RUNNING."""
        orders = Orders(
            cfg=objective.cfg,
            parent_run_id=objective.parent_run_id,
            experiment_id=mlflow.active_run().info.experiment_id,
            tracking_uri=mlflow.get_tracking_uri(),
            deadline=time.time() + timeout if timeout else None,
        )
        self.give(orders)
        self.ran = True
        progress = Progress(study, objective, n_trials, drawer)
        submitted, failures, lost, closed = len(self.futures), [], [], False
        try:
            while self.futures:
                if signals.received() is not None and not self.job.stop.value:
                    self.job.stop.value = signals.received()  # each worker stops at its next batch
                done, _ = concurrent.futures.wait(
                    self.futures, POLL_SECONDS, concurrent.futures.FIRST_COMPLETED
                )
                for future in done:
                    asked = self.futures.pop(future)
                    failure = self.outcome(future)
                    if failure and failure[0] == "died":
                        lost.append(asked)
                    closed = closed or (failure is not None and failure[0] == "closed")
                    failures += [failure] if failure and failure[0] != "closed" else []
                    if not closed and not failures and submitted < n_trials:
                        if open_for_trials(orders, study, counting_running=True):
                            submitted += self.submit()
                if any(kind == "died" for kind, _ in failures):
                    lost += self.futures.values()
                    self.kill_all()  # the pool is broken: its other workers would never exit
                    break
                self.refresh()
                progress.update()
        finally:
            if self.futures or lost:  # a second signal, a worker killed, an error of our own
                self.kill_all()  # no worker outlives the invocation, nor trains unwatched
                lost += self.futures.values()
            try:
                objective.ran = [t.number for t in mine(study, objective.parent_run_id)]
                end_orphans(study, objective.parent_run_id, lost)
            finally:
                progress.close()  # the last trials' charts are sent even if the store failed
        if signals.received() is not None:
            raise signals.Interrupted(signals.received())
        for kind, text in failures[:1]:
            raise InputError(text) if kind == "input" else WorkerDied(text)

    def outcome(self, future) -> tuple[str, str] | None:
        """A finished task: None for a trial that ran, else (kind, text): closed (the study
        needed no more), interrupted, input, error, died."""
        try:
            kind, text = future.result()
        except concurrent.futures.process.BrokenProcessPool:
            dead = dead_processes(self.processes)
            reasons = [
                f"rnn-sweep worker process {p.pid} died ({exit_reason(p.exitcode)})" for p in dead
            ]
            return "died", "; ".join(reasons) or "a rnn-sweep worker process died"
        if kind in ("ran", "interrupted"):
            return None
        return kind, text


def dead_processes(processes: list) -> list:
    """The processes that died: the pool breaks as the dead one's pipe closes, a moment before
    the process can be reaped and its exit code known."""
    deadline = time.monotonic() + REAPED_SECONDS
    while True:
        dead = [p for p in processes if p.exitcode not in (None, 0)]
        if dead or time.monotonic() > deadline:
            return dead
        time.sleep(0.05)


def exit_reason(code: int) -> str:
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


def mine(study: optuna.Study, parent_run_id: str) -> list:
    return [
        t
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get(Attr.mlflow_parent_run_id) == parent_run_id
    ]


def end_orphans(study: optuna.Study, parent_run_id: str, asked_since: list[float]) -> None:
    """Trials of this invocation still RUNNING once its workers are gone (one was killed): FAIL,
    their runs KILLED. `asked_since`: when each lost task was given to a worker; one killed
    before the objective's first line named the trial's parent run left a RUNNING trial without
    it."""
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
    """RUNNING trials created since the earliest of `asked_since` that still name no parent run
    after a wait long enough for another invocation's worker, creating one at this moment, to
    name its own."""
    if not asked_since:
        return []

    def unnamed():
        since = datetime.datetime.fromtimestamp(min(asked_since))  # one machine's clock sets both
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


def open_for_trials(orders: Orders, study: optuna.Study, counting_running: bool = False) -> bool:
    """Time remains (search.timeout) and the study is not complete (search.max_total_trials);
    `counting_running`: not even once this invocation's running trials have finished (the invoker
    submits no trial task that would find the study complete)."""
    if orders.deadline is not None and time.time() >= orders.deadline:
        # the invocation's first trial starts whatever the time, as Optuna's own timeout does:
        # the workers' start-up alone may take longer than a short search.timeout
        if mine(study, orders.parent_run_id):
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


class Progress:
    """What the invoker shows of its workers' trials (the live display, report.progress), and each
    finished trial's chart, sent to the chart process."""

    def __init__(self, study: optuna.Study, objective, total: int, drawer):
        self.study, self.parent_run_id = study, objective.parent_run_id
        self.shown, self.drawer = None, drawer
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


@dataclasses.dataclass
class Worker:
    """This worker process: its job, its index, and once its first task read the orders, its
    study."""

    job: Job
    index: int
    started: float  # time.monotonic() as the process began
    error: str | None = None  # what failed while it started, reported by its first task
    orders: Orders | None = None
    objective: object = None
    study: optuna.Study | None = None
    ran: int = 0
    busy: threading.Event = dataclasses.field(default_factory=threading.Event)


_worker: Worker | None = None  # set by start() in a worker process


def start(job: Job) -> None:
    """The pool's initializer, in each worker process: signals, logs, the watch, TensorFlow's
    threads."""
    global _worker
    signals.ignore_here()
    sys.stdout, sys.stderr = Terminal(sys.stdout), Terminal(sys.stderr)
    with job.started.get_lock():
        index, job.started.value = job.started.value, job.started.value + 1
    _worker = Worker(job, index, time.monotonic() - process_age())
    log_to(job.logs, index)
    threading.Thread(target=watch, args=(_worker,), daemon=True).start()
    try:
        config.use_config_sources(job.config_sources)  # before anything composes a config here
        from pipeline.training.train import configure_threads

        configure_threads(OmegaConf.create(job.threads))  # before TensorFlow runs anything here
        if job.show_progress_bar:
            optuna.logging.set_verbosity(optuna.logging.WARNING)  # the invoker's bar shows each
    except Exception:  # noqa: BLE001 - told to the invoker by this worker's first task
        _worker.error = f"rnn-sweep worker {index} failed:\n{redact(traceback.format_exc())}"


def process_age() -> float:
    """Seconds since this process began (Linux): its start-up counts Python's and the imports."""
    try:
        ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])
        return time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


def run_trial() -> tuple[str, str | None]:
    """One task: one trial of the study, once the orders came. (ran | closed | interrupted,
    None), or (input | error, the message) when it failed; never an exception (a signal's would
    not unpickle)."""
    worker = _worker
    if worker.error:
        return "error", worker.error
    try:
        if worker.orders is None and not read_orders(worker):
            return "closed", None
        if not open_for_trials(worker.orders, worker.study):
            return "closed", None
        signals.check()
        from pipeline.search.objective import TrialFailed

        worker.busy.set()
        try:
            worker.study.optimize(
                worker.objective, n_trials=1, catch=(TrialFailed,), show_progress_bar=False
            )
        finally:
            worker.busy.clear()
        worker.ran += 1
        if worker.ran == worker.job.max_trials:
            log.info("ran %d trials (search.worker_max_trials): recycled", worker.ran)
        return "ran", None
    except signals.Interrupted:
        return "interrupted", None
    except InputError as error:
        return "input", str(error)
    except Exception as error:  # noqa: BLE001 - told to the invoker, which reports it and exits 1
        if full := as_disk_full(error):
            return "input", str(full)
        worker.error = f"rnn-sweep worker {worker.index} failed:\n{redact(traceback.format_exc())}"
        return "error", worker.error


def read_orders(worker: Worker) -> bool:
    """Wait for the orders; then this worker's study and objective, its own sampler on the
    shared study, and the data read (a fresh process pays it as part of its start-up). False:
    there is no work."""
    waiting = time.monotonic()
    while not worker.job.ready.wait(0.5):
        signals.check()  # the invoker gone
    waited = time.monotonic() - waiting  # not part of the start-up
    orders = read_given_orders(worker.job)
    if orders is None:
        return False
    from pipeline.search import study as studies
    from pipeline.search.objective import Objective

    cfg = OmegaConf.merge(orders.cfg, {"train": {"threads": worker.job.threads}})  # a new config
    mlflow.set_tracking_uri(orders.tracking_uri)
    mlflow.set_experiment(experiment_id=orders.experiment_id)
    worker.objective = Objective(cfg, worker.job.base_overrides)
    worker.objective.parent_run_id = orders.parent_run_id
    worker.study = studies.make_study(cfg)
    worker.study.sampler = studies.make_sampler(
        cfg, offset=len(worker.study.trials) + SEED_STRIDE * (worker.index + 1)
    )
    worker.objective.dataset(cfg)
    worker.orders = orders
    log.info("ready for trials: a start-up of %.1f s", time.monotonic() - worker.started - waited)
    return True


def read_given_orders(job: Job) -> Orders | None:
    return pickle.loads(ctypes.string_at(ctypes.addressof(job.orders), job.orders_size.value))


def watch(worker: Worker) -> None:
    """The worker's stand-in for a signal handler: the invoker's signal, or the invoker gone,
    stops it; with the invoker gone, the process ends once its trial has (nobody would give it
    another)."""
    job = worker.job
    while not job.stop.value and os.getppid() == job.invoker_pid:
        time.sleep(0.2)
    signals.request_stop(job.stop.value or signal.SIGTERM)
    if job.stop.value:
        return
    while worker.busy.is_set():
        time.sleep(0.2)
    time.sleep(1.0)  # the task ends and says so
    os._exit(128 + signal.SIGTERM)


def log_to(logs, index: int) -> None:
    """Every log line to the invoker's handlers (its log file; warnings on the terminal), marked
    with the worker."""
    install_log_redaction()
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.INFO)
    handler = logging.handlers.QueueHandler(logs)
    handler.setFormatter(logging.Formatter(f"[worker {index}] %(message)s"))
    root.addHandler(handler)
