"""The mirror end to end on a real Anvil: sync, reconcile, resume, restart, reset, anchors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlmodel import Session, select
from web3 import Web3

from ledger.chain.anchor import anchor_book, verify_anchors
from ledger.chain.anvil import STATE_FILE, AnvilNode, start_anvil, stop_anvil
from ledger.chain.deployment import attach, ensure_deployed
from ledger.chain.holders import address_of
from ledger.chain.keys import Operator
from ledger.chain.reconcile import reconcile_book
from ledger.chain.records import ChainDeploymentRow, ChainTxRow
from ledger.chain.rpc import connect
from ledger.chain.sync import sync_book
from ledger.cli.main import cli
from ledger.clock import FixedClock
from ledger.domain.canonical import GENESIS_HASH, chain_hash, encode_entry
from ledger.domain.journal import JournalEntry
from ledger.domain.money import format_units, parse_units
from ledger.errors import Rejected
from ledger.services.ledger import Ledger
from tests.chain_support import (
    holder_balances,
    mint_draft,
    open_holders,
    open_share_book,
    redeem_draft,
    split_draft,
)
from tests.conftest import T0
from tests.test_chain_fixtures import (  # noqa: F401
    anvil_binary,
    anvil_node,
    minted_per_address,
    operator,
    raw_balance_of,
    raw_rpc,
    raw_total_supply,
    share_ledger,
    w3,
)

pytestmark = pytest.mark.anvil
BOOK = "BTC3L"
E18 = 10**18
KILLED_AFTER_TXS = 20  # batches of 2 holders the killed run got onto the chain


def _seed(lg: Ledger, holders: int, *, book: str = BOOK) -> list[str]:
    ids = [f"h{i:05d}" for i in range(holders)]
    open_share_book(lg, book)
    open_holders(lg, book, ids)
    lg.post(mint_draft(book, {h: E18 + 7919 * i for i, h in enumerate(ids)}, at=T0))
    return ids


def _assert_mirrors(lg: Ledger, url: str, book: str = BOOK) -> None:
    """Read every holder back with hand-made eth_calls (not the adapter) and compare."""
    chain = connect(url)
    token = attach(lg, book, chain).client.address
    ledger = holder_balances(lg, book)
    for holder, units in ledger.items():
        assert raw_balance_of(url, token, address_of(holder)) == units, holder
    assert raw_total_supply(url, token) == sum(ledger.values())
    report = reconcile_book(lg, book, chain)
    assert report.ok and report.differences == [], report


def _assert_minted_once(lg: Ledger, url: str, book: str = BOOK) -> None:
    """Every holder got exactly one mint, equal to its balance (no burns happened)."""
    token = attach(lg, book, connect(url)).client.address
    mints = minted_per_address(url, token)
    for holder, units in holder_balances(lg, book).items():
        assert mints.get(address_of(holder)) == [units], holder


def test_sync_after_fund_activity_mirrors_every_holder(
    anvil_node: AnvilNode,  # noqa: F811
    w3: Web3,  # noqa: F811
    operator: Operator,  # noqa: F811
    share_ledger: Ledger,  # noqa: F811
) -> None:
    """After mints, fees, rebalances, redeems, a split and a merge the chain equals the ledger."""
    from ledger.services.funds import Funds

    lg = share_ledger
    clock = lg.clock
    assert isinstance(clock, FixedClock)
    funds = Funds(lg)
    funds.create_product(BOOK)
    funds.set_price("BTC", "100")
    holders = ["alice", "bob", "carol", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"]
    for i, holder in enumerate(holders):
        funds.mint(BOOK, holder, cash=str(1000 + 137 * i))
    clock.moment += timedelta(hours=1)
    funds.set_price("BTC", "103.7")
    funds.rebalance(BOOK)
    funds.redeem(BOOK, "bob", shares="1.5")
    funds.split(BOOK, "1:3")
    funds.merge(BOOK, "7:1")  # the share index: one entry each, no unit moves

    first = sync_book(lg, BOOK, w3, operator)
    assert first.synced_seq == lg.head(BOOK)[0] and first.failed_txs == 0
    assert first.rebases == 2
    _assert_fund_mirrors(lg, funds, anvil_node.rpc_url)
    # The merge's rounding is no holder's: the treasury got nothing, the supply keeps it.
    assert "treasury" not in holder_balances(lg, BOOK)
    # The 0x... holder id is its own address.
    assert address_of(holders[3]) == holders[3]
    with Session(lg.engine) as session:
        rows = session.exec(select(ChainTxRow)).all()
    rebases = [r for r in rows if r.kind == "rebase"]
    assert len(rebases) == 2 and all(r.succeeded for r in rebases)
    shares = {
        r["holder"]: int(parse_units(r["shares"], 18)) for r in funds.holders(BOOK)["holders"]
    }
    assert sum(r.units_minted for r in rows) >= shares["alice"]

    again = sync_book(lg, BOOK, w3, operator)
    assert again.txs == 0  # idempotent: a second run sends nothing

    funds.redeem(BOOK, "carol", shares=format_units(shares["carol"], 18))  # every unit
    funds.mint(BOOK, "dave", cash="250")
    third = sync_book(lg, BOOK, w3, operator)
    assert third.txs >= 2 and third.failed_txs == 0
    assert "carol" not in holder_balances(lg, BOOK)
    _assert_fund_mirrors(lg, funds, anvil_node.rpc_url)


def _assert_fund_mirrors(lg: Ledger, funds: Any, url: str, book: str = BOOK) -> None:
    """A fund's mirror: every holder's `balanceOf` is their shares under the share index, the
    total supply the shares outstanding (their sum and the split rounding no holder shows)."""
    token = attach(lg, book, connect(url)).client.address
    report = funds.holders(book)
    for row in report["holders"]:
        want = parse_units(row["shares"], 18)
        assert raw_balance_of(url, token, address_of(row["holder"])) == want, row["holder"]
    assert raw_total_supply(url, token) == funds.state(book).shares
    reconciled = reconcile_book(lg, book, connect(url))
    assert reconciled.ok and reconciled.differences == [], reconciled


def _cli_env(db_url: str, rpc_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKEN_LEDGER_")}
    env.update(TOKEN_LEDGER_DB=db_url, TOKEN_LEDGER_RPC_URL=rpc_url)
    return env


def test_killed_sync_resumes_without_minting_twice(
    anvil_node: AnvilNode,  # noqa: F811
    w3: Web3,  # noqa: F811
    operator: Operator,  # noqa: F811
    share_ledger: Ledger,  # noqa: F811
) -> None:
    """A `chain sync` killed with SIGKILL mid-way is finished by the next run, no double mint."""
    lg = share_ledger
    _seed(lg, 600)
    db_url = str(lg.engine.url)
    url = anvil_node.rpc_url
    ensure_deployed(lg, BOOK, w3, operator)
    base = w3.eth.get_transaction_count(operator.address, "latest")
    # With automine off nothing the killed run sends is mined, so it cannot finish before the
    # kill (no race): it sends its 300 batches, then waits for receipts.
    raw_rpc(url, "evm_setAutomine", [False])
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli.main", "chain", "sync", BOOK, "--batch", "2"],
        env=_cli_env(db_url, url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    sent = KILLED_AFTER_TXS
    deadline = time.monotonic() + 60
    try:
        while w3.eth.get_transaction_count(operator.address, "pending") < base + sent:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"sync exited or stalled: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    # Keep exactly the first 20 transactions; the rest never reached the node.
    for txs in raw_rpc(url, "txpool_content", [])["pending"].values():
        for nonce, tx in txs.items():
            if int(nonce) >= base + sent:
                raw_rpc(url, "anvil_dropTransaction", [tx["hash"]])
    assert w3.eth.get_transaction_count(operator.address, "pending") == base + sent
    assert attach(lg, BOOK, w3).client.last_synced_seq() == 0  # really killed mid-way

    # The killed run's transactions land late, while the next run is already waiting for them.
    late = threading.Timer(1.0, raw_rpc, (url, "evm_setAutomine", [True]))
    late.start()
    try:
        result = CliRunner().invoke(
            cli, ["--db", db_url, "chain", "sync", BOOK, "--json"], env=_cli_env(db_url, url)
        )
    finally:
        late.join()
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["holders_written"] == 600 - 2 * sent
    _assert_mirrors(lg, url)
    _assert_minted_once(lg, url)


def test_restart_from_saved_state_then_resync(
    anvil_binary: Path,  # noqa: F811
    tmp_path: Path,
    operator: Operator,  # noqa: F811
    share_ledger: Ledger,  # noqa: F811
) -> None:
    """Anvil restarted from its saved state keeps the mirror; sync continues where it was."""
    lg = share_ledger
    ids = _seed(lg, 40)
    workdir = tmp_path / "persist"
    node = start_anvil(workdir=workdir, state_path=workdir / STATE_FILE)
    try:
        sync_book(lg, BOOK, connect(node.rpc_url), operator)
        address = attach(lg, BOOK, connect(node.rpc_url)).client.address
    finally:
        stop_anvil(node)
    assert (workdir / STATE_FILE).is_file()
    open_holders(lg, BOOK, ["late"])
    lg.post(mint_draft(BOOK, {"late": 5 * E18}, at=T0))
    lg.post(split_draft(lg, BOOK, num=10, den=3, at=T0))
    lg.post(redeem_draft(BOOK, {ids[0]: 1}, at=T0))

    node = start_anvil(workdir=workdir, state_path=workdir / STATE_FILE)
    try:
        w3 = connect(node.rpc_url)
        report = sync_book(lg, BOOK, w3, operator)
        assert not report.redeployed and report.address == address
        assert report.rebases == 1 and report.synced_seq == lg.head(BOOK)[0]
        _assert_mirrors(lg, node.rpc_url)
        assert sync_book(lg, BOOK, w3, operator).txs == 0
    finally:
        stop_anvil(node)


def test_chain_reset_is_detected_and_resynced(
    anvil_binary: Path,  # noqa: F811
    tmp_path: Path,
    operator: Operator,  # noqa: F811
    share_ledger: Ledger,  # noqa: F811
) -> None:
    """A new chain under a recorded deployment is detected; sync redeploys and mirrors all."""
    lg = share_ledger
    _seed(lg, 30)
    old = start_anvil(workdir=tmp_path / "a")
    try:
        sync_book(lg, BOOK, connect(old.rpc_url), operator)
    finally:
        stop_anvil(old)
    new = start_anvil(workdir=tmp_path / "b")  # a fresh chain, no saved state
    try:
        w3 = connect(new.rpc_url)
        with pytest.raises(Rejected, match="reset"):
            reconcile_book(lg, BOOK, w3)
        report = sync_book(lg, BOOK, w3, operator)
        assert report.redeployed and report.reset_reason and "reset" in report.reset_reason
        _assert_mirrors(lg, new.rpc_url)
        _assert_minted_once(lg, new.rpc_url)
    finally:
        stop_anvil(new)
    with Session(lg.engine) as session:
        rows = session.exec(select(ChainDeploymentRow)).all()
    assert [r.retired_us is not None for r in rows] == [True, False]


def _rewrite_history(lg: Ledger, book: str, *, seq: int, source: str, target: str) -> None:
    """Move one share unit between two holders inside entry `seq` and re-hash the chain after it.

    This is what an attacker with write access to the database would do: drop the append-only
    triggers, edit a posting, recompute every later hash and the head, restore the triggers.
    """
    with lg.engine.begin() as conn:
        for table in ("tl_entries", "tl_postings"):
            for op in ("update", "delete"):
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_{op}")
        for account, delta in ((f"holder:{source}", -1), (f"holder:{target}", 1)):
            args = (delta, book, seq, account)
            conn.exec_driver_sql(
                "UPDATE tl_postings SET amount = amount + ?"
                " WHERE book = ? AND seq = ? AND account = ?",
                args,
            )
            conn.exec_driver_sql(
                "UPDATE tl_balances SET amount = amount + ? WHERE book = ? AND account = ?",
                (delta, book, account),
            )
    prev = GENESIS_HASH
    updates = []
    for entry in lg.entries(book):
        if entry.seq >= seq:
            sealed = JournalEntry(entry.draft, entry.seq, entry.recorded_at, prev, b"")
            canonical = encode_entry(sealed, lg.definitions(book))
            updates.append((prev, chain_hash(prev, canonical), book, entry.seq))
            prev = updates[-1][1]
        else:
            prev = entry.hash
    with lg.engine.begin() as conn:
        for row in updates:
            conn.exec_driver_sql(
                "UPDATE tl_entries SET prev_hash = ?, hash = ? WHERE book = ? AND seq = ?", row
            )
        conn.exec_driver_sql("UPDATE tl_books SET head_hash = ? WHERE code = ?", (prev, book))
    lg.init()  # restores the append-only triggers


def test_rewritten_history_with_recomputed_hashes_is_caught_by_anchors(
    anvil_node: AnvilNode,  # noqa: F811
    w3: Web3,  # noqa: F811
    operator: Operator,  # noqa: F811
    share_ledger: Ledger,  # noqa: F811
) -> None:
    """A re-hashed rewrite passes the database's own check but not the anchors on chain."""
    lg = share_ledger
    ids = _seed(lg, 5)
    lg.post(mint_draft(BOOK, {ids[1]: 3 * E18}, at=T0))
    sync_book(lg, BOOK, w3, operator)
    first = anchor_book(lg, BOOK, w3, operator)
    assert first.seq == 2 and not first.already_anchored
    assert anchor_book(lg, BOOK, w3, operator).already_anchored
    lg.post(redeem_draft(BOOK, {ids[2]: E18}, at=T0))
    assert anchor_book(lg, BOOK, w3, operator).seq == 3
    assert verify_anchors(lg, BOOK, rpc_url=anvil_node.rpc_url).ok

    _rewrite_history(lg, BOOK, seq=1, source=ids[1], target=ids[4])
    assert lg.verify(BOOK).ok  # the rewrite is self-consistent: hashes were recomputed
    report = verify_anchors(lg, BOOK, rpc_url=anvil_node.rpc_url)
    assert not report.ok and [m.seq for m in report.mismatches] == [2, 3]
    assert report.problem is not None and "first at seq 2" in report.problem
    env = _cli_env(str(lg.engine.url), anvil_node.rpc_url)
    plain = CliRunner().invoke(cli, ["verify", BOOK], env=env)
    assert plain.exit_code == 0, plain.output
    caught = CliRunner().invoke(cli, ["--json", "verify", BOOK, "--chain"], env=env)
    assert caught.exit_code == 3, caught.output
    assert '"first_bad_seq": 2' in caught.output and "rewritten history" in caught.output


def test_cli_reconcile_exits_3_on_difference_and_status_reports(
    anvil_node: AnvilNode,  # noqa: F811
    w3: Web3,  # noqa: F811
    operator: Operator,  # noqa: F811
    share_ledger: Ledger,  # noqa: F811
) -> None:
    """`chain reconcile` exits 3 with the differences as JSON; `chain status` shows the lag."""
    lg = share_ledger
    ids = _seed(lg, 3)
    db_url = str(lg.engine.url)
    env = _cli_env(db_url, anvil_node.rpc_url)
    runner = CliRunner()
    assert runner.invoke(cli, ["chain", "sync", BOOK], env=env).exit_code == 0
    lg.post(mint_draft(BOOK, {ids[0]: 2}, at=T0))
    result = runner.invoke(cli, ["--json", "chain", "reconcile", BOOK], env=env)
    assert result.exit_code == 3
    assert '"ledger_units": "' + str(E18 + 2) + '"' in result.output
    status = runner.invoke(cli, ["chain", "status", BOOK, "--json"], env=env)
    assert status.exit_code == 0 and '"in_sync": false' in status.output
    refused = runner.invoke(
        cli, ["chain", "sync", BOOK, "--rpc-url", "http://10.1.2.3:8545"], env=env
    )
    assert refused.exit_code == 2 and "loopback" in refused.output


def test_sync_stops_when_the_chain_keeps_refusing_a_write(
    w3: Web3,  # noqa: F811
    operator: Operator,  # noqa: F811
    share_ledger: Ledger,  # noqa: F811
) -> None:
    """A balance the contract cannot hold (> uint192) makes sync stop with a reason, not spin."""
    lg = share_ledger
    _seed(lg, 2)
    open_holders(lg, BOOK, ["whale"])
    lg.post(mint_draft(BOOK, {"whale": 2**200}, at=T0))
    with pytest.raises(Rejected, match="reverted in 3 rounds"):
        sync_book(lg, BOOK, w3, operator, batch=1)
    assert not reconcile_book(lg, BOOK, w3).ok


def test_two_spellings_of_one_address_refuse_sync_until_one_is_emptied(
    anvil_node: AnvilNode,  # noqa: F811
    w3: Web3,  # noqa: F811
    share_ledger: Ledger,  # noqa: F811
) -> None:
    """Older books holding two spellings of one address: sync names both, then recovers."""
    lg = share_ledger
    mixed = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    lower = mixed.lower()
    open_share_book(lg, BOOK)
    open_holders(lg, BOOK, [mixed, lower, "alice"])  # straight through the kernel: older data
    lg.post(mint_draft(BOOK, {mixed: 5 * E18 + 1, lower: 2 * E18, "alice": E18}, at=T0))
    lg.post(split_draft(lg, BOOK, num=10, den=3, at=T0))  # rounds each spelling on its own
    env = _cli_env(str(lg.engine.url), anvil_node.rpc_url)
    refused = CliRunner().invoke(cli, ["chain", "sync", BOOK], env=env)
    assert refused.exit_code == 2, refused.output
    assert refused.stdout == "" and len(refused.stderr.splitlines()) == 1
    assert f"holder:{mixed} and holder:{lower}" in refused.stderr
    assert "two spellings of one address" in refused.stderr

    # The documented recovery: one transfer entry moves every unit into one spelling.
    units = str(lg.balance(BOOK, f"holder:{mixed}", BOOK))
    entry = {
        "book": BOOK,
        "kind": "transfer",
        "key": "merge-spelling-0x7099",
        "effective_at": "2026-11-27T00:00:00Z",
        "metadata": {},
        "postings": [
            {"account": f"holder:{mixed}", "asset": BOOK, "amount": "-" + units},
            {"account": f"holder:{lower}", "asset": BOOK, "amount": units},
        ],
    }
    posted = CliRunner().invoke(cli, ["post", "-"], input=json.dumps(entry), env=env)
    assert posted.exit_code == 0, posted.output
    synced = CliRunner().invoke(cli, ["chain", "sync", BOOK], env=env)
    assert synced.exit_code == 0, synced.output
    _assert_mirrors(lg, anvil_node.rpc_url)
    token = attach(lg, BOOK, w3).client.address
    assert raw_balance_of(anvil_node.rpc_url, token, mixed) == lg.balance(
        BOOK, f"holder:{lower}", BOOK
    )
