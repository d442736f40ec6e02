"""Proof of liabilities over the ledger: a product's holder register at a sequence number,
its Merkle-sum tree, the root and each holder's proof (docs/proof-of-liabilities.md).

    from ledger.services.proof import liabilities_root, liability_proof
    root = liabilities_root(lg, "BTC3L", seq=12)      # LiabilitiesRoot(hash, sum, depth, seq)
    proof = liability_proof(lg, "BTC3L", "alice", seq=12)

The register is read in one snapshot (the head and the postings up to the seq); the book's
proof key is created the first time it is needed, in its own small transaction. Nothing else
is written, and the key never leaves this module except inside the holder secrets it derives.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ledger.domain.fund import accounts as acc
from ledger.domain.fund.product import RESERVED_HOLDER_IDS, check_holder_id
from ledger.domain.fund.shareindex import shares_of
from ledger.domain.fund.terms import Terms
from ledger.domain.proof import (
    ChainRef,
    LiabilitiesRoot,
    LiabilityProof,
    LiabilityTree,
    build_tree,
    check_proof,
    holder_secret,
)
from ledger.errors import Reason, Rejected
from ledger.services.funds import Funds
from ledger.services.ledger import Ledger
from ledger.services.share_index import index_at, index_splits
from ledger.storage import proof_store

KeySource = Callable[[int], bytes]


@dataclass(frozen=True)
class Register:
    """A product's holders and their share units as of `seq` (zero holdings left out).

    `units` are each holder's shares: their units under the share index at `seq`.
    `shares_outstanding` is minus the balance of equity:shares-outstanding at `seq`, folded
    from the same postings; `remainder` is what of it no holder shows (the index's split
    rounding, 0 in a book without an index), so a tree whose sum and remainder differ from it,
    or a negative remainder, points at a broken book.
    """

    book: str
    seq: int
    head_seq: int
    units: dict[str, int]
    shares_outstanding: int
    remainder: int = 0


@dataclass(frozen=True)
class Liabilities:
    """A product's register at a seq and its built tree: the root and every holder's proof."""

    terms: Terms
    register: Register
    tree: LiabilityTree
    key: bytes = field(repr=False)

    def root(self) -> LiabilitiesRoot:
        """Return the root (hash, sum, depth, seq)."""
        return self.tree.root()

    def proof(self, holder: str, *, chain: ChainRef | None = None) -> LiabilityProof:
        """Return `holder`'s proof; refuse a holder with no units at this seq."""
        holder = _canonical(holder)
        if holder not in self.register.units:
            raise Rejected(
                Reason.INSUFFICIENT_SHARES,
                f"{holder} holds no shares of {self.register.book} at seq {self.register.seq},"
                " so is not in the tree",
            )
        secret = holder_secret(self.key, holder, self.register.seq)
        found = self.tree.proof_for(book=self.register.book, holder=holder, secret=secret)
        return found if chain is None else replace(found, chain=chain)


def liabilities_at(
    lg: Ledger, product: str, *, seq: int | None = None, new_key: KeySource = secrets.token_bytes
) -> Liabilities:
    """Return `product`'s register and tree as of entry `seq` (default: the head).

    Refused: an unknown product (`unknown_product`), a seq outside 0..head (`unknown_entry`).
    """
    terms = Funds(lg).terms(product)
    return _built(lg, terms, register_at(lg, terms, seq=seq), new_key)


def liabilities_root(lg: Ledger, product: str, *, seq: int | None = None) -> LiabilitiesRoot:
    """Return the root (hash, sum, depth, seq) of `product`'s holders at `seq` (default head)."""
    return liabilities_at(lg, product, seq=seq).root()


def liability_proof(
    lg: Ledger,
    product: str,
    holder: str,
    *,
    seq: int | None = None,
    chain: ChainRef | None = None,
    new_key: KeySource = secrets.token_bytes,
) -> LiabilityProof:
    """Return `holder`'s proof in `product` at `seq` (default head), naming `chain` if given.

    Refused before anything is built or written: an unknown holder (`unknown_account`), a
    seq outside 0..head (`unknown_entry`), a holder with no units at it (`insufficient_shares`).
    """
    terms = Funds(lg).terms(product)
    holder = _canonical(holder)
    with lg.reading() as unit:
        known = proof_store.account_exists(unit.connection, terms.book, acc.HOLDER_PREFIX + holder)
    if not known:
        raise Rejected(Reason.UNKNOWN_ACCOUNT, f"{holder} has no account in {product}")
    register = register_at(lg, terms, seq=seq)
    if holder not in register.units:
        raise Rejected(
            Reason.INSUFFICIENT_SHARES,
            f"{holder} holds no shares of {product} at seq {register.seq}, so is not in the tree",
        )
    return _built(lg, terms, register, new_key).proof(holder, chain=chain)


def _built(lg: Ledger, terms: Terms, register: Register, new_key: KeySource) -> Liabilities:
    key = book_key(lg, terms.book, new_key=new_key)
    tree = build_tree(key=key, seq=register.seq, register=register.units)
    return Liabilities(terms, register, tree, key)


def check_against_ledger(lg: Ledger, proof: LiabilityProof) -> str | None:
    """Return None if `proof` verifies against the ledger's own tree at its seq, else why.

    Stronger than the holder's offline check: the secret must be the one the book's key
    derives for this holder and seq, and the root the one the ledger rebuilds.
    """
    terms = Funds(lg).terms(proof.book)
    head = lg.head(terms.book)[0]
    if not 0 <= proof.seq <= head:
        return f"{proof.book} has no seq {proof.seq} (head {head})"
    found = liabilities_at(lg, proof.book, seq=proof.seq)
    if holder_secret(found.key, proof.holder, proof.seq) != proof.secret:
        return f"the secret is not the book's secret for {proof.holder} at seq {proof.seq}"
    return check_proof(proof, published=found.root())


def book_key(lg: Ledger, book: str, *, new_key: KeySource = secrets.token_bytes) -> bytes:
    """Return a book's proof key, creating it (32 random bytes) the first time."""
    with lg.reading() as unit:
        found = proof_store.load_key(unit.connection, book)
    if found is not None:
        return found
    with lg.unit_of_work() as uow:
        return proof_store.save_key_once(uow.connection, book, new_key(32))


def register_at(lg: Ledger, terms: Terms, *, seq: int | None = None) -> Register:
    """Return the holder register of a product's book at `seq`, read in one snapshot."""
    book, share = terms.book, terms.share_asset.code
    with lg.reading() as unit:
        head = unit.head(book)[0]
        at = head if seq is None else seq
        if not 0 <= at <= head:
            raise Rejected(Reason.UNKNOWN_ENTRY, f"{book} has no seq {at}: its head is {head}")
        units = proof_store.holder_units_at(unit.connection, book, share, at)
        outstanding = -proof_store.account_units_at(
            unit.connection, book, acc.SHARES_OUTSTANDING, share, at
        )
    index = index_at(index_splits(lg, book), at)
    if index:
        shown = {h: shares_of(u, index) for h, u in units.items()}
        units = {h: s for h, s in shown.items() if s}
    return Register(book, at, head, units, outstanding, outstanding - sum(units.values()))


def _canonical(holder: str) -> str:
    """Return a holder id as the book spells it (the treasury's id is read, not minted to)."""
    if holder.lower() in RESERVED_HOLDER_IDS:
        return holder.lower()
    return check_holder_id(holder)
