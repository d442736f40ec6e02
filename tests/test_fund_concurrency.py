"""Eight OS processes at once on one fund on the real PostgreSQL server.

Each process mixes mints, redeems (some over-drawing what it holds), price updates and manual
rebalances through the public API, all at the same moments (a barrier per round). Afterwards
`verify` with the fund audit passes, and the pure fund fold over the journal reproduces the
NAV per share that priced every order the API acknowledged: no order was priced on stale
state, and no acknowledged order is missing.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from functools import partial
from typing import Any

import pytest

from ledger.domain.fund.fold import FundFold
from ledger.domain.money import format_units
from ledger.errors import Reason, Rejected
from ledger.services.audit import verify_book
from ledger.services.funds import Funds
from ledger.services.ledger import open_ledger

WORKERS = 8
ROUNDS = 12
BOOK = "BTC3L"
SPAWN = multiprocessing.get_context("forkserver")
SPAWN.set_forkserver_preload(["ledger.services.funds"])


def _retrying(call: Any, tally: dict[str, Any]) -> Any:
    for _ in range(300):
        try:
            return call()
        except Rejected as exc:
            if exc.reason is Reason.BUSY and exc.retryable:
                tally["busy"] += 1
                time.sleep(0.005)
                continue
            raise
    raise AssertionError("still busy after 300 tries")


def _worker(url: str, worker: int, barrier: Any, results: Any) -> None:
    rng = random.Random(worker)
    lg = open_ledger(url)
    funds = Funds(lg)
    holder = f"w{worker}"
    held = 0
    tally: dict[str, Any] = {"worker": worker, "busy": 0, "orders": [], "refused": [], "error": ""}
    try:
        funds.terms(BOOK)
        for _ in range(ROUNDS):
            barrier.wait(timeout=120)
            action = rng.choice(["mint", "mint", "redeem", "redeem", "overdraw", "price", "rebal"])
            try:
                if action == "mint" or (action in ("redeem", "overdraw") and held == 0):
                    cash = str(rng.randint(20, 900))
                    key = f"{holder}-{len(tally['orders'])}-{cash}"
                    out = _retrying(partial(funds.mint, BOOK, holder, cash=cash, key=key), tally)
                    held += int(out["shares_delta"].replace(".", ""))
                elif action in ("redeem", "overdraw"):
                    units = held // rng.randint(2, 4) if action == "redeem" else held + 10**15
                    text = format_units(max(units, 1), 18)
                    out = _retrying(partial(funds.redeem, BOOK, holder, shares=text), tally)
                    held += int(out["shares_delta"].replace(".", ""))
                elif action == "price":
                    price = f"{rng.randint(9_700, 10_300)}.{rng.randint(0, 99):02d}"
                    _retrying(partial(funds.set_price, "BTC", price), tally)
                    continue
                else:
                    _retrying(partial(funds.rebalance, BOOK), tally)
                    continue
                tally["orders"].append((out["seq"], out["kind"], out["priced_at_nav"]))
            except Rejected as exc:
                tally["refused"].append((action, exc.reason.value))
    except Exception as exc:  # reported to the parent, which fails the test
        tally["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        lg.close()
        results.put(tally)


@pytest.mark.postgres
@pytest.mark.slow
def test_eight_processes_on_one_fund_price_every_order_on_the_state_before_it(
    pg_url: str,
) -> None:
    lg = open_ledger(pg_url)
    lg.init()
    funds = Funds(lg)
    funds.create_product(BOOK)
    funds.set_price("BTC", "10000")
    funds.mint(BOOK, "seed", cash="5000")
    funds.rebalance(BOOK)
    barrier = SPAWN.Barrier(WORKERS)
    results = SPAWN.Queue()
    procs = [
        SPAWN.Process(target=_worker, args=(pg_url, w, barrier, results)) for w in range(WORKERS)
    ]
    for proc in procs:
        proc.start()
    tallies = [results.get(timeout=300) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    assert [t["error"] for t in tallies] == [""] * WORKERS, tallies
    orders = [o for t in tallies for o in t["orders"]]
    refused = [r for t in tallies for r in t["refused"]]
    assert len(orders) >= WORKERS * ROUNDS // 3, tallies
    # Over-draws are refused as such, and nothing else is refused.
    assert refused and {reason for _, reason in refused} <= {"insufficient_shares"}, refused

    report = verify_book(lg, BOOK)
    assert report.ok, report
    fold = FundFold(funds.terms(BOOK))
    assert fold.apply_all(lg.entries(BOOK)) is None
    scale = funds.terms(BOOK).quote_asset.scale
    # Every acknowledged order is in the journal, priced at the NAV the fold computes there.
    assert sorted(seq for seq, _, _ in orders) == sorted(set(seq for seq, _, _ in orders))
    for seq, kind, nav in orders:
        assert seq in fold.order_navs, (seq, kind)
        assert format_units(fold.order_navs[seq], scale) == nav, (seq, kind)
    kinds = [e.draft.kind for e in lg.entries(BOOK)]
    assert kinds.count("mint") + kinds.count("redeem") == len(orders) + 1  # + the seed's mint
    lg.close()
