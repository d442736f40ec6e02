"""Read a book's share index from its journal: the ratios of its index splits up to a seq."""

from __future__ import annotations

from ledger.domain.fund.shareindex import INDEX_KEY
from ledger.domain.fund.state import Index
from ledger.services.ledger import Ledger

SPLIT_KINDS = ("split", "merge")


def index_splits(lg: Ledger, book: str) -> tuple[tuple[int, int, int], ...]:
    """Return (seq, num, den) of every index split and merge of `book`, in order (few)."""
    found = []
    for entry in lg.entries_of_kind(book, SPLIT_KINDS):
        meta = dict(entry.draft.metadata)
        if INDEX_KEY in meta:
            found.append((entry.seq, int(meta["ratio_num"]), int(meta["ratio_den"])))
    return tuple(found)


def index_at(splits: tuple[tuple[int, int, int], ...], seq: int) -> Index:
    """Return the share index after entry `seq`, from `index_splits`."""
    return tuple((num, den) for at, num, den in splits if at <= seq)
