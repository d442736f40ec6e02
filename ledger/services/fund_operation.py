"""One fund operation inside its unit of work: the locked book, its state record, the
idempotency check, the holders, and the commit that posts the entries with the new record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ledger.domain.fund import accounts as acc
from ledger.domain.fund import entries
from ledger.domain.fund.orders import fills_of
from ledger.domain.fund.state import FundRecord, FundState, check_price_fresh
from ledger.domain.fund.terms import Terms
from ledger.domain.journal import Account, EntryDraft, JournalEntry
from ledger.domain.money import parse_units
from ledger.errors import Reason, Rejected
from ledger.services.fund_report import utc_text
from ledger.services.ledger import UnitOfWork
from ledger.storage import fund_store

__all__ = ["FUND_OWNER", "FundOperation"]

FUND_OWNER = "fund"
"""The owner a product's book is reserved for: only this engine appends to it."""


@dataclass
class FundOperation:
    """One fund operation inside its unit of work: the locked book and its state record.

    `accrued(at)` charges the fees and funding due since the last accrual; its entry is
    posted first by `commit`, before the operation's own entries.
    """

    uow: UnitOfWork
    terms: Terms
    record: FundRecord
    head_seq: int
    pending: list[EntryDraft] = field(default_factory=list)
    feed_rate: str | None = None
    """The published funding rate in force (per funding interval), or None: the product's."""

    @property
    def state(self) -> FundState:
        return self.record.state

    def moment(self, at: datetime) -> datetime:
        """Refuse a time before the fund's last operation (a book's times never go back)."""
        last = self.record.last_at
        if last is not None and at < last:
            raise Rejected(
                Reason.BAD_INPUT,
                f"time {utc_text(at)} is before {self.terms.book}'s last entry at {utc_text(last)}",
            )
        return at

    def replay(self, key: str | None, request: tuple[str, ...]) -> JournalEntry | None:
        """Return the entry already posted under `key` for this same request, or None if the
        key is new; refuse with IDEMPOTENCY_CONFLICT if the key was used for another request.
        """
        if key is None:
            return None
        original = self.uow.entry_with_key(self.terms.book, key)
        if original is None:
            return None
        if _request_of(original, self.terms.share_asset.scale) != request:
            seq = original.seq
            raise Rejected(
                Reason.IDEMPOTENCY_CONFLICT,
                f"key {key!r} was used for another request (entry #{seq} of {self.terms.book})",
                seq=seq,
            )
        return original

    def holders(self) -> dict[str, int]:
        """Return every holder's share units (one scan of the book's balances)."""
        return acc.holder_units(self.uow.balances(self.terms.book), self.terms.share_asset.code)

    def held(self, holders: Sequence[str]) -> dict[str, int]:
        """Return the units of each of `holders` (ids; 0 for a holder with none), one read."""
        codes = [acc.HOLDER_PREFIX + h for h in holders]
        found = self.uow.balances_of(self.terms.book, codes)
        share = self.terms.share_asset.code
        return {h: found.get((code, share), 0) for h, code in zip(holders, codes, strict=True)}

    def refuse_closed(self) -> None:
        """Refuse any operation on a closed fund: its book is sealed."""
        if self.state.closed:
            raise Rejected(Reason.FUND_CLOSED, f"{self.terms.book} is closed: its book is sealed")

    def accrued(self, at: datetime) -> FundState:
        """Return the state after the fees and funding due at `at` (their entry pending)."""
        draft, state = entries.accrue(self.terms, self.state, at=at, feed_rate=self.feed_rate)
        if draft is not None:
            self.pending.append(draft)
        return state

    def order_state(self, at: datetime) -> FundState:
        """Return the state an order at `at` is priced on: refused for a closed or wiped-out
        fund and for a price older than the product's maximum age; fees accrued first."""
        self.refuse_closed()
        if self.state.wiped_out:
            raise Rejected(
                Reason.FUND_WIPED_OUT, f"{self.terms.book} is wiped out; orders are closed"
            )
        check_price_fresh(self.terms, self.record.price_at, at)
        return self.accrued(at)

    def commit(
        self,
        drafts: Sequence[EntryDraft],
        after: FundState,
        at: datetime,
        *,
        accounts: Sequence[Account] = (),
        priced: bool = False,
    ) -> list[JournalEntry]:
        """Post the pending accrual and `drafts`, and write the state record they lead to, in
        this transaction."""
        drafts = [*self.pending, *drafts]
        self.pending = []
        made = self.uow.post(drafts, accounts=accounts) if drafts else []
        self.head_seq += len(made)
        last = self.record.last_at
        self.record = FundRecord(
            state=after,
            seq=self.head_seq,
            last_at=at if last is None or at > last else last,
            price_at=at if priced else self.record.price_at,
        )
        fund_store.save_record(self.uow.connection, self.terms.book, self.record)
        return made


def _request_of(entry: JournalEntry, share_scale: int) -> tuple[str, ...]:
    """Return what identifies a holder request: kind, holder, cash asked, shares redeemed
    (as asked, under a share index; else the share units moved)."""
    draft = entry.draft
    meta = dict(draft.metadata)
    holder = meta.get("holder", "")
    code = acc.HOLDER_PREFIX + holder
    if draft.kind == "redeem":
        if "shares" in meta:
            return ("redeem", holder, "", str(-parse_units(meta["shares"], share_scale, "shares")))
        moved = sum(p.amount for p in draft.postings if p.account == code)
        return ("redeem", holder, "", str(moved))
    if draft.kind == "orders":
        return ("orders", *(f"{f['side']}:{f['holder']}:{f['amount']}" for f in fills_of(meta)))
    return (draft.kind, holder, meta.get("cash", ""), "")
