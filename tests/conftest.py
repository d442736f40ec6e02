"""Shared fixtures: a ledger on SQLite and on the real PostgreSQL server.

PostgreSQL tests use a fresh schema on the server named by TOKEN_LEDGER_TEST_PG (default
postgresql://postgres@127.0.0.1:5432/test). Outside CI a missing server skips them with the
reason; with CI=true a missing server fails them, because CI must prove them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger.clock import FixedClock
from ledger.services.ledger import Ledger, open_ledger

PG_URL = os.environ.get("TOKEN_LEDGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
T0 = datetime(2020, 3, 12, tzinfo=UTC)


def require(available: bool, what: str) -> None:
    """Skip outside CI when a real dependency is missing; fail under CI=true."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required when CI=true", pytrace=False)
    pytest.skip(f"{what} is not available here")


def _pg_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_available() -> bool:
    return _pg_reachable()


@pytest.fixture
def pg_url(pg_available: bool) -> Iterator[str]:
    """Return a URL to a fresh, empty schema on the real PostgreSQL server; drop it after."""
    require(pg_available, f"PostgreSQL at {PG_URL}")
    import psycopg

    schema = f"tl_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Run the test once on SQLite and once on the real PostgreSQL server."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def ledger(db_url: str, clock: FixedClock) -> Iterator[Ledger]:
    """An initialised, empty ledger on each database."""
    lg = open_ledger(db_url, clock=clock)
    lg.init()
    try:
        yield lg
    finally:
        lg.close()


@pytest.fixture
def db(sqlite_url: str) -> str:
    """A SQLite file with the kernel CLI's set-up: schema, two assets, five accounts of `main`."""
    from tests.test_kernel_cli_support import setup_cli

    setup_cli(sqlite_url)
    return sqlite_url


@pytest.fixture
def lg(db: str) -> Iterator[Ledger]:
    """A ledger over the `db` fixture's database."""
    ledger = open_ledger(db)
    yield ledger
    ledger.close()


@pytest.fixture(params=["one pass", "two slices"])
def verify_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with `verify` in one pass, then with every book of two or more entries
    audited in two slices (the second in a child process), as long books are by default."""
    import ledger.services.ledger as module

    forced = request.param == "two slices"
    real = module.split_point

    def split_point(last: int, *, parallel: bool | None) -> int | None:
        return real(last, parallel=forced if parallel is None else parallel)

    monkeypatch.setattr(module, "split_point", split_point)
    return str(request.param)
