"""Concurrent writers from several OS processes: no gap, no fork, no lost write, no overdraft."""

from __future__ import annotations

import itertools
import multiprocessing
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from ledger.domain.journal import Account, AccountType, BalanceRule, EntryDraft
from ledger.domain.money import Asset
from ledger.errors import Reason, Rejected
from ledger.services.ledger import Ledger, open_ledger
from tests.test_kernel_support import mint, move, setup_book

WORKERS = 8
ROUNDS = 30
MINT_UNITS = 10**20 + 1  # above int64, so the totals prove exact big-integer storage
DRAW_UNITS = 10**19 + 7
DRAWS_EACH = 5
SHARED_FUNDS = 10 * DRAW_UNITS + 3  # 4 overdrawers x 5 draws = 20 tries; exactly 10 fit
# Each worker is a fresh OS process with its own connections. The forkserver starts them
# from a clean server process that has imported the ledger once (not from the pytest process,
# so nothing is inherited but the code): spawn would re-import the ledger in every child, which
# costs seconds on this 2-core machine.
SPAWN = multiprocessing.get_context("forkserver")
SPAWN.set_forkserver_preload(["ledger.services.ledger", "tests.test_kernel_support"])


def _post_retrying(lg: Ledger, draft: EntryDraft, tally: dict[str, Any]) -> str:
    """Post `draft`, retrying on Rejected(BUSY); return "ok", a reason, or "error: ..."."""
    for _ in range(200):
        try:
            lg.post(draft)
            return "ok"
        except Rejected as exc:
            if exc.reason is Reason.BUSY and exc.retryable:
                tally["busy"] += 1
                time.sleep(0.01)
                continue
            return exc.reason.value
        except Exception as exc:  # a raw driver error is a finding, reported to the parent
            return f"error: {type(exc).__module__}.{type(exc).__name__}: {exc}"
    return "error: still busy after 200 tries"


def _worker(url: str, book: str, worker: int, draws: int, barrier: Any, results: Any) -> None:
    """Mint ROUNDS times to holder:w<worker>, trying `draws` overdraws of holder:shared."""
    lg = open_ledger(url)
    tally: dict[str, Any] = {"worker": worker, "book": book, "busy": 0, "outcomes": []}
    try:
        lg.head(book)  # connect before the first start line
        for i in range(ROUNDS):
            # Every round starts together, so all the workers are in flight at once each time
            # (a single start line is not enough: under load one process may finish first).
            barrier.wait(timeout=60)
            holder = f"holder:w{worker}"
            outcome = _post_retrying(
                lg, mint(holder, MINT_UNITS, key=f"w{worker}-m{i}", book=book), tally
            )
            tally["outcomes"].append(("mint", outcome))
            if i < draws:
                draw = move(
                    "holder:shared", holder, DRAW_UNITS, "ETH", key=f"w{worker}-d{i}", book=book
                )
                tally["outcomes"].append(("draw", _post_retrying(lg, draw, tally)))
    except Exception as exc:
        tally["outcomes"].append(("crash", f"error: {type(exc).__name__}: {exc}"))
    finally:
        lg.close()
        results.put(tally)


def _batch_worker(
    url: str, books: tuple[str, str], worker: int, barrier: Any, results: Any
) -> None:
    """Post ROUNDS two-book batches (one mint in each of `books`, in the given order)."""
    lg = open_ledger(url)
    tally: dict[str, Any] = {"worker": worker, "books": books, "busy": 0, "outcomes": []}
    try:
        lg.head(books[0])
        holder = f"holder:w{worker}"
        for i in range(ROUNDS):
            barrier.wait(timeout=60)
            batch = [mint(holder, MINT_UNITS, key=f"w{worker}-b{i}", book=b) for b in books]
            for _ in range(200):
                try:
                    lg.post_many(batch)
                    tally["outcomes"].append(("batch", "ok"))
                    break
                except Rejected as exc:
                    if exc.reason is not Reason.BUSY:
                        tally["outcomes"].append(("batch", exc.reason.value))
                        break
                    tally["busy"] += 1
                    time.sleep(0.01)
    except Exception as exc:
        tally["outcomes"].append(("crash", f"error: {type(exc).__name__}: {exc}"))
    finally:
        lg.close()
        results.put(tally)


def _steady_writer(url: str, count: int, barrier: Any, results: Any) -> None:
    """Post `count` small entries to book ONE as fast as possible."""
    lg = open_ledger(url)
    outcomes = []
    try:
        lg.head("ONE")
        barrier.wait(timeout=60)
        for i in range(count):
            try:
                lg.post(mint("holder:w0", 1, key=f"steady-{i}", book="ONE"))
                outcomes.append(("mint", "ok"))
            except Rejected as exc:
                outcomes.append(("mint", exc.reason.value))
    finally:
        lg.close()
        results.put({"worker": 0, "busy": 0, "outcomes": outcomes})


def _reference_worker(url: str, worker: int, barrier: Any, results: Any) -> None:
    """Register the same assets and open the same accounts as every other worker, in rounds."""
    lg = open_ledger(url)
    outcomes = []
    try:
        lg.books()
        for i in range(10):
            barrier.wait(timeout=60)
            for name, call, value in (
                ("asset", lg.add_asset, Asset(f"X{i}", 6)),
                ("account", lg.open_account, Account(f"N{i}", "cash", AccountType.ASSET)),
            ):
                try:
                    call(value)
                    outcomes.append((name, "ok"))
                except Exception as exc:  # a raw driver error is a finding
                    outcomes.append((name, f"{type(exc).__name__}: {exc}"))
    finally:
        lg.close()
        results.put({"worker": worker, "busy": 0, "outcomes": outcomes})


def _same_key_worker(url: str, worker: int, barrier: Any, results: Any) -> None:
    """Post the same keyed drafts as every other worker, in rounds; record what comes back."""
    lg = open_ledger(url)
    outcomes = []
    try:
        lg.head("ONE")
        for i in range(ROUNDS):
            barrier.wait(timeout=60)
            try:
                entry = lg.post(mint("holder:w0", MINT_UNITS + i, key=f"same-{i}", book="ONE"))
                outcomes.append((f"same-{i}", entry.seq, entry.hash.hex()))
            except Exception as exc:  # a refusal or a raw driver error is a finding
                outcomes.append((f"same-{i}", 0, f"{type(exc).__name__}: {exc}"))
    finally:
        lg.close()
        results.put({"worker": worker, "busy": 0, "outcomes": outcomes})


def _open_book(lg: Ledger, book: str) -> None:
    setup_book(lg, book)
    lg.open_account(Account(book, "holder:shared", AccountType.LIABILITY, BalanceRule.NON_NEGATIVE))
    for worker in range(WORKERS):
        lg.open_account(
            Account(book, f"holder:w{worker}", AccountType.LIABILITY, BalanceRule.NON_NEGATIVE)
        )


def _run(url: str, plan: Sequence[tuple[Any, ...]], target: Any = _worker) -> list[dict[str, Any]]:
    """Run one process per plan item, `target(url, *item, barrier, results)`, all at once."""
    barrier = SPAWN.Barrier(len(plan))
    results = SPAWN.Queue()
    processes = [SPAWN.Process(target=target, args=(url, *item, barrier, results)) for item in plan]
    for process in processes:
        process.start()
    tallies = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    return tallies


def _check_book(lg: Ledger, book: str, tallies: list[dict[str, Any]], *, funded: int) -> None:
    """Assert the book is exactly the sum of the accepted writes, gapless and verified."""
    mints = {
        t["worker"]: sum(1 for k, o in t["outcomes"] if (k, o) == ("mint", "ok")) for t in tallies
    }
    draws = {
        t["worker"]: sum(1 for k, o in t["outcomes"] if (k, o) == ("draw", "ok")) for t in tallies
    }
    accepted = sum(mints.values()) + sum(draws.values())
    report = lg.verify(book)
    assert (report.ok, report.head_seq, report.entries) == (True, accepted + 1, accepted + 1), (
        report
    )
    entries = list(lg.entries(book))
    assert [e.seq for e in entries] == list(range(1, accepted + 2))
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    assert len({e.draft.idempotency_key for e in entries}) == accepted + 1
    expected = {("holder:shared", "ETH"): funded - DRAW_UNITS * sum(draws.values())}
    for worker, minted in mints.items():
        expected[(f"holder:w{worker}", "ETH")] = minted * MINT_UNITS + draws[worker] * DRAW_UNITS
    expected[("equity", "ETH")] = -(funded + MINT_UNITS * sum(mints.values()))
    assert lg.balances(book) == {k: v for k, v in expected.items() if v}
    assert all(
        units >= 0
        for (account, _), units in lg.balances(book).items()
        if account.startswith("holder:")
    )


@pytest.mark.postgres
def test_eight_processes_on_one_postgres_book(pg_url: str) -> None:
    """8 processes writing one book at once, half overdrawing: gapless, exact, never negative."""
    lg = open_ledger(pg_url)
    lg.init()
    _open_book(lg, "ONE")
    lg.post(mint("holder:shared", SHARED_FUNDS, key="fund", book="ONE"))
    plan = [("ONE", worker, DRAWS_EACH if worker % 2 == 0 else 0) for worker in range(WORKERS)]
    tallies = _run(pg_url, plan)
    outcomes = [o for t in tallies for o in t["outcomes"]]
    assert [o for o in outcomes if o[1] not in ("ok", "balance_constraint")] == []
    assert sorted(k for k, o in outcomes if o == "balance_constraint") == ["draw"] * 10
    assert sum(1 for k, o in outcomes if (k, o) == ("draw", "ok")) == 10
    assert sum(1 for k, o in outcomes if (k, o) == ("mint", "ok")) == WORKERS * ROUNDS
    _check_book(lg, "ONE", tallies, funded=SHARED_FUNDS)
    assert lg.balance("ONE", "holder:shared", "ETH") == 3
    lg.close()


@pytest.mark.postgres
def test_eight_processes_on_eight_postgres_books(pg_url: str) -> None:
    """8 processes each writing their own book at once all succeed, every chain verifies."""
    lg = open_ledger(pg_url)
    lg.init()
    books = [f"BOOK{worker}" for worker in range(WORKERS)]
    for book in books:
        _open_book(lg, book)
        lg.post(mint("holder:shared", SHARED_FUNDS, key="fund", book=book))
    tallies = _run(pg_url, [(book, worker, 2) for worker, book in enumerate(books)])
    assert [o for t in tallies for o in t["outcomes"] if o[1] != "ok"] == []
    for tally in tallies:
        _check_book(lg, tally["book"], [tally], funded=SHARED_FUNDS)
    lg.close()


@pytest.mark.postgres
def test_cross_book_batches_in_opposite_orders_do_not_deadlock(pg_url: str) -> None:
    """Batches over two books, taken in opposite orders by neighbours, all commit, no deadlock."""
    lg = open_ledger(pg_url)
    lg.init()
    books = [f"RING{worker}" for worker in range(WORKERS)]
    for book in books:
        _open_book(lg, book)
    plan = []
    for worker in range(WORKERS):
        pair = (books[worker], books[(worker + 1) % WORKERS])
        plan.append((pair if worker % 2 == 0 else pair[::-1], worker))
    tallies = _run(pg_url, plan, _batch_worker)
    assert [o for t in tallies for o in t["outcomes"] if o != ("batch", "ok")] == []
    # Heads are locked in sorted book order, so no deadlock is ever detected (40P01 -> BUSY).
    assert sum(t["busy"] for t in tallies) == 0
    for index, book in enumerate(books):
        report = lg.verify(book)
        assert (report.ok, report.head_seq) == (True, 2 * ROUNDS), report
        writers = (index, (index - 1) % WORKERS)
        assert lg.balances(book) == {
            **{(f"holder:w{w}", "ETH"): ROUNDS * MINT_UNITS for w in writers},
            ("equity", "ETH"): -2 * ROUNDS * MINT_UNITS,
        }
    lg.close()


@pytest.fixture
def locked_book_a(pg_url: str) -> Iterator[tuple[Ledger, Any]]:
    """Yield (a ledger with lock_timeout=1s, a connection holding book A's head row lock)."""
    import psycopg

    setup = open_ledger(pg_url)
    setup.init()
    for book in ("A", "B"):
        _open_book(setup, book)
    setup.close()
    # lock_timeout turns "would wait" into an error instead of a hang.
    lg = open_ledger(pg_url + "%20-clock_timeout%3D1000")
    holder = psycopg.connect(pg_url)
    try:
        with holder.cursor() as cur:  # another writer is in the middle of appending to A
            cur.execute("SELECT head_seq FROM tl_books WHERE code = 'A' FOR UPDATE")
        yield lg, holder
    finally:
        holder.close()
        lg.close()


@pytest.mark.postgres
def test_a_locked_book_does_not_block_other_books(locked_book_a: tuple[Ledger, Any]) -> None:
    """While one book's head is locked by a writer, another book takes writes at once."""
    lg, holder = locked_book_a
    assert lg.post(mint("holder:w0", 5, key="b-1", book="B")).seq == 1
    assert lg.post_many([mint("holder:w1", 5, book="B")])[0].seq == 2
    holder.rollback()
    assert lg.post(mint("holder:w0", 5, key="a-1", book="A")).seq == 1
    assert lg.verify("A").ok and lg.verify("B").ok


@pytest.mark.postgres
def test_lock_timeout_is_a_retryable_busy(locked_book_a: tuple[Ledger, Any]) -> None:
    """A write that times out waiting for a book's lock is Rejected(BUSY, retryable)."""
    lg, holder = locked_book_a
    with pytest.raises(Rejected) as caught:
        lg.post(mint("holder:w0", 5, key="a-1", book="A"))
    assert (caught.value.reason, caught.value.retryable) == (Reason.BUSY, True)
    holder.rollback()
    assert lg.post(mint("holder:w0", 5, key="a-1", book="A")).seq == 1


def test_sqlite_writer_blocked_by_another_gets_retryable_busy(
    sqlite_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite writer that cannot get the lock is refused BUSY (retryable); readers go on."""
    import sqlite3

    from ledger.storage import engine

    lg = open_ledger(sqlite_url)
    lg.init()
    _open_book(lg, "ONE")
    lg.post(mint("holder:shared", SHARED_FUNDS, key="fund", book="ONE"))
    lg.close()
    monkeypatch.setattr(engine, "SQLITE_BUSY_TIMEOUT_MS", 50)  # wait 50 ms, not 10 s
    lg = open_ledger(sqlite_url)
    other = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        head = lg.head("ONE")
        with pytest.raises(Rejected) as caught:
            lg.post(mint("holder:w0", 5, key="w0-1", book="ONE"))
        assert (caught.value.reason, caught.value.retryable) == (Reason.BUSY, True)
        assert lg.verify("ONE").ok  # a reader does not wait for the writer
        assert lg.head("ONE") == head
        other.execute("ROLLBACK")
        assert lg.post(mint("holder:w0", 5, key="w0-1", book="ONE")).seq == head[0] + 1
        assert lg.verify("ONE").ok
    finally:
        other.close()
        lg.close()


def test_verify_while_another_process_writes(db_url: str) -> None:
    """verify reads one consistent snapshot: a concurrent writer never causes a false finding."""
    lg = open_ledger(db_url)
    lg.init()
    _open_book(lg, "ONE")
    lg.post_many([mint("holder:w1", 1, key=f"base-{i}", book="ONE") for i in range(3000)])
    barrier = SPAWN.Barrier(2)
    results = SPAWN.Queue()
    writer = SPAWN.Process(target=_steady_writer, args=(db_url, 400, barrier, results))
    writer.start()
    barrier.wait(timeout=60)
    reports = []
    while writer.is_alive() and len(reports) < 200:
        reports.append(lg.verify("ONE"))
    tally = results.get(timeout=60)
    writer.join(timeout=30)
    assert [o for o in tally["outcomes"] if o != ("mint", "ok")] == []
    assert [r for r in reports if not r.ok] == []
    assert len({r.head_seq for r in reports}) > 1, "no verify overlapped a write"
    final = lg.verify("ONE")
    assert (final.ok, final.head_seq) == (True, 3400)
    lg.close()


def test_same_key_from_many_processes_is_written_once(db_url: str) -> None:
    """8 processes retrying the same keyed entries at once: one entry per key, same answer."""
    lg = open_ledger(db_url)
    lg.init()
    _open_book(lg, "ONE")
    tallies = _run(db_url, [(worker,) for worker in range(WORKERS)], _same_key_worker)
    answers = {o for t in tallies for o in t["outcomes"]}
    assert len(answers) == ROUNDS, sorted(answers)[:3]  # every worker got the same (seq, hash)
    entries = list(lg.entries("ONE"))
    assert sorted((e.draft.idempotency_key, e.seq, e.hash.hex()) for e in entries) == sorted(
        answers
    )
    assert lg.balance("ONE", "holder:w0", "ETH") == sum(MINT_UNITS + i for i in range(ROUNDS))
    assert lg.verify("ONE").ok
    lg.close()


def test_identical_reference_data_from_many_processes_at_once(db_url: str) -> None:
    """8 processes registering the same assets and accounts at once all succeed (idempotent)."""
    lg = open_ledger(db_url)
    lg.init()
    lg.close()
    tallies = _run(db_url, [(worker,) for worker in range(WORKERS)], _reference_worker)
    outcomes = [o for t in tallies for o in t["outcomes"]]
    assert [o for o in outcomes if o[1] != "ok"] == []
    lg = open_ledger(db_url)
    assert [a.code for a in lg.assets()] == [f"X{i}" for i in range(10)]
    assert lg.books() == [f"N{i}" for i in range(10)]
    lg.close()


def test_processes_on_one_sqlite_file(sqlite_url: str) -> None:
    """Several processes on one SQLite file succeed in turn or get BUSY; nothing is corrupted."""
    lg = open_ledger(sqlite_url)
    lg.init()
    _open_book(lg, "ONE")
    lg.post(mint("holder:shared", SHARED_FUNDS, key="fund", book="ONE"))
    plan = [("ONE", worker, DRAWS_EACH if worker % 2 == 0 else 0) for worker in range(WORKERS)]
    tallies = _run(sqlite_url, plan)
    outcomes = [o for t in tallies for o in t["outcomes"]]
    assert [o for o in outcomes if o[1] not in ("ok", "balance_constraint")] == []
    assert sum(1 for k, o in outcomes if (k, o) == ("draw", "ok")) == 10
    _check_book(lg, "ONE", tallies, funded=SHARED_FUNDS)
    lg.close()
