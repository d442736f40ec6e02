"""The funding rate feed: a published rate per funding interval replaces the product's rate
from its time on; funding accrues with time on the position held, and no accrual spans two
rates. Expected amounts are computed here in exact fractions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import pytest

from ledger.clock import FixedClock
from ledger.errors import Reason, Rejected
from ledger.services.audit import verify_book
from ledger.services.funds import Funds
from ledger.services.ledger import open_ledger
from tests.fund.helpers import cli

T0 = datetime(2024, 1, 1, tzinfo=UTC)
CARRY = {  # funding only: no fee of any kind, no ad-hoc trade, no price age
    "subscription_fee": "0",
    "redemption_fee": "0",
    "trading_fee": "0",
    "management_fee": "0",
    "adhoc_move": None,
    "leverage_band": None,
    "max_price_age": None,
}


@pytest.fixture()
def funds(tmp_path: Path) -> Funds:
    lg = open_ledger(f"sqlite:///{tmp_path / 'funding.db'}", clock=FixedClock(T0))
    lg.init()
    engine = Funds(lg)
    engine.create_product("BTC3L", **CARRY)
    engine.create_product("BTC3S", **CARRY)
    engine.set_price("BTC", "100", at=T0)
    engine.mint("BTC3L", "alice", cash="1000", at=T0)
    engine.mint("BTC3S", "bob", cash="1000", at=T0)
    return engine


def _funding(funds: Funds, book: str) -> int:
    return funds.lg.balance(book, "expense:funding", "USDT")


def _up(value: Fraction) -> int:
    return -(-value.numerator // value.denominator)


def test_a_published_rate_replaces_the_products_from_its_time_on(funds: Funds) -> None:
    """3x long of 1,000 USDT: 30 BTC at 100 (notional 3,000). 00:00-08:00 at the product's
    0.03% per day: 3,000 x 0.0003 / 3 = 0.3 USDT. 08:00-24:00 at the published 0.02% per 8 h
    (0.06% per day): 3,000 x 0.0006 x 2/3 = 1.2 USDT. The short receives the same."""
    published = funds.set_funding_rate("BTC", "0.0002", at=T0 + timedelta(hours=8))
    assert published["rate"] == "0.0002"
    assert [p["product"] for p in published["products"]] == ["BTC3L", "BTC3S"]
    assert all(len(p["accrued"]) == 1 for p in published["products"])  # up to 08:00, old rate
    first = Fraction(3000) * Fraction(3, 10_000) / 3
    assert _funding(funds, "BTC3L") == _up(first * 10**6) == 300_000
    assert _funding(funds, "BTC3S") == -300_000  # shorts receive when the rate is positive
    funds.set_price("BTC", "100", at=T0 + timedelta(days=1))
    second = Fraction(3000) * Fraction(2, 10_000) * 3 * Fraction(2, 3)
    assert second == Fraction(6, 5)
    assert _funding(funds, "BTC3L") == 300_000 + 1_200_000
    assert _funding(funds, "BTC3S") == -1_500_000
    accruals = [e for e in funds.lg.entries("BTC3L") if e.draft.kind == "accrual"]
    assert [dict(e.draft.metadata).get("funding_rate") for e in accruals] == [None, "0.0002"]
    for book in ("BTC3L", "BTC3S"):
        assert verify_book(funds.lg, book).ok


def test_funding_follows_the_position_actually_held(funds: Funds) -> None:
    """carol mints at 12:00: funding 00:00-12:00 on alice's 30 BTC, 12:00-24:00 on the
    position held after it: the 12:00 price ran the daily rebalance (to 3 x 999.55 / 100 BTC)
    and carol's order bought its 3 x 1,000 / 100 on top."""
    funds.set_funding_rate("BTC", "0.0001", at=T0)  # 0.03% per day, from the start
    funds.set_price("BTC", "100", at=T0 + timedelta(hours=12))
    funds.mint("BTC3L", "carol", cash="1000", at=T0 + timedelta(hours=12))
    held = Fraction(funds.state("BTC3L").position, 10**12)
    assert held == Fraction(299865, 10_000) + 30
    funds.set_price("BTC", "100", at=T0 + timedelta(days=1))
    half_day = Fraction(3, 10_000) / 2
    expected = _up(3000 * half_day * 10**6) + _up(held * 100 * half_day * 10**6)
    assert _funding(funds, "BTC3L") == expected
    assert verify_book(funds.lg, "BTC3L").ok


@pytest.mark.parametrize(
    ("symbol", "rate", "hours", "reason"),
    [
        ("ETH", "0.0001", 1, Reason.UNKNOWN_SYMBOL),
        ("BTC", "0.5", 1, Reason.BAD_INPUT),
        ("BTC", "1e-4", 1, Reason.BAD_INPUT),
        ("BTC", "abc", 1, Reason.BAD_INPUT),
        ("BTC", "0.0001", -1, Reason.BAD_INPUT),  # before the books' last entries
    ],
)
def test_a_bad_rate_is_refused_and_writes_nothing(
    funds: Funds, symbol: str, rate: str, hours: int, reason: Reason
) -> None:
    heads = [funds.lg.head(b) for b in ("BTC3L", "BTC3S")]
    with pytest.raises(Rejected) as caught:
        funds.set_funding_rate(symbol, rate, at=T0 + timedelta(hours=hours))
    assert caught.value.reason is reason
    assert [funds.lg.head(b) for b in ("BTC3L", "BTC3S")] == heads


def test_a_rate_cannot_be_published_before_the_last_one(funds: Funds) -> None:
    funds.set_funding_rate("BTC", "0.0001", at=T0 + timedelta(hours=8))
    with pytest.raises(Rejected) as caught:
        funds.set_funding_rate("BTC", "0.0002", at=T0 + timedelta(hours=7))
    assert caught.value.reason is Reason.BAD_INPUT


def test_the_funding_command(tmp_path: Path) -> None:
    import json

    run = cli(f"sqlite:///{tmp_path / 'cli.db'}")

    assert run("init").returncode == 0
    assert run("product", "create", "BTC3L", "--funding-interval", "3600").returncode == 0
    done = run("funding", "BTC", "0.00001000", "--at", "2026-01-01T00:00:00Z", "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["rate"] == "0.00001" and payload["products"][0]["funding_interval"] == 3600
    for bad in (["funding", "BTC", "2"], ["funding", "DOGE", "0.0001"], ["funding", "BTC"]):
        refused = run(*bad)
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    bad_interval = run("product", "create", "BTC2L", "--funding-interval", "10")
    assert bad_interval.returncode == 2 and "funding_interval" in bad_interval.stderr


def test_the_audit_checks_each_accrual_against_the_feed(funds: Funds) -> None:
    """An accrual at a rate the feed never published (or the product's rate where the feed
    had one in force) is found by `verify`, naming the entry (rule funding_feed)."""
    from ledger.storage import fund_store

    funds.set_funding_rate("BTC", "0.0002", at=T0 + timedelta(hours=8))
    funds.set_price("BTC", "100", at=T0 + timedelta(days=1))
    assert verify_book(funds.lg, "BTC3L").ok
    # The feed loses its row (a database edited behind the engine's back).
    with funds.lg.engine.begin() as connection:
        connection.execute(fund_store.FUNDING_RATES.delete())
    report = verify_book(funds.lg, "BTC3L")
    assert not report.ok and "funding_feed" in (report.problem or "")
    last = [e for e in funds.lg.entries("BTC3L") if e.draft.kind == "accrual"][-1]
    assert report.first_bad_seq == last.seq
