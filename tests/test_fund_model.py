"""A stateful property test of the fund's economics against an independent model.

Several holders mint and redeem random amounts of a 3x long fund with every fee on, prices move
(jumps included), business time advances by random amounts (across the daily 00:02 rebalance,
past the 60 s price age), and splits and merges happen, all through the public API on SQLite.
The model below is written here, in exact fractions, from the rules in docs/funds.md (not the
engine's code): it predicts every refusal for a stale price, every holder's shares, and the
NAV per share after every step. After every step:

- every entry balances (the kernel's verify) and the fund audit passes;
- the holders' values at NAV sum to the equity within one quote unit per holder;
- every mint and redemption left the other holders' NAV per share unchanged within a few quote
  units per share, and only in the fund's favour, and the effective multiple unchanged within
  the position's precision;
- the engine's NAV per share equals the model's within the rounding the engine states
  (base units of each amount), accumulated over the steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule

from ledger.clock import FixedClock
from ledger.domain.fund.shareindex import shares_of
from ledger.domain.money import format_units
from ledger.errors import Reason, Rejected
from ledger.services.audit import verify_book
from ledger.services.funds import Funds
from ledger.services.ledger import open_ledger
from tests.fund.machines import FreshDatabaseMachine, run_machine, sqlite_urls

BOOK = "BTC3L"
L = 3
SUB, RED, TRADE = Fraction(1, 1000), Fraction(1, 1000), Fraction(5, 10_000)
MGMT, FUNDING = Fraction(3, 10_000), Fraction(3, 10_000)  # per day
NAV0 = Fraction(100)
DAY = timedelta(days=1)
HOLDERS = ("alice", "bob", "carol")
T0 = datetime(2024, 3, 1, 23, 0, tzinfo=UTC)
USDT = Fraction(1, 10**6)


@dataclass
class Model:
    """The fund in exact fractions: equity E, position q (BTC), supply S, price P."""

    equity: Fraction = Fraction(0)
    position: Fraction = Fraction(0)
    supply: Fraction = Fraction(0)
    price: Fraction = Fraction(0)
    price_at: datetime | None = None
    accrued_at: datetime | None = None
    daily_on: object = None
    holders: dict[str, Fraction] = field(default_factory=dict)

    @property
    def nav(self) -> Fraction:
        return self.equity / self.supply if self.supply else NAV0

    @property
    def multiple(self) -> Fraction:
        return self.position * self.price / self.equity if self.equity else Fraction(0)

    def accrue(self, at: datetime) -> None:
        if not self.supply:
            self.accrued_at = None
            return
        if self.accrued_at is None:
            self.accrued_at = at
            return
        days = Fraction(int((at - self.accrued_at).total_seconds() * 10**6), 86_400 * 10**6)
        self.equity -= self.equity * MGMT * days + self.position * self.price * FUNDING * days
        self.accrued_at = at

    @property
    def wiped_out(self) -> bool:
        return self.supply > 0 and self.equity == 0 and self.position == 0

    def on_price(self, price: Fraction, at: datetime) -> None:
        self.equity += self.position * (price - self.price) if self.price else 0
        if self.equity <= 0 and self.supply:  # the loss took the equity: a wipe-out
            self.equity, self.position = Fraction(0), Fraction(0)
        self.price, self.price_at = price, at
        self.accrue(at)
        day = at.date()
        if at.time() >= time(0, 2) and self.daily_on != day:
            self.daily_on = day
            if self.supply and self.equity > 0:
                target = L * self.equity / price
                self.equity -= abs(target - self.position) * price * TRADE
                self.position = target

    def mint(self, holder: str, cash: Fraction, at: datetime) -> Fraction:
        self.accrue(at)
        net = cash * (1 - SUB)
        m = abs(self.multiple) if self.supply else Fraction(L)
        equity = net / (1 + m * TRADE)
        shares = equity / self.nav
        trade = self.position * equity / self.equity if self.supply else L * equity / self.price
        self.equity += equity
        self.position += trade
        if not self.supply:
            self.accrued_at = at
        self.supply += shares
        self.holders[holder] = self.holders.get(holder, Fraction(0)) + shares
        return shares

    def redeem(self, holder: str, shares: Fraction, at: datetime) -> None:
        self.accrue(at)
        part = shares * self.equity / self.supply
        trade = -self.position * shares / self.supply
        self.equity -= part  # the trade's fee is the redeemer's, out of `part`
        self.position += trade
        self.supply -= shares
        self.holders[holder] -= shares
        if not self.supply:
            self.accrued_at = None

    def rescale(self, factor: Fraction) -> None:
        self.supply *= factor
        self.holders = {h: u * factor for h, u in self.holders.items()}


class FundEconomics(FreshDatabaseMachine):
    @initialize()
    def setup(self) -> None:
        self.clock = FixedClock(T0)
        self.lg = open_ledger(self.url, clock=self.clock)
        self.lg.init()
        self.funds = Funds(self.lg)
        self.funds.create_product(
            BOOK, adhoc_move=None, leverage_band=None, merge_nav_below=None, split_nav_above=None
        )
        self.model = Model()
        self.quote = 50_000 * 10**6
        self.steps = 0
        self.relative = Fraction(0)  # bound of the NAV's relative error so far
        self.share_error = Fraction(0)  # what the rounding of orders can move the supply by
        self._price()

    # --- helpers -------------------------------------------------------------------------------
    def _price(self) -> None:
        at = self.clock.now()
        self.funds.set_price("BTC", format_units(self.quote, 6), at=at)
        self.model.on_price(Fraction(self.quote, 10**6), at)

    def _nav(self) -> Fraction:
        state = self.funds.state(BOOK)
        return Fraction(state.collateral, state.shares) * 10**12 if state.supply else NAV0

    def _slack(self) -> Fraction:
        """The most the shares one order shows can differ from its units x the index, in
        shares: each ratio's rounding down (< 1 base unit) scaled by the ratios after it,
        and one unit (worth the whole index) that a redemption may cancel beyond the shares
        asked. 1e-18 without an index."""
        index = self.funds.state(BOOK).index
        ratios = [Fraction(num, den) for num, den in index]
        slack, scale = Fraction(1), Fraction(1)
        for ratio in reversed(ratios):
            slack += scale
            scale *= ratio
        return (slack + scale) / 10**18 if index else Fraction(1, 10**18)

    def _held(self, holder: str) -> int:
        """The holder's shares as the engine shows them (their units under the share index)."""
        units = self.lg.balance(BOOK, f"holder:{holder}", BOOK)
        return shares_of(units, self.funds.state(BOOK).index)

    def _step(self) -> None:
        """Each step rounds each of its amounts by at most a base unit or two (mark, accrual,
        trading fee, order equity; the position's 1e-12 BTC is far below that), so the NAV's
        relative error grows by at most a few units over the equity at that step, more on a
        higher multiple (the rounding of the position's P&L)."""
        self.steps += 1
        if self.model.equity > 0:
            self.relative += 40 * USDT * (1 + abs(self.model.multiple)) / self.model.equity

    def _stale(self) -> bool:
        at, seen = self.clock.now(), self.model.price_at
        return seen is None or at - seen > timedelta(seconds=60)

    # --- rules ---------------------------------------------------------------------------------
    @rule(seconds=st.sampled_from([1, 20, 59, 61, 3600, 6 * 3600, 25 * 3600]))
    def time_passes(self, seconds: int) -> None:
        self.clock.moment = self.clock.moment + timedelta(seconds=seconds)

    @rule(move=st.sampled_from([-40, -15, -5, 0, 5, 15, 40]))
    def price(self, move: int) -> None:
        """Moves of up to 4%: a run of falls without a daily rebalance can wipe a 3x out."""
        self.quote = self.quote * (1000 + move) // 1000
        self._price()
        self._step()

    @rule(holder=st.sampled_from(HOLDERS), cash=st.integers(10, 50_000))
    def mint(self, holder: str, cash: int) -> None:
        out = self._order(lambda: self.funds.mint(BOOK, holder, cash=str(cash)))
        if out is None:
            return
        self._check_order(out)
        # The order is priced at the engine's NAV, which carries the equity's rounding so far.
        relative = self.relative if self.model.supply else Fraction(0)
        minted = self.model.mint(holder, Fraction(cash), self.clock.now())
        self.share_error += minted * relative + 2 * USDT / self.model.nav + self._slack()
        self._step()

    @rule(holder=st.sampled_from(HOLDERS), percent=st.sampled_from([10, 50, 100]))
    def redeem(self, holder: str, percent: int) -> None:
        held = self._held(holder)
        units = held * percent // 100
        if units == 0:
            return
        stale = self._stale()
        try:
            out = self.funds.redeem(BOOK, holder, shares=format_units(units, 18))
        except Rejected as exc:
            if exc.reason is Reason.BELOW_MINIMUM:
                return
            if self.model.wiped_out:
                assert exc.reason is Reason.FUND_WIPED_OUT, exc
                return
            assert stale and exc.reason is Reason.STALE_PRICE, exc
            return
        assert not stale and not self.model.wiped_out
        self._check_order(out)
        # The model redeems the same part of its own (exact) holding: all of it for 100%.
        part = self.model.holders[holder] * percent / 100 if units < held or percent == 100 else 0
        self.model.redeem(holder, part, self.clock.now())
        self.share_error += self._slack()
        self._step()

    @rule(
        minter=st.sampled_from(HOLDERS),
        cash=st.integers(10, 50_000),
        redeemer=st.sampled_from(HOLDERS),
        percent=st.sampled_from([10, 50, 100]),
    )
    def batch(self, minter: str, cash: int, redeemer: str, percent: int) -> None:
        """A mint and a redemption that arrive together: one netted `orders` entry. The
        model prices them one after the other at full trading fee (the netting's saving goes
        back to the two orders, not to the fund), so its prediction is the two orders'."""
        held = self._held(redeemer)
        units = held * percent // 100
        items = [{"side": "mint", "holder": minter, "cash": str(cash)}]
        if units:
            items.append({"side": "redeem", "holder": redeemer, "shares": format_units(units, 18)})
        out = self._order(lambda: self.funds.orders(BOOK, items), small=Reason.BELOW_MINIMUM)
        if out is None:
            return
        self._check_order(out)
        assert out.trading_fee_saved >= 0 and all(f.rebate >= 0 for f in out.fills)
        relative = self.relative if self.model.supply else Fraction(0)
        now = self.clock.now()
        exact = self.model.holders.get(redeemer, Fraction(0))
        minted = self.model.mint(minter, Fraction(cash), now)
        self.share_error += minted * relative + 2 * USDT / self.model.nav + 2 * self._slack()
        if units:
            part = exact * percent / 100 if units < held or percent == 100 else Fraction(0)
            self.model.redeem(redeemer, part, now)
        self._step()

    @rule(ratio=st.sampled_from(["1:10", "10:1"]))
    def split(self, ratio: str) -> None:
        kind = "split" if ratio == "1:10" else "merge"
        try:
            self.funds.split(BOOK, ratio, kind=kind)
        except Rejected as exc:
            wanted = Reason.FUND_WIPED_OUT if self.model.wiped_out else Reason.BAD_INPUT
            assert exc.reason is wanted, exc  # a wiped-out fund, or no shares to split
            return
        self.model.accrue(self.clock.now())
        factor = Fraction(10) if kind == "split" else Fraction(1, 10)
        self.model.rescale(factor)
        # The shares outstanding become floor(S x factor): one more base unit of rounding.
        self.share_error = self.share_error * factor + Fraction(1, 10**18)
        self._step()

    def _order(self, call: Callable[[], Any], small: Reason | None = None) -> Any:
        """Return the result of an order, or None when the engine refused it exactly as the
        model predicts (a stale or missing price, a wiped-out fund; `small`: too small)."""
        stale = self._stale()
        try:
            out = call()
        except Rejected as exc:
            if exc.reason is small:
                return None
            if self.model.wiped_out:
                assert exc.reason is Reason.FUND_WIPED_OUT, exc
                return None
            assert stale and exc.reason in (Reason.STALE_PRICE, Reason.NO_PRICE), exc
            return None
        assert not stale and not self.model.wiped_out
        return out

    def _check_order(self, out: object) -> None:
        """The order left the other holders' NAV per share unchanged (fund's favour only)."""
        before = Fraction(str(out.priced_at_nav))  # type: ignore[attr-defined]
        after = self._nav()
        state = self.funds.state(BOOK)
        if state.supply == 0:
            return
        shares = Fraction(state.shares, 10**18)
        # Priced per unit, the order leaves the others' value per unit as it was (in their
        # favour only); per share, the shares it shows under the index round (`_slack`).
        shown = self._slack() / shares
        assert after >= before - USDT - 2 * after * shown  # `before` is shown rounded down
        # Gained by the others at most the displayed NAV's rounding and a few units of dust.
        assert after - before <= USDT + 10 * USDT / shares + 2 * after * shown

    # --- invariants ----------------------------------------------------------------------------
    @invariant()
    def engine_equals_the_model(self) -> None:
        if not hasattr(self, "model"):
            return
        state = self.funds.state(BOOK)
        model = self.model
        rel = self.relative
        engine_equity = Fraction(state.collateral, 10**6)
        assert abs(engine_equity - model.equity) <= model.equity * rel + 40 * USDT, (
            engine_equity,
            model.equity,
        )
        shares = Fraction(state.shares, 10**18)
        # An order's equity is rounded down to a quote unit (its shares by 1 unit / NAV), and
        # it is priced at the engine's NAV, which carries the relative error so far.
        assert abs(shares - model.supply) <= self.share_error + Fraction(1, 10**15), (
            shares,
            model.supply,
        )
        if model.supply and model.equity > 1:
            nav = self._nav()
            assert abs(nav - model.nav) <= model.nav * (rel + self.share_error / model.supply) + (
                2 * USDT
            ), (nav, model.nav)
            engine_multiple = Fraction(state.position * state.price, 10**12 * state.collateral)
            assert abs(engine_multiple - model.multiple) <= abs(
                model.multiple
            ) * 2 * rel + Fraction(1, 10**9), (engine_multiple, model.multiple)
        # The holders' values at NAV (each rounded down) sum to the equity within a unit each.
        if state.supply:
            values = [
                units * state.collateral // state.supply
                for (account, _), units in self.lg.balances(BOOK, asset=BOOK).items()
                if account.startswith("holder:")
            ]
            assert 0 <= state.collateral - sum(values) <= len(values)

    def teardown(self) -> None:
        if hasattr(self, "lg"):
            assert verify_book(self.lg, BOOK).ok
            self.lg.close()


def test_fund_economics_match_an_independent_model(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    run_machine(FundEconomics, sqlite_urls(tmp_path_factory, "eco"), examples=200, steps=30)


@pytest.mark.postgres
def test_fund_economics_match_an_independent_model_postgres(pg_url: str) -> None:
    """The same machine on PostgreSQL (fewer examples: each opens a schema on the server)."""
    from tests.conftest import PG_URL
    from tests.fund.machines import postgres_schemas

    with postgres_schemas(PG_URL) as new_url:
        run_machine(FundEconomics, new_url, examples=12, steps=30)
