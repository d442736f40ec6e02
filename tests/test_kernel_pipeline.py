"""PostgreSQL's pipeline mode on the write path: few statements, the same results, and a
failure inside the pipeline that writes nothing and leaves the pool's connection usable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from ledger.domain.journal import Account, AccountType
from ledger.services.ledger import Ledger, open_ledger
from tests.test_kernel_support import (
    BOOK,
    execute_sql,
    mint,
    move,
    setup_book,
    snapshot,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_ledger(pg_url: str) -> Iterator[Ledger]:
    lg = open_ledger(pg_url)
    lg.init()
    setup_book(lg)
    setup_book(lg, "OTHER")
    lg.post(mint("holder:alice", 1_000))  # warm: schema checked, accounts cached
    yield lg
    lg.close()


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Record every statement psycopg is given, with whether the connection was pipelined,
    and every COMMIT likewise (as "COMMIT")."""
    seen: list[tuple[str, bool]] = []
    execute, commit = psycopg.Cursor.execute, psycopg.Connection.commit

    def traced_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((str(query), self.connection.pgconn.pipeline_status != 0))
        return execute(self, query, *args, **kwargs)

    def traced_commit(self: Any) -> None:
        seen.append(("COMMIT", self.pgconn.pipeline_status != 0))
        commit(self)

    monkeypatch.setattr(psycopg.Cursor, "execute", traced_execute)
    monkeypatch.setattr(psycopg.Connection, "commit", traced_commit)
    return seen


def test_one_post_is_three_statements_and_the_writes_go_with_the_commit(
    pg_ledger: Ledger, statements: list[tuple[str, bool]]
) -> None:
    """Lock, used keys, balances, one write statement, COMMIT, all in one pipeline: the reads
    after the lock are one round trip and the writes travel with the COMMIT."""
    pg_ledger.post(move("cash", "holder:bob", 1))  # bob's account is read once, then cached
    statements.clear()
    entry = pg_ledger.post(move("cash", "holder:bob", 7, key="k-1"))
    kinds = [text.split()[0] for text, _ in statements]
    assert kinds == ["SELECT", "SELECT", "SELECT", "WITH", "COMMIT"]
    assert "FOR UPDATE" in statements[0][0]  # the head lock comes first
    assert all(pipelined for _, pipelined in statements)
    assert entry.seq == 3
    assert pg_ledger.balance(BOOK, "holder:bob", "USDT") == 8
    assert pg_ledger.verify(BOOK).ok


def test_a_batch_over_two_books_with_a_repeat_matches_one_post_at_a_time(
    pg_ledger: Ledger,
) -> None:
    """The pipelined batch locks both books, writes both heads and returns a repeated key's
    original entry, exactly as separate posts would."""
    first = pg_ledger.post(mint("holder:bob", 5, key="dup"))
    made = pg_ledger.post_many(
        [
            mint("holder:alice", 3, book="OTHER"),
            mint("holder:bob", 5, key="dup"),
            move("cash", "holder:alice", 2),
            mint("holder:bob", 4, book="OTHER", key="o-1"),
        ]
    )
    assert [(e.draft.book, e.seq) for e in made] == [
        ("OTHER", 1),
        (BOOK, 2),
        (BOOK, 3),
        ("OTHER", 2),
    ]
    assert made[1].hash == first.hash
    assert pg_ledger.head(BOOK) == (3, made[2].hash)
    assert pg_ledger.head("OTHER") == (2, made[3].hash)
    assert pg_ledger.balances("OTHER")[("holder:bob", "ETH")] == 4
    assert pg_ledger.verify(BOOK).ok and pg_ledger.verify("OTHER").ok


def test_a_failure_inside_the_pipeline_writes_nothing_and_the_next_post_works(
    pg_ledger: Ledger,
) -> None:
    """A row planted behind the ledger's back makes the one write statement fail at the
    COMMIT: the error is raised, nothing of the entry is written, and the pooled connection
    is out of pipeline mode and clean for the next transaction."""
    before = snapshot(pg_ledger, (BOOK, "OTHER"))
    execute_sql(  # an entry row at the next seq, without its head: the insert collides
        pg_ledger,
        "INSERT INTO tl_entries (book, seq, kind, effective_us, recorded_us, request_digest,"
        " metadata_json, prev_hash, hash) VALUES ('B', 2, 'planted', 0, 0, '', '{}',"
        " '\\x00', '\\x00')",
    )
    with pytest.raises(Exception, match="tl_entries"):
        pg_ledger.post(move("cash", "holder:bob", 7))
    after = snapshot(pg_ledger, (BOOK, "OTHER"))
    assert after["heads"] == before["heads"]
    assert after["balances"] == before["balances"]
    assert after["rows"] == (before["rows"][0] + 1, before["rows"][1])  # the planted row only
    assert pg_ledger.post(mint("holder:bob", 9, book="OTHER")).seq == 1
    pg_ledger.open_account(Account("OTHER", "holder:carol", AccountType.LIABILITY))
    assert pg_ledger.post(mint("holder:carol", 1, book="OTHER")).seq == 2
