"""Large batches on both databases: bulk paths (COPY, chunked lookups) keep every value exact."""

from __future__ import annotations

import pytest

from ledger.domain.journal import Account, AccountType, BalanceRule, EntryDraft
from ledger.errors import Reason, Rejected
from ledger.services.ledger import Ledger
from tests.test_kernel_support import (
    BOOK,
    UINT256_MAX,
    day,
    mint,
    move,
    row_counts,
    setup_book,
    snapshot,
)

# Text that a bulk loader must escape: COPY's NULL marker, its delimiters, and non-ASCII.
AWKWARD = ["\\N", "a\tb", "line\nbreak", "back\\slash", "quote'\"", "", " ", "ünï ✓", "\r", "NULL"]


def _awkward_draft(i: int) -> EntryDraft:
    """Return draft i of the big batch: every 4th unkeyed, awkward text, 75-digit amounts."""
    text = AWKWARD[i % len(AWKWARD)]
    # Keys refuse control characters (PostgreSQL text cannot hold NUL); metadata takes any text.
    printable = "".join(c for c in text if c.isprintable())
    key = None if i % 4 == 1 else f"key {printable} {i}"
    if i == 0:
        return move("fees", "cash", UINT256_MAX, "USDT", key="max", meta={"memo": text})
    if i % 3 == 0:
        units = UINT256_MAX // 1000 - i  # 75 digits
        return move("cash", "holder:alice", units, "ETH", key=key, meta={"m": text + "\x00"})
    holder = "holder:alice" if i % 2 else "holder:bob"
    return mint(holder, 10**18 + i, key=key, meta={"memo": text, "n": str(i)}, at=day(i % 7))


def test_large_batch_round_trips_exactly(ledger: Ledger) -> None:
    """A 300-entry batch (bulk insert path) stores awkward text and huge amounts exactly."""
    setup_book(ledger)
    drafts = [_awkward_draft(i) for i in range(300)]
    made = ledger.post_many(drafts)
    assert [e.seq for e in made] == list(range(1, 301))
    assert list(ledger.entries(BOOK)) == made
    assert [e.draft for e in made] == drafts
    assert ledger.balance(BOOK, "cash", "USDT") == UINT256_MAX
    assert ledger.verify(BOOK).ok
    again = ledger.post_many(drafts)
    keyed = [i for i, d in enumerate(drafts) if d.idempotency_key is not None]
    unkeyed = [i for i in range(300) if i not in keyed]
    assert [again[i] for i in keyed] == [made[i] for i in keyed]
    assert [again[i].seq for i in unkeyed] == list(range(301, 301 + len(unkeyed)))
    assert row_counts(ledger)[0] == 300 + len(unkeyed) == 375
    assert list(ledger.entries(BOOK, from_seq=301)) == [again[i] for i in unkeyed]
    assert ledger.verify(BOOK).ok


def test_keyed_retry_of_a_batch_beyond_one_lookup_chunk(ledger: Ledger) -> None:
    """A retried batch of 1,000 keyed entries (more than one lookup chunk) writes nothing."""
    setup_book(ledger)
    drafts = [mint("holder:alice", i + 1, key=f"m-{i:04d}") for i in range(1000)]
    made = ledger.post_many(drafts)
    before = snapshot(ledger)
    assert ledger.post_many(drafts) == made
    assert snapshot(ledger) == before
    changed = [*drafts[:-1], mint("holder:alice", 1, key="m-0999")]
    with pytest.raises(Rejected) as caught:
        ledger.post_many(changed)
    assert caught.value.reason is Reason.IDEMPOTENCY_CONFLICT
    assert snapshot(ledger) == before
    assert ledger.balance(BOOK, "holder:alice", "ETH") == 1000 * 1001 // 2


def test_batch_over_many_accounts_checks_every_rule(ledger: Ledger) -> None:
    """A batch touching 1,200 guarded accounts (chunked balance reads) checks each one."""
    setup_book(ledger)
    holders = [f"holder:h{i:04d}" for i in range(1200)]
    ledger.open_accounts(
        [Account(BOOK, h, AccountType.LIABILITY, BalanceRule.NON_NEGATIVE) for h in holders]
    )
    ledger.post_many([mint(h, 10**20 + i) for i, h in enumerate(holders)])
    spend = [move(h, "holder:alice", 10**20, "ETH") for h in holders]
    spend[-1] = move(holders[-1], "holder:alice", 10**20 + 1200, "ETH")  # 1 unit too many
    before = snapshot(ledger)
    with pytest.raises(Rejected) as caught:
        ledger.post_many(spend)
    assert caught.value.reason is Reason.BALANCE_CONSTRAINT
    assert snapshot(ledger) == before
    ledger.post_many(spend[:-1])
    balances = ledger.balances(BOOK)
    assert balances[("holder:alice", "ETH")] == 1199 * 10**20
    assert balances[("holder:h0007", "ETH")] == 7
    assert ledger.verify(BOOK).ok
