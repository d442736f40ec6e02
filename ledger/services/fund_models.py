"""What the fund engine's operations return: typed, exact, and the CLI's `--json` verbatim.

Every amount is a `Decimal` carrying the asset's scale (`Decimal("9.990000000000000000")`),
serialised in JSON as that decimal string, never as a float or in exponent form. A model's
`json_dict()` is exactly what `token-ledger … --json` prints, so the API and the CLI cannot
drift. Reading a model like the dict of its JSON (`result["shares_delta"]`) also works and
gives the JSON value (a string for an amount).

    minted = funds.mint("BTC3L", "alice", cash="1000")
    minted.shares_delta          # Decimal('9.990000000000000000')
    minted.nav.nav_per_share     # Decimal('100.000000')
    minted.json_dict()           # {"seq": 3, "kind": "mint", ..., "shares_delta": "9.99..."}
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer


def _plain(value: Decimal) -> str:
    return f"{value:f}"


Amount = Annotated[Decimal, PlainSerializer(_plain, return_type=str, when_used="json")]
"""An exact amount at its asset's scale; JSON: a plain decimal string."""


class FundModel(BaseModel):
    """Base of the fund engine's results: frozen, no unknown fields, JSON via `json_dict`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def json_dict(self) -> dict[str, Any]:
        """Return the JSON form (amounts as decimal strings); fields never given are left out."""
        return self.model_dump(mode="json", exclude_unset=True)

    def __getitem__(self, key: str) -> Any:
        return self.json_dict()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.json_dict()

    def keys(self) -> Iterator[str]:
        """Return the JSON form's keys (so `dict(model)`-style code keeps working)."""
        return iter(self.json_dict())


class NavReport(FundModel):
    """A fund's NAV per share, equity, supply, position and effective multiple."""

    product: str
    nav_per_share: Amount
    equity: Amount
    supply: Amount
    units: Amount
    index: str
    position: Amount
    price: Amount
    effective_multiple: Amount
    wiped_out: bool
    shortfall: Amount
    quote_asset: str
    at: str | None = None


class EntrySummary(FundModel):
    """One journal entry as a holder sees it: kind, time, sequence, hash, shares, fees."""

    seq: int
    kind: str
    effective_at: str
    key: str | None
    hash: str
    holder: str | None
    fee: Amount
    shares_delta: Amount | None = None
    units_delta: Amount | None = None
    cash: Amount | None = None
    paid: Amount | None = None
    ratio_num: str | None = None
    ratio_den: str | None = None


class OrderResult(EntrySummary):
    """A mint or a redemption as posted: its entry, the NAV that priced it, the NAV after."""

    priced_at_nav: Amount | None = None
    nav: NavReport


class MintResult(OrderResult):
    """`Funds.mint`: shares issued (`shares_delta`) for `cash`, fee and NAVs."""


class RedeemResult(OrderResult):
    """`Funds.redeem`: shares cancelled (`shares_delta` < 0) and cash `paid`, fee and NAVs."""


class OrderFill(FundModel):
    """One order of a batch: shares issued (> 0) or cancelled (< 0), the cash it paid in
    (a mint, after its refund) or was paid (a redemption), its fee, the position its own
    order would have traded, and its share of the trading fee the netting saved."""

    side: str
    holder: str
    shares_delta: Amount
    cash: Amount
    fee: Amount
    trade: Amount
    rebate: Amount


class OrdersResult(FundModel):
    """`Funds.orders`: a batch of mints and redemptions posted as one `orders` entry,
    only the net of their trades traded."""

    product: str
    seq: int
    key: str | None
    hash: str
    effective_at: str
    net_trade: Amount
    trading_fee: Amount
    trading_fee_saved: Amount
    priced_at_nav: Amount
    fills: list[OrderFill]
    nav: NavReport


class ProductPriceReport(NavReport):
    """One product's outcome of a price update."""

    daily_rebalance: bool
    adhoc_trigger: str | None
    entries: list[str]


class PriceUpdate(FundModel):
    """`Funds.set_price`: the price applied and each product's outcome."""

    symbol: str
    price: Amount
    at: str
    products: list[ProductPriceReport]


class RebalanceResult(FundModel):
    """`Funds.rebalance`: the trade (position units, and its notional in the quote asset,
    > 0 bought), its fee and the multiple before/after."""

    product: str
    traded: Amount
    traded_notional: Amount
    trading_fee: Amount
    multiple_before: Amount
    nav: NavReport


class SplitResult(FundModel):
    """`Funds.split` / `merge`: the ratio, the supply and NAV before, the remainder kept."""

    product: str
    kind: str
    ratio_num: str
    ratio_den: str
    seq: int
    epoch: int
    supply_before: Amount
    supply_after: Amount
    remainder_to_treasury: Amount
    nav_before: Amount
    nav: NavReport


class HolderRow(FundModel):
    """A holder's shares and their value at NAV (rounded down)."""

    holder: str
    shares: Amount
    units: Amount
    value: Amount
    address: str | None = None


class HoldersReport(FundModel):
    """`Funds.holders`: every holder with shares."""

    product: str
    nav: NavReport
    holders: list[HolderRow]
    remainder: Amount


class Statement(FundModel):
    """`Funds.statement`: a holder's shares, value and entries."""

    product: str
    holder: str
    shares: Amount
    value: Amount
    entries: list[EntrySummary]
