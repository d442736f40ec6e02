"""The proof-of-liabilities root on a real Anvil: anchored once per seq, verified by eth_call.

The tree is built here by hand with hashlib, straight from the shared spec
(/work/briefs/pol-spec.md, docs/), independent of the Python tree module: the contract must
agree with the spec, not with another implementation of it.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from web3 import Web3
from web3.exceptions import ContractCustomError

from ledger.chain.deployment import attach
from ledger.chain.keys import Operator
from ledger.chain.liabilities import (
    LiabilitiesRoot,
    Node,
    anchor_liabilities,
    liabilities_root,
    verify_liability,
)
from ledger.chain.sync import sync_book
from ledger.errors import Rejected
from ledger.services.ledger import Ledger
from tests.chain_support import holder_balances, mint_draft, open_holders, open_share_book
from tests.conftest import T0
from tests.test_chain_fixtures import anvil_binary, anvil_node, operator, share_ledger, w3  # noqa: F401

pytestmark = pytest.mark.anvil
BOOK = "BTC3L"
EMPTY = (bytes(32), 0)
PROOF_KEY = b"\x5a" * 32  # a made-up book proof key


def sha(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def u256(x: int) -> bytes:
    return x.to_bytes(32, "big")


def commitment(holder: str, seq: int) -> bytes:
    secret = hmac.new(PROOF_KEY, holder.encode() + b"\x00" + u256(seq), hashlib.sha256).digest()
    return sha(b"\x00", secret, holder.encode())


def build(register: dict[str, int], seq: int) -> tuple[list[list[tuple[bytes, int]]], list[bytes]]:
    """Return the tree's levels (leaves first) and the leaves' commitments, per the spec."""
    leaves = sorted((commitment(h, seq), u) for h, u in register.items() if u)
    level = [(sha(b"\x01", c, u256(u)), u) for c, u in leaves]
    size = 1
    while size < len(level):
        size *= 2
    level += [EMPTY] * (size - len(level))
    levels = [level]
    while len(level) > 1:
        level = [
            (sha(b"\x02", lh, u256(ls), rh, u256(rs)), ls + rs)
            for (lh, ls), (rh, rs) in zip(level[::2], level[1::2], strict=True)
        ]
        levels.append(level)
    return levels, [c for c, _ in leaves]


def path(levels: list[list[tuple[bytes, int]]], index: int) -> list[Node]:
    return [Node(*levels[k][(index >> k) ^ 1]) for k in range(len(levels) - 1)]


@pytest.fixture
def mirrored(w3: Web3, operator: Operator, share_ledger: Ledger) -> Ledger:  # noqa: F811
    lg = share_ledger
    register = {"alice": 10**18 + 1, "bob": 7, "carol": 5 * 10**18, "dave": 123_456_789}
    open_share_book(lg, BOOK)
    open_holders(lg, BOOK, list(register))
    lg.post(mint_draft(BOOK, register, at=T0))
    sync_book(lg, BOOK, w3, operator)
    return lg


def test_every_leaf_verifies_on_chain_and_any_tampered_field_fails(
    w3: Web3,  # noqa: F811
    operator: Operator,  # noqa: F811
    mirrored: Ledger,
) -> None:
    """Anchor the root of a 4-holder register (padded to 4 leaves, depth 2); each holder's
    proof verifies with one eth_call; changing units, a sibling hash or sum, the index, the
    path length or the seq makes it fail (false, never a revert)."""
    lg = mirrored
    seq = lg.head(BOOK)[0]
    register = holder_balances(lg, BOOK)
    levels, commitments = build(register, seq)
    (root_hash, root_sum) = levels[-1][0]
    depth = len(levels) - 1
    assert depth == 2 and root_sum == sum(register.values())
    result = anchor_liabilities(
        lg, BOOK, w3, operator, seq=seq, root_hash=root_hash, root_sum=root_sum, depth=depth
    )
    assert not result.already_anchored and result.tx_hash is not None
    address = attach(lg, BOOK, w3).client.address
    assert result.address == address and result.chain_id == 31337
    assert liabilities_root(w3, address, seq) == LiabilitiesRoot(root_hash, root_sum, 2, seq)
    assert liabilities_root(w3, address, seq + 1) is None

    units_of = {c: u for c, u in sorted((commitment(h, seq), u) for h, u in register.items())}
    for index, c in enumerate(commitments):
        units, steps = units_of[c], path(levels, index)
        args = {"seq": seq, "commitment": c, "units": units, "index": index}
        assert verify_liability(w3, address, **args, path=steps)
        tampered = [
            {**args, "units": units + 1},
            {**args, "units": units - 1},
            {**args, "seq": seq + 1},
            {**args, "index": index ^ 1},
            {**args, "index": index + 4},
            {**args, "commitment": bytes(32)},
        ]
        for bad in tampered:
            assert not verify_liability(w3, address, **bad, path=steps), bad
        for k in range(depth):
            flipped = bytes([steps[k].hash[0] ^ 1]) + steps[k].hash[1:]
            for step in (
                Node(flipped, steps[k].sum),
                Node(steps[k].hash, steps[k].sum + 1),
            ):
                bad_path = [*steps[:k], step, *steps[k + 1 :]]
                assert not verify_liability(w3, address, **args, path=bad_path)
        assert not verify_liability(w3, address, **args, path=steps[:-1])
        assert not verify_liability(w3, address, **args, path=[*steps, steps[-1]])
    # A sibling sum that overflows uint256 is false, not a revert.
    steps = path(levels, 0)
    huge = [Node(steps[0].hash, 2**256 - 1), steps[1]]
    args = {"seq": seq, "commitment": commitments[0], "units": units_of[commitments[0]]}
    assert not verify_liability(w3, address, **args, index=0, path=huge)


def test_a_second_anchor_for_the_same_seq_reverts(
    w3: Web3,  # noqa: F811
    operator: Operator,  # noqa: F811
    mirrored: Ledger,
) -> None:
    """Write-once per seq: the same root again is a no-op, another one is refused, and the
    contract itself reverts LiabilitiesAlreadyAnchored(seq)."""
    lg = mirrored
    seq = lg.head(BOOK)[0]
    root = {"seq": seq, "root_hash": b"\x42" * 32, "root_sum": 99, "depth": 3}
    assert not anchor_liabilities(lg, BOOK, w3, operator, **root).already_anchored
    assert anchor_liabilities(lg, BOOK, w3, operator, **root).already_anchored
    with pytest.raises(Rejected, match="another liabilities root is anchored"):
        anchor_liabilities(lg, BOOK, w3, operator, **{**root, "root_sum": 100})
    client = attach(lg, BOOK, w3, operator).client
    selector = "0x" + Web3.keccak(text="LiabilitiesAlreadyAnchored(uint64)").hex()[:8]
    with pytest.raises(ContractCustomError, match=selector):
        client.contract.functions.anchorLiabilities(seq, b"\x43" * 32, 1, 1).call(
            {"from": operator.address}
        )
    sent = client.send([client.anchor_liabilities_call(seq, b"\x43" * 32, 1, 1)])[0]
    assert not sent.succeeded
    assert liabilities_root(w3, client.address, seq) == LiabilitiesRoot(b"\x42" * 32, 99, 3, seq)
    # Depth beyond 64 reverts on chain (the wrapper refuses it before sending).
    with pytest.raises(ContractCustomError):
        client.contract.functions.anchorLiabilities(seq + 1, b"\x43" * 32, 1, 65).call(
            {"from": operator.address}
        )
    with pytest.raises(Rejected, match="depth 65"):
        anchor_liabilities(lg, BOOK, w3, operator, **{**root, "seq": seq + 1, "depth": 65})
    # Logged for indexers: LiabilitiesAnchored(seq indexed, rootHash, rootSum, depth).
    logs = client.contract.events.LiabilitiesAnchored.get_logs(from_block=0)
    assert [(e.args.seq, e.args.rootSum, e.args.depth) for e in logs] == [(seq, 99, 3)]


def test_an_empty_register_anchors_an_all_zero_root(
    w3: Web3,  # noqa: F811
    operator: Operator,  # noqa: F811
    mirrored: Ledger,
) -> None:
    """No holder: one empty leaf, depth 0, hash zero and sum zero; still "anchored"."""
    lg = mirrored
    levels, commitments = build({}, 1)
    assert levels == [[EMPTY]] and commitments == []
    anchor_liabilities(lg, BOOK, w3, operator, seq=1, root_hash=bytes(32), root_sum=0, depth=0)
    address = attach(lg, BOOK, w3).client.address
    assert liabilities_root(w3, address, 1) == LiabilitiesRoot(bytes(32), 0, 0, 1)
    # A one-leaf tree: the leaf is the root, its proof is empty, index must be 0.
    levels, (c,) = build({"solo": 5}, 2)
    ((leaf_hash, _),) = levels[0]
    anchor_liabilities(lg, BOOK, w3, operator, seq=2, root_hash=leaf_hash, root_sum=5, depth=0)
    assert verify_liability(w3, address, seq=2, commitment=c, units=5, index=0, path=[])
    assert not verify_liability(w3, address, seq=2, commitment=c, units=5, index=1, path=[])
