"""Benchmark the ledger kernel on SQLite and PostgreSQL; print figures, record BENCHMARKS.md.

    .venv/bin/python bench/bench_kernel.py                 # the full run (1,000,000 entries)
    .venv/bin/python bench/bench_kernel.py --entries 50000 --no-record   # a quick look

Measures, in one run: batch ingest (postings/s), one durable entry's latency (median, p99),
8 concurrent writers on PostgreSQL (one book, eight books), and verify / export / replay of a
1,000,000-entry book beside `ledger -f FILE bal` and `hledger -f FILE bal` on the same journal.
Reference points measured in the same run: raw sqlite3 executemany and a raw durable commit.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import cpu_ticks, steal_since, write_section
from ledger.clock import FixedClock
from ledger.domain.journal import Account, AccountType, BalanceRule, EntryDraft, Posting
from ledger.domain.money import Asset
from ledger.errors import Rejected
from ledger.services.exports import export_book, replay_file
from ledger.services.ledger import Ledger, open_ledger

PG_URL = os.environ.get("TOKEN_LEDGER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2020, 1, 1, tzinfo=UTC)
ACCOUNTS = 1_000
CHUNK = 10_000


def setup_book(lg: Ledger, book: str) -> None:
    """Register USDT and open a cash account plus ACCOUNTS non-negative holder accounts."""
    lg.add_asset(Asset("USDT", 6))
    accounts = [Account(book, "fund:cash", AccountType.ASSET)]
    accounts += [
        Account(book, f"holder:h{i:04d}", AccountType.LIABILITY, BalanceRule.NON_NEGATIVE)
        for i in range(ACCOUNTS)
    ]
    lg.open_accounts(accounts)


def drafts(book: str, start: int, count: int) -> list[EntryDraft]:
    """Return `count` two-posting entries: cash moves to holders, amounts with 6 decimals."""
    return [
        EntryDraft(
            book=book,
            kind="deposit",
            effective_at=T0 + timedelta(seconds=i),
            postings=(
                Posting(f"holder:h{i % ACCOUNTS:04d}", "USDT", 1_000_000 + i),
                Posting("fund:cash", "USDT", -(1_000_000 + i)),
            ),
        )
        for i in range(start, start + count)
    ]


def ingest(lg: Ledger, book: str, total: int) -> float:
    """Append `total` entries in batches of CHUNK; return postings per second."""
    elapsed = 0.0
    for start in range(0, total, CHUNK):
        batch = drafts(book, start, min(CHUNK, total - start))
        began = time.perf_counter()
        lg.post_many(batch)
        elapsed += time.perf_counter() - began
    return 2 * total / elapsed


def single_latency(lg: Ledger, book: str, count: int) -> tuple[float, float]:
    """Post `count` entries one per transaction; return (median, p99) in milliseconds."""
    samples = []
    for draft in drafts(book, 10**7, count):
        began = time.perf_counter()
        lg.post(draft)
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def raw_sqlite_baselines(folder: Path) -> tuple[float, float]:
    """Return raw sqlite3 executemany rows/s and one durable commit's median in microseconds."""
    con = sqlite3.connect(folder / "raw.db", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE t (a INTEGER, b TEXT, c INTEGER)")
    rows = [(i, "holder", i * 7) for i in range(500_000)]
    began = time.perf_counter()
    con.execute("BEGIN")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    con.execute("COMMIT")
    rate = len(rows) / (time.perf_counter() - began)
    commits = []
    for i in range(300):
        began = time.perf_counter()
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO t VALUES (?, ?, ?)", (i, "x", i))
        con.execute("COMMIT")
        commits.append((time.perf_counter() - began) * 1e6)
    con.close()
    return rate, statistics.median(commits)


def raw_schema_ingest(folder: Path, total: int) -> float:
    """Return postings/s of raw sqlite3 executemany writing the rows an ingest of `total`
    entries writes (entry rows with dummy hashes, posting rows in account order, the balance
    rows) into the ledger's own tables, indexes and page cache, in batches of CHUNK: what
    SQLite costs with no Python work per entry at all, the ceiling of the kernel's ingest."""
    from ledger.storage.engine import SQLITE_CACHE_KIB
    from ledger.storage.journal_store import ENTRY_COLUMNS, POSTING_COLUMNS

    lg = open_ledger(f"sqlite:///{folder / 'schema.db'}", clock=FixedClock(T0))
    lg.init()
    lg.close()
    con = sqlite3.connect(folder / "schema.db", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    digest = bytes(32)
    entry_sql = f"INSERT INTO tl_entries ({ENTRY_COLUMNS}) VALUES ({_marks(ENTRY_COLUMNS)})"
    posting_sql = f"INSERT INTO tl_postings ({POSTING_COLUMNS}) VALUES ({_marks(POSTING_COLUMNS)})"
    balance_sql = (
        "INSERT OR REPLACE INTO tl_balances (book, account, asset, amount) VALUES (?,?,?,?)"
    )
    elapsed = 0.0
    for start in range(0, total, CHUNK):
        seqs = range(start + 1, min(start + CHUNK, total) + 1)
        entries = [("B", i, "deposit", i, i, None, b"", None, "[]", digest, digest) for i in seqs]
        postings = [
            row
            for i in seqs
            for row in (
                ("B", i, 0, f"holder:h{i % ACCOUNTS:04d}", "USDT", i),
                ("B", i, 1, "fund:cash", "USDT", -i),
            )
        ]
        postings.sort(key=lambda row: row[3])
        balances = [("B", f"holder:h{i:04d}", "USDT", i) for i in range(ACCOUNTS)]
        began = time.perf_counter()
        con.execute("BEGIN IMMEDIATE")
        con.executemany(entry_sql, entries)
        con.executemany(posting_sql, postings)
        con.executemany(balance_sql, balances)
        con.execute("COMMIT")
        elapsed += time.perf_counter() - began
    con.close()
    return 2 * total / elapsed


def _marks(columns: str) -> str:
    """Return one `?` per column of a comma-separated column list."""
    return ",".join("?" * len(columns.split(",")))


def raw_pg_commit() -> float:
    """Return one durable PostgreSQL INSERT + COMMIT's median in milliseconds (the fsync floor)."""
    import psycopg

    samples = []
    with psycopg.connect(PG_URL) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS tl_bench_commit_ref (a int)")
        conn.commit()
        for i in range(300):
            began = time.perf_counter()
            conn.execute("INSERT INTO tl_bench_commit_ref VALUES (%s)", (i,))
            conn.commit()
            samples.append((time.perf_counter() - began) * 1000)
        conn.execute("DROP TABLE tl_bench_commit_ref")
        conn.commit()
    return statistics.median(samples)


def _writer(url: str, book: str, count: int, seed: int, ready: Any, go: Any, queue: Any) -> None:
    """Open the ledger and warm it up, wait for the start signal, then post `count` entries."""
    lg = open_ledger(url)
    batch = drafts(book, seed * 1_000_000, count + 1)
    lg.post(batch[0])  # warm-up: connection, schema check, account cache
    ready.put(True)
    go.wait()
    began = time.perf_counter()
    done = 0
    for draft in batch[1:]:
        while True:
            try:
                lg.post(draft)
                done += 1
                break
            except Rejected as exc:
                if not exc.retryable:
                    raise
    queue.put((done, time.perf_counter() - began))


def concurrent_writers(url: str, books: list[str], per_writer: int) -> float:
    """Run 8 writer processes (book i % len(books)); return committed entries per second.

    Process start-up and warm-up are outside the measured window: every writer is connected
    and ready before the start signal, and the window closes when the last one finishes.
    """
    ctx = mp.get_context("spawn")
    ready, go, queue = ctx.Queue(), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(
            target=_writer,
            args=(url, books[i % len(books)], per_writer, i + 1, ready, go, queue),
        )
        for i in range(8)
    ]
    results, elapsed, _ = start_together(procs, ready, go, queue)
    return sum(done for done, _ in results) / elapsed


def start_together(
    procs: list[Any], ready: Any, go: Any, queue: Any
) -> tuple[list[Any], float, float]:
    """Start `procs`, wait until each has put on `ready`, release them all at once with `go`;
    return (each one's result from `queue`, seconds from the signal to the last result,
    seconds of start-up and warm-up before the signal)."""
    started = time.perf_counter()
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get()
    began = time.perf_counter()
    go.set()
    results = [queue.get() for _ in procs]
    elapsed = time.perf_counter() - began
    for proc in procs:
        proc.join()
    return results, elapsed, began - started


def verdict(value: float, target: float) -> str:
    """Return "met" or "**missed**" for a figure against a lower bound."""
    return "met" if value >= target else "**missed**"


def raw_read_rate(path: Path, book: str) -> float:
    """Return entries/s of a raw sqlite3 read of a book's entry and posting rows (a reference
    for export and verify: what reading alone costs)."""
    con = sqlite3.connect(path)
    began = time.perf_counter()
    entries = con.execute(
        "SELECT seq, kind, effective_us, recorded_us, idem_key, reverses, metadata_json,"
        " prev_hash, hash FROM tl_entries WHERE book = ? ORDER BY seq",
        (book,),
    ).fetchall()
    con.execute(
        "SELECT seq, account, asset, amount FROM tl_postings WHERE book = ? ORDER BY seq, idx",
        (book,),
    ).fetchall()
    elapsed = time.perf_counter() - began
    con.close()
    return len(entries) / elapsed


def time_command(args: list[str]) -> float | None:
    """Run a command; return seconds, or None if the tool is missing or fails."""
    if shutil.which(args[0]) is None:
        return None
    began = time.perf_counter()
    result = subprocess.run(args, capture_output=True, check=False)
    return time.perf_counter() - began if result.returncode == 0 else None


def pg_schema_url() -> tuple[str, str] | None:
    """Create a fresh schema on the PostgreSQL server; return (url, schema) or None."""
    try:
        import psycopg

        schema = f"tl_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        return f"{PG_URL}?options=-csearch_path%3D{schema}", schema
    except Exception as exc:
        print(f"PostgreSQL unavailable ({exc}); skipping its figures")
        return None


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="entries in the big book")
    parser.add_argument("--pg-entries", type=int, default=200_000, help="entries ingested on PG")
    parser.add_argument("--no-record", action="store_true", help="do not write BENCHMARKS.md")
    args = parser.parse_args()
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    with tempfile.TemporaryDirectory(prefix="tl-bench-") as tmp:
        folder = Path(tmp)
        say(f"| load average at start | {' / '.join(f'{x:.2f}' for x in os.getloadavg())} |")
        ticks = cpu_ticks()
        raw_rate, raw_commit = raw_sqlite_baselines(folder)
        say(f"| reference: raw sqlite3 executemany (3 columns) | {raw_rate:,.0f} rows/s |")
        say(
            f"| reference: raw durable SQLite commit (synchronous=FULL), median | {raw_commit:,.0f} us |"
        )

        ceiling = raw_schema_ingest(folder, args.entries)
        say(
            f"| reference: raw sqlite3 executemany of the same rows into the ledger's tables and indexes | {ceiling:,.0f} postings/s (no Python per entry: the ceiling of batch ingest on this schema) |"
        )

        url = f"sqlite:///{folder / 'bench.db'}"
        lg = open_ledger(url, clock=FixedClock(T0))
        lg.init()
        setup_book(lg, "B")
        rate = ingest(lg, "B", args.entries)
        say(
            f"| SQLite batch ingest, {args.entries:,} entries x 2 postings, batches of {CHUNK:,} | {rate:,.0f} postings/s = {rate / raw_rate:.0%} of raw executemany, {rate / ceiling:.0%} of the same rows raw (target >= 300,000: {verdict(rate, 300_000)}) |"
        )
        setup_book(lg, "L")
        median, p99 = single_latency(lg, "L", 1_000)
        say(
            f"| SQLite one durable entry (synchronous=FULL), 1,000 posts | median {median:.3f} ms, p99 {p99:.3f} ms (target median <= 0.5 ms) |"
        )

        began = time.perf_counter()
        report = lg.verify("B")
        verify_s = time.perf_counter() - began
        assert report.ok, report
        say(
            f"| SQLite verify {report.entries:,} entries (hashes + definitions + balances + rules + reversals) | {verify_s:.2f} s = {report.entries / verify_s:,.0f} entries/s (target >= 300,000: {verdict(report.entries / verify_s, 300_000)}) |"
        )
        read_rate = raw_read_rate(folder / "bench.db", "B")
        say(
            f"| reference: raw sqlite3 read of the same book's entry and posting rows | {read_rate:,.0f} entries/s |"
        )

        jsonl = folder / "book.jsonl"
        began = time.perf_counter()
        with jsonl.open("w") as out:
            export_book(lg, "B", "jsonl", out)
        export_s = time.perf_counter() - began
        say(
            f"| SQLite export jsonl {args.entries:,} entries (streamed rows, trailer) | {export_s:.2f} s = {args.entries / export_s:,.0f} entries/s (target >= 200,000: {verdict(args.entries / export_s, 200_000)}) |"
        )

        replay_lg = open_ledger(f"sqlite:///{folder / 'replay.db'}", clock=FixedClock(T0))
        replay_lg.init()
        began = time.perf_counter()
        replayed = replay_file(replay_lg, jsonl)
        replay_s = time.perf_counter() - began
        assert replayed.ok and replayed.head_hash == report.head_hash
        say(
            f"| SQLite replay jsonl into an empty database (every check, one pass) | {replay_s:.2f} s = {args.entries / replay_s:,.0f} entries/s, identical head hash (target >= 100,000: {verdict(args.entries / replay_s, 100_000)}) |"
        )

        journal = folder / "book.ledger"
        with journal.open("w") as out:
            export_book(lg, "B", "ledger", out)
        ledger_s = time_command(["ledger", "-f", str(journal), "bal"])
        hledger_s = time_command(["hledger", "-f", str(journal), "bal"])
        for name, seconds in (("ledger", ledger_s), ("hledger", hledger_s)):
            if seconds is None:
                say(f"| `{name} -f FILE bal` on the same journal | not available |")
            else:
                say(
                    f"| `{name} -f FILE bal` on the same journal | {seconds:.2f} s = {args.entries / seconds:,.0f} entries/s; verify is {seconds / verify_s:.1f}x faster (target >= 3x: {verdict(seconds / verify_s, 3)}) |"
                )
        lg.close()
        replay_lg.close()

        pg = pg_schema_url()
        if pg is not None:
            pg_url, schema = pg
            try:
                plg = open_ledger(pg_url, clock=FixedClock(T0))
                plg.init()
                setup_book(plg, "B")
                rate = ingest(plg, "B", args.pg_entries)
                say(
                    f"| PostgreSQL batch ingest, {args.pg_entries:,} entries x 2 postings (COPY) | {rate:,.0f} postings/s |"
                )
                floor = raw_pg_commit()
                say(
                    f"| reference: raw durable PostgreSQL INSERT + COMMIT, median | {floor:.3f} ms (so one book, whose writers take turns, tops out near {1000 / floor:,.0f} commits/s) |"
                )
                setup_book(plg, "L")
                median, p99 = single_latency(plg, "L", 1_000)
                say(
                    f"| PostgreSQL one durable entry, 1,000 posts | median {median:.3f} ms, p99 {p99:.3f} ms (target median <= 2 ms) |"
                )
                began = time.perf_counter()
                report = plg.verify("B")
                seconds = time.perf_counter() - began
                say(
                    f"| PostgreSQL verify {report.entries:,} entries | {report.entries / seconds:,.0f} entries/s |"
                )
                books = [f"W{i}" for i in range(8)]
                for book in books:
                    setup_book(plg, book)
                one = concurrent_writers(pg_url, ["W0"], 400)
                say(
                    f"| PostgreSQL 8 writer processes, one book, one entry per transaction | {one:,.0f} entries/s = {one * floor / 1000:.0%} of the raw durable commit rate (target >= 1,200: {verdict(one, 1200)}; > 50% of raw: {verdict(one * floor / 1000, 0.5)}) |"
                )
                eight = concurrent_writers(pg_url, books, 400)
                say(
                    f"| PostgreSQL 8 writer processes, 8 books | {eight:,.0f} entries/s (target >= 3,000: {verdict(eight, 3000)}) |"
                )
                for book in books:
                    assert plg.verify(book).ok
                plg.close()
            finally:
                drop_schema(schema)
        say(f"| CPU time stolen by the host during the run (/proc/stat) | {steal_since(ticks)} |")

    table = "| measure | figure |\n|---|---|\n" + "\n".join(lines)
    if not args.no_record:
        write_section("Kernel (bench/bench_kernel.py)", table)
        print("recorded in BENCHMARKS.md")


if __name__ == "__main__":
    main()
