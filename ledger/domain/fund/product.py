"""Products: parse a name such as BTC3L into parameters, and validate the parameters.

Every default is drawn from a real platform (see docs/funds.md and
shared/reference/leveraged-tokens.md). Rates are `Decimal` fractions parsed from strings
("0.001" is 0.1%); a float is refused so that no binary rounding ever reaches the books.
"""

from __future__ import annotations

import re
from datetime import time
from decimal import Decimal, localcontext
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from ledger.domain.fund.keccak import checksum_address
from ledger.errors import Reason, Rejected

_NAME = re.compile(
    r"^(?P<underlying>[A-Z0-9]*?[A-Z][A-Z0-9]*?)(?P<multiple>\d+(?:\.\d+)?)(?P<side>[LS])$"
)
_HOLDER = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_ADDRESS = re.compile(r"^0[xX][0-9a-fA-F]{40}$")
# Ids the fund uses for itself (compared case-insensitively): a customer may not take one.
RESERVED_HOLDER_IDS = frozenset({"treasury"})
MAX_MULTIPLE = Decimal(20)
RATE_PRECISION = 28  # significant digits for the default rates below (4 places suffice)


def parse_product_name(name: str) -> tuple[str, Decimal]:
    """Return (underlying, signed multiple) of a name such as BTC3L, BTC3S, ETH5L or BTC1.5L."""
    match = _NAME.match(name) if isinstance(name, str) else None
    if match is None:
        raise Rejected(
            Reason.BAD_PRODUCT_NAME,
            f"product name {name!r} does not parse: expected UNDERLYING + MULTIPLE + L|S,"
            " e.g. BTC3L, BTC3S, ETH5L, BTC1.5L",
        )
    multiple = Decimal(match["multiple"])
    if not 0 < multiple <= MAX_MULTIPLE:
        raise Rejected(
            Reason.BAD_PRODUCT_NAME,
            f"product name {name!r}: multiple must be in (0, {MAX_MULTIPLE}], got {multiple}",
        )
    sign = -1 if match["side"] == "S" else 1
    return match["underlying"], sign * multiple


def check_holder_id(holder: str) -> str:
    """Return the canonical spelling of a customer's holder id; refuse an invalid one.

    Valid: 1-64 characters of A-Za-z0-9_.@-, not a reserved id ("treasury", any case).
    An Ethereum address (0x + 40 hex digits) is accepted only all lower case or in its
    EIP-55 checksummed spelling, and is returned lower case, so that two spellings of one
    address are one holder.
    """
    if not isinstance(holder, str) or not _HOLDER.match(holder):
        raise Rejected(
            Reason.BAD_INPUT, f"holder id {holder!r} must be 1-64 characters of A-Za-z0-9_.@-"
        )
    if holder.lower() in RESERVED_HOLDER_IDS:
        raise Rejected(Reason.BAD_INPUT, f"holder id {holder!r} is reserved for the fund itself")
    if _ADDRESS.match(holder):
        return _canonical_address(holder)
    return holder


def _canonical_address(holder: str) -> str:
    """Return an address id lower case if it is spelled lower case or EIP-55; refuse others."""
    if not holder.startswith("0x"):
        raise Rejected(Reason.BAD_INPUT, f"holder id {holder!r}: an address starts with 0x")
    lower = "0x" + holder[2:].lower()
    if holder != lower and holder != checksum_address(holder):
        raise Rejected(
            Reason.BAD_INPUT,
            f"holder id {holder!r} is not a valid EIP-55 checksum: use lower case or"
            f" {checksum_address(holder)}",
        )
    return lower


def default_adhoc_move(multiple: Decimal) -> Decimal:
    """Return the default ad-hoc trigger: 0.30 / |L| capped at 0.20 (10% for 3x, 6% for 5x)."""
    with localcontext() as ctx:
        ctx.prec = RATE_PRECISION
        move = (Decimal("0.30") / abs(multiple)).quantize(Decimal("0.0001"))
    return min(Decimal("0.20"), move)


def default_band(multiple: Decimal) -> tuple[Decimal, Decimal]:
    """Return the default |effective multiple| band: [2/3 L, 4/3 L] (Bybit's [2, 4] for 3x)."""
    with localcontext() as ctx:
        ctx.prec = RATE_PRECISION
        low = (abs(multiple) * 2 / 3).quantize(Decimal("0.0001"))
        high = (abs(multiple) * 4 / 3).quantize(Decimal("0.0001"))
    return low, high


class ProductParams(BaseModel):
    """The terms of one leveraged-token fund; amounts in whole units of the quote asset.

    Defaults (typical values published by real platforms):
    quote USDT with 6 decimals; shares with 18 decimals (ERC-20); initial NAV 100;
    subscription and redemption fee 0.1% (Binance BLVT, KuCoin, Index Coop FLI);
    management fee 0.03% per day (FTX leveraged tokens); trading fee 0.05% of the notional of
    each rebalance trade (perpetual taker fee); funding 0.03% per day of the position's value,
    paid by longs to shorts (3 x the 0.01% per 8 h baseline of perpetual exchanges);
    minimum subscription 10; daily rebalance at 00:02 UTC (FTX); ad-hoc rebalance when the
    underlying moved 0.30/|L| since the last rebalance (10% for 3x) or when the effective
    multiple leaves [2/3 L, 4/3 L] (Bybit's [2, 4] for 3x); merge when NAV < 0.1
    (AscendEX, MEXC), split when NAV > 10,000, each by a power of ten back to the order of
    the initial NAV unless `split_merge_ratio` fixes the ratio (e.g. 10 for 1:10 and 10:1);
    a mint or redeem is refused (`stale_price`) when the last price of the underlying is older
    than `max_price_age` seconds (60) of business time; a funding rate published with
    `token-ledger funding` is quoted per `funding_interval` seconds (8 h) and replaces
    `funding_rate` from its time on.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    underlying: str = ""
    multiple: Decimal = Decimal(0)
    quote_asset: str = "USDT"
    quote_decimals: int = 6
    share_decimals: int = 18
    position_decimals: int = 12
    initial_nav: Decimal = Decimal(100)
    subscription_fee: Decimal = Decimal("0.001")
    redemption_fee: Decimal = Decimal("0.001")
    management_fee: Decimal = Decimal("0.0003")
    trading_fee: Decimal = Decimal("0.0005")
    funding_rate: Decimal = Decimal("0.0003")
    funding_interval: int = 28_800  # seconds: the period a published funding rate is quoted for
    min_subscription: Decimal = Decimal(10)
    rebalance_time: time = time(0, 2)
    adhoc_move: Decimal | None = None
    adhoc_side: Literal["both", "losing"] = "both"  # losing: only moves that raise leverage
    leverage_band: tuple[Decimal, Decimal] | None = None
    merge_nav_below: Decimal | None = Decimal("0.1")
    split_nav_above: Decimal | None = Decimal(10000)
    split_merge_ratio: int | None = None  # None: the power of ten back to initial_nav's order
    max_price_age: int | None = 60  # seconds of business time; None: any age (simulation)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        """Fill underlying and multiple from the name unless both are given; refuse floats."""
        if not isinstance(data, dict):
            return data
        for key, value in data.items():
            if isinstance(value, float):
                raise Rejected(Reason.BAD_INPUT, f"{key} must be a decimal string, not a float")
        data = dict(data)
        if not data.get("underlying") or not data.get("multiple"):
            underlying, multiple = parse_product_name(str(data.get("name", "")))
            data.setdefault("underlying", underlying)
            data.setdefault("multiple", multiple)
            data["underlying"] = data["underlying"] or underlying
            data["multiple"] = data["multiple"] or multiple
        try:
            multiple = Decimal(str(data["multiple"]))
        except ArithmeticError:
            raise Rejected(
                Reason.BAD_INPUT, f"multiple must be a decimal number, got {data['multiple']!r}"
            ) from None
        if not multiple.is_finite() or not 0 < multiple.copy_abs() <= MAX_MULTIPLE:
            raise Rejected(
                Reason.BAD_INPUT,
                f"multiple must be non-zero and at most {MAX_MULTIPLE}, got {data['multiple']!r}",
            )
        if multiple != 0:
            # An explicit None switches a trigger off; an absent key takes the default.
            data.setdefault("adhoc_move", default_adhoc_move(multiple))
            data.setdefault("leverage_band", default_band(multiple))
        return data

    @field_validator(
        "subscription_fee", "redemption_fee", "management_fee", "trading_fee", mode="after"
    )
    @classmethod
    def _fee_range(cls, value: Decimal) -> Decimal:
        if not Decimal(0) <= value < Decimal(1):
            raise ValueError(f"a fee rate must be in [0, 1), got {value}")
        return value

    @model_validator(mode="after")
    def _check(self) -> ProductParams:
        """Refuse parameters that cannot describe a fund."""
        problems = []
        if not 0 < abs(self.multiple) <= MAX_MULTIPLE:
            problems.append(f"multiple must be non-zero and at most {MAX_MULTIPLE}")
        if self.initial_nav <= 0:
            problems.append("initial_nav must be positive")
        if not -1 < self.funding_rate < 1:
            problems.append("funding_rate must be in (-1, 1)")
        if not 60 <= self.funding_interval <= 7 * 86_400:
            problems.append("funding_interval must be 60..604800 seconds")
        if self.split_merge_ratio is not None and not 2 <= self.split_merge_ratio <= 10**12:
            problems.append("split_merge_ratio must be 2..10^12")
        if self.min_subscription < 0:
            problems.append("min_subscription must be >= 0")
        if self.adhoc_move is not None and not 0 <= self.adhoc_move < 1:
            problems.append("adhoc_move must be in [0, 1)")
        band = self.leverage_band
        if band is not None and not 0 <= band[0] < band[1]:
            problems.append("leverage_band must be (low, high) with 0 <= low < high")
        elif band is not None and not band[0] <= abs(self.multiple) <= band[1]:
            problems.append(
                f"leverage_band [{band[0]}, {band[1]}] excludes the multiple {abs(self.multiple)}"
            )
        merge, split = self.merge_nav_below, self.split_nav_above
        if merge is not None and split is not None and not merge < self.initial_nav < split:
            problems.append(
                f"merge_nav_below {merge} and split_nav_above {split} must bracket"
                f" initial_nav {self.initial_nav}"
            )
        if self.max_price_age is not None and not 0 <= self.max_price_age <= 10**9:
            problems.append("max_price_age must be 0..10^9 seconds, or off")
        for scale in (self.quote_decimals, self.share_decimals, self.position_decimals):
            if not 0 <= scale <= 36:
                problems.append("decimals must be 0..36")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def make_params(name: str, **overrides: Any) -> ProductParams:
    """Return validated parameters for `name` with `overrides`; refuse with one clear line.

    An override of None switches an optional rule off (adhoc_move, leverage_band, split/merge).
    """
    try:
        return ProductParams(name=name, **overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or name
        raise Rejected(Reason.BAD_INPUT, f"{where}: {first['msg']}") from None
