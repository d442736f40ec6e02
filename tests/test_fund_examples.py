"""The reference's worked examples, with exact numbers: 3x long and short after +5%, the FTX
FAQ table and the sideways decay."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, localcontext
from fractions import Fraction

import pytest

from ledger.clock import FixedClock
from ledger.domain.fund.state import effective_multiple, exposure_units, nav_per_share_units
from ledger.services.funds import Funds
from ledger.services.ledger import open_ledger
from ledger.sim.prices import read_bars
from tests.fund.helpers import REPO, USDT, ZERO_FEES, follow, seeded, zero_fee_terms

BTC_ONE = 10**12  # position base units per BTC
SIDEWAYS_CSV = REPO / "fixtures" / "sideways-10-days.csv"


def _decimal(num: int, den: int) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 28
        return Decimal(num) / Decimal(den)


def test_three_x_long_plus_five_percent_exact() -> None:
    """3x long, NAV 100 at BTC 100: +5% gives NAV 115, multiple 315/115, rebalance buys 30 USDT."""
    terms = zero_fee_terms("BTC3L")
    state = seeded(terms, cash=100 * USDT, price=100 * USDT)
    assert state.position == 3 * BTC_ONE and exposure_units(terms, state) == 300 * USDT
    [after] = follow(terms, state, [105 * USDT])  # daily rebalance at this price follows
    # The mark alone: equity 115, exposure 315, multiple 315/115.
    from ledger.domain.fund import entries

    _, marked = entries.mark(terms, state, price=105 * USDT, at=datetime(2020, 1, 2, tzinfo=UTC))
    assert marked.collateral == 115 * USDT
    assert nav_per_share_units(terms, marked) == 115 * USDT
    assert exposure_units(terms, marked) == 315 * USDT
    assert effective_multiple(terms, marked) == _decimal(315, 115)  # 2.739130434782608695652173913
    # The rebalance: target 345 USDT = 3.285714285714 BTC (toward zero), i.e. buy 30 USDT.
    trade = after.position - state.position
    assert trade == 285_714_285_714  # 0.285714285714 BTC
    assert 30 * USDT - 1 <= trade * 105 * USDT // BTC_ONE <= 30 * USDT
    assert exposure_units(terms, after) == 345 * USDT - 1  # rounded toward zero, never above 3x


def test_three_x_short_plus_five_percent_exact() -> None:
    """3x short, NAV 100 at BTC 100: +5% gives NAV 85, multiple -315/85; buy back 60 USDT."""
    terms = zero_fee_terms("BTC3S")
    state = seeded(terms, cash=100 * USDT, price=100 * USDT)
    assert state.position == -3 * BTC_ONE
    from ledger.domain.fund import entries

    _, marked = entries.mark(terms, state, price=105 * USDT, at=datetime(2020, 1, 2, tzinfo=UTC))
    assert nav_per_share_units(terms, marked) == 85 * USDT
    assert effective_multiple(terms, marked) == -_decimal(315, 85)  # -3.705882352941176470588235294
    [after] = follow(terms, state, [105 * USDT])
    trade = after.position - state.position
    assert trade == 571_428_571_429  # buy back 0.571428571429 BTC (target -2.428571428571)
    assert 60 * USDT <= trade * 105 * USDT // BTC_ONE <= 60 * USDT + 1
    assert exposure_units(terms, after) == -255 * USDT + 1


@pytest.mark.parametrize(
    ("path", "expected", "half_digit"),
    [
        ([11_000, 10_000], Fraction(-54545, 1_000_000), Fraction(5, 10**7)),  # -5.4545%
        ([11_000, 12_100], Fraction(69, 100), Fraction(5, 10**3)),  # +69%
        ([9_500, 9_000], Fraction(-2842, 10_000), Fraction(5, 10**5)),  # -28.42%
    ],
)
def test_ftx_faq_table(path: list[int], expected: Fraction, half_digit: Fraction) -> None:
    """FTX's FAQ: BTC 10k->11k->10k is -5.4545% for 3x BULL, ->12.1k +69%, 10k->9.5k->9k -28.42%."""
    terms = zero_fee_terms("BTC3L")
    start = seeded(terms, cash=1_000_000 * USDT, price=10_000 * USDT)
    final = follow(terms, start, [p * USDT for p in path])[-1]
    change = Fraction(nav_per_share_units(terms, final), terms.nav0_units) - 1
    assert abs(change - expected) <= half_digit  # within half the FAQ's last printed digit
    # And exactly, within the rounding bound: each step's position rounds toward zero and its
    # mark rounds down, < 2 quote units per step on 10,000 shares, so < 1 unit of NAV.
    exact = Fraction(1)
    for before, now in zip([10_000, *path], path, strict=False):
        exact *= 1 + 3 * Fraction(now - before, before)
    assert abs(Fraction(nav_per_share_units(terms, final), terms.nav0_units) - exact) <= Fraction(
        1, terms.nav0_units
    )


@pytest.mark.parametrize(
    ("name", "reference"),
    [("BTC1L", "100"), ("BTC3L", "75.5445729862"), ("BTC3S", "56.1263697090")],
)
def test_sideways_decay(name: str, reference: str) -> None:
    """fixtures/sideways-10-days.csv (+10% then back, five times), daily rebalance, no fees:
    1x ends at 100, 3L at 75.5445729862, 3S at 56.1263697090 (volatility decay).

    Bound: per step the position rounds toward zero (< 1e-12 BTC, i.e. < P x 1e-12 quote units)
    and the mark rounds down (< 1 unit), so each step errs by < 2 quote base units; ten steps
    on 1,000,000 shares' worth of equity stay far within 1 unit of NAV per share.
    """
    terms = zero_fee_terms(name)
    start = seeded(terms, cash=100_000_000 * USDT, price=100 * USDT)  # 1,000,000 shares
    closes = [bar.close for bar in read_bars(SIDEWAYS_CSV, scale=6)]
    assert closes == [110 * USDT, 100 * USDT] * 5
    final = follow(terms, start, closes)[-1]
    nav = nav_per_share_units(terms, final)
    exact = (
        Fraction(100)
        * (
            (1 + Fraction(terms.multiple[0], terms.multiple[1]) * Fraction(1, 10))
            * (1 - Fraction(terms.multiple[0], terms.multiple[1]) * Fraction(1, 11))
        )
        ** 5
    )
    assert abs(Fraction(nav, USDT) - exact) <= Fraction(1, USDT)
    assert abs(Fraction(nav, USDT) - Fraction(reference)) <= Fraction(1, USDT)
    if name != "BTC1L":
        assert nav < terms.nav0_units  # decay: back at the start price, below the start NAV


def test_worked_example_through_the_books(tmp_path: object) -> None:
    """The 3x long example through the service: entries posted, NAV read back from the journal."""
    clock = FixedClock(datetime(2020, 1, 1, 1, tzinfo=UTC))
    lg = open_ledger(f"sqlite:///{tmp_path}/w.db", clock=clock)
    lg.init()
    funds = Funds(lg)
    funds.create_product("BTC3L", **ZERO_FEES, adhoc_move=None, leverage_band=None)
    funds.set_price("BTC", "100")
    funds.mint("BTC3L", "alice", cash="100")
    funds.rebalance("BTC3L")
    clock.moment = datetime(2020, 1, 1, 2, tzinfo=UTC)
    report = funds.set_price("BTC", "105")["products"][0]
    assert report["entries"] == ["mark"]  # the daily already ran at the first price
    nav = funds.nav("BTC3L")
    assert nav["nav_per_share"] == "115.000000"
    assert nav["effective_multiple"] == "2.739130434783"
    done = funds.rebalance("BTC3L")
    assert done["traded"] == "0.285714285714"
    assert funds.nav("BTC3L")["effective_multiple"] == "3.000000000000"
    assert lg.verify("BTC3L").ok
