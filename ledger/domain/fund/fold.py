"""The fund fold: a product's state rebuilt from its journal alone, with every fund rule
re-checked entry by entry. `verify` runs it over a product's book; the fund engine uses it to
build the state record of a book that has none yet (a database from before the record).

For each entry the fold recomputes, from the state the entries before it left and the
product's terms, the entry the fund engine must have posted, and compares postings exactly:

- `mark`: from its `price`, P&L = q x (price - basis), the basis being the price of the last
  priced entry (rule `mark_pnl`; `wipeout_due` if the loss took equity to zero or below);
- `wipeout`: from its `price`, only when the mark's loss is at least the equity
  (`wipeout_not_due`);
- `mint`: its `holder` and `cash`, priced at the fold's NAV with the product's fees
  (`mint_price`); `redeem`: its holder's share posting, likewise (`redeem_price`);
- `orders`: the batch its metadata names, each order priced alone in turn and only the net
  traded, the fee saved shared back pro rata (`orders_price`, see `orders.py`);
- `rebalance`: its `price` and `trigger`, the trade to L x E / P, or to zero for `close`
  (`rebalance_target`);
- `accrual`: the management fee and funding for the time from the end of the previous accrual
  (or the first shares) to this entry, pro rata, at its `price` (`accrual`);
- `fee.management`, `funding` (books written before accruals): one day's fee on the equity,
  one day's funding on the position, once per `daily` day (`management_fee`, `funding`);
- `split` / `merge`: its `ratio_num` / `ratio_den` added to the share index, the shares
  outstanding floor(S x num / den), its `shares_after` and `epoch` recorded (`split`); in a
  book from before the index, the ratio over every holder's units, the remainder to the
  treasury;
- with a share index, every order's holders move the shares outstanding by their shares
  under the index, the difference to their units posted to `equity:share-index` (the order's
  own rule);
- `close`: only for a wiped-out fund, every holder's shares cancelled (`close`); after it
  the book takes no entry at all (`sealed`);

at the end, the holders' shares under the index and the shares outstanding differ by no
more than the index splits' rounding can (`share_index`: each split scales the rounding
left so far by its ratio and adds one share base unit per holder with units); and after
every entry: no entry reverses another (`no_reversal`), effective times never go back
(`time_order`), the position's sign is the product's side (`position_side`), and the kind
is one the fund engine writes (`kind`). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from ledger.domain.fund import accounts as acc
from ledger.domain.fund import entries, orders
from ledger.domain.fund.shareindex import INDEX_KEY, index_ratio, shares_of
from ledger.domain.fund.split import index_split, split_shares
from ledger.domain.fund.state import FundState, Index, nav_per_share_units
from ledger.domain.fund.terms import Terms
from ledger.domain.journal import EntryDraft, JournalEntry, Posting
from ledger.domain.money import parse_units
from ledger.errors import LedgerError

FUND_KINDS = frozenset(
    {"mark", "wipeout", "mint", "redeem", "orders", "rebalance", "accrual"}
    | {"fee.management", "funding", "split", "merge", "close"}
)


@dataclass(frozen=True, slots=True)
class FundFinding:
    """The first entry of a product's book that breaks a fund rule."""

    seq: int
    rule: str
    problem: str

    def text(self) -> str:
        """Return the finding as one line: the rule, then what disagrees."""
        return f"fund rule {self.rule}: {self.problem}"


def _same_postings(want: tuple[Posting, ...], got: tuple[Posting, ...]) -> bool:
    """Return whether two entries post the same lines (in any order; the engine's own order
    is the fast path)."""
    return want == got or _lines(want) == _lines(got)


def _lines(postings: Iterable[Posting]) -> list[tuple[str, str, int]]:
    return sorted((p.account, p.asset, p.amount) for p in postings)


@dataclass
class FundFold:
    """Fold a product's entries in sequence order; `apply` returns the first finding."""

    terms: Terms
    state: FundState = field(default_factory=FundState)
    holders: dict[str, int] = field(default_factory=dict)
    seq: int = 0
    last_at: datetime | None = None
    fee_day: date | None = None
    funding_day: date | None = None
    _prices: dict[str, int] = field(default_factory=dict, repr=False)
    order_navs: dict[int, int] = field(default_factory=dict)
    """NAV per share (quote base units, rounded down) that priced each mint and redeem, by seq."""
    rounding_bound: int = 0
    """The most split rounding the index splits so far can leave: each scales what was left
    by its ratio (rounded up) and adds one share base unit per holder with units."""

    def apply_all(self, items: Iterable[JournalEntry]) -> FundFinding | None:
        """Apply entries in order; return the first finding, or None."""
        for entry in items:
            finding = self.apply(entry)
            if finding is not None:
                return finding
        return None

    def apply(self, entry: JournalEntry) -> FundFinding | None:
        """Check one entry against the fund's rules, then fold it into the state (whatever
        the check found, so that a caller may go on past a finding)."""
        self.seq = entry.seq
        meta = dict(entry.draft.metadata)
        finding = self._check(entry, meta)
        grown = len(self.state.index)
        self.absorb(entry, meta)
        if len(self.state.index) > grown:
            # A ratio scales the rounding left so far, and rounds each holder once more (an
            # index split moves no unit: the holders are those it rounded).
            num, den = self.state.index[-1]
            held = sum(1 for units in self.holders.values() if units)
            self.rounding_bound = -(-self.rounding_bound * num // max(den, 1)) + held
        if finding is None and self.state.position * self.terms.multiple[0] < 0:
            return self._finding(entry, "position_side", "the position is on the wrong side")
        return finding

    def _check(self, entry: JournalEntry, meta: dict[str, str]) -> FundFinding | None:
        """Return the rule `entry` breaks, given the state before it, or None."""
        draft = entry.draft
        if self.state.closed:
            return self._finding(entry, "sealed", "the fund was closed: its book takes no entry")
        if draft.reverses is not None or draft.kind not in FUND_KINDS:
            rule = "no_reversal" if draft.reverses is not None else "kind"
            return self._finding(entry, rule, f"a fund book takes no {draft.kind!r} entry")
        if self.last_at is not None and draft.effective_at < self.last_at:
            return self._finding(entry, "time_order", "effective time before the previous entry")
        try:
            expected, _, rule = self._expected(entry, meta)
        except (LedgerError, KeyError, ValueError) as exc:
            return self._finding(entry, _RULES.get(draft.kind, "kind"), str(exc))
        if expected is None or not _same_postings(expected.postings, draft.postings):
            return self._finding(entry, rule, self._mismatch(expected, draft))
        if draft.kind in ("split", "merge") and expected.metadata != draft.metadata:
            return self._finding(entry, rule, "the split's recorded index is not its ratio's")
        if draft.kind == "orders" and expected.metadata != draft.metadata:
            # A batch's postings add its orders up: its fills (what each holder paid, got and
            # was rebated) are checked in its metadata.
            return self._finding(entry, rule, "the batch's recorded fills are not its orders'")
        return None

    def absorb(self, entry: JournalEntry, meta: dict[str, str] | None = None) -> None:
        """Fold one entry into the state as the journal states it, checking nothing.

        Amounts come from the postings, prices from the metadata: the mark basis moves with
        every priced entry (mark, wipe-out, rebalance), the rebalance reference with every
        rebalance, the schedule with every `daily` day.
        """
        terms, state = self.terms, self.state
        draft = entry.draft
        quote, share = terms.quote_asset.code, terms.share_asset.code
        pos = terms.position_asset.code
        collateral, position = state.collateral, state.position
        supply, shortfall, gap = state.supply, state.shortfall, state.index_gap
        for p in draft.postings:
            account, asset, amount = p.account, p.asset, p.amount
            if asset == quote:
                if account == acc.COLLATERAL:
                    collateral += amount
                elif account in (acc.INSURANCE_COVER, acc.SHORTFALL):
                    shortfall -= amount
            elif asset == share:
                if account == acc.SHARES_OUTSTANDING:
                    supply -= amount
                elif account == acc.SHARE_INDEX:
                    supply -= amount
                    gap += amount
                elif account.startswith(acc.HOLDER_PREFIX):
                    holder = account[len(acc.HOLDER_PREFIX) :]
                    self.holders[holder] = self.holders.get(holder, 0) + amount
            elif asset == pos and account == acc.POSITION:
                position += amount
        if meta is None:
            meta = dict(draft.metadata)
        price, mark_price, rebalance_price = state.price, state.mark_price, state.rebalance_price
        if "price" in meta:
            try:
                price = self._price(meta)
            except (LedgerError, ValueError):
                price = state.price
            if draft.kind in ("mark", "wipeout", "rebalance", "mint", "redeem", "orders"):
                mark_price = price  # an order that trades carries its price
            if draft.kind == "rebalance" or (
                draft.kind in ("mint", "orders") and state.position == 0 and position != 0
            ):
                rebalance_price = price  # a rebalance, or an order into no position, sized it
        daily_on = state.daily_on
        if "daily" in meta:
            try:
                day = date.fromisoformat(meta["daily"])
            except ValueError:
                day = None
            if day is not None and (daily_on is None or day > daily_on):
                daily_on = day
        accrued_at = _accrued_at(state.accrued_at, draft, meta, supply)
        index = _index_after(state.index, draft.kind, meta)
        self.state = FundState(
            collateral,
            position,
            supply,
            shortfall,
            price,
            rebalance_price,
            daily_on,
            mark_price,
            accrued_at,
            state.closed or draft.kind == "close",
            index,
            gap,
        )
        self.seq = entry.seq
        self.last_at = draft.effective_at

    def index_finding(self) -> FundFinding | None:
        """Return a finding if the holders' shares under the index exceed the shares
        outstanding, or fall short of them by more than the index splits can round away."""
        state = self.state
        if not state.index:
            return None
        shown = sum(shares_of(units, state.index) for units in self.holders.values())
        left = state.shares - shown
        if 0 <= left <= self.rounding_bound:
            return None
        return FundFinding(
            self.seq,
            "share_index",
            f"the holders show {shown} share units under the index, the shares outstanding are"
            f" {state.shares}: a rounding of {left}, outside 0..{self.rounding_bound}",
        )

    # --- the entry the engine must have posted ------------------------------------------------
    def _expected(
        self, entry: JournalEntry, meta: dict[str, str]
    ) -> tuple[EntryDraft | None, FundState, str]:
        draft = entry.draft
        terms, state = self.terms, self.state
        at, key, kind = draft.effective_at, draft.idempotency_key, draft.kind
        if kind in ("mark", "wipeout"):
            price = self._price(meta)
            # A book from before the insurance cover booked the excess loss as a liability.
            legacy = any(p.account == acc.SHORTFALL for p in draft.postings)
            cover = acc.SHORTFALL if legacy else acc.INSURANCE_COVER
            made, after = entries.mark(terms, state, price=price, at=at, cover=cover)
            if made is not None and made.kind != kind:
                return None, after, "wipeout_due" if made.kind == "wipeout" else "wipeout_not_due"
            return made, after, "mark_pnl" if kind == "mark" else "wipeout_not_due"
        if kind in ("mint", "redeem", "orders"):
            return self._expected_order(entry, meta)
        if kind == "rebalance":
            priced = replace(state, price=self._price(meta))
            trigger = meta["trigger"]
            if trigger == "close":
                made, after = entries.close_position(terms, priced, at=at)
            else:
                made, after = entries.rebalance(terms, priced, at=at, trigger=trigger)
            return made, after, "rebalance_target"
        if kind == "accrual":
            start, end = _utc(meta["from"]), _utc(meta["to"])
            if state.accrued_at is None or start != state.accrued_at or end != at:
                raise ValueError(
                    f"an accrual from {meta['from']} to {meta['to']} does not continue the last"
                    f" one (which ended at {state.accrued_at})"
                )
            priced = replace(state, price=self._price(meta))
            made, after = entries.accrue(terms, priced, at=at, feed_rate=meta.get("funding_rate"))
            return made, after, "accrual"
        if kind == "fee.management":
            day = date.fromisoformat(meta["daily"])
            if self.fee_day is not None and day <= self.fee_day:
                return None, state, "management_fee"
            self.fee_day = day
            made, after = entries.charge_management_fee(terms, state, at=at, day=day)
            return made, after, "management_fee"
        if kind == "funding":
            day = date.fromisoformat(meta["daily"])
            if self.funding_day is not None and day <= self.funding_day:
                return None, state, "funding"
            self.funding_day = day
            priced = replace(state, price=self._price(meta)) if "price" in meta else state
            made, after = entries.pay_funding(terms, priced, at=at, day=day)
            return made, after, "funding"
        if kind == "close":
            made, after = entries.close_fund(terms, state, dict(self.holders), at=at)
            return made, after, "close"
        # split / merge
        num, den = int(meta["ratio_num"]), int(meta["ratio_den"])
        if INDEX_KEY in meta:
            made, after = index_split(terms, state, num=num, den=den, at=at, kind=kind, key=key)
            return made, after, "split"
        if state.index:
            raise ValueError("a split after the share index's first must be an index split")
        made, after, _ = split_shares(
            terms, state, self.holders, num=num, den=den, at=at, kind=kind, key=key
        )
        return made, after, "split"

    def _expected_order(
        self, entry: JournalEntry, meta: dict[str, str]
    ) -> tuple[EntryDraft | None, FundState, str]:
        """The mint, redemption or batch the engine must have posted, at the fold's NAV."""
        draft = entry.draft
        terms, state = self.terms, self.state
        at, key, kind = draft.effective_at, draft.idempotency_key, draft.kind
        if "price" in meta:
            # An order that trades records the price it traded at (the feed's, which the
            # journal may not have seen yet: a price that moved nothing posts nothing).
            state = replace(state, price=self._price(meta))
        if kind == "mint":
            cash = parse_units(meta["cash"], terms.quote_asset.scale, "cash")
            self.order_navs[entry.seq] = nav_per_share_units(terms, state)
            holder = meta["holder"]
            made, after, _ = entries.mint(
                terms,
                state,
                holder=holder,
                cash=cash,
                at=at,
                key=key,
                held=self.holders.get(holder, 0),
            )
            return made, after, "mint_price"
        if kind == "redeem":
            holder = meta["holder"]
            code = acc.holder_account_code(holder)
            if "shares" in meta:  # shares as the holder saw them (a fund with an index)
                shares = parse_units(meta["shares"], terms.share_asset.scale, "shares")
            else:
                shares = -sum(p.amount for p in draft.postings if p.account == code)
            self.order_navs[entry.seq] = nav_per_share_units(terms, state)
            made, after, _ = entries.redeem(
                terms,
                state,
                holder=holder,
                shares=shares,
                held=self.holders.get(holder, 0),
                at=at,
                key=key,
                treasury=self.holders.get("treasury", 0),
            )
            return made, after, "redeem_price"
        if kind == "orders":
            self.order_navs[entry.seq] = nav_per_share_units(terms, state)
            made, after, _ = orders.batch(
                terms, state, orders.orders_of(meta), dict(self.holders), at=at, key=key
            )
            return made, after, "orders_price"
        raise ValueError(f"{kind!r} is not an order")

    def _price(self, meta: dict[str, str]) -> int:
        text = meta["price"]
        price = self._prices.get(text)
        if price is None:  # entries of one tick share its price: parse each text once
            price = parse_units(text, self.terms.quote_asset.scale, "price")
            if price <= 0:
                raise ValueError("price must be positive")
            if len(self._prices) > 100_000:
                self._prices.clear()
            self._prices[text] = price
        return price

    def _mismatch(self, expected: EntryDraft | None, draft: EntryDraft) -> str:
        if expected is None:
            return f"the {draft.kind} entry is not due at this point"
        want = _lines(expected.postings)
        got = _lines(draft.postings)
        diff = [x for x in got if x not in want] or [x for x in want if x not in got]
        first = diff[0] if diff else ("-", "-", 0)
        return (
            f"the {draft.kind} entry posts {_describe(got, first)}, the fund's rules give "
            f"{_describe(want, first)}"
        )

    def _finding(self, entry: JournalEntry, rule: str, problem: str) -> FundFinding:
        return FundFinding(entry.seq, rule, f"entry {entry.seq} ({entry.draft.kind}): {problem}")


def _index_after(index: Index, kind: str, meta: dict[str, str]) -> Index:
    """Return the share index after an entry: one ratio more after an index split."""
    try:
        ratio = index_ratio(kind, meta)
    except ValueError:
        return index  # the check reported it
    return index if ratio is None else (*index, ratio)


def _utc(text: str) -> datetime:
    """Return the time of an accrual's `from` / `to` (ISO 8601 in UTC with Z)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _accrued_at(
    before: datetime | None, draft: EntryDraft, meta: dict[str, str], supply: int
) -> datetime | None:
    """Fees accrue from the first shares on, and from the end of each posted accrual."""
    accrued_at = before
    if draft.kind == "accrual" and "to" in meta:
        try:
            accrued_at = _utc(meta["to"])
        except ValueError:
            accrued_at = draft.effective_at
    if supply == 0:
        return None
    return draft.effective_at if accrued_at is None else accrued_at


_RULES = {
    "mark": "mark_pnl",
    "wipeout": "wipeout_not_due",
    "mint": "mint_price",
    "redeem": "redeem_price",
    "orders": "orders_price",
    "rebalance": "rebalance_target",
    "accrual": "accrual",
    "fee.management": "management_fee",
    "funding": "funding",
    "split": "split",
    "merge": "split",
    "close": "close",
}


def _describe(lines: Sequence[tuple[str, str, int]], near: tuple[str, str, int]) -> str:
    """Return the amount `lines` post to the account and asset of `near` (or 'nothing')."""
    amounts = [u for a, c, u in lines if (a, c) == near[:2]]
    if not amounts:
        return f"nothing to {near[0]}"
    return f"{' + '.join(str(u) for u in amounts)} {near[1]} units to {near[0]}"


def fold_entries(
    terms: Terms, items: Iterable[JournalEntry]
) -> tuple[FundFold, FundFinding | None]:
    """Fold `items` (a whole book, from seq 1) and return the fold and its first finding."""
    fold = FundFold(terms)
    return fold, fold.apply_all(items)
