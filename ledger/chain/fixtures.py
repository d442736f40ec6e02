"""Fund-like journal entries posted straight through the kernel, for the mirror's tests and bench.

They follow the fund/chain conventions (one book per product, share asset = book, holders in
`holder:<id>` accounts against `equity:shares-outstanding`, splits rounded down per holder with
the dust to `holder:treasury`) without needing the fund engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from ledger.chain.holders import holder_of
from ledger.domain.journal import (
    Account,
    AccountType,
    BalanceRule,
    EntryDraft,
    Posting,
    make_metadata,
)
from ledger.domain.money import Asset, Rounding, mul_div
from ledger.services.ledger import Ledger

EQUITY = "equity:shares-outstanding"
TREASURY = "holder:treasury"


def open_share_book(lg: Ledger, book: str, *, scale: int = 18) -> None:
    """Create the share asset `book` and its equity and treasury accounts (idempotent)."""
    lg.add_asset(Asset(book, scale))
    lg.open_account(Account(book, EQUITY, AccountType.EQUITY))
    lg.open_account(Account(book, TREASURY, AccountType.EQUITY, BalanceRule.NON_NEGATIVE))


def open_holders(lg: Ledger, book: str, holder_ids: list[str]) -> None:
    """Open `holder:<id>` accounts (NON_NEGATIVE) for every id."""
    lg.open_accounts(
        [
            Account(book, f"holder:{h}", AccountType.EQUITY, BalanceRule.NON_NEGATIVE)
            for h in holder_ids
        ]
    )


def mint_draft(
    book: str, units: Mapping[str, int], *, at: datetime, key: str | None = None
) -> EntryDraft:
    """Return a mint entry: Dr holder:<id> +units for each holder, Cr the equity account."""
    postings = [Posting(f"holder:{h}", book, n) for h, n in sorted(units.items()) if n]
    postings.append(Posting(EQUITY, book, -sum(units.values())))
    return EntryDraft(book, "mint", at, tuple(postings), idempotency_key=key)


def redeem_draft(book: str, units: Mapping[str, int], *, at: datetime) -> EntryDraft:
    """Return a redeem entry: Cr holder:<id> -units for each holder, Dr the equity account."""
    postings = [Posting(f"holder:{h}", book, -n) for h, n in sorted(units.items()) if n]
    postings.append(Posting(EQUITY, book, sum(units.values())))
    return EntryDraft(book, "redeem", at, tuple(postings))


def split_draft(lg: Ledger, book: str, *, num: int, den: int, at: datetime) -> EntryDraft:
    """Return the split (num > den) or merge entry of the book's current holders.

    Each holder's new units = old * num / den rounded down; the supply after is the supply
    times num / den rounded down, and the difference (the dust) goes to holder:treasury.
    """
    old = {
        account: units
        for (account, _), units in lg.balances(book, asset=book).items()
        if holder_of(account) is not None
    }
    new = {account: mul_div(units, num, den, Rounding.DOWN) for account, units in old.items()}
    supply_after = mul_div(sum(old.values()), num, den, Rounding.DOWN)
    new[TREASURY] = new.get(TREASURY, 0) + supply_after - sum(new.values())
    postings = [
        Posting(account, book, new[account] - old.get(account, 0))
        for account in sorted(new)
        if new[account] != old.get(account, 0)
    ]
    change = supply_after - sum(old.values())
    if change:
        postings.append(Posting(EQUITY, book, -change))
    kind = "split" if num > den else "merge"
    meta = make_metadata({"ratio_num": str(num), "ratio_den": str(den)})
    return EntryDraft(book, kind, at, tuple(postings), metadata=meta)


def holder_balances(lg: Ledger, book: str) -> dict[str, int]:
    """Return {holder id: share units} of the book's non-zero holders."""
    return {
        h: units
        for (account, _), units in lg.balances(book, asset=book).items()
        if (h := holder_of(account)) is not None
    }
