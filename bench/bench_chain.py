"""Benchmark the chain mirror on a real Anvil: mirror N holders, mirror one split, reconcile.

Each batched figure is printed beside the naive way measured in the same run on a sample and
scaled to N: one transaction per holder sent the idiomatic web3.py way (build_transaction with
gas estimation, sign, send, wait_for_transaction_receipt with default polling), and one eth_call
per holder. One transaction per holder through this code's tuned sender is shown too.

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
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The repository root: `ledger` and the test helpers in tests/chain_support.py.
sys.path.insert(0, str(ROOT))

from ledger.chain.anvil import start_anvil, stop_anvil  # noqa: E402
from ledger.chain.deployment import ensure_deployed  # noqa: E402
from ledger.chain.holders import address_of  # noqa: E402
from ledger.chain.keys import anvil_dev_operator  # noqa: E402
from ledger.chain.reconcile import reconcile_book  # noqa: E402
from ledger.chain.rpc import connect  # noqa: E402
from ledger.chain.sync import sync_book  # noqa: E402
from ledger.chain.token import TokenClient, holder_gas  # noqa: E402
from ledger.clock import FixedClock  # noqa: E402
from ledger.services.ledger import open_ledger  # noqa: E402
from tests.chain_support import mint_draft, open_holders, open_share_book, split_draft  # noqa: E402

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
        mint_draft(
            book,
            {h: E18 + 7919 * (start + j) for j, h in enumerate(ids[start : start + 100])},
            at=T0,
        )
        for start in range(0, holders, 100)
    ]
    lg.post_many(drafts)
    return ids


def send_idiomatic(client: TokenClient, fn: Any) -> int:
    """Send one contract call the way web3.py's docs show it; return its gas used.

    build_transaction (gas estimation and fee lookup), sign, send, then
    wait_for_transaction_receipt with its default polling.
    """
    w3, op = client.w3, client.operator
    assert op is not None
    tx = fn.build_transaction(
        {"from": op.address, "nonce": w3.eth.get_transaction_count(op.address)}
    )
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(op.sign(tx)))
    assert receipt["status"] == 1
    return int(receipt["gasUsed"])


def naive_mint(client: TokenClient, ids: list[str], *, idiomatic: bool) -> tuple[float, int]:
    """Mint one holder per transaction, waiting for each receipt; return (seconds, gas)."""
    gas = 0
    start = time.perf_counter()
    for i, holder in enumerate(ids):
        address = address_of(holder)
        if idiomatic:
            fn = client.contract.functions.batchAdjust(0, 0, [address], [0], [E18 + i])
            gas += send_idiomatic(client, fn)
        else:
            call = client.adjust_call(expected_seq=0, seq=0, rows=[(address, 0, E18 + i)])
            sent = client.send_one(replace(call, gas=holder_gas(1)))
            assert sent.succeeded
            gas += sent.gas_used
    return time.perf_counter() - start, gas


def naive_split(client: TokenClient, ids: list[str], num: int, den: int) -> tuple[float, int]:
    """Rescale one holder per transaction (read, then adjust), the idiomatic web3.py way."""
    gas = 0
    start = time.perf_counter()
    for holder in ids:
        address = address_of(holder)
        before = int(client.view("balanceOf", address))
        fn = client.contract.functions.batchAdjust(0, 0, [address], [before], [before * num // den])
        gas += send_idiomatic(client, fn)
    return time.perf_counter() - start, gas


def naive_reads(client: TokenClient, ids: list[str]) -> float:
    """Read balanceOf with one eth_call per holder; return seconds."""
    start = time.perf_counter()
    for holder in ids:
        client.view("balanceOf", address_of(holder))
    return time.perf_counter() - start


def run(holders: int, sample: int, tuned_sample: int, read_sample: int) -> dict[str, Any]:
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
        naive = ensure_deployed(lg, NAIVE_BOOK, w3, op).client
        naive_mint_s, naive_mint_gas = naive_mint(naive, naive_ids, idiomatic=True)
        naive_split_s, naive_split_gas = naive_split(naive, naive_ids, 5, 1)
        tuned_ids = [f"t{i:06d}" for i in range(tuned_sample)]
        tuned_mint_s, _ = naive_mint(naive, tuned_ids, idiomatic=False)
        naive_read_s = naive_reads(attach_client(lg, w3), ids[:read_sample])
    finally:
        stop_anvil(node)
        lg.close()
    scale = holders / sample
    return {
        "holders": holders,
        "naive_sample": sample,
        "naive_read_sample": read_sample,
        "tuned_sample": tuned_sample,
        "mirror": {
            "seconds": mirror_s,
            "txs": mirror.txs,
            "gas": mirror.gas_used,
            "naive_seconds_scaled": naive_mint_s * scale,
            "naive_gas_scaled": int(naive_mint_gas * scale),
            "naive_holders_per_s": sample / naive_mint_s,
            "tuned_seconds_scaled": tuned_mint_s * holders / tuned_sample,
            "tuned_holders_per_s": tuned_sample / tuned_mint_s,
        },
        "split": {
            "seconds": split_s,
            "txs": split.txs,
            "rebases": split.rebases,
            "gas": split.gas_used,
            "naive_seconds_scaled": naive_split_s * scale,
            "naive_gas_scaled": int(naive_split_gas * scale),
        },
        "reconcile": {
            "seconds": recon_s,
            "naive_seconds_scaled": naive_read_s * holders / read_sample,
            "naive_holders_per_s": read_sample / naive_read_s,
        },
    }


def attach_client(lg: Any, w3: Any) -> TokenClient:
    from ledger.chain.deployment import attach

    return attach(lg, BOOK, w3).client


def markdown(r: dict[str, Any]) -> str:
    """Render the figures as the BENCHMARKS.md table."""
    n = r["holders"]
    m, s, c = r["mirror"], r["split"], r["reconcile"]
    rows = [
        (
            "mirror holders",
            f"{m['seconds']:.2f} s, {m['txs']} txs, {m['gas']:,} gas ({m['gas'] // n:,}/holder)",
            f"{m['naive_seconds_scaled']:.0f} s, {n:,} txs, {m['naive_gas_scaled']:,} gas",
            f"{m['naive_seconds_scaled'] / m['seconds']:.0f}x",
        ),
        (
            "mirror one 1:5 split",
            f"{s['seconds']:.2f} s, {s['txs']} tx ({s['rebases']} rebase), {s['gas']:,} gas",
            f"{s['naive_seconds_scaled']:.0f} s, {n:,} txs, {s['naive_gas_scaled']:,} gas",
            f"{s['naive_seconds_scaled'] / s['seconds']:.0f}x",
        ),
        (
            "reconcile holders",
            f"{c['seconds']:.2f} s (chunked balancesOf in one JSON-RPC batch)",
            f"{c['naive_seconds_scaled']:.1f} s ({n:,} eth_calls)",
            f"{c['naive_seconds_scaled'] / c['seconds']:.0f}x",
        ),
    ]
    lines = [
        f"| {n:,} holders | batched (this code) | naive, scaled from a sample | speed-up |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {a} | {b} | {d} | {e} |" for a, b, d, e in rows]
    lines.append(
        f"\nNaive samples, same run: {r['naive_sample']} holders minted one tx each the idiomatic"
        f" web3.py way ({m['naive_holders_per_s']:.1f} holders/s), the same {r['naive_sample']}"
        f" rescaled one tx each, {r['naive_read_sample']} balanceOf eth_calls"
        f" ({c['naive_holders_per_s']:.0f}/s). One tx per holder with this code's tuned sender"
        f" (local signing, fixed gas, 10 ms receipt polling): {m['tuned_holders_per_s']:.0f}"
        f" holders/s, {m['tuned_seconds_scaled']:.0f} s for {n:,}"
        f" ({m['tuned_seconds_scaled'] / m['seconds']:.0f}x slower than batched)."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holders", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=100, help="holders in the naive tx sample")
    parser.add_argument("--tuned-sample", type=int, default=300, help="tuned one-tx sample")
    parser.add_argument("--read-sample", type=int, default=1_000, help="naive eth_call sample")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = run(args.holders, args.sample, args.tuned_sample, args.read_sample)
    print(json.dumps(figures, indent=2) if args.json else markdown(figures))


if __name__ == "__main__":
    main()
