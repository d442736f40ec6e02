"""`prefetch` hands over every item in order and the producer's exception, and a consumer that
stops early never leaves the producer's thread behind, wherever the producer was."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from ledger.services.prefetch import prefetch

_BEFORE: set[threading.Thread] = set()


@pytest.fixture(autouse=True)
def _threads_before() -> None:
    _BEFORE.clear()
    _BEFORE.update(threading.enumerate())


def _alive() -> list[threading.Thread]:
    """The producer threads this test started that are still running."""
    return [t for t in threading.enumerate() if t.name == "tl-prefetch" and t not in _BEFORE]


def _ended_within(seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    return not _alive()


def test_items_in_order_then_the_producers_exception() -> None:
    def make() -> Iterator[int]:
        yield from range(5)
        raise LookupError("the producer failed")

    got: list[int] = []
    with pytest.raises(LookupError, match="the producer failed"):
        for item in prefetch(make, depth=2):
            got.append(item)
    assert got == [0, 1, 2, 3, 4] and _ended_within(2)


@pytest.mark.parametrize("ending", ["done", "raises"])
def test_a_consumer_that_stops_after_the_producer_has_finished(ending: str) -> None:
    """The producer has queued all it has (a full queue) and is handing over its end when
    the consumer stops: the end is dropped and the thread ends."""
    finished = threading.Event()

    def make() -> Iterator[int]:
        yield from range(3)  # depth 2: the third waits for room
        finished.set()
        if ending == "raises":
            raise LookupError("after the consumer left")

    feed = prefetch(make, depth=2)
    assert next(feed) == 0
    assert finished.wait(2)
    feed.close()
    assert _ended_within(2)


def test_a_consumer_that_stops_early_stops_the_producer() -> None:
    made: list[int] = []

    def make() -> Iterator[int]:
        for n in range(1_000_000):
            made.append(n)
            yield n

    feed = prefetch(make, depth=2)
    assert [next(feed), next(feed)] == [0, 1]
    feed.close()
    assert _ended_within(2) and len(made) < 10
