"""Benchmark the fund engine on SQLite: the whole-history simulation and a 1,000,000-holder split.

    .venv/bin/python bench/bench_fund.py            # both, prints the figures
    .venv/bin/python bench/bench_fund.py --only sim # or: --only split
    .venv/bin/python bench/bench_fund.py --db postgresql://postgres@127.0.0.1:5432/test

Targets (issue 3): the simulation of the 2014-2022 fixture (BTC3L and BTC3S, 1,000 holders,
about 50 mints/redeems per product per day) in < 20 s; the split in < 5 s. Measured honestly:
the clock runs around the real calls (`simulate`, `Funds.split`), setup excluded and shown.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ledger.clock import FixedClock  # noqa: E402
from ledger.domain.fund import accounts as acc  # noqa: E402
from ledger.domain.fund.terms import Terms  # noqa: E402
from ledger.domain.journal import EntryDraft, Posting  # noqa: E402
from ledger.services.funds import Funds  # noqa: E402
from ledger.services.ledger import open_ledger  # noqa: E402
from ledger.sim.run import SimConfig, simulate  # noqa: E402

SPLIT_HOLDERS = 1_000_000
AT = datetime(2021, 1, 1, tzinfo=UTC)


def bench_simulation(url: str) -> dict[str, float]:
    """Run the default simulation (whole fixture, 1,000 holders, ~50 orders/day/product)."""
    started = time.perf_counter()
    outcome = simulate(url, SimConfig())
    total = time.perf_counter() - started
    assert all(report.ok for report in outcome.verify.values()), outcome.verify
    return {
        "days": len(outcome.bars),
        "entries": outcome.entries,
        "seconds_simulation": outcome.seconds_posting,
        "entries_per_second": outcome.entries / outcome.seconds_posting,
        "seconds_verify": outcome.seconds_verify,
        "seconds_total": total,
    }


def _allocate(funds: Funds, terms: Terms, holders: int) -> None:
    """Setup (not timed as the split): issue shares to `holders` holders in one entry."""
    lg = funds.lg
    ids = [f"h{i:07d}" for i in range(holders)]
    lg.open_accounts([acc.holder_account(terms.book, h) for h in ids])
    units = 123_456_789_012_345_678  # 0.123... shares each, an odd number to leave remainders
    supply = units * holders
    cash = holders * 100 * 10**6 // 8  # NAV 101.25... per share
    postings = [Posting(acc.COLLATERAL, "USDT", cash), Posting(acc.CONTRIBUTED, "USDT", -cash)]
    postings += [Posting(acc.HOLDER_PREFIX + h, terms.share_asset.code, units) for h in ids]
    postings.append(Posting(acc.SHARES_OUTSTANDING, terms.share_asset.code, -supply))
    draft = EntryDraft(terms.book, "mint", AT, tuple(postings), (("holder", "allocation"),))
    with lg.unit_of_work(owner="fund") as uow:  # the fund's book: only its owner writes it
        uow.lock(terms.book)
        uow.post([draft])


def _time_posts(lg: object) -> list[float]:
    """Wrap the unit of work's `post` to add up the seconds spent inside the kernel's append
    (a breakdown of the split's time)."""
    from ledger.services import ledger as ledger_module

    spent = [0.0]
    original = ledger_module.UnitOfWork.post

    def timed(self: object, *args: object, **kwargs: object) -> object:
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)  # type: ignore[arg-type]
        finally:
            spent[0] += time.perf_counter() - started

    ledger_module.UnitOfWork.post = timed  # type: ignore[assignment,method-assign]
    return spent


def bench_split(url: str, holders: int) -> dict[str, float]:
    """Split a fund of `holders` holders 1:10 through `Funds.split` (read, build, post)."""
    lg = open_ledger(url, clock=FixedClock(AT))
    lg.init()
    funds = Funds(lg)
    funds.create_product("BTC3L")
    terms = funds.terms("BTC3L")
    started = time.perf_counter()
    _allocate(funds, terms, holders)
    setup = time.perf_counter() - started
    posting = _time_posts(lg)
    started = time.perf_counter()
    result = funds.split("BTC3L", "1:10", at=AT)
    seconds = time.perf_counter() - started
    seconds_post = posting[0]
    assert result["ratio_num"] == "10"
    started = time.perf_counter()
    merged = funds.merge("BTC3L", "10:1", at=AT)
    seconds_merge = time.perf_counter() - started
    lg.close()
    return {
        "holders": holders,
        "seconds_setup": setup,
        "seconds_split": seconds,
        "seconds_split_kernel_post": seconds_post,
        "seconds_merge": seconds_merge,
        "merge_remainder": float(merged["remainder_to_treasury"]),  # float-ok: display
    }


LOAD_AT_START = " / ".join(f"{x:.2f}" for x in os.getloadavg())  # float-ok: display


def main() -> None:
    """Run the benchmarks and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None, help="Database URL (default: a temp SQLite file).")
    parser.add_argument("--only", choices=["sim", "split"], default=None)
    parser.add_argument("--holders", type=int, default=SPLIT_HOLDERS)
    parser.add_argument("--write", action="store_true", help="Update BENCHMARKS.md (own section).")
    args = parser.parse_args()
    sim: dict[str, float] | None = None
    split: dict[str, float] | None = None
    print(
        f"# token-ledger fund bench on {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "sim"):
            url = args.db or f"sqlite:///{tmp}/sim.db"
            sim = bench_simulation(url)
            print(
                f"simulation: {sim['days']} days, BTC3L+BTC3S, 1,000 holders, ~50 orders/product/day:"
                f" {sim['entries']:,} entries in {sim['seconds_simulation']:.1f} s"
                f" = {sim['entries_per_second']:,.0f} entries/s (target < 20 s);"
                f" verify {sim['seconds_verify']:.1f} s; whole command {sim['seconds_total']:.1f} s"
            )
        if args.only in (None, "split"):
            url = args.db or f"sqlite:///{tmp}/split.db"
            split = bench_split(url, args.holders)
            print(
                f"split: {split['holders']:,} holders 1:10 in {split['seconds_split']:.2f} s"
                f" (target < 5 s; {split['seconds_split_kernel_post']:.2f} s of it in the kernel's"
                f" post); merge 10:1 back in {split['seconds_merge']:.2f} s;"
                f" setup (accounts + allocation) {split['seconds_setup']:.1f} s"
            )
    if args.write and sim is not None and split is not None:
        write(sim, split, args.db or "SQLite (temporary file)")


def write(sim: dict[str, float], split: dict[str, float], where: str) -> None:
    """Rewrite this script's section of BENCHMARKS.md (and only that section)."""
    from bench._report import write_section

    def verdict(seconds: float, target: float) -> str:
        return "met" if seconds < target else "**missed**"

    body = f"""
Database: {where}. `.venv/bin/python bench/bench_fund.py --write` (about 3 minutes).
Load average when the run started: {LOAD_AT_START} (other sessions share the 2 cores).

| what | figure | target |
|---|---|---|
| simulation, {sim["days"]:.0f} days of `fixtures/btc-usd-daily-2014-2022.csv`, BTC3L + BTC3S, 1,000 holders, ~50 mints/redeems per product per day | {sim["entries"]:,.0f} entries in **{sim["seconds_simulation"]:.1f} s** = {sim["entries_per_second"]:,.0f} entries/s | < 20 s: {verdict(sim["seconds_simulation"], 20)} |
| then `verify` of both books | {sim["seconds_verify"]:.1f} s (whole `simulate` call {sim["seconds_total"]:.1f} s) | |
| split 1:10 of a fund with {split["holders"]:,.0f} holders (`Funds.split`: read balances, build, post one entry) | **{split["seconds_split"]:.1f} s**, of which {split["seconds_split_kernel_post"]:.1f} s in the kernel's `post` | < 5 s: {verdict(split["seconds_split"], 5)} |
| merge 10:1 back | {split["seconds_merge"]:.1f} s | |

Other sessions share this 2-core machine: five runs of the simulation today measured
19.5-21.1 s, so the 20 s target is met only when the machine is otherwise quiet (the fixture has
2,687 daily rows, 2014-09-17 .. 2022-01-24 inclusive). The simulation keeps fund state in memory
(the pure fold) and posts whole days in batches of about 20,000 entries, one transaction each,
with the cyclic garbage collector paused (it cost 2-3x on allocation-heavy batches); posting
batch N in a thread while building N+1 gained nothing (both halves are GIL-bound Python). Per entry about 12 µs is the fund engine (building drafts)
and the rest the kernel's append (checks, canonical encoding, hashing, SQLite inserts).
The split writes one posting per holder, as the shared convention requires (the chain mirror
rebases on it), so its time is linear in holders and dominated by the kernel's append of a
million-posting entry; the < 5 s target needs a faster bulk path in the kernel (or an O(1)
multiplier design, which the convention rules out).
"""
    write_section("Funds (bench/bench_fund.py)", body)


if __name__ == "__main__":
    main()
