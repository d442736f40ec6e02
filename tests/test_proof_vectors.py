"""The proof-of-liabilities test vectors in docs/proof-of-liabilities.md match the code and an
independent implementation of the document (hashlib and hmac only).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path

from ledger.domain.proof import check_proof, commitment_of, holder_secret, leaf_hash
from ledger.domain.proof.proof_file import proof_json, read_proof
from ledger.domain.proof.tree import build_tree

DOC = Path(__file__).resolve().parent.parent / "docs" / "proof-of-liabilities.md"
KEY = bytes(range(32))
SEQ = 7
REGISTER = {"alice": 10**18, "bob": 25 * 10**17, "treasury": 17}


def _section() -> str:
    text = DOC.read_text()
    return text[text.index("## Test vectors") :]


def _vectors() -> dict[str, str]:
    block = re.search(r"```text\n(.*?)```", _section(), re.S)
    assert block is not None
    pairs = (line.split("=", 1) for line in block.group(1).splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, value in pairs}


def _documented_proof() -> dict[str, object]:
    block = re.search(r"```json\n(.*?)```", _section(), re.S)
    assert block is not None
    value = json.loads(block.group(1))
    assert isinstance(value, dict)
    return value


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _u256(x: int) -> bytes:
    return x.to_bytes(32, "big")


def test_the_document_states_the_register_it_hashes() -> None:
    """The vectors' prose names the key, seq and register this test uses."""
    section = _section()
    assert "seq 7" in section and "0x00 0x01 … 0x1f" in section
    assert "{alice: 1000000000000000000, bob: 2500000000000000000, treasury: 17}" in section


def test_secrets_commitments_and_leaves_match_an_independent_implementation() -> None:
    """Each holder's secret, commitment and leaf hash are the documented bytes."""
    vectors = _vectors()
    for holder, units in REGISTER.items():
        message = holder.encode() + b"\x00" + _u256(SEQ)
        secret = hmac.new(KEY, message, hashlib.sha256).digest()
        commitment = _h(b"\x00" + secret + holder.encode())
        leaf = _h(b"\x01" + commitment + _u256(units))
        assert vectors[f"secret.{holder}"] == secret.hex() == holder_secret(KEY, holder, SEQ).hex()
        assert vectors[f"commitment.{holder}"] == commitment.hex()
        assert commitment_of(secret, holder) == commitment
        assert vectors[f"leaf.{holder}"] == leaf.hex() == leaf_hash(commitment, units).hex()


def test_inner_nodes_and_root_match_an_independent_implementation() -> None:
    """Order by commitment, pad with one empty leaf, hash both levels: the documented root."""
    vectors = _vectors()
    ordered = vectors["order"].split()
    assert ordered == ["bob", "alice", "treasury", "empty"]
    leaves = [(bytes.fromhex(vectors[f"leaf.{n}"]), REGISTER[n]) for n in ordered[:3]]
    leaves.append((bytes(32), 0))
    commitments = [bytes.fromhex(vectors[f"commitment.{n}"]) for n in ordered[:3]]
    assert commitments == sorted(commitments)

    def inner(left: tuple[bytes, int], right: tuple[bytes, int]) -> tuple[bytes, int]:
        preimage = b"\x02" + left[0] + _u256(left[1]) + right[0] + _u256(right[1])
        return _h(preimage), left[1] + right[1]

    level1 = [inner(leaves[0], leaves[1]), inner(leaves[2], leaves[3])]
    top = inner(level1[0], level1[1])
    assert [n[0].hex() for n in level1] == [vectors["node.1.0"], vectors["node.1.1"]]
    assert [str(n[1]) for n in level1] == [vectors["node.1.0.sum"], vectors["node.1.1.sum"]]
    assert (top[0].hex(), str(top[1])) == (vectors["root.hash"], vectors["root.sum"])

    root = build_tree(key=KEY, seq=SEQ, register=REGISTER).root()
    assert root.hash.hex() == vectors["root.hash"]
    assert root.sum == int(vectors["root.sum"]) == 3_500_000_000_000_000_017
    assert root.depth == int(vectors["root.depth"]) == 2
    assert root.seq == SEQ


def test_alices_documented_proof_is_the_one_the_code_writes_and_it_verifies() -> None:
    """The documented proof file is byte-for-byte what the code writes, and it checks out."""
    tree = build_tree(key=KEY, seq=SEQ, register=REGISTER)
    proof = tree.proof_for(book="BTC3L", holder="alice", secret=holder_secret(KEY, "alice", SEQ))
    documented = _documented_proof()
    assert proof_json(proof) == documented
    assert read_proof(documented) == proof
    assert check_proof(read_proof(documented), published=tree.root()) is None
