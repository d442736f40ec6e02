"""The values of a liability proof: nodes, a root, a holder's proof and a chain reference."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Node:
    """A tree node as a proof carries it: its hash (32 bytes) and sum (share base units)."""

    hash: bytes
    sum: int


@dataclass(frozen=True, slots=True)
class LiabilitiesRoot:
    """A tree's root at a sequence number: what is published and anchored.

    `sum` is in share base units and equals the shares outstanding at `seq`; `depth` is
    log2 of the padded leaf count.
    """

    hash: bytes
    sum: int
    depth: int
    seq: int


@dataclass(frozen=True, slots=True)
class ChainRef:
    """Where the root is anchored: a chain id and the share token's address ("0x...")."""

    chain_id: int
    address: str


@dataclass(frozen=True, slots=True)
class LiabilityProof:
    """One holder's proof of inclusion (the proof file, docs/proof-of-liabilities.md).

    `path[k]` is the sibling at level k (level 0: the leaves); bit k of `index` set means the
    node on the path at level k is the right child.
    """

    book: str
    holder: str
    seq: int
    secret: bytes
    commitment: bytes
    units: int
    index: int
    depth: int
    path: tuple[Node, ...]
    root: Node
    chain: ChainRef | None = None

    def published_root(self) -> LiabilitiesRoot:
        """Return the root this proof claims, with its depth and seq."""
        return LiabilitiesRoot(self.root.hash, self.root.sum, self.depth, self.seq)

    def contract_args(self) -> tuple[int, bytes, int, int, list[bytes], list[int]]:
        """Return the arguments of the share token's `verifyLiability` view for this proof:
        (seq, commitment, units, index, sibling hashes, sibling sums). The commitment check
        (step 1, which needs the secret) stays off chain: run `check_proof` for it.
        """
        hashes = [n.hash for n in self.path]
        sums = [n.sum for n in self.path]
        return self.seq, self.commitment, self.units, self.index, hashes, sums
