"""Driver errors in the user's terms: a busy database, a server that cannot be reached, a
database without the schema. Everything else passes through unchanged (a bug).
"""

from __future__ import annotations

import sqlite3

import psycopg
from sqlalchemy.exc import DBAPIError

from ledger.errors import Reason, Rejected

DRIVER_ERRORS: tuple[type[Exception], ...] = (DBAPIError, sqlite3.Error, psycopg.Error)
# Serialization failure, deadlock, lock_timeout, statement_timeout: the same request may succeed.
BUSY_SQLSTATES = ("40001", "40P01", "55P03", "57014")

_TRANSIENT = (
    "connection refused",
    "timeout",
    "timed out",
    "starting up",
    "shutting down",
    "too many connections",
    "server closed the connection",
)


def connection_problem(exc: BaseException, url: str | None = None) -> Rejected:
    """Return the refusal for a database that cannot be opened.

    A server that is down or busy may come back (retryable); a wrong role, password or
    database name, or a path that cannot be opened, will not (not retryable).
    """
    orig = getattr(exc, "orig", None) or exc
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    where = "" if url is None else f" {url}"
    return Rejected(
        Reason.UNAVAILABLE,
        f"cannot open the database{where}: {first}",
        retryable=any(word in first.lower() for word in _TRANSIENT),
    )


def translate(exc: Exception) -> Exception:
    """Map a driver error to a `Rejected` the user can act on, or return it unchanged."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).lower()
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in BUSY_SQLSTATES or "database is locked" in text or "busy" in text:
        return Rejected(Reason.BUSY, "the database is busy with another writer", retryable=True)
    if (sqlstate is None or sqlstate.startswith("08")) and (
        isinstance(orig, psycopg.OperationalError) or "unable to open database" in text
    ):
        return connection_problem(orig)
    if sqlstate == "42P01" or "no such table" in text:
        return Rejected(
            Reason.SCHEMA_NOT_INITIALISED,
            "the database has no ledger schema: run `token-ledger init`",
        )
    return exc
