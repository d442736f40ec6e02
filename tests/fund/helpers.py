"""Small builders for fund tests: zero-fee terms, a seeded fund, a price path."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ledger.domain.fund import entries
from ledger.domain.fund.product import make_params
from ledger.domain.fund.rebalance import on_price
from ledger.domain.fund.state import FundState
from ledger.domain.fund.terms import Terms, terms_of

REPO = Path(__file__).resolve().parents[2]
BTC_CSV = REPO / "fixtures" / "btc-usd-daily-2014-2022.csv"
T0 = datetime(2020, 1, 1, 12, tzinfo=UTC)
USDT = 10**6
ZERO_FEES: dict[str, Any] = {
    "subscription_fee": "0",
    "redemption_fee": "0",
    "management_fee": "0",
    "trading_fee": "0",
    "funding_rate": "0",
    "min_subscription": "0",
}


def zero_fee_terms(name: str, **overrides: Any) -> Terms:
    """Return terms with every fee zero, no triggers and no split policy unless overridden."""
    options: dict[str, Any] = {
        **ZERO_FEES,
        "adhoc_move": None,
        "leverage_band": None,
        "merge_nav_below": None,
        "split_nav_above": None,
    }
    options.update(overrides)
    return terms_of(make_params(name, **options))


def seeded(terms: Terms, *, cash: int, price: int, at: datetime = T0) -> FundState:
    """Return a fund after one mint of `cash` quote units and a rebalance at `price`."""
    state = FundState(price=price)
    _, state, _ = entries.mint(terms, state, holder="alice", cash=cash, at=at)
    _, state = entries.rebalance(terms, state, at=at, trigger="manual")
    return state


def follow(
    terms: Terms, state: FundState, prices: Iterable[int], *, start: datetime = T0
) -> list[FundState]:
    """Feed one price per day at 12:00 UTC through `on_price`; return each state after."""
    states = []
    for offset, price in enumerate(prices, start=1):
        step = on_price(terms, state, price=price, at=start + timedelta(days=offset))
        state = step.state
        states.append(state)
    return states


def cli(db: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Return a runner of the installed `token-ledger` against `db` (text, never raising)."""
    binary = Path(sys.executable).parent / "token-ledger"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(binary), "--db", db, *args], check=False, capture_output=True, text=True
        )

    return run
