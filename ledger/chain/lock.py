"""One chain writer per book at a time: a lock held in (or beside) the database.

`chain sync` and `chain anchor` of one book take this lock for their whole run; a second run
is refused at once (Reason.BUSY, one line), never queued. The lock dies with the process that
holds it, so a run killed with SIGKILL never leaves a stale lock behind:

- PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) on a connection of its
  own, keyed by the first 8 bytes of sha256("token-ledger/chain-sync/v1:" + schema + ":" +
  book), the schema being the ledger's (`current_schema()`: two ledgers in one database
  do not share locks);
- SQLite: an exclusive `flock` on the file `<database>.chain-<book>.lock` beside the database
  (SQLite has no lock that outlives a transaction, and holding a write transaction for the
  whole sync would stop every other writer of the ledger).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, text

from ledger.errors import Reason, Rejected

LOCK_TAG = b"token-ledger/chain-sync/v1:"
_MEMORY_LOCKS: dict[tuple[str, str], threading.Lock] = {}


def lock_key(book: str, schema: str = "") -> int:
    """Return the advisory lock key of `book` in `schema`: a signed 64-bit integer."""
    digest = hashlib.sha256(LOCK_TAG + f"{schema}:{book}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _busy(book: str) -> Rejected:
    return Rejected(
        Reason.BUSY,
        f"another chain sync or anchor of {book} holds this database's lock; try again"
        " when it is done",
        retryable=True,
    )


@contextlib.contextmanager
def book_lock(engine: Engine, book: str) -> Iterator[None]:
    """Hold the chain lock of `book` for the `with` block, or refuse at once (Reason.BUSY)."""
    dialect = engine.dialect.name
    if dialect == "postgresql":
        with _advisory_lock(engine, book):
            yield
    elif dialect == "sqlite":
        with _file_lock(engine, book):
            yield
    else:  # pragma: no cover - the ledger runs on SQLite and PostgreSQL only
        raise Rejected(Reason.UNAVAILABLE, f"no chain lock for database dialect {dialect}")


@contextlib.contextmanager
def _advisory_lock(engine: Engine, book: str) -> Iterator[None]:
    with engine.connect() as connection:
        schema = str(connection.execute(text("SELECT current_schema()")).scalar() or "")
        key = lock_key(book, schema)
        got = connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        connection.commit()
        if not got:
            raise _busy(book)
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            connection.commit()


@contextlib.contextmanager
def _file_lock(engine: Engine, book: str) -> Iterator[None]:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        lock = _MEMORY_LOCKS.setdefault((str(engine.url), book), threading.Lock())
        if not lock.acquire(blocking=False):
            raise _busy(book)
        try:
            yield
        finally:
            lock.release()
        return
    path = Path(f"{database}.chain-{book}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise _busy(book) from exc
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
