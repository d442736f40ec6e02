"""The `proof` commands and the book proof key: a proof file verifies offline, a tampered one
exits 3, a malformed one 2; refusals write nothing; the key is created once, never changes and
never leaves the database.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from ledger.cli.main import cli
from ledger.clock import FixedClock
from ledger.services.funds import Funds
from ledger.services.ledger import open_ledger
from ledger.services.proof import book_key, liabilities_root
from ledger.storage import proof_store

T0 = datetime(2020, 3, 12, tzinfo=UTC)


def run(db: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", db, *args], catch_exceptions=False)


def _fund(url: str) -> None:
    lg = open_ledger(url, clock=FixedClock(T0))
    lg.init()
    funds = Funds(lg, clock=FixedClock(T0))
    funds.create_product("BTC3L", max_price_age=None)
    funds.set_price("BTC", "100", at=T0)
    for i, holder in enumerate(["alice", "bob", "carol", "dave", "erin"]):
        funds.mint("BTC3L", holder, cash=str(100 * (i + 1)), at=T0 + timedelta(seconds=i + 1))
    funds.redeem("BTC3L", "erin", shares="4.9", at=T0 + timedelta(seconds=10))
    funds.split("BTC3L", "2:3", at=T0 + timedelta(seconds=11))
    lg.close()


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'proof.db'}"
    _fund(url)
    return url


def _keys(url: str) -> list[Any]:
    lg = open_ledger(url)
    with lg.engine.connect() as connection:
        rows = connection.execute(text("SELECT book, proof_key FROM tl_proof_keys")).all()
    lg.close()
    return [tuple(r) for r in rows]


def test_proof_file_round_trip_and_root(db: str, tmp_path: Path) -> None:
    """`proof -o` writes a file that `proof verify` accepts; its root is `proof root`'s."""
    out = tmp_path / "alice.json"
    written = run(db, "proof", "BTC3L", "alice", "-o", str(out), "--json")
    assert written.exit_code == 0, written.output
    summary = json.loads(written.stdout)
    document = json.loads(out.read_text())
    assert summary["written"] == str(out) and summary["seq"] == document["seq"] == 13
    assert document["format"] == "token-ledger-liability-proof/1"
    assert document["chain"] is None and len(document["path"]) == document["depth"] == 3
    root = run(db, "proof", "root", "BTC3L", "--json")
    assert root.exit_code == 0, root.output
    payload = json.loads(root.stdout)
    assert payload["root"] == {**document["root"], "depth": 3}
    assert payload["sum_matches_shares_outstanding"] is True
    assert payload["holders"] == 5  # the split moved no unit: nothing to the treasury
    # The split's rounding, no holder's, is the rest of the shares outstanding.
    remainder = int(payload["remainder"])
    assert int(payload["shares_outstanding"]) == int(payload["root"]["sum"]) + remainder
    assert 0 <= remainder <= 5
    verified = run(db, "proof", "verify", str(out), "--json")
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["ok"] is True
    with_root = run(db, "proof", "verify", str(out), "--root", document["root"]["hash"])
    assert with_root.exit_code == 0 and with_root.stdout.startswith("ok: alice's ")
    piped = CliRunner().invoke(cli, ["proof", "verify", "-"], input=out.read_text())
    assert piped.exit_code == 0 and piped.stdout.startswith("ok: alice's "), piped.output
    printed = run(db, "proof", "BTC3L", "alice")
    assert json.loads(printed.stdout) == document  # the same key: the same secret and root


def test_tampered_proof_exits_3_with_one_line(db: str, tmp_path: Path) -> None:
    """Each hashed field changed in the file: exit 3 and one line naming the reason."""
    document = json.loads(run(db, "proof", "BTC3L", "bob").stdout)
    first = document["path"][0]
    bumped = {**first, "sum": str(int(first["sum"]) + 1)}
    changes = {
        "units": {"units": str(int(document["units"]) + 1)},
        "index": {"index": document["index"] ^ 1},
        "sibling hash": {
            "path": [{**document["path"][0], "hash": "11" * 32}, *document["path"][1:]]
        },
        "sibling sum": {"path": [bumped, *document["path"][1:]]},
        "negative sum": {"path": [{**document["path"][0], "sum": "-1"}, *document["path"][1:]]},
        "root sum": {"root": {**document["root"], "sum": "1"}},
        "secret": {"secret": "11" * 32},
        "holder": {"holder": "alice"},
        "depth": {"depth": 64},
    }
    for what, change in changes.items():
        path = tmp_path / f"{what}.json"
        path.write_text(json.dumps({**document, **change}))
        result = run(db, "proof", "verify", str(path))
        assert result.exit_code == 3, (what, result.output)
        assert result.stderr.count("\n") == 1 and "does not verify" in result.stderr, what
    path = tmp_path / "seq.json"
    path.write_text(json.dumps({**document, "seq": document["seq"] - 1}))
    earlier = str(document["seq"] - 1)
    other = json.loads(run(db, "proof", "root", "BTC3L", "--seq", earlier, "--json").stdout)
    result = run(db, "proof", "verify", str(path), "--root", other["root"]["hash"])
    assert result.exit_code == 3 and "published root" in result.stderr
    untouched = tmp_path / "bob.json"
    untouched.write_text(json.dumps(document))
    wrong_root = run(db, "proof", "verify", str(untouched), "--root", other["root"]["hash"])
    assert wrong_root.exit_code == 3


def test_malformed_and_unreadable_files_exit_2(db: str, tmp_path: Path) -> None:
    """Not JSON or not UTF-8, a missing or extra field, a bad hex or decimal, no file: exit 2."""
    document = json.loads(run(db, "proof", "BTC3L", "bob").stdout)
    cases: dict[str, str | bytes] = {
        "not json": "{",
        "not utf8": b"\xff\xfe",
        "a list": "[]",
        "missing": json.dumps({k: v for k, v in document.items() if k != "index"}),
        "extra": json.dumps({**document, "note": "x"}),
        "bad hex": json.dumps({**document, "secret": "zz" * 32}),
        "float units": json.dumps({**document, "units": 1.5}),
        "units text": json.dumps({**document, "units": "1e18"}),
        "bool index": json.dumps({**document, "index": True}),
        "format": json.dumps({**document, "format": "other/1"}),
        "chain": json.dumps({**document, "chain": {"chain_id": 1, "address": "nope"}}),
    }
    for what, content in cases.items():
        path = tmp_path / "case.json"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        result = run(db, "proof", "verify", str(path))
        assert result.exit_code == 2, (what, result.output)
        reason = "bad_encoding" if what == "not utf8" else "bad_input"
        assert result.stderr.count("\n") == 1 and reason in result.stderr, what
    missing = run(db, "proof", "verify", str(tmp_path / "nope.json"))
    assert missing.exit_code == 2 and missing.stderr.count("\n") == 1


def test_refusals_exit_2_and_write_nothing(db: str, tmp_path: Path) -> None:
    """Unknown product or holder, zero units, seq out of range, --chain: exit 2, no file."""
    out = tmp_path / "p.json"
    cases = [
        (("proof", "ETH3L", "alice"), "unknown_product"),
        (("proof", "BTC3L", "zed"), "unknown_account"),
        (("proof", "BTC3L", "bad id!"), "bad_input"),
        (("proof", "BTC3L", "alice", "--seq", "99"), "unknown_entry"),
        (("proof", "BTC3L", "bob", "--seq", "2"), "insufficient_shares"),
        (("proof", "BTC3L", "treasury", "--seq", "12"), "insufficient_shares"),
        (("proof", "root", "BTC3L", "--chain"), "chain"),
        (("proof", "root", "ETH3L"), "unknown_product"),
        (("proof", "root", "BTC3L", "--seq", "99"), "unknown_entry"),
    ]
    for args, reason in cases:
        result = run(db, *args, "-o", str(out)) if args[1] != "root" else run(db, *args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.count("\n") == 1 and reason in result.stderr, (args, result.stderr)
        assert not out.exists()
    assert _keys(db) == []  # no refusal created the book's key
    missing = run(db, "proof", "verify", str(out), "--chain")
    assert missing.exit_code == 2 and missing.stderr.count("\n") == 1
    assert "cannot read" in missing.stderr
    # A proof of a book without a mirror names no chain: --chain has nothing to ask.
    assert run(db, "proof", "BTC3L", "alice", "-o", str(out)).exit_code == 0
    chain = run(db, "proof", "verify", str(out), "--chain")
    assert chain.exit_code == 2 and "names no chain" in chain.stderr


def test_statement_carries_the_proof(db: str) -> None:
    """`statement --proof --json` has the proof file's object; a zero holding has null."""
    result = run(db, "statement", "BTC3L", "alice", "--proof", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["proof"] == json.loads(run(db, "proof", "BTC3L", "alice").stdout)
    assert payload["proof"]["units"] == str(int(payload["proof"]["units"]))
    erin = json.loads(run(db, "statement", "BTC3L", "erin", "--proof", "--json").stdout)
    # What erin kept of 4.987518... shares after redeeming 4.9, times 1.5 by the split.
    assert erin["proof"]["units"] == "131278572500025751"
    assert run(db, "statement", "BTC3L", "alice").stdout.count("proof") == 0


def test_book_key_is_created_once_and_guarded(db_url: str) -> None:
    """The first request creates 32 random bytes; later ones read them; no update, no delete."""
    _fund(db_url)
    lg = open_ledger(db_url)
    try:
        first = book_key(lg, "BTC3L", new_key=lambda n: b"\x01" * n)
        again = book_key(lg, "BTC3L", new_key=lambda n: b"\x02" * n)
        assert first == again == b"\x01" * 32
        with lg.engine.connect() as connection:
            assert proof_store.load_key(connection, "BTC3L") == first
            assert proof_store.save_key_once(connection, "BTC3L", b"\x03" * 32) == first
            connection.rollback()
        for statement in (
            "UPDATE tl_proof_keys SET proof_key = proof_key",
            "DELETE FROM tl_proof_keys",
        ):
            with pytest.raises(Exception, match="refused"), lg.engine.begin() as connection:
                connection.execute(text(statement))
        root = liabilities_root(lg, "BTC3L")
        assert root == liabilities_root(lg, "BTC3L")  # the same key: the same root
    finally:
        lg.close()


def test_key_stays_out_of_exports_and_output(db: str, tmp_path: Path) -> None:
    """Neither the JSON Lines export nor any proof command prints the book's proof key."""
    outputs = [
        run(db, "proof", "BTC3L", "alice").stdout,
        run(db, "proof", "root", "BTC3L", "--json").stdout,
        run(db, "proof", "root", "BTC3L").stdout,
        run(db, "statement", "BTC3L", "alice", "--proof", "--json").stdout,
    ]
    [(_book, key)] = _keys(db)
    export = tmp_path / "export.jsonl"
    exported = run(db, "export", "--book", "BTC3L", "--format", "jsonl", "-o", str(export))
    assert exported.exit_code == 0, exported.output
    outputs.append(export.read_text())
    key_hex = bytes(key).hex()
    assert all(key_hex not in text_ and key_hex.upper() not in text_ for text_ in outputs)


def test_proof_help_lists_the_three_forms(db: str) -> None:
    """`proof --help` shows the holder form, verify and root."""
    result = run(db, "proof", "--help")
    assert result.exit_code == 0
    assert "proof PRODUCT HOLDER" in result.stdout and "verify" in result.stdout
    assert "root" in result.stdout


def test_a_bad_output_path_is_refused_before_anything_is_written(db: str, tmp_path: Path) -> None:
    """`-o` into a directory that does not exist: one line, exit 2, no key made, no file."""
    target = tmp_path / "missing" / "alice.json"
    keys = _keys(db)
    refused = run(db, "proof", "BTC3L", "alice", "-o", str(target))
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1
    assert "does not exist" in refused.stderr and not target.parent.exists()
    assert _keys(db) == keys
