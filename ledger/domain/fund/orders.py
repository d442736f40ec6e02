"""Orders that arrive together, netted: one `orders` entry for a batch of mints and
redemptions, trading only the net of their positions.

Each order is priced as if it came alone, one after the other in the batch's order (the
same arithmetic as `entries.mint` / `entries.redeem`, so each leaves the other holders' NAV
per share and multiple as they were). Their trades then net: the fund trades only the sum,
and pays the trading fee of that sum. The fee saved (the orders' own fees less the net
trade's, never negative because each fee rounds up) goes back to the orders in proportion
to the fee each was quoted, rounded down: a minter is refunded that much of its cash, a
redeemer is paid that much more. The few base units the division leaves stay in the fund.

Pure: no I/O. The fold re-runs `batch` from the entry's metadata and compares postings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from ledger.domain.fund import accounts as acc
from ledger.domain.fund import entries
from ledger.domain.fund.navmath import quote_mint, quote_redeem, trading_fee
from ledger.domain.fund.shareindex import Line, reindexed, units_to_cancel
from ledger.domain.fund.state import FundState, nav_per_share_units
from ledger.domain.fund.terms import Terms
from ledger.domain.journal import MAX_METADATA_ITEMS, EntryDraft, Posting
from ledger.domain.money import format_units
from ledger.errors import Reason, Rejected, invariant

MAX_ORDERS = 500
"""The most orders one batch takes (one entry; its metadata records every fill)."""
RECORD_TEXT = 4000
"""Characters of fills per metadata item (the kernel takes at most 4,096 per item)."""


@dataclass(frozen=True, slots=True)
class Order:
    """One order of a batch: a mint of `amount` quote base units of cash, or a redemption
    of `amount` share base units (shares as the holder sees them, under the share index)."""

    side: str  # "mint" | "redeem"
    holder: str
    amount: int


@dataclass(frozen=True, slots=True)
class Fill:
    """What one order of a batch got: shares issued (mint, positive) or cancelled (redeem,
    negative), the cash it was quoted to pay in (mint) or be paid (redeem) before its rebate,
    its fee, its own trade and the part of the netting saving it got back."""

    order: Order
    shares: int
    cash: int
    fee: int
    trade: int
    trade_fee: int
    rebate: int


def batch(
    terms: Terms,
    state: FundState,
    orders: list[Order],
    held: dict[str, int],
    *,
    at: datetime,
    key: str | None = None,
    refused: list[int] | None = None,
) -> tuple[EntryDraft, FundState, list[Fill]]:
    """Return the `orders` entry of a batch, the state after it and each order's fill.

    `held` gives the share units of every holder in the batch and of the treasury. An order
    that is refused refuses the whole batch, unless `refused` is given: then the refused
    orders are left out (their indices appended to it) and the entry names only the others.
    """
    if not orders:
        raise Rejected(Reason.BAD_INPUT, "a batch needs at least one order")
    if len(orders) > MAX_ORDERS:
        raise Rejected(Reason.BAD_INPUT, f"a batch takes at most {MAX_ORDERS} orders")
    holdings = dict(held)
    running = state
    lines: dict[tuple[str, str], int] = {}
    quoted: list[tuple[Order, int, int, int, int, int]] = []
    for index, order in enumerate(orders):
        try:
            lines_of, running, filled = _alone(terms, running, order, holdings, at)
        except Rejected as exc:
            if refused is not None:
                refused.append(index)
                continue
            raise Rejected(
                exc.reason, f"order {index} ({order.side} {order.holder}): {exc.message}"
            ) from None
        shares, cash, fee, trade, trade_fee = filled
        holdings[order.holder] = holdings.get(order.holder, 0) + shares
        quoted.append((order, shares, cash, fee, trade, trade_fee))
        for account, asset, amount in lines_of:
            lines[(account, asset)] = lines.get((account, asset), 0) + amount
    if not quoted:
        raise Rejected(Reason.BAD_INPUT, "every order of the batch was refused")
    net = running.position - state.position
    net_fee = trading_fee(terms, net, state.price) if state.price else 0
    quoted_fees = sum(q[5] for q in quoted)
    saved = quoted_fees - net_fee
    invariant(saved >= 0, "netting never costs more than trading each order alone")
    fills = [
        Fill(order, shares, cash, fee, trade, trade_fee, _share(saved, trade_fee, quoted_fees))
        for order, shares, cash, fee, trade, trade_fee in quoted
    ]
    rebates = sum(f.rebate for f in fills)
    kept = saved - rebates
    qa = terms.quote_asset.code
    _bump(lines, (acc.TRADING_FEES, qa), -saved)
    _bump(lines, (acc.CONTRIBUTED, qa), rebates)  # refunded to minters, paid to redeemers
    _bump(lines, (acc.COLLATERAL, qa), kept)
    # With a share index the shares outstanding move by the holders' shares (net per holder).
    made, gap = reindexed(terms, state.index, [(a, s, u) for (a, s), u in lines.items()], held)
    postings = tuple(Posting(a, s, u) for a, s, u in made if u)
    meta = _metadata(terms, state, fills, net, net_fee, saved)
    # The batch carries its price (the mark basis moves to it, as any order that trades);
    # a batch into a fund without a position sizes it (the ad-hoc move is measured from it).
    sized = state.position == 0 and running.position != 0
    after = replace(
        running,
        index_gap=running.index_gap + gap,
        collateral=running.collateral + kept,
        mark_price=state.price or running.mark_price,
        rebalance_price=state.price if sized else state.rebalance_price,
    )
    return entries.fund_draft(terms, "orders", at, list(postings), meta, key), after, fills


def _metadata(
    terms: Terms, state: FundState, fills: list[Fill], net: int, net_fee: int, saved: int
) -> dict[str, str]:
    """Return a batch entry's metadata: its totals, price and NAV, then every fill."""
    meta: dict[str, str] = {
        "orders": str(len(fills)),
        "net_trade": format_units(net, terms.position_asset.scale),
        "trading_fee": format_units(net_fee, terms.quote_asset.scale),
        "trading_fee_saved": format_units(saved, terms.quote_asset.scale),
        "priced_at_nav": format_units(nav_per_share_units(terms, state), terms.quote_asset.scale),
    }
    if state.price:
        meta["price"] = entries.price_text(terms, state.price)
    # Base units as integers (each field's asset: the quote, shares or the position), so a
    # batch of hundreds of orders records and re-reads quickly.
    records = [
        f"{f.order.side} {f.order.holder} {f.order.amount} {f.shares}"
        f" {f.cash - f.rebate if f.order.side == 'mint' else f.cash + f.rebate}"
        f" {f.fee} {f.trade} {f.rebate}"
        for f in fills
    ]
    chunks = _chunks(records, RECORD_TEXT)
    if len(meta) + len(chunks) > MAX_METADATA_ITEMS:
        raise Rejected(Reason.BAD_INPUT, "the batch is too large to record in one entry: split it")
    for i, chunk in enumerate(chunks):
        meta[f"fills.{i:03d}"] = chunk
    return meta


def _chunks(records: list[str], limit: int) -> list[str]:
    """Join records with ";" into texts of at most `limit` characters each."""
    chunks: list[str] = []
    current = ""
    for record in records:
        joined = f"{current};{record}" if current else record
        if current and len(joined) > limit:
            chunks.append(current)
            joined = record
        current = joined
    if current:
        chunks.append(current)
    return chunks


FILL_FIELDS = ("side", "holder", "amount", "shares", "cash", "fee", "trade", "rebate")
"""The fields of one fill in an `orders` entry's `fills.NNN` metadata (space-separated;
fills separated by ";"), in this order, amounts as integers of base units: amount is the
cash asked (a mint, quote units) or the shares redeemed (share units); shares is the
holder's units issued (> 0) or cancelled (< 0), which are shares until the fund's first
index split; cash is what the order paid in (a mint, after its rebate) or was paid (a
redemption, rebate included); fee (quote); trade (position units); rebate (quote)."""


def fills_of(meta: dict[str, str]) -> list[dict[str, str]]:
    """Return the fills an `orders` entry's metadata records, in the batch's order."""
    text = ";".join(v for k, v in sorted(meta.items()) if k.startswith("fills."))
    found = [dict(zip(FILL_FIELDS, r.split(" "), strict=True)) for r in text.split(";") if r]
    if len(found) != int(meta["orders"]):
        raise ValueError(f"the entry names {meta['orders']} orders but records {len(found)}")
    return found


def _alone(
    terms: Terms, state: FundState, order: Order, holdings: dict[str, int], at: datetime
) -> tuple[list[Line], FundState, tuple[int, int, int, int, int]]:
    """Price one order as if it came alone: its postings, the state after it, and (shares,
    cash, fee, trade, trade fee)."""
    if order.side == "mint":
        mq = quote_mint(terms, state, order.amount)
        filled = (mq.shares, mq.cash, mq.fee, mq.trade, mq.trade_fee)
        return (
            entries.mint_lines(terms, mq, order.holder),
            entries.after_mint(state, mq, at),
            filled,
        )
    if order.side == "redeem":
        treasury = holdings.get("treasury", 0) if order.holder != "treasury" else 0
        held = holdings.get(order.holder, 0)
        units = units_to_cancel(order.amount, held, state.index)
        rq = quote_redeem(terms, state, units, held, treasury)
        filled = (-units, rq.paid, rq.fee, rq.trade, rq.trade_fee)
        return (
            entries.redeem_lines(terms, rq, order.holder),
            entries.after_redeem(state, rq),
            filled,
        )
    raise Rejected(Reason.BAD_INPUT, f"an order is a mint or a redeem, not {order.side!r}")


def _share(saved: int, fee: int, fees: int) -> int:
    return (saved * fee) // fees if fees else 0


def _bump(lines: dict[tuple[str, str], int], line: tuple[str, str], amount: int) -> None:
    if amount:
        lines[line] = lines.get(line, 0) + amount


def _amount_text(terms: Terms, order: Order) -> str:
    if order.side == "mint":
        return format_units(order.amount, terms.quote_asset.scale)
    return format_units(order.amount, terms.share_asset.scale)


def orders_of(meta: dict[str, str]) -> list[Order]:
    """Return the orders an `orders` entry's metadata names, in the batch's order."""
    return [Order(f["side"], f["holder"], int(f["amount"])) for f in fills_of(meta)]
