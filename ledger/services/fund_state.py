"""A fund's state from its journal: the state record built once for a book that has none
(a database from before the record), and the amounts as of a past time for `nav --at`.

The current state of a fund is its state record (`tl_fund_state`), kept by the fund engine in
the same transaction as every entry; `verify` recomputes it with the same fold as here.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from ledger.domain.fund import accounts as acc
from ledger.domain.fund.fold import FundFold
from ledger.domain.fund.state import FundRecord, FundState
from ledger.domain.fund.terms import Terms, quantise_units
from ledger.services.ledger import Ledger, UnitOfWork
from ledger.services.share_index import index_entries
from ledger.storage import fund_store


def _decimal_units(text: str, scale: int) -> int:
    """Return a stored decimal price string in quote base units (half-even)."""
    return quantise_units(Decimal(text), scale)


def rebuild_record(uow: UnitOfWork, terms: Terms, head_seq: int) -> FundRecord:
    """Return the state record of a book folded from its journal (in `uow`'s transaction),
    with the latest observed price and the last recorded scheduled day.
    """
    fold = FundFold(terms)
    for entry in uow.entries(terms.book, to_seq=head_seq):
        fold.absorb(entry)
    state = fold.state
    price_at = fold.last_at if state.price else None
    feed = fund_store.latest_price(uow.connection, terms.underlying)
    if feed is not None and (price_at is None or feed[0] >= price_at):
        state = replace(state, price=_decimal_units(feed[1], terms.quote_asset.scale))
        price_at = feed[0]
    recorded = fund_store.last_daily(uow.connection, terms.book)
    if recorded is not None and (state.daily_on is None or recorded > state.daily_on):
        state = replace(state, daily_on=recorded)
    last_at = fold.last_at
    if price_at is not None and (last_at is None or price_at > last_at):
        last_at = price_at
    return FundRecord(state=state, seq=head_seq, last_at=last_at, price_at=price_at)


def state_at(lg: Ledger, terms: Terms, at: datetime) -> FundState:
    """Return the fund's amounts as of effective time `at` (price from the feed or 0)."""
    book = terms.book
    quote, share, pos = terms.quote_asset.code, terms.share_asset.code, terms.position_asset.code
    feed = fund_store.latest_price(lg.engine, terms.underlying, at=at)
    outstanding = -lg.balance(book, acc.SHARES_OUTSTANDING, share, as_of_time=at)
    gap = lg.balance(book, acc.SHARE_INDEX, share, as_of_time=at)  # 0 before any index split
    index = tuple(
        ratio for entry, ratio in index_entries(lg, book) if entry.draft.effective_at <= at
    )
    return FundState(
        collateral=lg.balance(book, acc.COLLATERAL, quote, as_of_time=at),
        position=lg.balance(book, acc.POSITION, pos, as_of_time=at),
        supply=outstanding - gap,
        index=index,
        index_gap=gap,
        shortfall=-lg.balance(book, acc.INSURANCE_COVER, quote, as_of_time=at)
        - lg.balance(book, acc.SHORTFALL, quote, as_of_time=at),
        price=0 if feed is None else _decimal_units(feed[1], terms.quote_asset.scale),
    )
