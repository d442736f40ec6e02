"""Decide the next step that moves the chain toward the ledger (pure: no I/O).

The ledger is read once per round into a `LedgerSnapshot`: the head, the current share balance
of every holder, and the entries after the chain's `lastSyncedSeq`. Balances at an earlier
sequence number are recovered by walking those entries backwards. The chain may have mirrored
nothing, part of a previous run (a killed sync), or everything; the plan compares what it reads
on chain with what the ledger says and never assumes which.

Splits and merges are barriers: the chain is first brought to the ledger's state just before the
split entry, then the split is mirrored as one `rebase` transaction (ratio applied to every
holder at once, plus the ledger's dust corrections), then sync moves on. Under the share index
(ledger/domain/fund/shareindex.py) a holder's shares are their units with every ratio applied
in turn and rounded down, exactly as `balanceOf` applies them, so an index split needs no
correction; a per-holder split of a book from before the index may need some.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ledger.chain.holders import HolderId, holder_of
from ledger.domain.fund.shareindex import holder_shares
from ledger.domain.fund.split import MAX_RATIO
from ledger.domain.journal import JournalEntry
from ledger.domain.money import Rounding, mul_div
from ledger.errors import Reason, Rejected

SPLIT_KINDS = frozenset({"split", "merge"})


@dataclass(frozen=True, slots=True)
class LedgerSnapshot:
    """A consistent read of one book: head, holder balances at head, entries after `from_seq`."""

    book: str
    head_seq: int
    head_hash: bytes
    holders: tuple[HolderId, ...]  # every holder account ever opened, sorted
    balances: Mapping[HolderId, int]  # internal units at head_seq (missing = 0)
    entries: tuple[JournalEntry, ...]  # entries with seq > from_seq, in order
    from_seq: int
    splits: tuple[tuple[int, int, int], ...] = ()  # (seq, num, den) of every index split
    supply: int | None = None  # shares outstanding at head_seq (None: the holders' sum)

    def shares_outstanding(self) -> int:
        """Return the shares outstanding at head_seq (the holders' shares and the rounding)."""
        if self.supply is not None:
            return self.supply
        return sum(balances_at(self, self.head_seq).values())


@dataclass(frozen=True, slots=True)
class Adjust:
    """Bring every holder to the ledger's balance as of `seq`."""

    seq: int
    targets: Mapping[HolderId, int]


@dataclass(frozen=True, slots=True)
class Rebase:
    """Mirror the split/merge entry `seq`: ratio `num/den`, then the ledger's balances at `seq`."""

    seq: int
    num: int
    den: int
    targets_before: Mapping[HolderId, int]
    targets_after: Mapping[HolderId, int]


def share_deltas(entry: JournalEntry, book: str) -> dict[HolderId, int]:
    """Return the change of each holder's share units made by `entry` (asset == book)."""
    deltas: dict[HolderId, int] = {}
    for posting in entry.postings:
        if posting.asset != book:
            continue
        holder = holder_of(posting.account)
        if holder is not None:
            deltas[holder] = deltas.get(holder, 0) + posting.amount
    return deltas


def balances_at(snapshot: LedgerSnapshot, seq: int) -> dict[HolderId, int]:
    """Return every holder's shares as of `seq` (from_seq <= seq <= head_seq): their units
    then, under the share index then (each ratio in turn, rounded down, as `balanceOf`)."""
    if not snapshot.from_seq <= seq <= snapshot.head_seq:
        raise ValueError(f"seq {seq} outside {snapshot.from_seq}..{snapshot.head_seq}")
    result = {h: snapshot.balances.get(h, 0) for h in snapshot.holders}
    for entry in reversed(snapshot.entries):
        if entry.seq <= seq:
            break
        for holder, delta in share_deltas(entry, snapshot.book).items():
            result[holder] = result.get(holder, 0) - delta
    index = tuple((num, den) for at, num, den in snapshot.splits if at <= seq)
    return holder_shares(result, index) if index else result


def split_ratio(entry: JournalEntry) -> tuple[int, int]:
    """Return (num, den) of a split/merge entry from its metadata ratio_num / ratio_den."""
    meta = dict(entry.draft.metadata)
    try:
        num, den = int(meta["ratio_num"]), int(meta["ratio_den"])
    except (KeyError, ValueError) as exc:
        raise Rejected(
            Reason.BAD_INPUT, f"entry {entry.seq} ({entry.draft.kind}) has no integer ratio"
        ) from exc
    # The contract takes the ledger's own bounds (LedgerShareToken.MAX_RATIO).
    if not (0 < num <= MAX_RATIO and 0 < den <= MAX_RATIO) or num == den:
        raise Rejected(
            Reason.BAD_INPUT,
            f"entry {entry.seq} ratio {num}/{den} is outside 1..{MAX_RATIO} (or is 1:1)",
        )
    return num, den


def caught_up(units: int, epoch: int, ratios: Sequence[tuple[int, int]]) -> int:
    """Return a stored balance at `epoch` with every later ratio applied, as `balanceOf` does."""
    for num, den in ratios[epoch:]:
        if units == 0:
            break
        units = units * num // den
    return units


def next_step(snapshot: LedgerSnapshot, chain_seq: int) -> Adjust | Rebase:
    """Return what to mirror next when the chain says it has mirrored up to `chain_seq`."""
    for entry in snapshot.entries:
        if entry.seq > chain_seq and entry.draft.kind in SPLIT_KINDS:
            num, den = split_ratio(entry)
            return Rebase(
                seq=entry.seq,
                num=num,
                den=den,
                targets_before=balances_at(snapshot, entry.seq - 1),
                targets_after=balances_at(snapshot, entry.seq),
            )
    return Adjust(seq=snapshot.head_seq, targets=balances_at(snapshot, snapshot.head_seq))


def differences(
    targets: Mapping[HolderId, int], chain: Mapping[HolderId, int]
) -> list[tuple[HolderId, int, int]]:
    """Return (holder, chain balance, target) for every holder whose chain balance is off."""
    return [
        (holder, chain.get(holder, 0), target)
        for holder, target in sorted(targets.items())
        if chain.get(holder, 0) != target
    ]


def apply_ratio(balances: Mapping[HolderId, int], *, num: int, den: int) -> dict[HolderId, int]:
    """Return each balance times num/den, rounded down: what the contract's rebase computes."""
    return {h: mul_div(units, num, den, Rounding.DOWN) for h, units in balances.items()}


def rebase_corrections(step: Rebase) -> tuple[int, list[tuple[HolderId, int, int]]]:
    """Return (supply after the ratio alone, dust corrections to send in the same tx)."""
    predicted = apply_ratio(step.targets_before, num=step.num, den=step.den)
    return sum(predicted.values()), differences(step.targets_after, predicted)


def batched(
    rows: Sequence[tuple[HolderId, int, int]], size: int
) -> Iterable[list[tuple[HolderId, int, int]]]:
    """Yield `rows` in lists of at most `size`."""
    for start in range(0, len(rows), size):
        yield list(rows[start : start + size])
