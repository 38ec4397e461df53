"""Opening the Optuna and MLflow stores safely: probed read-only before anything is written, created
under a lock.

Workers started together on a fresh mlruns/ race through MLflow's schema migration (alembic: `table
_alembic_tmp_tags already exists`, leaving mlflow.db half migrated) and Optuna's table creation. So
each SQLite store is created, migrated and first opened under an exclusive file lock beside it
(`mlflow.db.lock`, `optuna.db.lock`; the operating system releases it when a process dies). Before
either store is touched, `paths.*` and both stores are probed without writing: a file that is not a
database, is damaged or read-only, an MLflow store with an older schema, a URL that does not parse,
resolve, connect or log in: one InputError line naming the file or the URL (its password hidden),
and nothing written.
"""

import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
import socket
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

import filelock
import sqlalchemy
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig
from sqlalchemy.engine import make_url

from pipeline.core.errors import InputError, check_space
from pipeline.core.redaction import redact

log = logging.getLogger(__name__)

# how long a process waits while another creates or migrates a store (that takes ~2 s)
LOCK_SECONDS = 600
CONNECT_SECONDS = 10  # a network probe gives up after this long
# the databases MLflow's tracking store speaks besides SQLite
SQL_SCHEMES = ("postgresql", "mysql", "mssql")
# a new MLflow store is 1 MB, each trial's model 2 MB and up: less is refused at start
MLRUNS_MIN_FREE = 16 * 10**6
SQLITE_BUSY_SECONDS = 60  # how long an SQLite reader waits for a writer of another process
# one lock object per file: re-entrant within the process
_locks: dict[Path, filelock.FileLock] = {}
# SQLite stores found complete (every table, MLflow's current schema): no lock to open
_complete: set[Path] = set()


@dataclasses.dataclass(frozen=True)
class Store:
    kind: str  # MLflow | Optuna
    setting: str  # the config key that chooses it
    url: str
    # tables every such store has: a database without them is someone else's
    tables: tuple[str, ...]
    upgrade: str  # the command that migrates an older store

    @property
    def file(self) -> Path | None:
        return sqlite_file(self.url)

    @property
    def name(self) -> str:
        return (
            f"{self.kind} store {self.file}" if self.file else f"{self.setting}={redact(self.url)}"
        )


def mlflow_store(url: str) -> Store:
    return Store(
        "MLflow",
        "tracking.uri",
        url,
        ("experiments", "runs", "alembic_version"),
        "mlflow db upgrade {url}",
    )


def optuna_store(url: str) -> Store:
    return Store(
        "Optuna",
        "search.storage",
        url,
        ("studies", "trials", "version_info"),
        "optuna storage upgrade --storage {url}",
    )


def sqlite_file(url: str) -> Path | None:
    """The database file of an sqlite URL; None for any other URL, and for an in-memory database."""
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        return None
    database = parsed.database
    if (
        parsed.get_backend_name() != "sqlite"
        or not database
        or database == ":memory:"
        or database.startswith("file:")
    ):
        return None
    return Path(database).expanduser().absolute()


# ----------------------------------------------------------------------------- before writing


def check_before_writing(paths, stores: Iterable[Store]) -> None:
    """Every `paths.*` folder can be made and every store can be opened; nothing is written.
    InputError if not."""
    for key, value in paths.items():
        if isinstance(value, str) and value:
            check_creatable(f"paths.{key}={value}", Path(value).expanduser().absolute())
    stores = tuple(stores)
    if paths.get("mlruns_dir"):
        check_mlruns_space(Path(paths.mlruns_dir).expanduser().absolute(), stores)
    for store in stores:
        if store.file:
            check_sqlite_store(store)
        elif store.url.startswith(("http://", "https://")):
            check_reachable(store)
        elif store.kind == "Optuna" or urlsplit(store.url).scheme.split("+")[0] in SQL_SCHEMES:
            check_database(store)
        # an MLflow file store: a folder
        elif "://" not in store.url or store.url.startswith("file://"):
            check_creatable(
                f"{store.setting}={store.url}",
                Path(store.url.removeprefix("file://")).expanduser().absolute(),
            )
        # any other MLflow URI (databricks, ...): MLflow's own errors, as one line (opening)


def check_mlruns_space(mlruns: Path, stores: tuple[Store, ...]) -> None:
    """A local store (and so every run's model, beside it) in paths.mlruns_dir needs room: DiskFull
    if not."""
    if any(store.file and store.file.is_relative_to(mlruns) for store in stores):
        check_space(
            f"paths.mlruns_dir={mlruns}", mlruns, MLRUNS_MIN_FREE, "choose another paths.mlruns_dir"
        )


def check_creatable(what: str, path: Path) -> None:
    """`path` is a folder we may write in, or can be made one: its nearest existing ancestor is a
    writable folder."""
    existing = path
    try:
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
    except OSError as error:
        raise InputError(f"{what}: {existing} cannot be reached ({error.strerror})") from None
    cannot = "" if existing == path else "cannot be created: "
    if not existing.is_dir():
        raise InputError(f"{what}: {cannot}{existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{what}: {cannot}{existing} is read-only")


def check_sqlite_store(store: Store) -> None:
    """The SQLite file is absent (its folder can be made), empty (a warning), or a healthy store of
    its kind."""
    file = store.file
    _complete.discard(file)
    if not file.exists():
        check_creatable(f"{store.name}: its folder {file.parent}", file.parent)
        return
    if file.is_dir():
        raise InputError(f"{store.name} is a folder, not a database file")
    if not os.access(file, os.R_OK | os.W_OK):
        raise InputError(
            f"{store.name} is read-only: {store.kind} writes to it; make it writable or choose "
            f"another {store.setting}"
        )
    if not os.access(file.parent, os.W_OK | os.X_OK):
        raise InputError(
            f"{store.name}: its folder {file.parent} is read-only (SQLite writes its journal "
            "beside the database)"
        )
    if file.stat().st_size and sqlite_problem(store) == (None, True):
        _complete.add(file)  # the usual case: a finished store, opened without waiting for its lock
        return
    # a file another worker is creating right now is complete once we hold its lock
    with creation_lock(store):
        if file.stat().st_size == 0:
            log.warning("%s is an empty file: treated as a new store", store.name)
            return
        problem, complete = sqlite_problem(store)
    if problem:
        raise InputError(f"{store.name} {problem}")
    if complete:
        _complete.add(file)


def sqlite_problem(store: Store) -> tuple[str | None, bool]:
    """What is wrong with the store's SQLite file, read without writing (mode=rw only so that SQLite
    can roll back a journal a crashed writer left), or None; and whether it holds every table of
    this MLflow / Optuna."""
    advice = (
        f"restore it from a backup, or move it away to start a new {store.kind} store; nothing was "
        "written"
    )
    head = mlflow_schema_head() if store.kind == "MLflow" else None
    try:
        with contextlib.closing(
            sqlite3.connect(f"{store.file.as_uri()}?mode=rw", uri=True, timeout=SQLITE_BUSY_SECONDS)
        ) as db:
            checked = [row[0] for row in db.execute("PRAGMA quick_check")]
            tables = {
                row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            revision = (
                db.execute("SELECT version_num FROM alembic_version").fetchall()
                if "alembic_version" in tables
                else []
            )
    except sqlite3.DatabaseError as error:
        return f"is not a usable SQLite database ({error}): {advice}", False
    if checked != ["ok"]:
        return f"is damaged (PRAGMA quick_check: {' '.join(checked[0].split())}): {advice}", False
    if tables and not set(store.tables) <= tables:
        missing = ", ".join(sorted(set(store.tables) - tables))
        return (
            f"is an SQLite database but not an {store.kind} store (no table {missing}); choose "
            f"another {store.setting}",
            False,
        )
    found = revision[0][0] if revision else None
    if head and tables and found != head:
        return (
            f"has MLflow's database schema {found}, and this MLflow needs {head}: stop every "
            "process that writes to it (rnn-sweep, rnn-train, mlflow ui / server), back it up, "
            f"then run `{upgrade_command(store)}`"
        ), False
    expected = all_tables(store)
    # MLflow's schema is at its head (above); Optuna stamps its revision after making its tables
    finished = head is not None if store.kind == "MLflow" else found is not None
    return None, bool(expected) and expected <= tables and finished


@functools.cache
def mlflow_schema_head() -> str | None:
    """The schema revision this MLflow creates (None if MLflow's internals moved: MLflow's own check
    remains)."""
    try:
        from mlflow.store.db.utils import _get_latest_schema_revision

        return _get_latest_schema_revision()
    # a private function; without it the probe skips this one check
    except Exception:  # noqa: BLE001
        return None


def all_tables(store: Store) -> set[str]:
    """Every table this MLflow or Optuna creates, from their own models (empty if those moved:
    always lock then)."""
    try:
        if store.kind == "MLflow":
            from mlflow.store.db.utils import Base
        else:
            from optuna.storages._rdb.models import BaseModel as Base
        return set(Base.metadata.tables)
    except Exception:  # noqa: BLE001 - private modules
        return set()


def check_reachable(store: Store) -> None:
    """A server URL: its host resolves and its port accepts a connection."""
    try:
        url = urlsplit(store.url)
        host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    except ValueError as error:  # a port that is not a number
        raise InputError(f"{store.name}: {error}") from None
    try:
        with socket.create_connection((host, port), timeout=CONNECT_SECONDS):
            pass
    except socket.gaierror as error:
        raise InputError(f"{store.name}: unknown host {host!r} ({error.strerror})") from None
    except OSError as error:
        raise InputError(
            f"{store.name}: cannot connect to {host}:{port} ({error.strerror or error})"
        ) from None


def check_database(store: Store) -> None:
    """A database URL: it parses, its driver is installed, and a connection logs in."""
    try:
        url = make_url(store.url)
        connect_args = (
            {"connect_timeout": CONNECT_SECONDS}
            if url.get_backend_name() in ("postgresql", "mysql")
            else {}
        )
        engine = sqlalchemy.create_engine(
            url, connect_args=connect_args, poolclass=sqlalchemy.pool.NullPool
        )
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except Exception as error:  # noqa: BLE001 - whatever the driver raises, the user sees one line
        raise InputError(store_error(store, error)) from None


# ----------------------------------------------------------------------------- opening


@contextlib.contextmanager
def creation_lock(store: Store):
    """Hold the store's exclusive file lock (SQLite stores only): one process at a time creates or
    migrates it."""
    if store.file is None:
        yield
        return
    path = store.file.with_name(store.file.name + ".lock")
    lock = _locks.setdefault(path, filelock.FileLock(path, timeout=LOCK_SECONDS))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except filelock.Timeout:
        raise InputError(
            f"{store.name}: another process held {path} for {LOCK_SECONDS} s; is it stuck?"
        ) from None
    except OSError as error:
        raise InputError(
            f"{store.name}: cannot create the lock file {path} ({error.strerror or error})"
        ) from None
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def database_lock(store: Store):
    """PostgreSQL and MySQL: the same, as a lock inside the database server, which workers on every
    machine see (Optuna's first table creation races there too: `duplicate key value violates
    "pg_type_typname_nsp_index"`). Released when its connection closes, also when the process
    dies."""
    try:
        url = make_url(store.url)
        backend = url.get_backend_name()
    # not an SQLAlchemy URL (MLflow's databricks, ...): nothing to lock
    except sqlalchemy.exc.ArgumentError:
        url = backend = None
    if backend not in ("postgresql", "mysql"):
        yield
        return
    name = f"rnnsweep {store.kind} store creation"
    # advisory locks: per database
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    engine = sqlalchemy.create_engine(
        url, poolclass=sqlalchemy.pool.NullPool, connect_args={"connect_timeout": CONNECT_SECONDS}
    )
    try:
        with engine.connect() as connection:
            if backend == "postgresql":
                connection.execute(sqlalchemy.text(f"SET lock_timeout = '{LOCK_SECONDS}s'"))
                connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            elif (
                connection.execute(
                    sqlalchemy.text("SELECT GET_LOCK(:name, :seconds)"),
                    {"name": name, "seconds": LOCK_SECONDS},
                ).scalar()
                != 1
            ):
                raise InputError(
                    f"{store.name}: another process held the lock {name!r} for {LOCK_SECONDS} s; "
                    "is it stuck?"
                )
            yield
    finally:
        engine.dispose()


@contextlib.contextmanager
def lock_unless_complete(store: Store):
    """Hold the store's lock inside, unless the store is complete (known, or found so once the lock
    is ours: another worker finished it while we waited); then nothing is created or migrated, and
    nobody waits."""
    if store.file is None:
        with database_lock(store):
            yield
        return
    if store.file in _complete:
        yield
        return
    with creation_lock(store):
        if not (
            store.file.exists()
            and store.file.stat().st_size
            and sqlite_problem(store) == (None, True)
        ):
            yield
            return
    _complete.add(store.file)
    yield


@contextlib.contextmanager
def opening(store: Store):
    """Create, migrate or open `store` inside, under its lock while it is not complete; its errors
    turned into one InputError line."""
    try:
        with lock_unless_complete(store):
            yield
    except InputError:
        raise
    except (
        sqlalchemy.exc.SQLAlchemyError,
        sqlite3.Error,
        MlflowException,
        ValueError,
        ImportError,
        OSError,
    ) as error:
        raise InputError(store_error(store, error)) from None
    except RuntimeError as error:  # Optuna: a table schema of another Optuna version
        if "optuna storage upgrade" not in str(error) and "table schema" not in str(error):
            raise
        raise InputError(store_error(store, error)) from None


def store_error(store: Store, error: Exception) -> str:
    """One line: the store, and what went wrong with it, passwords hidden."""
    text = str(getattr(error, "orig", None) or error)
    if "out-of-date database schema" in text or "optuna storage upgrade" in text:
        text = (
            f"its schema is older than this {store.kind} needs: stop every process that writes to "
            f"it, back it up, then run `{upgrade_command(store)}`"
        )
    elif isinstance(error, ImportError):
        text = f"its database driver is not installed ({text})"
    elif isinstance(error, sqlalchemy.exc.NoSuchModuleError):
        text = f"unknown database kind {make_url(store.url).drivername!r}"
    elif isinstance(error, sqlalchemy.exc.ArgumentError) and "parse" in text:
        text = "not a database URL (sqlite:///path/optuna.db, postgresql://user@host/database, ...)"
    text = text.split("(Background on this error at:")[0]
    return redact(f"{store.name}: {' '.join(text.split())}")


def upgrade_command(store: Store) -> str:
    return store.upgrade.format(url=redact(store.url))


def one_transaction_at_a_time(engine: sqlalchemy.engine.Engine) -> None:
    """An SQLite store's transactions begin IMMEDIATE: each holds the write lock from its first
    read. pysqlite begins a transaction only at the first write, and SQLite ignores SELECT ... FOR
    UPDATE, so two workers both read the enqueued baseline as waiting and both ran it (optuna#4002).
    SQLAlchemy's documented recipe for pysqlite; other databases lock the row themselves."""
    if engine.dialect.name != "sqlite":
        return
    sqlalchemy.event.listen(engine, "connect", leave_transactions_to_sqlalchemy)
    sqlalchemy.event.listen(engine, "begin", begin_immediate)
    engine.dispose()  # the connections opened before the listeners


def leave_transactions_to_sqlalchemy(connection: sqlite3.Connection, _record) -> None:
    connection.isolation_level = None


def begin_immediate(connection: sqlalchemy.engine.Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def storage_url(cfg) -> str:
    """The Optuna study's storage: search.storage, or optuna.db beside MLflow's store in
    paths.mlruns_dir."""
    if cfg.search.storage:
        return cfg.search.storage
    return f"sqlite:///{Path(cfg.paths.mlruns_dir).expanduser().resolve() / 'optuna.db'}"


def absolute(path: str) -> Path:
    return Path(path).expanduser().resolve()


def tracking_uri(cfg: DictConfig) -> str:
    """The configured URI, or the local store: a sqlite file inside paths.mlruns_dir."""
    if cfg.tracking.uri:
        return cfg.tracking.uri
    return f"sqlite:///{absolute(cfg.paths.mlruns_dir) / 'mlflow.db'}"


def probe(cfg: DictConfig, also_check: tuple[Store, ...] = ()) -> Store:
    """`paths.*`, the MLflow store and `also_check` can be used: InputError if not; nothing is
    written. Entry points call it before they prepare any data; returns the MLflow store."""
    store = mlflow_store(tracking_uri(cfg))
    check_before_writing(cfg.paths, (store, *also_check))
    return store


def probe_sweep(cfg: DictConfig) -> Store:
    """probe for a sweep: the MLflow store and the study's storage, before TensorFlow loads."""
    return probe(cfg, also_check=(optuna_store(storage_url(cfg)),))
