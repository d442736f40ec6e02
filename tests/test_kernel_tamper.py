"""Tamper evidence: edits made behind the library's back make `verify` exit 3 naming the entry."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ledger.cli.main import cli
from ledger.services.ledger import Ledger, open_ledger
from tests.test_kernel_support import BOOK, execute_sql, mint, move, setup_book

TOKEN_LEDGER = Path(sys.executable).parent / "token-ledger"
pytestmark = pytest.mark.usefixtures("verify_mode")


def _five_entries(lg: Ledger) -> None:
    """Post five entries; entry 3 moves 10**20 ETH from alice to bob with a memo."""
    setup_book(lg)
    lg.post(mint("holder:alice", 10**21, key="m-1"))
    lg.post(mint("holder:bob", 10**19))
    lg.post(move("holder:alice", "holder:bob", 10**20, "ETH", meta={"memo": "gift"}))
    lg.post(move("cash", "fees", 2_500_000))
    lg.post(mint("holder:alice", 2**200))
    assert lg.verify(BOOK).ok


def _unguard(lg: Ledger, table: str, op: str) -> None:
    """Remove one append-only guard the way an attacker with owner rights would."""
    if lg.engine.dialect.name == "sqlite":
        execute_sql(lg, f"DROP TRIGGER {table}_no_{op}")
    elif op == "update":
        execute_sql(lg, f"ALTER TABLE {table} DISABLE TRIGGER {table}_no_{op}")
    else:
        execute_sql(lg, f"DROP TRIGGER {table}_no_{op} ON {table}")


def _verify(db_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", db_url, *args, "verify", BOOK])


def _assert_names_seq(db_url: str, lg: Ledger, seq: int, problem: str) -> None:
    """Assert that verify (CLI text, CLI JSON, API) fails at `seq` with `problem`."""
    report = lg.verify(BOOK)
    assert (report.ok, report.first_bad_seq) == (False, seq), report
    assert problem in (report.problem or "")
    result = _verify(db_url)
    assert result.exit_code == 3, result.output + result.stderr
    assert re.fullmatch(
        rf"token-ledger: verify failed: book {BOOK} at seq {seq}: .*{re.escape(problem)}.*\n",
        result.stderr,
    ), result.stderr
    as_json = _verify(db_url, "--json")
    assert as_json.exit_code == 3
    payload = json.loads(as_json.stdout)
    assert [(p["book"], p["ok"], p["first_bad_seq"]) for p in payload] == [(BOOK, False, seq)]
    error = json.loads(as_json.stderr)
    assert error["error"] == "audit_failed"
    assert f"book {BOOK} at seq {seq}: " in error["message"]


def test_untouched_book_verifies(ledger: Ledger, db_url: str) -> None:
    """An untampered book verifies: exit 0 and the head seq in the JSON report."""
    _five_entries(ledger)
    result = _verify(db_url, "--json")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert [(p["ok"], p["entries"], p["head_seq"]) for p in payload] == [(True, 5, 5)]
    assert payload[0]["head_hash"] == ledger.head(BOOK)[1].hex()


def test_tampered_amount_names_the_entry(ledger: Ledger, db_url: str) -> None:
    """Changing one posting's amount (guard dropped first) is found at that entry's seq."""
    _five_entries(ledger)
    _unguard(ledger, "tl_postings", "update")
    execute_sql(ledger, "UPDATE tl_postings SET amount = 1000 WHERE seq = 3 AND idx = 0")
    assert next(ledger.entries(BOOK, from_seq=3)).postings[0].amount == 1000
    _assert_names_seq(db_url, ledger, 3, "hash does not match")


@pytest.mark.parametrize("stored", ["CAST(amount AS REAL)", "CAST(CAST(amount AS TEXT) AS BLOB)"])
def test_an_amount_stored_inexactly_is_named(sqlite_url: str, stored: str) -> None:
    """SQLite's amount column takes any type: the same value rewritten as a REAL (exact here,
    10**20 = 1e+20) or as the BLOB of its digits is not taken for the integer it resembles."""
    lg = open_ledger(sqlite_url)
    lg.init()
    try:
        _five_entries(lg)
        _unguard(lg, "tl_postings", "update")
        execute_sql(lg, f"UPDATE tl_postings SET amount = {stored} WHERE seq = 3 AND idx = 0")
        _assert_names_seq(sqlite_url, lg, 3, "an amount is stored as ")
    finally:
        lg.close()


def test_balanced_forgery_names_the_entry(ledger: Ledger, db_url: str) -> None:
    """A forgery that keeps the entry balanced (both postings edited) is still found."""
    _five_entries(ledger)
    _unguard(ledger, "tl_postings", "update")
    execute_sql(ledger, "UPDATE tl_postings SET amount = 5 WHERE seq = 3 AND idx = 0")
    execute_sql(ledger, "UPDATE tl_postings SET amount = -5 WHERE seq = 3 AND idx = 1")
    _assert_names_seq(db_url, ledger, 3, "hash does not match")


def test_tampered_metadata_names_the_entry(ledger: Ledger, db_url: str) -> None:
    """Editing an entry's metadata behind the library's back is found at that seq."""
    _five_entries(ledger)
    _unguard(ledger, "tl_entries", "update")
    execute_sql(
        ledger, """UPDATE tl_entries SET metadata_json = '[["memo","forged"]]' WHERE seq = 3"""
    )
    _assert_names_seq(db_url, ledger, 3, "hash does not match")


def test_deleted_entry_is_a_gap_at_its_seq(ledger: Ledger, db_url: str) -> None:
    """Deleting an entry and its postings leaves a gap that verify names."""
    _five_entries(ledger)
    _unguard(ledger, "tl_entries", "delete")
    _unguard(ledger, "tl_postings", "delete")
    execute_sql(ledger, "DELETE FROM tl_postings WHERE seq = 3")
    execute_sql(ledger, "DELETE FROM tl_entries WHERE seq = 3")
    _assert_names_seq(db_url, ledger, 3, "sequence gap: expected 3, found 4")


def test_deleted_postings_name_the_entry(ledger: Ledger, db_url: str) -> None:
    """Deleting one posting of an entry is found at that entry."""
    _five_entries(ledger)
    _unguard(ledger, "tl_postings", "delete")
    execute_sql(ledger, "DELETE FROM tl_postings WHERE seq = 4 AND idx = 1")
    _assert_names_seq(db_url, ledger, 4, "hash does not match")


def test_deleted_last_entry_names_its_seq(ledger: Ledger, db_url: str) -> None:
    """Deleting the newest entry (head left as it was) is named as that entry's seq."""
    _five_entries(ledger)
    _unguard(ledger, "tl_entries", "delete")
    _unguard(ledger, "tl_postings", "delete")
    execute_sql(ledger, "DELETE FROM tl_postings WHERE seq = 5")
    execute_sql(ledger, "DELETE FROM tl_entries WHERE seq = 5")
    _assert_names_seq(db_url, ledger, 5, "entry 5 is missing")


def test_tampered_balance_cache_is_found(ledger: Ledger, db_url: str) -> None:
    """A stored balance that disagrees with the postings fails verify and names the account."""
    _five_entries(ledger)
    execute_sql(
        ledger, "UPDATE tl_balances SET amount = 7 WHERE account = 'fees' AND asset = 'USDT'"
    )
    report = ledger.verify(BOOK)
    assert not report.ok
    assert report.problem == "stored balance of fees USDT is 7, postings say 2500000"
    result = _verify(db_url)
    assert result.exit_code == 3
    assert "stored balance of fees USDT is 7" in result.stderr


def test_sqlite_replace_from_a_foreign_connection_is_found(sqlite_url: str, tmp_path: Path) -> None:
    """INSERT OR REPLACE from a connection without recursive_triggers is caught by verify."""
    lg = open_ledger(sqlite_url)
    lg.init()
    _five_entries(lg)
    lg.close()
    with sqlite3.connect(tmp_path / "ledger.db") as raw:  # no PRAGMA recursive_triggers
        raw.execute(
            "INSERT OR REPLACE INTO tl_postings (book, seq, idx, account, asset, amount)"
            " VALUES ('B', 2, 0, 'holder:bob', 'ETH', 1)"
        )
    lg = open_ledger(sqlite_url)
    try:
        _assert_names_seq(sqlite_url, lg, 2, "hash does not match")
    finally:
        lg.close()


def test_installed_binary_exits_3_naming_the_entry(sqlite_url: str) -> None:
    """The installed `token-ledger` binary exits 3 and names the tampered entry's seq."""
    lg = open_ledger(sqlite_url)
    lg.init()
    _five_entries(lg)
    _unguard(lg, "tl_postings", "update")
    execute_sql(lg, "UPDATE tl_postings SET amount = 1000 WHERE seq = 3 AND idx = 0")
    lg.close()
    done = subprocess.run(
        [str(TOKEN_LEDGER), "--db", sqlite_url, "verify", BOOK],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith(f"token-ledger: verify failed: book {BOOK} at seq 3: ")
    assert len(done.stderr.splitlines()) == 1
    assert "FAILED at seq 3" in done.stdout


def test_entry_appended_behind_the_library_is_found(ledger: Ledger, db_url: str) -> None:
    """A correctly chained entry inserted by SQL (head not moved) is found at its seq."""
    from sqlalchemy import text

    from ledger.domain.canonical import seal
    from ledger.domain.journal import to_micros

    _five_entries(ledger)
    head_seq, head_hash = ledger.head(BOOK)
    forged = seal(
        move("holder:alice", "holder:bob", 10**20, "ETH"),
        seq=head_seq + 1,
        recorded_us=to_micros(ledger.clock.now()),
        prev_hash=head_hash,
        definitions=ledger.definitions(BOOK),
    )
    with ledger.engine.begin() as conn:  # INSERT is allowed: the journal is append-only
        conn.execute(
            text(
                "INSERT INTO tl_entries (book, seq, kind, effective_us, recorded_us, idem_key,"
                " request_digest, reverses, metadata_json, prev_hash, hash) VALUES"
                " (:book, :seq, 'transfer', :eff, :rec, NULL, :digest, NULL, '[]', :prev, :hash)"
            ),
            {
                "book": BOOK,
                "seq": forged.seq,
                "eff": to_micros(forged.draft.effective_at),
                "rec": to_micros(forged.recorded_at),
                "digest": b"",
                "prev": head_hash,
                "hash": forged.hash,
            },
        )
        for idx, p in enumerate(forged.postings):
            conn.execute(
                text(
                    "INSERT INTO tl_postings (book, seq, idx, account, asset, amount)"
                    " VALUES (:book, :seq, :idx, :account, :asset, :amount)"
                ),
                {
                    "book": BOOK,
                    "seq": forged.seq,
                    "idx": idx,
                    "account": p.account,
                    "asset": p.asset,
                    "amount": p.amount if db_url.startswith("postgresql") else str(p.amount),
                },
            )
    _assert_names_seq(db_url, ledger, head_seq + 1, "")


def test_verify_every_book_names_the_tampered_one(ledger: Ledger, db_url: str) -> None:
    """`verify` with no book checks every book and names the tampered book and its seq."""
    _five_entries(ledger)
    setup_book(ledger, "C")
    ledger.post(mint("holder:alice", 7, book="C"))
    ledger.post(mint("holder:bob", 9, book="C"))
    _unguard(ledger, "tl_postings", "update")
    execute_sql(
        ledger, "UPDATE tl_postings SET amount = 8 WHERE book = 'C' AND seq = 2 AND idx = 0"
    )
    result = CliRunner().invoke(cli, ["--db", db_url, "--json", "verify"])
    assert result.exit_code == 3
    payload = json.loads(result.stdout)
    assert [(p["book"], p["ok"], p["first_bad_seq"]) for p in payload] == [
        ("B", True, None),
        ("C", False, 2),
    ]
    assert "book C at seq 2: " in json.loads(result.stderr)["message"]
