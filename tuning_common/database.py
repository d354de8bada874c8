"""Engines, short retried transactions and the schema-version check, for every service.

SQLite (the default) runs in WAL mode with a busy timeout; write transactions start with
``BEGIN IMMEDIATE`` so two writers never deadlock on a lock upgrade ("database is
locked"). PostgreSQL runs at READ COMMITTED; services serialise per-resource work with
row locks (``SELECT ... FOR UPDATE``). Either way a transaction that loses a deadlock or
a lock wait is rolled back and run again, so use cases must be plain functions of a
connection with no side effects outside it.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url

from tuning_common import telemetry
from tuning_common.errors import FailedPrecondition, Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

_RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock not available


def normalise_url(url: str) -> URL:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _is_retryable(error: sa.exc.DBAPIError) -> bool:
    if error.connection_invalidated:
        return True  # a pooled connection had died (server restart, idle timeout): use a fresh one
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate in _RETRYABLE_SQLSTATES:
        return True
    return "database is locked" in str(error.orig)


@dataclass
class Database:
    engine: Engine
    # SQLite only: writers of this process queue here rather than in SQLite's busy handler,
    # which sleeps and retries, so late arrivals overtake threads that waited longest
    # (a p99 ask of seconds at 16 clients). Other processes still meet the busy timeout.
    write_lock: threading.Lock | None = None

    @classmethod
    def connect(cls, url: str, *, pool_size: int = 10, busy_timeout_s: float = 30.0) -> Database:
        parsed = normalise_url(url)
        if parsed.get_backend_name() == "sqlite":
            database = cls(_sqlite_engine(parsed, busy_timeout_s), threading.Lock())
        else:
            # No pool_pre_ping: it costs a round trip per transaction; a dead pooled connection
            # instead fails the transaction, which run() repeats on a fresh one.
            database = cls(sa.create_engine(parsed, pool_size=pool_size, max_overflow=pool_size))
        telemetry.instrument_engine(database.engine)
        return database

    @property
    def single_writer(self) -> bool:
        """Whether the database admits one writing transaction at a time (SQLite)."""
        return self.write_lock is not None

    def run(self, work: Callable[[Connection], T], *, write: bool, attempts: int = 5) -> T:
        """Runs ``work`` in one transaction, again from scratch after a deadlock or lock timeout."""
        sqlite = self.single_writer
        serialise = self.write_lock if write and sqlite else contextlib.nullcontext()
        for attempt in range(attempts):
            try:
                with serialise, self.engine.connect() as conn:
                    with conn.begin():
                        if sqlite:
                            # pysqlite's own transaction handling is off (see _sqlite_engine), so
                            # we open the transaction; IMMEDIATE takes the write lock up front.
                            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
                        return work(conn)
            except sa.exc.DBAPIError as error:
                if not _is_retryable(error) or attempt == attempts - 1:
                    if _is_retryable(error):
                        raise Unavailable(f"the database stayed busy after {attempts} attempts") from error
                    raise
                log.info("transaction conflict (%s); retrying", type(error.orig).__name__)
                time.sleep(random.uniform(0.005, 0.05) * 2**attempt)
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_engine(url: URL, busy_timeout_s: float) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url, connect_args={"check_same_thread": False, "timeout": busy_timeout_s}, pool_size=10, max_overflow=20
    )

    @sa.event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record):
        # Take transaction control away from pysqlite: Database.run issues BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.close()

    return engine


# --- schema versions -------------------------------------------------------------------


@dataclass(frozen=True)
class Migrations:
    """One service's Alembic scripts and the version table that records where a database is."""

    script_location: str
    version_table: str

    def _config(self, connection: Connection):
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", self.script_location)
        config.set_main_option("version_table", self.version_table)
        config.attributes["connection"] = connection
        return config

    def _scripts(self):
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self._config(None))

    def head(self) -> str:
        return self._scripts().get_current_head()

    def current(self, connection: Connection) -> str | None:
        from alembic.runtime.migration import MigrationContext

        context = MigrationContext.configure(connection, opts={"version_table": self.version_table})
        return context.get_current_revision()

    def ensure(self, db: Database, *, upgrade: bool) -> str:
        """Creates an empty database, upgrades an old one if allowed, refuses anything else.

        Returns the revision the database is at. Several replicas starting at once are
        serialised (an advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite).
        """
        from alembic import command

        scripts = self._scripts()
        head = scripts.get_current_head()
        known = {script.revision for script in scripts.walk_revisions()}

        def migrate(conn: Connection) -> str:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:t))"), {"t": self.version_table})
            current = self.current(conn)
            if current == head:
                return current
            if current is not None and current not in known:
                raise FailedPrecondition(
                    f"the database is at unknown schema revision {current}; this version knows up to {head} "
                    "(was it written by a newer release?)",
                    reason="SCHEMA_UNKNOWN",
                )
            if current is not None and not upgrade:
                raise FailedPrecondition(
                    f"the database is at schema revision {current} but this version needs {head}; "
                    "back it up, then run `tuning db upgrade` (or start with --migrate)",
                    reason="SCHEMA_OUT_OF_DATE",
                )
            command.upgrade(self._config(conn), "head")
            log.info("database schema %s -> %s", current or "empty", head)
            return head

        return db.run(migrate, write=True, attempts=1)


def run_migrations(metadata: sa.MetaData) -> None:
    """The body of every service's Alembic ``env.py``: migrate on the connection that
    :meth:`Migrations.ensure` hands in (never one of Alembic's own)."""
    from alembic import context

    config = context.config
    context.configure(
        connection=config.attributes["connection"],
        target_metadata=metadata,
        version_table=config.get_main_option("version_table"),
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()
