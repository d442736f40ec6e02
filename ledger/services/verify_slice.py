"""Audit the second part of a long book in a second process, beside the audit of the first.

The audit of one entry is about 7 us of CPython (a JSON form, a sha256, dict updates) and
cannot be made much cheaper, but entries n.. need nothing from entries ..n-1 except the
stored hash of n-1 and what `Auditor.join` settles afterwards. So `Ledger.verify` of a book
of PARALLEL_ENTRIES or more, on a machine of two or more cores, folds entries 1..m itself
while a child (`python -m ledger.services.verify_slice`, see `ledger.services.child`) folds
m+1..last as an `Auditor.slice`, in the same snapshot: on PostgreSQL the parent exports its
snapshot and the child imports it; on SQLite the entries up to the head the parent read
cannot change (the journal is append-only), and the parent reads the stored head and
balances in its own transaction. The parent then joins the slice.

When the slice found a problem, or cannot be joined, or the child failed, the parent audits
the book again in one pass: a problem is always named as the one-pass audit names it, and
the report is the same either way.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ledger.domain.audit import Auditor
from ledger.errors import Rejected
from ledger.services.child import Child, ChildFailed, Send, received, run_child, serve

PARALLEL_ENTRIES = 100_000
"""Books at least this long are verified in two processes; below it starting the child
(about 0.3 s) costs more than it saves."""
HEAD_START = 40_000
"""Entries the parent folds beyond half while the child starts: about 0.3 s of one core."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SliceJob:
    """What the child audits: entries `first`..`last` of `book` at `url`, in `snapshot`
    (PostgreSQL's exported snapshot, or None)."""

    url: str
    book: str
    first: int
    last: int
    snapshot: str | None


def split_point(last: int, *, parallel: bool | None) -> int | None:
    """Return the first entry the child audits, or None to audit in one process: by
    default a book of PARALLEL_ENTRIES or more on two or more cores."""
    if parallel is None:
        parallel = (os.cpu_count() or 1) > 1 and last >= PARALLEL_ENTRIES
    if not parallel or last < 2:
        return None
    return last // 2 + min(HEAD_START // 2, last // 8) + 1


class SliceHelper:
    """The parent's view of the child: its result, and when the parent's own transaction
    (whose snapshot the child imports) may end."""

    def __init__(self, child: Child, first: int, settled: threading.Event) -> None:
        self.child = child
        self.first = first
        self.settled = settled  # set when the parent is done with the child
        self.reported = 0  # entries of the slice reported to `progress`

    def result(self, progress: Callable[[int], None] | None) -> Auditor | None:
        """Wait for the child's slice; return it, or None when the child failed (logged)."""
        try:
            while True:
                message = self.child.receive()
                if message[0] == "progress":
                    self.reported += message[1]
                    if progress is not None:
                        progress(message[1])
                elif message[0] == "done":
                    part: Auditor = message[1]
                    return part
        except (ChildFailed, Rejected) as exc:
            log.warning(
                "the audit of entries from %d in a second process failed: %s", self.first, exc
            )
            return None
        finally:
            self.settled.set()  # the parent's snapshot is no longer needed


@contextmanager
def slice_child(job: SliceJob, settled: threading.Event) -> Iterator[SliceHelper]:
    """Start the child auditing `job`; leaving the context stops it. `settled` is set when
    the parent has the child's result, or gave up on it."""
    with run_child(
        "ledger.services.verify_slice",
        [job.book, f"{job.first}-{job.last}"],  # for `ps`; the job itself goes on stdin
        doing=f"auditing entries {job.first}-{job.last} of {job.book}",
        until="its report",
        given=job,
    ) as child:
        yield SliceHelper(child, job.first, settled)


def _audit(send: Send) -> None:
    """The child: audit the job's slice; send progress per chunk, then the slice."""
    from ledger.services.ledger import open_ledger  # the parent imports this module

    job: SliceJob = received()
    lg = open_ledger(job.url)
    try:
        part = lg.audit_slice(
            job.book,
            job.first,
            job.last,
            snapshot=job.snapshot,
            progress=lambda count: send("progress", count),
        )
    finally:
        lg.close()
    send("done", part.detached())


if __name__ == "__main__":
    serve(_audit)
