"""Canonical JSON Lines of a book: the lossless export that replays into identical hashes.

Line 1 is the book header, then one line per journal entry in sequence order, then a trailer
line with the entry count and the head hash, so that a file cut short cannot pass for whole.
Every object has sorted keys and compact separators; every integer (scale, seq, times in
microseconds since the Unix epoch, amounts in base units) is a decimal string, so no reader
meets a float. The file is UTF-8 (non-ASCII text is kept, not escaped).
docs/export-formats.md specifies it field by field; `ledger.export.jsonl_read` reads it back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TextIO

from ledger.domain.canonical import GENESIS_HASH
from ledger.domain.journal import Account, JournalEntry
from ledger.domain.money import Asset
from ledger.errors import Reason, Rejected
from ledger.export.jsonl_format import (
    FORMAT,
    EntryRow,
    entry_line,
    header_line,
    row_line,
    trailer_line,
)
from ledger.export.jsonl_read import JsonlBook, Record, read_jsonl

__all__ = [
    "FORMAT",
    "JsonlBook",
    "Record",
    "entry_line",
    "header_line",
    "read_jsonl",
    "trailer_line",
    "write_jsonl",
    "write_jsonl_rows",
]

PostingRow = tuple[int, str, str, int]
_BATCH = 2048  # lines per write: fewer, larger writes


def write_jsonl(
    out: TextIO,
    *,
    book: str,
    assets: Sequence[Asset],
    accounts: Sequence[Account],
    entries: Iterable[JournalEntry],
) -> int:
    """Write `book` as canonical JSON Lines to `out`; return the number of entries written.

    `entries` must be all of the book's entries in sequence order, from seq 1.
    """
    out.write(header_line(book=book, assets=assets, accounts=accounts) + "\n")
    count, head = 0, GENESIS_HASH
    batch: list[str] = []
    for entry in entries:
        if entry.draft.book != book:
            raise Rejected(
                Reason.BAD_INPUT, f"entry {entry.seq} belongs to book {entry.draft.book!r}"
            )
        _check_next(entry.seq, count)
        batch.append(entry_line(entry))
        count, head = count + 1, entry.hash
        if len(batch) == _BATCH:
            out.write("\n".join(batch) + "\n")
            batch.clear()
    batch.append(trailer_line(entries=count, head_hash=head))
    out.write("\n".join(batch) + "\n")
    return count


def write_jsonl_rows(
    out: TextIO,
    *,
    book: str,
    assets: Sequence[Asset],
    accounts: Sequence[Account],
    chunks: Iterable[tuple[Sequence[EntryRow], Sequence[PostingRow]]],
) -> int:
    """Write `book` from stored rows, streaming; return the number of entries written.

    `chunks` are (entry rows, posting rows) for consecutive sequence ranges from seq 1, as
    the storage layer reads them; no domain value is built, so this runs at the speed of the
    rows. The lines are those `write_jsonl` writes for the same entries.
    """
    out.write(header_line(book=book, assets=assets, accounts=accounts) + "\n")
    count, head = 0, GENESIS_HASH
    # One posting object per (account, asset) pair is mostly the same text: keep its two
    # halves around the amount.
    halves: dict[tuple[str, str], tuple[str, str]] = {}
    for rows, postings in chunks:
        lines = []
        i, total = 0, len(postings)
        for row in rows:
            seq = row[0]
            _check_next(seq, count)
            parts = []
            while i < total and postings[i][0] == seq:
                _, account, asset, units = postings[i]
                i += 1
                pair = halves.get((account, asset))
                if pair is None:
                    pair = halves[(account, asset)] = _halves(account, asset)
                parts.append(f"{pair[0]}{units}{pair[1]}")
            lines.append(row_line(row, ",".join(parts)))
            count, head = seq, row[8]
        if i != total:
            raise Rejected(Reason.BAD_INPUT, f"postings of entry {postings[i][0]} have no entry")
        if lines:
            out.write("\n".join(lines) + "\n")
    out.write(trailer_line(entries=count, head_hash=bytes(head)) + "\n")
    return count


def _halves(account: str, asset: str) -> tuple[str, str]:
    from ledger.export.jsonl_format import _s

    return f'{{"account":{_s(account)},"amount":"', f'","asset":{_s(asset)}}}'


def _check_next(seq: int, count: int) -> None:
    if seq != count + 1:  # A file that could not be read back is worse than none.
        raise Rejected(Reason.BAD_INPUT, f"entry {seq} where seq {count + 1} was expected")
