"""Bulk work without the cyclic garbage collector in its way.

An append of ten thousand entries, or a replay of a million, allocates a few container
objects per entry (tuples, lists, entries) that stay alive until their chunk is written.
CPython's cyclic collector runs every 700 net allocations and, as those objects age, walks
the whole heap again and again for garbage that is not there: the objects are acyclic and
freed by reference counting. Measured here: 15-20% of a replay, 7% of a large append. So
large batches pause the collector for their duration and let it run once after.

The collector is process-wide: another thread of an embedding application that makes cyclic
garbage meanwhile has it collected when the batch ends, not during it. A caller that had
disabled the collector keeps it disabled.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

BULK_POSTINGS = 2_000
"""Appends of at least this many postings pause the collector (below it, it seldom runs)."""


@contextmanager
def collector_paused(pause: bool = True) -> Iterator[None]:
    """Pause the cyclic garbage collector for the block when `pause` (and it is running)."""
    if not pause or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
