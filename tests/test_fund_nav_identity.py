"""NAV identity: with no fees and a rebalance at every price, NAV per share follows
NAV_0 x prod(1 + L x r_i) over the fixture's daily closes, within a derived rounding bound;
where 1 + L x r <= 0 the fund is wiped out and the books say so (never a negative NAV).

The bound, derived from the precisions (position 1e-12 of the underlying, quote 1e-6):
at step i the position q_{i-1} = trunc(L E_{i-1} 1e12 / P_{i-1}) differs from the exact one by
less than one base unit, so its P&L differs by < |P_i - P_{i-1}| / 1e12 quote units; the mark
then rounds down by < 1 unit. With e_i = E_i - E*_i (engine minus exact equity):

    |e_i| <= |e_{i-1}| x |1 + L r_i| + |P_i - P_{i-1}| / 1e12 + 1 =: B_i,   B_0 = 0.

NAV per share is floor(E x 1e18 / S) with S = k x 1e18 shares, so it errs by at most
B_i / k + 1 quote units. The test carries B_i exactly in integers (scaled by the product of
the step denominators D_i and by 1e12) alongside the exact product, so nothing is rounded.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ledger.domain.fund.rebalance import on_price
from ledger.domain.fund.state import nav_per_share_units
from ledger.sim.prices import read_bars
from tests.fund.helpers import BTC_CSV, USDT, seeded, zero_fee_terms

# Whole shares minted at NAV 100. BTC3S ends the history at 1.2e-17 of its start (BTC rose
# 75-fold), so the fund must start huge for its equity to stay far above the rounding bound.
SHARES = 10**16
POS_ONE = 10**12


def _closes() -> list[int]:
    return [bar.close for bar in read_bars(BTC_CSV, scale=6)]


@pytest.fixture(scope="module")
def closes() -> list[int]:
    return _closes()


@pytest.mark.parametrize("name", ["BTC1.5L", "BTC3L", "BTC3S", "BTC5L"])
def test_nav_follows_the_product_of_leveraged_returns(name: str, closes: list[int]) -> None:
    """NAV_n = NAV_0 x prod(1 + L r_i) within the derived bound, until 1 + L r <= 0 (wipe-out)."""
    terms = zero_fee_terms(name, adhoc_move="0")  # ad hoc at every price: move >= 0 always
    l_num, l_den = terms.multiple
    state = seeded(terms, cash=SHARES * 100 * USDT, price=closes[0])
    nav0 = terms.nav0_units
    num, den = 1, 1  # exact prod(1 + L r_i) = num / den
    bound_scaled = 0  # B_i x den x 1e12, an integer
    at = datetime(2014, 9, 17, 12, tzinfo=UTC)
    wiped_at = None
    for i in range(1, len(closes)):
        before, now = closes[i - 1], closes[i]
        step_num = l_den * before + l_num * (now - before)  # 1 + L r_i = step_num / step_den
        step_den = l_den * before
        state = on_price(terms, state, price=now, at=at + timedelta(days=i)).state
        if step_num <= 0:
            wiped_at = i
            break
        num, den = num * step_num, den * step_den
        bound_scaled = bound_scaled * step_num + (abs(now - before) + POS_ONE) * den
        # Equity: |E_i - E_0 x num/den| <= B_i, scaled by den x 1e12.
        equity0 = SHARES * nav0
        assert abs(state.collateral * den - equity0 * num) * POS_ONE <= bound_scaled, f"step {i}"
        nav = nav_per_share_units(terms, state)
        # |nav - nav0 x num/den| <= B_i / k + 1, everything multiplied by den x 1e12 x k.
        error = abs(nav * den - nav0 * num) * POS_ONE * SHARES
        assert error <= bound_scaled + den * POS_ONE * SHARES, f"step {i}"
        assert not state.wiped_out
    multiple = l_num / l_den
    if multiple in (1.5, -3):
        assert wiped_at is None  # no daily close moved far enough to wipe these out
    if wiped_at is not None:
        assert state.wiped_out and state.collateral == 0 and state.position == 0
        assert nav_per_share_units(terms, state) == 0 and state.shortfall > 0
    if multiple == 3:
        assert wiped_at is not None
        assert str(read_bars(BTC_CSV, scale=6)[wiped_at].day) == "2020-03-12"
