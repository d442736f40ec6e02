"""Proof of liabilities end to end on a real Anvil: a fund of 10,000 holders after mints,
redemptions and a split; `chain anchor` writes the journal head and the holders' root; every
holder's proof verifies in Python and through the share token's `verifyLiability` (eth_call);
a proof with any field changed fails both; a second root for the same seq is refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from web3 import Web3

from ledger.chain.anchor import anchor_book
from ledger.chain.deployment import ensure_deployed
from ledger.chain.keys import Operator
from ledger.chain.liabilities import anchor_book_liabilities, anchor_liabilities, proof_on_chain
from ledger.chain.records import active_deployment
from ledger.chain.token import TokenClient
from ledger.clock import FixedClock
from ledger.domain.proof import ChainRef, check_proof
from ledger.domain.proof.values import Node
from ledger.errors import Reason, Rejected
from ledger.services.funds import Funds
from ledger.services.ledger import open_ledger
from ledger.services.proof import liabilities_at
from tests.chain_support import cli_env
from tests.conftest import T0
from tests.test_chain_fixtures import anvil_binary, anvil_node, operator, w3  # noqa: F401

pytestmark = pytest.mark.anvil
BOOK = "BTC3L"
HOLDERS = 10_000
BATCH = 500


def _fund(tmp_path: Path) -> Funds:
    """10,000 holders minted in netted batches, a tenth of them redeeming half, a 1:2 split."""
    clock = FixedClock(T0)
    lg = open_ledger(f"sqlite:///{tmp_path / 'pol.db'}", clock=clock)
    lg.init()
    funds = Funds(lg)
    funds.create_product(BOOK, max_price_age=None)
    funds.set_price("BTC", "100")
    ids = [f"h{i:05d}" for i in range(HOLDERS)]
    for start in range(0, HOLDERS, BATCH):
        cash = [str(10 + (i * 37) % 990) for i in range(start, start + BATCH)]
        items = [
            {"side": "mint", "holder": h, "cash": c}
            for h, c in zip(ids[start : start + BATCH], cash, strict=True)
        ]
        funds.orders(BOOK, items)
    held = lg.balances(BOOK, asset=BOOK)
    redeems = [
        {"side": "redeem", "holder": h, "shares": _decimal(held[(f"holder:{h}", BOOK)] // 2, 18)}
        for h in ids[:1000:2]
    ]
    funds.orders(BOOK, redeems)
    clock.moment = T0 + timedelta(seconds=30)
    funds.split(BOOK, "1:2")
    return funds


def _eth_calls(url: str, to: str, calls: list[str], chunk: int = 500) -> list[str]:
    """Return the results of `eth_call`s of `calls` (call data) to `to`, sent in JSON-RPC
    batches of `chunk` with urllib (independent of web3)."""
    results: list[str] = []
    for start in range(0, len(calls), chunk):
        body = [
            {
                "jsonrpc": "2.0",
                "id": i,
                "method": "eth_call",
                "params": [{"to": to, "data": data}, "latest"],
            }
            for i, data in enumerate(calls[start : start + chunk], start=start)
        ]
        request = urllib.request.Request(
            url, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            replies = sorted(json.loads(response.read()), key=lambda r: r["id"])
        assert all("error" not in r for r in replies), replies[:1]
        results.extend(r["result"] for r in replies)
    return results


def _decimal(units: int, scale: int) -> str:
    whole, frac = divmod(units, 10**scale)
    return f"{whole}.{frac:0{scale}d}"


def test_every_holders_proof_verifies_in_python_and_on_chain(
    tmp_path: Path,
    w3: Web3,  # noqa: F811
    operator: Operator,  # noqa: F811
    anvil_node: object,  # noqa: F811
) -> None:
    funds = _fund(tmp_path)
    lg = funds.lg
    ensure_deployed(lg, BOOK, w3, operator)
    head = anchor_book(lg, BOOK, w3, operator)
    anchored = anchor_book_liabilities(lg, BOOK, w3, operator, seq=head.seq)
    assert not anchored.already_anchored and anchored.tx_hash is not None
    assert anchor_book_liabilities(lg, BOOK, w3, operator, seq=head.seq).already_anchored

    found = liabilities_at(lg, BOOK, seq=head.seq)
    root = found.root()
    supply = -lg.balance(BOOK, "equity:shares-outstanding", BOOK)
    assert root.sum == anchored.root.sum == supply == found.register.shares_outstanding
    assert len(found.register.units) == HOLDERS  # a 1:2 split leaves no remainder
    deployment = active_deployment(lg.engine, BOOK)
    assert deployment is not None
    chain = ChainRef(chain_id=deployment.chain_id, address=deployment.address)

    # A different root for an anchored seq is refused; the anchored one stays.
    with pytest.raises(Rejected) as caught:
        anchor_liabilities(
            lg, BOOK, w3, operator, seq=head.seq, root_hash=bytes(32), root_sum=1, depth=root.depth
        )
    assert caught.value.reason is Reason.CHAIN

    # Every holder: in Python, and by the contract in eth_calls (sent as JSON-RPC batches:
    # the same calls `proof verify --chain` makes one at a time, 10,000 of them here).
    proofs = [found.proof(holder, chain=chain) for holder in sorted(found.register.units)]
    assert all(check_proof(p, published=root) is None for p in proofs)
    contract = TokenClient(w3, chain.address).contract
    url = anvil_node.rpc_url  # type: ignore[attr-defined]
    answers = _eth_calls(
        url,
        chain.address,
        [contract.encode_abi("verifyLiability", p.contract_args()) for p in proofs],
    )
    assert len(answers) == len(proofs) and all(int(a, 16) == 1 for a in answers)
    ok, on_chain = proof_on_chain(w3, proofs[0])  # and once through the adapter's own call
    assert ok and on_chain is not None and on_chain.hash == root.hash

    proof = found.proof("h00001", chain=chain)
    sibling = proof.path[0]
    tampered = [
        replace(proof, units=proof.units + 1),
        replace(proof, units=proof.units - 1),
        replace(proof, seq=proof.seq - 1),
        replace(
            proof,
            path=(
                Node(bytes([sibling.hash[0] ^ 1]) + sibling.hash[1:], sibling.sum),
                *proof.path[1:],
            ),
        ),
        replace(proof, path=(Node(sibling.hash, sibling.sum + 1), *proof.path[1:])),
    ]
    for bad in tampered:
        assert check_proof(bad, published=root) is not None  # the root published for the seq
        assert not proof_on_chain(w3, bad)[0]


def test_the_proof_commands_check_against_the_chain(
    tmp_path: Path,
    w3: Web3,  # noqa: F811
    operator: Operator,  # noqa: F811
    anvil_node: object,  # noqa: F811
) -> None:
    """`chain anchor` anchors the root too; `proof` names the mirror; `proof verify --chain`
    exits 0 for the holder's file and 3 for a file whose units were changed; `proof root
    --chain` compares the ledger's root with the anchored one."""
    url = anvil_node.rpc_url  # type: ignore[attr-defined]
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    binary = Path(sys.executable).parent / "token-ledger"
    env = cli_env(db, url)  # Anvil's dev key on chain 31337, no inherited TOKEN_LEDGER_*

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(binary), *args], check=False, capture_output=True, text=True, env=env
        )

    for args in (
        ("init",),
        ("product", "create", BOOK, "--max-price-age", "off"),
        ("price", "BTC", "100"),
        ("mint", BOOK, "alice", "--cash", "1000"),
        ("mint", BOOK, "bob", "--cash", "250"),
        ("chain", "sync", BOOK, "--rpc-url", url),
    ):
        done = run(*args)
        assert done.returncode == 0, (args, done.stderr)
    anchored = run("chain", "anchor", BOOK, "--rpc-url", url, "--json")
    assert anchored.returncode == 0, anchored.stderr
    payload = json.loads(anchored.stdout)
    assert payload["liabilities"]["already_anchored"] is False
    proof_file = tmp_path / "alice.json"
    assert run("proof", BOOK, "alice", "-o", str(proof_file)).returncode == 0
    proof = json.loads(proof_file.read_text())
    assert proof["chain"]["chain_id"] == 31337 and proof["seq"] == payload["seq"]
    good = run("proof", "verify", str(proof_file), "--chain", "--rpc-url", url, "--json")
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["chain"]["verify_liability"] is True
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps({**proof, "units": str(int(proof["units"]) + 1)}))
    bad = run("proof", "verify", str(forged), "--chain", "--rpc-url", url)
    assert bad.returncode == 3
    root = run("proof", "root", BOOK, "--chain", "--rpc-url", url, "--json")
    assert root.returncode == 0, root.stderr
    assert json.loads(root.stdout)["chain"]["anchored_root"] == payload["liabilities"]["root"]
    assert run("mint", BOOK, "carol", "--cash", "100").returncode == 0
    unanchored = run("proof", "root", BOOK, "--chain", "--rpc-url", url)
    assert unanchored.returncode == 3 and "no liabilities root" in unanchored.stderr
