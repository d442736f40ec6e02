"""Exact uint256 amounts on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from ledger.errors import Reason, Rejected
from ledger.services.ledger import Ledger
from tests.test_kernel_support import (
    BOOK,
    UINT256_MAX,
    mint,
    move,
    row_counts,
    setup_book,
    snapshot,
)

INT64_MAX = 2**63 - 1


def test_amounts_near_uint256_max_round_trip(ledger: Ledger) -> None:
    """Amounts up to 2**256-1 come back exactly from post, balance, entries and verify."""
    setup_book(ledger)
    big = UINT256_MAX
    first = ledger.post(mint("holder:alice", big - 1))
    second = ledger.post(move("cash", "holder:bob", big, "ETH"))
    third = ledger.post(move("holder:bob", "holder:alice", 1, "ETH"))

    assert [p.amount for p in first.postings] == [big - 1, -(big - 1)]
    assert ledger.balance(BOOK, "holder:alice", "ETH") == big
    assert ledger.balance(BOOK, "holder:bob", "ETH") == big - 1
    assert ledger.balance(BOOK, "equity", "ETH") == -(big - 1)
    assert ledger.balance(BOOK, "cash", "ETH") == -big
    stored = list(ledger.entries(BOOK))
    assert [e.hash for e in stored] == [first.hash, second.hash, third.hash]
    assert [p.amount for e in stored for p in e.postings] == [
        big - 1,
        -(big - 1),
        big,
        -big,
        1,
        -1,
    ]
    assert ledger.balance(BOOK, "holder:alice", "ETH", as_of_seq=1) == big - 1
    report = ledger.verify(BOOK)
    assert (report.ok, report.entries, report.head_seq) == (True, 3, 3)


def test_equity_beyond_uint256_is_refused(ledger: Ledger) -> None:
    """A balance that would leave the uint256 range is refused and nothing is written."""
    setup_book(ledger)
    ledger.post(mint("holder:alice", UINT256_MAX))
    before = snapshot(ledger)
    with pytest.raises(Rejected) as caught:
        ledger.post(mint("holder:bob", 1))  # equity would reach -(2**256)
    assert caught.value.reason is Reason.AMOUNT_OUT_OF_RANGE
    assert snapshot(ledger) == before
    assert ledger.balance(BOOK, "equity", "ETH") == -UINT256_MAX


def test_posting_beyond_uint256_is_refused(ledger: Ledger) -> None:
    """A single posting of magnitude 2**256 is refused before anything is written."""
    setup_book(ledger)
    before = snapshot(ledger)
    with pytest.raises(Rejected) as caught:
        ledger.post(mint("holder:alice", UINT256_MAX + 1))
    assert caught.value.reason is Reason.AMOUNT_OUT_OF_RANGE
    assert snapshot(ledger) == before
    assert row_counts(ledger) == (0, 0)


def test_eighteen_decimal_amounts_beyond_int64(ledger: Ledger) -> None:
    """18-decimal amounts above 2**63-1 (9.22 tokens) are stored and summed exactly."""
    setup_book(ledger)
    amounts = [
        INT64_MAX + 1,
        10**19 + 123,
        1_234_567_890_123_456_789_012_345_678,  # 1234567890.123456789012345678 ETH
        10**18 + 1,
    ]
    for units in amounts:
        ledger.post(mint("holder:alice", units))
    assert ledger.balance(BOOK, "holder:alice", "ETH") == sum(amounts)
    assert ledger.balance(BOOK, "holder:alice", "ETH") == 1_234_567_910_346_828_825_867_121_610
    assert ledger.balance(BOOK, "holder:alice", "ETH", as_of_seq=2) == 2**63 + 10**19 + 123
    assert [e.postings[0].amount for e in ledger.entries(BOOK)] == amounts
    assert ledger.verify(BOOK).ok


def test_sum_of_two_values_above_int64_is_exact(ledger: Ledger) -> None:
    """Two postings above 2**63 sum exactly (no SQL SUM overflow, no float)."""
    setup_book(ledger)
    a, b = 2**63 + 7, 2**63 + 9
    ledger.post(mint("holder:alice", a))
    ledger.post(mint("holder:alice", b))
    assert ledger.balance(BOOK, "holder:alice", "ETH") == 2**64 + 16
    assert ledger.balance(BOOK, "holder:alice", "ETH", as_of_seq=2) == 2**64 + 16
    assert ledger.balances(BOOK) == {
        ("equity", "ETH"): -(2**64 + 16),
        ("holder:alice", "ETH"): 2**64 + 16,
    }
    assert ledger.verify(BOOK).ok


def test_storage_never_holds_floats(ledger: Ledger) -> None:
    """Stored amounts are exact integers or decimal text, never REAL (SQLite) or float."""
    setup_book(ledger)
    ledger.post(mint("holder:alice", 5))
    ledger.post(mint("holder:alice", UINT256_MAX - 5))
    with ledger.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            kinds = conn.execute(
                text("SELECT DISTINCT typeof(amount) FROM tl_postings ORDER BY 1")
            ).scalars()
            assert list(kinds) == ["integer", "text"]
            raw = conn.execute(text("SELECT amount FROM tl_postings WHERE seq = 2 AND idx = 0"))
            assert raw.scalar_one() == str(UINT256_MAX - 5)
        else:
            column = conn.execute(
                text(
                    "SELECT data_type, numeric_precision, numeric_scale"
                    " FROM information_schema.columns"
                    " WHERE table_schema = current_schema() AND table_name = 'tl_postings'"
                    " AND column_name = 'amount'"
                )
            ).one()
            assert tuple(column) == ("numeric", 78, 0)
            raw = conn.execute(
                text("SELECT amount::text FROM tl_postings WHERE seq = 2 AND idx = 0")
            )
            assert raw.scalar_one() == str(UINT256_MAX - 5)
