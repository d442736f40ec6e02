"""Anchor a book's journal head on chain, and check the database against every anchor.

`anchor_book` writes (head seq, head hash) to the mirror contract. `verify_anchors` reads every
anchor back and compares it with the hash the database now holds for that entry: a history that
was rewritten and re-hashed end to end still passes the database's own chain check, but its
hashes no longer match what was anchored before the rewrite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from web3 import Web3

from ledger.chain import records
from ledger.chain.anvil import chain_dir as anvil_chain_dir
from ledger.chain.anvil import default_rpc_url
from ledger.chain.deployment import attach, require_share_book
from ledger.chain.keys import Operator
from ledger.chain.records import ChainAnchorRow
from ledger.chain.rpc import connect
from ledger.clock import Clock, SystemClock
from ledger.domain.journal import to_micros
from ledger.errors import Reason, Rejected
from ledger.services.ledger import Ledger


@dataclass(frozen=True, slots=True)
class AnchorResult:
    """An anchor written (or found already written)."""

    book: str
    seq: int
    entry_hash: str
    tx_hash: str | None
    already_anchored: bool


@dataclass(frozen=True, slots=True)
class AnchorMismatch:
    """An anchor that the database no longer matches."""

    seq: int
    anchored_hash: str
    database_hash: str | None  # None: the database has no entry with this seq


@dataclass
class AnchorReport:
    """What `verify_anchors` found; `ok` only when every anchor matches the database."""

    book: str
    address: str
    anchors: int
    mismatches: list[AnchorMismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    @property
    def problem(self) -> str | None:
        if self.ok:
            return None
        first = self.mismatches[0]
        return (
            f"{len(self.mismatches)} of {self.anchors} anchors differ from the database;"
            f" first at seq {first.seq}"
        )


def anchor_book(
    lg: Ledger, book: str, w3: Web3, operator: Operator, *, clock: Clock | None = None
) -> AnchorResult:
    """Write the book's current head (seq, hash) to its mirror; a repeat is a no-op."""
    clock = clock or SystemClock()
    attached = attach(lg, book, w3, operator)
    seq, head_hash = lg.head(book)
    if seq == 0:
        raise Rejected(Reason.UNKNOWN_BOOK, f"book {book} has no entries to anchor")
    client = attached.client
    if bytes(client.view("anchorOf", seq)) == head_hash:
        return AnchorResult(book, seq, "0x" + head_hash.hex(), None, already_anchored=True)
    sent = client.send([client.anchor_call(seq, head_hash)])[0]
    if not sent.succeeded:
        raise Rejected(Reason.CHAIN, f"anchoring seq {seq} failed: an anchor for it differs")
    records.record_anchor(
        lg.engine,
        ChainAnchorRow(
            deployment_id=attached.deployment.id,
            seq=seq,
            entry_hash=head_hash,
            tx_hash=sent.tx_hash,
            recorded_us=to_micros(clock.now()),
        ),
    )
    return AnchorResult(book, seq, "0x" + head_hash.hex(), "0x" + sent.tx_hash.hex(), False)


def verify_anchors(
    lg: Ledger,
    book: str,
    *,
    rpc_url: str | None = None,
    allow_remote: bool = False,
    chain_dir: str | Path | None = None,
    w3: Web3 | None = None,
) -> AnchorReport:
    """Check every anchor of the book's mirror against the database's entry hashes.

    Uses `w3` if given; else `rpc_url`, else $TOKEN_LEDGER_RPC_URL, else the node that
    `token-ledger chain up --chain-dir DIR` started (`chain_dir`; default as `chain up`).
    Refuses (Reason.CHAIN) when no chain answers or the book has no live mirror.
    """
    require_share_book(lg, book)
    if w3 is None:
        url = rpc_url or default_rpc_url(anvil_chain_dir(chain_dir))
        if url is None:
            raise Rejected(
                Reason.CHAIN,
                "no chain: pass --rpc-url or --chain-dir, or run `token-ledger chain up`",
            )
        w3 = connect(url, allow_remote=allow_remote)
    client = attach(lg, book, w3).client
    anchors = client.anchors()
    head_seq = lg.head(book)[0]
    mismatches: list[AnchorMismatch] = []
    for seq, anchored in anchors:
        database_hash = lg.entry(book, seq).hash if 1 <= seq <= head_seq else None
        if database_hash != anchored:
            mismatches.append(
                AnchorMismatch(
                    seq,
                    "0x" + anchored.hex(),
                    None if database_hash is None else "0x" + database_hash.hex(),
                )
            )
    return AnchorReport(
        book=book, address=client.address, anchors=len(anchors), mismatches=mismatches
    )
