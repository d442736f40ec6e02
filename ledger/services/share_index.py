"""Read a book's share index from its journal: the ratios of its index splits up to a seq."""

from __future__ import annotations

from collections.abc import Iterator

from ledger.domain.fund.shareindex import SPLIT_KINDS, index_ratio
from ledger.domain.fund.state import Index
from ledger.domain.journal import JournalEntry
from ledger.services.ledger import Ledger


def index_entries(lg: Ledger, book: str) -> Iterator[tuple[JournalEntry, tuple[int, int]]]:
    """Yield every index split and merge of `book` with its ratio, in order (few)."""
    for entry in lg.entries_of_kind(book, SPLIT_KINDS):
        ratio = index_ratio(entry.draft.kind, dict(entry.draft.metadata))
        if ratio is not None:
            yield entry, ratio


def index_splits(lg: Ledger, book: str) -> tuple[tuple[int, int, int], ...]:
    """Return (seq, num, den) of every index split and merge of `book`, in order."""
    return tuple((entry.seq, num, den) for entry, (num, den) in index_entries(lg, book))


def index_at(splits: tuple[tuple[int, int, int], ...], seq: int) -> Index:
    """Return the share index after entry `seq`, from `index_splits`."""
    return tuple((num, den) for at, num, den in splits if at <= seq)
