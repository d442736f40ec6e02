"""Benchmark the chain mirror on a real Anvil: mirror N holders, mirror one split, reconcile.

Each batched figure is printed beside the naive way measured in the same run on a sample
(one transaction per holder waiting for each receipt; one eth_call per holder), scaled to N.

    .venv/bin/python bench/bench_chain.py                 # 10,000 holders, samples of 200/1,000
    .venv/bin/python bench/bench_chain.py --holders 2000 --json

Needs `npm ci` (anvil from node_modules). Time is wall clock (`time.perf_counter`), gas from
receipts. Setup (ledger entries, deployment) is not timed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ledger.chain.anvil import start_anvil, stop_anvil  # noqa: E402
from ledger.chain.deployment import ensure_deployed  # noqa: E402
from ledger.chain.fixtures import mint_draft, open_holders, open_share_book, split_draft  # noqa: E402
from ledger.chain.holders import address_of  # noqa: E402
from ledger.chain.keys import anvil_dev_operator  # noqa: E402
from ledger.chain.reconcile import reconcile_book  # noqa: E402
from ledger.chain.rpc import connect  # noqa: E402
from ledger.chain.sync import sync_book  # noqa: E402
from ledger.chain.token import TokenClient  # noqa: E402
from ledger.clock import FixedClock  # noqa: E402
from ledger.services.ledger import open_ledger  # noqa: E402

BOOK = "BENCH3L"
NAIVE_BOOK = "NAIVE3L"
T0 = datetime(2022, 1, 1, tzinfo=UTC)
E18 = 10**18


def seed(lg: Any, book: str, holders: int) -> list[str]:
    """Open `holders` holder accounts and mint each a distinct balance (100 per entry)."""
    ids = [f"h{i:06d}" for i in range(holders)]
    open_share_book(lg, book)
    open_holders(lg, book, ids)
    drafts = [
        mint_draft(book, {h: E18 + 7919 * (start + j) for j, h in enumerate(ids[start : start + 100])}, at=T0)
        for start in range(0, holders, 100)
    ]
    lg.post_many(drafts)
    return ids


def naive_mint(client: TokenClient, ids: list[str]) -> tuple[float, int]:
    """Mint one holder per transaction, waiting for each receipt; return (seconds, gas)."""
    gas = 0
    start = time.perf_counter()
    for i, holder in enumerate(ids):
        sent = client.send_one(client.mint_call([(address_of(holder), E18 + i)]))
        assert sent.succeeded
        gas += sent.gas_used
    return time.perf_counter() - start, gas


def naive_split(client: TokenClient, ids: list[str], num: int, den: int) -> tuple[float, int]:
    """Rescale one holder per transaction (read, then adjust), waiting for each receipt."""
    gas = 0
    start = time.perf_counter()
    for holder in ids:
        address = address_of(holder)
        before = int(client.view("balanceOf", address))
        call = client.adjust_call(seq=0, rows=[(address, before, before * num // den)], epoch=0)
        sent = client.send_one(call)
        assert sent.succeeded
        gas += sent.gas_used
    return time.perf_counter() - start, gas


def naive_reads(client: TokenClient, ids: list[str]) -> float:
    """Read balanceOf with one eth_call per holder; return seconds."""
    start = time.perf_counter()
    for holder in ids:
        client.view("balanceOf", address_of(holder))
    return time.perf_counter() - start


def run(holders: int, sample: int, read_sample: int) -> dict[str, Any]:
    """Run every measurement once; return the figures."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-chain-"))
    lg = open_ledger(f"sqlite:///{workdir / 'bench.db'}", clock=FixedClock(T0))
    lg.init()
    ids = seed(lg, BOOK, holders)
    node = start_anvil(workdir=workdir / "chain")
    try:
        w3 = connect(node.rpc_url)
        op = anvil_dev_operator()
        ensure_deployed(lg, BOOK, w3, op)

        t = time.perf_counter()
        mirror = sync_book(lg, BOOK, w3, op)
        mirror_s = time.perf_counter() - t

        lg.post(split_draft(lg, BOOK, num=5, den=1, at=T0))
        t = time.perf_counter()
        split = sync_book(lg, BOOK, w3, op)
        split_s = time.perf_counter() - t

        t = time.perf_counter()
        recon = reconcile_book(lg, BOOK, w3)
        recon_s = time.perf_counter() - t
        assert recon.ok, "reconcile after the bench sync must be equal"

        naive_ids = seed(lg, NAIVE_BOOK, sample)
        naive_client = ensure_deployed(lg, NAIVE_BOOK, w3, op).client
        naive_mint_s, naive_mint_gas = naive_mint(naive_client, naive_ids)
        naive_split_s, naive_split_gas = naive_split(naive_client, naive_ids, 5, 1)
        naive_read_s = naive_reads(attach_client(lg, w3), ids[:read_sample])
    finally:
        stop_anvil(node)
        lg.close()
    scale = holders / sample
    return {
        "holders": holders,
        "naive_sample": sample,
        "naive_read_sample": read_sample,
        "mirror": {"seconds": mirror_s, "txs": mirror.txs, "gas": mirror.gas_used,
                   "naive_seconds_scaled": naive_mint_s * scale,
                   "naive_gas_scaled": int(naive_mint_gas * scale),
                   "naive_holders_per_s": sample / naive_mint_s},
        "split": {"seconds": split_s, "txs": split.txs, "rebases": split.rebases,
                  "gas": split.gas_used, "naive_seconds_scaled": naive_split_s * scale,
                  "naive_gas_scaled": int(naive_split_gas * scale)},
        "reconcile": {"seconds": recon_s, "naive_seconds_scaled": naive_read_s * holders / read_sample,
                      "naive_holders_per_s": read_sample / naive_read_s},
    }


def attach_client(lg: Any, w3: Any) -> TokenClient:
    from ledger.chain.deployment import attach

    return attach(lg, BOOK, w3).client


def markdown(r: dict[str, Any]) -> str:
    """Render the figures as the BENCHMARKS.md table."""
    n = r["holders"]
    m, s, c = r["mirror"], r["split"], r["reconcile"]
    rows = [
        ("mirror holders", f"{m['seconds']:.2f} s, {m['txs']} txs, {m['gas']:,} gas "
         f"({m['gas'] // n:,}/holder)", f"{m['naive_seconds_scaled']:.0f} s, {n:,} txs, "
         f"{m['naive_gas_scaled']:,} gas", f"{m['naive_seconds_scaled'] / m['seconds']:.0f}x"),
        ("mirror one 1:5 split", f"{s['seconds']:.2f} s, {s['txs']} tx ({s['rebases']} rebase), "
         f"{s['gas']:,} gas", f"{s['naive_seconds_scaled']:.0f} s, {n:,} txs, "
         f"{s['naive_gas_scaled']:,} gas", f"{s['naive_seconds_scaled'] / s['seconds']:.0f}x"),
        ("reconcile holders", f"{c['seconds']:.2f} s (chunked balancesOf in one JSON-RPC batch)",
         f"{c['naive_seconds_scaled']:.1f} s ({n:,} eth_calls)",
         f"{c['naive_seconds_scaled'] / c['seconds']:.0f}x"),
    ]
    lines = [f"| {n:,} holders | batched (this code) | naive, scaled from a sample | speed-up |",
             "| --- | --- | --- | --- |"]
    lines += [f"| {a} | {b} | {d} | {e} |" for a, b, d, e in rows]
    lines.append(
        f"\nNaive samples: {r['naive_sample']} holders minted one tx each and waited "
        f"({m['naive_holders_per_s']:.0f} holders/s), the same {r['naive_sample']} rescaled one tx "
        f"each, {r['naive_read_sample']} balanceOf eth_calls ({c['naive_holders_per_s']:.0f}/s)."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holders", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=200, help="holders in the naive tx sample")
    parser.add_argument("--read-sample", type=int, default=1_000, help="naive eth_call sample")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = run(args.holders, args.sample, args.read_sample)
    print(json.dumps(figures, indent=2) if args.json else markdown(figures))


if __name__ == "__main__":
    main()
