"""The mirror contract on a real Anvil, and the committed artifacts against a fresh compile."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from web3 import Web3
from web3.exceptions import ContractCustomError

from ledger.chain.keys import Operator, anvil_dev_operator
from ledger.chain.token import TokenClient
from tests.conftest import require
from tests.test_chain_fixtures import anvil_binary, anvil_node, operator, w3  # noqa: F401

pytestmark = pytest.mark.anvil
ROOT = Path(__file__).resolve().parents[1]
E18 = 10**18


def _addr(i: int) -> str:
    return Web3.to_checksum_address(i.to_bytes(20, "big"))


@pytest.fixture
def token(w3: Web3, operator: Operator) -> TokenClient:  # noqa: F811
    client, _ = TokenClient.deploy(w3, operator, name="token-ledger T", symbol="T", decimals=18)
    return client


def test_artifacts_are_byte_for_byte_current() -> None:
    """contracts_abi/ equals a fresh compile with the pinned solc (standard-JSON input)."""
    node = shutil.which("node")
    has_solc = (ROOT / "node_modules" / "solc" / "package.json").is_file()
    require(node is not None and has_solc, "node and node_modules/solc (run `npm ci`)")
    result = subprocess.run(
        [str(node), "scripts/compile_contracts.js", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "contracts_abi is current" in result.stdout


def test_metadata_and_transfers_disabled(token: TokenClient) -> None:
    """The mirror is an ERC-20 whose holders cannot transfer or approve (ledger is the truth)."""
    assert (token.view("symbol"), token.view("decimals"), token.total_supply()) == ("T", 18, 0)
    disabled = "0x" + Web3.keccak(text="TransfersDisabled()").hex().removeprefix("0x")[:8]
    for fn in ("transfer", "approve"):
        with pytest.raises(ContractCustomError, match=disabled):
            getattr(token.contract.functions, fn)(_addr(1), 1).call()
    with pytest.raises(ContractCustomError, match=disabled):
        token.contract.functions.transferFrom(_addr(1), _addr(2), 1).call()


def test_only_the_owner_writes(token: TokenClient, w3: Web3) -> None:  # noqa: F811
    """A key other than the operator's cannot mint, rebase, mark or anchor."""
    intruder = TokenClient(w3, token.address, anvil_dev_operator(1))
    calls = [
        intruder.adjust_call(seq=1, rows=[(_addr(1), 0, 5)], epoch=0),
        intruder.mint_call([(_addr(1), 5)]),
        intruder.rebase_call(seq=1, num=2, den=1, supply_after_ratio=0, rows=[], epoch=0),
        intruder.mark_call(1),
        intruder.anchor_call(1, b"\x01" * 32),
    ]
    assert [s.succeeded for s in intruder.send(calls)] == [False] * len(calls)
    assert token.total_supply() == 0 and token.last_synced_seq() == 0


def test_adjust_is_keyed_so_a_replay_cannot_mint_twice(token: TokenClient) -> None:
    """batchAdjust moves holders from a stated balance; replaying it reverts and changes nothing."""
    call = token.adjust_call(seq=3, rows=[(_addr(1), 0, 5 * E18), (_addr(2), 0, 7)], epoch=0)
    first, replay = token.send([call, call])
    assert first.succeeded and not replay.succeeded
    assert token.balances([_addr(1), _addr(2)]) == [5 * E18, 7]
    assert token.total_supply() == 5 * E18 + 7
    burn = token.adjust_call(seq=3, rows=[(_addr(1), 5 * E18, 1)], epoch=0)
    assert token.send([burn])[0].succeeded
    assert token.total_supply() == 8
    stale = token.adjust_call(seq=2, rows=[(_addr(2), 7, 8)], epoch=0)
    assert token.send([token.mark_call(3), stale])[1].succeeded is False


def test_rebase_applies_each_ratio_once_rounding_down_like_the_ledger(token: TokenClient) -> None:
    """Split/merge is O(1): each balance is floor(old*num/den) per step, applied once per seq."""
    start = {_addr(i): 10**18 + 7 * i for i in range(1, 40)}
    token.send([token.adjust_call(seq=1, rows=[(a, 0, u) for a, u in start.items()], epoch=0)])
    expected = dict(start)
    steps = [(2, 3, 1), (3, 1, 7), (4, 5, 3)]
    for seq, num, den in steps:
        expected = {a: u * num // den for a, u in expected.items()}
        call = token.rebase_call(
            seq=seq,
            num=num,
            den=den,
            supply_after_ratio=sum(expected.values()),
            rows=[],
            epoch=token.epoch(),
        )
        sent = token.send([call, call])
        assert sent[0].succeeded and not sent[1].succeeded  # the same split never applies twice
        assert sent[0].gas_used < 150_000  # whatever the number of holders
    assert token.balances(list(expected)) == list(expected.values())
    assert token.total_supply() == sum(expected.values()) and token.last_synced_seq() == 4
    # A holder written after the splits (the dust holder) lands exactly at its new balance.
    holder = _addr(1)
    fix = token.adjust_call(seq=4, rows=[(holder, expected[holder], expected[holder] + 3)], epoch=3)
    assert token.send([fix])[0].succeeded
    assert token.balances([holder]) == [expected[holder] + 3]


def test_anchors_are_write_once_per_seq(token: TokenClient) -> None:
    """An anchor can be repeated identically but never changed; all are listed in order."""
    h1, h2 = b"\x11" * 32, b"\x22" * 32
    sent = token.send(
        [token.anchor_call(5, h1), token.anchor_call(5, h1), token.anchor_call(9, h2)]
    )
    assert all(s.succeeded for s in sent)
    assert not token.send([token.anchor_call(5, h2)])[0].succeeded
    assert not token.send([token.anchor_call(6, bytes(32))])[0].succeeded
    assert token.anchors() == [(5, h1), (9, h2)]


def test_ci_requires_the_npm_toolchain() -> None:
    """Under CI (CI=true, 1 or yes) anvil, node and solc from `npm ci` must be present."""
    from ledger.chain.anvil import find_anvil

    require(find_anvil() is not None, "anvil (run `npm ci` in the repository root)")
    node = shutil.which("node")
    require(node is not None and os.access(node, os.X_OK), "node")
    require((ROOT / "node_modules" / "solc").is_dir(), "node_modules/solc (run `npm ci`)")
