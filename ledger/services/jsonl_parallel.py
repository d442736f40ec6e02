"""Read a JSON Lines export file in a second process, beside the database writes.

A replay spends about half its time parsing lines and recomputing their hashes, and half
checking balances and writing rows. Parsing line n needs nothing from the database, so for
a large file a child process (`python -m ledger.services.jsonl_parallel FILE`) runs
`read_jsonl` over it, every check in order, and streams the checked records to the parent
in pickled chunks over a pipe (`ledger.services.child`), while the parent checks balances and
writes the previous chunk: on two cores the two halves overlap. A bounded queue in the parent
bounds how far the parse runs ahead.

What the parent sees is what `read_jsonl` gives in-process: the same header, the same
records in the same order, the same `Rejected` (reason, message and line) at the same point
of the stream, an `OSError` when the file cannot be read. A failure of the child itself (a
bug, or the process killed) is raised as `ReaderFailed`, never taken for the end of the
file. Leaving the context stops the child, whatever happened.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ledger.export.jsonl_read import JsonlBook, Record, entries_of, read_jsonl
from ledger.services.child import Child, ChildFailed, Send, run_child, serve

PARALLEL_BYTES = 8 << 20
"""Files at least this large (about 25,000 entries) are parsed in a child process; below it
starting one (about 0.1 s) costs more than it saves."""
CHUNK = 5_000  # records per message: pickling is a small part of each record's cost
QUEUED = 8  # chunks read ahead of the writes: bounds the memory the parse may run ahead
READ_BUFFER = 1 << 20


class ReaderFailed(ChildFailed):
    """The child process reading the file failed (a bug or a kill), not the file."""


@contextmanager
def open_jsonl(path: Path, *, parallel: bool | None = None) -> Iterator[JsonlBook]:
    """Yield the parsed export at `path`, its records parsed in a child process when
    `parallel` (by default: a file of PARALLEL_BYTES or more on a machine of two or more
    cores). Consume `records` inside the context."""
    if parallel is None:
        parallel = (os.cpu_count() or 1) > 1 and path.stat().st_size >= PARALLEL_BYTES
    if not parallel:
        with path.open(encoding="utf-8", buffering=READ_BUFFER) as lines:
            yield read_jsonl(lines)
        return
    with run_child(
        "ledger.services.jsonl_parallel",
        [str(path)],
        doing="reading the export",
        until="the end of the file",
        failure=ReaderFailed,
        depth=QUEUED,
    ) as child:
        _, book, assets, accounts = child.receive()
        records = _records(child)
        yield JsonlBook(book, assets, accounts, records, entries_of(book, records))


def _records(child: Child) -> Iterator[Record]:
    while True:
        message = child.receive()
        if message[0] == "end":
            return
        yield from message[1]


def _read(path: str, send: Send) -> None:
    """The child: parse `path` and send the header, chunks of records, then "end"."""
    with open(path, encoding="utf-8", buffering=READ_BUFFER) as lines:
        parsed = read_jsonl(lines)
        send("header", parsed.book, parsed.assets, parsed.accounts)
        while chunk := list(itertools.islice(parsed.records, CHUNK)):
            send("records", chunk)
    send("end")


if __name__ == "__main__":
    serve(lambda send: _read(sys.argv[1], send))
