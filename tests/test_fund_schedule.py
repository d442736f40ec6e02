"""Scheduling under a frozen clock: the daily rebalance runs once per UTC day at its configured
time, and an ad-hoc trigger fires within the very price update that crosses it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from freezegun import freeze_time

from ledger.services.funds import Funds
from ledger.services.ledger import open_ledger


@pytest.fixture
def funds(tmp_path: Path) -> Iterator[Funds]:
    lg = open_ledger(f"sqlite:///{tmp_path / 'schedule.db'}")  # SystemClock: freezegun rules it
    lg.init()
    yield Funds(lg)
    lg.close()


def _setup(funds: Funds, **params: object) -> None:
    funds.create_product("BTC3L", leverage_band=None, **params)
    with freeze_time("2019-12-31T12:00:00Z"):
        funds.set_price("BTC", "100")
        funds.mint("BTC3L", "alice", cash="100000")
        funds.rebalance("BTC3L")


def _price(funds: Funds, when: str, price: str) -> dict[str, object]:
    with freeze_time(when):
        report = funds.set_price("BTC", price)["products"][0]
    assert isinstance(report, dict)
    return report


def _daily_rebalances(funds: Funds) -> list[str]:
    return [
        e.draft.effective_at.isoformat()
        for e in funds.lg.entries("BTC3L")
        if e.draft.kind == "rebalance" and dict(e.draft.metadata)["trigger"] == "daily"
    ]


def test_daily_rebalance_once_per_utc_day_at_the_configured_time(funds: Funds) -> None:
    """Before 00:02 UTC nothing is scheduled; the first price at/after it rebalances; not again."""
    _setup(funds)
    assert _price(funds, "2020-01-01T00:01:59Z", "101")["daily_rebalance"] is False
    first = _price(funds, "2020-01-01T00:02:00Z", "102")
    assert first["daily_rebalance"] is True
    # Fees and funding accrue at every price (here for the time since 00:01:59), then the
    # day's rebalance trades.
    assert first["entries"] == ["mark", "accrual", "rebalance"]
    assert _price(funds, "2020-01-01T09:00:00Z", "103")["daily_rebalance"] is False
    assert _price(funds, "2020-01-01T23:59:59Z", "102.5")["daily_rebalance"] is False
    assert _price(funds, "2020-01-02T00:01:00Z", "102")["daily_rebalance"] is False
    assert _price(funds, "2020-01-02T00:03:00Z", "101")["daily_rebalance"] is True
    assert _price(funds, "2020-01-02T00:04:00Z", "100")["daily_rebalance"] is False
    assert _daily_rebalances(funds) == ["2020-01-01T00:02:00+00:00", "2020-01-02T00:03:00+00:00"]


def test_daily_rebalance_follows_the_configured_time(funds: Funds) -> None:
    """A product configured for 16:00 UTC rebalances at 16:00, not at the 00:02 default."""
    _setup(funds, rebalance_time="16:00")
    assert _price(funds, "2020-01-01T00:02:00Z", "101")["daily_rebalance"] is False
    assert _price(funds, "2020-01-01T15:59:59Z", "102")["daily_rebalance"] is False
    assert _price(funds, "2020-01-01T16:00:00Z", "101")["daily_rebalance"] is True
    assert _daily_rebalances(funds) == ["2020-01-01T16:00:00+00:00"]


def test_adhoc_trigger_fires_in_the_update_that_crosses_it(funds: Funds) -> None:
    """A 10% move since the last rebalance rebalances in the same price update, at its time."""
    _setup(funds)
    _price(funds, "2020-01-01T00:02:00Z", "100")  # the daily rebalance, at 100
    below = _price(funds, "2020-01-01T10:00:00Z", "90.01")
    assert below["adhoc_trigger"] is None and below["entries"] == ["mark", "accrual"]
    crossing = _price(funds, "2020-01-01T10:00:01Z", "90")
    assert crossing["adhoc_trigger"] == "move"
    assert crossing["entries"] == ["mark", "accrual", "rebalance"]  # one second of fees
    last = list(funds.lg.entries("BTC3L"))[-1]
    assert last.draft.kind == "rebalance"
    assert dict(last.draft.metadata)["trigger"] == "move"
    assert last.draft.effective_at.isoformat() == "2020-01-01T10:00:01+00:00"
    assert crossing["effective_multiple"].startswith("3.00")
    up = _price(funds, "2020-01-01T11:00:00Z", "99")  # +10% from 90: fires again
    assert up["adhoc_trigger"] == "move"


def test_daily_schedule_counts_utc_days_whatever_the_offset(funds: Funds) -> None:
    """A price stamped 01:30+02:00 is 23:30 UTC of the previous day: the schedule uses UTC."""
    _setup(funds)
    funds.set_price("BTC", "101", at=datetime.fromisoformat("2020-01-01T00:30:00+00:00"))
    late = funds.set_price("BTC", "102", at=datetime.fromisoformat("2020-01-02T01:30:00+02:00"))
    assert late["products"][0]["daily_rebalance"] is False  # still 2020-01-01 23:30 UTC
    early = funds.set_price("BTC", "103", at=datetime.fromisoformat("2020-01-02T02:03:00+02:00"))
    assert early["products"][0]["daily_rebalance"] is True  # 2020-01-02 00:03 UTC
