"""The arithmetic of mint, redeem, fees, marks and rebalance sizing; integers only.

Rounding rule (docs/funds.md): amounts settled with holders or the manager round in the
fund's favour (ERC-4626: against the caller); amounts the exchange determines (variation
margin, trading fees, funding) round against the fund, so equity is never overstated. Any
whole base unit left over is posted to `equity:rounding`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.domain.fund.shareindex import shares_of, units_showing
from ledger.domain.fund.state import FundState
from ledger.domain.fund.terms import Ratio, Terms
from ledger.domain.money import Rounding, div_round, mul_div
from ledger.errors import Reason, Rejected, invariant


def ceil_div(numerator: int, denominator: int) -> int:
    """Return numerator / denominator rounded up (toward +infinity); denominator > 0.

    The same as `div_round(..., Rounding.UP)` without its branches: this runs per mint.
    """
    return -(-numerator // denominator)


def fee_up(amount: int, rate: Ratio) -> int:
    """Return amount x rate rounded up (a fee charged to a caller)."""
    return ceil_div(amount * rate[0], rate[1]) if rate[0] else 0


def fee_down(amount: int, rate: Ratio) -> int:
    """Return amount x rate rounded down (a fee the fund pays to its manager)."""
    return (amount * rate[0]) // rate[1] if rate[0] else 0


@dataclass(frozen=True, slots=True)
class MintQuote:
    """A mint priced at NAV: quote base units in, share base units out, position traded.

    cash = fee + used + trade_fee + dust: `used` is what the shares are worth at NAV rounded
    up, `trade` the position bought (sold, for a short) with the order's equity so that the
    fund's effective multiple is unchanged, `trade_fee` its trading fee (borne by the order),
    `dust` the whole-unit remainder the fund keeps.
    """

    cash: int
    fee: int
    used: int
    dust: int
    shares: int
    trade: int = 0
    trade_fee: int = 0


@dataclass(frozen=True, slots=True)
class RedeemQuote:
    """A redemption priced at NAV: the shares' part of the equity (rounded down), less the
    trading fee of selling their part of the position, is `gross` = paid + fee.
    """

    shares: int
    gross: int
    fee: int
    paid: int
    trade: int = 0
    trade_fee: int = 0


def toward_zero(numerator: int, denominator: int) -> int:
    """Return numerator / denominator rounded toward zero (denominator > 0)."""
    magnitude = abs(numerator) // denominator
    return -magnitude if numerator < 0 else magnitude


def _order_trade(terms: Terms, state: FundState, equity: int) -> int:
    """Return the position that `equity` quote units of new equity carry: the fund's
    position x equity / E (the multiple unchanged), or L x equity / P for a fund without
    shares or without a position; rounded toward zero (the multiple never rises).
    """
    if state.price == 0 or equity == 0:
        return 0
    if state.position != 0 and state.collateral > 0:
        return toward_zero(state.position * equity, state.collateral)
    # No position (no shares, or only the treasury's dust after the last customer left):
    # the order's equity is sized to the multiple, as a first mint is.
    return target_position(terms, equity, state.price)


def _net_of_trading(terms: Terms, state: FundState, available: int) -> tuple[int, int, int]:
    """Return (equity, trade, trade fee) with equity + fee <= available, equity as large as
    that allows: the order's cash pays for its own trade.
    """
    rate_num, rate_den = terms.trading_fee
    if rate_num == 0 or state.price == 0:
        trade = _order_trade(terms, state, available)
        return available, trade, trading_fee(terms, trade, state.price)
    # |trade| x P = |M| x equity, M the effective multiple (or L for an empty fund).
    if state.position != 0 and state.collateral > 0:
        notional_num, notional_den = (
            abs(state.position) * state.price,
            (state.collateral * terms.position_one),
        )
    else:
        notional_num, notional_den = abs(terms.multiple[0]), terms.multiple[1]
    equity = (available * notional_den * rate_den) // (
        notional_den * rate_den + notional_num * rate_num
    )
    while True:
        trade = _order_trade(terms, state, equity)
        fee = trading_fee(terms, trade, state.price)
        if equity + fee <= available or equity == 0:
            return equity, trade, fee
        equity -= 1


def quote_mint(terms: Terms, state: FundState, cash: int) -> MintQuote:
    """Price a mint of `cash` quote base units; shares round down, the fees round up.

    The order's equity carries its part of the position at once (the fund trades it), so
    the other holders' NAV per share and effective multiple are unchanged.
    """
    if cash <= 0:
        raise Rejected(Reason.BAD_INPUT, "cash must be positive")
    if state.wiped_out or (state.supply > 0 and state.collateral <= 0):
        # No equity behind the shares (a wipe-out, or carrying costs that took all of it):
        # no NAV to price at.
        raise Rejected(Reason.FUND_WIPED_OUT, f"{terms.book} has no equity; minting is closed")
    if cash < terms.min_subscription_units:
        raise Rejected(
            Reason.BELOW_MINIMUM, f"cash is below the minimum subscription of {terms.book}"
        )
    fee = fee_up(cash, terms.subscription_fee)
    if state.supply == 0:
        # NAV_0 is fair only for a fund that holds nothing: anything left behind would go to
        # the first minter (the last redemption sells the whole position).
        invariant(
            state.collateral == 0 and state.position == 0,
            "a fund without shares must hold no collateral and no position",
            book=terms.book,
        )
    net, trade, trade_fee = _net_of_trading(terms, state, cash - fee)
    if state.supply > 0:
        shares = (net * state.supply) // state.collateral
        used = ceil_div(shares * state.collateral, state.supply)
    else:
        # The first units: each share at the initial NAV (under a share index, the units
        # that show at most those shares; the cash they do not show is not used).
        shares = units_showing((net * terms.share_one) // terms.nav0_units, state.index)
        shown = shares_of(shares, state.index)
        used = ceil_div(shown * terms.nav0_units, terms.share_one)
    if shares <= 0:
        raise Rejected(Reason.BELOW_MINIMUM, "cash buys less than one share base unit")
    dust = cash - fee - used - trade_fee
    invariant(dust >= 0, "a mint cannot use more cash than it was given")
    return MintQuote(
        cash=cash, fee=fee, used=used, dust=dust, shares=shares, trade=trade, trade_fee=trade_fee
    )


def quote_redeem(
    terms: Terms, state: FundState, shares: int, held: int, treasury: int = 0
) -> RedeemQuote:
    """Price a redemption of `shares` base units; proceeds round down, the fees round up.

    The shares' part of the position is sold with them, its trading fee taken from the
    proceeds, so the remaining holders keep their NAV and multiple. The last customer shares
    (all but the `treasury`'s dust, which is no customer's) sell all of it: nothing is left
    at risk for shares that no customer holds.
    """
    if shares <= 0:
        raise Rejected(Reason.BAD_INPUT, "shares must be positive")
    if shares > held:
        raise Rejected(
            Reason.INSUFFICIENT_SHARES, f"redeeming {shares} share units but only {held} held"
        )
    if state.wiped_out:
        raise Rejected(Reason.FUND_WIPED_OUT, f"{terms.book} is wiped out; redemption is closed")
    part = (shares * state.collateral) // state.supply
    last = shares >= state.supply - treasury
    trade = -state.position if last else toward_zero(-state.position * shares, state.supply)
    trade_fee = trading_fee(terms, trade, state.price) if state.price else 0
    gross = part - trade_fee
    if gross <= 0:
        raise Rejected(Reason.BELOW_MINIMUM, "these shares are worth less than one base unit")
    fee = fee_up(gross, terms.redemption_fee)
    return RedeemQuote(
        shares=shares, gross=gross, fee=fee, paid=gross - fee, trade=trade, trade_fee=trade_fee
    )


def target_position(terms: Terms, equity: int, price: int) -> int:
    """Return L x E / P in position base units, rounded toward zero (|multiple| <= |L|)."""
    num, den = terms.multiple
    value = num * equity * terms.position_one
    magnitude = abs(value) // (den * price)
    return -magnitude if value < 0 else magnitude


def mark_pnl(terms: Terms, position: int, price_from: int, price_to: int) -> int:
    """Return the variation margin q x (P1 - P0) in quote base units, rounded down."""
    return (position * (price_to - price_from)) // terms.position_one


def trading_fee(terms: Terms, trade: int, price: int) -> int:
    """Return the fee on a trade of `trade` position units at `price`, rounded up."""
    rate_num, rate_den = terms.trading_fee
    if rate_num == 0 or trade == 0:
        return 0
    return mul_div(abs(trade) * price, rate_num, terms.position_one * rate_den, Rounding.UP)


def funding_payment(terms: Terms, position: int, price: int) -> int:
    """Return one day's funding the fund pays (negative: receives), rounded up.

    A positive rate means longs pay shorts, as on perpetual exchanges.
    """
    rate_num, rate_den = terms.funding_rate
    if rate_num == 0 or position == 0:
        return 0
    return div_round(position * price * rate_num, terms.position_one * rate_den, Rounding.UP)


def management_fee(terms: Terms, equity: int) -> int:
    """Return one day's management fee on `equity`, rounded down (the fund's favour)."""
    return fee_down(equity, terms.management_fee) if equity > 0 else 0
