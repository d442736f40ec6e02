"""Export a book to a file format, and replay a JSON Lines export into a database.

An export to a file is written to a temporary file in the target's directory, flushed to disk
(fsync) and renamed over the target, so the target is either the whole export or untouched;
a refused or failed export leaves nothing behind. A bad output path is refused before the
database is read.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from ledger.domain.fund.shareindex import in_shares
from ledger.domain.journal import JournalEntry
from ledger.errors import Reason, Rejected
from ledger.services.ledger import Ledger, VerifyReport
from ledger.services.share_index import index_splits

FORMATS = ("jsonl", "ledger", "beancount")


def export_book(lg: Ledger, book: str, fmt: str, out: TextIO) -> int:
    """Write `book` to `out` as jsonl, ledger or beancount; return the entry count."""
    if fmt not in FORMATS:
        raise Rejected(Reason.BAD_INPUT, f"unknown export format {fmt!r}")
    if fmt == "jsonl":
        from ledger.export.jsonl import write_jsonl_rows

        assets, accounts, chunks = lg.export_rows(book)
        return write_jsonl_rows(out, book=book, assets=assets, accounts=accounts, chunks=chunks)
    with lg.snapshot(book) as snap:
        if fmt == "ledger":
            from ledger.export.ledgercli import write_ledger as write
        else:
            from ledger.export.beancount import write_beancount as write
        entries: Iterable[JournalEntry] = snap.entries
        if any(seq <= snap.head_seq for seq, _, _ in index_splits(lg, book)):
            # A fund with a share index: the tools read each holder's shares, not units.
            entries = in_shares(entries, book)
        return write(out, book=book, assets=snap.assets, accounts=snap.accounts, entries=entries)


def export_to_path(lg: Ledger, book: str, fmt: str, path: Path) -> int:
    """Export `book` to the file `path`, atomically (see the module docstring)."""
    check_output_path(path)
    with atomic_text_file(path) as out:
        return export_book(lg, book, fmt, out)


def check_output_path(path: Path) -> None:
    """Refuse an output path that cannot take a file: its directory missing or unwritable, or
    the path itself a directory or something other than a regular file."""
    parent = path.parent
    if path.is_dir():
        raise Rejected(Reason.BAD_INPUT, f"output {str(path)!r} is a directory")
    if path.exists() and not path.is_file():
        raise Rejected(Reason.BAD_INPUT, f"output {str(path)!r} exists and is not a regular file")
    if not parent.is_dir():
        raise Rejected(Reason.BAD_INPUT, f"output directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise Rejected(Reason.BAD_INPUT, f"output directory {str(parent)!r} is not writable")


@contextmanager
def atomic_text_file(path: Path) -> Iterator[TextIO]:
    """Yield a UTF-8 text file that replaces `path` only once it is whole and on disk."""
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    except OSError as exc:
        raise Rejected(Reason.BAD_INPUT, f"cannot write to {str(path)!r}: {exc.strerror}") from None
    tmp = Path(name)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # as open() would create it, not mkstemp's 0600
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
        _fsync_directory(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise Rejected(Reason.BAD_INPUT, f"cannot write {str(path)!r}: {exc.strerror}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed export leaves no file behind
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_directory(folder: Path) -> None:
    """Make the rename durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replay_file(
    lg: Ledger,
    path: Path,
    *,
    progress: Callable[[int], None] | None = None,
    parallel: bool | None = None,
) -> VerifyReport:
    """Replay a JSON Lines export into `lg` (all or nothing); return what it established.

    The replay checks everything `verify` checks while it appends (hashes against the
    header's definitions, links, balances, rules, reversals, the trailer), so it needs no
    second pass: the report is the replayed head. A large file is parsed in a second process
    while this one writes (`ledger.services.jsonl_parallel`; `parallel` forces either way).
    """
    from ledger.services.jsonl_parallel import open_jsonl

    with open_jsonl(path, parallel=parallel) as parsed:
        count, head_seq, head_hash = lg.replay(
            parsed.book,
            parsed.records,
            assets=parsed.assets,
            accounts=parsed.accounts,
            progress=progress,
        )
    return VerifyReport(
        book=parsed.book, ok=True, entries=count, head_seq=head_seq, head_hash=head_hash.hex()
    )
