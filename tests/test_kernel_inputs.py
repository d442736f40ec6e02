"""Kernel input checks on both databases: malformed drafts, odd text, types, limits, times."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger.domain.journal import Account, AccountType
from ledger.domain.money import Asset
from ledger.errors import Reason, Rejected
from ledger.services.exports import export_book, replay_file
from ledger.services.ledger import Ledger, open_ledger
from tests.test_kernel_support import (
    BOOK,
    T0,
    UINT256_MAX,
    draft,
    mint,
    move,
    refused,
    row_counts,
    setup_book,
    snapshot,
)


def test_malformed_drafts_are_refused(ledger: Ledger) -> None:
    """Unbalanced, empty, zero-amount, float-amount and naive-time drafts are refused."""
    setup_book(ledger)
    cases = [
        (Reason.UNBALANCED, draft(("holder:alice", "ETH", 5), ("equity", "ETH", -4))),
        (Reason.UNBALANCED, draft(("holder:alice", "ETH", 5), ("equity", "USDT", -5))),
        (Reason.EMPTY_ENTRY, draft()),
        (Reason.BAD_INPUT, draft(("holder:alice", "ETH", 0), ("equity", "ETH", 0))),
        (Reason.BAD_INPUT, draft(("holder:alice", "ETH", 1.0), ("equity", "ETH", -1.0))),
        (Reason.BAD_INPUT, mint("holder:alice", 5, at=T0.replace(tzinfo=None))),
        (Reason.BAD_INPUT, mint("holder:alice", 5, kind="Bad Kind")),
    ]
    for reason, bad in cases:
        refused(ledger, reason, ledger.post, bad)
    assert row_counts(ledger) == (0, 0)


# --- text edge cases -------------------------------------------------------------------------


ODD_TEXT = {
    "nul-key": {"key": "k\x00nul"},
    "nul-metadata": {"meta": {"memo": "a\x00b"}},
    "surrogate-metadata": {"meta": {"memo": "lone \ud800 surrogate"}},
    "surrogate-key": {"key": "lone \udfff surrogate"},
}


@pytest.mark.parametrize("name", list(ODD_TEXT))
def test_odd_text_is_stored_exactly_or_refused(ledger: Ledger, name: str) -> None:
    """Text the databases cannot hold is refused with BAD_INPUT on both, never a driver error."""
    setup_book(ledger)
    before = snapshot(ledger)
    try:
        entry = ledger.post(mint("holder:alice", 5, **ODD_TEXT[name]))
    except Rejected as exc:
        assert exc.reason is Reason.BAD_INPUT, exc
        assert snapshot(ledger) == before
        return
    assert ledger.entry(BOOK, entry.seq) == entry
    assert ledger.verify(BOOK).ok


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("reverses", True, id="bool-reverses"),
        pytest.param("reverses", 1.0, id="float-reverses"),
        pytest.param("idempotency_key", 5, id="int-key"),
        pytest.param("kind", 5, id="int-kind"),
        pytest.param("book", None, id="none-book"),
    ],
)
def test_ill_typed_draft_fields_are_refused(ledger: Ledger, field: str, value: object) -> None:
    """A draft field of the wrong type is refused with BAD_INPUT; it never reaches the chain."""
    setup_book(ledger)
    ledger.post(move("cash", "fees", 1))
    bad = replace(move("fees", "cash", 1), **{field: value})
    refused(ledger, Reason.BAD_INPUT, ledger.post, bad)
    assert ledger.verify(BOOK).ok


def test_longest_codes_fit_the_columns(ledger: Ledger) -> None:
    """Book, account, asset, kind and key at their maximum length are stored and verified."""

    book, account, kind = "B" * 64, "a" * 127 + "z", "k" * 64
    asset, key = "A" * 32, "é" * 256  # 256 characters, 512 bytes
    ledger.add_asset(Asset(asset, 18))
    for code in (account, "equity"):
        ledger.open_account(Account(book, code, AccountType.EQUITY))
    meta = {f"m{i:02d}": "✓" * 4000 for i in range(64)}
    made = ledger.post(
        draft(
            (account, asset, UINT256_MAX),
            ("equity", asset, -UINT256_MAX),
            book=book,
            kind=kind,
            key=key,
            meta=meta,
        )
    )
    assert ledger.entry(book, 1) == made
    assert ledger.verify(book).ok
    too_long = [
        lambda: Account(book + "B", "x", AccountType.ASSET),
        lambda: Account(book, account + "z", AccountType.ASSET),
        lambda: Asset(asset + "A", 2),
        lambda: ledger.post(mint(account, 1, book=book, kind=kind + "k")),
        lambda: ledger.post(mint(account, 1, book=book, key=key + "é")),
    ]
    for make in too_long:
        with pytest.raises(Rejected) as caught:
            make()
        assert caught.value.reason is Reason.BAD_INPUT


def test_extreme_business_times_round_trip(ledger: Ledger, tmp_path: Path) -> None:
    """Effective times from year 1 to year 9999 (negative microseconds too) store and replay."""

    setup_book(ledger)
    moments = [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    ]
    made = [ledger.post(mint("holder:alice", 1, at=moment)) for moment in moments]
    assert [e.draft.effective_at for e in ledger.entries(BOOK)] == moments
    assert ledger.balance(BOOK, "holder:alice", "ETH", as_of_time=moments[1]) == 2
    assert ledger.verify(BOOK).ok
    out = io.StringIO()
    export_book(ledger, BOOK, "jsonl", out)
    path = tmp_path / "b.jsonl"
    path.write_text(out.getvalue(), encoding="utf-8")
    fresh = open_ledger(f"sqlite:///{tmp_path}/replay.db")
    try:
        fresh.init()
        assert replay_file(fresh, path).ok
        assert list(fresh.entries(BOOK)) == made
    finally:
        fresh.close()
