"""Run a generator in a background thread, a few items ahead of its consumer.

Database drivers release the GIL while they wait on the database, so reading the next chunk
of a book while the current one is being audited uses the machine's second core.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()


def prefetch(make: Callable[[], Iterator[T]], *, depth: int = 2) -> Generator[T, None, None]:
    """Yield the items of `make()`, produced in a thread up to `depth` items ahead.

    An exception in the producer is raised in the consumer. Closing the returned generator
    early stops the producer at its next item.
    """
    items: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        """Queue `item`; False when the consumer has gone (its queue may stay full)."""
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in make():
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)

    worker = threading.Thread(target=produce, name="tl-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)
