"""Shared helpers for the kernel tests (no tests here): a standard book, drafts, snapshots.

The standard book "B" has two assets and five accounts:

    USDT (6 dp), ETH (18 dp)
    cash             asset      none
    fees             expense    none
    equity           equity     none
    holder:alice     liability  non_negative   (holds units as a positive balance)
    holder:bob       liability  non_negative
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from ledger.domain.journal import (
    Account,
    AccountType,
    BalanceRule,
    EntryDraft,
    Posting,
    make_metadata,
)
from ledger.domain.money import Asset
from ledger.errors import Reason, Rejected
from ledger.services.ledger import Ledger

T0 = datetime(2020, 3, 12, tzinfo=UTC)
UINT256_MAX = 2**256 - 1
BOOK = "B"
USDT = Asset("USDT", 6)
ETH = Asset("ETH", 18)
ACCOUNTS = (
    ("cash", AccountType.ASSET, BalanceRule.NONE),
    ("fees", AccountType.EXPENSE, BalanceRule.NONE),
    ("equity", AccountType.EQUITY, BalanceRule.NONE),
    ("holder:alice", AccountType.LIABILITY, BalanceRule.NON_NEGATIVE),
    ("holder:bob", AccountType.LIABILITY, BalanceRule.NON_NEGATIVE),
)


def setup_book(lg: Ledger, book: str = BOOK) -> None:
    """Register USDT and ETH and open the standard accounts of `book`."""
    lg.add_asset(USDT)
    lg.add_asset(ETH)
    for code, type_, rule in ACCOUNTS:
        lg.open_account(Account(book, code, type_, rule))


def draft(
    *lines: tuple[str, str, int],
    book: str = BOOK,
    kind: str = "transfer",
    key: str | None = None,
    at: datetime = T0,
    meta: dict[str, str] | None = None,
    reverses: int | None = None,
) -> EntryDraft:
    """Return a draft of `lines` given as (account, asset, signed units)."""
    return EntryDraft(
        book=book,
        kind=kind,
        effective_at=at,
        postings=tuple(Posting(a, c, u) for a, c, u in lines),
        metadata=make_metadata(meta or {}),
        idempotency_key=key,
        reverses=reverses,
    )


def move(source: str, target: str, units: int, asset: str = "USDT", **kwargs: Any) -> EntryDraft:
    """Return a two-line draft moving `units` from `source` (credit) to `target` (debit)."""
    return draft((target, asset, units), (source, asset, -units), **kwargs)


def mint(holder: str, units: int, asset: str = "ETH", **kwargs: Any) -> EntryDraft:
    """Return a draft giving `units` to `holder` against equity (holder balance goes up)."""
    return move("equity", holder, units, asset, **kwargs)


def day(n: int) -> datetime:
    """Return T0 plus `n` days."""
    return T0 + timedelta(days=n)


def row_counts(lg: Ledger) -> tuple[int, int]:
    """Return (entries, postings) row counts over every book, read with raw SQL."""
    with lg.engine.connect() as conn:
        entries = conn.execute(text("SELECT COUNT(*) FROM tl_entries")).scalar_one()
        postings = conn.execute(text("SELECT COUNT(*) FROM tl_postings")).scalar_one()
    return int(entries), int(postings)


def snapshot(lg: Ledger, books: Iterable[str] = (BOOK,)) -> dict[str, Any]:
    """Return everything a refused write must leave unchanged: heads, balances, row counts."""
    return {
        "heads": {book: lg.head(book) for book in books},
        "balances": {book: lg.balances(book) for book in books},
        "rows": row_counts(lg),
    }


def execute_sql(lg: Ledger, sql: str) -> None:
    """Run one raw SQL statement in its own transaction, behind the library's back."""
    with lg.engine.begin() as conn:
        conn.execute(text(sql))


def refused(lg: Ledger, reason: Reason, call: object, *args: object, **kwargs: object) -> None:
    """Assert that `call(*args)` is refused with `reason` and changes nothing."""
    before = snapshot(lg)
    with pytest.raises(Rejected) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    assert caught.value.reason is reason, caught.value
    assert snapshot(lg) == before
