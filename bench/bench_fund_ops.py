"""Benchmark one fund operation (mint, redeem) through the Python API on SQLite and PostgreSQL.

    .venv/bin/python bench/bench_fund_ops.py                    # both databases, full run
    .venv/bin/python bench/bench_fund_ops.py --quick            # 1,000 orders since the price
    .venv/bin/python bench/bench_fund_ops.py --db sqlite --only latency
    .venv/bin/python bench/bench_fund_ops.py --db postgresql --only concurrent --json

Issue 7 asks for, with 1,000 holders, via `Funds.mint` / `Funds.redeem`:
  - the median and p99 latency of a mint and of a redeem after 10 and after 10,000 orders since
    the last price update, on SQLite and on PostgreSQL;
  - beside the kernel's single durable entry (`Ledger.post`, as bench/bench_kernel.py measures
    it) on the same database in the same run;
  - the orders per second of 8 processes minting and redeeming into one fund on PostgreSQL;
  - and (issue 8) `Funds.orders`: a netted batch of 10, 100 and 500 orders, per batch and
    per order (diagnostic, no target).
Targets: a mint or redeem within 2x of one durable kernel entry (about <= 1 ms median on SQLite,
<= 3 ms on PostgreSQL); the latency after 10,000 orders within 1.2x of the latency after 10;
>= 400 orders/s from 8 processes into one fund on PostgreSQL.

Honest timing: `time.perf_counter` runs around each public call only (`mint`, `redeem`,
`Ledger.post`); setup (product, 1,000 holders minted once, prices, the filler orders between the
two measured windows) is excluded and reported. Business time comes from a `FixedClock` moved
1 ms per call, so every measured order is within a few seconds of the price it is priced at
(10,400 orders = 10.4 s of business time, well inside a 60 s price-age limit). Each measured
phase starts at the day's first price after the rebalance time, i.e. a fresh price (and the
daily events) outside the timed calls. "After 10" is 40 rounds of (fresh price, 10 orders, 5
mints + 5 redeems timed), so no sample is more than 20 orders after its price; "after 10,000"
times orders 10,001-10,400 after one price; "after 10" is measured again at the end, so a cost
that follows the history's length rather than the orders since the price shows as such.
The 8 writers pass no `at`: their clock is scaled wall time (CLOCK_MONOTONIC, one clock for all
processes), read by the engine, so concurrent orders' times follow their commit order.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_kernel import setup_book, single_latency, start_together  # noqa: E402
from ledger.clock import FixedClock  # noqa: E402
from ledger.domain.money import format_units, parse_units  # noqa: E402
from ledger.errors import Reason, Rejected  # noqa: E402
from ledger.services.audit import verify_book  # noqa: E402
from ledger.services.funds import Funds  # noqa: E402
from ledger.services.ledger import open_ledger  # noqa: E402

PG_URL = os.environ.get("TOKEN_LEDGER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
PRODUCT = "BTC3L"
SYMBOL = "BTC"
HOLDERS = 1_000
SETUP_CASH = "10000"  # each holder's first mint
ORDER_CASH = "100"  # every measured or filler mint
REDEEM_PART = 100  # a redeem cancels 1/100 of what the holder is known to hold
WARMUP = 10  # orders after the price before the "after 10" window
PER_ROUND = 5  # mints (and as many redeems) timed per fresh price in the "after 10" phase
PRICES = ("50020", "50040", "50030", "50010")  # small moves: no ad-hoc rebalance
STEP = timedelta(milliseconds=1)  # business time per call
# Day 1 (setup) at noon; each later phase opens with the day's first price after 00:02 UTC, so
# it is a fresh price with the daily events (management fee, funding, rebalance) behind it.
DAY1 = datetime(2021, 3, 1, 12, 0, tzinfo=UTC)
PHASE_PRICE_TIME = timedelta(minutes=5)
KERNEL_POSTS = 1_000
BUSY_RETRIES = 200  # per order
ORDER_RETRIES = 50  # per order, for a time-ordering refusal between concurrent writers
TARGET_RATIO_KERNEL = Decimal(2)
TARGET_RATIO_GROWTH = Decimal("1.2")
TARGET_ORDERS_PER_S = 400
ABOUT_MS = {"sqlite": 1.0, "postgresql": 3.0}  # float-ok: display of the guide


# --- helpers ------------------------------------------------------------------------------------
class TickClock(FixedClock):
    """A FixedClock that the benchmark moves forward by STEP before every call."""

    def tick(self, step: timedelta = STEP) -> datetime:
        self.moment += step
        return self.moment


class ScaledWallClock:
    """Business time for concurrent writers: origin + scale x (wall time since the origin).

    CLOCK_MONOTONIC is one clock for every process on the machine, so the writers' times are
    ordered as their calls are; the scale keeps a long run within a minute of business time.
    """

    def __init__(self, origin: datetime, origin_wall: float, scale: float) -> None:
        self.origin, self.origin_wall, self.scale = origin, origin_wall, scale

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self.origin_wall) * self.scale  # float-ok: clock
        return self.origin + timedelta(seconds=elapsed)


def field(result: Any, name: str) -> Any:
    """Return `name` of an operation's result: a dict today, perhaps a pydantic model later."""
    value = getattr(result, name, None)
    if value is None and isinstance(result, Mapping):
        value = result.get(name)
    return value


def share_units(value: Any, scale: int) -> int | None:
    """Return a shares amount in base units (decimal string, Decimal, or int base units)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return parse_units(str(Decimal(str(value))), scale, "shares")
    except (InvalidOperation, Rejected, ValueError):
        return None


def percentile(samples: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile (as bench_kernel: sorted[int(n x p) - 1])."""
    ordered = sorted(samples)
    return ordered[max(0, int(len(ordered) * fraction) - 1)]


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "median_ms": statistics.median(samples),
        "p99_ms": percentile(samples, 0.99),
        "samples": len(samples),
    }


def load_text() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())  # float-ok: display


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


# --- the fund and its holders ---------------------------------------------------------------------
class Book:
    """One fund under test: the API objects, the clock and what each holder is known to hold.

    `held` is a lower bound of every holder's shares: the balances read once after setup
    (kernel `balances`), plus each mint's `shares_delta` when the result says it, minus every
    redeem's shares. A redeem of held // 100 can therefore never over-draw.
    """

    def __init__(self, url: str, holders: int) -> None:
        self.url = url
        self.clock = TickClock(DAY1)
        self.lg = open_ledger(url, clock=self.clock)
        self.lg.init()
        self.funds = Funds(self.lg)
        self.ids = [f"h{i:04d}" for i in range(holders)]
        self.held: dict[str, int] = {}
        self.orders_since_price = 0
        self.order_no = 0
        self.run = uuid.uuid4().hex[:6]
        self.day = 1

    def setup(self) -> float:
        """Create the product and mint once for every holder; return the seconds it took."""
        began = time.perf_counter()
        self.funds.create_product(PRODUCT)
        self.terms = self.funds.terms(PRODUCT)
        self.scale = self.terms.share_asset.scale
        self.funds.set_price(SYMBOL, "50000", at=self.clock.tick())
        self.mint_now(self.ids[0], SETUP_CASH, key=f"setup-{self.run}-0")
        self.fresh_price("50010")  # day 2's daily events: the position is opened
        for i, holder in enumerate(self.ids[1:], start=1):
            self.mint_now(holder, SETUP_CASH, key=f"setup-{self.run}-{i}")
            if i % 200 == 0:
                progress(f"setup: {i:,} holders minted ({time.perf_counter() - began:.0f} s)")
        self.funds.rebalance(PRODUCT, at=self.clock.tick())
        share = self.terms.share_asset.code
        balances = self.lg.balances(self.terms.book, asset=share)
        for holder in self.ids:
            self.held[holder] = balances.get((f"holder:{holder}", share), 0)
        assert all(units > 0 for units in self.held.values()), "a holder got no shares"
        return time.perf_counter() - began

    def fresh_price(self, price: str) -> datetime:
        """Post the next day's first price after the rebalance time (not timed)."""
        self.day += 1
        moment = DAY1.replace(hour=0, minute=0) + timedelta(days=self.day - 1) + PHASE_PRICE_TIME
        self.clock.moment = max(self.clock.moment + STEP, moment)
        self.funds.set_price(SYMBOL, price, at=self.clock.moment)
        self.orders_since_price = 0
        self.price_at = self.clock.moment
        return self.clock.moment

    def mint_now(self, holder: str, cash: str, *, key: str) -> Any:
        result = self.funds.mint(PRODUCT, holder, cash=cash, key=key, at=self.clock.tick())
        units = share_units(field(result, "shares_delta"), self.scale)
        if units is not None and units > 0:
            self.held[holder] = self.held.get(holder, 0) + units
        return result

    def order(self, kind: str) -> float:
        """Make the next order (a mint or a redeem of the next holder); return its milliseconds.

        Only the public call is inside the timer: the key, the time and the amount are chosen
        before, the bookkeeping after.
        """
        self.order_no += 1
        n = self.order_no
        key = f"o-{self.run}-{n}"
        if kind == "mint":
            holder = self.ids[(n * 7) % len(self.ids)]
            at = self.clock.tick()
            began = time.perf_counter()
            result = self.funds.mint(PRODUCT, holder, cash=ORDER_CASH, key=key, at=at)
            elapsed = time.perf_counter() - began
            units = share_units(field(result, "shares_delta"), self.scale)
            if units is not None and units > 0:
                self.held[holder] += units
        else:
            holder = self.ids[(n * 13) % len(self.ids)]
            units = self.held[holder] // REDEEM_PART
            shares = format_units(units, self.scale)
            at = self.clock.tick()
            began = time.perf_counter()
            self.funds.redeem(PRODUCT, holder, shares=shares, key=key, at=at)
            elapsed = time.perf_counter() - began
            self.held[holder] -= units
        self.orders_since_price += 1
        return elapsed * 1000

    def measure(self, samples: int) -> dict[str, list[float]]:
        """Time `samples` mints and `samples` redeems, interleaved; return the milliseconds."""
        times: dict[str, list[float]] = {"mint": [], "redeem": []}
        for _ in range(samples):
            for kind in ("mint", "redeem"):
                times[kind].append(self.order(kind))
        return times

    def fill_to(self, count: int) -> float:
        """Make untimed orders (alternating) until `count` orders since the price; return s."""
        began = time.perf_counter()
        while self.orders_since_price < count:
            self.order("mint" if self.orders_since_price % 2 == 0 else "redeem")
            if self.orders_since_price % 1000 == 0:
                progress(
                    f"{self.orders_since_price:,} orders since the price"
                    f" ({time.perf_counter() - began:.0f} s)"
                )
        return time.perf_counter() - began


def after_ten(book: Book, samples: int) -> tuple[dict[str, list[float]], int]:
    """Rounds of (fresh price, 10 orders, PER_ROUND mints + PER_ROUND redeems timed), so every
    sample is 11-20 orders after its price; return the milliseconds and the rounds."""
    times: dict[str, list[float]] = {"mint": [], "redeem": []}
    rounds = 0
    while len(times["mint"]) < samples:
        book.fresh_price(PRICES[rounds % len(PRICES)])
        rounds += 1
        book.fill_to(WARMUP)
        for kind, values in book.measure(min(PER_ROUND, samples - len(times["mint"]))).items():
            times[kind].extend(values)
    return times, rounds


def bench_latency(book: Book, since: int, samples: int) -> dict[str, Any]:
    """Phase A: `samples` mints and redeems, each 11-20 orders after a fresh price. Phase B: a
    fresh price, `since` orders, then `samples` mints + `samples` redeems timed (orders since+1
    .. since+2 x samples). Then phase A once more: if it is as slow as phase B, the cost
    follows the length of the history rather than the orders since the price.
    """
    started = time.perf_counter()
    a_times, rounds = after_ten(book, samples)
    a_seconds = time.perf_counter() - started
    book.fresh_price("50020")
    filler = book.fill_to(since)
    assert book.orders_since_price == since
    started = time.perf_counter()
    b_times = book.measure(samples)
    b_seconds = time.perf_counter() - started
    business = (book.clock.moment - book.price_at).total_seconds()
    again, _ = after_ten(book, samples)
    return {
        "after_10": {kind: summary(values) for kind, values in a_times.items()},
        "after_n": {kind: summary(values) for kind, values in b_times.items()},
        "after_10_again": {kind: summary(values) for kind, values in again.items()},
        "rounds_after_10": rounds,
        "orders_since_price_at_b": since,
        "business_seconds_since_price": business,
        "seconds_phase_a": a_seconds,
        "seconds_filler": filler,
        "seconds_phase_b": b_seconds,
    }


BATCH_SIZES = (10, 100, 500)
BATCH_ROUNDS = 20  # batches timed per size, each after a fresh price


def bench_batches(book: Book) -> dict[str, Any]:
    """`Funds.orders`: batches of 10, 100 and 500 orders (half mints, half redeems of the next
    holders), each right after a fresh price; the milliseconds per batch and per order."""
    figures: dict[str, Any] = {}
    for size in BATCH_SIZES:
        per_batch: list[float] = []
        for _ in range(BATCH_ROUNDS):
            book.fresh_price(PRICES[len(per_batch) % len(PRICES)])
            items: list[dict[str, str]] = []
            redeemed: list[tuple[str, int]] = []
            for j in range(size):
                book.order_no += 1
                n = book.order_no
                if j % 2 == 0:
                    holder = book.ids[(n * 7) % len(book.ids)]
                    items.append({"side": "mint", "holder": holder, "cash": ORDER_CASH})
                else:
                    holder = book.ids[(n * 13) % len(book.ids)]
                    units = book.held[holder] // REDEEM_PART
                    book.held[holder] -= units
                    redeemed.append((holder, units))
                    shares = format_units(units, book.scale)
                    items.append({"side": "redeem", "holder": holder, "shares": shares})
            key = f"b-{book.run}-{book.order_no}"
            at = book.clock.tick()
            began = time.perf_counter()
            result = book.funds.orders(PRODUCT, items, key=key, at=at)
            per_batch.append((time.perf_counter() - began) * 1000)
            for fill in result.fills:
                if fill.side == "mint":
                    units = share_units(fill.shares_delta, book.scale) or 0
                    book.held[fill.holder] += units
        stats = summary(per_batch)
        figures[str(size)] = {
            **stats,
            "per_order_median_ms": stats["median_ms"] / size,
        }
    return figures


def bench_kernel_entry(book: Book) -> dict[str, float]:
    """One durable single-entry `Ledger.post`, as bench/bench_kernel.py measures it, on the
    same database (its own book with 1,000 holder accounts)."""
    lg = open_ledger(book.url, clock=FixedClock(DAY1))
    try:
        setup_book(lg, "KREF")
        median, p99 = single_latency(lg, "KREF", KERNEL_POSTS)
    finally:
        lg.close()
    return {"median_ms": median, "p99_ms": p99, "samples": KERNEL_POSTS}


# --- 8 processes into one fund -------------------------------------------------------------------
def _order_with_retries(call: Any, counts: dict[str, int]) -> bool:
    """Run one order; retry `busy` (and a lost race on business time) a bounded number of times."""
    busy = order = 0
    while True:
        try:
            call()
            return True
        except Rejected as exc:
            if exc.reason is Reason.BUSY and busy < BUSY_RETRIES:
                busy += 1
                counts["busy_retries"] += 1
                continue
            lost_race = exc.reason is Reason.BAD_INPUT and " is before " in exc.message
            if lost_race and order < ORDER_RETRIES:
                order += 1
                counts["time_order_retries"] += 1
                continue
            counts["failed"] += 1
            counts.setdefault(f"failed_{exc.reason.value}", 0)
            counts[f"failed_{exc.reason.value}"] += 1
            if counts["failed"] <= 3:
                print(f"  writer: order refused: {exc}", file=sys.stderr, flush=True)
            return False


def _writer(
    url: str,
    index: int,
    held: dict[str, int],
    count: int,
    clock_args: tuple[str, float, float],
    run: str,
    ready: Any,
    go: Any,
    queue: Any,
) -> None:
    """Warm up (one mint, one redeem), wait for the start signal, then make `count` orders,
    alternating mints and redeems over this writer's own holders. `at` is left to the clock.
    """
    origin, wall, scale = clock_args
    lg = open_ledger(url, clock=ScaledWallClock(datetime.fromisoformat(origin), wall, scale))
    funds = Funds(lg)
    scale_units = funds.terms(PRODUCT).share_asset.scale
    holders = sorted(held)
    counts = {"done": 0, "busy_retries": 0, "time_order_retries": 0, "failed": 0}

    def make(n: int, prefix: str) -> Any:
        holder = holders[n % len(holders)]
        key = f"{prefix}-{run}-{index}-{n}"
        if n % 2 == 0:
            return lambda: funds.mint(PRODUCT, holder, cash=ORDER_CASH, key=key)
        units = held[holder] // REDEEM_PART
        held[holder] -= units
        shares = format_units(units, scale_units)
        return lambda: funds.redeem(PRODUCT, holder, shares=shares, key=key)

    warm = {"done": 0, "busy_retries": 0, "time_order_retries": 0, "failed": 0}
    for n in range(2):
        _order_with_retries(make(n, "warm"), warm)
    ready.put(True)
    go.wait()
    began = time.perf_counter()
    for n in range(count):
        if _order_with_retries(make(n, "cw"), counts):
            counts["done"] += 1
    elapsed = time.perf_counter() - began
    lg.close()
    queue.put((counts, elapsed, warm))


def bench_concurrent(book: Book, per_process: int, processes: int = 8) -> dict[str, Any]:
    """8 writer processes mint and redeem into one fund; orders/s over the wall time from the
    common start signal until the last writer finishes (start-up and warm-up excluded)."""
    moment = book.fresh_price("50030")
    seq_before = book.lg.head(book.terms.book)[0]
    # 0.05 s of business time per wall second: 20 minutes of a slow engine stay within 60 s.
    clock_args = (moment.isoformat(), time.monotonic(), 0.05)
    groups: list[dict[str, int]] = [{} for _ in range(processes)]
    for i, holder in enumerate(book.ids):
        groups[i % processes][holder] = book.held[holder]
    ctx = mp.get_context("spawn")
    ready, go, queue = ctx.Queue(), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(
            target=_writer,
            args=(book.url, i, groups[i], per_process, clock_args, book.run, ready, go, queue),
        )
        for i in range(processes)
    ]
    results, elapsed, warm_seconds = start_together(procs, ready, go, queue)
    totals: dict[str, int] = {}
    for counts, _, warm in results:
        for name, value in counts.items():
            totals[name] = totals.get(name, 0) + value
        totals["warmup_done"] = totals.get("warmup_done", 0) + 2 - warm["failed"]
    seq_after = book.lg.head(book.terms.book)[0]
    written = list(book.lg.entries(book.terms.book, from_seq=seq_before + 1, to_seq=seq_after))
    orders_written = sum(1 for e in written if e.draft.kind in ("mint", "redeem"))
    began_verify = time.perf_counter()
    report = verify_book(book.lg, book.terms.book)  # with the fund audit
    return {
        "processes": processes,
        "orders_per_process": per_process,
        "orders_done": totals["done"],
        "busy_retries": totals["busy_retries"],
        "time_order_retries": totals["time_order_retries"],
        "failed": totals["failed"],
        "failed_by_reason": {k[7:]: v for k, v in totals.items() if k.startswith("failed_")},
        "seconds": elapsed,
        "orders_per_second": totals["done"] / elapsed,
        "entries_written": seq_after - seq_before,  # orders and the accruals before them
        "order_entries_written": orders_written,
        "order_entries_expected": totals["done"] + totals["warmup_done"],
        "seconds_startup_and_warmup": warm_seconds,
        "verify_ok": report.ok,
        "seconds_verify": time.perf_counter() - began_verify,
    }


# --- databases ------------------------------------------------------------------------------------
def pg_database() -> tuple[str, str] | None:
    """Create a scratch database on the PostgreSQL server; return (url, name) or None."""
    try:
        import psycopg

        name = f"bench_fund_ops_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return urlsplit(PG_URL)._replace(path=f"/{name}").geturl(), name
    except Exception as exc:
        print(f"PostgreSQL unavailable ({exc}); skipping its figures", file=sys.stderr)
        return None


def drop_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def pg_version() -> str:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return f"PostgreSQL {row[0].split()[0]}" if row else "PostgreSQL"
    except Exception:
        return "PostgreSQL unavailable"


def run_database(kind: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Everything asked for on one database; returns the figures."""
    figures: dict[str, Any] = {"database": kind, "holders": args.holders}
    book = Book(url, args.holders)
    try:
        progress(f"{kind}: setup, {args.holders:,} holders")
        figures["seconds_setup"] = book.setup()
        if args.only in (None, "latency", "kernel"):
            progress(f"{kind}: kernel reference, {KERNEL_POSTS:,} durable posts")
            figures["kernel_entry"] = bench_kernel_entry(book)
        if args.only in (None, "latency"):
            progress(f"{kind}: latency, up to {args.orders_since_price:,} orders since the price")
            figures["latency"] = bench_latency(book, args.orders_since_price, args.samples)
        if args.only in (None, "batch"):
            progress(f"{kind}: batches of {', '.join(map(str, BATCH_SIZES))} orders")
            figures["batches"] = bench_batches(book)
        if args.only in (None, "concurrent") and kind == "postgresql":
            progress(f"{kind}: 8 processes x {args.per_process:,} orders into one fund")
            figures["concurrent"] = bench_concurrent(book, args.per_process)
    finally:
        book.lg.close()
    return figures


# --- report -------------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def rows_for(fig: dict[str, Any], since: int) -> list[tuple[str, str, str, str]]:
    """(measure, figure, target, verdict) rows of one database."""
    kind = fig["database"]
    name = "SQLite" if kind == "sqlite" else "PostgreSQL"
    rows: list[tuple[str, str, str, str]] = []
    kernel = fig.get("kernel_entry")
    if kernel:
        rows.append(
            (
                f"{name} kernel: one durable entry (`Ledger.post`), {kernel['samples']:,} posts",
                f"median {kernel['median_ms']:.3f} ms, p99 {kernel['p99_ms']:.3f} ms",
                "reference",
                "",
            )
        )
    lat = fig.get("latency")
    if lat:
        label_n = f"{since:,}" + ("" if since == 10_000 else " (the target says 10,000)")
        for op in ("mint", "redeem"):
            for phase, label in (("after_10", "10"), ("after_n", label_n)):
                s = lat[phase][op]
                figure = f"median {s['median_ms']:.3f} ms, p99 {s['p99_ms']:.3f} ms"
                if kernel:
                    ratio = s["median_ms"] / kernel["median_ms"]
                    target = (
                        f"<= 2x kernel ({2 * kernel['median_ms']:.3f} ms);"
                        f" about <= {ABOUT_MS[kind]:g} ms"
                    )
                    figure += f"; {ratio:.1f}x kernel"
                    ok = Decimal(str(ratio)) <= TARGET_RATIO_KERNEL
                    about = s["median_ms"] <= ABOUT_MS[kind]
                    mark = f"{verdict(ok)} (about: {verdict(about)})"
                else:
                    target = f"about <= {ABOUT_MS[kind]:g} ms"
                    mark = verdict(s["median_ms"] <= ABOUT_MS[kind])
                rows.append(
                    (
                        f"{name} {op} after {label} orders since the price, {s['samples']} {op}s",
                        figure,
                        target,
                        mark,
                    )
                )
            s = lat["after_10_again"][op]
            rows.append(
                (
                    f"{name} {op} after 10 orders since the price, again after the"
                    f" after-{since:,} window (longer history)",
                    f"median {s['median_ms']:.3f} ms, p99 {s['p99_ms']:.3f} ms",
                    "diagnostic",
                    "",
                )
            )
            growth = lat["after_n"][op]["median_ms"] / lat["after_10"][op]["median_ms"]
            growth_p99 = lat["after_n"][op]["p99_ms"] / lat["after_10"][op]["p99_ms"]
            rows.append(
                (
                    f"{name} {op}: after {since:,} / after 10 (median)",
                    f"{growth:.2f}x (p99 {growth_p99:.2f}x)",
                    "<= 1.2x",
                    verdict(Decimal(str(growth)) <= TARGET_RATIO_GROWTH),
                )
            )
    batches = fig.get("batches")
    if batches:
        single = lat["after_10"]["mint"]["median_ms"] if lat else None
        for size, s in batches.items():
            figure = (
                f"median {s['median_ms']:.2f} ms per batch (p99 {s['p99_ms']:.2f} ms),"
                f" {s['per_order_median_ms']:.3f} ms per order"
            )
            target = "diagnostic"
            if single:
                figure += (
                    f"; {single / s['per_order_median_ms']:.1f}x fewer ms per order than one mint"
                )
            rows.append(
                (f"{name} `Funds.orders`, batches of {size} (half mints)", figure, target, "")
            )
    conc = fig.get("concurrent")
    if conc:
        extra = (
            f"{conc['orders_done']:,} orders in {conc['seconds']:.2f} s;"
            f" busy retries {conc['busy_retries']:,}, time-order retries"
            f" {conc['time_order_retries']:,}, failed {conc['failed']:,};"
            f" {conc['order_entries_written']:,} order entries written (expected"
            f" {conc['order_entries_expected']:,}) among {conc['entries_written']:,} entries;"
            f" verify {'ok' if conc['verify_ok'] else 'FAILED'}"
        )
        rows.append(
            (
                f"{name} {conc['processes']} processes minting and redeeming into one fund,"
                f" {conc['orders_per_process']:,} orders each",
                f"{conc['orders_per_second']:,.0f} orders/s ({extra})",
                f">= {TARGET_ORDERS_PER_S} orders/s",
                verdict(conc["orders_per_second"] >= TARGET_ORDERS_PER_S),
            )
        )
    return rows


def setup_lines(fig: dict[str, Any]) -> list[str]:
    name = "SQLite" if fig["database"] == "sqlite" else "PostgreSQL"
    parts = [
        f"setup (product, {fig['holders']:,} holders minted once) {fig['seconds_setup']:.1f} s"
    ]
    lat = fig.get("latency")
    if lat:
        parts.append(
            f"after-10 phase ({lat['rounds_after_10']} fresh prices) {lat['seconds_phase_a']:.1f} s,"
            f" filler orders"
            f" {lat['seconds_filler']:.1f} s, after-{lat['orders_since_price_at_b']:,} window"
            f" {lat['seconds_phase_b']:.1f} s; last measured order"
            f" {lat['business_seconds_since_price']:.1f} s of business time after its price"
        )
    conc = fig.get("concurrent")
    if conc:
        parts.append(
            f"writers' start-up + warm-up {conc['seconds_startup_and_warmup']:.1f} s,"
            f" verify {conc['seconds_verify']:.1f} s"
        )
    return [f"{name}: " + "; ".join(parts) + " (not timed)"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--db", choices=["sqlite", "postgresql", "both"], default="both", help="which database"
    )
    parser.add_argument(
        "--only",
        choices=["latency", "kernel", "concurrent", "batch"],
        default=None,
        help="latency (with the kernel reference), kernel alone, or the 8 processes (PostgreSQL)",
    )
    parser.add_argument("--holders", type=int, default=HOLDERS)
    parser.add_argument("--samples", type=int, default=200, help="mints and redeems per window")
    parser.add_argument("--orders-since-price", type=int, default=None, help="default 10,000")
    parser.add_argument("--per-process", type=int, default=None, help="default 500 (quick: 100)")
    parser.add_argument("--quick", action="store_true", help="1,000 orders since the price")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.orders_since_price is None:
        args.orders_since_price = 1_000 if args.quick else 10_000
    if args.per_process is None:
        args.per_process = 100 if args.quick else 500
    if args.orders_since_price < WARMUP or args.samples < 1:
        parser.error(f"--orders-since-price must be at least {WARMUP}, --samples at least 1")
    machine = (
        f"{platform.python_implementation()} {platform.python_version()}, {platform.machine()},"
        f" {os.cpu_count()} cores, SQLite {sqlite3.sqlite_version}"
    )
    load = load_text()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tl-bench-ops-") as tmp:
        if args.db in ("sqlite", "both"):
            results.append(run_database("sqlite", f"sqlite:///{tmp}/ops.db", args))
        if args.db in ("postgresql", "both"):
            machine += f", {pg_version()} on {urlsplit(PG_URL).hostname}"
            pg = pg_database()
            if pg is not None:
                url, name = pg
                try:
                    results.append(run_database("postgresql", url, args))
                finally:
                    drop_pg_database(name)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if args.json:
        print(
            json.dumps(
                {
                    "measured_at": stamp,
                    "machine": machine,
                    "load_average_at_start": load,
                    "orders_since_price": args.orders_since_price,
                    "databases": results,
                },
                indent=2,
            )
        )
        return
    print(f"# token-ledger fund operations bench, {stamp}, on {machine}")
    print(f"# load average at start: {load}; {args.holders:,} holders; via the Python API")
    print()
    print("| measure | figure | target | |")
    print("|---|---|---|---|")
    for fig in results:
        for row in rows_for(fig, args.orders_since_price):
            print("| " + " | ".join(row) + " |")
    print()
    for fig in results:
        for line in setup_lines(fig):
            print(line)


if __name__ == "__main__":
    main()
