"""Database engines and sessions: one engine per process, one session per message or job."""
from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from bot import pausepoints


class WriterQueue:
    """A re-entrant lock for SQLite writers in which urgent ones (the callback) go first.

    SQLite lets one writer in at a time and makes the others poll with growing sleeps, which under
    load starves a waiting writer for seconds, while a callback must be stored and answered well
    within WeCom's 5 s. Inside one process writers queue here instead, and background work (inbox
    workers, the sender, jobs) steps aside while a callback waits. It is held from BEGIN to COMMIT
    or ROLLBACK, exactly while SQLite's own lock would be, so a job that calls WeCom before its
    first query does not hold it during the calls. Other processes still meet SQLite's busy
    timeout; PostgreSQL and MySQL need none of this.
    """

    def __init__(self) -> None:
        lock = threading.Lock()
        # Two queues on one lock, so a release wakes exactly one waiter of the right kind.
        self._urgent = threading.Condition(lock)
        self._normal = threading.Condition(lock)
        self._owner: int | None = None
        self._depth = 0
        self._urgent_waiting = 0

    def acquire(self, urgent: bool = False) -> None:
        me = threading.get_ident()
        with self._normal:
            if self._owner == me:
                self._depth += 1
                return
            if urgent:
                self._urgent_waiting += 1
                try:
                    while self._owner is not None:
                        self._urgent.wait()
                finally:
                    self._urgent_waiting -= 1
            else:
                while self._owner is not None or self._urgent_waiting:
                    self._normal.wait()
            self._owner, self._depth = me, 1

    def release(self) -> None:
        with self._normal:
            self._depth -= 1
            if self._depth:
                return
            self._owner = None
            if self._urgent_waiting:
                self._urgent.notify()
            else:
                self._normal.notify()


_sqlite_writers: weakref.WeakKeyDictionary[Engine, WriterQueue] = weakref.WeakKeyDictionary()
_urgency = threading.local()  # set by transaction(urgent=True) for the BEGIN that follows


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=pool_size, max_overflow=pool_size)
        writers = _sqlite_writers[engine] = WriterQueue()

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            # WAL lets the callback write while workers read; the busy timeout makes writers queue
            # instead of failing; foreign keys are off by default in SQLite.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
            # pysqlite's own transaction handling defers BEGIN until the first write, which breaks
            # the claim-then-work transactions below; take BEGIN into our own hands instead.
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection):  # type: ignore[no-untyped-def]
            writers.acquire(urgent=getattr(_urgency, "urgent", False))
            connection.info["holds_writer"] = True
            # IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
            # writes can fail at once with SQLITE_BUSY under WAL instead of waiting its turn.
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                connection.info.pop("holds_writer", None)
                writers.release()
                raise

        @event.listens_for(engine, "commit")
        @event.listens_for(engine, "rollback")
        def _sqlite_end(connection):  # type: ignore[no-untyped-def]
            if connection.info.pop("holds_writer", False):
                writers.release()

        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=1800)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session], *, urgent: bool = False) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error. Only runners open these.

    `urgent` is for the callback, which must answer WeCom quickly (see WriterQueue)."""
    previous = getattr(_urgency, "urgent", False)
    _urgency.urgent = urgent
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
        _urgency.urgent = previous


@contextmanager
def urgent_connection(engine: Engine) -> Iterator[Connection]:
    """A Core connection in one transaction that goes first on SQLite: the callback's single insert
    needs none of the ORM's unit-of-work machinery, and it is on the path WeCom is waiting for."""
    previous = getattr(_urgency, "urgent", False)
    _urgency.urgent = True
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        _urgency.urgent = previous


def migrations_dir() -> Path:
    return Path(__file__).resolve().parent / "migrations"


def upgrade_database(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (creating it on an empty database)."""
    # Alembic is imported when the schema is read or changed, not with this module: loading it costs several
    # hundred milliseconds, and every process (each `kpibot` command, `--help` included) imports this module.
    from alembic import command
    from alembic.config import Config as AlembicConfig

    alembic_cfg = AlembicConfig()
    alembic_cfg.set_main_option("script_location", str(migrations_dir()))
    with engine.begin() as connection:
        alembic_cfg.attributes["connection"] = connection
        command.upgrade(alembic_cfg, "head")


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext  # when needed: see upgrade_database

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


Item = TypeVar("Item")
# How many rows a long job writes per transaction: between two chunks the database's writer lock is free for the
# callback (on SQLite one writer at a time), however long the whole job takes.
CHUNK_SIZE = 200


def in_chunks(sessions: sessionmaker[Session], items: Sequence[Item], work: Callable[[Session, Sequence[Item]], None],
              *, size: int = CHUNK_SIZE, pausepoint: str | None = None,
              progress: Callable[[int, int], None] | None = None) -> None:
    """Do `work` on `items` `size` at a time, each chunk committed in a transaction of its own: how every long job
    writes. A crash loses at most the chunk under way. `progress(done, total)` hears of each committed chunk."""
    total = len(items)
    for start in range(0, total, size):
        with transaction(sessions) as session:
            work(session, items[start:start + size])
        if pausepoint is not None:
            pausepoints.reached(pausepoint)
        if progress is not None:
            progress(min(start + size, total), total)
