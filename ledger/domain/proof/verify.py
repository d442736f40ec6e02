"""Check a holder's proof: recompute the root from the leaf and the path, compare it.

A verifier needs no token-ledger: the checks below, in this order, are the whole algorithm
(docs/proof-of-liabilities.md, "Verifying").
"""

from __future__ import annotations

import hashlib

from ledger.domain.proof.hashing import (
    HASH_BYTES,
    MAX_DEPTH,
    SUM_LIMIT,
    TAG_INNER,
    TAG_LEAF,
    commitment_of,
)
from ledger.domain.proof.values import LiabilitiesRoot, LiabilityProof, Node


def recompute_root(
    commitment: bytes, units: int, index: int, path: tuple[Node, ...]
) -> Node | None:
    """Return the root (hash, sum) that leaf (commitment, units) at `index` and `path` imply.

    None when a units or a sum is negative or reaches 2**256 (no valid tree has one).
    """
    if not 0 <= units < SUM_LIMIT:
        return None
    sha = hashlib.sha256
    node_hash = sha(TAG_LEAF + commitment + units.to_bytes(32, "big")).digest()
    node_sum = units
    for level, sibling in enumerate(path):
        if not 0 <= sibling.sum < SUM_LIMIT:
            return None
        total = node_sum + sibling.sum
        if total >= SUM_LIMIT:
            return None
        mine = node_hash + node_sum.to_bytes(32, "big")
        theirs = sibling.hash + sibling.sum.to_bytes(32, "big")
        pair = theirs + mine if (index >> level) & 1 else mine + theirs
        node_hash, node_sum = sha(TAG_INNER + pair).digest(), total
    return Node(node_hash, node_sum)


def check_proof(proof: LiabilityProof, *, published: LiabilitiesRoot | None = None) -> str | None:
    """Return None if `proof` verifies, else a one-line reason.

    Without `published` the proof is checked against the root it carries; with it, the proof's
    seq, depth and root must also be the published ones (a chain anchor, `proof root`).
    """
    problem = _shape_problem(proof)
    if problem is not None:
        return problem
    if commitment_of(proof.secret, proof.holder) != proof.commitment:
        return "the commitment is not H(0x00 || secret || holder id)"
    found = recompute_root(proof.commitment, proof.units, proof.index, proof.path)
    if found is None:
        return "a sum on the path is negative or reaches 2**256"
    if found.hash != proof.root.hash:
        return f"the path leads to root hash {found.hash.hex()}, not {proof.root.hash.hex()}"
    if found.sum != proof.root.sum:
        return f"the path leads to root sum {found.sum}, not {proof.root.sum}"
    if published is not None:
        return _published_problem(proof, published)
    return None


def _shape_problem(proof: LiabilityProof) -> str | None:
    hashes = [proof.secret, proof.commitment, proof.root.hash, *(n.hash for n in proof.path)]
    if any(len(h) != HASH_BYTES for h in hashes):
        return "a secret, commitment or hash is not 32 bytes"
    if not 0 < proof.units < SUM_LIMIT:
        return f"units {proof.units} are not in 1..2**256-1 (zero holdings are not in the tree)"
    if not 0 <= proof.depth <= MAX_DEPTH:
        return f"depth {proof.depth} is not in 0..{MAX_DEPTH}"
    if len(proof.path) != proof.depth:
        return f"the path has {len(proof.path)} siblings for depth {proof.depth}"
    if not 0 <= proof.index < 2**proof.depth:
        return f"index {proof.index} is not in 0..2**{proof.depth}-1"
    if any(not 0 <= n.sum < SUM_LIMIT for n in proof.path):
        return "a sibling's sum is negative or reaches 2**256"
    if not 0 <= proof.root.sum < SUM_LIMIT:
        return "the root's sum is negative or reaches 2**256"
    if proof.seq < 0:
        return f"seq {proof.seq} is negative"
    return None


def _published_problem(proof: LiabilityProof, published: LiabilitiesRoot) -> str | None:
    if proof.seq != published.seq:
        return f"the proof is for seq {proof.seq}, the published root for seq {published.seq}"
    if proof.depth != published.depth:
        return f"the proof has depth {proof.depth}, the published root {published.depth}"
    if proof.root.hash != published.hash or proof.root.sum != published.sum:
        return (
            f"the proof's root ({proof.root.hash.hex()}, {proof.root.sum}) is not the published"
            f" root ({published.hash.hex()}, {published.sum}) at seq {published.seq}"
        )
    return None
