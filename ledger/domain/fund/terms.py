"""Integer terms of a product: what the fund math needs, precomputed once from its params.

Rates are exact integer ratios (num, den) taken from their decimal strings, so every fee is
computed as one `mul_div` with a named rounding and no intermediate rounding at all.
Prices are integers: base units of the quote asset per whole unit of the underlying.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from ledger.domain.fund.product import ProductParams
from ledger.domain.money import Asset
from ledger.errors import Reason, Rejected

Ratio = tuple[int, int]
"""An exact rational as (numerator, denominator > 0)."""


def ratio_of(value: Decimal) -> Ratio:
    """Return a Decimal as an exact (numerator, denominator) pair."""
    num, den = value.as_integer_ratio()
    return num, den


def quantise_units(value: Decimal, scale: int) -> int:
    """Return `value` in base units at `scale`, rounding half-even (used for prices only)."""
    with localcontext() as ctx:
        ctx.prec = 80
        ctx.rounding = ROUND_HALF_EVEN
        return int(value.scaleb(scale).to_integral_value())


@dataclass(frozen=True, slots=True)
class Terms:
    """A product's terms in integers; amounts in base units, rates as exact ratios."""

    book: str
    underlying: str
    share_asset: Asset
    quote_asset: Asset
    position_asset: Asset
    multiple: Ratio
    nav0_units: int  # quote base units per whole share at the first mint
    subscription_fee: Ratio
    redemption_fee: Ratio
    management_fee: Ratio  # per UTC day, of equity
    trading_fee: Ratio  # of the notional of each rebalance trade
    funding_rate: Ratio  # per UTC day, of the position value; > 0 means longs pay
    funding_interval: int  # seconds a published (feed) funding rate is quoted for
    min_subscription_units: int
    rebalance_time: time
    adhoc_move: Ratio | None
    adhoc_losing_only: bool  # fire only on moves that raise leverage (FTX, KuCoin, MEXC)
    leverage_band: tuple[Ratio, Ratio] | None
    merge_nav_below_units: int | None
    split_nav_above_units: int | None
    split_merge_ratio: int | None
    max_price_age: int | None  # seconds; None: a price of any age prices an order
    share_one: int  # base units of one whole share
    position_one: int  # base units of one whole unit of the underlying's position


def position_asset_code(underlying: str) -> str:
    """Return the code of the perpetual position asset of `underlying`, e.g. BTC-PERP."""
    return f"{underlying}-PERP"


def terms_of(params: ProductParams) -> Terms:
    """Return the integer terms of `params`; amounts are converted exactly or refused."""
    quote_scale = params.quote_decimals

    def units(value: Decimal, what: str) -> int:
        result = value.scaleb(quote_scale)
        if result != result.to_integral_value():
            raise Rejected(
                Reason.BAD_INPUT, f"{what} {value} has more than {quote_scale} decimal places"
            )
        return int(result)

    band = None
    if params.leverage_band is not None:
        band = (ratio_of(params.leverage_band[0]), ratio_of(params.leverage_band[1]))
    merge = params.merge_nav_below
    split = params.split_nav_above
    return Terms(
        book=params.name,
        underlying=params.underlying,
        share_asset=Asset(params.name, params.share_decimals),
        quote_asset=Asset(params.quote_asset, quote_scale),
        position_asset=Asset(position_asset_code(params.underlying), params.position_decimals),
        multiple=ratio_of(params.multiple),
        nav0_units=units(params.initial_nav, "initial_nav"),
        subscription_fee=ratio_of(params.subscription_fee),
        redemption_fee=ratio_of(params.redemption_fee),
        management_fee=ratio_of(params.management_fee),
        trading_fee=ratio_of(params.trading_fee),
        funding_rate=ratio_of(params.funding_rate),
        funding_interval=params.funding_interval,
        min_subscription_units=units(params.min_subscription, "min_subscription"),
        rebalance_time=params.rebalance_time,
        adhoc_move=None if params.adhoc_move is None else ratio_of(params.adhoc_move),
        adhoc_losing_only=params.adhoc_side == "losing",
        leverage_band=band,
        merge_nav_below_units=None if merge is None else units(merge, "merge_nav_below"),
        split_nav_above_units=None if split is None else units(split, "split_nav_above"),
        split_merge_ratio=params.split_merge_ratio,
        max_price_age=params.max_price_age,
        share_one=int(10**params.share_decimals),
        position_one=int(10**params.position_decimals),
    )
