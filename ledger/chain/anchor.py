"""Anchor a book's journal head on chain, and check the database against every anchor.

`anchor_book` writes (head seq, head hash) to the mirror contract and records the anchor with
the deployment it went to (chain id, address, deployment tx, owner). `verify_anchors` checks
every anchor the database recorded for the book, on every deployment it ever had, and every
anchor the live contract holds:

- the anchor's deployment was not retired (a chain reset retires it: the contract the anchor
  went to is gone, even if a redeploy lands at the same address); the chain under it is the
  connected one (chain id, genesis block), the contract is still there, was created by the
  recorded deployment transaction, and is still owned by the recorded owner; the deployment
  row still says what the anchor copied from it;
- the contract still holds the anchored hash at that seq;
- the database's entry at that seq still has that hash.

A reset chain (its anchors are gone), a swapped deployment, a changed owner and a rewritten
history (even one re-hashed end to end, which passes the database's own check) each fail,
naming the seq. What this proves depends on who runs the chain: see docs/chain.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from web3 import Web3

from ledger.chain import records
from ledger.chain.anvil import chain_dir as anvil_chain_dir
from ledger.chain.anvil import default_rpc_url
from ledger.chain.deployment import attach, genesis_hash, require_share_book
from ledger.chain.keys import Operator
from ledger.chain.lock import book_lock
from ledger.chain.records import AnchorRecord, ChainAnchorRow, Deployment
from ledger.chain.rpc import connect
from ledger.chain.token import TokenClient
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
    anchored_hash: str  # as the database recorded it (or the chain holds it, when unrecorded)
    database_hash: str | None  # None: the database has no entry with this seq
    reason: str = "the database's entry differs from the anchor (rewritten history)"


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
            f"{len(self.mismatches)} of {self.anchors} anchors fail;"
            f" first at seq {first.seq}: {first.reason}"
        )


def anchor_book(
    lg: Ledger, book: str, w3: Web3, operator: Operator, *, clock: Clock | None = None
) -> AnchorResult:
    """Write the book's current head (seq, hash) to its mirror; a repeat is a no-op.

    Holds the book's chain lock (refuses, Reason.BUSY, while a sync or anchor of it runs).
    """
    with book_lock(lg.engine, book):
        return _anchor(lg, book, w3, operator, clock or SystemClock())


def _anchor(lg: Ledger, book: str, w3: Web3, operator: Operator, clock: Clock) -> AnchorResult:
    attached = attach(lg, book, w3, operator)
    seq, head_hash = lg.head(book)
    if seq == 0:
        raise Rejected(Reason.UNKNOWN_BOOK, f"book {book} has no entries to anchor")
    client = attached.client
    deployment = attached.deployment
    if bytes(client.view("anchorOf", seq)) == head_hash:
        _record(lg, deployment, client, seq, head_hash, None, clock)
        return AnchorResult(book, seq, "0x" + head_hash.hex(), None, already_anchored=True)
    last = client.last_anchor_seq()
    if last is not None and last >= seq:
        raise Rejected(
            Reason.CHAIN, f"anchors must increase: seq {seq} is not after anchored seq {last}"
        )
    sent = client.send([client.anchor_call(seq, head_hash)])[0]
    if not sent.succeeded:
        raise Rejected(Reason.CHAIN, f"anchoring seq {seq} failed: an anchor for it differs")
    _record(lg, deployment, client, seq, head_hash, sent.tx_hash, clock)
    return AnchorResult(book, seq, "0x" + head_hash.hex(), "0x" + sent.tx_hash.hex(), False)


def _record(
    lg: Ledger,
    deployment: Deployment,
    client: TokenClient,
    seq: int,
    entry_hash: bytes,
    tx_hash: bytes | None,
    clock: Clock,
) -> None:
    """Record an anchor with the deployment it is on (a repeat of a recorded one is a no-op)."""
    records.record_anchor(
        lg.engine,
        ChainAnchorRow(
            deployment_id=deployment.id,
            seq=seq,
            entry_hash=entry_hash,
            tx_hash=tx_hash or bytes(32),
            recorded_us=to_micros(clock.now()),
            chain_id=deployment.chain_id,
            address=deployment.address,
            deploy_tx=deployment.deploy_tx,
            owner=client.owner(),
        ),
    )


def verify_anchors(
    lg: Ledger,
    book: str,
    *,
    rpc_url: str | None = None,
    allow_remote: bool = False,
    chain_dir: str | Path | None = None,
    w3: Web3 | None = None,
) -> AnchorReport:
    """Check every anchor of the book, recorded or on chain, against the chain and the journal.

    Uses `w3` if given; else `rpc_url`, else $TOKEN_LEDGER_RPC_URL, else the node that
    `token-ledger chain up --chain-dir DIR` started (`chain_dir`; default as `chain up`).
    Refuses (Reason.CHAIN) when no chain answers, or when the book has neither a recorded
    anchor nor a mirror. Every failing anchor is a mismatch with its reason (see the module).
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
    recorded = records.book_anchors(lg.engine, book)
    active = records.active_deployment(lg.engine, book)
    if active is None and not recorded:
        raise Rejected(Reason.CHAIN, f"book {book} has no mirror: run `token-ledger chain deploy`")
    checker = _Checker(lg, book, w3)
    found: dict[int, AnchorMismatch] = {}
    seqs: set[int] = set()
    for anchor in recorded:
        seqs.add(anchor.seq)
        mismatch = checker.recorded(anchor)
        if mismatch is not None:
            found.setdefault(anchor.seq, mismatch)
    address = active.address if active is not None else recorded[-1].deployment.address
    if active is not None and checker.deployment_problem(active) is None:
        # Anchors on the live contract that the database never recorded: check them too.
        for seq, anchored in checker.client(active).anchors():
            seqs.add(seq)
            mismatch = checker.journal(seq, anchored)
            if mismatch is not None:
                found.setdefault(seq, mismatch)
    mismatches = [found[seq] for seq in sorted(found)]
    return AnchorReport(book=book, address=address, anchors=len(seqs), mismatches=mismatches)


class _Checker:
    """The checks of `verify_anchors`, with the chain reads of each deployment done once."""

    def __init__(self, lg: Ledger, book: str, w3: Web3) -> None:
        self.lg = lg
        self.book = book
        self.w3 = w3
        self.head_seq = lg.head(book)[0]
        self.chain_id = int(w3.eth.chain_id)
        self.genesis = genesis_hash(w3)
        self._problems: dict[int, str | None] = {}
        self._clients: dict[int, TokenClient] = {}

    def client(self, deployment: Deployment) -> TokenClient:
        if deployment.id not in self._clients:
            self._clients[deployment.id] = TokenClient(self.w3, deployment.address)
        return self._clients[deployment.id]

    def deployment_problem(self, deployment: Deployment) -> str | None:
        """Why anchors on `deployment` cannot be on the connected chain, or None."""
        if deployment.id not in self._problems:
            self._problems[deployment.id] = self._deployment_problem(deployment)
        return self._problems[deployment.id]

    def _deployment_problem(self, deployment: Deployment) -> str | None:
        where = f"the mirror {deployment.address} (chain id {deployment.chain_id})"
        if deployment.chain_id != self.chain_id or deployment.genesis_hash != self.genesis:
            return f"missing on chain: {where} is not on the connected chain (reset or another)"
        client = self.client(deployment)
        if not client.has_code():
            return f"missing on chain: no contract at {deployment.address} (the chain was reset)"
        receipt = self.w3.eth.get_transaction_receipt(deployment.deploy_tx)  # type: ignore[arg-type]
        created = receipt.get("contractAddress") if receipt is not None else None
        if created is None or str(created).lower() != deployment.address.lower():
            return (
                f"swapped deployment: {deployment.address} was not created by the recorded"
                f" deployment tx 0x{deployment.deploy_tx.hex()}"
            )
        owner = client.owner()
        if deployment.owner is not None and owner != deployment.owner:
            return (
                f"owner changed: {deployment.address} is owned by {owner}, not {deployment.owner}"
            )
        return None

    def recorded(self, anchor: AnchorRecord) -> AnchorMismatch | None:
        """Check one anchor the database recorded."""
        dep = anchor.deployment
        copied = (anchor.chain_id, anchor.address, anchor.deploy_tx)
        if copied != (dep.chain_id, dep.address, dep.deploy_tx) and anchor.address is not None:
            return self._mismatch(
                anchor,
                f"swapped deployment: the anchor was written to {anchor.address} (chain id"
                f" {anchor.chain_id}); the deployment record now says {dep.address}",
            )
        if dep.retired:
            # Whatever lives at that address now, the contract the anchor went to is gone.
            return self._mismatch(
                anchor,
                f"missing on chain: its mirror {dep.address} was retired"
                f" ({dep.retired_reason or 'no reason recorded'})",
            )
        problem = self.deployment_problem(dep)
        if problem is not None:
            return self._mismatch(anchor, problem)
        if anchor.owner is not None and anchor.owner != self.client(dep).owner():
            return self._mismatch(
                anchor,
                f"owner changed: {dep.address} is owned by {self.client(dep).owner()},"
                f" the anchor was written by {anchor.owner}",
            )
        on_chain = bytes(self.client(dep).view("anchorOf", anchor.seq))
        if on_chain != anchor.entry_hash:
            what = "missing on chain" if on_chain == bytes(32) else "differs on chain"
            return self._mismatch(anchor, f"{what}: {dep.address} holds 0x{on_chain.hex()}")
        return self.journal(anchor.seq, anchor.entry_hash)

    def journal(self, seq: int, anchored: bytes) -> AnchorMismatch | None:
        """Check an anchored hash against the database's entry at `seq`."""
        database_hash = self._entry_hash(seq)
        if database_hash == anchored:
            return None
        return AnchorMismatch(
            seq,
            "0x" + anchored.hex(),
            None if database_hash is None else "0x" + database_hash.hex(),
        )

    def _mismatch(self, anchor: AnchorRecord, reason: str) -> AnchorMismatch:
        database_hash = self._entry_hash(anchor.seq)
        return AnchorMismatch(
            anchor.seq,
            "0x" + anchor.entry_hash.hex(),
            None if database_hash is None else "0x" + database_hash.hex(),
            reason,
        )

    def _entry_hash(self, seq: int) -> bytes | None:
        return self.lg.entry(self.book, seq).hash if 1 <= seq <= self.head_seq else None
