"""Export a book to a file format, and replay a JSON Lines export into a database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from ledger.errors import Reason, Rejected
from ledger.services.audit import verify_book
from ledger.services.ledger import Ledger, VerifyReport


def export_book(lg: Ledger, book: str, fmt: str, out: TextIO) -> int:
    """Write `book` to `out` as jsonl, ledger or beancount; return the entry count."""
    if fmt == "jsonl":
        from ledger.export.jsonl import write_jsonl as write
    elif fmt == "ledger":
        from ledger.export.ledgercli import write_ledger as write
    elif fmt == "beancount":
        from ledger.export.beancount import write_beancount as write
    else:
        raise Rejected(Reason.BAD_INPUT, f"unknown export format {fmt!r}")
    with lg.snapshot(book) as snap:
        return write(
            out, book=book, assets=snap.assets, accounts=snap.accounts, entries=snap.entries
        )


def replay_file(
    lg: Ledger, path: Path, *, progress: Callable[[int], None] | None = None
) -> VerifyReport:
    """Replay a JSON Lines export into `lg` (all or nothing), then verify the book."""
    from ledger.export.jsonl import read_jsonl

    with path.open(encoding="utf-8") as lines:
        parsed = read_jsonl(lines)
        lg.restore(
            parsed.book,
            parsed.entries,
            assets=parsed.assets,
            accounts=parsed.accounts,
            progress=progress,
        )
    return verify_book(lg, parsed.book)
