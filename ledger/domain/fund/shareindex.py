"""The share index: splits and merges in one entry, whatever the number of holders.

A holder's `holder:<id>` balance holds fixed internal *units*; a split or merge never posts
to it. The fund's state carries the index, the list of split/merge ratios (num, den) in the
order they happened, and a holder's *shares* are their units with every ratio applied in
turn, each rounded down:

    shares(u) = floor(... floor(floor(u * n1 / d1) * n2 / d2) ... * nk / dk)

which is exactly what the ERC-20 mirror's `balanceOf` computes from a balance and the ratios
after it, so the mirror needs no correction after a split. Until a fund's first index split
its index is empty and units are shares (books from before the index read the same).

`equity:shares-outstanding` holds minus the shares outstanding (S); `equity:share-index`
holds S - U, the difference between shares and the holders' units (U), so the share asset
still sums to zero in every entry. A split or merge by n/d is one entry:
S' = floor(S * n / d), posted as `equity:shares-outstanding` -(S' - S) against
`equity:share-index` +(S' - S). An order moving a holder from u to u' units changes S by
shares(u') - shares(u) (what the mirror's supply moves by), the difference to the units
moved going to `equity:share-index`. The holders' shares sum to at most S: the difference,
the split rounding remainder (each split scales it by its ratio, like any share amount, and
adds under one share base unit per holder), is owned by
no holder, and reported by `holders` and `verify` (docs/funds.md, "Share index").

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace

from ledger.domain.fund import accounts as acc
from ledger.domain.fund.state import FundState, Index
from ledger.domain.fund.terms import Terms
from ledger.domain.journal import JournalEntry, Posting
from ledger.errors import Reason, Rejected, invariant

Line = tuple[str, str, int]
"""One posting as (account, asset, amount): what an order or a batch adds up before it posts."""

INDEX_KEY = "epoch"
"""Metadata key that marks an index split/merge: the number of ratios in the index after it
(a split entry without it is one of the per-holder splits written before the index)."""


SPLIT_KINDS = ("split", "merge")


def index_ratio(kind: str, metadata: Mapping[str, str]) -> tuple[int, int] | None:
    """Return the (num, den) an entry adds to the share index, or None if it is no index
    split (another kind, or a per-holder split from before the index). Raises ValueError on
    a ratio that is not two integers (the fold reports that as its finding)."""
    if kind not in SPLIT_KINDS or INDEX_KEY not in metadata:
        return None
    try:
        return int(metadata["ratio_num"]), int(metadata["ratio_den"])
    except KeyError as exc:
        raise ValueError(f"an index {kind} without {exc.args[0]}") from None


def shares_of(units: int, index: Index) -> int:
    """Return the shares `units` show under `index`: every ratio in turn, rounded down."""
    for num, den in index:
        units = units * num // den
    return units


def units_to_cancel(shares: int, held: int, index: Index) -> int:
    """Return the fewest of `held` units whose removal lowers the holder's shares by at
    least `shares` (all of them when `shares` is the holder's whole balance).

    A redemption of `shares` cancels these units and is paid their value: with the index
    rounding down, the holder's shares fall by `shares`, or by one unit's worth more when a
    unit is worth more than one share base unit (after large splits).
    """
    shown = shares_of(held, index)
    if shares > shown:
        raise Rejected(
            Reason.INSUFFICIENT_SHARES, f"redeeming {shares} share units but only {shown} held"
        )
    if shares == shown or not index:
        return held if shares == shown else shares  # the whole balance: no unit left behind
    target = shown - shares
    low, high = 0, held  # shares_of(held - high) <= target; find the least such high
    while low < high:
        middle = (low + high) // 2
        if shares_of(held - middle, index) <= target:
            high = middle
        else:
            low = middle + 1
    return low


def units_showing(shares: int, index: Index) -> int:
    """Return the most units that show at most `shares` under `index` (a fund's first
    units after an index split: priced so that a share is worth the initial NAV)."""
    if not index:
        return shares
    num = den = 1
    for n, d in index:
        num, den = num * n, den * d
    low, high = 0, (shares + 1) * den // num + 1  # shares_of(high) > shares
    while shares_of(high, index) <= shares:
        high *= 2
    while low < high - 1:  # shares_of(low) <= shares < shares_of(high)
        middle = (low + high) // 2
        if shares_of(middle, index) <= shares:
            low = middle
        else:
            high = middle
    return low


def reindexed(
    terms: Terms, index: Index, lines: list[Line], held: Mapping[str, int]
) -> tuple[list[Line], int]:
    """Return an order's lines with the shares outstanding moved by the holders' shares,
    and the change of `equity:share-index` (0, lines unchanged, when the index is empty).

    `lines` post the holders' units against `equity:shares-outstanding` (as without an
    index); `held` gives the units each holder in them had before.
    """
    if not index:
        return lines, 0
    share = terms.share_asset.code
    cut = len(acc.HOLDER_PREFIX)
    moved: dict[str, int] = {}
    for account, asset, amount in lines:
        if asset == share and account.startswith(acc.HOLDER_PREFIX):
            holder = account[cut:]
            moved[holder] = moved.get(holder, 0) + amount
    units = sum(moved.values())
    shares = sum(
        shares_of(held.get(h, 0) + delta, index) - shares_of(held.get(h, 0), index)
        for h, delta in moved.items()
    )
    gap = shares - units
    if gap:
        # One posting per account: the shares outstanding move by -shares, not -units.
        outstanding = (acc.SHARES_OUTSTANDING, share)
        moved_out = -gap + sum(u for a, s, u in lines if (a, s) == outstanding)
        lines = [line for line in lines if (line[0], line[1]) != outstanding]
        if moved_out:
            lines.append((acc.SHARES_OUTSTANDING, share, moved_out))
        lines.append((acc.SHARE_INDEX, share, gap))
    return lines, gap


def holder_shares(holders: Mapping[str, int], index: Index) -> dict[str, int]:
    """Return {holder: shares} for {holder: units} under `index` (one pass)."""
    if not index:
        return dict(holders)
    return {h: shares_of(u, index) for h, u in holders.items()}


def remainder(state: FundState, shares: Iterable[int]) -> int:
    """Return the shares outstanding no holder shows (the split rounding), given every
    holder's shares; never negative in a sound book."""
    left = state.shares - sum(shares)
    invariant(left >= 0, "holders cannot show more shares than are outstanding")
    return left


def in_shares(entries: Iterable[JournalEntry], share: str) -> Iterator[JournalEntry]:
    """Yield `entries` with every holder's share posting as the change of their shares:
    what a third-party tool (ledger-cli, beancount) must read to show each holder's balance
    as `holders` does, since it cannot apply an index.

    Until the first index split the entries pass unchanged. An index split gets one posting
    per holder whose shares it changes (the tools cannot rescale a balance), and in every
    entry after it `equity:share-index` takes what balances the share asset: in the output
    its balance is the split rounding no holder shows. Holds every holder's units in memory.
    """
    units: dict[str, int] = {}
    index: Index = ()
    cut = len(acc.HOLDER_PREFIX)
    for entry in entries:
        draft = entry.draft
        ratio = index_ratio(draft.kind, dict(draft.metadata)) if draft.kind in SPLIT_KINDS else None
        if ratio is not None:
            before, index = index, (*index, ratio)
            moved = {h: shares_of(u, index) - shares_of(u, before) for h, u in units.items()}
            yield _rewritten(entry, share, moved)
            continue
        deltas: dict[str, int] = {}
        for p in draft.postings:
            if p.asset == share and p.account.startswith(acc.HOLDER_PREFIX):
                holder = p.account[cut:]
                deltas[holder] = deltas.get(holder, 0) + p.amount
        moved = {}
        for holder, delta in deltas.items():
            held = units.get(holder, 0)
            units[holder] = held + delta
            moved[holder] = shares_of(held + delta, index) - shares_of(held, index)
        # Until the first index split shares are units: the entry passes unchanged.
        yield _rewritten(entry, share, moved) if index and moved else entry


def _rewritten(entry: JournalEntry, share: str, moved: Mapping[str, int]) -> JournalEntry:
    """Return `entry` with its holders' share postings replaced by `moved` (shares) and
    `equity:share-index` set to balance the share asset (left out when zero)."""
    draft = entry.draft
    kept: list[Posting] = []
    other = 0  # share postings that stay: the shares outstanding
    for p in draft.postings:
        if p.asset != share:
            kept.append(p)
        elif p.account == acc.SHARES_OUTSTANDING:
            kept.append(p)
            other += p.amount
    holders = [
        Posting(acc.HOLDER_PREFIX + h, share, amount)
        for h, amount in sorted(moved.items())
        if amount
    ]
    gap = -(other + sum(p.amount for p in holders))
    tail = [Posting(acc.SHARE_INDEX, share, gap)] if gap else []
    postings = (*kept, *holders, *tail)
    return replace(entry, draft=replace(draft, postings=postings))
