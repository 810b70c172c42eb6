"""The embedded database: one SQLite file in WAL mode, or any SQLAlchemy URL.

Why SQLite in WAL mode: the app's page runs, the background sync thread and the
command line all open the same file at once; WAL lets readers go on while one writer
commits, and ``busy_timeout`` makes a second writer wait instead of failing.

The schema is versioned: :data:`MIGRATIONS` is an ordered list of steps, each run
once inside a transaction, and ``schema_version`` records how far a database has
come. SQL stays portable (SQLAlchemy Core) so a team deployment can move to
PostgreSQL by changing ``database_url``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    Table,
    create_engine,
    event,
    inspect,
    select,
)

from lib import schema

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 15_000

_version_meta = MetaData()
schema_version_table = Table(
    "schema_version", _version_meta, Column("version", Integer, primary_key=True)
)


def _migration_1(conn: Connection) -> None:
    """The first schema: every table in lib.schema."""
    schema.metadata.create_all(conn, checkfirst=True)


# Append new steps; never edit or reorder a step that has shipped.
MIGRATIONS: list[Callable[[Connection], None]] = [_migration_1]
SCHEMA_VERSION = len(MIGRATIONS)


def utcnow() -> datetime:
    """Timezone-aware now in UTC; all stored times use it."""
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; treat them as the UTC they were stored as."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # Take the write lock at BEGIN so two writers queue on busy_timeout instead of
    # failing with "database is locked" when a reader upgrades to a writer.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_db_engine(url: str) -> Engine:
    """Create an engine for ``url`` and bring its schema up to date."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if str(path) not in ("", ":memory:"):
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 15},
            pool_pre_ping=False,
        )
        event.listen(engine, "connect", _sqlite_pragmas)

        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event issue it

        event.listen(engine, "begin", _sqlite_begin)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    migrate(engine)
    return engine


def current_version(engine: Engine) -> int:
    with engine.connect() as conn:
        if not inspect(conn).has_table("schema_version"):
            return 0
        value = conn.execute(select(schema_version_table.c.version)).scalar()
        return int(value or 0)


def migrate(engine: Engine) -> int:
    """Run the migrations this database has not had yet; return the new version."""
    with engine.begin() as conn:
        _version_meta.create_all(conn, checkfirst=True)
        row = conn.execute(select(schema_version_table.c.version)).scalar()
        version = int(row or 0)
        for number, step in enumerate(MIGRATIONS, start=1):
            if number <= version:
                continue
            log.info("migrating database schema to version %d", number)
            step(conn)
            version = number
        if row is None:
            conn.execute(schema_version_table.insert().values(version=version))
        else:
            conn.execute(schema_version_table.update().values(version=version))
    return version


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def get_engine(url: str) -> Engine:
    """One engine per database URL for the whole process (app threads and CLI)."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = create_db_engine(url)
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    """Close every pooled connection (tests and shutdown)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
