"""Rebuild a fund's state from the journal: balances for the amounts, the latest entries for
the last price, the last rebalance and the last scheduled (daily) rebalance.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from ledger.domain.fund import accounts as acc
from ledger.domain.fund.state import FundState
from ledger.domain.fund.terms import Terms, quantise_units
from ledger.domain.journal import JournalEntry
from ledger.services.ledger import Ledger
from ledger.storage import fund_store

SCAN_WINDOW = 32  # doubled until found; entries come with their postings, so start small
PRICED_KINDS = frozenset({"mark", "rebalance", "wipeout"})


def _decimal_units(text: str, scale: int) -> int:
    """Return a stored decimal price string in quote base units (half-even)."""
    return quantise_units(Decimal(text), scale)


def _scan_recent(lg: Ledger, book: str) -> tuple[JournalEntry | None, int, date | None]:
    """Return (last priced entry, last rebalance price, last daily date), scanning backward."""
    head = lg.head(book)[0]
    priced: JournalEntry | None = None
    rebalance_price: int | None = None
    daily_on: date | None = None
    upper, window = head, SCAN_WINDOW
    while upper >= 1 and (priced is None or rebalance_price is None or daily_on is None):
        lower = max(1, upper - window + 1)
        for entry in reversed(list(lg.entries(book, from_seq=lower, to_seq=upper))):
            meta = dict(entry.draft.metadata)
            kind = entry.draft.kind
            if priced is None and kind in PRICED_KINDS:
                priced = entry
            if rebalance_price is None and kind == "rebalance":
                rebalance_price = _price_from(entry)
            if daily_on is None and "daily" in meta:
                daily_on = date.fromisoformat(meta["daily"])
        upper, window = lower - 1, window * 2
    return priced, rebalance_price or 0, daily_on


def _price_from(entry: JournalEntry) -> int:
    """Return the quote base units of an entry's `price` metadata (decimal string)."""
    text = dict(entry.draft.metadata)["price"]
    whole, _, frac = text.partition(".")
    return int(whole + frac) if frac else int(whole)


def load_state(lg: Ledger, terms: Terms) -> FundState:
    """Return the fund's current state, rebuilt from its journal and the price feed."""
    book = terms.book
    quote, share, pos = terms.quote_asset.code, terms.share_asset.code, terms.position_asset.code
    # Four named balances, not the whole book: a fund may have a million holder accounts.
    balances = {
        (account, asset): lg.balance(book, account, asset)
        for account, asset in (
            (acc.COLLATERAL, quote),
            (acc.POSITION, pos),
            (acc.SHARES_OUTSTANDING, share),
            (acc.SHORTFALL, quote),
        )
    }
    priced, rebalance_price, daily_on = _scan_recent(lg, book)
    price = _price_from(priced) if priced is not None else 0
    feed = fund_store.latest_price(lg.engine, terms.underlying)
    if feed is not None and (priced is None or feed[0] >= priced.draft.effective_at):
        price = _decimal_units(feed[1], terms.quote_asset.scale)
    recorded_daily = fund_store.last_daily(lg.engine, book)
    if recorded_daily is not None and (daily_on is None or recorded_daily > daily_on):
        daily_on = recorded_daily
    return FundState(
        collateral=balances.get((acc.COLLATERAL, quote), 0),
        position=balances.get((acc.POSITION, pos), 0),
        supply=-balances.get((acc.SHARES_OUTSTANDING, share), 0),
        shortfall=-balances.get((acc.SHORTFALL, quote), 0),
        price=price,
        rebalance_price=rebalance_price,
        daily_on=daily_on,
    )


def state_at(lg: Ledger, terms: Terms, at: datetime) -> FundState:
    """Return the fund's amounts as of effective time `at` (price from the feed or 0)."""
    book = terms.book
    quote, share, pos = terms.quote_asset.code, terms.share_asset.code, terms.position_asset.code
    feed = fund_store.latest_price(lg.engine, terms.underlying, at=at)
    return FundState(
        collateral=lg.balance(book, acc.COLLATERAL, quote, as_of_time=at),
        position=lg.balance(book, acc.POSITION, pos, as_of_time=at),
        supply=-lg.balance(book, acc.SHARES_OUTSTANDING, share, as_of_time=at),
        shortfall=-lg.balance(book, acc.SHORTFALL, quote, as_of_time=at),
        price=0 if feed is None else _decimal_units(feed[1], terms.quote_asset.scale),
    )


def amounts_and_holders(lg: Ledger, terms: Terms) -> tuple[FundState, dict[str, int]]:
    """Return the fund's amounts (no price or schedule) and every holder's share units, from
    one read of the book's balances (what a split needs; cheap even with a million holders).
    """
    balances = lg.balances(terms.book)
    quote, share, pos = terms.quote_asset.code, terms.share_asset.code, terms.position_asset.code
    prefix = acc.HOLDER_PREFIX
    cut = len(prefix)
    holders = {
        account[cut:]: units
        for (account, asset), units in balances.items()
        if asset == share and account.startswith(prefix)
    }
    state = FundState(
        collateral=balances.get((acc.COLLATERAL, quote), 0),
        position=balances.get((acc.POSITION, pos), 0),
        supply=-balances.get((acc.SHARES_OUTSTANDING, share), 0),
        shortfall=-balances.get((acc.SHORTFALL, quote), 0),
    )
    return state, holders
