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

Every write is one kernel call (one DB transaction). State is rebuilt from the journal for
each command (balances plus the latest entries), so the CLI and the API never disagree.
Amounts go in and come out as decimal strings; the journal holds integers.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from ledger.clock import Clock
from ledger.domain.fund import accounts as acc
from ledger.domain.fund import entries
from ledger.domain.fund.product import (
    RESERVED_HOLDER_IDS,
    ProductParams,
    check_holder_id,
    make_params,
)
from ledger.domain.fund.rebalance import on_price
from ledger.domain.fund.split import parse_ratio, policy_ratio, split_shares
from ledger.domain.fund.state import FundState, effective_multiple, nav_per_share_units
from ledger.domain.fund.terms import Terms, quantise_units, terms_of
from ledger.domain.journal import Account, EntryDraft, JournalEntry
from ledger.domain.money import format_units, parse_units
from ledger.errors import Reason, Rejected
from ledger.services.fund_report import (
    entry_summary,
    holder_rows,
    multiple_text,
    nav_payload,
    utc_text,
)
from ledger.services.fund_state import amounts_and_holders, load_state, state_at
from ledger.services.ledger import Ledger
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

    def __init__(self, lg: Ledger, *, clock: Clock | None = None) -> None:
        self.lg = lg
        self.clock = clock or lg.clock

    # --- products -----------------------------------------------------------------------------
    def create_product(self, name: str, **overrides: Any) -> dict[str, Any]:
        """Create a product: its assets, its book and accounts, its recorded parameters.

        Idempotent when the same parameters are given again; refused if they differ.
        """
        params = make_params(name, **overrides)
        terms = terms_of(params)
        existing = fund_store.load_product(self.lg.engine, params.name)
        if existing is not None and existing != params:
            raise Rejected(Reason.DUPLICATE, f"product {name} exists with other parameters")
        for asset in (terms.quote_asset, terms.share_asset, terms.position_asset):
            self.lg.add_asset(asset)
        self.lg.open_accounts(list(acc.chart_of_accounts(terms)))
        if existing is None:
            fund_store.save_product(self.lg.engine, params)
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
        """Return a product's integer terms."""
        return terms_of(self.params(product))

    def _at(self, at: datetime | None, *, books: Iterable[str] = ()) -> datetime:
        """Return the effective time of a command: `at` or now, aware, and not earlier than
        the last entry of any of `books` (a book's effective times never go back).
        """
        moment = at or self.clock.now()
        if moment.tzinfo is None:
            raise Rejected(Reason.BAD_INPUT, f"time {moment.isoformat()} has no time zone")
        for book in books:
            seq = self.lg.head(book)[0]
            if seq == 0:
                continue
            last = self.lg.entry(book, seq).draft.effective_at
            if moment < last:
                raise Rejected(
                    Reason.BAD_INPUT,
                    f"time {utc_text(moment)} is before {book}'s last entry at {utc_text(last)}",
                )
        return moment

    # --- prices -------------------------------------------------------------------------------
    def set_price(self, symbol: str, price: str, *, at: datetime | None = None) -> dict[str, Any]:
        """Apply a price of `symbol` to every product on it: mark, daily events, ad hoc.

        All resulting entries of all products are posted in one transaction.
        """
        value = parse_price(price)
        products = [p for p in fund_store.load_products(self.lg.engine) if p.underlying == symbol]
        moment = self._at(at, books=[p.name for p in products])
        feed = fund_store.latest_price(self.lg.engine, symbol)
        if feed is not None and moment < feed[0]:
            raise Rejected(
                Reason.BAD_INPUT,
                f"time {utc_text(moment)} is before the last {symbol} price at {utc_text(feed[0])}",
            )
        drafts: list[EntryDraft] = []
        reports: list[dict[str, Any]] = []
        for params in products:
            terms = terms_of(params)
            units = quantise_units(value, terms.quote_asset.scale)
            if units <= 0:
                raise Rejected(Reason.BAD_INPUT, f"price {price} rounds to zero units")
            step = on_price(terms, load_state(self.lg, terms), price=units, at=moment)
            made = list(step.drafts)
            state = step.state
            if step.daily:
                made_split, state = self._policy_split(terms, state, moment)
                made.extend(made_split)
            drafts.extend(made)
            reports.append(
                {
                    **nav_payload(terms, state),
                    "daily_rebalance": step.daily,
                    "adhoc_trigger": step.adhoc,
                    "entries": [d.kind for d in made],
                }
            )

        def records(connection: Connection) -> None:
            # The fund's own records commit with the entries, or not at all.
            for report in reports:
                if report["daily_rebalance"]:
                    fund_store.mark_daily(
                        connection, report["product"], moment.astimezone(UTC).date()
                    )
            fund_store.save_prices(connection, [(symbol, moment, str(value))])

        self.lg.post_many(drafts, also=records)
        return {
            "symbol": symbol,
            "price": str(value),
            "at": utc_text(moment),
            "products": reports,
        }

    def _policy_split(
        self, terms: Terms, state: FundState, at: datetime
    ) -> tuple[list[EntryDraft], FundState]:
        due = policy_ratio(terms, state)
        if due is None:
            return [], state
        kind, num, den = due
        draft, state, _ = split_shares(
            terms, state, self._holders(terms), num=num, den=den, at=at, kind=kind
        )
        return [draft], state

    # --- mint and redeem ------------------------------------------------------------------------
    def mint(
        self,
        product: str,
        holder: str,
        *,
        cash: str,
        key: str | None = None,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Issue shares at NAV for `cash` (decimal string of the quote asset).

        Shares round down and the subscription fee rounds up; the dust stays in the fund,
        posted to equity:rounding. A retry under the same key returns the original result.
        """
        terms = self.terms(product)
        holder = check_holder_id(holder)
        cash_units = parse_units(cash, terms.quote_asset.scale, "cash")
        request = ("mint", holder, format_units(cash_units, terms.quote_asset.scale), "")
        done = self._replay(terms.book, key, request)
        if done is not None:
            return {**entry_summary(terms, done), "nav": self.nav(product)}
        state = load_state(self.lg, terms)
        moment = self._at(at)
        draft, _, _ = entries.mint(terms, state, holder=holder, cash=cash_units, at=moment, key=key)
        self._at(moment, books=[terms.book])  # after the quote: a closed fund says so first
        # The holder's account opens in the posting's own transaction: a refusal writes nothing.
        entry = self._post_keyed(
            [draft], request, accounts=[acc.holder_account(terms.book, holder)]
        )
        return {**entry_summary(terms, entry), "nav": self.nav(product)}

    def redeem(
        self,
        product: str,
        holder: str,
        *,
        shares: str,
        key: str | None = None,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Cancel `shares` (decimal string) for cash at NAV, rounded down, less the fee.

        Redeeming the last shares first closes the position in the same transaction (its
        trading fee borne by this redeemer). A retry under the same key returns the original.
        """
        terms = self.terms(product)
        holder = check_holder_id(holder)
        share_units = parse_units(shares, terms.share_asset.scale, "shares")
        if share_units <= 0:
            raise Rejected(Reason.BAD_INPUT, f"shares must be positive, got {shares!r}")
        request = ("redeem", holder, "", str(-share_units))
        done = self._replay(terms.book, key, request)
        if done is not None:
            return {**entry_summary(terms, done), "nav": self.nav(product)}
        held = self.lg.balance(terms.book, acc.holder_account_code(holder), terms.share_asset.code)
        state = load_state(self.lg, terms)
        moment = self._at(at)
        drafts, _, _ = entries.redeem_with_close(
            terms, state, holder=holder, shares=share_units, held=held, at=moment, key=key
        )
        self._at(moment, books=[terms.book])  # after the quote: a closed fund says so first
        entry = self._post_keyed(drafts, request)
        return {**entry_summary(terms, entry), "nav": self.nav(product)}

    def _replay(self, book: str, key: str | None, request: tuple[str, ...]) -> JournalEntry | None:
        """Return the entry already posted under `key` for this same request, or None if the
        key is new; refuse with IDEMPOTENCY_CONFLICT if the key was used for another request.
        """
        if key is None:
            return None
        original = self.lg.entry_with_key(book, key)
        if original is None:
            return None
        seq = original.seq
        if _request_of(original) != request:
            raise Rejected(
                Reason.IDEMPOTENCY_CONFLICT,
                f"key {key!r} was used for another request (entry #{seq} of {book})",
                seq=seq,
            )
        return original

    def _post_keyed(
        self,
        drafts: Sequence[EntryDraft],
        request: tuple[str, ...],
        *,
        accounts: Sequence[Account] = (),
    ) -> JournalEntry:
        """Post `drafts` in one transaction and return the last (the keyed one).

        A concurrent request that took the same key first wins: the same request gets its
        entry back, another is refused.
        """
        last = drafts[-1]
        try:
            return self.lg.post_many(drafts, accounts=accounts)[-1]
        except Rejected as exc:
            if exc.reason is not Reason.IDEMPOTENCY_CONFLICT or last.idempotency_key is None:
                raise
            done = self._replay(last.book, last.idempotency_key, request)
            if done is None:
                raise
            return done

    # --- rebalance, split, merge --------------------------------------------------------------
    def rebalance(self, product: str, *, at: datetime | None = None) -> dict[str, Any]:
        """Trade the position back to multiple x NAV at the last price (trigger "manual")."""
        terms = self.terms(product)
        state = load_state(self.lg, terms)
        if state.price == 0:
            raise Rejected(Reason.NO_PRICE, f"no price for {terms.underlying} yet: run `price`")
        if state.wiped_out:
            raise Rejected(Reason.FUND_WIPED_OUT, f"{product} is wiped out")
        before = effective_multiple(terms, state)
        moment = self._at(at, books=[terms.book])
        draft, after = entries.rebalance(terms, state, at=moment, trigger="manual")
        if draft is not None:
            self.lg.post(draft)
        return {
            "product": product,
            "traded": format_units(after.position - state.position, terms.position_asset.scale),
            "trading_fee": format_units(
                state.collateral - after.collateral, terms.quote_asset.scale
            ),
            "multiple_before": multiple_text(before),
            "nav": nav_payload(terms, after),
        }

    def split(
        self, product: str, ratio: str, *, kind: str = "split", at: datetime | None = None
    ) -> dict[str, Any]:
        """Split ("1:5") or merge ("5:1") every holder's units in one entry; value unchanged."""
        terms = self.terms(product)
        num, den = parse_ratio(ratio, kind=kind)
        moment = self._at(at, books=[terms.book])
        with gc_paused():
            state, holders = amounts_and_holders(self.lg, terms)
            nav_before = nav_per_share_units(terms, state)
            draft, after, _ = split_shares(
                terms, state, holders, num=num, den=den, at=moment, kind=kind
            )
            entry = self.lg.post(draft)
        return {
            "product": product,
            "kind": kind,
            "ratio_num": str(num),
            "ratio_den": str(den),
            "seq": entry.seq,
            "supply_before": format_units(state.supply, terms.share_asset.scale),
            "remainder_to_treasury": format_units(
                int(dict(draft.metadata)["remainder"]), terms.share_asset.scale
            ),
            "nav_before": format_units(nav_before, terms.quote_asset.scale),
            "nav": nav_payload(terms, after),
        }

    def merge(self, product: str, ratio: str, *, at: datetime | None = None) -> dict[str, Any]:
        """Merge (reverse split) every holder's units, e.g. "5:1"; see `split`."""
        return self.split(product, ratio, kind="merge", at=at)

    # --- reads --------------------------------------------------------------------------------
    def state(self, product: str) -> FundState:
        """Return a product's current state rebuilt from the journal."""
        return load_state(self.lg, self.terms(product))

    def nav(self, product: str, *, at: datetime | None = None) -> dict[str, Any]:
        """Return NAV per share, equity, supply and effective multiple, now or at `at`."""
        terms = self.terms(product)
        state = load_state(self.lg, terms) if at is None else state_at(self.lg, terms, at)
        payload = nav_payload(terms, state)
        payload["at"] = None if at is None else utc_text(at)
        return payload

    def _holders(self, terms: Terms) -> dict[str, int]:
        share = terms.share_asset.code
        prefix = acc.HOLDER_PREFIX
        return {
            account[len(prefix) :]: units
            for (account, asset), units in self.lg.balances(terms.book, asset=share).items()
            if account.startswith(prefix)
        }

    def holders(self, product: str) -> dict[str, Any]:
        """Return every holder with shares, their units and their value at NAV (rounded down)."""
        terms = self.terms(product)
        state = load_state(self.lg, terms)
        return {
            "product": product,
            "nav": nav_payload(terms, state),
            "holders": holder_rows(terms, state, self._holders(terms)),
        }

    def statement(self, product: str, holder: str) -> dict[str, Any]:
        """Return a holder's entries (mint, redeem, split, merge) and current position."""
        terms = self.terms(product)
        # The fund's own ids may be read (not minted to); customer ids in their canonical form.
        if holder.lower() not in RESERVED_HOLDER_IDS:
            holder = check_holder_id(holder)
        code = acc.HOLDER_PREFIX + holder
        history = self.lg.history(terms.book, code)
        if not history:
            raise Rejected(Reason.UNKNOWN_ACCOUNT, f"{holder} has no entries in {product}")
        state = load_state(self.lg, terms)
        units = self.lg.balance(terms.book, code, terms.share_asset.code)
        rows = holder_rows(terms, state, {holder: units})
        return {
            "product": product,
            "holder": holder,
            "shares": rows[0]["shares"] if rows else format_units(0, terms.share_asset.scale),
            "value": rows[0]["value"] if rows else format_units(0, terms.quote_asset.scale),
            "entries": [entry_summary(terms, e, holder=holder) for e in history],
        }


def _request_of(entry: JournalEntry) -> tuple[str, ...]:
    """Return what identifies a holder request: kind, holder, cash asked, share units moved."""
    draft = entry.draft
    meta = dict(draft.metadata)
    holder = meta.get("holder", "")
    code = acc.HOLDER_PREFIX + holder
    moved = sum(p.amount for p in draft.postings if p.account == code)
    if draft.kind == "redeem":
        return ("redeem", holder, "", str(moved))
    return (draft.kind, holder, meta.get("cash", ""), "")


def params_payload(params: ProductParams) -> dict[str, Any]:
    """Return a product's parameters as JSON-ready text (decimals as strings)."""
    return params.model_dump(mode="json")
