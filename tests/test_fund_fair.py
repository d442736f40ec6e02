"""Fair orders: a mint or a redemption trades its own part of the position, so it leaves every
other holder's NAV per share and effective multiple as they were; orders need a fresh price.

The expectations are computed here in exact fractions from the reference's worked examples
(shared/reference/leveraged-tokens.md, examples 7 and 8) and from the issue's scenarios, not
from the engine's formulas.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.clock import FixedClock
from ledger.domain.fund import entries
from ledger.domain.fund.state import FundState, nav_per_share_units
from ledger.errors import Reason, Rejected
from ledger.services.audit import verify_book
from ledger.services.funds import Funds
from ledger.services.ledger import open_ledger
from tests.fund.helpers import USDT, zero_fee_terms

T0 = datetime(2026, 1, 5, 0, 5, tzinfo=UTC)
AT = datetime(2024, 1, 1, tzinfo=UTC)
BTC = 10**12  # position base units per BTC
SHARE = 10**18


def _new_funds(tmp_path: Path) -> Funds:
    """A fund engine over a new SQLite file, its clock at T0."""
    lg = open_ledger(f"sqlite:///{tmp_path / 'funds.db'}", clock=FixedClock(T0))
    lg.init()
    return Funds(lg)


CARRY_ONLY = {  # every cost zero but the management fee and funding
    "subscription_fee": "0",
    "redemption_fee": "0",
    "trading_fee": "0",
    "adhoc_move": None,
    "leverage_band": None,
}


def _multiple(state: FundState) -> Fraction:
    return Fraction(state.position * state.price, BTC * state.collateral)


def test_reference_example_7_fair_mint_exact() -> None:
    """10 shares at NAV 100, 30 BTC at 100; a mint of 9,000 with a 0.05% trading fee:
    N = 9,000 / 1.0015 = 8,986.5202196705 (8,986.520219 in whole units), trade 3 N / 100,
    fee 0.05% of its notional; N + fee = 9,000; NAV and multiple unchanged."""
    terms = zero_fee_terms("BTC3L", trading_fee="0.0005")
    state = FundState(
        collateral=1000 * USDT, position=30 * BTC, supply=10 * SHARE, price=100 * USDT
    )
    _, after, quote = entries.mint(terms, state, holder="bob", cash=9000 * USDT, at=AT)
    exact_n = Fraction(9000) / Fraction(10015, 10000)
    assert quote.used == 8_986_520_219 == int(exact_n * USDT)  # rounded down
    assert quote.shares == 89_865_202_190_000_000_000  # N / NAV 100, in share units
    assert quote.trade == 269_595_606_570_000  # 3 x N / 100 BTC, toward zero
    assert quote.trade_fee == 13_479_781  # 269.59560657 x 100 x 0.0005 = 13.4797803.. up
    assert quote.used + quote.trade_fee + quote.dust == 9000 * USDT
    assert quote.dust == 0
    assert nav_per_share_units(terms, after) == 100 * USDT
    assert _multiple(after) == 3


def test_reference_example_8_fair_redemption_exact() -> None:
    """100 shares at NAV 100, 300 BTC at 100; redeeming 90 sells 270 BTC (notional 27,000),
    the redeemer bears 13.5 of trading fee: proceeds 8,986.5 before the redemption fee. The
    10 shares left: equity 1,000, 30 BTC, multiple 3; BTC -3% then costs them 9%."""
    terms = zero_fee_terms("BTC3L", trading_fee="0.0005")
    state = FundState(
        collateral=10_000 * USDT,
        position=300 * BTC,
        supply=100 * SHARE,
        price=100 * USDT,
        mark_price=100 * USDT,
    )
    _, after, quote = entries.redeem(
        terms, state, holder="bob", shares=90 * SHARE, held=90 * SHARE, at=AT
    )
    assert (quote.trade, quote.trade_fee, quote.gross) == (-270 * BTC, 13_500_000, 8_986_500_000)
    assert (after.collateral, after.position, after.supply) == (1000 * USDT, 30 * BTC, 10 * SHARE)
    assert _multiple(after) == 3
    _, moved = entries.mark(terms, after, price=97 * USDT, at=AT)
    assert Fraction(moved.collateral, after.collateral) == Fraction(91, 100)  # -9%


@pytest.fixture
def funds(tmp_path: Path) -> Iterator[Funds]:
    service = _new_funds(tmp_path)
    lg = service.lg
    service.create_product("BTC3L")  # default fees: 0.1% in and out, 0.05% trading
    service.set_price("BTC", "100")
    yield service
    lg.close()


def test_bobs_full_redemption_leaves_alice_at_3x_and_a_3pct_fall_costs_her_9pct(
    funds: Funds,
) -> None:
    """The issue's scenario: alice 1,000, bob 9,000, rebalance; bob redeems everything.
    Before: the position stayed, alice's fund ran at 30x and BTC -3% cost her 91.6%."""
    funds.mint("BTC3L", "alice", cash="1000")
    bob = funds.mint("BTC3L", "bob", cash="9000")
    funds.rebalance("BTC3L")
    before = funds.state("BTC3L")
    alice_nav = nav_per_share_units(funds.terms("BTC3L"), before)
    funds.redeem("BTC3L", "bob", shares=bob["shares_delta"])
    left = funds.state("BTC3L")
    terms = funds.terms("BTC3L")
    assert nav_per_share_units(terms, left) >= alice_nav  # never against alice
    assert abs(_multiple(left) - 3) < Fraction(1, 10**6)
    funds.lg.clock.moment = T0 + timedelta(seconds=30)  # type: ignore[attr-defined]
    funds.set_price("BTC", "97")
    after = funds.state("BTC3L")
    change = Fraction(nav_per_share_units(terms, after), nav_per_share_units(terms, left)) - 1
    assert abs(change - Fraction(-9, 100)) < Fraction(1, 10**5)  # -9.00%, not -91.6%
    assert verify_book(funds.lg, "BTC3L").ok


def test_bobs_9000_mint_leaves_alices_multiple_and_nav(funds: Funds) -> None:
    """Before: bob's 9,000 into alice's 1,000 diluted the fund to 0.30x."""
    funds.mint("BTC3L", "alice", cash="1000")
    funds.rebalance("BTC3L")
    terms = funds.terms("BTC3L")
    before = funds.state("BTC3L")
    funds.mint("BTC3L", "bob", cash="9000")
    after = funds.state("BTC3L")
    assert nav_per_share_units(terms, after) >= nav_per_share_units(terms, before)
    assert abs(_multiple(after) - _multiple(before)) < Fraction(1, 10**8)
    funds.lg.clock.moment = T0 + timedelta(seconds=30)  # type: ignore[attr-defined]
    funds.set_price("BTC", "109")  # +9%: about +27% for every holder, alice included
    moved = funds.state("BTC3L")
    gain = Fraction(nav_per_share_units(terms, moved), nav_per_share_units(terms, after)) - 1
    assert abs(gain - Fraction(27, 100) * _multiple(after) / 3) < Fraction(1, 10**5)


def test_an_order_on_a_stale_price_is_refused_and_writes_nothing(funds: Funds) -> None:
    """The market moved to 109 but the last price is 100 and 61 s old: no mint at the old NAV."""
    funds.mint("BTC3L", "alice", cash="1000")
    lg = funds.lg
    head = lg.head("BTC3L")
    for call in (
        lambda: funds.mint("BTC3L", "bob", cash="9000", at=T0 + timedelta(seconds=61)),
        lambda: funds.redeem("BTC3L", "alice", shares="1", at=T0 + timedelta(seconds=61)),
    ):
        with pytest.raises(Rejected) as caught:
            call()
        assert caught.value.reason is Reason.STALE_PRICE
        assert "61 s old" in str(caught.value)
    assert lg.head("BTC3L") == head
    assert funds.mint("BTC3L", "bob", cash="100", at=T0 + timedelta(seconds=60))["seq"]


def test_max_price_age_off_and_no_price(tmp_path: Path) -> None:
    funds = _new_funds(tmp_path)
    lg = funds.lg
    funds.create_product("BTC3L")
    funds.create_product("BTC3S", max_price_age=None)
    with pytest.raises(Rejected) as caught:
        funds.mint("BTC3L", "alice", cash="100")
    assert caught.value.reason is Reason.NO_PRICE
    funds.mint("BTC3S", "alice", cash="100")  # no price needed: nothing is traded yet
    funds.set_price("BTC", "100")
    late = T0 + timedelta(days=3)
    funds.mint("BTC3S", "bob", cash="100", at=late)  # any age
    lg.close()


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"leverage_band": ("3.5", "5")}, "excludes the multiple 3"),
        ({"merge_nav_below": "200"}, "must bracket initial_nav 100"),
        ({"split_nav_above": "50"}, "must bracket initial_nav 100"),
    ],
)
def test_contradictory_parameters_are_refused(params: dict[str, object], fragment: str) -> None:
    from ledger.domain.fund.product import make_params

    with pytest.raises(Rejected) as caught:
        make_params("BTC3L", **params)
    assert caught.value.reason is Reason.BAD_INPUT and fragment in str(caught.value)


@settings(max_examples=300, deadline=None)
@given(
    equity=st.integers(1_000 * USDT, 10**9 * USDT),
    multiple_bp=st.integers(5_000, 60_000),  # the fund drifted to 0.5x .. 6x
    supply=st.integers(SHARE // 100, 10**8 * SHARE),
    price=st.integers(USDT, 100_000 * USDT),
    cash=st.integers(10 * USDT, 10**9 * USDT),
    redeem_part=st.integers(1, 10_000),
    side=st.sampled_from(["BTC3L", "BTC3S"]),
)
def test_orders_never_move_the_other_holders_nav_or_multiple(
    equity: int, multiple_bp: int, supply: int, price: int, cash: int, redeem_part: int, side: str
) -> None:
    """For any fund (drifted off its target too), a mint and a redemption leave NAV per share
    unchanged within one quote unit per share and only in the fund's favour, and the effective
    multiple unchanged within the position's precision: one position unit of rounding and the
    few whole quote units of rounded fees and dust, relative to the equity after."""
    terms = zero_fee_terms(side, trading_fee="0.0005", subscription_fee="0.001")
    sign = -1 if side.endswith("S") else 1
    position = sign * equity * multiple_bp * BTC // (10_000 * price)
    state = FundState(
        collateral=equity, position=position, supply=supply, price=price, mark_price=price
    )
    nav = Fraction(equity * SHARE, supply)
    m0 = _multiple(state)

    def check(after: FundState) -> None:
        new_nav = Fraction(after.collateral * SHARE, after.supply)
        assert new_nav >= nav  # never against the holders who stay
        assert new_nav - nav <= Fraction(SHARE * 4, after.supply) + 1  # a few units at most
        bound = (Fraction(price, BTC) + abs(m0) * 4) / after.collateral
        assert abs(_multiple(after) - m0) <= bound

    try:
        _, minted, _ = entries.mint(terms, state, holder="x", cash=cash, at=AT)
    except Rejected:
        pass
    else:
        check(minted)
    shares = max(1, supply * redeem_part // 10_001)
    try:
        _, redeemed, _ = entries.redeem(terms, state, holder="x", shares=shares, held=supply, at=AT)
    except Rejected:
        return
    check(redeemed)


@pytest.mark.parametrize(
    ("name", "side", "move", "fires"),
    [
        ("BTC3L", "losing", "88", True),  # -12% raises a long's leverage
        ("BTC3L", "losing", "112", False),  # +12% lowers it: no ad-hoc trade
        ("BTC3S", "losing", "112", True),  # +12% raises a short's leverage
        ("BTC3S", "losing", "88", False),
        ("BTC3L", "both", "112", True),
        ("BTC3S", "both", "88", True),
    ],
)
def test_losing_side_only_trigger(
    tmp_path: Path, name: str, side: str, move: str, fires: bool
) -> None:
    """FTX, KuCoin and MEXC rebalanced intraday only when the move raised leverage."""
    funds = _new_funds(tmp_path)
    lg = funds.lg
    funds.create_product(name, adhoc_move="0.1", adhoc_side=side, leverage_band=None)
    funds.set_price("BTC", "100")
    funds.mint(name, "alice", cash="1000")
    lg.clock.moment = T0 + timedelta(hours=1)  # type: ignore[attr-defined]
    report = funds.set_price("BTC", move)["products"][0]
    assert (report["adhoc_trigger"] == "move") is fires
    assert ("rebalance" in report["entries"]) is fires
    assert verify_book(lg, name).ok
    lg.close()


def test_rebalance_names_the_trade_in_units_and_in_the_quote_asset(tmp_path: Path) -> None:
    """Reference example 1: 3x long, NAV 100, BTC 100 -> 105: buy 30 USDT of BTC
    (0.285714285714 BTC at 12 decimals toward zero, so 29.999999 USDT at 6)."""
    funds = _new_funds(tmp_path)
    lg = funds.lg
    funds.create_product("BTC3L", **CARRY_ONLY, management_fee="0", funding_rate="0")
    funds.set_price("BTC", "100")
    funds.mint("BTC3L", "alice", cash="100")
    lg.clock.moment = T0 + timedelta(hours=1)  # type: ignore[attr-defined]
    funds.set_price("BTC", "105")
    out = funds.rebalance("BTC3L")
    assert (out["traded"], out["traded_notional"]) == ("0.285714285714", "29.999999")
    assert out["nav"]["nav_per_share"] == "115.000000"
    lg.close()


def _carry_fund(tmp_path: Path) -> Funds:
    funds = _new_funds(tmp_path)
    funds.create_product("BTC3L", **CARRY_ONLY, management_fee="0.0003", funding_rate="0.0003")
    return funds


def test_prices_on_1_and_5_january_charge_exactly_four_days(tmp_path: Path) -> None:
    """Before: one day of fee and funding was charged per price update, so three of the four
    days between prices on 1 Jan and 5 Jan went free. Now they accrue with time: equity
    10,000 and 300 BTC at 100 for four days: fee 10,000 x 0.0003 x 4 = 12, funding
    30,000 x 0.0003 x 4 = 36."""
    funds = _carry_fund(tmp_path)
    jan1 = datetime(2020, 1, 1, 0, 5, tzinfo=UTC)
    funds.set_price("BTC", "100", at=jan1)
    funds.mint("BTC3L", "alice", cash="10000", at=jan1)
    assert funds.state("BTC3L").position == 300 * BTC
    update = funds.set_price("BTC", "100", at=jan1 + timedelta(days=4))
    assert update["products"][0]["entries"][:1] == ["accrual"]
    [accrual] = [e for e in funds.lg.entries("BTC3L") if e.draft.kind == "accrual"]
    amounts = {p.account: p.amount for p in accrual.draft.postings}
    assert amounts["expense:management-fees"] == 12 * USDT
    assert amounts["expense:funding"] == 36 * USDT
    assert dict(accrual.draft.metadata)["from"] == "2020-01-01T00:05:00Z"
    assert dict(accrual.draft.metadata)["to"] == "2020-01-05T00:05:00Z"
    assert verify_book(funds.lg, "BTC3L").ok


def test_minting_after_one_event_and_redeeming_before_the_next_pays_for_the_time_held(
    tmp_path: Path,
) -> None:
    """Bob holds from 12:00 to 00:00 (between two daily events): his NAV falls by half a day
    of fee and funding at the fund's multiple M (3.0018: alice's first half day of costs
    lowered the equity under the same position): 0.5 x (0.0003 + M x 0.0003), about 0.06%."""
    funds = _carry_fund(tmp_path)
    terms = funds.terms("BTC3L")
    day = datetime(2020, 1, 1, 0, 5, tzinfo=UTC)
    funds.set_price("BTC", "100", at=day)
    funds.mint("BTC3L", "alice", cash="10000", at=day)
    noon = datetime(2020, 1, 1, 12, 0, tzinfo=UTC)
    funds.set_price("BTC", "100", at=noon)
    bob = funds.mint("BTC3L", "bob", cash="10000", at=noon)
    nav_in = Fraction(str(bob.priced_at_nav))
    multiple = _multiple(funds.state("BTC3L"))
    assert Fraction(30_017, 10_000) < multiple < Fraction(30_019, 10_000)
    midnight = datetime(2020, 1, 2, 0, 0, tzinfo=UTC)
    funds.set_price("BTC", "100", at=midnight - timedelta(seconds=1))
    out = funds.redeem("BTC3L", "bob", shares=str(bob.shares_delta), at=midnight)
    nav_out = Fraction(str(out.priced_at_nav))
    cost = 1 - nav_out / nav_in
    held = Fraction(12 * 3600, 86_400)  # half a day
    expected = held * (Fraction(3, 10_000) + multiple * Fraction(3, 10_000))
    assert abs(cost - expected) < Fraction(1, 10**7), (cost, expected)
    assert nav_per_share_units(terms, funds.state("BTC3L")) == int(nav_out * USDT)


def test_merge_dust_does_not_keep_the_fund_at_risk(funds: Funds) -> None:
    """Before: after a 7:1 merge the treasury held 1e-18 of a share, and when every customer
    had redeemed the fund still held 39.95 BTC on 0.000001 USDT of equity. Now a merge moves
    no unit: the customers' redemptions of all their shares cancel all the units and sell the
    whole position; only the merge's rounding (no holder's) stays outstanding, on nothing."""
    funds.mint("BTC3L", "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", cash="100")
    funds.mint("BTC3L", "alice", cash="104")
    merged = funds.merge("BTC3L", "7:1")
    assert merged["remainder_to_treasury"] == "0.000000000000000000"
    for row in funds.holders("BTC3L")["holders"]:
        funds.redeem("BTC3L", row["holder"], shares=row["shares"])
    left = funds.state("BTC3L")
    assert left.position == 0  # flat
    assert left.supply == 0  # no unit left: the redemptions of all shares took all units
    assert funds.holders("BTC3L")["remainder"] == f"0.{left.shares:018d}"
    assert left.collateral <= 1  # at most the rounding of the last payout
    for price in ("101", "99"):
        funds.lg.clock.moment += timedelta(seconds=10)  # type: ignore[attr-defined]
        report = funds.set_price("BTC", price)["products"][0]
        assert "mark" not in report["entries"] and "wipeout" not in report["entries"]
    assert funds.state("BTC3L").collateral == left.collateral
    assert verify_book(funds.lg, "BTC3L").ok


def test_a_wiped_out_fund_has_zero_equity_and_can_be_closed(funds: Funds, tmp_path: Path) -> None:
    """A crash wipes the fund out (NAV 0, the loss beyond the collateral recorded as the
    shortfall the venue bore); `close` cancels every holder's shares at zero in one entry and
    seals the book: every later fund operation is refused, a price posts nothing to it."""
    funds.mint("BTC3L", "alice", cash="1000")
    funds.mint("BTC3L", "bob", cash="500")
    funds.lg.clock.moment = T0 + timedelta(seconds=20)  # type: ignore[attr-defined]
    crash = funds.set_price("BTC", "60")["products"][0]
    assert "wipeout" in crash["entries"] and crash["wiped_out"] is True
    state = funds.state("BTC3L")
    assert (state.collateral, state.position) == (0, 0) and state.shortfall > 0
    assert funds.nav("BTC3L")["equity"] == "0.000000"
    # The balance sheet: nothing left as an asset or owed as a liability; the venue's
    # insurance fund bore the loss beyond the collateral, as income of the fund's book.
    usdt = funds.lg.balances("BTC3L", asset="USDT")
    assert usdt.get(("fund:collateral", "USDT"), 0) == 0
    assert ("liability:shortfall", "USDT") not in usdt
    assert usdt[("income:insurance-cover", "USDT")] == -state.shortfall
    closed = funds.close("BTC3L")
    assert closed["holders"] == 2 and closed["closed"] is True
    after = funds.state("BTC3L")
    assert (after.supply, after.collateral, after.position, after.closed) == (0, 0, 0, True)
    shares = funds.lg.balances("BTC3L", asset="BTC3L")
    assert shares == {}  # every holder at zero, nothing outstanding
    head = funds.lg.head("BTC3L")
    for call in (
        lambda: funds.mint("BTC3L", "carol", cash="100"),
        lambda: funds.rebalance("BTC3L"),
        lambda: funds.split("BTC3L", "1:2"),
        lambda: funds.close("BTC3L"),
    ):
        with pytest.raises(Rejected) as caught:
            call()
        assert caught.value.reason is Reason.FUND_CLOSED
    assert funds.set_price("BTC", "70")["products"][0]["entries"] == []
    assert funds.lg.head("BTC3L") == head
    assert verify_book(funds.lg, "BTC3L").ok


def test_a_book_from_before_the_insurance_cover_still_verifies(funds: Funds) -> None:
    """Books written before the insurance cover booked a wipe-out's excess loss as
    `liability:shortfall`: the fund audit still accepts that form, and only for a wipe-out."""
    from ledger.domain.fund import entries
    from ledger.services.fund_operation import FUND_OWNER

    funds.mint("BTC3L", "alice", cash="1000")
    terms, state = funds.terms("BTC3L"), funds.state("BTC3L")
    at = T0 + timedelta(seconds=20)
    price = 60 * 10**6
    draft, after = entries.mark(terms, state, price=price, at=at, cover="liability:shortfall")
    assert draft is not None and draft.kind == "wipeout"
    assert any(p.account == "liability:shortfall" for p in draft.postings)
    with funds.lg.unit_of_work(owner=FUND_OWNER) as uow:
        uow.post([draft])
    state = funds.record("BTC3L").state  # rebuilt from the journal: the old form folds too
    assert (state.collateral, state.shortfall) == (0, after.shortfall) and after.shortfall > 0
    assert verify_book(funds.lg, "BTC3L").ok


def test_a_live_fund_cannot_be_closed(funds: Funds) -> None:
    funds.mint("BTC3L", "alice", cash="1000")
    with pytest.raises(Rejected) as caught:
        funds.close("BTC3L")
    assert caught.value.reason is Reason.BAD_INPUT and "redeem at NAV" in str(caught.value)


def test_the_api_refuses_a_time_far_ahead_of_the_clock(funds: Funds) -> None:
    """A price dated years ahead would charge years of fees at the next order and refuse
    every order at the current time (its time would be behind the book's last): the API
    refuses it as the CLI does (time_out_of_range), beyond its max_skew (7 days)."""
    funds.mint("BTC3L", "alice", cash="1000")
    head = funds.lg.head("BTC3L")
    for at in (T0 + timedelta(days=8), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)):
        with pytest.raises(Rejected) as caught:
            funds.set_price("BTC", "100", at=at)
        assert caught.value.reason is Reason.TIME_OUT_OF_RANGE
        with pytest.raises(Rejected) as caught:
            funds.mint("BTC3L", "bob", cash="100", at=at)
        assert caught.value.reason is Reason.TIME_OUT_OF_RANGE
    assert funds.lg.head("BTC3L") == head
    funds.set_price("BTC", "100", at=T0 + timedelta(days=6))  # inside the bound


def test_a_fund_whose_carrying_costs_took_all_equity_refuses_mints() -> None:
    """Equity exhausted by fees with the position still open: no NAV to price a mint at
    (refused as wiped out, not a division by zero)."""
    terms = zero_fee_terms("BTC3L")
    state = FundState(collateral=0, position=30 * BTC, supply=10 * SHARE, price=100 * USDT)
    with pytest.raises(Rejected) as caught:
        entries.mint(terms, state, holder="bob", cash=1000 * USDT, at=AT)
    assert caught.value.reason is Reason.FUND_WIPED_OUT
