"""Move the chain toward the ledger: idempotent, resumable, batched; splits as one transaction.

One sync per book at a time (`lock.book_lock`: a second run is refused, Reason.BUSY). Each
round reads the chain's (lastSyncedSeq, writeCount, epoch), the ledger (a consistent snapshot)
and every holder's stored (units, epoch) in one batched read, applies the later ratios in
Python (so the read costs the same whatever the number of splits), asks `plan.next_step` what
to do, and sends the transactions. Every write is keyed: `batchAdjust` moves a holder from the
balance read to the target, and only while `lastSyncedSeq` is the one the round read;
`rebase` and `markSynced` also need the `writeCount` the round expects, so a write of anybody
else in between makes them revert. A run killed at any point, or a transaction mined late, can
never mint twice or claim a state it did not write: the next round reads the chain again.

Gas: batches are cut from measured per-holder costs (token.holder_gas), then each is sized by
eth_estimateGas (all in one JSON-RPC batch) with a margin; a batch the node says needs more
than a transaction may use (9/10 of the block gas limit) is halved. A holder so far behind on
splits that writing it alone would not fit is first caught up in steps (`catchUp`, which moves
no balance).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from web3 import Web3

from ledger.chain import records
from ledger.chain.deployment import Attached, ensure_deployed
from ledger.chain.holders import HolderId, address_map, address_of, holder_of
from ledger.chain.keys import Operator
from ledger.chain.lock import book_lock
from ledger.chain.plan import (
    SPLIT_KINDS,
    Adjust,
    LedgerSnapshot,
    Rebase,
    caught_up,
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
    SyncState,
    TokenClient,
    holder_gas,
    sized,
)
from ledger.clock import Clock, SystemClock
from ledger.domain.fund.accounts import SHARES_OUTSTANDING
from ledger.domain.journal import JournalEntry, to_micros
from ledger.errors import Reason, Rejected
from ledger.services.ledger import Ledger
from ledger.services.share_index import index_splits

MAX_BATCH = 500
MAX_FAILING_ROUNDS = 3
TX_GAS_SHARE = (9, 10)  # of the block gas limit, what one transaction may use


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
    catch_ups: int = 0
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
            "catch_ups": self.catch_ups,
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
    # The journal is append-only: its index splits up to head_seq read the same afterwards.
    splits = tuple(s for s in index_splits(lg, book) if s[0] <= head_seq)
    outstanding = share.get((SHARES_OUTSTANDING, book))
    return LedgerSnapshot(
        book=book,
        head_seq=head_seq,
        head_hash=head_hash,
        holders=tuple(holders),
        balances=balances,
        entries=tuple(kept),
        from_seq=kept[0].seq - 1 if kept else head_seq,
        splits=splits,
        supply=None if outstanding is None else -outstanding,
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


def tx_gas_budget(w3: Web3) -> int:
    """Return the most gas one transaction may use: 9/10 of the latest block's gas limit."""
    num, den = TX_GAS_SHARE
    return int(w3.eth.get_block("latest")["gasLimit"]) * num // den


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
    """Bring the book's mirror to the ledger's head; deploy or redeploy it when needed.

    Holds the book's chain lock for the whole run: refuses at once (Reason.BUSY) while another
    sync or anchor of the book runs on this database. `batch` caps holders per transaction.
    """
    with book_lock(lg.engine, book):
        return _sync(lg, book, w3, operator, clock or SystemClock(), batch, max_rounds)


def _sync(
    lg: Ledger,
    book: str,
    w3: Web3,
    operator: Operator,
    clock: Clock,
    batch: int | None,
    max_rounds: int | None,
) -> SyncReport:
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
    ratios: list[tuple[int, int]] = []
    failing_rounds = 0
    while True:
        report.rounds += 1
        if max_rounds is not None and report.rounds > max_rounds:
            raise Rejected(Reason.CHAIN, f"sync of {book} did not converge in {max_rounds} rounds")
        failed_before = report.failed_txs
        if _round(lg, book, attached, report, clock=clock, batch=batch, ratios=ratios):
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
    size: int  # most holders per transaction
    budget: int  # most gas per transaction
    state: SyncState  # the chain as the round read it
    behind: dict[HolderId, int]  # splits each holder is behind (stored epoch to current)
    writes: int = 0  # balance writes landed this round

    @property
    def client(self) -> TokenClient:
        return self.attached.client

    @property
    def expected_writes(self) -> int:
        return self.state.write_count + self.writes


def _round(
    lg: Ledger,
    book: str,
    attached: Attached,
    report: SyncReport,
    *,
    clock: Clock,
    batch: int | None,
    ratios: list[tuple[int, int]],
) -> bool:
    """Do one read-plan-send round; return True when the chain mirrors the snapshot's head."""
    client = attached.client
    state = client.sync_state()
    chain_seq = state.last_synced_seq
    snapshot = read_snapshot(lg, book, from_seq=chain_seq)
    if snapshot.head_seq < chain_seq:
        raise Rejected(
            Reason.CHAIN,
            f"the mirror claims seq {chain_seq} but {book} ends at {snapshot.head_seq}:"
            " is this the right database?",
        )
    report.head_seq = snapshot.head_seq
    addresses = address_map(snapshot.holders)
    if len(ratios) < state.epoch:
        ratios.extend(client.ratios(len(ratios)))
    holdings = client.holdings([addresses[h] for h in snapshot.holders])
    chain = {
        h: caught_up(units, epoch, ratios)
        for h, (units, epoch) in zip(snapshot.holders, holdings, strict=True)
    }
    behind = {
        h: state.epoch - epoch for h, (_, epoch) in zip(snapshot.holders, holdings, strict=True)
    }
    size = max(1, batch) if batch is not None else MAX_BATCH
    ctx = _Round(
        lg, attached, report, clock, addresses, size, tx_gas_budget(client.w3), state, behind
    )
    step = next_step(snapshot, chain_seq)
    if isinstance(step, Adjust):
        return _adjust_to_head(ctx, step, chain)
    return _mirror_split(ctx, step, chain, head_seq=snapshot.head_seq)


def _adjust_to_head(ctx: _Round, step: Adjust, chain: dict[HolderId, int]) -> bool:
    if not _write_rows(ctx, step.seq, differences(step.targets, chain)):
        return False
    chain_seq = ctx.state.last_synced_seq
    if chain_seq < step.seq:
        mark = ctx.client.mark_call(
            expected_seq=chain_seq, expected_writes=ctx.expected_writes, seq=step.seq
        )
        if not _send(ctx, [mark]):
            return False
    ctx.report.synced_seq = ctx.client.last_synced_seq()
    return ctx.report.synced_seq == step.seq


def _mirror_split(ctx: _Round, step: Rebase, chain: dict[HolderId, int], *, head_seq: int) -> bool:
    diffs = differences(step.targets_before, chain)
    if diffs:
        # First bring the chain to the ledger's state just before the split entry.
        _write_rows(ctx, step.seq - 1, diffs)
        return False
    _, corrections = rebase_corrections(step)
    # The corrections are written one epoch later than now (after the rebase's ratio).
    behind = {h: ctx.behind.get(h, 0) + 1 for h, _, _ in corrections}
    far = [h for h in behind if _too_far_behind(ctx, behind[h])]
    if far:
        _catch_up(ctx, far)
        return False
    # Every dust correction rides in the rebase transaction: the split is marked synced only
    # when all of them have landed, atomically.
    if len(corrections) > ctx.size:
        raise Rejected(
            Reason.CHAIN,
            f"the {step.num}:{step.den} split/merge at seq {step.seq} needs"
            f" {len(corrections)} dust corrections; one transaction holds {ctx.size} (--batch)",
        )
    call = ctx.client.rebase_call(
        expected_seq=ctx.state.last_synced_seq,
        expected_writes=ctx.expected_writes,
        seq=step.seq,
        num=step.num,
        den=step.den,
        rows=[(ctx.addresses[h], b, a) for h, b, a in corrections],
    )
    fallback = holder_gas(len(corrections), max(behind.values(), default=0)) + 60_000
    (estimate,) = ctx.client.estimate([call])
    if estimate.gas is None and not estimate.reverted:
        raise Rejected(
            Reason.CHAIN,
            f"the split/merge at seq {step.seq} with {len(corrections)} dust corrections does"
            f" not fit one transaction ({ctx.budget} gas)",
        )
    call = (
        replace(call, gas=min(ctx.budget, fallback))
        if estimate.gas is None
        else sized(call, estimate.gas, cap=ctx.budget)
    )
    if not _send(ctx, [call]):
        return False
    ctx.report.rebases += 1
    if step.seq == head_seq:
        ctx.report.synced_seq = step.seq
        return True
    return False


def _too_far_behind(ctx: _Round, behind: int) -> bool:
    """Whether writing one holder this many splits behind would take over half a transaction."""
    return holder_gas(1, behind) > ctx.budget // 2


def _catch_up_step(ctx: _Round) -> int:
    """Splits one `catchUp` moves a holder forward: what fits half a transaction."""
    return max(1, (ctx.budget // 2 - GAS_BASE - GAS_PER_HOLDER) // GAS_PER_HOLDER_EPOCH)


def _catch_up(ctx: _Round, holders: Sequence[HolderId]) -> None:
    """Move far-behind holders forward by one step each (no balance changes; re-read after)."""
    step = _catch_up_step(ctx)
    calls: list[Call] = []
    group: list[str] = []
    gas = GAS_BASE
    for holder in sorted(holders):
        cost = GAS_PER_HOLDER + GAS_PER_HOLDER_EPOCH * min(step, ctx.behind.get(holder, 0))
        if group and (gas + cost > ctx.budget or len(group) >= ctx.size):
            calls.append(ctx.client.catch_up_call(group, step, gas=min(ctx.budget, gas)))
            group, gas = [], GAS_BASE
        group.append(ctx.addresses[holder])
        gas += cost
    calls.append(ctx.client.catch_up_call(group, step, gas=min(ctx.budget, gas)))
    ctx.report.catch_ups += len(calls)
    _send(ctx, calls)


def _write_rows(ctx: _Round, seq: int, diffs: list[tuple[HolderId, int, int]]) -> bool:
    """Send `batchAdjust` batches moving every (holder, before, after); True if all landed.

    Holders too far behind on splits are caught up first (and the round ends: re-read).
    """
    if not diffs:
        return True
    far = [h for h, _, _ in diffs if _too_far_behind(ctx, ctx.behind.get(h, 0))]
    if far:
        _catch_up(ctx, far)
        return False
    calls = _sized_adjusts(ctx, seq, _cut(ctx, diffs))
    return _send(ctx, calls)


def _cut(
    ctx: _Round, diffs: list[tuple[HolderId, int, int]]
) -> list[list[tuple[HolderId, int, int]]]:
    """Cut rows into batches of at most `size` rows and (by measured costs) 3/4 of a tx."""
    target = ctx.budget * 3 // 4
    parts: list[list[tuple[HolderId, int, int]]] = []
    part: list[tuple[HolderId, int, int]] = []
    gas = GAS_BASE
    for row in diffs:
        cost = holder_gas(1, ctx.behind.get(row[0], 0)) - GAS_BASE
        if part and (len(part) >= ctx.size or gas + cost > target):
            parts.append(part)
            part, gas = [], GAS_BASE
        part.append(row)
        gas += cost
    if part:
        parts.append(part)
    return parts


def _sized_adjusts(
    ctx: _Round, seq: int, parts: list[list[tuple[HolderId, int, int]]]
) -> list[Call]:
    """Return the batches as calls with gas from eth_estimateGas; halve those that do not fit.

    A batch the node says would revert (the chain moved, or a balance beyond uint192) is sent
    anyway with its measured-cost gas: it reverts on chain, is recorded, and the next round
    reads the chain again (MAX_FAILING_ROUNDS stops a write the chain always refuses).
    """
    out: list[Call] = []
    pending = parts
    while pending:
        calls = [_adjust_call(ctx, seq, part) for part in pending]
        halves: list[list[tuple[HolderId, int, int]]] = []
        for part, call, estimate in zip(pending, calls, ctx.client.estimate(calls), strict=True):
            if estimate.gas is not None and sized(call, estimate.gas, cap=2**63).gas <= ctx.budget:
                out.append(sized(call, estimate.gas, cap=ctx.budget))
            elif estimate.gas is None and estimate.reverted:
                behind = max(ctx.behind.get(h, 0) for h, _, _ in part)
                out.append(replace(call, gas=min(ctx.budget, holder_gas(len(part), behind))))
            elif len(part) > 1:
                middle = len(part) // 2
                halves += [part[:middle], part[middle:]]
            else:
                raise Rejected(
                    Reason.CHAIN,
                    f"writing holder {part[0][0]} needs more gas than one transaction may use"
                    f" ({ctx.budget})",
                )
        pending = halves
    return out


def _adjust_call(ctx: _Round, seq: int, part: list[tuple[HolderId, int, int]]) -> Call:
    return ctx.client.adjust_call(
        expected_seq=ctx.state.last_synced_seq,
        seq=seq,
        rows=[(ctx.addresses[h], before, after) for h, before, after in part],
    )


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
            report.holders_written += s.call.holders if s.call.kind != "catchup" else 0
            if s.call.kind in {"adjust", "rebase"}:
                ctx.writes += 1
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
