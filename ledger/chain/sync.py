"""Move the chain toward the ledger: idempotent, resumable, batched; splits as one transaction.

Each round reads the ledger (a consistent snapshot) and the chain (every holder's balance in
one batched read), asks `plan.next_step` what to do, and sends the transactions. Every write
is keyed: `batchAdjust` moves a holder from the balance read to the target and reverts if the
holder is elsewhere; `rebase` applies split entry `seq` only if the chain has not passed it.
So a run killed at any point, or a transaction mined late, can never mint twice: the next run
reads the chain again and sends only what is still missing. A second run sends nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from web3 import Web3

from ledger.chain import records
from ledger.chain.deployment import Attached, ensure_deployed
from ledger.chain.holders import HolderId, address_map, address_of, holder_of
from ledger.chain.keys import Operator
from ledger.chain.plan import (
    SPLIT_KINDS,
    Adjust,
    LedgerSnapshot,
    Rebase,
    batched,
    differences,
    next_step,
    rebase_corrections,
)
from ledger.chain.records import ChainTxRow
from ledger.chain.token import (
    GAS_BASE,
    GAS_PER_HOLDER,
    GAS_PER_HOLDER_EPOCH,
    Call,
    Sent,
    TokenClient,
)
from ledger.clock import Clock, SystemClock
from ledger.domain.journal import JournalEntry, to_micros
from ledger.errors import Reason, Rejected
from ledger.services.ledger import Ledger

MAX_BATCH = 500
MAX_FAILING_ROUNDS = 3


@dataclass
class SyncReport:
    """What one `sync` did."""

    book: str
    address: str
    chain_id: int
    head_seq: int
    synced_seq: int = 0
    txs: int = 0
    failed_txs: int = 0
    gas_used: int = 0
    holders_written: int = 0
    rebases: int = 0
    rounds: int = 0
    redeployed: bool = False
    reset_reason: str | None = None
    tx_hashes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """Return the stable JSON form (`chain sync --json`)."""
        return {
            "book": self.book,
            "address": self.address,
            "chain_id": self.chain_id,
            "head_seq": self.head_seq,
            "synced_seq": self.synced_seq,
            "txs": self.txs,
            "failed_txs": self.failed_txs,
            "gas_used": self.gas_used,
            "holders_written": self.holders_written,
            "rebases": self.rebases,
            "rounds": self.rounds,
            "redeployed": self.redeployed,
            "reset_reason": self.reset_reason,
        }


def read_snapshot(lg: Ledger, book: str, *, from_seq: int) -> LedgerSnapshot:
    """Return a consistent snapshot of `book` after `from_seq` (one read transaction).

    Only entries from the first split/merge after `from_seq` on are kept (balances before that
    point are never needed), so a first sync of a long history holds no journal in memory.
    """
    # One read transaction (one snapshot): the head, holders, balances and entries agree.
    with lg.reading() as unit:
        head_seq, head_hash = unit.head(book)
        codes = unit.account_codes(book)
        holders = sorted({h for code in codes if (h := holder_of(code)) is not None})
        share = {key: units for key, units in unit.balances(book).items() if key[1] == book}
        balances = holder_balances(book, {k: v for k, v in sorted(share.items()) if v})
        kept: list[JournalEntry] = []
        for entry in unit.entries(book, from_seq=from_seq + 1, to_seq=head_seq):
            if kept or entry.draft.kind in SPLIT_KINDS:
                kept.append(entry)
    return LedgerSnapshot(
        book=book,
        head_seq=head_seq,
        head_hash=head_hash,
        holders=tuple(holders),
        balances=balances,
        entries=tuple(kept),
        from_seq=kept[0].seq - 1 if kept else head_seq,
    )


def holder_balances(book: str, balances: Mapping[tuple[str, str], int]) -> dict[HolderId, int]:
    """Return share units per holder key from `lg.balances(book, asset=book)`.

    Refuses (Reason.DUPLICATE) when two spellings of one address both hold units (older data,
    before holder ids were made canonical): the chain has one balance for that address, so the
    ledger must first move one account's units into the other (see docs/chain.md).
    """
    result: dict[HolderId, int] = {}
    spelled: dict[HolderId, str] = {}
    for (account, _), units in balances.items():
        holder = holder_of(account)
        if holder is None or units == 0:
            continue
        if holder in spelled:
            first, second = sorted((spelled[holder], account))
            raise Rejected(
                Reason.DUPLICATE,
                f"{book}: accounts {first} and {second} are two spellings of one address"
                f" {address_of(holder)}; move the units of one into the other with a transfer"
                " entry, then sync again (docs/chain.md, 'Two spellings of one address')",
            )
        spelled[holder] = account
        result[holder] = units
    return result


def batch_size(w3: Web3, epoch: int, requested: int | None = None) -> int:
    """Return holders per transaction: as asked, else what fits 90% of the block gas limit."""
    if requested is not None:
        return max(1, requested)
    gas_limit = int(w3.eth.get_block("latest")["gasLimit"])
    per_holder = GAS_PER_HOLDER + GAS_PER_HOLDER_EPOCH * (epoch + 1)
    return max(1, min(MAX_BATCH, (gas_limit * 9 // 10 - GAS_BASE) // per_holder))


def sync_book(
    lg: Ledger,
    book: str,
    w3: Web3,
    operator: Operator,
    *,
    clock: Clock | None = None,
    batch: int | None = None,
    max_rounds: int | None = None,
) -> SyncReport:
    """Bring the book's mirror to the ledger's head; deploy or redeploy it when needed."""
    clock = clock or SystemClock()
    attached = ensure_deployed(lg, book, w3, operator, clock=clock)
    client = attached.client
    report = SyncReport(
        book=book,
        address=client.address,
        chain_id=attached.deployment.chain_id,
        head_seq=lg.head(book)[0],
        redeployed=attached.redeployed,
        reset_reason=attached.reset_reason,
    )
    client.wait_idle()
    failing_rounds = 0
    while True:
        report.rounds += 1
        if max_rounds is not None and report.rounds > max_rounds:
            raise Rejected(Reason.CHAIN, f"sync of {book} did not converge in {max_rounds} rounds")
        failed_before = report.failed_txs
        if _round(lg, book, attached, report, clock=clock, batch=batch):
            return report
        # A reverted batch is normal once (the chain moved under us); again and again means the
        # chain refuses the writes (e.g. a balance beyond uint192), so stop rather than spin.
        failing_rounds = failing_rounds + 1 if report.failed_txs > failed_before else 0
        if failing_rounds >= MAX_FAILING_ROUNDS:
            raise Rejected(
                Reason.CHAIN,
                f"sync of {book}: transactions reverted in {failing_rounds} rounds in a row"
                f" (last {report.tx_hashes[-1]})",
            )


@dataclass
class _Round:
    """What one round works with."""

    lg: Ledger
    attached: Attached
    report: SyncReport
    clock: Clock
    addresses: dict[HolderId, str]
    size: int
    epoch: int

    @property
    def client(self) -> TokenClient:
        return self.attached.client


def _round(
    lg: Ledger,
    book: str,
    attached: Attached,
    report: SyncReport,
    *,
    clock: Clock,
    batch: int | None,
) -> bool:
    """Do one read-plan-send round; return True when the chain mirrors the snapshot's head."""
    client = attached.client
    chain_seq = client.last_synced_seq()
    snapshot = read_snapshot(lg, book, from_seq=chain_seq)
    if snapshot.head_seq < chain_seq:
        raise Rejected(
            Reason.CHAIN,
            f"the mirror claims seq {chain_seq} but {book} ends at {snapshot.head_seq}:"
            " is this the right database?",
        )
    report.head_seq = snapshot.head_seq
    addresses = address_map(snapshot.holders)
    epoch = client.epoch()
    ctx = _Round(lg, attached, report, clock, addresses, batch_size(client.w3, epoch, batch), epoch)
    balances = client.balances([addresses[h] for h in snapshot.holders])
    chain = dict(zip(snapshot.holders, balances, strict=True))
    step = next_step(snapshot, chain_seq)
    if isinstance(step, Adjust):
        return _adjust_to_head(ctx, step, chain, chain_seq)
    return _mirror_split(ctx, step, chain, head_seq=snapshot.head_seq)


def _adjust_calls(ctx: _Round, seq: int, diffs: list[tuple[HolderId, int, int]]) -> list[Call]:
    return [
        ctx.client.adjust_call(
            seq=seq,
            rows=[(ctx.addresses[h], before, after) for h, before, after in part],
            epoch=ctx.epoch,
        )
        for part in batched(diffs, ctx.size)
    ]


def _adjust_to_head(ctx: _Round, step: Adjust, chain: dict[HolderId, int], chain_seq: int) -> bool:
    if not _send(ctx, _adjust_calls(ctx, step.seq, differences(step.targets, chain))):
        return False
    if chain_seq < step.seq:
        _send(ctx, [ctx.client.mark_call(step.seq)])
    ctx.report.synced_seq = ctx.client.last_synced_seq()
    return ctx.report.synced_seq == step.seq


def _mirror_split(ctx: _Round, step: Rebase, chain: dict[HolderId, int], *, head_seq: int) -> bool:
    diffs = differences(step.targets_before, chain)
    if diffs:
        # First bring the chain to the ledger's state just before the split entry.
        _send(ctx, _adjust_calls(ctx, step.seq - 1, diffs))
        return False
    supply_after_ratio, corrections = rebase_corrections(step)
    # Dust corrections ride in the rebase tx; any beyond one batch are fixed by later rounds.
    call = ctx.client.rebase_call(
        seq=step.seq,
        num=step.num,
        den=step.den,
        supply_after_ratio=supply_after_ratio,
        rows=[(ctx.addresses[h], b, a) for h, b, a in corrections[: ctx.size]],
        epoch=ctx.epoch,
    )
    if not _send(ctx, [call]):
        return False
    ctx.report.rebases += 1
    # The rebase marks its seq synced; when it is the head and carried every correction, done.
    if step.seq == head_seq and len(corrections) <= ctx.size:
        ctx.report.synced_seq = step.seq
        return True
    return False


def _send(ctx: _Round, calls: list[Call]) -> bool:
    """Send `calls`, record them, and return whether every one succeeded."""
    if not calls:
        return True
    sent: list[Sent] = ctx.client.send(calls)
    now_us = to_micros(ctx.clock.now())
    records.record_txs(ctx.lg.engine, [_row(ctx.attached.deployment.id, s, now_us) for s in sent])
    report = ctx.report
    for s in sent:
        report.txs += 1
        report.gas_used += s.gas_used
        report.tx_hashes.append("0x" + s.tx_hash.hex())
        if s.succeeded:
            report.holders_written += s.call.holders
        else:
            report.failed_txs += 1
    return all(s.succeeded for s in sent)


def _row(deployment_id: int, sent: Sent, now_us: int) -> ChainTxRow:
    return ChainTxRow(
        deployment_id=deployment_id,
        kind=sent.call.kind,
        target_seq=sent.call.target_seq,
        holders=sent.call.holders,
        units_minted=sent.call.units_minted,
        units_burned=sent.call.units_burned,
        tx_hash=sent.tx_hash,
        gas_used=sent.gas_used,
        succeeded=int(sent.succeeded),
        recorded_us=now_us,
    )
