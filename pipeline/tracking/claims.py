"""Work that concurrent invocations of one study must do once (a confirmation seed, a test score, a
registration), claimed through the study's own storage.

A claim is an exclusive lock named by the work: a byte-range lock in a file beside an SQLite store
(`optuna.db.claims`), an advisory lock in a PostgreSQL or MySQL store. The operating system or the
database releases it when its process dies, so a killed invocation's work is done by another.
Whoever holds the claim first reads whether the work is already stored (a study user attribute), and
stores it when done: the others then read it instead of doing it again.
"""

import contextlib
import fcntl
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import sqlalchemy
from sqlalchemy.engine import make_url

from pipeline.core import signals
from pipeline.tracking import stores
from pipeline.core.errors import InputError
from pipeline.core.redaction import redact

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5  # a waiting invocation retries this often, and answers a stop signal in between
_files: dict[Path, object] = {}  # the claims file of each SQLite store, open once per process


def lock_key(name: str) -> int:
    # 48 bits: a file offset, a bigint
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:6], "big")


class Claims:
    """Claims on named work in the store at `url`: the names carry the study's or the model's
    name."""

    def __init__(self, url: str):
        self.store = stores.optuna_store(url)
        try:
            self.backend = make_url(url).get_backend_name()
        except sqlalchemy.exc.ArgumentError:
            self.backend = None

    @contextlib.contextmanager
    def hold(self, name: str, wait: bool) -> Iterator[bool]:
        """`claim`, a store lost meanwhile turned into one InputError line (the store's fault, not a
        trial's)."""
        working = False
        try:
            with self.claim(name, wait) as held:
                working = True
                yield held
                working = False
        except sqlalchemy.exc.SQLAlchemyError as error:
            if working:  # the work's own error, not the claim's
                raise
            raise InputError(stores.store_error(self.store, error)) from None

    @contextlib.contextmanager
    def claim(self, name: str, wait: bool) -> Iterator[bool]:
        """Yields True while this process holds the claim on `name`; False at once if another holds
        it and not `wait`. Waiting polls, so that a stop signal ends it (signals.Interrupted)."""
        with self.lock(name) as try_lock:
            told = False
            while not try_lock():
                if not wait:
                    yield False
                    return
                if not told:
                    log.info("waiting for %s: another invocation of the study holds it", name)
                    told = True
                signals.check()
                time.sleep(POLL_SECONDS)
            yield True

    def lock(self, name: str):
        if self.store.file:
            return file_lock(
                self.store.file.with_name(self.store.file.name + ".claims"), lock_key(name)
            )
        if self.backend in ("postgresql", "mysql", "mariadb"):
            return database_lock(self.store.url, self.backend, name)
        if self.backend != "sqlite":  # an in-memory SQLite study has one process
            log.warning(
                "%s: work is not claimed on this kind of storage; concurrent invocations may "
                "repeat it",
                redact(self.store.url),
            )
        return no_lock()


def do_once(
    claims: Claims, prefix: str, done: Callable[[str], bool], work: dict[str, Callable[[], None]]
) -> None:
    """Each `work[key]()` unless `done(key)`, claimed as `prefix + key`. Work another invocation
    holds is left for a second round, which waits for it and then finds it done (or does it, if that
    invocation died)."""
    left = [key for key in work if not done(key)]
    for wait in (False, True):
        later = []
        for key in left:
            with claims.hold(prefix + key, wait) as held:
                if not held:
                    later.append(key)
                elif not done(key):
                    work[key]()
        left = later


@contextlib.contextmanager
def no_lock():
    yield lambda: True


@contextlib.contextmanager
def file_lock(path: Path, offset: int):
    """One byte of `path` locked. fcntl record locks: released when the process ends, independent of
    the `.lock` file's flock, and all of a process's locks on a file go when it closes any
    descriptor of it: so one stays open."""
    if path not in _files:
        _files[path] = open(path, "a+b")  # noqa: SIM115 - kept open for the process's life
    file = _files[path]
    held = False

    def try_lock() -> bool:
        nonlocal held
        with contextlib.suppress(BlockingIOError, PermissionError):
            fcntl.lockf(file, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
            held = True
        return held

    try:
        yield try_lock
    finally:
        if held:
            fcntl.lockf(file, fcntl.LOCK_UN, 1, offset)


@contextlib.contextmanager
def database_lock(url: str, backend: str, name: str):
    """A session-level advisory lock; the connection stays open while it is held."""
    engine = sqlalchemy.create_engine(
        url,
        poolclass=sqlalchemy.pool.NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": stores.CONNECT_SECONDS},
    )  # no transaction
    # held open for minutes: a server's idle-in-transaction timeout would end the session and its
    # lock
    if backend == "postgresql":
        take = sqlalchemy.text("SELECT pg_try_advisory_lock(:key)"), {"key": lock_key(name)}
        give = sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key(name)}
    else:
        # MySQL lock names: 64 characters at most
        digest = hashlib.sha256(name.encode()).hexdigest()[:60]
        take = sqlalchemy.text("SELECT GET_LOCK(:name, 0)"), {"name": digest}
        give = sqlalchemy.text("SELECT RELEASE_LOCK(:name)"), {"name": digest}
    try:
        with engine.connect() as connection:
            held = False

            def try_lock() -> bool:
                nonlocal held
                held = held or connection.execute(*take).scalar() in (True, 1)
                return held

            try:
                yield try_lock
            finally:
                if held:
                    # a lost session took its lock along
                    with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):
                        connection.execute(*give)
    finally:
        engine.dispose()
