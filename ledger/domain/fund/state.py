"""Fund state as a value, and the NAV and effective multiple it implies.

E (equity) is the balance of `fund:collateral`: variation margin is realised into it at every
mark, as a perpetual exchange settles it, so no unrealised P&L is carried. NAV per share is
E / supply. A fund whose equity fell to zero with shares outstanding is wiped out: its NAV
is quoted as 0, never below.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, localcontext

from ledger.domain.fund.terms import Terms
from ledger.domain.money import Rounding, div_round, mul_div
from ledger.errors import Reason, Rejected

MULTIPLE_PRECISION = 28

Index = tuple[tuple[int, int], ...]
"""The share index: the (num, den) of every index split and merge, in order (shareindex.py)."""


@dataclass(frozen=True, slots=True)
class FundState:
    """What a fund holds after a prefix of its journal.

    collateral: quote base units (E). position: position base units, negative when short.
    supply: share base units outstanding. shortfall: quote base units of loss the collateral
    could not cover (recorded at a wipe-out). price: the last price applied, quote base units
    per whole underlying (0 before the first): trades are sized at it. mark_price: the price
    of the last posted priced entry (mark, rebalance, wipe-out), the basis of the next mark,
    so that variation margin too small to post (under one quote unit) carries over to the
    next mark and the journal alone determines every mark. rebalance_price: the price of the
    last posted rebalance (0 if none). daily_on: UTC date of the last scheduled (daily) run.
    index: the share index (empty until the first index split); supply counts internal
    units, and index_gap is the balance of `equity:share-index`, shares outstanding less
    units (0 without an index), so `shares` is the shares outstanding.
    """

    collateral: int = 0
    position: int = 0
    supply: int = 0
    shortfall: int = 0
    price: int = 0
    rebalance_price: int = 0
    daily_on: date | None = None
    mark_price: int = 0
    accrued_at: datetime | None = None
    closed: bool = False  # a wiped-out fund whose shares were cancelled: sealed
    index: Index = ()
    index_gap: int = 0

    @property
    def shares(self) -> int:
        """Return the shares outstanding in base units (the units when there is no index)."""
        return self.supply + self.index_gap

    @property
    def wiped_out(self) -> bool:
        """Return whether shares are outstanding but the equity behind them is gone."""
        return self.supply > 0 and self.collateral <= 0 and self.position == 0


def nav_per_share_units(terms: Terms, state: FundState) -> int:
    """Return NAV per whole share in quote base units, rounded down; 0 if wiped out.

    Before the first share exists the NAV is the product's initial NAV. With a share index
    it is per share outstanding (orders are priced per unit, `navmath`).
    """
    if state.supply == 0:
        return terms.nav0_units
    if state.wiped_out:
        return 0
    return mul_div(state.collateral, terms.share_one, state.shares or state.supply, Rounding.DOWN)


def exposure_units(terms: Terms, state: FundState) -> int:
    """Return the position's value q x P in quote base units, rounded toward zero."""
    value = state.position * state.price
    magnitude = div_round(abs(value), terms.position_one, Rounding.DOWN)
    return -magnitude if value < 0 else magnitude


def effective_multiple(terms: Terms, state: FundState) -> Decimal:
    """Return exposure / equity as a Decimal (28 significant digits); 0 without equity."""
    if state.collateral <= 0:
        return Decimal(0)
    with localcontext() as ctx:
        ctx.prec = MULTIPLE_PRECISION
        return Decimal(state.position * state.price) / Decimal(
            terms.position_one * state.collateral
        )


@dataclass(frozen=True, slots=True)
class FundRecord:
    """The fund's state record: what the next operation needs, kept beside the journal.

    seq: the book's head when the record was written (it describes the book up to there).
    last_at: the effective time of the book's last operation; times never go back.
    price_at: when `state.price` was observed (None before the first price).
    """

    state: FundState
    seq: int = 0
    last_at: datetime | None = None
    price_at: datetime | None = None


def check_price_fresh(terms: Terms, price_at: datetime | None, at: datetime) -> None:
    """Refuse an order at `at` unless the last price (seen at `price_at`) is at most
    `max_price_age` seconds older (no check when the product's age is off).
    """
    if terms.max_price_age is None:
        return
    if price_at is None:
        raise Rejected(
            Reason.NO_PRICE, f"no price for {terms.underlying} yet: post one (`price`) first"
        )
    age = at - price_at
    if age > timedelta(seconds=terms.max_price_age):
        raise Rejected(
            Reason.STALE_PRICE,
            f"the last {terms.underlying} price is {int(age.total_seconds())} s old (more than"
            f" max_price_age {terms.max_price_age} s): post a fresh price first",
        )
