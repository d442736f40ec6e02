"""Products: names parse into underlying and signed multiple; parameters validate."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger.domain.fund.product import make_params, parse_product_name
from ledger.domain.fund.terms import terms_of
from ledger.errors import Reason, Rejected


@pytest.mark.parametrize(
    ("name", "underlying", "multiple"),
    [
        ("BTC3L", "BTC", Decimal(3)),
        ("BTC3S", "BTC", Decimal(-3)),
        ("ETH5L", "ETH", Decimal(5)),
        ("BTC1.5L", "BTC", Decimal("1.5")),
        ("1INCH3S", "1INCH", Decimal(-3)),
    ],
)
def test_names_parse(name: str, underlying: str, multiple: Decimal) -> None:
    """A product name is UNDERLYING + MULTIPLE + L|S; S means a negative multiple."""
    assert parse_product_name(name) == (underlying, multiple)


@pytest.mark.parametrize("name", ["BTC", "BTC3", "3L", "btc3l", "BTC0L", "BTC3X", "BTC-3L", ""])
def test_bad_names_are_refused(name: str) -> None:
    """A name that does not parse is refused with BAD_PRODUCT_NAME and says what is expected."""
    with pytest.raises(Rejected) as caught:
        make_params(name)
    assert caught.value.reason is Reason.BAD_PRODUCT_NAME
    assert "e.g. BTC3L" in caught.value.message or "multiple must be" in caught.value.message


def test_defaults_are_the_documented_ones() -> None:
    """Defaults match docs/funds.md: 0.1% sub/redeem, 0.03%/day mgmt, 10% ad hoc for 3x."""
    params = make_params("BTC3L")
    assert params.subscription_fee == Decimal("0.001")
    assert params.redemption_fee == Decimal("0.001")
    assert params.management_fee == Decimal("0.0003")
    assert params.trading_fee == Decimal("0.0005")
    assert params.adhoc_move == Decimal("0.1")
    assert params.leverage_band == (Decimal(2), Decimal(4))
    assert str(params.rebalance_time) == "00:02:00"
    assert make_params("ETH5L").adhoc_move == Decimal("0.06")
    terms = terms_of(params)
    assert terms.nav0_units == 100 * 10**6
    assert terms.position_asset.code == "BTC-PERP"
    assert terms.subscription_fee == (1, 1000)


def test_explicit_parameters_and_switching_rules_off() -> None:
    """Underlying and multiple may be given explicitly; None switches an optional rule off."""
    params = make_params("MYFUND", underlying="ETH", multiple="-2", adhoc_move=None)
    assert (params.underlying, params.multiple, params.adhoc_move) == ("ETH", Decimal(-2), None)


@pytest.mark.parametrize(
    "override",
    [
        {"subscription_fee": "1.5"},
        {"subscription_fee": "-0.1"},
        {"initial_nav": "0"},
        {"management_fee": 0.001},
        {"trading_fee": "abc"},
        {"leverage_band": ("4", "2")},
    ],
)
def test_bad_parameters_are_refused(override: dict[str, object]) -> None:
    """Out-of-range rates, a zero NAV, floats and garbage are refused with one line."""
    with pytest.raises(Rejected) as caught:
        make_params("BTC3L", **override)
    assert caught.value.reason is Reason.BAD_INPUT
    assert "\n" not in caught.value.message
