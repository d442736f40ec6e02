"""Build the Merkle-sum tree of a holder register, fast, and read proofs out of it.

The build is the hot path (a million holders in a few seconds): per holder one HMAC (from
precomputed inner and outer SHA-256 states), one commitment hash and one leaf hash; then one
hash per inner node. Nodes are handled as 64-byte strings `hash || u256(sum)`, which is exactly
how a parent's preimage spells its children, so a parent costs one concatenation and one
hash. Padding is not materialised: a level keeps its real nodes only and a missing right
sibling is the all-padding subtree of that height, whose hash is a constant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ledger.domain.proof.hashing import (
    EMPTY_HASH,
    MAX_DEPTH,
    SUM_LIMIT,
    TAG_COMMITMENT,
    TAG_INNER,
    TAG_LEAF,
    check_key,
    commitment_of,
    empty_subtree_hashes,
    u256,
)
from ledger.domain.proof.values import LiabilitiesRoot, LiabilityProof, Node
from ledger.errors import Reason, Rejected, invariant

NODE = 64  # bytes per stored node: hash || u256(sum)
ZERO_SUM = bytes(32)
_IPAD = bytes(0x36 for _ in range(64))
_OPAD = bytes(0x5C for _ in range(64))


@dataclass(frozen=True, slots=True)
class LiabilityTree:
    """A built tree. `leaves` holds `commitment || u256(units)` per leaf in leaf order;
    `levels[k]` the real nodes of level k as `hash || u256(sum)` (level 0: the leaves).
    """

    seq: int
    depth: int
    count: int
    leaves: bytes
    levels: tuple[bytes, ...]

    def root(self) -> LiabilitiesRoot:
        """Return the root (hash, sum, depth, seq); an empty register is one padding leaf."""
        top = self.levels[self.depth]
        if not top:
            return LiabilitiesRoot(EMPTY_HASH, 0, 0, self.seq)
        return LiabilitiesRoot(top[:32], int.from_bytes(top[32:64]), self.depth, self.seq)

    def index_of(self, commitment: bytes) -> int | None:
        """Return the leaf index of a commitment (binary search on the leaf order), or None."""
        low, high = 0, self.count
        while low < high:
            mid = (low + high) // 2
            if self.leaves[mid * NODE : mid * NODE + 32] < commitment:
                low = mid + 1
            else:
                high = mid
        if low < self.count and self.leaves[low * NODE : low * NODE + 32] == commitment:
            return low
        return None

    def leaf(self, index: int) -> tuple[bytes, int]:
        """Return (commitment, units) of leaf `index`."""
        record = self.leaves[index * NODE : (index + 1) * NODE]
        return record[:32], int.from_bytes(record[32:])

    def path(self, index: int) -> tuple[Node, ...]:
        """Return the siblings of leaf `index` from level 0 up to the root's children."""
        invariant(0 <= index < max(self.count, 1), "leaf index out of range", index=index)
        empty = empty_subtree_hashes(self.depth)
        siblings = []
        for level in range(self.depth):
            nodes = self.levels[level]
            sibling = index ^ 1
            if sibling * NODE < len(nodes):
                at = sibling * NODE
                siblings.append(Node(nodes[at : at + 32], int.from_bytes(nodes[at + 32 : at + 64])))
            else:
                siblings.append(Node(empty[level], 0))
            index >>= 1
        return tuple(siblings)

    def proof_for(self, *, book: str, holder: str, secret: bytes) -> LiabilityProof:
        """Return the proof of `holder` whose secret at this seq is `secret`."""
        commitment = commitment_of(secret, holder)
        index = self.index_of(commitment)
        if index is None:
            raise Rejected(
                Reason.INSUFFICIENT_SHARES,
                f"{holder} holds no shares of {book} at seq {self.seq}, so is not in the tree",
            )
        root = self.root()
        return LiabilityProof(
            book=book,
            holder=holder,
            seq=self.seq,
            secret=secret,
            commitment=commitment,
            units=self.leaf(index)[1],
            index=index,
            depth=self.depth,
            path=self.path(index),
            root=Node(root.hash, root.sum),
        )


def build_tree(*, key: bytes, seq: int, register: Mapping[str, int]) -> LiabilityTree:
    """Build the tree of `register` {holder id: share units} at `seq` with a book's proof key.

    Holders with zero units are left out; negative units or a total of 2**256 or more are
    refused (`amount_out_of_range`).
    """
    records = leaf_records(key=key, seq=seq, register=register)
    records.sort()
    return build_sorted(seq, records)


def leaf_records(*, key: bytes, seq: int, register: Mapping[str, int]) -> list[bytes]:
    """Return `commitment || u256(units)` of every holder with units, in register order.

    The hot loop of the build: the holder secret is HMAC-SHA256 computed from the key's
    precomputed inner and outer states (RFC 2104, the same bytes as `holder_secret`).
    """
    sha = hashlib.sha256
    block = check_key(key) + bytes(32)  # HMAC: a 32-byte key padded to SHA-256's 64-byte block
    inner = sha(bytes(a ^ b for a, b in zip(block, _IPAD, strict=True)))
    outer = sha(bytes(a ^ b for a, b in zip(block, _OPAD, strict=True)))
    tail = b"\x00" + u256(seq)
    records: list[bytes] = []
    append, inner_copy, outer_copy = records.append, inner.copy, outer.copy
    try:
        for holder, units in register.items():
            if not units:
                continue
            name = holder.encode()
            h = inner_copy()
            h.update(name + tail)
            s = outer_copy()
            s.update(h.digest())
            append(sha(TAG_COMMITMENT + s.digest() + name).digest() + units.to_bytes(32, "big"))
    except OverflowError:
        raise _refusal(register) from None
    return records


def build_tree_from_leaves(seq: int, leaves: Iterable[tuple[bytes, int]]) -> LiabilityTree:
    """Build the tree of (commitment, units) leaves (any order; zero units left out)."""
    records = []
    for commitment, units in leaves:
        invariant(len(commitment) == 32, "a commitment is 32 bytes")
        if units:
            records.append(commitment + u256(units))
    records.sort()
    return build_sorted(seq, records)


def _refusal(register: Mapping[str, int]) -> Rejected:
    for holder, units in register.items():
        if not 0 <= units < SUM_LIMIT:
            return Rejected(
                Reason.AMOUNT_OUT_OF_RANGE,
                f"holder {holder} has {units} units: a register holds 0 <= units < 2**256",
            )
    return Rejected(Reason.AMOUNT_OUT_OF_RANGE, "the register's total is 2**256 or more")


def build_sorted(seq: int, records: list[bytes]) -> LiabilityTree:
    """Hash leaf records sorted by commitment level by level up to the root."""
    sha = hashlib.sha256
    count = len(records)
    depth = max(count - 1, 0).bit_length()
    invariant(depth <= MAX_DEPTH, "a tree has at most 2**64 leaves")
    nodes = [sha(TAG_LEAF + r).digest() + r[32:] for r in records]
    sums = [int.from_bytes(r[32:]) for r in records]
    levels = [b"".join(nodes)]
    pad = EMPTY_HASH + ZERO_SUM
    try:
        for _ in range(depth):
            if len(nodes) % 2:
                nodes.append(pad)
                sums.append(0)
            sums = [a + b for a, b in zip(sums[0::2], sums[1::2], strict=True)]
            nodes = [
                sha(TAG_INNER + a + b).digest() + s.to_bytes(32, "big")
                for a, b, s in zip(nodes[0::2], nodes[1::2], sums, strict=True)
            ]
            levels.append(b"".join(nodes))
            pad = sha(TAG_INNER + pad + pad).digest() + ZERO_SUM
    except OverflowError:
        raise Rejected(
            Reason.AMOUNT_OUT_OF_RANGE, "the register's total is 2**256 or more"
        ) from None
    return LiabilityTree(
        seq=seq, depth=depth, count=count, leaves=b"".join(records), levels=tuple(levels)
    )
