"""Engines configured for a ledger: durable, serialised writes on SQLite; plain on PostgreSQL.

SQLite (see docs/storage.md and the pitfalls it cites): pysqlite in autocommit mode with an
explicit `BEGIN IMMEDIATE` for every transaction, so a write takes the lock before it reads
(no lost update); WAL; synchronous=FULL (durable commits); busy_timeout so concurrent writers
wait their turn; recursive_triggers so `INSERT OR REPLACE` cannot delete journal rows silently.
"""

from __future__ import annotations

from typing import Any

from psycopg.adapt import Loader
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from ledger.errors import Reason, Rejected

SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_CACHE_KIB = 65_536
"""Page cache per SQLite connection (SQLite's default is 2 MiB). A book of a million entries
has an 80 MB posting index whose pages an ingest touches at every account; with 2 MiB they
are read back from the OS for each batch (145k posting rows/s here, 210k with 64 MiB)."""


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Return an engine for `url` (sqlite:///FILE or postgresql://...), configured for a ledger."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise Rejected(Reason.BAD_INPUT, f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, **kwargs)
    if backend in ("postgresql", "postgres"):
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(parsed, pool_pre_ping=False, **kwargs)
        event.listen(engine, "connect", _pg_on_connect)
        return engine
    raise Rejected(Reason.BAD_INPUT, f"unsupported database {backend!r}: use sqlite or postgresql")


def _pg_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Load NUMERIC as exact Python ints on raw cursors: the only NUMERIC columns in the
    # schema are NUMERIC(78, 0) amounts, and Decimal would only be converted again.
    dbapi_connection.adapters.register_loader("numeric", _NumericAsInt)


class _NumericAsInt(Loader):
    def load(self, data: Any) -> int:
        return int(bytes(data))


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    if make_url(url).database in (None, "", ":memory:"):
        # One shared connection, usable from the audit's reader thread too: every pool
        # connection to ":memory:" would otherwise be a different, empty database.
        kwargs.setdefault("poolclass", StaticPool)
        kwargs.setdefault("connect_args", {"check_same_thread": False})
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite; `begin` below issues BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        cursor.execute("PRAGMA recursive_triggers = ON")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the lock before their first read; readers use a WAL snapshot and
        # never block writers. Anything not marked is treated as a writer.
        mode = connection.get_execution_options().get("tl_begin", "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine
