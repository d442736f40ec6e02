"""Mint, redeem and fees: priced at NAV, rounded in the fund's favour, dust posted not dropped,
every entry balanced per asset."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.fund import accounts as acc
from ledger.domain.fund import entries
from ledger.domain.fund.product import make_params
from ledger.domain.fund.state import FundState, nav_per_share_units
from ledger.domain.fund.terms import terms_of
from ledger.domain.journal import EntryDraft
from ledger.errors import Reason, Rejected
from tests.fund.helpers import USDT, zero_fee_terms

AT = datetime(2020, 1, 1, tzinfo=UTC)


def _by_account(draft: EntryDraft) -> dict[str, int]:
    return {p.account: p.amount for p in draft.postings}


def _balanced(draft: EntryDraft) -> bool:
    totals: Counter[str] = Counter()
    for posting in draft.postings:
        totals[posting.asset] += posting.amount
    return all(v == 0 for v in totals.values())


def test_mint_with_default_fee() -> None:
    """1000 USDT at NAV 100 with a 0.1% fee: fee 1 to the manager, 9.99 shares, 999 in the fund."""
    terms = terms_of(make_params("BTC3L"))
    draft, after, quote = entries.mint(terms, FundState(), holder="alice", cash=1000 * USDT, at=AT)
    lines = _by_account(draft)
    assert quote.fee == 1 * USDT and quote.shares == 999 * 10**16
    assert lines[acc.COLLATERAL] == 999 * USDT
    assert lines[acc.MANAGER_FEES] == 1 * USDT and lines[acc.FEE_SUBSCRIPTION] == -1 * USDT
    assert lines["holder:alice"] == 999 * 10**16
    assert lines[acc.SHARES_OUTSTANDING] == -999 * 10**16
    assert _balanced(draft) and after.collateral == 999 * USDT


def test_mint_dust_is_posted_to_the_rounding_account() -> None:
    """Shares round down; cash they do not cover stays in the fund, posted to equity:rounding."""
    terms = zero_fee_terms("BTC3L", share_decimals=0)
    state = FundState(collateral=100, supply=7)  # NAV 14.28... quote units per share
    draft, after, quote = entries.mint(terms, state, holder="bob", cash=50, at=AT)
    assert (quote.shares, quote.used, quote.dust) == (3, 43, 7)
    assert _by_account(draft)[acc.ROUNDING] == -7
    assert _balanced(draft)
    assert after.collateral * state.supply >= state.collateral * after.supply  # no dilution


def test_redeem_rounds_down_and_charges_the_fee_up() -> None:
    """Redeem 1/3 of the supply of 1000.000001 equity: gross floors, the fee ceils."""
    terms = terms_of(make_params("BTC3L"))
    state = FundState(collateral=1000 * USDT + 1, supply=3 * 10**18)
    draft, _, quote = entries.redeem(
        terms, state, holder="alice", shares=10**18, held=3 * 10**18, at=AT
    )
    assert quote.gross == 333_333_333  # floor(1000000001 / 3)
    assert quote.fee == 333_334  # ceil(0.1% of gross)
    assert quote.paid == quote.gross - quote.fee
    assert _balanced(draft)
    assert _by_account(draft)["holder:alice"] == -(10**18)


@pytest.mark.parametrize(
    ("shares", "held", "reason"),
    [(0, 5, Reason.BAD_INPUT), (-1, 5, Reason.BAD_INPUT), (6, 5, Reason.INSUFFICIENT_SHARES)],
)
def test_redeem_refusals(shares: int, held: int, reason: Reason) -> None:
    """Zero, negative, or more than held is refused."""
    terms = zero_fee_terms("BTC3L")
    with pytest.raises(Rejected) as caught:
        entries.redeem(
            terms, FundState(collateral=10, supply=10), holder="a", shares=shares, held=held, at=AT
        )
    assert caught.value.reason is reason


@settings(max_examples=80, deadline=None)
@given(
    equity=st.integers(min_value=1, max_value=10**16),
    supply=st.integers(min_value=1, max_value=10**30),
    cash=st.integers(min_value=10**7, max_value=10**13),
    fee=st.sampled_from(["0", "0.001", "0.0123"]),
)
def test_mint_then_redeem_never_profits_nor_dilutes(
    equity: int, supply: int, cash: int, fee: str
) -> None:
    """A round trip returns at most what was paid; NAV per share never falls for others."""
    terms = zero_fee_terms("BTC3L", subscription_fee=fee, redemption_fee=fee)
    state = FundState(collateral=equity, supply=supply)
    try:
        draft, minted, quote = entries.mint(terms, state, holder="x", cash=cash, at=AT)
    except Rejected:
        return
    assert _balanced(draft)
    assert minted.collateral * state.supply >= state.collateral * minted.supply
    try:
        back, redeemed, out = entries.redeem(
            terms, minted, holder="x", shares=quote.shares, held=quote.shares, at=AT
        )
    except Rejected:
        return
    assert _balanced(back)
    assert out.paid <= cash
    assert redeemed.collateral * state.supply >= state.collateral * redeemed.supply
    assert nav_per_share_units(terms, redeemed) >= nav_per_share_units(terms, state)


def test_management_fee_funding_and_trading_fee_rounding() -> None:
    """Management fee rounds down; funding and trading fees round against the fund (up)."""
    terms = terms_of(make_params("BTC3L", funding_rate="0.0003", trading_fee="0.0005"))
    state = FundState(
        collateral=1_000_000_001, position=3 * 10**12, supply=10**18, price=100_000_003
    )
    fee_draft, _ = entries.charge_management_fee(terms, state, at=AT, day=date(2020, 1, 1))
    assert fee_draft is not None
    assert _by_account(fee_draft)[acc.FEE_MANAGEMENT] == -300_000  # floor(0.03% of 1000.000001)
    assert _balanced(fee_draft)
    funding, _ = entries.pay_funding(terms, state, at=AT, day=date(2020, 1, 1))
    assert funding is not None
    assert _by_account(funding)[acc.FUNDING] == 90_001  # ceil(3 x 100.000003 x 0.0003 USDT)
    short = terms_of(make_params("BTC3S", funding_rate="0.0003"))
    received, _ = entries.pay_funding(
        short,
        FundState(collateral=10**9, position=-3 * 10**12, supply=1, price=100_000_003),
        at=AT,
        day=date(2020, 1, 1),
    )
    assert received is not None and _by_account(received)[acc.FUNDING] == -90_000  # shorts receive
    trade, traded = entries.rebalance(terms, state, at=AT, trigger="manual")
    assert trade is not None and _balanced(trade)
    fee = _by_account(trade)[acc.TRADING_FEES]
    notional = abs(traded.position - state.position) * state.price
    assert fee * 10**12 * 2000 >= notional and (fee - 1) * 10**12 * 2000 < notional
