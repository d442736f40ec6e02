"""`verify` in two processes (ledger.services.verify_slice) says exactly what the one-pass audit
says: wherever the book is split, whatever was tampered with, when the child dies, and while a
writer appends; a long book takes the second process by default and a short one does not."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import ledger.services.ledger as ledger_module
from ledger.domain.audit import Auditor
from ledger.services import verify_slice
from ledger.services.ledger import Ledger, VerifyReport, open_ledger
from ledger.services.verify_slice import SliceHelper, SliceJob
from tests.test_kernel_support import BOOK, execute_sql, mint, move, setup_book

ENTRIES = 45  # a reversal of entry 12 at 40; holder balances touch zero at 20 and 30


def _book(lg: Ledger) -> None:
    setup_book(lg)
    for n in range(1, ENTRIES + 1):
        if n == 40:
            lg.reverse(BOOK, 12)
        elif n in (20, 30):  # bob's whole balance goes back: his rule's extreme is 0
            bob = lg.balances(BOOK).get(("holder:bob", "ETH"), 0)
            lg.post(move("holder:bob", "equity", bob, "ETH"))
        elif n % 3 == 0:
            lg.post(move("cash", "fees", 1_000 + n))
        else:
            lg.post(mint("holder:bob" if n % 2 else "holder:alice", 10**18 * n + 2**200 * (n % 2)))


@pytest.fixture
def book(db_url: str) -> Iterator[Ledger]:
    lg = open_ledger(db_url)
    lg.init()
    _book(lg)
    try:
        yield lg
    finally:
        lg.close()


def _split_at(monkeypatch: pytest.MonkeyPatch, first: int) -> None:
    real = ledger_module.split_point

    def split_point(last: int, *, parallel: bool | None) -> int | None:
        return real(last, parallel=False) if parallel is False else first

    monkeypatch.setattr(ledger_module, "split_point", split_point)


def _verify(lg: Ledger, **kwargs: Any) -> tuple[VerifyReport, int]:
    """Return the report and the sum of what was reported as progress."""
    counted: list[int] = []
    report = lg.verify(BOOK, progress=counted.append, **kwargs)
    return report, sum(counted)


@contextmanager
def _spied(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[Any]]]:
    """Record every child started and every join's answer."""
    seen: dict[str, list[Any]] = {"children": [], "joins": [], "processes": []}
    popen = subprocess.Popen
    join = Auditor.join

    def spy_popen(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        seen["children"].append(args)
        seen["processes"].append(process := popen(args, **kwargs))
        return process

    def spy_join(self: Auditor, part: Auditor) -> bool:
        seen["joins"].append(answer := join(self, part))
        return answer

    monkeypatch.setattr(subprocess, "Popen", spy_popen)
    monkeypatch.setattr(Auditor, "join", spy_join)
    yield seen


def _tamper_hash(lg: Ledger, seq: int) -> None:
    execute_sql(lg, "DROP TRIGGER tl_entries_no_update" + ("" if _sqlite(lg) else " ON tl_entries"))
    zero = "zeroblob(32)" if _sqlite(lg) else "decode(repeat('00', 32), 'hex')"
    execute_sql(lg, f"UPDATE tl_entries SET hash = {zero} WHERE seq = {seq}")


def _tamper_amount(lg: Ledger, seq: int) -> None:
    execute_sql(
        lg, "DROP TRIGGER tl_postings_no_update" + ("" if _sqlite(lg) else " ON tl_postings")
    )
    execute_sql(lg, f"UPDATE tl_postings SET amount = amount + 1 WHERE seq = {seq} AND idx = 0")


def _sqlite(lg: Ledger) -> bool:
    return lg.engine.dialect.name == "sqlite"


@pytest.mark.parametrize("first", [2, 3, 12, 13, 20, 21, 31, 40, 41, ENTRIES])
def test_a_valid_book_is_vouched_for_wherever_it_is_split(
    book: Ledger, monkeypatch: pytest.MonkeyPatch, first: int
) -> None:
    one_pass = _verify(book, parallel=False)
    assert one_pass == (one_pass[0], ENTRIES) and one_pass[0].ok
    _split_at(monkeypatch, first)
    with _spied(monkeypatch) as seen:
        assert _verify(book) == one_pass
    assert len(seen["children"]) == 1 and seen["joins"] == [True]


@pytest.mark.parametrize("tamper", [_tamper_hash, _tamper_amount], ids=["hash", "amount"])
@pytest.mark.parametrize("where", [-1, 0, 1, 5])
def test_a_tampered_book_is_named_as_the_one_pass_names_it(
    book: Ledger,
    monkeypatch: pytest.MonkeyPatch,
    tamper: Callable[[Ledger, int], None],
    where: int,
) -> None:
    """Tampered at the entry before the slice (its anchor), at the slice's first entry, just
    after it, and deep inside it; also at the reversed entry 12 with the split after it."""
    first = 21
    tamper(book, first + where)
    one_pass = book.verify(BOOK, parallel=False)
    assert not one_pass.ok and one_pass.first_bad_seq == first + where
    for split in (first, 13, 2):
        _split_at(monkeypatch, split)
        assert book.verify(BOOK) == one_pass, split


def test_a_tampered_reversal_target_is_named_across_the_split(
    book: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tamper_amount(book, 12)  # and its reversal, entry 40, no longer undoes it
    one_pass = book.verify(BOOK, parallel=False)
    assert one_pass.first_bad_seq == 12
    _split_at(monkeypatch, 13)
    assert book.verify(BOOK) == one_pass


def test_a_child_that_dies_leaves_the_one_pass_answer_and_a_warning(
    book: Ledger, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    one_pass = _verify(book, parallel=False)
    real = ledger_module.slice_child

    @contextmanager
    def killed(job: SliceJob, settled: threading.Event) -> Iterator[SliceHelper]:
        with real(job, settled) as helper:
            helper.child.process.kill()
            yield helper

    monkeypatch.setattr(ledger_module, "slice_child", killed)
    with caplog.at_level(logging.WARNING, logger=verify_slice.__name__):
        assert _verify(book, parallel=True) == one_pass  # progress counts each entry once
    assert "the audit of entries from" in caplog.text and "exited" in caplog.text


def test_a_verify_that_fails_early_leaves_no_thread_process_or_snapshot(
    book: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parent raises once it has the book's header, by when its reader thread has
    started the child, queued the parent's rows and waits to release the snapshot: the
    thread, the child and the read transaction all end."""

    def broken(*args: object, **kwargs: object) -> Auditor:
        time.sleep(0.5)
        raise RuntimeError("a bug in the parent")

    monkeypatch.setattr(ledger_module, "Auditor", broken)
    with _spied(monkeypatch) as seen, pytest.raises(RuntimeError, match="a bug in the parent"):
        book.verify(BOOK, parallel=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        t.name == "tl-prefetch" for t in threading.enumerate()
    ):
        time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name == "tl-prefetch"]
    assert all(process.poll() is not None for process in seen["processes"])
    monkeypatch.undo()
    book.post(mint("holder:alice", 1))  # no read transaction left holding anything up
    assert book.verify(BOOK).ok


def test_entries_appended_during_the_audit_are_not_part_of_it(
    book: Ledger, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    """The child reads what the parent's snapshot holds, though a writer appends between the
    parent's start and the child's (PostgreSQL: the exported snapshot; SQLite: append-only
    entries up to the parent's head)."""
    before = book.verify(BOOK, parallel=False)
    real = ledger_module.slice_child

    @contextmanager
    def with_a_writer(job: SliceJob, settled: threading.Event) -> Iterator[SliceHelper]:
        writer = open_ledger(db_url)
        try:
            writer.post(mint("holder:alice", 7))
            writer.post(move("holder:alice", "holder:bob", 7, "ETH"))
        finally:
            writer.close()
        with real(job, settled) as helper:
            yield helper

    monkeypatch.setattr(ledger_module, "slice_child", with_a_writer)
    assert book.verify(BOOK, parallel=True) == before
    monkeypatch.undo()
    after = book.verify(BOOK, parallel=True)
    assert after.ok and after.head_seq == ENTRIES + 2


def test_a_long_book_takes_a_second_process_by_default(
    book: Ledger, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(verify_slice, "PARALLEL_ENTRIES", ENTRIES)
    monkeypatch.setattr(verify_slice.os, "cpu_count", lambda: 2)
    with _spied(monkeypatch) as seen, caplog.at_level(logging.WARNING):
        report, progressed = _verify(book)
    assert report.ok and progressed == ENTRIES and not caplog.records
    assert seen["joins"] == [True]
    [args] = seen["children"]
    assert args[1:] == ["-m", "ledger.services.verify_slice", BOOK, "28-45"]


@pytest.mark.parametrize("cores,entries", [(1, ENTRIES), (2, ENTRIES + 1)])
def test_one_core_or_a_short_book_is_audited_in_one_pass(
    book: Ledger, monkeypatch: pytest.MonkeyPatch, cores: int, entries: int
) -> None:
    monkeypatch.setattr(verify_slice, "PARALLEL_ENTRIES", entries)
    monkeypatch.setattr(verify_slice.os, "cpu_count", lambda: cores)
    with _spied(monkeypatch) as seen:
        assert _verify(book) == (book.verify(BOOK, parallel=False), ENTRIES)
    assert seen == {"children": [], "joins": [], "processes": []}


def test_an_in_memory_database_is_audited_in_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process cannot open it."""
    lg = open_ledger("sqlite://")
    lg.init()
    _book(lg)
    with _spied(monkeypatch) as seen:
        report = lg.verify(BOOK, parallel=True)
    assert report.ok and report.entries == ENTRIES and seen["children"] == []


@pytest.mark.parametrize(
    "last,first",
    [(1, None), (2, 2), (9, 6), (100_000, 62_501), (1_000_000, 520_001), (10**7, 5_020_001)],
)
def test_the_child_takes_a_little_less_than_half(last: int, first: int | None) -> None:
    """The parent also reads the stored balances and starts the child: it folds up to
    HEAD_START / 2 entries beyond half, at most an eighth of the book."""
    assert verify_slice.split_point(last, parallel=True) == first


def test_parallel_false_is_one_pass_whatever_the_book() -> None:
    """The fallback after a failed slice asks for parallel=False: it must never split again."""
    assert verify_slice.split_point(10**7, parallel=False) is None


def test_a_snapshot_identifier_is_checked_before_it_is_spoken() -> None:
    from ledger.storage.journal_store import JournalStore

    store = JournalStore.__new__(JournalStore)
    with pytest.raises(ValueError, match="not a snapshot identifier"):
        store.import_snapshot("00000003-0000001B-1'; DROP TABLE tl_entries; --")
