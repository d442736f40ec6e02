"""Entry builders: each economic event of a fund as one balanced `EntryDraft`, plus the state
after it. Pure: the caller posts the draft through the kernel (one DB transaction).

Kinds: mark, wipeout, mint, redeem, rebalance, fee.management, funding (split and merge are
in `split.py`). Zero postings are left out; an event that moves nothing returns no draft.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

from ledger.domain.fund import accounts as acc
from ledger.domain.fund.navmath import (
    MintQuote,
    RedeemQuote,
    funding_payment,
    management_fee,
    mark_pnl,
    quote_mint,
    quote_redeem,
    target_position,
    trading_fee,
)
from ledger.domain.fund.shareindex import Line, reindexed, units_to_cancel
from ledger.domain.fund.state import FundState
from ledger.domain.fund.terms import Ratio, Terms, ratio_of
from ledger.domain.journal import EntryDraft, Posting, to_micros
from ledger.domain.money import format_units
from ledger.errors import Reason, Rejected, invariant

Postings = list[Posting]


def _add(postings: Postings, account: str, asset: str, amount: int) -> None:
    """Append a posting unless its amount is zero (the kernel refuses zero postings)."""
    if amount:
        postings.append(Posting(account, asset, amount))


def fund_draft(
    terms: Terms,
    kind: str,
    at: datetime,
    postings: Postings,
    meta: dict[str, str],
    key: str | None = None,
) -> EntryDraft:
    """Return a fund event as a draft of the fund's book, metadata sorted as the kernel wants."""
    return EntryDraft(
        book=terms.book,
        kind=kind,
        effective_at=at,
        postings=tuple(postings),
        metadata=tuple(sorted(meta.items())),
        idempotency_key=key,
    )


def price_text(terms: Terms, price: int) -> str:
    """Return a price in quote base units as a decimal string."""
    return format_units(price, terms.quote_asset.scale)


def mark(
    terms: Terms,
    state: FundState,
    *,
    price: int,
    at: datetime,
    cover: str = acc.INSURANCE_COVER,
) -> tuple[EntryDraft | None, FundState]:
    """Realise the variation margin of a move to `price` into collateral (rounded down).

    If the equity would fall to zero or below, the position is closed and the loss is
    booked as a wipe-out instead (see `wipeout`).
    """
    if price <= 0:
        raise Rejected(Reason.BAD_INPUT, "price must be positive")
    basis = state.mark_price or state.price
    pnl = mark_pnl(terms, state.position, basis, price) if basis else 0
    if pnl and state.collateral + pnl <= 0:
        return wipeout(terms, state, price=price, pnl=pnl, at=at, cover=cover)
    if pnl == 0:
        # Nothing to post: the basis stays, so a sub-unit move carries over to the next mark.
        return None, replace(state, price=price)
    # Built field by field: this runs for every tick of a simulation.
    after = FundState(
        state.collateral + pnl,
        state.position,
        state.supply,
        state.shortfall,
        price,
        state.rebalance_price,
        state.daily_on,
        price,
        state.accrued_at,
        state.closed,
        state.index,
        state.index_gap,
    )
    quote = terms.quote_asset.code
    postings = (Posting(acc.COLLATERAL, quote, pnl), Posting(acc.TRADING_PNL, quote, -pnl))
    draft = EntryDraft(terms.book, "mark", at, postings, (("price", price_text(terms, price)),))
    return draft, after


def wipeout(
    terms: Terms,
    state: FundState,
    *,
    price: int,
    pnl: int,
    at: datetime,
    cover: str = acc.INSURANCE_COVER,
) -> tuple[EntryDraft, FundState]:
    """Book a loss larger than the equity: the whole loss, the collateral written off, the
    excess to `income:insurance-cover` (the venue's insurance fund bore it, so the fund's
    equity is exactly zero), the position closed. NAV is then quoted as 0 and mint/redeem
    are refused. `cover` is `liability:shortfall` only to re-check books written before.
    """
    loss = -pnl
    invariant(loss >= state.collateral, "a wipe-out needs a loss at least the equity")
    quote, pos = terms.quote_asset.code, terms.position_asset.code
    shortfall = loss - state.collateral
    postings: Postings = []
    _add(postings, acc.TRADING_PNL, quote, loss)
    _add(postings, acc.COLLATERAL, quote, -state.collateral)
    _add(postings, cover, quote, -shortfall)
    _add(postings, acc.POSITION, pos, -state.position)
    _add(postings, acc.POSITION_CONTRA, pos, state.position)
    meta = {
        "price": price_text(terms, price),
        "equity_before": format_units(state.collateral, terms.quote_asset.scale),
        "loss": format_units(loss, terms.quote_asset.scale),
        "shortfall": format_units(shortfall, terms.quote_asset.scale),
    }
    after = replace(
        state,
        collateral=0,
        position=0,
        shortfall=state.shortfall + shortfall,
        price=price,
        mark_price=price,
    )
    return fund_draft(terms, "wipeout", at, postings, meta), after


def mint_lines(terms: Terms, quote: MintQuote, holder: str) -> list[Line]:
    """Return the postings of a mint priced by `quote` (zero amounts left out)."""
    qa, sa, pa = terms.quote_asset.code, terms.share_asset.code, terms.position_asset.code
    lines: list[Line] = [(acc.COLLATERAL, qa, quote.used + quote.dust)]
    if quote.trade_fee:
        lines.append((acc.TRADING_FEES, qa, quote.trade_fee))
    if quote.fee:
        lines.append((acc.MANAGER_FEES, qa, quote.fee))
    lines.append((acc.CONTRIBUTED, qa, -(quote.used + quote.trade_fee)))
    if quote.dust:
        lines.append((acc.ROUNDING, qa, -quote.dust))
    if quote.fee:
        lines.append((acc.FEE_SUBSCRIPTION, qa, -quote.fee))
    if quote.trade:
        lines.append((acc.POSITION, pa, quote.trade))
        lines.append((acc.POSITION_CONTRA, pa, -quote.trade))
    lines.append((acc.holder_account_code(holder), sa, quote.shares))
    lines.append((acc.SHARES_OUTSTANDING, sa, -quote.shares))
    return lines


def after_mint(state: FundState, quote: MintQuote, at: datetime) -> FundState:
    """Return the state after a mint priced by `quote` at `at`."""
    # A mint into a fund without a position sizes it: the ad-hoc move is measured from it.
    sized = state.position == 0 and quote.trade != 0
    return FundState(
        state.collateral + quote.used + quote.dust,
        state.position + quote.trade,
        state.supply + quote.shares,
        state.shortfall,
        state.price,
        state.price if sized else state.rebalance_price,
        state.daily_on,
        state.price if quote.trade else state.mark_price,
        at if state.supply == 0 else state.accrued_at,  # the first shares start the clock
        state.closed,
        state.index,
        state.index_gap,
    )


def mint(
    terms: Terms,
    state: FundState,
    *,
    holder: str,
    cash: int,
    at: datetime,
    key: str | None = None,
    held: int = 0,
) -> tuple[EntryDraft, FundState, MintQuote]:
    """Issue shares at NAV for `cash` quote base units and trade the position they carry.

    Shares round down, fees round up, dust is kept; the order's part of the position is
    bought in the same entry with its trading fee paid out of the order's cash. With a
    share index the holder's `held` units before it set the shares the units show.
    """
    quote = quote_mint(terms, state, cash)
    lines, gap = reindexed(terms, state.index, mint_lines(terms, quote, holder), {holder: held})
    postings = tuple(Posting(a, s, u) for a, s, u in lines)
    meta: tuple[tuple[str, str], ...] = (
        ("cash", format_units(cash, terms.quote_asset.scale)),
        ("holder", holder),
    )
    if quote.trade:
        meta = (*meta, ("price", price_text(terms, state.price)))
    draft = EntryDraft(terms.book, "mint", at, postings, meta, key)
    after = after_mint(state, quote, at)
    if gap:
        after = replace(after, index_gap=after.index_gap + gap)
    return draft, after, quote


def redeem_lines(terms: Terms, quote: RedeemQuote, holder: str) -> list[Line]:
    """Return the postings of a redemption priced by `quote` (zero amounts left out)."""
    qa, sa, pa = terms.quote_asset.code, terms.share_asset.code, terms.position_asset.code
    lines: list[Line] = [(acc.COLLATERAL, qa, -(quote.gross + quote.trade_fee))]
    if quote.trade_fee:
        lines.append((acc.TRADING_FEES, qa, quote.trade_fee))
    lines.append((acc.CONTRIBUTED, qa, quote.gross))
    if quote.fee:
        lines.append((acc.MANAGER_FEES, qa, quote.fee))
        lines.append((acc.FEE_REDEMPTION, qa, -quote.fee))
    if quote.trade:
        lines.append((acc.POSITION, pa, quote.trade))
        lines.append((acc.POSITION_CONTRA, pa, -quote.trade))
    lines.append((acc.holder_account_code(holder), sa, -quote.shares))
    lines.append((acc.SHARES_OUTSTANDING, sa, quote.shares))
    return lines


def after_redeem(state: FundState, quote: RedeemQuote) -> FundState:
    """Return the state after a redemption priced by `quote`."""
    return FundState(
        state.collateral - quote.gross - quote.trade_fee,
        state.position + quote.trade,
        state.supply - quote.shares,
        state.shortfall,
        state.price,
        state.rebalance_price,
        state.daily_on,
        state.price if quote.trade else state.mark_price,
        None if quote.shares == state.supply else state.accrued_at,  # no shares, no fees
        state.closed,
        state.index,
        state.index_gap,
    )


def redeem(
    terms: Terms,
    state: FundState,
    *,
    holder: str,
    shares: int,
    held: int,
    at: datetime,
    key: str | None = None,
    treasury: int = 0,
) -> tuple[EntryDraft, FundState, RedeemQuote]:
    """Cancel `shares` of `holder` (who holds `held` units) for cash at NAV, rounded down,
    less the fees; the shares' part of the position is sold in the same entry (all of it
    when only the treasury's `treasury` units would be left).

    With a share index `shares` are shares as the holder sees them: the units cancelled are
    `shareindex.units_to_cancel`, and the entry records the shares asked as `shares`.
    """
    units = units_to_cancel(shares, held, state.index)
    quote = quote_redeem(terms, state, units, held, treasury if holder != "treasury" else 0)
    lines, gap = reindexed(terms, state.index, redeem_lines(terms, quote, holder), {holder: held})
    postings = tuple(Posting(a, s, u) for a, s, u in lines)
    meta: tuple[tuple[str, str], ...] = (
        ("holder", holder),
        ("paid", format_units(quote.paid, terms.quote_asset.scale)),
    )
    if state.index:
        meta = (*meta, ("shares", format_units(shares, terms.share_asset.scale)))
    if quote.trade:
        meta = (*meta, ("price", price_text(terms, state.price)))
    draft = EntryDraft(terms.book, "redeem", at, postings, tuple(sorted(meta)), key)
    after = after_redeem(state, quote)
    if gap:
        after = replace(after, index_gap=after.index_gap + gap)
    return draft, after, quote


def close_position(
    terms: Terms, state: FundState, *, at: datetime
) -> tuple[EntryDraft | None, FundState]:
    """Trade the position to zero at the last mark (a rebalance, trigger "close"); fee up."""
    if state.position == 0:
        return None, state
    invariant(state.price > 0, "an open position has a price")
    trade = -state.position
    fee = trading_fee(terms, trade, state.price)
    invariant(fee <= state.collateral, "a trading fee cannot exceed the equity")
    qa, pa = terms.quote_asset.code, terms.position_asset.code
    postings = [Posting(acc.POSITION, pa, trade), Posting(acc.POSITION_CONTRA, pa, -trade)]
    _add(postings, acc.COLLATERAL, qa, -fee)
    _add(postings, acc.TRADING_FEES, qa, fee)
    meta = {
        "trigger": "close",
        "price": price_text(terms, state.price),
        "position": format_units(0, terms.position_asset.scale),
    }
    after = replace(
        state,
        position=0,
        collateral=state.collateral - fee,
        rebalance_price=state.price,
        mark_price=state.price,
    )
    return fund_draft(terms, "rebalance", at, postings, meta), after


def rebalance(
    terms: Terms, state: FundState, *, at: datetime, trigger: str
) -> tuple[EntryDraft | None, FundState]:
    """Trade the position back to L x E / P (toward zero) at the last mark; fee rounded up."""
    if state.collateral <= 0 or state.price == 0:
        return None, state
    target = target_position(terms, state.collateral, state.price)
    trade = target - state.position
    if trade == 0:
        # Nothing traded, nothing posted: the journal's last rebalance stays the reference.
        return None, state
    fee = trading_fee(terms, trade, state.price)
    if fee >= state.collateral:
        # A fund too small to pay for its trade (dust left in the treasury) does not trade.
        return None, state
    qa, pa = terms.quote_asset.code, terms.position_asset.code
    postings = [Posting(acc.POSITION, pa, trade), Posting(acc.POSITION_CONTRA, pa, -trade)]
    _add(postings, acc.COLLATERAL, qa, -fee)
    _add(postings, acc.TRADING_FEES, qa, fee)
    meta = {
        "trigger": trigger,
        "price": price_text(terms, state.price),
        "position": format_units(target, terms.position_asset.scale),
    }
    if trigger == "daily":
        meta["daily"] = at.astimezone(UTC).date().isoformat()
    after = replace(
        state,
        position=target,
        collateral=state.collateral - fee,
        rebalance_price=state.price,
        mark_price=state.price,
    )
    return fund_draft(terms, "rebalance", at, postings, meta), after


def charge_management_fee(
    terms: Terms, state: FundState, *, at: datetime, day: date
) -> tuple[EntryDraft | None, FundState]:
    """Move one day's management fee (rounded down) from the fund to the manager.

    A fund without shares is charged nothing: no holder is there to bear it.
    """
    fee = management_fee(terms, state.collateral) if state.supply > 0 else 0
    if fee == 0:
        return None, state
    qa = terms.quote_asset.code
    postings = [
        Posting(acc.COLLATERAL, qa, -fee),
        Posting(acc.MANAGEMENT_EXPENSE, qa, fee),
        Posting(acc.MANAGER_FEES, qa, fee),
        Posting(acc.FEE_MANAGEMENT, qa, -fee),
    ]
    draft = fund_draft(terms, "fee.management", at, postings, {"daily": day.isoformat()})
    return draft, replace(state, collateral=state.collateral - fee)


def pay_funding(
    terms: Terms, state: FundState, *, at: datetime, day: date
) -> tuple[EntryDraft | None, FundState]:
    """Pay (or receive, if negative) one day's funding on the position, rounded up.

    A fund without shares pays nothing (its position is closed with the last redemption).
    """
    payment = funding_payment(terms, state.position, state.price) if state.supply > 0 else 0
    if payment == 0:
        return None, state
    invariant(payment < state.collateral, "funding cannot exceed the equity")
    qa = terms.quote_asset.code
    postings = [Posting(acc.COLLATERAL, qa, -payment), Posting(acc.FUNDING, qa, payment)]
    meta = {"daily": day.isoformat(), "price": price_text(terms, state.price)}
    draft = fund_draft(terms, "funding", at, postings, meta)
    return draft, replace(state, collateral=state.collateral - payment)


DAY_US = 86_400_000_000
"""Microseconds in a day: the management fee and funding rates are per day."""


def accrual_amounts(
    terms: Terms, state: FundState, elapsed_us: int, funding_rate: Ratio | None = None
) -> tuple[int, int]:
    """Return (management fee, funding) for `elapsed_us` microseconds held.

    Simple (not compounded) pro rata of the daily rates: fee = E x rate x elapsed / day,
    rounded down (the fund's favour); funding = q x P x rate x elapsed / day, rounded up
    (against the fund; negative: received). `funding_rate` (per day) replaces the product's.
    """
    fee_num, fee_den = terms.management_fee
    fee = (
        (state.collateral * fee_num * elapsed_us) // (fee_den * DAY_US)
        if state.collateral > 0
        else 0
    )
    rate_num, rate_den = funding_rate or terms.funding_rate
    value = state.position * state.price * rate_num * elapsed_us
    funding = -((-value) // (terms.position_one * rate_den * DAY_US)) if value else 0
    return fee, funding


MAX_FEED_RATE = Decimal("0.1")
"""The largest funding rate per interval the feed takes (exchanges cap theirs far below)."""


def feed_rate_per_day(terms: Terms, rate: str) -> Ratio:
    """Return a published funding rate (decimal text, per `funding_interval`) per day."""
    try:
        value = Decimal(rate)
    except ArithmeticError:
        raise Rejected(Reason.BAD_INPUT, f"a funding rate is a decimal, got {rate!r}") from None
    if not value.is_finite() or value.copy_abs() > MAX_FEED_RATE:
        raise Rejected(
            Reason.BAD_INPUT, f"a funding rate must be within +-{MAX_FEED_RATE}, got {rate!r}"
        )
    num, den = ratio_of(value)
    return num * (DAY_US // 1_000_000), den * terms.funding_interval


def accrue(
    terms: Terms, state: FundState, *, at: datetime, feed_rate: str | None = None
) -> tuple[EntryDraft | None, FundState]:
    """Charge the management fee and funding for the time since `state.accrued_at`, pro rata,
    as one `accrual` entry (metadata: from, to, price, and funding_rate when a published rate
    per funding interval, `feed_rate`, replaces the product's). Nothing accrues without
    shares; an amount under one base unit posts nothing and keeps accruing.
    """
    if state.supply == 0 or state.collateral <= 0:
        return None, state
    if state.accrued_at is None:
        return None, replace(state, accrued_at=at)
    elapsed = to_micros(at) - to_micros(state.accrued_at)
    if elapsed <= 0:
        return None, state
    rate = None if feed_rate is None else feed_rate_per_day(terms, feed_rate)
    fee, funding = accrual_amounts(terms, state, elapsed, rate)
    # Carrying costs never take more than the equity (a fund left unpriced for years): the
    # fee first, then funding up to what is left.
    fee = min(fee, state.collateral)
    funding = min(funding, state.collateral - fee)
    if fee == 0 and funding == 0:
        return None, state
    qa = terms.quote_asset.code
    postings: Postings = []
    _add(postings, acc.COLLATERAL, qa, -(fee + funding))
    _add(postings, acc.MANAGEMENT_EXPENSE, qa, fee)
    _add(postings, acc.MANAGER_FEES, qa, fee)
    _add(postings, acc.FEE_MANAGEMENT, qa, -fee)
    _add(postings, acc.FUNDING, qa, funding)
    meta = {
        "from": _iso(state.accrued_at),
        "to": _iso(at),
        "price": price_text(terms, state.price),
    }
    if feed_rate is not None:
        meta["funding_rate"] = feed_rate
    draft = fund_draft(terms, "accrual", at, postings, meta)
    return draft, replace(state, collateral=state.collateral - fee - funding, accrued_at=at)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def close_fund(
    terms: Terms, state: FundState, holders: dict[str, int], *, at: datetime
) -> tuple[EntryDraft, FundState]:
    """Close a wiped-out fund: cancel every holder's shares at zero, in one `close` entry.

    Only a wiped-out fund closes this way (a live fund's holders redeem at NAV); afterwards
    the book is sealed: the fund engine refuses every operation on it.
    """
    if state.closed:
        raise Rejected(Reason.FUND_CLOSED, f"{terms.book} is closed")
    if not state.wiped_out:
        raise Rejected(
            Reason.BAD_INPUT,
            f"only a wiped-out fund is closed by cancelling its shares; {terms.book} has equity:"
            " its holders redeem at NAV",
        )
    share = terms.share_asset.code
    postings = [
        Posting(acc.holder_account_code(h), share, -units)
        for h, units in sorted(holders.items())
        if units
    ]
    invariant(sum(-p.amount for p in postings) == state.supply, "holders must sum to the supply")
    postings.append(Posting(acc.SHARES_OUTSTANDING, share, state.shares))
    if state.index_gap:
        postings.append(Posting(acc.SHARE_INDEX, share, -state.index_gap))
    meta = {
        "supply": str(state.supply),
        "holders": str(len(postings) - 1),
        "shortfall": format_units(state.shortfall, terms.quote_asset.scale),
    }
    draft = fund_draft(terms, "close", at, postings, meta)
    return draft, replace(state, supply=0, index_gap=0, accrued_at=None, closed=True)
