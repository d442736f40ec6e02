"""Database guards: the journal is append-only and the schema version is checked before writes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from ledger.clock import FixedClock
from ledger.errors import Reason, Rejected
from ledger.services.ledger import Ledger, open_ledger
from tests.conftest import PG_URL
from tests.test_kernel_support import (
    BOOK,
    T0,
    USDT,
    execute_sql,
    mint,
    move,
    setup_book,
    snapshot,
)

TAMPERS = [
    "UPDATE tl_postings SET amount = 999 WHERE seq = 1 AND idx = 0",
    "UPDATE tl_entries SET kind = 'forged' WHERE seq = 1",
    "UPDATE tl_entries SET metadata_json = '[]' WHERE seq = 2",
    "DELETE FROM tl_postings WHERE seq = 2",
    "DELETE FROM tl_entries WHERE seq = 2",
    "DELETE FROM tl_entries",
]


def _posted(lg: Ledger) -> Ledger:
    setup_book(lg)
    lg.post(mint("holder:alice", 10**30, key="m-1"))
    lg.post(move("holder:alice", "holder:bob", 10**29, "ETH", meta={"memo": "gift"}))
    return lg


@pytest.mark.parametrize("statement", TAMPERS)
def test_database_refuses_update_and_delete(ledger: Ledger, statement: str) -> None:
    """Journal rows cannot be updated or deleted with direct SQL (triggers on both databases)."""
    _posted(ledger)
    before = snapshot(ledger)
    entries_before = list(ledger.entries(BOOK))
    with pytest.raises(DBAPIError, match="append-only"):
        execute_sql(ledger, statement)
    assert snapshot(ledger) == before
    assert list(ledger.entries(BOOK)) == entries_before
    assert ledger.verify(BOOK).ok


@pytest.fixture
def sqlite_ledger(sqlite_url: str, clock: FixedClock) -> Iterator[Ledger]:
    lg = open_ledger(sqlite_url, clock=clock)
    lg.init()
    yield lg
    lg.close()


@pytest.fixture
def pg_ledger(pg_url: str, clock: FixedClock) -> Iterator[Ledger]:
    lg = open_ledger(pg_url, clock=clock)
    lg.init()
    yield lg
    lg.close()


@pytest.mark.parametrize("table", ["tl_entries", "tl_postings"])
def test_sqlite_insert_or_replace_cannot_replace_a_row(sqlite_ledger: Ledger, table: str) -> None:
    """SQLite INSERT OR REPLACE cannot silently delete and replace a journal row."""
    lg = _posted(sqlite_ledger)
    before = snapshot(lg)
    entries_before = list(lg.entries(BOOK))
    if table == "tl_entries":
        statement = (
            "INSERT OR REPLACE INTO tl_entries (book, seq, kind, effective_us, recorded_us,"
            " idem_key, request_digest, reverses, metadata_json, prev_hash, hash)"
            " SELECT book, seq, 'forged', effective_us, recorded_us, idem_key, request_digest,"
            " reverses, metadata_json, prev_hash, hash FROM tl_entries WHERE seq = 1"
        )
    else:
        statement = (
            "INSERT OR REPLACE INTO tl_postings (book, seq, idx, account, asset, amount)"
            " VALUES ('B', 1, 0, 'holder:alice', 'ETH', 1)"
        )
    with pytest.raises(DBAPIError, match="append-only"):
        execute_sql(lg, statement)
    assert snapshot(lg) == before
    assert list(lg.entries(BOOK)) == entries_before


@pytest.mark.postgres
def test_postgres_refuses_truncate(pg_ledger: Ledger) -> None:
    """TRUNCATE of a journal table is refused on PostgreSQL."""
    lg = _posted(pg_ledger)
    before = snapshot(lg)
    for table in ("tl_postings", "tl_entries"):
        with pytest.raises(DBAPIError, match="append-only"):
            execute_sql(lg, f"TRUNCATE {table} CASCADE")
    assert snapshot(lg) == before


@pytest.mark.postgres
def test_postgres_replica_mode_does_not_bypass_guards(pg_ledger: Ledger) -> None:
    """session_replication_role = replica does not disable the guards (ENABLE ALWAYS)."""
    lg = _posted(pg_ledger)
    before = snapshot(lg)
    for statement in ("UPDATE tl_postings SET amount = 1", "DELETE FROM tl_entries"):
        with pytest.raises(DBAPIError, match="append-only"), lg.engine.begin() as conn:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            assert conn.execute(text("SHOW session_replication_role")).scalar_one() == "replica"
            conn.execute(text(statement))
    assert snapshot(lg) == before


APP_ROLE_GRANTS = """
GRANT USAGE ON SCHEMA {schema} TO {role};
GRANT SELECT, INSERT ON tl_entries, tl_postings TO {role};
GRANT SELECT, INSERT, UPDATE ON tl_books, tl_balances TO {role};
GRANT SELECT, INSERT ON tl_assets, tl_accounts TO {role};
GRANT SELECT ON alembic_version, tl_book_owners TO {role};
"""


@pytest.fixture
def app_role(pg_ledger: Ledger) -> Iterator[tuple[Ledger, str]]:
    """Yield (owner ledger, URL as a fresh login role holding only APP_ROLE_GRANTS)."""
    role = f"tl_app_{uuid.uuid4().hex[:12]}"
    with pg_ledger.engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
    try:
        execute_sql(pg_ledger, APP_ROLE_GRANTS.format(schema=schema, role=role))
        owner_url = make_url(pg_ledger.engine.url)
        yield pg_ledger, owner_url.set(username=role).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


@pytest.mark.postgres
def test_postgres_app_role_can_append_but_not_change(app_role: tuple[Ledger, str]) -> None:
    """An application role holding only these grants posts and verifies but cannot tamper.

    Owner (migrations, `token-ledger init`) runs as the table owner; the application runs as
    a role granted exactly:

        GRANT USAGE ON SCHEMA <schema> TO <app>;
        GRANT SELECT, INSERT ON tl_entries, tl_postings TO <app>;
        GRANT SELECT, INSERT, UPDATE ON tl_books, tl_balances TO <app>;
        GRANT SELECT, INSERT ON tl_assets, tl_accounts TO <app>;
        GRANT SELECT ON alembic_version, tl_book_owners TO <app>;

    (tl_books and tl_balances are caches that `verify` recomputes from the journal; they
    need UPDATE for the head and the balances, and SELECT ... FOR UPDATE on tl_books.)
    """
    owner, app_url = app_role
    setup_book(owner)
    app = open_ledger(app_url, clock=FixedClock(T0))
    try:
        with app.engine.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar_one() != "postgres"
        app.add_asset(USDT)  # idempotent: SELECT only
        first = app.post(mint("holder:alice", 10**30, key="m-1"))
        second = app.post(move("holder:alice", "holder:bob", 10**29, "ETH"))
        assert app.post(mint("holder:alice", 10**30, key="m-1")).hash == first.hash
        assert app.reverse(BOOK, second.seq).draft.reverses == second.seq
        report = app.verify(BOOK)
        assert (report.ok, report.head_seq) == (True, 3)
        before = snapshot(app)
        for statement in (
            "UPDATE tl_postings SET amount = 1",
            "UPDATE tl_entries SET kind = 'forged'",
            "DELETE FROM tl_postings",
            "DELETE FROM tl_entries",
            "TRUNCATE tl_entries CASCADE",
            "UPDATE tl_assets SET scale = 0",
            "DELETE FROM tl_accounts",
        ):
            with pytest.raises(DBAPIError, match="permission denied"):
                execute_sql(app, statement)
        for table in ("tl_entries", "tl_postings"):
            with pytest.raises(DBAPIError, match="must be owner"):
                execute_sql(app, f"ALTER TABLE {table} DISABLE TRIGGER {table}_no_update")
            with pytest.raises(DBAPIError, match="must be owner"):
                execute_sql(app, f"DROP TRIGGER {table}_no_update ON {table}")
        with pytest.raises(DBAPIError, match="permission denied to set parameter"):
            execute_sql(app, "SET session_replication_role = replica")
        assert snapshot(app) == before
        assert app.verify(BOOK).ok
    finally:
        app.close()


def test_write_without_schema_is_refused(db_url: str) -> None:
    """A database without the ledger schema refuses writes with SCHEMA_NOT_INITIALISED."""
    lg = open_ledger(db_url, clock=FixedClock(T0))
    try:
        for write in (lambda: lg.add_asset(USDT), lambda: lg.post(mint("holder:alice", 1))):
            with pytest.raises(Rejected) as caught:
                write()
            assert caught.value.reason is Reason.SCHEMA_NOT_INITIALISED
    finally:
        lg.close()


def test_unknown_schema_version_refuses_writes(ledger: Ledger, db_url: str) -> None:
    """A schema version this library does not know refuses every write, and `init` too."""
    _posted(ledger)
    execute_sql(ledger, "UPDATE alembic_version SET version_num = '9999'")
    before = snapshot(ledger)
    fresh = open_ledger(db_url, clock=FixedClock(T0))
    try:
        writes = (
            lambda: fresh.post(mint("holder:alice", 1)),
            lambda: fresh.add_asset(USDT),
            lambda: fresh.reverse(BOOK, 2),
            fresh.init,
        )
        for write in writes:
            with pytest.raises(Rejected) as caught:
                write()
            assert caught.value.reason is Reason.SCHEMA_VERSION
            assert "9999" in caught.value.message
        assert snapshot(fresh) == before
    finally:
        fresh.close()


def _drop_guard(lg: Ledger, table: str) -> None:
    if lg.engine.dialect.name == "sqlite":
        execute_sql(lg, f"DROP TRIGGER {table}_no_update")
    else:
        execute_sql(lg, f"ALTER TABLE {table} DISABLE TRIGGER {table}_no_update")


@pytest.mark.parametrize("table", ["tl_entries", "tl_postings", "tl_assets", "tl_accounts"])
def test_missing_guard_refuses_writes_until_init(ledger: Ledger, db_url: str, table: str) -> None:
    """A dropped (or disabled) guard trigger refuses writes until `init` re-creates it."""
    _posted(ledger)
    _drop_guard(ledger, table)
    before = snapshot(ledger)
    fresh = open_ledger(db_url, clock=FixedClock(T0))
    try:
        with pytest.raises(Rejected) as caught:
            fresh.post(mint("holder:alice", 1))
        assert caught.value.reason is Reason.SCHEMA_VERSION
        assert f"{table}_no_update" in caught.value.message
        assert snapshot(fresh) == before
        fresh.init()
        assert fresh.post(mint("holder:alice", 1)).seq == 3
        with pytest.raises(DBAPIError, match="append-only"):
            execute_sql(fresh, f"DELETE FROM {table}")
        assert fresh.verify(BOOK).ok
    finally:
        fresh.close()


def test_older_schema_refuses_writes_until_init_upgrades_it(ledger: Ledger, db_url: str) -> None:
    """A database at an older revision keeps its entries, refuses writes, and `init` upgrades it."""
    from alembic import command

    from ledger.storage import migrate

    _posted(ledger)
    head_before = ledger.head(BOOK)
    with ledger.engine.begin() as conn:
        command.downgrade(migrate._config(conn), "0001")
    fresh = open_ledger(db_url, clock=FixedClock(T0))
    try:
        with fresh.engine.connect() as conn:
            assert migrate.current_revision(conn) == "0001"
        with pytest.raises(Rejected) as caught:
            fresh.post(mint("holder:alice", 1))
        assert caught.value.reason is Reason.SCHEMA_VERSION
        assert "older" in caught.value.message
        assert fresh.verify(BOOK).ok  # reads still work on the older schema
        assert fresh.init() == migrate.head_revision()
        assert fresh.head(BOOK) == head_before
        assert fresh.post(mint("holder:alice", 1)).seq == 3
        for table in ("tl_entries", "tl_postings"):
            with pytest.raises(DBAPIError, match="append-only"):
                execute_sql(fresh, f"DELETE FROM {table}")
        assert fresh.verify(BOOK).ok
    finally:
        fresh.close()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE tl_assets SET scale = 18 WHERE code = 'USDT'",
        "UPDATE tl_accounts SET rule = 'none' WHERE code = 'holder:alice'",
        "DELETE FROM tl_accounts WHERE code = 'holder:bob'",
        "DELETE FROM tl_assets WHERE code = 'USDT'",
    ],
    ids=["asset-scale", "account-rule", "delete-account", "delete-asset"],
)
def test_reference_data_cannot_be_changed(ledger: Ledger, statement: str) -> None:
    """Assets and accounts, which give amounts their meaning, cannot be changed or removed."""
    _posted(ledger)
    ledger.post(move("cash", "fees", 2_500_000))
    with pytest.raises(DBAPIError, match="append-only"):
        execute_sql(ledger, statement)


def test_the_schema_revisions_read_without_alembic_are_alembics() -> None:
    """Commands other than `init` read the migration graph with a regular expression (fast
    start): it must be exactly Alembic's graph, one head."""
    from alembic.script import ScriptDirectory

    from ledger.storage import migrate

    script = ScriptDirectory.from_config(migrate._config())
    assert migrate.head_revision() == script.get_current_head()
    assert migrate.known_revisions() == {r.revision for r in script.walk_revisions()}
    assert len(migrate.known_revisions()) == len(
        list((migrate.MIGRATIONS / "versions").glob("0*.py"))
    )
