"""Property: after any sequence of mints, redemptions, splits and merges (ratios within the
ledger's bounds), synced at any points, the chain's balances, their sum and totalSupply equal
the ledger's, holder by holder. On a real Anvil (one node for the module, one fresh mirror and
one fresh SQLite ledger per example), so the example count is modest."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3

from ledger.chain.anvil import AnvilNode, find_anvil, start_anvil, stop_anvil
from ledger.chain.deployment import attach
from ledger.chain.holders import address_of
from ledger.chain.keys import anvil_dev_operator
from ledger.chain.rpc import connect
from ledger.chain.sync import sync_book
from ledger.clock import FixedClock
from ledger.domain.fund.split import MAX_RATIO
from ledger.errors import Rejected
from ledger.services.ledger import open_ledger
from tests.chain_support import (
    holder_balances,
    mint_draft,
    open_holders,
    open_share_book,
    redeem_draft,
    split_draft,
)
from tests.conftest import T0, require

pytestmark = pytest.mark.anvil
BOOK = "BTC3L"
HOLDERS = ["alice", "bob", "carol", "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"]

ratio_part = st.one_of(st.integers(1, 12), st.integers(1, 10**6), st.just(MAX_RATIO))
ops = st.lists(
    st.one_of(
        st.tuples(st.just("mint"), st.sampled_from(HOLDERS), st.integers(1, 10**21)),
        st.tuples(st.just("redeem"), st.sampled_from(HOLDERS), st.integers(1, 100)),
        st.tuples(st.just("ratio"), ratio_part, ratio_part),
        st.tuples(st.just("sync"), st.just(0), st.just(0)),
    ),
    min_size=1,
    max_size=12,
)


@pytest.fixture(scope="module")
def node() -> Iterator[AnvilNode]:
    require(find_anvil() is not None, "anvil (run `npm ci` in the repository root)")
    with tempfile.TemporaryDirectory() as workdir:
        started = start_anvil(workdir=Path(workdir))
        try:
            yield started
        finally:
            stop_anvil(started)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
@given(steps=ops)
def test_chain_equals_the_ledger_after_any_adjusts_splits_and_merges(
    node: AnvilNode, steps: list[tuple[str, object, int]]
) -> None:
    w3: Web3 = connect(node.rpc_url)
    operator = anvil_dev_operator(0)
    with tempfile.TemporaryDirectory() as workdir:
        lg = open_ledger(f"sqlite:///{Path(workdir) / 'ledger.db'}", clock=FixedClock(T0))
        lg.init()
        try:
            open_share_book(lg, BOOK)
            open_holders(lg, BOOK, HOLDERS)
            splits = 0
            for kind, a, b in steps:
                units = holder_balances(lg, BOOK)
                if kind == "mint":
                    lg.post(mint_draft(BOOK, {str(a): b}, at=T0))
                elif kind == "redeem" and units.get(str(a), 0) > 0:
                    amount = max(1, units[str(a)] * b // 100)
                    lg.post(redeem_draft(BOOK, {str(a): amount}, at=T0))
                elif kind == "ratio" and a != b and sum(units.values()) and splits < 3:
                    try:
                        lg.post(split_draft(lg, BOOK, num=int(str(a)), den=b, at=T0))
                        splits += 1
                    except Rejected:
                        pass  # a merge that leaves no shares: the ledger refuses it too
                elif kind == "sync" and lg.head(BOOK)[0] > 0:
                    sync_book(lg, BOOK, w3, operator)
            if lg.head(BOOK)[0] == 0:
                return
            sync_book(lg, BOOK, w3, operator)
            client = attach(lg, BOOK, w3).client
            ledger = holder_balances(lg, BOOK)
            holders = sorted(set(ledger) | set(HOLDERS))
            chain = client.balances([address_of(h) for h in holders])
            assert dict(zip(holders, chain, strict=True)) == {h: ledger.get(h, 0) for h in holders}
            assert sum(chain) == client.total_supply() == sum(ledger.values())
            assert client.epoch() == splits
        finally:
            lg.close()
