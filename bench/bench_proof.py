"""Benchmark the proof of liabilities: the tree of 1,000,000 holders, a proof's size, its check.

    .venv/bin/python bench/bench_proof.py                # tree and proofs, then the SQLite fund
    .venv/bin/python bench/bench_proof.py --only tree    # the pure tree only
    .venv/bin/python bench/bench_proof.py --holders 200000

Target (issue 12): building the tree for 1,000,000 holders < 5 s. The build is timed from
the register {holder: units} and the book key to the root: the holder secrets (HMAC), the
commitments, the sort, the leaves and every inner node; its phases are timed separately after.
The "db" part times `liabilities_at` on a SQLite fund whose 1,000,000 holders got their
shares in one entry: the register folded from the postings, the key read, the tree built.
The gas of the on-chain verification is measured by the chain benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._report import write_section  # noqa: E402
from ledger.domain.proof import check_proof, holder_secret  # noqa: E402
from ledger.domain.proof.proof_file import proof_json  # noqa: E402
from ledger.domain.proof.tree import build_sorted, build_tree, leaf_records  # noqa: E402

HOLDERS = 1_000_000
TARGET_SECONDS = 5.0
KEY = bytes(range(32))
SEQ = 1_000_123
AT = datetime(2021, 1, 1, tzinfo=UTC)


def register_of(holders: int) -> dict[str, int]:
    """Return a register of `holders` ids with distinct odd unit counts near one share."""
    return {f"h{i:07d}": 10**18 + 7919 * i + 1 for i in range(holders)}


def bench_tree(holders: int, runs: int) -> dict[str, object]:
    """Time the full build `runs` times, then each phase once; time proofs and checks."""
    register = register_of(holders)
    load_before = os.getloadavg()[0]
    builds, cpu = [], []
    tree = None
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        tree = build_tree(key=KEY, seq=SEQ, register=register)
        builds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    load_after = os.getloadavg()[0]
    assert tree is not None
    root = tree.root()
    assert root.sum == sum(register.values())
    started = time.perf_counter()
    records = leaf_records(key=KEY, seq=SEQ, register=register)
    t_records = time.perf_counter() - started
    started = time.perf_counter()
    records.sort()
    t_sort = time.perf_counter() - started
    started = time.perf_counter()
    again = build_sorted(SEQ, records)
    t_levels = time.perf_counter() - started
    assert again.root() == root
    sample = list(register)[:: max(1, holders // 2000)]
    started = time.perf_counter()
    proofs = [
        tree.proof_for(book="BTC3L", holder=h, secret=holder_secret(KEY, h, SEQ)) for h in sample
    ]
    t_prove = (time.perf_counter() - started) / len(sample)
    started = time.perf_counter()
    for proof in proofs:
        assert check_proof(proof, published=root) is None
    t_check = (time.perf_counter() - started) / len(sample)
    size = len(json.dumps(proof_json(proofs[0]), indent=2)) + 1  # as `proof -o` writes it
    compact = len(json.dumps(proof_json(proofs[0]), separators=(",", ":")))
    return {
        "holders": holders,
        "builds": builds,
        "cpu": cpu,
        "load_before": load_before,
        "load_after": load_after,
        "records": t_records,
        "sort": t_sort,
        "levels": t_levels,
        "depth": root.depth,
        "path": len(proofs[0].path),
        "size": size,
        "compact": compact,
        "prove_us": t_prove * 1e6,
        "check_us": t_check * 1e6,
        "sample": len(sample),
    }


def bench_db(holders: int) -> dict[str, float]:
    """Time `liabilities_at` on a SQLite fund with `holders` holders (set-up not timed)."""
    from ledger.clock import FixedClock
    from ledger.domain.fund import accounts as acc
    from ledger.domain.journal import EntryDraft, Posting
    from ledger.services.funds import Funds
    from ledger.services.ledger import open_ledger
    from ledger.services.proof import liabilities_at

    with tempfile.TemporaryDirectory() as tmp:
        lg = open_ledger(f"sqlite:///{Path(tmp) / 'proof.db'}", clock=FixedClock(AT))
        lg.init()
        funds = Funds(lg)
        funds.create_product("BTC3L")
        terms = funds.terms("BTC3L")
        ids = [f"h{i:07d}" for i in range(holders)]
        started = time.perf_counter()
        lg.open_accounts([acc.holder_account(terms.book, h) for h in ids])
        units = 123_456_789_012_345_678
        postings = [Posting(f"holder:{h}", terms.share_asset.code, units) for h in ids]
        postings.append(Posting(acc.SHARES_OUTSTANDING, terms.share_asset.code, -units * holders))
        draft = EntryDraft(
            book=terms.book, kind="allocate", effective_at=AT, postings=tuple(postings)
        )
        with lg.unit_of_work(owner="fund") as uow:
            uow.lock(terms.book)
            uow.post([draft])
        setup = time.perf_counter() - started
        started = time.perf_counter()
        found = liabilities_at(lg, "BTC3L")
        total = time.perf_counter() - started
        assert found.root().sum == found.register.shares_outstanding == units * holders
        lg.close()
    return {"setup": setup, "liabilities_at": total}


def bench_gas(holders: int) -> dict[str, object]:
    """Anchor the root of a `holders`-leaf tree on a real Anvil (the share token deployed for
    a small fund book) and measure `verifyLiability`: its gas (eth_estimateGas of the view as
    a call) for a proof of depth log2(holders), and the latency of one eth_call."""
    from ledger.chain.anvil import start_anvil, stop_anvil
    from ledger.chain.deployment import ensure_deployed
    from ledger.chain.keys import anvil_dev_operator
    from ledger.chain.liabilities import anchor_liabilities, proof_on_chain
    from ledger.chain.rpc import connect
    from ledger.chain.token import TokenClient
    from ledger.clock import FixedClock
    from ledger.domain.proof import ChainRef
    from ledger.services.funds import Funds
    from ledger.services.ledger import open_ledger

    register = register_of(holders)
    tree = build_tree(key=KEY, seq=SEQ, register=register)
    root = tree.root()
    with tempfile.TemporaryDirectory(prefix="bench-proof-gas-") as tmp:
        lg = open_ledger(f"sqlite:///{Path(tmp) / 'gas.db'}", clock=FixedClock(AT))
        lg.init()
        funds = Funds(lg, max_skew=None)
        funds.create_product("BTC3L", max_price_age=None)
        funds.set_price("BTC", "100", at=AT)
        funds.mint("BTC3L", "alice", cash="1000", at=AT)
        node = start_anvil(workdir=Path(tmp) / "chain")
        try:
            w3 = connect(node.rpc_url)
            op = anvil_dev_operator()
            client = ensure_deployed(lg, "BTC3L", w3, op).client
            anchor_liabilities(
                lg,
                "BTC3L",
                w3,
                op,
                seq=SEQ,
                root_hash=root.hash,
                root_sum=root.sum,
                depth=root.depth,
            )
            chain = ChainRef(chain_id=31337, address=client.address)
            holder = next(iter(register))
            proof = tree.proof_for(
                book="BTC3L", holder=holder, secret=holder_secret(KEY, holder, SEQ)
            )
            from dataclasses import replace

            proof = replace(proof, chain=chain)
            token = TokenClient(w3, client.address).contract
            call = token.functions.verifyLiability(*proof.contract_args())
            gas = int(call.estimate_gas())
            assert call.call() is True
            started = time.perf_counter()
            for _ in range(100):
                ok, _root = proof_on_chain(w3, proof)
                assert ok
            latency = (time.perf_counter() - started) / 100
        finally:
            stop_anvil(node)
            lg.close()
    return {"gas": gas, "depth": root.depth, "latency_ms": latency * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holders", type=int, default=HOLDERS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=("tree", "db", "gas"), default=None)
    parser.add_argument("--no-write", action="store_true", help="Do not update BENCHMARKS.md.")
    args = parser.parse_args()
    rows = []
    if args.only in (None, "tree"):
        t = bench_tree(args.holders, args.runs)
        builds, cpu = t["builds"], t["cpu"]
        assert isinstance(builds, list) and isinstance(cpu, list)
        best, median = min(builds), statistics.median(builds)
        verdict = "met" if median < TARGET_SECONDS else "MISSED"
        rows += [
            f"| tree build, {args.holders:,} holders (secrets, commitments, sort, leaves, nodes), "
            f"{len(builds)} runs, wall clock | median {median:.2f} s, best {best:.2f} s, runs "
            f"{', '.join(f'{b:.2f}' for b in builds)} (target < {TARGET_SECONDS:.0f} s: {verdict}) |",
            f"| the same builds, CPU time of the process | median {statistics.median(cpu):.2f} s,"
            f" runs {', '.join(f'{c:.2f}' for c in cpu)} |",
            f"| load average (1 min) before / after the builds | {t['load_before']:.1f} /"
            f" {t['load_after']:.1f} on {os.cpu_count()} cores |",
            f"| of which (wall clock, one run): HMAC secrets + commitments + leaf records | {t['records']:.2f} s |",
            f"| of which: sort by commitment | {t['sort']:.2f} s |",
            f"| of which: leaf hashes + {t['depth']} levels of inner nodes | {t['levels']:.2f} s |",
            f"| proof size | {t['size']:,} bytes as written by `proof -o` ({t['compact']:,} compact"
            f" JSON), path length {t['path']} (depth {t['depth']}) |",
            f"| one proof out of the built tree (secret + path), mean of {t['sample']:,} |"
            f" {t['prove_us']:.1f} us |",
            f"| one proof's verification (`check_proof`), mean of {t['sample']:,} |"
            f" {t['check_us']:.1f} us |",
        ]
    if args.only in (None, "db"):
        d = bench_db(args.holders)
        rows.append(
            f"| `liabilities_at` on SQLite, {args.holders:,} holders (fold the postings, read the"
            f" key, build) | {d['liabilities_at']:.2f} s (set-up {d['setup']:.1f} s, not timed) |"
        )
    if args.only in (None, "gas"):
        g = bench_gas(args.holders)
        rows.append(
            f"| `verifyLiability` on a real Anvil, a proof of depth {g['depth']} ({args.holders:,}"
            f" holders) | {g['gas']:,} gas (eth_estimateGas of the view as a transaction);"
            f" {g['latency_ms']:.1f} ms per `proof verify --chain` check (verifyLiability +"
            " the anchored root, 3 eth_calls), mean of 100 |"
        )
    body = "| what | figure |\n|---|---|\n" + "\n".join(rows)
    print(body)
    if not args.no_write and args.only is None and args.holders == HOLDERS:
        write_section("Proof of liabilities (bench/bench_proof.py)", body)
        print(f"\nwrote {os.path.relpath(REPO / 'BENCHMARKS.md')}")


if __name__ == "__main__":
    main()
