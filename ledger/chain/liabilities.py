"""The proof-of-liabilities root on chain: anchor it, read it back, verify a proof with eth_call.

The tree itself (leaves, order, padding, proofs) is built elsewhere, by the shared spec
(docs/ proof of liabilities); this module only talks to the mirror contract:

    from ledger.chain.liabilities import (
        anchor_liabilities, liabilities_root, verify_liability, Node)
    result = anchor_liabilities(lg, "BTC3L", w3, operator,
                                seq=42, root_hash=h, root_sum=n, depth=d)
    root = liabilities_root(w3, address, 42)          # LiabilitiesRoot or None
    ok = verify_liability(w3, address, seq=42, commitment=c, units=u, index=i,
                          path=[Node(hash=..., sum=...), ...])

`anchorLiabilities` is owner-only and write-once per seq on chain; `anchor_liabilities` is a
no-op when the same root is already anchored at `seq` and refuses (Reason.CHAIN) a different
one. `liabilities_root` and `verify_liability` need no key and no database: a holder with a
proof file and any RPC endpoint can run them (so can `cast call`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from web3 import Web3

from ledger.chain.deployment import attach
from ledger.chain.keys import Operator
from ledger.chain.lock import book_lock
from ledger.chain.token import TokenClient
from ledger.domain.proof import LiabilityProof
from ledger.domain.proof.values import LiabilitiesRoot, Node
from ledger.errors import Reason, Rejected
from ledger.services.ledger import Ledger

MAX_DEPTH = 64
UINT256_LIMIT = 2**256
UINT64_LIMIT = 2**64


@dataclass(frozen=True, slots=True)
class LiabilitiesAnchorResult:
    """A root written (or found already written) at `seq`."""

    book: str
    address: str
    chain_id: int
    root: LiabilitiesRoot
    tx_hash: str | None  # None when it was already anchored
    already_anchored: bool


def _check_root(seq: int, root_hash: bytes, root_sum: int, depth: int) -> None:
    if not 0 <= seq < UINT64_LIMIT:
        raise Rejected(Reason.BAD_INPUT, f"seq {seq} does not fit uint64")
    if len(root_hash) != 32:
        raise Rejected(Reason.BAD_INPUT, "root hash must be 32 bytes")
    if not 0 <= root_sum < UINT256_LIMIT:
        raise Rejected(Reason.BAD_INPUT, f"root sum {root_sum} does not fit uint256")
    if not 0 <= depth <= MAX_DEPTH:
        raise Rejected(Reason.BAD_INPUT, f"depth {depth} is outside 0..{MAX_DEPTH}")


def anchor_liabilities(
    lg: Ledger,
    book: str,
    w3: Web3,
    operator: Operator,
    *,
    seq: int,
    root_hash: bytes,
    root_sum: int,
    depth: int,
) -> LiabilitiesAnchorResult:
    """Write the liabilities root of `book` at `seq` to its mirror (`anchorLiabilities`).

    Holds the book's chain lock. Refuses (Reason.CHAIN) when another root is anchored at `seq`
    or the transaction reverts; the same root again is a no-op (`already_anchored`).
    """
    _check_root(seq, root_hash, root_sum, depth)
    with book_lock(lg.engine, book):
        attached = attach(lg, book, w3, operator)
        client = attached.client
        wanted = LiabilitiesRoot(bytes(root_hash), root_sum, depth, seq)
        existing = _read_root(client, seq)
        if existing is not None:
            if existing != wanted:
                raise Rejected(
                    Reason.CHAIN,
                    f"{book}: another liabilities root is anchored at seq {seq}"
                    f" (0x{existing.hash.hex()}, sum {existing.sum})",
                )
            return LiabilitiesAnchorResult(
                book, client.address, attached.deployment.chain_id, existing, None, True
            )
        sent = client.send([client.anchor_liabilities_call(seq, root_hash, root_sum, depth)])[0]
        if not sent.succeeded:
            raise Rejected(Reason.CHAIN, f"{book}: anchoring liabilities at {seq} reverted")
        return LiabilitiesAnchorResult(
            book,
            client.address,
            attached.deployment.chain_id,
            wanted,
            "0x" + sent.tx_hash.hex(),
            False,
        )


def liabilities_root(w3: Web3, address: str, seq: int) -> LiabilitiesRoot | None:
    """Return the root anchored at `seq` by the mirror at `address`, or None when none is."""
    return _read_root(TokenClient(w3, address), seq)


def _read_root(client: TokenClient, seq: int) -> LiabilitiesRoot | None:
    # An empty register's root is all zero, so ask whether one is anchored at all.
    if not client.view("liabilitiesAnchored", seq):
        return None
    root_hash, root_sum, depth = client.view("liabilitiesRoot", seq)
    return LiabilitiesRoot(bytes(root_hash), int(root_sum), int(depth), seq)


def verify_liability(
    w3: Web3,
    address: str,
    *,
    seq: int,
    commitment: bytes,
    units: int,
    index: int,
    path: Sequence[Node],
) -> bool:
    """Return the contract's `verifyLiability` for a proof: one eth_call, no key needed.

    False for an unanchored seq or any mismatch (never a revert); values that do not fit the
    ABI (a negative or too large number, a hash not 32 bytes) are False too.
    """
    fits = (
        len(commitment) == 32
        and 0 <= seq < UINT64_LIMIT
        and 0 <= units < UINT256_LIMIT
        and 0 <= index < UINT256_LIMIT
        and all(len(s.hash) == 32 and 0 <= s.sum < UINT256_LIMIT for s in path)
    )
    if not fits:
        return False
    client = TokenClient(w3, address)
    return bool(
        client.view(
            "verifyLiability",
            seq,
            bytes(commitment),
            units,
            index,
            [bytes(s.hash) for s in path],
            [s.sum for s in path],
        )
    )


def anchor_book_liabilities(
    lg: Ledger, book: str, w3: Web3, operator: Operator, *, seq: int
) -> LiabilitiesAnchorResult:
    """Build `book`'s Merkle-sum tree of holders at `seq` (ledger.services.proof) and anchor
    its root beside the journal head anchored at that seq (`chain anchor` runs both)."""
    from ledger.services.proof import liabilities_root as ledger_root

    root = ledger_root(lg, book, seq=seq)
    return anchor_liabilities(
        lg,
        book,
        w3,
        operator,
        seq=root.seq,
        root_hash=root.hash,
        root_sum=root.sum,
        depth=root.depth,
    )


def proof_on_chain(w3: Web3, proof: LiabilityProof) -> tuple[bool, LiabilitiesRoot | None]:
    """Return whether the contract's `verifyLiability` accepts `proof` (one eth_call) and
    the root anchored at its seq (None: none is). The proof must name its chain."""
    if proof.chain is None:
        raise Rejected(Reason.BAD_INPUT, "the proof names no chain (its `chain` is null)")
    seq, commitment, units, index, hashes, sums = proof.contract_args()
    path = [Node(h, s) for h, s in zip(hashes, sums, strict=True)]
    ok = verify_liability(
        w3,
        proof.chain.address,
        seq=seq,
        commitment=commitment,
        units=units,
        index=index,
        path=path,
    )
    return ok, liabilities_root(w3, proof.chain.address, seq)
