"""`token-ledger chain up/down` manage a real Anvil; the sync records hold exact uint256 amounts."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlmodel import Session, select

from ledger.chain.anchor import verify_anchors
from ledger.chain.anvil import load_node, pid_alive
from ledger.chain.records import (
    ChainDeploymentRow,
    ChainTxRow,
    active_deployment,
    count_txs,
    record_deployment,
    record_txs,
)
from ledger.cli.chain_cmds import chain_connection_options, connect_chain
from ledger.cli.common import handle_errors
from ledger.cli.main import cli
from ledger.clock import FixedClock
from ledger.domain.journal import Account, AccountType
from ledger.errors import Reason, Rejected
from ledger.services.ledger import open_ledger
from tests.chain_support import mint_draft, open_holders, open_share_book
from tests.conftest import T0
from tests.test_chain_fixtures import anvil_binary  # noqa: F401

UINT256_MAX = 2**256 - 1
BOOK = "BTC3L"


@pytest.mark.anvil
def test_chain_up_down_keeps_the_chain_across_restarts(
    anvil_binary: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """`chain up` starts Anvil on loopback; `down` saves its state and the next `up` reloads it."""
    chain_dir = tmp_path / "chain"
    runner = CliRunner()
    args = ["--chain-dir", str(chain_dir), "--json"]
    up = runner.invoke(cli, ["chain", "up", *args])
    assert up.exit_code == 0, up.output
    first = json.loads(up.output)
    try:
        assert first["started"] and first["rpc_url"].startswith("http://127.0.0.1:")
        again = json.loads(runner.invoke(cli, ["chain", "up", *args]).output)
        assert not again["started"] and again["pid"] == first["pid"]
        from ledger.chain.rpc import connect

        w3 = connect(first["rpc_url"])
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        mined = w3.eth.block_number
        genesis = w3.eth.get_block(0)["hash"]
    finally:
        down = runner.invoke(cli, ["chain", "down", *args])
    assert down.exit_code == 0 and json.loads(down.output)["stopped"]
    assert not pid_alive(first["pid"]) and load_node(chain_dir) is None
    second = json.loads(runner.invoke(cli, ["chain", "up", *args]).output)
    try:
        w3 = connect(second["rpc_url"])
        assert w3.eth.block_number == mined and w3.eth.get_block(0)["hash"] == genesis
    finally:
        runner.invoke(cli, ["chain", "down", *args])
    assert json.loads(runner.invoke(cli, ["chain", "down", *args]).output)["stopped"] is False


@pytest.mark.postgres
def test_sync_records_keep_uint256_amounts_on_postgres(pg_url: str) -> None:
    """Migration 0002 creates the mirror's tables on PostgreSQL with exact uint256 amounts."""
    lg = open_ledger(pg_url)
    try:
        assert lg.init() >= "0002"
        dep = record_deployment(
            lg.engine,
            ChainDeploymentRow(
                book="BTC3L",
                chain_id=31337,
                genesis_hash=b"\x01" * 32,
                address="0x" + "ab" * 20,
                deploy_tx=b"\x02" * 32,
                deploy_block=1,
                deployed_us=0,
            ),
        )
        row = ChainTxRow(
            deployment_id=dep.id,
            kind="adjust",
            target_seq=7,
            holders=1,
            units_minted=UINT256_MAX,
            units_burned=0,
            tx_hash=b"\x03" * 32,
            gas_used=1,
            succeeded=1,
            recorded_us=0,
        )
        record_txs(lg.engine, [row])
        with Session(lg.engine) as session:
            stored = session.exec(select(ChainTxRow)).one()
        assert stored.units_minted == UINT256_MAX and count_txs(lg.engine, dep.id) == 1
        assert active_deployment(lg.engine, "BTC3L") == dep
    finally:
        lg.close()


def _init_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    lg = open_ledger(url)
    try:
        lg.init()
    finally:
        lg.close()
    return url


def test_status_refuses_a_non_loopback_url(tmp_path: Path) -> None:
    """`chain status` refuses a non-loopback --rpc-url (one line, exit 2), never "not reachable"."""
    db = _init_db(tmp_path)
    runner = CliRunner()
    refused = runner.invoke(
        cli, ["--db", db, "chain", "status", "--rpc-url", "http://10.1.2.3:8545"]
    )
    assert refused.exit_code == 2, refused.output
    assert refused.stdout == "" and len(refused.stderr.splitlines()) == 1
    assert "loopback" in refused.stderr
    # A loopback node that does not answer is still a status, not an error.
    silent = runner.invoke(
        cli, ["--db", db, "chain", "status", "--rpc-url", "http://127.0.0.1:9", "--json"]
    )
    assert silent.exit_code == 0, silent.output
    assert json.loads(silent.stdout)["chain"] is None


@pytest.mark.parametrize(
    "command",
    [["deploy"], ["sync"], ["reconcile"], ["anchor"], ["status"]],
)
def test_chain_commands_refuse_an_unknown_book(tmp_path: Path, command: list[str]) -> None:
    """Every chain command on a book that does not exist refuses unknown_book, one line, exit 2."""
    db = _init_db(tmp_path)
    lg = open_ledger(db)
    try:
        lg.open_account(Account("CASH", "assets:bank", AccountType.ASSET))
    finally:
        lg.close()
    runner = CliRunner()
    # The book is checked before any chain is looked for: no node runs here.
    args = ["--db", db, "chain", *command]
    env = {"TOKEN_LEDGER_RPC_URL": "", "TOKEN_LEDGER_CHAIN_DIR": str(tmp_path / "none")}
    missing = runner.invoke(cli, [*args, "NOPE"], env=env)
    assert missing.exit_code == 2, missing.output
    assert missing.stderr.splitlines() == [
        "token-ledger: unknown_book: no book 'NOPE' in this database"
    ]
    not_fund = runner.invoke(cli, [*args, "CASH"], env=env)
    assert not_fund.exit_code == 2, not_fund.output
    assert len(not_fund.stderr.splitlines()) == 1 and "unknown_product" in not_fund.stderr


def test_library_refuses_an_unknown_book(tmp_path: Path) -> None:
    """verify_anchors on a book that does not exist refuses unknown_book before any chain use."""
    lg = open_ledger(_init_db(tmp_path))
    try:
        with pytest.raises(Rejected) as err:
            verify_anchors(lg, "NOPE", rpc_url="http://127.0.0.1:9")
        assert err.value.reason is Reason.UNKNOWN_BOOK
    finally:
        lg.close()


@pytest.mark.anvil
def test_connection_options_find_the_chain_of_chain_up_by_its_dir(
    anvil_binary: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A command with chain_connection_options finds `chain up --chain-dir X` without --rpc-url."""
    monkeypatch.delenv("TOKEN_LEDGER_RPC_URL", raising=False)
    monkeypatch.delenv("TOKEN_LEDGER_CHAIN_DIR", raising=False)
    chain_dir = str(tmp_path / "chain")
    db = _init_db(tmp_path)
    lg = open_ledger(db, clock=FixedClock(T0))
    open_share_book(lg, BOOK)
    open_holders(lg, BOOK, ["a"])
    lg.post(mint_draft(BOOK, {"a": 5}, at=T0))

    @click.command()
    @click.argument("book")
    @chain_connection_options
    @handle_errors
    def check(
        book: str, rpc_url: str | None, allow_remote_rpc: bool, chain_dir: str | None
    ) -> None:
        w3 = connect_chain(rpc_url=rpc_url, allow_remote_rpc=allow_remote_rpc, chain_dir=chain_dir)
        report = verify_anchors(lg, book, w3=w3)
        click.echo(f"{report.anchors} {report.ok}")

    runner = CliRunner()
    assert runner.invoke(cli, ["chain", "up", "--chain-dir", chain_dir]).exit_code == 0
    try:
        for step in ("sync", "anchor"):
            done = runner.invoke(cli, ["--db", db, "chain", step, BOOK, "--chain-dir", chain_dir])
            assert done.exit_code == 0, done.output
        found = runner.invoke(check, [BOOK, "--chain-dir", chain_dir])
        assert found.exit_code == 0 and found.stdout == "1 True\n", found.output
        assert verify_anchors(lg, BOOK, chain_dir=chain_dir).anchors == 1
        elsewhere = runner.invoke(check, [BOOK, "--chain-dir", str(tmp_path / "elsewhere")])
        assert elsewhere.exit_code == 2 and "no chain" in elsewhere.stderr
        remote = runner.invoke(check, [BOOK, "--rpc-url", "http://10.1.2.3:8545"])
        assert remote.exit_code == 2 and "loopback" in remote.stderr
    finally:
        runner.invoke(cli, ["chain", "down", "--chain-dir", chain_dir])
        lg.close()


@pytest.mark.anvil
def test_verify_chain_finds_the_chain_of_chain_up_by_its_dir(
    anvil_binary: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`token-ledger verify BOOK --chain --chain-dir X` checks the anchors on `chain up`'s node."""
    monkeypatch.delenv("TOKEN_LEDGER_RPC_URL", raising=False)
    monkeypatch.delenv("TOKEN_LEDGER_CHAIN_DIR", raising=False)
    chain_dir = str(tmp_path / "chain")
    db = _init_db(tmp_path)
    lg = open_ledger(db, clock=FixedClock(T0))
    try:
        open_share_book(lg, BOOK)
        open_holders(lg, BOOK, ["a"])
        lg.post(mint_draft(BOOK, {"a": 5}, at=T0))
    finally:
        lg.close()
    runner = CliRunner()
    assert runner.invoke(cli, ["chain", "up", "--chain-dir", chain_dir]).exit_code == 0
    try:
        for step in ("sync", "anchor"):
            done = runner.invoke(cli, ["--db", db, "chain", step, BOOK, "--chain-dir", chain_dir])
            assert done.exit_code == 0, done.output
        verified = runner.invoke(
            cli, ["--db", db, "--json", "verify", BOOK, "--chain", "--chain-dir", chain_dir]
        )
        assert verified.exit_code == 0, verified.output
        assert json.loads(verified.stdout)[0]["chain"]["anchors"] == 1
    finally:
        runner.invoke(cli, ["chain", "down", "--chain-dir", chain_dir])
