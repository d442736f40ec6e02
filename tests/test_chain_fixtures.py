"""Fixtures and helpers shared by the chain mirror tests (a real Anvil, no mocks).

Outside CI a missing anvil binary skips the tests with the reason; with CI=true it fails them.
Other test_chain_* modules import these fixtures by name.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from ledger.chain.anvil import STATE_FILE, AnvilNode, find_anvil, start_anvil, stop_anvil
from ledger.chain.keys import Operator, anvil_dev_operator
from ledger.chain.rpc import connect
from ledger.clock import FixedClock
from ledger.services.ledger import Ledger, open_ledger
from tests.conftest import T0, require

TRANSFER_TOPIC = "0x" + Web3.keccak(text="Transfer(address,address,uint256)").hex().removeprefix(
    "0x"
)


@pytest.fixture(scope="session")
def anvil_binary() -> Path:
    """The anvil binary from `npm ci` (node_modules/@foundry-rs/...)."""
    found = find_anvil()
    require(found is not None, "anvil (run `npm ci` in the repository root)")
    assert found is not None
    return found


@pytest.fixture
def anvil_node(anvil_binary: Path, tmp_path: Path) -> Iterator[AnvilNode]:
    """A fresh Anvil on a free loopback port, saving its state under tmp_path/chain."""
    workdir = tmp_path / "chain"
    node = start_anvil(workdir=workdir, state_path=workdir / STATE_FILE)
    try:
        yield node
    finally:
        stop_anvil(node)


@pytest.fixture
def w3(anvil_node: AnvilNode) -> Web3:
    return connect(anvil_node.rpc_url)


@pytest.fixture
def operator() -> Operator:
    return anvil_dev_operator(0)


@pytest.fixture
def share_ledger(tmp_path: Path) -> Iterator[Ledger]:
    """An initialised SQLite ledger (the mirror's records live in the same database)."""
    lg = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}", clock=FixedClock(T0))
    lg.init()
    try:
        yield lg
    finally:
        lg.close()


def raw_rpc(url: str, method: str, params: list[Any]) -> Any:
    """Send one JSON-RPC request with urllib (independent of web3 and of the adapter)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        reply = json.loads(response.read())
    assert "error" not in reply, reply
    return reply["result"]


def raw_balance_of(url: str, token: str, holder: str) -> int:
    """Return ERC-20 balanceOf(holder) through a hand-encoded eth_call."""
    data = "0x70a08231" + "00" * 12 + holder.lower().removeprefix("0x")
    return int(raw_rpc(url, "eth_call", [{"to": token, "data": data}, "latest"]), 16)


def raw_total_supply(url: str, token: str) -> int:
    """Return ERC-20 totalSupply() through a hand-encoded eth_call."""
    return int(raw_rpc(url, "eth_call", [{"to": token, "data": "0x18160ddd"}, "latest"]), 16)


def minted_per_address(url: str, token: str) -> dict[str, list[int]]:
    """Return every mint (Transfer from 0x0) per recipient address, from the chain's logs."""
    logs = raw_rpc(
        url,
        "eth_getLogs",
        [{"address": token, "fromBlock": "0x0", "toBlock": "latest", "topics": [TRANSFER_TOPIC]}],
    )
    mints: dict[str, list[int]] = {}
    for log in logs:
        source = "0x" + log["topics"][1][-40:]
        if int(source, 16) == 0:
            target = Web3.to_checksum_address("0x" + log["topics"][2][-40:])
            mints.setdefault(target, []).append(int(log["data"], 16))
    return mints
