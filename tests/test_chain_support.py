"""The mirror's test/bench helpers write books the fund engine accepts, with its rounding rule."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.clock import FixedClock
from ledger.domain.journal import BalanceRule
from ledger.services.funds import Funds
from ledger.services.ledger import Ledger, open_ledger
from tests.chain_support import (
    EQUITY,
    holder_balances,
    mint_draft,
    open_holders,
    open_share_book,
    split_draft,
)
from tests.conftest import T0

BOOK = "BTC3L"


@pytest.fixture
def lg(tmp_path: Path) -> Iterator[Ledger]:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}", clock=FixedClock(T0))
    ledger.init()
    try:
        yield ledger
    finally:
        ledger.close()


def test_helper_book_and_fund_engine_share_one_book(lg: Ledger) -> None:
    """The helpers' share accounts carry the fund engine's rules, so both can open one book."""
    open_share_book(lg, BOOK)
    Funds(lg).create_product(BOOK)  # refused if any account differed in type or balance rule
    rules = {a.code: a.rule for a in lg.accounts(BOOK)}
    assert rules[EQUITY] is BalanceRule.NON_POSITIVE
    fresh = "ETH5L"
    Funds(lg).create_product(fresh)
    open_share_book(lg, fresh)  # and the other way round


def test_split_helper_rounds_each_holder_down_with_the_dust_to_the_treasury(lg: Ledger) -> None:
    """split_draft is the fund's split rule: floor per holder, floor of supply, dust to treasury."""
    open_share_book(lg, BOOK)
    open_holders(lg, BOOK, ["a", "b", "c"])
    lg.post(mint_draft(BOOK, {"a": 10, "b": 10, "c": 11}, at=T0))
    entry = lg.post(split_draft(lg, BOOK, num=1, den=3, at=T0))
    assert entry.draft.kind == "merge"
    # 10/3 -> 3, 10/3 -> 3, 11/3 -> 3; supply 31/3 -> 10, so one unit of dust to the treasury.
    assert holder_balances(lg, BOOK) == {"a": 3, "b": 3, "c": 3, "treasury": 1}
    assert lg.balance(BOOK, EQUITY, BOOK) == -10
