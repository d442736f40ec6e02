"""The simulation driver: fund state in memory (the pure domain fold), one `post_many` per
simulated day, a clock moved along with simulated time so hashes are reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from typing import Any

from ledger.clock import FixedClock
from ledger.domain.fund import accounts as acc
from ledger.domain.fund import orders
from ledger.domain.fund.rebalance import on_price
from ledger.domain.fund.shareindex import shares_of, units_to_cancel
from ledger.domain.fund.split import index_split, policy_ratio
from ledger.domain.fund.state import FundRecord, FundState, effective_multiple, nav_per_share_units
from ledger.domain.fund.terms import Terms
from ledger.domain.journal import EntryDraft
from ledger.domain.money import parse_units
from ledger.errors import Reason, Rejected
from ledger.services.funds import FUND_OWNER, Funds
from ledger.services.ledger import Ledger
from ledger.sim.population import Order, day_orders
from ledger.sim.prices import Bar, Tick, walk
from ledger.storage import fund_store

BATCH_ENTRIES = 20_000


@dataclass
class ProductRun:
    """One product's live simulation: its state, holders and counters (mutable, per run)."""

    terms: Terms
    state: FundState
    holders: dict[str, int] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)
    split_factor: Fraction = Fraction(1)
    counts: dict[str, int] = field(default_factory=dict)
    closes: list[tuple[date, int, Fraction]] = field(default_factory=list)
    close_multiples: list[Any] = field(default_factory=list)  # effective multiple per close
    wiped_on: date | None = None
    price_at: datetime | None = None

    def count(self, name: str, by: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + by


def _on_tick(run: ProductRun, tick: Tick, drafts: list[EntryDraft]) -> None:
    step = on_price(run.terms, run.state, price=tick.price, at=tick.at)
    drafts.extend(step.drafts)
    run.state = step.state
    run.price_at = tick.at
    for draft in step.drafts:
        if draft.kind == "rebalance":
            run.count("rebalance_" + ("daily" if step.daily else "adhoc"))
    if step.wiped_out:
        run.wiped_on = tick.at.date()
        run.count("wipeouts")
    if step.daily:
        _policy(run, tick.at, drafts)


def _policy(run: ProductRun, at: datetime, drafts: list[EntryDraft]) -> None:
    due = policy_ratio(run.terms, run.state)
    if due is None:
        return
    kind, num, den = due
    # One entry whatever the number of holders: the ratio joins the share index.
    draft, run.state = index_split(run.terms, run.state, num=num, den=den, at=at, kind=kind)
    drafts.append(draft)
    run.split_factor *= Fraction(num, den)
    run.count(kind + "s")


def _on_orders(run: ProductRun, day: list[Order], at: datetime, drafts: list[EntryDraft]) -> None:
    """Post a day's orders as one netted batch at `at` (the last order's time): each priced
    alone in turn, only the net traded. A redemption asks for a percentage of the shares its
    holder has when the batch reaches it; refused orders are left out and counted."""
    if run.state.wiped_out:
        run.count("refused", len(day))
        return
    holdings = dict(run.holders)  # units
    index = run.state.index
    batch_orders: list[orders.Order] = []
    for order in day:
        held = holdings.get(order.holder, 0)
        if order.redeem:
            shares = shares_of(held, index) * order.amount // 100
            if shares <= 0:
                continue
            holdings[order.holder] = held - units_to_cancel(shares, held, index)
            batch_orders.append(orders.Order("redeem", order.holder, shares))
        else:
            batch_orders.append(orders.Order("mint", order.holder, order.amount))
    if not batch_orders:
        return
    refused: list[int] = []
    try:
        draft, run.state, fills = orders.batch(
            run.terms, run.state, batch_orders, run.holders, at=at, refused=refused
        )
    except Rejected:  # every order of the day refused
        run.count("refused", len(batch_orders))
        return
    run.count("refused", len(refused))
    for fill in fills:
        run.holders[fill.order.holder] = run.holders.get(fill.order.holder, 0) + fill.shares
        run.count("mints" if fill.order.side == "mint" else "redeems")
    meta = dict(draft.metadata)
    scale = run.terms.quote_asset.scale
    run.count("order_trading_fees", parse_units(meta["trading_fee"], scale, "fee"))
    run.count("order_fees_saved", parse_units(meta["trading_fee_saved"], scale, "fee"))
    run.count("order_batches")
    drafts.append(draft)


def simulate_day(
    run: ProductRun, bar: Bar, *, step: tuple[int, int], ids: list[str], per_day: int
) -> list[EntryDraft]:
    """Return one day's drafts for one product: the walk's ticks, the scheduled rebalance
    at its time (on the last price), and the holders' orders, in time order.
    """
    drafts: list[EntryDraft] = []
    ticks = list(walk(bar, step=step))
    scheduled = datetime.combine(bar.day, run.terms.rebalance_time, tzinfo=UTC)
    ticks.append(Tick(scheduled, 0))  # price 0 stands for "the last price" (see below)
    ticks.sort(key=lambda t: t.at)
    orders = day_orders(
        run.rng,
        day=bar.day,
        holders=ids,
        per_day=per_day,
        quote_one=10**run.terms.quote_asset.scale,
        has_shares=run.holders,
    )
    # The day's orders arrive through the day and net in one batch at the last one's time.
    batch_at = orders[-1].at if orders else None
    last = ticks[0].price
    for tick in ticks:
        if batch_at is not None and batch_at < tick.at:
            _on_orders(run, orders, batch_at, drafts)
            batch_at = None
        price = tick.price or last
        last = price
        _on_tick(run, Tick(tick.at, price), drafts)
    if batch_at is not None:
        _on_orders(run, orders, batch_at, drafts)
    run.closes.append((bar.day, nav_per_share_units(run.terms, run.state), run.split_factor))
    run.close_multiples.append(effective_multiple(run.terms, run.state))
    return drafts


@dataclass
class SimOutcome:
    """What a run produced, for the summary and the chart."""

    runs: list[ProductRun]
    bars: list[Bar]
    entries: int
    seconds_posting: float = 0.0  # float-ok: wall-clock seconds, not money
    verify: dict[str, Any] = field(default_factory=dict)
    balances: dict[str, dict[tuple[str, str], int]] = field(default_factory=dict)
    seconds_verify: float = 0.0  # float-ok: wall-clock seconds, not money


def setup_products(
    funds: Funds, names: list[str], overrides: dict[str, Any], ids: list[str], seed: int
) -> list[ProductRun]:
    """Create the products (refusing books that already have entries) and holder accounts."""
    runs = []
    for index, name in enumerate(names):
        funds.create_product(name, **overrides)
        terms = funds.terms(name)
        if funds.lg.head(terms.book)[0] > 0:
            raise Rejected(
                Reason.DUPLICATE,
                f"book {name} already has entries in this database: pass --db with a new file"
                " (or --replace for SQLite)",
            )
        funds.lg.open_accounts(
            [acc.share_index_account(terms.book), *(acc.holder_account(terms.book, h) for h in ids)]
        )
        runs.append(ProductRun(terms=terms, state=FundState(), rng=random.Random(seed + index)))
    return runs


def run_days(
    lg: Ledger,
    clock: FixedClock,
    runs: list[ProductRun],
    bars: list[Bar],
    *,
    step: tuple[int, int],
    ids: list[str],
    per_day: int,
    on_day: Callable[[int], None] | None = None,
) -> int:
    """Simulate every day of `bars`, posting whole days in batches of about `BATCH_ENTRIES`.

    Each batch is one transaction (one commit, one fsync); a day is never split across
    batches. The clock reads the end of the batch's last simulated day, so recorded_at (and
    so every hash) depends only on the inputs.
    """
    total = 0
    drafts: list[EntryDraft] = []
    for index, bar in enumerate(bars):
        for run in runs:
            drafts.extend(simulate_day(run, bar, step=step, ids=ids, per_day=per_day))
        if len(drafts) >= BATCH_ENTRIES or index == len(bars) - 1:
            clock.moment = datetime.combine(bar.day, time(0), tzinfo=UTC) + timedelta(days=1)
            _post_batch(lg, runs, drafts, final=index == len(bars) - 1, day=bar.day)
            total += len(drafts)
            drafts = []
        if on_day is not None:
            on_day(1)
    return total


def _post_batch(
    lg: Ledger, runs: list[ProductRun], drafts: list[EntryDraft], *, final: bool, day: date
) -> None:
    """Post one batch and every product's state record in one transaction (the fund
    engine's unit of work), so the books and the records never disagree at a commit.
    """
    last_at: dict[str, datetime] = {}
    for draft in drafts:
        last_at[draft.book] = draft.effective_at
    with lg.unit_of_work(owner=FUND_OWNER) as uow:
        uow.post(drafts)
        for run in runs:
            book = run.terms.book
            head = uow.lock(book)[0]
            previous = fund_store.load_record(uow.connection, book)
            at = last_at.get(book) or (previous.last_at if previous is not None else None)
            record = FundRecord(state=run.state, seq=head, last_at=at, price_at=run.price_at)
            fund_store.save_record(uow.connection, book, record)
            if final:
                fund_store.mark_daily(uow.connection, book, day)
