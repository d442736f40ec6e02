"""Proof of liabilities, pure: a Merkle-sum tree of a holder register.

The format and the algorithm are specified in docs/proof-of-liabilities.md. In short:
`build_tree(key=..., seq=..., register={holder: units})` builds the tree, `tree.root()` is
the published (hash, sum, depth, seq), `tree.proof_for(book=..., holder=..., secret=...)` is a
holder's proof and `check_proof(proof, published=root)` verifies one.
"""

from ledger.domain.proof.hashing import (
    EMPTY_HASH,
    FORMAT,
    MAX_DEPTH,
    commitment_of,
    holder_secret,
    inner_hash,
    leaf_hash,
    u256,
)
from ledger.domain.proof.tree import LiabilityTree, build_tree, build_tree_from_leaves
from ledger.domain.proof.values import ChainRef, LiabilitiesRoot, LiabilityProof, Node
from ledger.domain.proof.verify import check_proof, recompute_root

__all__ = [
    "EMPTY_HASH",
    "FORMAT",
    "MAX_DEPTH",
    "ChainRef",
    "LiabilitiesRoot",
    "LiabilityProof",
    "LiabilityTree",
    "Node",
    "build_tree",
    "build_tree_from_leaves",
    "check_proof",
    "commitment_of",
    "holder_secret",
    "inner_hash",
    "leaf_hash",
    "recompute_root",
    "u256",
]
