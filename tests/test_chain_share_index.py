"""The ERC-20 mirror of a fund with a share index, on a real Anvil: after each of several
splits and merges of 400 holders, with orders between them, `chain sync` mirrors each as one
`rebase` with no holder correction (the index rounds each ratio down exactly as `balanceOf`
does), and every `balanceOf`, the total supply and `chain reconcile` agree with `holders`.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select
from web3 import Web3

from ledger.chain.anvil import AnvilNode
from ledger.chain.keys import Operator
from ledger.chain.records import ChainTxRow
from ledger.chain.sync import sync_book
from ledger.clock import FixedClock
from ledger.domain.money import format_units, parse_units
from ledger.services.ledger import Ledger
from tests.test_chain_fixtures import (  # noqa: F401
    anvil_binary,
    anvil_node,
    operator,
    share_ledger,
    w3,
)
from tests.test_chain_sync import _assert_fund_mirrors
from tests.test_fund_share_index import populated

pytestmark = pytest.mark.anvil
BOOK = "BTC3L"
HOLDERS = 400


def test_several_index_splits_mirror_as_one_rebase_each(
    anvil_node: AnvilNode,  # noqa: F811
    w3: Web3,  # noqa: F811
    operator: Operator,  # noqa: F811
    share_ledger: Ledger,  # noqa: F811
) -> None:
    """Five splits and merges, a sync after each and orders in between: one rebase each, no
    correction, the mirror equal to the ledger every time."""
    lg = share_ledger
    clock = lg.clock
    assert isinstance(clock, FixedClock)
    funds = populated(lg, HOLDERS)
    sync_book(lg, BOOK, w3, operator)
    for n, (kind, ratio) in enumerate(
        (
            ("split", "1:10"),
            ("merge", "7:1"),
            ("split", "2:3"),
            ("merge", "1000:1"),
            ("split", "1:4"),
        )
    ):
        clock.moment += timedelta(minutes=1)
        funds.split(BOOK, ratio, kind=kind)
        shares = {r["holder"]: r["shares"] for r in funds.holders(BOOK)["holders"]}
        gone, part = sorted(shares)[n], sorted(shares)[n + 50]
        funds.redeem(BOOK, gone, shares=shares[gone])
        half = parse_units(shares[part], 18) // 2
        if half:
            funds.redeem(BOOK, part, shares=format_units(half, 18))
        funds.mint(BOOK, f"late{n}", cash="55.5")
        report = sync_book(lg, BOOK, w3, operator)
        assert report.failed_txs == 0 and report.rebases == 1
        _assert_fund_mirrors(lg, funds, anvil_node.rpc_url)
    with Session(lg.engine) as session:
        rebases = session.exec(select(ChainTxRow).where(ChainTxRow.kind == "rebase")).all()
    assert len(rebases) == 5
    assert all(r.succeeded and r.holders == 0 for r in rebases)  # no correction rode along
