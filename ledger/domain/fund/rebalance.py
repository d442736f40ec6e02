"""When to rebalance: the daily schedule, the ad-hoc triggers, and one price update as a
whole (mark, then the daily events if due, else an ad-hoc rebalance if a trigger fired).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from ledger.domain.fund import entries
from ledger.domain.fund.state import FundState
from ledger.domain.fund.terms import Terms
from ledger.domain.journal import EntryDraft


def daily_due(terms: Terms, state: FundState, at: datetime) -> bool:
    """Return whether the scheduled rebalance of `at`'s UTC day is due and not yet done."""
    utc = at.astimezone(UTC)  # a time given with another offset still counts in UTC days
    if state.daily_on is not None and state.daily_on >= utc.date():
        return False
    return utc.time() >= terms.rebalance_time


def adhoc_trigger(terms: Terms, state: FundState) -> str | None:
    """Return the ad-hoc trigger that fires at the last mark ("move" or "band"), or None.

    move: |P / P_rebalance - 1| >= adhoc_move (0 means: rebalance at every price).
    band: |effective multiple| outside [low, high]. Both compare integers exactly. With
    `adhoc_side` "losing", only what raised leverage fires: a move against the position
    (a fall for L, a rise for S) and the band's upper edge.
    """
    if state.collateral <= 0 or state.price == 0:
        return None
    # A move raises leverage when it goes against the position: a fall for L, a rise for S.
    losing = (state.price < state.rebalance_price) == (terms.multiple[0] > 0)
    if (
        terms.adhoc_move is not None
        and state.rebalance_price
        and (losing or not terms.adhoc_losing_only)
    ):
        num, den = terms.adhoc_move
        if abs(state.price - state.rebalance_price) * den >= num * state.rebalance_price:
            return "move"
    if terms.leverage_band is not None:
        (lo_num, lo_den), (hi_num, hi_den) = terms.leverage_band
        exposure = abs(state.position) * state.price
        scaled_equity = state.collateral * terms.position_one
        low = exposure * lo_den < lo_num * scaled_equity and not terms.adhoc_losing_only
        if low or exposure * hi_den > hi_num * scaled_equity:
            return "band"
    return None


def run_daily(
    terms: Terms, state: FundState, *, at: datetime
) -> tuple[list[EntryDraft], FundState]:
    """Run the scheduled event of `at`'s UTC day: the rebalance (fees and funding accrue
    with time at every operation instead, see `entries.accrue`)."""
    day = at.astimezone(UTC).date()
    drafts: list[EntryDraft] = []
    trade_draft, state = entries.rebalance(terms, state, at=at, trigger="daily")
    if trade_draft is not None:
        drafts.append(trade_draft)
    return drafts, replace(state, daily_on=day)


@dataclass(frozen=True, slots=True)
class PriceStep:
    """The outcome of one price update: drafts to post, in order, and the state after."""

    drafts: list[EntryDraft]
    state: FundState
    daily: bool
    adhoc: str | None
    wiped_out: bool


def on_price(
    terms: Terms, state: FundState, *, price: int, at: datetime, feed_rate: str | None = None
) -> PriceStep:
    """Apply a price: mark (or wipe out), then the daily events if due, else ad hoc.

    An ad-hoc trigger is evaluated on the very update that crosses it, so the rebalance is
    part of the same batch of drafts.
    """
    was_wiped = state.wiped_out
    drafts: list[EntryDraft] = []
    mark_draft, state = entries.mark(terms, state, price=price, at=at)
    if mark_draft is not None:
        drafts.append(mark_draft)
    # On the marked equity and price; `feed_rate`: the published funding rate in force.
    accrual, state = entries.accrue(terms, state, at=at, feed_rate=feed_rate)
    if accrual is not None:
        drafts.append(accrual)
    daily = daily_due(terms, state, at)
    adhoc = None
    if daily:
        more, state = run_daily(terms, state, at=at)
        drafts.extend(more)
    else:
        adhoc = adhoc_trigger(terms, state)
        if adhoc is not None:
            trade, state = entries.rebalance(terms, state, at=at, trigger=adhoc)
            if trade is None:
                adhoc = None
            else:
                drafts.append(trade)
    return PriceStep(drafts, state, daily, adhoc, state.wiped_out and not was_wiped)
