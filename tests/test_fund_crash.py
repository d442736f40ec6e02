"""The 2020-03-12 crash (open 7913.62, high 7929.12, low 4860.35, close 4970.79) fed as a
price feed delivers it: a 3x long with a 10% ad-hoc trigger survives by rebalancing on the way
down and ends at the NAV those rules imply; without ad hoc, or fed only the four OHLC points,
its equity would go below zero and the books say so honestly."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import pytest

from ledger.clock import FixedClock
from ledger.domain.fund import accounts as acc
from ledger.domain.money import format_units
from ledger.errors import Reason, Rejected
from ledger.services.funds import Funds
from ledger.services.ledger import open_ledger
from ledger.sim.prices import Bar, Tick, read_bars, walk
from tests.fund.helpers import BTC_CSV, ZERO_FEES

SHARES = 10_000  # minted at NAV 100: 1,000,000 USDT of equity
STEP = (25, 1000)  # the feed steps by at most 2.5%, finer than the 10% trigger


@pytest.fixture(scope="module")
def crash_bar() -> Bar:
    [bar] = [b for b in read_bars(BTC_CSV, scale=6) if str(b.day) == "2020-03-12"]
    assert (bar.open, bar.high, bar.low, bar.close) == (
        7913_616211,
        7929_116211,
        4860_354004,
        4970_788086,
    )
    return bar


@pytest.fixture
def funds(tmp_path: Path) -> Iterator[Funds]:
    clock = FixedClock(datetime(2020, 3, 12, tzinfo=UTC))
    lg = open_ledger(f"sqlite:///{tmp_path / 'crash.db'}", clock=clock)
    lg.init()
    yield Funds(lg)
    lg.close()


def _seed(funds: Funds, bar: Bar, **params: object) -> None:
    """A 3x long at the open, fees zero, the day's scheduled rebalance already done at 00:00."""
    funds.create_product("BTC3L", **ZERO_FEES, rebalance_time="00:00", leverage_band=None, **params)
    start = datetime(2020, 3, 12, tzinfo=UTC)
    funds.set_price("BTC", format_units(bar.open, 6), at=start)
    funds.mint("BTC3L", "alice", cash=str(SHARES * 100), at=start)
    funds.rebalance("BTC3L", at=start)


def _feed(funds: Funds, ticks: list[Tick]) -> list[dict[str, object]]:
    return [
        funds.set_price("BTC", format_units(t.price, 6), at=t.at)["products"][0] for t in ticks[1:]
    ]


def _independent_nav(ticks: list[Tick]) -> Fraction:
    """Apply the rules in exact fractions: mark each tick; rebalance to 3x on a 10% move."""
    price = Fraction(ticks[0].price, 10**6)
    equity = Fraction(SHARES * 100)
    position = 3 * equity / price
    anchor = price
    for tick in ticks[1:]:
        now = Fraction(tick.price, 10**6)
        equity += position * (now - price)
        price = now
        if abs(now - anchor) >= anchor / 10:
            position, anchor = 3 * equity / now, now
    return equity / SHARES


def test_adhoc_rebalancing_survives_the_crash(funds: Funds, crash_bar: Bar) -> None:
    """With a 10% trigger and a fine feed the fund rebalances several times and survives."""
    _seed(funds, crash_bar, adhoc_move="0.1")
    ticks = list(walk(crash_bar, step=STEP))
    reports = _feed(funds, ticks)
    adhoc = [r for r in reports if r["adhoc_trigger"] == "move"]
    assert len(adhoc) >= 3
    nav = funds.nav("BTC3L")
    assert nav["wiped_out"] is False
    expected = _independent_nav(ticks)
    # Each tick errs by < 2 quote units (position toward zero, mark rounded down): < 60 units on
    # 10,000 shares is below one unit of NAV per share, plus one for NAV's own floor.
    got = Fraction(nav["nav_per_share"])
    assert abs(got - expected) <= Fraction(2, 10**6), (got, float(expected))  # float-ok: message
    assert got < 100  # it survived, with heavy losses
    assert funds.lg.verify("BTC3L").ok


@pytest.mark.parametrize("feed", ["adhoc_off", "four_points"])
def test_without_adhoc_or_with_four_points_the_books_record_the_wipeout(
    funds: Funds, crash_bar: Bar, feed: str
) -> None:
    """Equity would go below zero: a wipe-out entry books the loss and the shortfall, NAV shows
    0, mint and redeem are refused, and the chain still verifies."""
    if feed == "adhoc_off":
        _seed(funds, crash_bar, adhoc_move=None)
        ticks = list(walk(crash_bar, step=STEP))
    else:
        _seed(funds, crash_bar, adhoc_move="0.1")
        stamps = [datetime(2020, 3, 12, h, tzinfo=UTC) for h in (0, 8, 16, 23)]
        prices = [crash_bar.open, crash_bar.high, crash_bar.low, crash_bar.close]
        ticks = [Tick(at, p) for at, p in zip(stamps, prices, strict=True)]
    reports = _feed(funds, ticks)
    assert any("wipeout" in r["entries"] for r in reports)  # type: ignore[operator]
    nav = funds.nav("BTC3L")
    assert nav["wiped_out"] is True
    assert nav["nav_per_share"] == "0.000000" and nav["equity"] == "0.000000"
    assert Fraction(nav["shortfall"]) > 0
    balances = funds.lg.balances("BTC3L")
    assert (acc.COLLATERAL, "USDT") not in balances  # zero: written off
    assert balances[(acc.INSURANCE_COVER, "USDT")] < 0  # the loss the insurance fund bore
    assert (acc.SHORTFALL, "USDT") not in balances  # the fund owes nothing
    assert (acc.POSITION, "BTC-PERP") not in balances  # the position was closed
    [wipe] = [e for e in funds.lg.entries("BTC3L") if e.draft.kind == "wipeout"]
    meta = dict(wipe.draft.metadata)
    assert Fraction(meta["loss"]) == Fraction(meta["equity_before"]) + Fraction(meta["shortfall"])
    for attempt in (
        lambda: funds.mint("BTC3L", "bob", cash="100"),
        lambda: funds.redeem("BTC3L", "alice", shares="1"),
    ):
        with pytest.raises(Rejected) as caught:
            attempt()
        assert caught.value.reason is Reason.FUND_WIPED_OUT
    assert funds.lg.verify("BTC3L").ok
