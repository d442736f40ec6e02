"""Fund use cases over the kernel ledger: products, prices, mint, redeem, rebalance, split,
merge, NAV at a time, holders and statements.

    from ledger.services.ledger import open_ledger
    from ledger.services.funds import Funds
    lg = open_ledger("sqlite:///books.db"); lg.init()
    funds = Funds(lg)
    funds.create_product("BTC3L")
    funds.set_price("BTC", "100")
    funds.mint("BTC3L", "alice", cash="1000")
    funds.rebalance("BTC3L")

Every write is one database transaction (`Ledger.unit_of_work`): lock the book's head, read
the fund's state record, compute the entries in the pure domain, post them, write the new
state record, commit. Nothing is read outside that transaction, so two operations on one
fund are priced one after the other, each on the state the previous one left, and the cost
of an operation does not grow with the book's history or its number of holders. Only this
engine writes a product's book (the kernel refuses other writers with `fund_book`).
Amounts go in and come out as decimal strings; the journal holds integers.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from ledger.clock import Clock
from ledger.domain.fund import accounts as acc
from ledger.domain.fund import entries
from ledger.domain.fund.navmath import toward_zero
from ledger.domain.fund.orders import batch
from ledger.domain.fund.product import (
    RESERVED_HOLDER_IDS,
    ProductParams,
    check_holder_id,
    make_params,
)
from ledger.domain.fund.rebalance import on_price
from ledger.domain.fund.shareindex import holder_shares, remainder
from ledger.domain.fund.split import index_split, parse_ratio, policy_ratio
from ledger.domain.fund.state import (
    FundRecord,
    FundState,
    effective_multiple,
    nav_per_share_units,
)
from ledger.domain.fund.terms import Terms, quantise_units, terms_of
from ledger.domain.journal import JournalEntry, to_micros
from ledger.domain.money import format_units, parse_units
from ledger.errors import Reason, Rejected
from ledger.services.entry_input import DEFAULT_MAX_SKEW, latest_time
from ledger.services.fund_models import (
    HoldersReport,
    MintResult,
    NavReport,
    OrdersResult,
    PriceUpdate,
    RebalanceResult,
    RedeemResult,
    SplitResult,
    Statement,
)
from ledger.services.fund_operation import FUND_OWNER, FundOperation
from ledger.services.fund_orders import batch_payload, parse_orders, request_of
from ledger.services.fund_report import (
    entry_summary,
    holder_entries,
    holder_rows,
    multiple_text,
    nav_payload,
    utc_text,
)
from ledger.services.fund_state import rebuild_record, state_at
from ledger.services.ledger import Ledger, UnitOfWork
from ledger.services.share_index import index_entries
from ledger.storage import fund_store

_PRICE = re.compile(r"^\d+(\.\d+)?$")


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around bulk work that allocates millions of acyclic
    objects (a split's postings); reference counting still frees them. Measured: building a
    million postings takes a third of the time without collector passes.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_RATE = re.compile(r"^-?\d+(\.\d{1,18})?$")


def parse_funding_rate(text: str) -> str:
    """Return a funding rate per interval as canonical decimal text ("0.0001", "-0.00005")."""
    if not isinstance(text, str) or not _RATE.match(text.strip()):
        raise Rejected(
            Reason.BAD_INPUT, f"a funding rate is a decimal such as 0.0001, got {text!r}"
        )
    value = Decimal(text.strip())
    if value.copy_abs() > entries.MAX_FEED_RATE:
        raise Rejected(
            Reason.BAD_INPUT,
            f"a funding rate per interval must be within +-{entries.MAX_FEED_RATE}, got {text!r}",
        )
    return f"{value.normalize():f}" if value else "0"


def parse_price(text: str) -> Decimal:
    """Return a positive price from a decimal string such as "7913.62"; refuse anything else."""
    if not isinstance(text, str) or not _PRICE.match(text.strip()):
        raise Rejected(Reason.BAD_INPUT, f"price must be a positive decimal number, got {text!r}")
    value = Decimal(text.strip())
    if value <= 0:
        raise Rejected(Reason.BAD_INPUT, f"price must be positive, got {text!r}")
    return value


class Funds:
    """The fund engine's use cases over one `Ledger` (one DB transaction per write)."""

    def __init__(
        self,
        lg: Ledger,
        *,
        clock: Clock | None = None,
        max_skew: timedelta | None = DEFAULT_MAX_SKEW,
    ) -> None:
        self.lg = lg
        self.clock = clock or lg.clock
        self.max_skew = max_skew  # how far ahead of the clock an `at` may be (None: any)
        self._terms: dict[str, Terms] = {}  # a product's parameters never change

    # --- products -----------------------------------------------------------------------------
    def create_product(self, name: str, **overrides: Any) -> dict[str, Any]:
        """Create a product: its assets, its book and accounts, its recorded parameters, the
        book's reservation for this engine and its state record, in one transaction.

        Idempotent when the same parameters are given again; refused if they differ.
        """
        params = make_params(name, **overrides)
        terms = terms_of(params)
        with self.lg.unit_of_work(owner=FUND_OWNER) as uow:
            existing = fund_store.load_product(uow.connection, params.name)
            if existing is not None and existing != params:
                raise Rejected(Reason.DUPLICATE, f"product {name} exists with other parameters")
            uow.add_assets([terms.quote_asset, terms.share_asset, terms.position_asset])
            uow.open_accounts(list(acc.chart_of_accounts(terms)))
            if existing is None:
                fund_store.save_product(uow.connection, params)
            uow.reserve(terms.book)
            self._open(uow, terms)
        return params_payload(params)

    def params(self, product: str) -> ProductParams:
        """Return a product's parameters or refuse with UNKNOWN_PRODUCT."""
        found = fund_store.load_product(self.lg.engine, product)
        if found is None:
            raise Rejected(
                Reason.UNKNOWN_PRODUCT, f"unknown product {product!r}: run `product create`"
            )
        return found

    def terms(self, product: str) -> Terms:
        """Return a product's integer terms (read once per `Funds`: they never change)."""
        found = self._terms.get(product)
        if found is None:
            found = self._terms[product] = terms_of(self.params(product))
        return found

    def _now(self, at: datetime | None) -> datetime:
        """Return `at` (or the clock's now): aware, inside the journal's time window, and no
        further ahead of the clock than `max_skew` (a price or order dated years ahead would
        charge years of fees and stop every order at the current time)."""
        moment = at or self.clock.now()
        if moment.tzinfo is None:
            raise Rejected(Reason.BAD_INPUT, f"time {moment.isoformat()} has no time zone")
        to_micros(moment)  # refuses a time outside the window (time_out_of_range)
        skew = self.max_skew
        latest = None if at is None or skew is None else latest_time(self.clock.now(), skew)
        if skew is not None and latest is not None and moment > latest:
            raise Rejected(
                Reason.TIME_OUT_OF_RANGE,
                f"time {utc_text(moment)} is more than {int(skew.total_seconds())} s"
                f" ahead of the clock ({utc_text(self.clock.now())})",
            )
        return moment

    def _open(self, uow: UnitOfWork, terms: Terms) -> FundOperation:
        """Lock the book and read its state record (built from the journal if it has none)."""
        head_seq = uow.lock(terms.book)[0]
        record = fund_store.load_record(uow.connection, terms.book)
        if record is None or record.seq != head_seq:
            # A book from before the state record (or written around it): fold its journal
            # once, in this transaction; from then on the record is kept entry by entry.
            record = rebuild_record(uow, terms, head_seq)
            fund_store.save_record(uow.connection, terms.book, record)
        feed = fund_store.funding_rate(uow.connection, terms.underlying)
        return FundOperation(
            uow, terms, record, head_seq, feed_rate=None if feed is None else feed[1]
        )

    @contextmanager
    def _operation(self, product: str) -> Iterator[FundOperation]:
        terms = self.terms(product)
        with self.lg.unit_of_work(owner=FUND_OWNER) as uow:
            yield self._open(uow, terms)

    def _on_symbol(
        self,
        uow: UnitOfWork,
        symbol: str,
        at: datetime | None,
        latest: Callable[[Connection, str], tuple[datetime, str] | None],
        what: str,
    ) -> tuple[list[FundOperation], datetime]:
        """Lock every product on `symbol` (by name: books are locked in one order) and return
        their operations and the time, read under the locks ("now" follows the last writer),
        refused before any book's last entry or the symbol's last `what` (`latest`)."""
        products = [p for p in fund_store.load_products(uow.connection) if p.underlying == symbol]
        if not products:
            raise Rejected(
                Reason.UNKNOWN_SYMBOL, f"no product has the underlying {symbol!r}: create one first"
            )
        ops = [self._open(uow, self._terms.setdefault(p.name, terms_of(p))) for p in products]
        moment = self._now(at)
        for op in ops:
            op.moment(moment)
        feed = latest(uow.connection, symbol)
        if feed is not None and moment < feed[0]:
            raise Rejected(
                Reason.BAD_INPUT,
                f"time {utc_text(moment)} is before the last {symbol} {what} at"
                f" {utc_text(feed[0])}",
            )
        return ops, moment

    # --- prices -------------------------------------------------------------------------------
    def set_price(self, symbol: str, price: str, *, at: datetime | None = None) -> PriceUpdate:
        """Apply a price of `symbol` to every product on it: mark, daily events, ad hoc.

        All resulting entries of all products, their state records, the day's schedule and
        the price itself are written in one transaction. A symbol no product uses is refused.
        """
        value = parse_price(price)
        if at is not None:
            self._now(at)  # a time without a zone is refused before anything is locked
        reports: list[dict[str, Any]] = []
        with self.lg.unit_of_work(owner=FUND_OWNER) as uow:
            ops, moment = self._on_symbol(uow, symbol, at, fund_store.latest_price, "price")
            for op in ops:
                terms = op.terms
                if op.state.closed:  # a sealed book takes no price
                    reports.append(
                        {
                            **nav_payload(terms, op.state),
                            "daily_rebalance": False,
                            "adhoc_trigger": None,
                            "entries": [],
                        }
                    )
                    continue
                units = quantise_units(value, terms.quote_asset.scale)
                if units <= 0:
                    raise Rejected(Reason.BAD_INPUT, f"price {price} rounds to zero units")
                step = on_price(terms, op.state, price=units, at=moment, feed_rate=op.feed_rate)
                made = list(step.drafts)
                state = step.state
                if step.daily:
                    due = policy_ratio(terms, state)
                    if due is not None:
                        kind, num, den = due
                        draft, state = index_split(
                            terms, state, num=num, den=den, at=moment, kind=kind
                        )
                        made.append(draft)
                    fund_store.mark_daily(uow.connection, terms.book, moment.astimezone(UTC).date())
                # A book from before the insurance cover opens its account with its wipe-out;
                # a fund's first index split opens the share index's.
                cover = [acc.insurance_cover_account(terms.book)] if step.wiped_out else []
                if state.index:
                    cover.append(acc.share_index_account(terms.book))
                op.commit(made, state, moment, priced=True, accounts=cover)
                reports.append(
                    {
                        **nav_payload(terms, state),
                        "daily_rebalance": step.daily,
                        "adhoc_trigger": step.adhoc,
                        "entries": [d.kind for d in made],
                    }
                )
            fund_store.save_prices(uow.connection, [(symbol, moment, str(value))])
        return PriceUpdate.model_validate(
            {"symbol": symbol, "price": str(value), "at": utc_text(moment), "products": reports}
        )

    def set_funding_rate(
        self, symbol: str, rate: str, *, at: datetime | None = None
    ) -> dict[str, Any]:
        """Publish the funding rate of `symbol` (decimal text per funding interval, > 0:
        longs pay) in force from `at` (default now) on.

        Every product on `symbol` first accrues its fees and funding up to `at` at the rate
        in force until then (one `accrual` entry each, if anything is due), so that no
        accrual spans two rates; the rate is recorded in the same transaction.
        """
        text = parse_funding_rate(rate)
        if at is not None:
            self._now(at)
        reports: list[dict[str, Any]] = []
        with self.lg.unit_of_work(owner=FUND_OWNER) as uow:
            ops, moment = self._on_symbol(uow, symbol, at, fund_store.funding_rate, "funding rate")
            for op in ops:
                entries.feed_rate_per_day(op.terms, text)  # each product's interval takes it
            for op in ops:
                state = op.state if op.state.closed else op.accrued(moment)
                made = op.commit([], state, moment)
                reports.append(
                    {
                        "product": op.terms.book,
                        "accrued": [e.seq for e in made],
                        "funding_interval": op.terms.funding_interval,
                    }
                )
            fund_store.save_funding_rate(uow.connection, symbol, moment, text)
        return {"symbol": symbol, "rate": text, "at": utc_text(moment), "products": reports}

    # --- mint and redeem ------------------------------------------------------------------------
    def mint(
        self,
        product: str,
        holder: str,
        *,
        cash: str,
        key: str | None = None,
        at: datetime | None = None,
    ) -> MintResult:
        """Issue shares at NAV for `cash` (decimal string of the quote asset).

        Shares round down and the subscription fee rounds up; the dust stays in the fund,
        posted to equity:rounding. A retry under the same key returns the original result.
        """
        terms = self.terms(product)
        holder = check_holder_id(holder)
        cash_units = parse_units(cash, terms.quote_asset.scale, "cash")
        request = ("mint", holder, format_units(cash_units, terms.quote_asset.scale), "")
        with self._operation(product) as op:
            moment = self._now(at)  # read under the lock: "now" follows the last writer
            done = op.replay(key, request)
            if done is not None:
                return MintResult.model_validate(self._order(terms, done, op.state, None))
            accrued = op.order_state(moment)  # fees for the time before it
            nav_before = nav_per_share_units(terms, accrued)
            # Under a share index the shares a mint shows depend on the units already held.
            held = op.held([holder])[holder] if accrued.index else 0
            draft, after, _ = entries.mint(
                terms, accrued, holder=holder, cash=cash_units, at=moment, key=key, held=held
            )
            op.moment(moment)  # after the quote: the order's own refusal comes first
            # The holder's account opens in the posting's own transaction: a refusal writes nothing.
            made = op.commit(
                [draft], after, moment, accounts=[acc.holder_account(terms.book, holder)]
            )
        return MintResult.model_validate(self._order(terms, made[-1], after, nav_before))

    def redeem(
        self,
        product: str,
        holder: str,
        *,
        shares: str,
        key: str | None = None,
        at: datetime | None = None,
    ) -> RedeemResult:
        """Cancel `shares` (decimal string) for cash at NAV, rounded down, less the fee.

        The shares' part of the position is sold in the same entry (all of it for the last
        customer shares), its trading fee borne by this redeemer. A retry under the same key
        returns the original.
        """
        terms = self.terms(product)
        holder = check_holder_id(holder)
        share_units = parse_units(shares, terms.share_asset.scale, "shares")
        if share_units <= 0:
            raise Rejected(Reason.BAD_INPUT, f"shares must be positive, got {shares!r}")
        request = ("redeem", holder, "", str(-share_units))
        with self._operation(product) as op:
            moment = self._now(at)  # read under the lock: "now" follows the last writer
            done = op.replay(key, request)
            if done is not None:
                return RedeemResult.model_validate(self._order(terms, done, op.state, None))
            found = op.held([holder, "treasury"])
            held, treasury = found[holder], found["treasury"]
            accrued = op.order_state(moment)  # fees for the time held
            nav_before = nav_per_share_units(terms, accrued)
            draft, after, _ = entries.redeem(
                terms,
                accrued,
                holder=holder,
                shares=share_units,
                held=held,
                at=moment,
                key=key,
                treasury=treasury,
            )
            op.moment(moment)  # after the quote: the order's own refusal comes first
            made = op.commit([draft], after, moment)
        return RedeemResult.model_validate(self._order(terms, made[-1], after, nav_before))

    def orders(
        self,
        product: str,
        items: object,
        *,
        key: str | None = None,
        at: datetime | None = None,
    ) -> OrdersResult:
        """Post a batch of mints and redemptions that arrive together as one `orders` entry.

        `items`: [{"side": "mint", "holder": ..., "cash": "1000"}, {"side": "redeem",
        "holder": ..., "shares": "2.5"}, ...]. Every order is priced as if alone, in turn, at
        the same price; only the net of their trades is traded, and the trading fee saved
        goes back to the orders pro rata (`ledger/domain/fund/orders.py`). The whole batch
        is refused if any order is. A retry under the same key returns the original.
        """
        terms = self.terms(product)
        batch_orders = parse_orders(terms, items)
        request = request_of(batch_orders)
        with self._operation(product) as op:
            moment = self._now(at)
            done = op.replay(key, request)
            if done is not None:
                return self._batch(terms, done, op.state)
            holdings = op.held(["treasury", *sorted({o.holder for o in batch_orders})])
            accrued = op.order_state(moment)
            draft, after, _ = batch(terms, accrued, batch_orders, holdings, at=moment, key=key)
            op.moment(moment)
            opened = sorted({o.holder for o in batch_orders if o.side == "mint"})
            made = op.commit(
                [draft], after, moment, accounts=[acc.holder_account(terms.book, h) for h in opened]
            )
        return self._batch(terms, made[-1], after)

    def _batch(self, terms: Terms, entry: JournalEntry, state: FundState) -> OrdersResult:
        nav = {**nav_payload(terms, state), "at": None}
        return OrdersResult.model_validate({**batch_payload(terms, entry), "nav": nav})

    def _order(
        self, terms: Terms, entry: JournalEntry, state: FundState, nav_before: int | None
    ) -> dict[str, Any]:
        result = {**entry_summary(terms, entry), "nav": {**nav_payload(terms, state), "at": None}}
        if nav_before is not None:
            result["priced_at_nav"] = format_units(nav_before, terms.quote_asset.scale)
        return result

    # --- rebalance, split, merge --------------------------------------------------------------
    def rebalance(self, product: str, *, at: datetime | None = None) -> RebalanceResult:
        """Trade the position back to multiple x NAV at the last price (trigger "manual")."""
        terms = self.terms(product)
        with self._operation(product) as op:
            moment = self._now(at)
            state = op.state
            op.refuse_closed()
            if state.price == 0:
                raise Rejected(Reason.NO_PRICE, f"no price for {terms.underlying} yet: run `price`")
            if state.wiped_out:
                raise Rejected(Reason.FUND_WIPED_OUT, f"{product} is wiped out")
            op.moment(moment)
            state = op.accrued(moment)
            before = effective_multiple(terms, state)
            draft, after = entries.rebalance(terms, state, at=moment, trigger="manual")
            op.commit([] if draft is None else [draft], after, moment)
        return RebalanceResult.model_validate(
            {
                "product": product,
                "traded": format_units(after.position - state.position, terms.position_asset.scale),
                "traded_notional": format_units(
                    toward_zero(
                        (after.position - state.position) * state.price, terms.position_one
                    ),
                    terms.quote_asset.scale,
                ),
                "trading_fee": format_units(
                    state.collateral - after.collateral, terms.quote_asset.scale
                ),
                "multiple_before": multiple_text(before),
                "nav": nav_payload(terms, after),
            }
        )

    def split(
        self, product: str, ratio: str, *, kind: str = "split", at: datetime | None = None
    ) -> SplitResult:
        """Split ("1:5") or merge ("5:1") every holder's shares in one entry, whatever the
        number of holders: the ratio joins the share index (`shareindex.py`); every holder's
        units, and so their value, are unchanged."""
        terms = self.terms(product)
        num, den = parse_ratio(ratio, kind=kind)
        with self._operation(product) as op:
            op.refuse_closed()
            moment = op.moment(self._now(at))
            state = op.accrued(moment)
            nav_before = nav_per_share_units(terms, state)
            draft, after = index_split(terms, state, num=num, den=den, at=moment, kind=kind)
            entry = op.commit(
                [draft], after, moment, accounts=[acc.share_index_account(terms.book)]
            )[-1]
        scale = terms.share_asset.scale
        return SplitResult.model_validate(
            {
                "product": product,
                "kind": kind,
                "ratio_num": str(num),
                "ratio_den": str(den),
                "seq": entry.seq,
                "epoch": len(after.index),
                "supply_before": format_units(state.shares, scale),
                "supply_after": format_units(after.shares, scale),
                "remainder_to_treasury": format_units(0, scale),
                "nav_before": format_units(nav_before, terms.quote_asset.scale),
                "nav": nav_payload(terms, after),
            }
        )

    def merge(self, product: str, ratio: str, *, at: datetime | None = None) -> SplitResult:
        """Merge (reverse split) every holder's units, e.g. "5:1"; see `split`."""
        return self.split(product, ratio, kind="merge", at=at)

    def close(self, product: str, *, at: datetime | None = None) -> dict[str, Any]:
        """Close a wiped-out fund: every holder's shares cancelled at zero (one `close`
        entry); the book is then sealed and every fund operation on it refused.
        """
        terms = self.terms(product)
        with self._operation(product) as op:
            moment = op.moment(self._now(at))
            shares = op.state.shares
            draft, after = entries.close_fund(terms, op.state, op.holders(), at=moment)
            entry = op.commit([draft], after, moment)[-1]
        meta = dict(draft.metadata)
        return {
            "product": product,
            "seq": entry.seq,
            "shares_cancelled": format_units(shares, terms.share_asset.scale),
            "holders": int(meta["holders"]),
            "shortfall": meta["shortfall"],
            "closed": True,
        }

    # --- reads --------------------------------------------------------------------------------
    def record(self, product: str) -> FundRecord:
        """Return a product's state record (built once from the journal if it has none)."""
        terms = self.terms(product)
        with self.lg.reading() as unit:  # the record and the head from one snapshot
            found = fund_store.load_record(unit.connection, terms.book)
            current = found is not None and found.seq == unit.head(terms.book)[0]
        if found is not None and current:
            return found
        with self._operation(product) as op:
            return op.record

    def state(self, product: str) -> FundState:
        """Return a product's current state (its state record)."""
        return self.record(product).state

    def nav(self, product: str, *, at: datetime | None = None) -> NavReport:
        """Return NAV per share, equity, supply and effective multiple, now or at `at`."""
        terms = self.terms(product)
        state = self.state(product) if at is None else state_at(self.lg, terms, at)
        payload = nav_payload(terms, state)
        payload["at"] = None if at is None else utc_text(at)
        return NavReport.model_validate(payload)

    def _holders(self, terms: Terms) -> dict[str, int]:
        balances = self.lg.balances(terms.book, asset=terms.share_asset.code)
        return acc.holder_units(balances, terms.share_asset.code)

    def holders(self, product: str) -> HoldersReport:
        """Return every holder with units: their shares under the share index, their units
        and their value at NAV (rounded down), and the split rounding no holder shows."""
        terms = self.terms(product)
        state = self.state(product)
        held = self._holders(terms)
        shares = holder_shares(held, state.index)
        return HoldersReport.model_validate(
            {
                "product": product,
                "nav": nav_payload(terms, state),
                "holders": holder_rows(terms, state, held, shares),
                "remainder": format_units(
                    remainder(state, shares.values()), terms.share_asset.scale
                ),
            }
        )

    def statement(self, product: str, holder: str) -> Statement:
        """Return a holder's entries (mint, redeem, orders, and the splits and merges while
        they held units) with the change of their shares and units, and their position."""
        terms = self.terms(product)
        # The fund's own ids may be read (not minted to); customer ids in their canonical form.
        if holder.lower() not in RESERVED_HOLDER_IDS:
            holder = check_holder_id(holder)
        code = acc.HOLDER_PREFIX + holder
        history = self.lg.history(terms.book, code)
        if not history and holder not in RESERVED_HOLDER_IDS:
            raise Rejected(Reason.UNKNOWN_ACCOUNT, f"{holder} has no entries in {product}")
        state = self.state(product)
        if state.index and history:
            # An index split posts to no holder (a split from before the index is in history).
            first = history[0].seq
            later = [e for e, _ in index_entries(self.lg, terms.book) if e.seq > first]
            history = sorted([*history, *later], key=lambda e: e.seq)
        units = self.lg.balance(terms.book, code, terms.share_asset.code)
        rows = holder_rows(terms, state, {holder: units})
        return Statement.model_validate(
            {
                "product": product,
                "holder": holder,
                "shares": rows[0]["shares"] if rows else format_units(0, terms.share_asset.scale),
                "value": rows[0]["value"] if rows else format_units(0, terms.quote_asset.scale),
                "entries": holder_entries(terms, history, holder),
            }
        )


def params_payload(params: ProductParams) -> dict[str, Any]:
    """Return a product's parameters as JSON-ready text (decimals as strings)."""
    return params.model_dump(mode="json")
