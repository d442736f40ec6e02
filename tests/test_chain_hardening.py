"""The mirror's hardening on a real Anvil: anchors that prove history, a sync that can neither
stick nor race, and the operator key kept where it belongs (issue "Chain mirror hardening")."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from web3 import Web3

from ledger.chain.anchor import anchor_book, verify_anchors
from ledger.chain.anvil import STATE_FILE, AnvilNode, node_env, start_anvil, stop_anvil
from ledger.chain.deployment import attach, ensure_deployed
from ledger.chain.holders import address_of
from ledger.chain.keys import (
    ENV_KEY,
    Operator,
    anvil_dev_operator,
    anvil_public_addresses,
    require_key_fits_chain,
)
from ledger.chain.lock import book_lock
from ledger.chain.reconcile import reconcile_book
from ledger.chain.rpc import connect
from ledger.chain.sync import sync_book
from ledger.chain.token import Call, TokenClient
from ledger.cli.main import cli
from ledger.clock import FixedClock
from ledger.errors import Reason, Rejected
from ledger.services.ledger import Ledger, open_ledger
from tests.chain_support import (
    cli_env,
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
    operator,
    raw_rpc,
    share_ledger,
    w3,
)

pytestmark = pytest.mark.anvil
BOOK = "BTC3L"
E18 = 10**18
# Account 0 of Anvil's public mnemonic: published in Anvil's docs, guards nothing.
ANVIL_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


def _seed(lg: Ledger, holders: int) -> list[str]:
    ids = [f"h{i:03d}" for i in range(holders)]
    open_share_book(lg, BOOK)
    open_holders(lg, BOOK, ids)
    lg.post(mint_draft(BOOK, {h: 10**30 + 7919 * i for i, h in enumerate(ids)}, at=T0))
    return ids


def _equal(lg: Ledger, w3: Web3) -> None:  # noqa: F811
    report = reconcile_book(lg, BOOK, w3)
    assert report.ok, report.as_json()
    assert report.chain_supply == report.chain_sum == sum(holder_balances(lg, BOOK).values())


def _verify_cli(lg: Ledger, url: str) -> tuple[int, dict[str, object], str]:
    result = CliRunner().invoke(
        cli, ["--json", "verify", BOOK, "--chain"], env=cli_env(str(lg.engine.url), url)
    )
    payload = json.loads(result.stdout)[0] if result.stdout.strip() else {}
    return result.exit_code, payload, result.output


def _post_splits(lg: Ledger, count: int) -> None:
    """Alternate 1:3 splits and 2:1 merges: each rounds every holder down, dust to treasury."""
    for i in range(count):
        num, den = (3, 1) if i % 2 == 0 else (1, 2)
        lg.post(split_draft(lg, BOOK, num=num, den=den, at=T0))


# ----- a sync that cannot stick ----------------------------------------------------------


def test_holders_120_splits_behind_sync_with_estimated_gas(
    w3: Web3,  # noqa: F811
    operator: Operator,  # noqa: F811
    share_ledger: Ledger,  # noqa: F811
) -> None:
    """2 holders, 120 splits and merges, then a one-unit redemption: the holder written is 120
    splits behind (about 2.8k gas each), and sync sizes the write from eth_estimateGas."""
    lg = share_ledger
    ids = _seed(lg, 2)
    sync_book(lg, BOOK, w3, operator)
    _post_splits(lg, 120)
    report = sync_book(lg, BOOK, w3, operator)
    assert report.rebases == 120 and report.failed_txs == 0
    lg.post(redeem_draft(BOOK, {ids[0]: 1}, at=T0))
    redeemed = sync_book(lg, BOOK, w3, operator)
    assert redeemed.failed_txs == 0 and redeemed.txs == 2  # one adjust, one markSynced
    assert redeemed.holders_written == 1 and redeemed.catch_ups == 0
    assert redeemed.gas_used > 120 * 2_000  # the catch-up of 120 splits was paid for
    assert attach(lg, BOOK, w3).client.epoch() == 120
    _equal(lg, w3)


def test_a_holder_too_far_behind_for_one_block_is_caught_up_in_steps(
    w3: Web3,  # noqa: F811
    anvil_node: AnvilNode,  # noqa: F811
    operator: Operator,  # noqa: F811
    share_ledger: Ledger,  # noqa: F811
) -> None:
    """With a block gas limit of 600,000, writing a holder 120 splits behind does not fit one
    transaction: sync first moves it forward with catchUp (no balance change), then writes."""
    lg = share_ledger
    ids = _seed(lg, 2)
    sync_book(lg, BOOK, w3, operator)
    raw_rpc(anvil_node.rpc_url, "evm_setBlockGasLimit", [hex(600_000)])
    raw_rpc(anvil_node.rpc_url, "evm_mine", [])
    assert w3.eth.get_block("latest")["gasLimit"] == 600_000
    _post_splits(lg, 120)
    sync_book(lg, BOOK, w3, operator)
    lg.post(redeem_draft(BOOK, {ids[0]: 1, ids[1]: 3}, at=T0))
    report = sync_book(lg, BOOK, w3, operator)
    assert report.failed_txs == 0 and report.catch_ups >= 2
    assert report.holders_written == 2
    client = attach(lg, BOOK, w3).client
    holdings = client.holdings([address_of(h) for h in ids])
    assert [epoch for _, epoch in holdings] == [120, 120]
    _equal(lg, w3)


# ----- a sync that cannot race -----------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    """A ledger on SQLite (file lock) or PostgreSQL (advisory lock)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        url = str(request.getfixturevalue("pg_url"))
    lg = open_ledger(url, clock=FixedClock(T0))
    lg.init()
    try:
        yield lg
    finally:
        lg.close()


def test_two_concurrent_chain_syncs_one_reports_the_lock_and_the_chain_ends_equal(
    anvil_node: AnvilNode,  # noqa: F811
    w3: Web3,  # noqa: F811
    operator: Operator,  # noqa: F811
    any_ledger: Ledger,
) -> None:
    """The first `chain sync` holds the book's lock while its batches wait to be mined; a
    second one started then is refused in one line (busy, exit 2); the chain ends equal."""
    lg = any_ledger
    _seed(lg, 300)
    db_url = lg.engine.url.render_as_string(hide_password=False)
    url = anvil_node.rpc_url
    ensure_deployed(lg, BOOK, w3, operator)
    base = w3.eth.get_transaction_count(operator.address, "latest")
    raw_rpc(url, "evm_setAutomine", [False])
    first = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli.main", "chain", "sync", BOOK, "--batch", "50"],
        env=cli_env(db_url, url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while w3.eth.get_transaction_count(operator.address, "pending") < base + 6:
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            assert time.monotonic() < deadline, "the first sync sent nothing"
            time.sleep(0.02)
        second = subprocess.run(
            [sys.executable, "-m", "ledger.cli.main", "chain", "sync", BOOK],
            env=cli_env(db_url, url),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert second.returncode == 2, second.stderr
        assert second.stdout == "" and len(second.stderr.splitlines()) == 1
        assert second.stderr.startswith("token-ledger: busy: another chain sync or anchor of BTC3L")
    finally:
        raw_rpc(url, "evm_setAutomine", [True])
        raw_rpc(url, "evm_mine", [])
        _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    _equal(lg, w3)
    # The lock is free again once the first run is over.
    with book_lock(lg.engine, BOOK):
        pass


def test_the_book_lock_refuses_a_second_holder_in_the_same_process(any_ledger: Ledger) -> None:
    """The lock is per book: a second taker of the same book is refused, another book is not."""
    lg = any_ledger
    with book_lock(lg.engine, BOOK):
        with pytest.raises(Rejected) as caught, book_lock(lg.engine, BOOK):
            pass
        assert caught.value.reason is Reason.BUSY and caught.value.retryable
        with book_lock(lg.engine, "ETH3L"):
            pass
    with book_lock(lg.engine, BOOK):
        pass


# ----- anchors that prove history --------------------------------------------------------


def _anchored(lg: Ledger, w3: Web3, operator: Operator) -> int:  # noqa: F811
    ids = _seed(lg, 3)
    sync_book(lg, BOOK, w3, operator)
    assert anchor_book(lg, BOOK, w3, operator).seq == 1
    lg.post(redeem_draft(BOOK, {ids[0]: 5}, at=T0))
    sync_book(lg, BOOK, w3, operator)
    return anchor_book(lg, BOOK, w3, operator).seq


def test_a_reset_chain_fails_verify_naming_the_seq(
    anvil_binary: Path,  # noqa: F811
    tmp_path: Path,
    operator: Operator,  # noqa: F811
    share_ledger: Ledger,  # noqa: F811
) -> None:
    """`chain up --fresh` + `chain sync` redeploy the mirror; the anchors recorded before are
    gone from the chain, so `verify --chain` exits 3 naming the first of them."""
    lg = share_ledger
    old = start_anvil(workdir=tmp_path / "a", state_path=tmp_path / "a" / STATE_FILE)
    try:
        assert _anchored(lg, connect(old.rpc_url), operator) == 2
        code, payload, _ = _verify_cli(lg, old.rpc_url)
        assert code == 0 and payload["chain"]["anchors"] == 2  # type: ignore[index]
    finally:
        stop_anvil(old)
    new = start_anvil(workdir=tmp_path / "b")  # a fresh chain: no saved state
    try:
        w3 = connect(new.rpc_url)
        assert sync_book(lg, BOOK, w3, operator).redeployed
        _equal(lg, w3)
        code, payload, output = _verify_cli(lg, new.rpc_url)
        assert code == 3, output
        assert payload["first_bad_seq"] == 1
        assert "first at seq 1: missing on chain" in str(payload["problem"])
        assert [m["seq"] for m in payload["chain"]["mismatches"]] == [1, 2]  # type: ignore[index]
        # Anchoring on the new mirror does not bring the old anchors back.
        anchor_book(lg, BOOK, w3, operator)
        report = verify_anchors(lg, BOOK, w3=w3)
        assert [m.seq for m in report.mismatches] == [1, 2] and report.anchors == 2
    finally:
        stop_anvil(new)


def _swap_to(lg: Ledger, w3: Web3, *, anchors_too: bool) -> None:  # noqa: F811
    """Point the recorded deployment at a look-alike contract deployed by another account,
    holding the same anchors (what someone with write access to the database could do)."""
    intruder = anvil_dev_operator(1)
    fake, receipt = TokenClient.deploy(
        w3, intruder, name=f"token-ledger {BOOK}", symbol=BOOK, decimals=18
    )
    real = attach(lg, BOOK, w3).client
    assert [s.succeeded for s in fake.send([fake.anchor_call(s, h) for s, h in real.anchors()])]
    tx = bytes(receipt["transactionHash"])
    tables = (
        ["tl_chain_deployments", "tl_chain_anchors"] if anchors_too else ["tl_chain_deployments"]
    )
    with lg.engine.begin() as conn:
        for table in tables:
            sql = f"UPDATE {table} SET address = ?, deploy_tx = ?"
            conn.exec_driver_sql(sql, (fake.address, tx))


@pytest.mark.parametrize("anchors_too", [False, True])
def test_a_swapped_deployment_fails_verify_naming_the_seq(
    anvil_node: AnvilNode,  # noqa: F811
    w3: Web3,  # noqa: F811
    operator: Operator,  # noqa: F811
    share_ledger: Ledger,  # noqa: F811
    anchors_too: bool,
) -> None:
    """A recorded deployment pointed at another account's contract fails: the anchor rows
    still name the real one, or (all rows edited) the contract's owner is not the recorded one.
    """
    lg = share_ledger
    _anchored(lg, w3, operator)
    _swap_to(lg, w3, anchors_too=anchors_too)
    code, payload, output = _verify_cli(lg, anvil_node.rpc_url)
    assert code == 3, output
    assert payload["first_bad_seq"] == 1
    expected = "owner changed" if anchors_too else "swapped deployment"
    assert f"first at seq 1: {expected}" in str(payload["problem"]), payload["problem"]


def test_a_changed_owner_fails_verify_and_refuses_sync(
    anvil_node: AnvilNode,  # noqa: F811
    w3: Web3,  # noqa: F811
    operator: Operator,  # noqa: F811
    share_ledger: Ledger,  # noqa: F811
) -> None:
    """After a two-step ownership transfer the anchors were written by a key that no longer
    owns the mirror: verify exits 3 naming the seq; the old operator can no longer sync."""
    lg = share_ledger
    _anchored(lg, w3, operator)
    client = attach(lg, BOOK, w3, operator).client
    heir = anvil_dev_operator(3)
    fn = client.contract.functions
    offer = bytes.fromhex(fn.transferOwnership(heir.address)._encode_transaction_data()[2:])
    accept = bytes.fromhex(fn.acceptOwnership()._encode_transaction_data()[2:])
    assert client.send([Call("owner", 0, offer, 100_000)])[0].succeeded
    assert verify_anchors(lg, BOOK, w3=w3).ok  # offered, not accepted: nothing changed
    assert TokenClient(w3, client.address, heir).send([Call("owner", 0, accept, 100_000)])[0]
    code, payload, output = _verify_cli(lg, anvil_node.rpc_url)
    assert code == 3, output
    assert payload["first_bad_seq"] == 1
    assert "first at seq 1: owner changed" in str(payload["problem"])
    with pytest.raises(Rejected, match="owned by"):
        sync_book(lg, BOOK, w3, operator)


def test_anchors_recorded_in_the_database_are_write_once_and_increase(
    w3: Web3,  # noqa: F811
    operator: Operator,  # noqa: F811
    share_ledger: Ledger,  # noqa: F811
) -> None:
    """Each anchor row carries its deployment; the same seq again is a no-op, a lower one or
    another hash is refused."""
    from ledger.chain import records
    from ledger.chain.records import ChainAnchorRow

    lg = share_ledger
    assert _anchored(lg, w3, operator) == 2
    assert anchor_book(lg, BOOK, w3, operator).already_anchored
    rows = records.book_anchors(lg.engine, BOOK)
    dep = rows[0].deployment
    assert [(r.seq, r.chain_id, r.address, r.deploy_tx, r.owner) for r in rows] == [
        (1, 31337, dep.address, dep.deploy_tx, operator.address),
        (2, 31337, dep.address, dep.deploy_tx, operator.address),
    ]
    assert dep.owner == operator.address and len(dep.deploy_tx) == 32
    row = ChainAnchorRow(
        deployment_id=dep.id, seq=1, entry_hash=b"\x07" * 32, tx_hash=bytes(32), recorded_us=0
    )
    with pytest.raises(Rejected, match="already anchored with another hash"):
        records.record_anchor(lg.engine, row)
    with pytest.raises(Rejected, match="must increase"):
        records.record_anchor(lg.engine, ChainAnchorRow(**{**row.model_dump(), "seq": 0}))


# ----- keys and the node -----------------------------------------------------------------


def test_anvils_public_key_is_refused_off_chain_id_31337(
    anvil_binary: Path,  # noqa: F811
    tmp_path: Path,
    share_ledger: Ledger,  # noqa: F811
) -> None:
    """Set explicitly (TOKEN_LEDGER_OPERATOR_KEY) or passed in, a published Anvil key is refused
    on a chain whose id is not 31337; the message names the address, never the key."""
    lg = share_ledger
    _seed(lg, 2)
    node = start_anvil(workdir=tmp_path / "c", chain_id=1337)
    try:
        env = cli_env(str(lg.engine.url), node.rpc_url, **{ENV_KEY: ANVIL_KEY_0})
        result = CliRunner().invoke(cli, ["chain", "sync", BOOK], env=env)
        assert result.exit_code == 2, result.output
        assert "public test key" in result.stderr and "chain id 1337" in result.stderr
        assert ANVIL_KEY_0[2:] not in result.output
        with pytest.raises(Rejected, match="public test key"):
            sync_book(lg, BOOK, connect(node.rpc_url), anvil_dev_operator(5))
    finally:
        stop_anvil(node)
    assert len(anvil_public_addresses()) == 20
    require_key_fits_chain(anvil_dev_operator(0), 31337)
    from eth_account import Account

    own = Operator(Account.from_key("0x" + "11" * 32), source="test")
    require_key_fits_chain(own, 1337)


def test_anvil_runs_without_the_operator_key_in_its_environment(
    anvil_binary: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`chain up` starts Anvil with no TOKEN_LEDGER_* variable: its /proc environ lacks them."""
    secret = "0x" + "11" * 32
    monkeypatch.setenv(ENV_KEY, secret)
    monkeypatch.setenv("TOKEN_LEDGER_OPERATOR_PASSWORD", "hunter2")
    assert ENV_KEY not in node_env() and "PATH" in node_env()
    node = start_anvil(workdir=tmp_path / "d")
    try:
        environ = Path(f"/proc/{node.pid}/environ")
        if environ.exists():
            raw = environ.read_bytes()
            assert b"TOKEN_LEDGER_" not in raw and secret.encode() not in raw
            assert b"hunter2" not in raw and b"PATH=" in raw
    finally:
        stop_anvil(node)


def test_migration_0006_copies_each_older_anchors_deployment(tmp_path: Path) -> None:
    """Anchors written before revision 0006 get their deployment's chain id, address and
    deployment tx; their owner stays unknown (NULL)."""
    from alembic import command

    from ledger.chain import records
    from ledger.storage import migrate

    lg = open_ledger(f"sqlite:///{tmp_path / 'old.db'}", clock=FixedClock(T0))
    lg.init()
    try:
        with lg.engine.begin() as conn:
            command.downgrade(migrate._config(conn), "0005")
            conn.exec_driver_sql(
                "INSERT INTO tl_chain_deployments (id, book, chain_id, genesis_hash, address,"
                " deploy_tx, deploy_block, deployed_us) VALUES (7, ?, 31337, ?, ?, ?, 1, 0)",
                (BOOK, b"\x01" * 32, "0x" + "ab" * 20, b"\x02" * 32),
            )
            conn.exec_driver_sql(
                "INSERT INTO tl_chain_anchors (deployment_id, seq, entry_hash, tx_hash,"
                " recorded_us) VALUES (7, 3, ?, ?, 0)",
                (b"\x03" * 32, b"\x04" * 32),
            )
        assert migrate.upgrade(lg.engine) == migrate.head_revision()
        (anchor,) = records.book_anchors(lg.engine, BOOK)
        assert (anchor.seq, anchor.chain_id, anchor.address, anchor.deploy_tx, anchor.owner) == (
            3,
            31337,
            "0x" + "ab" * 20,
            b"\x02" * 32,
            None,
        )
        assert anchor.deployment.owner is None
    finally:
        lg.close()
