"""The mirror contract on a real Anvil, and the committed artifacts against a fresh compile."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from web3 import Web3
from web3.exceptions import ContractCustomError

from ledger.chain.keys import Operator, anvil_dev_operator
from ledger.chain.token import (
    GAS_PER_HOLDER,
    GAS_PER_HOLDER_EPOCH,
    Call,
    Sent,
    TokenClient,
    encode_args,
)
from tests.conftest import require
from tests.test_chain_fixtures import anvil_binary, anvil_node, operator, w3  # noqa: F401

pytestmark = pytest.mark.anvil
ROOT = Path(__file__).resolve().parents[1]
E18 = 10**18
MAX_RATIO = 10**12
TX_GAS = 5_000_000


def _addr(i: int) -> str:
    return Web3.to_checksum_address(i.to_bytes(20, "big"))


def _selector(error: str) -> str:
    return "0x" + Web3.keccak(text=error).hex().removeprefix("0x")[:8]


def send(token: TokenClient, *calls: Call) -> list[Sent]:
    """Send `calls` with a fixed, ample gas limit (the tests check reverts, not sizing)."""
    return token.send([replace(c, gas=c.gas or TX_GAS) for c in calls])


def ok(token: TokenClient, *calls: Call) -> list[bool]:
    return [s.succeeded for s in send(token, *calls)]


def adjust(
    token: TokenClient,
    rows: list[tuple[str, int, int]],
    *,
    expected: int = 0,
    seq: int | None = None,
) -> Call:
    return token.adjust_call(expected_seq=expected, seq=expected if seq is None else seq, rows=rows)


def rebase(
    token: TokenClient,
    *,
    seq: int,
    num: int,
    den: int,
    rows: list[tuple[str, int, int]] | None = None,
) -> Call:
    state = token.sync_state()
    return token.rebase_call(
        expected_seq=state.last_synced_seq,
        expected_writes=state.write_count,
        seq=seq,
        num=num,
        den=den,
        rows=rows or [],
    )


def mark(token: TokenClient, seq: int) -> Call:
    state = token.sync_state()
    return token.mark_call(
        expected_seq=state.last_synced_seq, expected_writes=state.write_count, seq=seq
    )


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
    disabled = _selector("TransfersDisabled()")
    for fn in ("transfer", "approve"):
        with pytest.raises(ContractCustomError, match=disabled):
            getattr(token.contract.functions, fn)(_addr(1), 1).call()
    with pytest.raises(ContractCustomError, match=disabled):
        token.contract.functions.transferFrom(_addr(1), _addr(2), 1).call()
    abi_names = {item.get("name") for item in token.contract.abi}
    assert not abi_names & {"batchMint", "batchBurn"}  # every write is keyed, or gone


def _every_write(client: TokenClient) -> list[Call]:
    return [
        client.adjust_call(expected_seq=0, seq=1, rows=[(_addr(1), 0, 5)], gas=TX_GAS),
        client.rebase_call(
            expected_seq=0, expected_writes=0, seq=1, num=2, den=1, rows=[], gas=TX_GAS
        ),
        client.mark_call(expected_seq=0, expected_writes=0, seq=1),
        client.catch_up_call([_addr(1)], 5, gas=TX_GAS),
        client.anchor_call(1, b"\x01" * 32),
        client.anchor_liabilities_call(1, b"\x01" * 32, 5, 0),
    ]


def test_only_the_owner_writes_and_ownership_moves_in_two_steps(
    token: TokenClient,
    w3: Web3,  # noqa: F811
) -> None:
    """A non-owner cannot write; ownership moves only when accepted; the old owner is then out."""
    intruder = TokenClient(w3, token.address, anvil_dev_operator(1))
    assert ok(intruder, *_every_write(intruder)) == [False] * 6
    assert token.total_supply() == 0 and token.last_synced_seq() == 0
    # No renounce: an owner-less mirror could never follow the ledger again.
    with pytest.raises(ContractCustomError, match=_selector("RenounceDisabled()")):
        token.contract.functions.renounceOwnership().call({"from": token.operator.address})  # type: ignore[union-attr]

    new_owner = anvil_dev_operator(2)
    transfer = token.contract.functions.transferOwnership(new_owner.address)
    data = bytes.fromhex(transfer._encode_transaction_data()[2:])
    assert ok(token, Call("owner", 0, data, 100_000)) == [True]
    assert token.owner() == token.operator.address  # type: ignore[union-attr]
    assert token.view("pendingOwner") == new_owner.address
    successor = TokenClient(w3, token.address, new_owner)
    accept = bytes.fromhex(
        token.contract.functions.acceptOwnership()._encode_transaction_data()[2:]
    )
    assert ok(successor, Call("owner", 0, accept, 100_000)) == [True]
    assert token.owner() == new_owner.address
    assert ok(token, *_every_write(token)) == [False] * 6  # the old owner cannot write
    assert ok(successor, successor.adjust_call(expected_seq=0, seq=1, rows=[(_addr(1), 0, 5)])) == [
        True
    ]


def test_adjust_is_keyed_so_a_replay_cannot_mint_twice(token: TokenClient) -> None:
    """batchAdjust moves holders from a stated balance; replaying it reverts and changes nothing."""
    call = adjust(token, [(_addr(1), 0, 5 * E18), (_addr(2), 0, 7)], seq=3)
    assert ok(token, call, call) == [True, False]
    assert token.balances([_addr(1), _addr(2)]) == [5 * E18, 7]
    assert token.total_supply() == 5 * E18 + 7
    assert ok(token, adjust(token, [(_addr(1), 5 * E18, 1)], seq=3)) == [True]
    assert token.total_supply() == 8
    assert token.sync_state().write_count == 2


def test_a_stale_adjust_after_a_newer_mark_synced_reverts(token: TokenClient) -> None:
    """batchAdjust is compare-and-set on lastSyncedSeq: a batch read before a markSynced fails.

    Without it, a batch computed from an older snapshot (holder 0 -> 5) could land after the
    other run's markSynced(3) and leave a wrong balance marked synced.
    """
    stale = adjust(token, [(_addr(1), 0, 5)], expected=0, seq=2)
    assert ok(token, mark(token, 3)) == [True]
    sent = send(token, stale)
    assert not sent[0].succeeded
    assert token.balances([_addr(1)]) == [0] and token.total_supply() == 0
    with pytest.raises(ContractCustomError, match=_selector("StaleSeq(uint64,uint64)")):
        token.contract.functions.batchAdjust(0, 2, [_addr(1)], [0], [5]).call(
            {"from": token.operator.address}  # type: ignore[union-attr]
        )
    assert ok(token, adjust(token, [(_addr(1), 0, 5)], expected=3, seq=3)) == [True]


def test_mark_synced_and_rebase_need_the_expected_seq_and_write_count(
    token: TokenClient,
) -> None:
    """markSynced/rebase revert after a write they did not expect, and seqs only increase."""
    state = token.sync_state()
    assert (state.last_synced_seq, state.write_count, state.epoch) == (0, 0, 0)
    mark_after_none = token.mark_call(expected_seq=0, expected_writes=0, seq=4)
    assert ok(token, adjust(token, [(_addr(1), 0, 9)]), mark_after_none) == [True, False]
    assert ok(token, token.mark_call(expected_seq=0, expected_writes=1, seq=4)) == [True]
    assert ok(token, token.mark_call(expected_seq=4, expected_writes=1, seq=4)) == [False]
    assert ok(token, token.mark_call(expected_seq=4, expected_writes=1, seq=3)) == [False]
    # The ledger's seq is a signed 64-bit integer: 2^64 - 1 would end the mirror for good.
    assert ok(token, token.mark_call(expected_seq=4, expected_writes=1, seq=2**64 - 1)) == [False]
    assert ok(token, token.mark_call(expected_seq=4, expected_writes=1, seq=2**63)) == [False]
    stale_rebase = token.rebase_call(
        expected_seq=4, expected_writes=0, seq=5, num=2, den=1, rows=[], gas=TX_GAS
    )
    assert ok(token, stale_rebase) == [False]
    assert token.sync_state().last_synced_seq == 4 and token.epoch() == 0


def test_ratios_are_bounded_to_what_the_ledger_allows(token: TokenClient) -> None:
    """0, 1:1 and anything over 10^12 revert; 10^12 itself applies, without overflow."""
    assert ok(token, adjust(token, [(_addr(1), 0, 2**150 + 3)])) == [True]
    bad = [(0, 1), (1, 0), (7, 7), (MAX_RATIO + 1, 1), (1, MAX_RATIO + 1), (2**128 - 1, 1)]
    for num, den in bad:
        assert ok(token, rebase(token, seq=1, num=num, den=den)) == [False], (num, den)
    assert ok(token, rebase(token, seq=1, num=MAX_RATIO, den=1)) == [True]
    assert ok(token, rebase(token, seq=2, num=1, den=MAX_RATIO)) == [True]
    assert token.balances([_addr(1)]) == [(2**150 + 3) * MAX_RATIO // MAX_RATIO]
    assert int(token.view("MAX_RATIO")) == MAX_RATIO


def test_rebase_applies_each_ratio_once_rounding_down_like_the_ledger(token: TokenClient) -> None:
    """Split/merge is O(1): each balance is floor(old*num/den) per step, applied once per seq.

    The supply is computed the ledger's way, floor(supply * num / den), not passed in.
    """
    start = {_addr(i): 10**18 + 7 * i for i in range(1, 40)}
    assert ok(token, adjust(token, [(a, 0, u) for a, u in start.items()])) == [True]
    expected = dict(start)
    supply = sum(start.values())
    for seq, num, den in [(2, 3, 1), (3, 1, 7), (4, 5, 3)]:
        expected = {a: u * num // den for a, u in expected.items()}
        supply = supply * num // den
        call = rebase(token, seq=seq, num=num, den=den)
        sent = send(token, call, call)
        assert sent[0].succeeded and not sent[1].succeeded  # the same split never applies twice
        assert sent[0].gas_used < 150_000  # whatever the number of holders
        assert token.total_supply() == supply
    assert token.balances(list(expected)) == list(expected.values())
    assert token.last_synced_seq() == 4
    # The dust (supply minus the rounded balances) goes to one holder in the rebase itself,
    # and the supply stays as computed.
    dust = supply - sum(expected.values())
    assert dust > 0
    treasury = _addr(999)
    assert ok(token, rebase(token, seq=5, num=2, den=1, rows=[(treasury, 0, 2 * dust)])) == [True]
    assert token.total_supply() == 2 * supply
    assert sum(token.balances([*expected, treasury])) == 2 * supply


def test_catch_up_moves_no_balance_and_gas_constants_cover_the_measured_costs(
    token: TokenClient,
) -> None:
    """catchUp re-stores a far-behind holder without changing any balance; the measured
    per-holder and per-split costs stay within the constants the sync cuts batches with."""
    far, fresh = _addr(1), _addr(2)
    assert ok(token, adjust(token, [(_addr(100), 0, 1)])) == [True]  # first-write slots
    one = send(token, adjust(token, [(_addr(101), 0, 1)]))[0]
    many = send(token, adjust(token, [(_addr(200 + i), 0, 1) for i in range(11)]))[0]
    assert 20_000 < (many.gas_used - one.gas_used) / 10 < GAS_PER_HOLDER
    assert ok(token, adjust(token, [(far, 0, 3**40), (fresh, 0, 3**40)])) == [True]
    splits = 40
    for seq in range(1, splits + 1):
        assert ok(token, rebase(token, seq=seq, num=2 if seq % 2 else 1, den=1 if seq % 2 else 3))
    far_units, fresh_units = token.balances([far, fresh])
    assert ok(token, adjust(token, [(fresh, fresh_units, fresh_units + 1)], expected=splits))
    state = token.sync_state()
    rows = [(far, far_units, far_units + 1)]
    behind = send(token, adjust(token, rows, expected=splits))[0]
    rows = [(fresh, fresh_units + 1, fresh_units + 2)]
    near = send(token, adjust(token, rows, expected=splits))[0]
    per_split = (behind.gas_used - near.gas_used) / splits
    assert 2_000 < per_split < GAS_PER_HOLDER_EPOCH, per_split
    assert token.sync_state().write_count == state.write_count + 2

    for seq in range(splits + 1, splits + 11):
        assert ok(token, rebase(token, seq=seq, num=3, den=2))
    before = token.balances([far, fresh])
    assert ok(token, token.catch_up_call([far, fresh], 4, gas=TX_GAS)) == [True]
    assert token.holdings([far, fresh])[0][1] == splits + 4
    assert token.balances([far, fresh]) == before
    assert ok(token, token.catch_up_call([far], 100, gas=TX_GAS)) == [True]
    assert token.holdings([far]) == [(before[0], splits + 10)]


def test_anchors_are_write_once_and_increase(token: TokenClient) -> None:
    """An anchor can be repeated identically but never changed, nor written below the last."""
    h1, h2 = b"\x11" * 32, b"\x22" * 32
    assert ok(token, token.anchor_call(5, h1), token.anchor_call(5, h1)) == [True, True]
    assert ok(token, token.anchor_call(9, h2)) == [True]
    assert ok(token, token.anchor_call(5, h2)) == [False]  # another hash at an anchored seq
    assert ok(token, token.anchor_call(7, h2)) == [False]  # below the last anchor
    assert ok(token, token.anchor_call(12, bytes(32))) == [False]  # zero hash
    assert ok(token, token.anchor_call(2**64 - 1, h1)) == [False]  # beyond the ledger's seqs
    assert token.anchors() == [(5, h1), (9, h2)]
    assert token.last_anchor_seq() == 9


def test_encode_args_matches_eth_abi() -> None:
    """The hand encoder gives eth_abi's bytes for static words followed by word arrays."""
    from eth_abi import encode

    words = [[(7).to_bytes(32, "big"), (9).to_bytes(32, "big")], []]
    assert encode_args([3, 4], words) == encode(
        ["uint64", "uint64", "uint256[]", "uint256[]"], [3, 4, [7, 9], []]
    )


def test_ci_requires_the_npm_toolchain() -> None:
    """Under CI (CI=true, 1 or yes) anvil, node and solc from `npm ci` must be present."""
    from ledger.chain.anvil import find_anvil

    require(find_anvil() is not None, "anvil (run `npm ci` in the repository root)")
    node = shutil.which("node")
    require(node is not None and os.access(node, os.X_OK), "node")
    require((ROOT / "node_modules" / "solc").is_dir(), "node_modules/solc (run `npm ci`)")
