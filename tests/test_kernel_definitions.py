"""Entries commit to the definitions they use: a changed scale or rule is found by `verify` and
refused by `replay`; books of encoding 1 stay verifiable; reversals are audited."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger.cli.main import cli
from ledger.domain.canonical import GENESIS_HASH, seal
from ledger.domain.journal import to_micros
from ledger.errors import Reason, Rejected
from ledger.services.exports import export_to_path, replay_file
from ledger.services.ledger import Ledger, open_ledger
from tests.test_kernel_support import BOOK, execute_sql, mint, move, row_counts, setup_book

pytestmark = pytest.mark.usefixtures("verify_mode")


def _unguard(lg: Ledger, table: str) -> None:
    """Remove the update guard of `table` as an owner of the database could."""
    if lg.engine.dialect.name == "sqlite":
        execute_sql(lg, f"DROP TRIGGER {table}_no_update")
    else:
        execute_sql(lg, f"ALTER TABLE {table} DISABLE TRIGGER {table}_no_update")


def _book(lg: Ledger) -> None:
    setup_book(lg)
    lg.post(mint("holder:alice", 10**21))
    lg.post(move("cash", "fees", 2_500_000))  # the first entry in USDT is seq 2
    lg.post(move("holder:alice", "holder:bob", 10**20, "ETH"))
    assert lg.verify(BOOK).ok


@pytest.mark.parametrize(
    ("table", "change", "seq"),
    [
        ("tl_assets", "UPDATE tl_assets SET scale = 2 WHERE code = 'USDT'", 2),
        ("tl_accounts", "UPDATE tl_accounts SET rule = 'none' WHERE code = 'holder:alice'", 1),
        ("tl_accounts", "UPDATE tl_accounts SET type = 'asset' WHERE code = 'fees'", 2),
    ],
    ids=["USDT scale 6 -> 2", "non_negative removed", "account type changed"],
)
def test_verify_finds_a_changed_definition(
    ledger: Ledger, db_url: str, table: str, change: str, seq: int
) -> None:
    """A definition changed behind the guards breaks the hash of the first entry using it."""
    _book(ledger)
    _unguard(ledger, table)
    execute_sql(ledger, change)
    fresh = open_ledger(db_url)
    try:
        report = fresh.verify(BOOK)
        assert (report.ok, report.first_bad_seq) == (False, seq), report
        assert "definition of an asset or account" in (report.problem or "")
        result = CliRunner().invoke(cli, ["--db", db_url, "verify", BOOK])
        assert result.exit_code == 3
        assert result.stderr.startswith(f"token-ledger: verify failed: book {BOOK} at seq {seq}")
    finally:
        fresh.close()


@pytest.mark.parametrize(
    ("edit", "line"),
    [
        (lambda h: h["assets"][1].update(scale="2"), 3),  # USDT, used first by seq 2
        (lambda h: h["accounts"][3].update(rule="none"), 2),  # holder:alice
    ],
    ids=["USDT scale 6 -> 2", "non_negative removed"],
)
def test_replay_refuses_an_export_with_a_changed_definition(
    ledger: Ledger, tmp_path: Path, edit: object, line: int
) -> None:
    """The issue's forgery: a header with another scale or no rule is refused, nothing written."""
    _book(ledger)
    path = tmp_path / "book.jsonl"
    export_to_path(ledger, BOOK, "jsonl", path)
    lines = path.read_text(encoding="utf-8").split("\n")
    header = json.loads(lines[0])
    assert [a["code"] for a in header["assets"]] == ["ETH", "USDT"]
    assert header["accounts"][3]["code"] == "holder:alice"
    edit(header)  # type: ignore[operator]
    lines[0] = json.dumps(header, sort_keys=True, separators=(",", ":"))
    path.write_text("\n".join(lines), encoding="utf-8")
    target = open_ledger(f"sqlite:///{tmp_path / 'replayed.db'}")
    try:
        target.init()
        with pytest.raises(Rejected) as caught:
            replay_file(target, path)
        assert caught.value.reason is Reason.HASH_MISMATCH
        assert caught.value.message.startswith(f"line {line}: entry {line - 1} does not match")
        assert row_counts(target) == (0, 0) and target.books() == []
    finally:
        target.close()


def test_a_book_of_encoding_1_verifies_replays_and_continues_in_encoding_2(
    ledger: Ledger, tmp_path: Path
) -> None:
    """Entries hashed before encoding 2 (restored as they were) verify; new ones are encoding 2,
    and an export of the mixed chain replays to the same head."""
    setup_book(ledger)
    definitions = ledger.definitions(BOOK)
    old = [mint("holder:alice", 10**21), move("holder:alice", "holder:bob", 5, "ETH")]
    sealed, prev = [], GENESIS_HASH
    for seq, d in enumerate(old, start=1):
        entry = seal(
            d, seq=seq, recorded_us=seq, prev_hash=prev, definitions=definitions, encoding=1
        )
        sealed.append(entry)
        prev = entry.hash
    assert ledger.restore(BOOK, sealed) == 2
    assert ledger.verify(BOOK).ok
    third = ledger.post(move("holder:bob", "holder:alice", 1, "ETH"))
    resealed = seal(
        third.draft,
        seq=3,
        recorded_us=to_micros(third.recorded_at),
        prev_hash=prev,
        definitions=definitions,
    )
    assert third.hash == resealed.hash  # the new entry is of encoding 2
    report = ledger.verify(BOOK)
    assert report.ok and report.head_seq == 3
    path = tmp_path / "mixed.jsonl"
    export_to_path(ledger, BOOK, "jsonl", path)
    target = open_ledger(f"sqlite:///{tmp_path / 'replayed.db'}")
    try:
        target.init()
        replayed = replay_file(target, path)
        assert (replayed.head_seq, replayed.head_hash) == (3, report.head_hash)
        assert target.verify(BOOK).ok
    finally:
        target.close()


def test_restore_refuses_encoding_1_after_encoding_2(ledger: Ledger) -> None:
    """Along a chain the encoding never goes back: a legacy entry after a new one is refused."""
    setup_book(ledger)
    definitions = ledger.definitions(BOOK)
    first = seal(
        mint("holder:alice", 10),
        seq=1,
        recorded_us=1,
        prev_hash=GENESIS_HASH,
        definitions=definitions,
    )
    second = seal(
        mint("holder:alice", 10),
        seq=2,
        recorded_us=2,
        prev_hash=first.hash,
        definitions=definitions,
        encoding=1,
    )
    with pytest.raises(Rejected) as caught:
        ledger.restore(BOOK, [first, second])
    assert caught.value.reason is Reason.HASH_MISMATCH
    assert row_counts(ledger) == (0, 0)


def test_verify_finds_a_reversal_that_does_not_undo_its_target(ledger: Ledger, db_url: str) -> None:
    """A reversal rewritten (and re-hashed) to negate only part of its target is a finding."""
    setup_book(ledger)
    ledger.post(mint("holder:alice", 10**21))
    ledger.post(move("cash", "fees", 7))
    undo = ledger.reverse(BOOK, 2)
    assert ledger.verify(BOOK).ok
    # Re-hash a forged chain in which entry 3 claims to reverse entry 1 instead of 2.
    definitions = ledger.definitions(BOOK)
    forged = seal(
        replace(undo.draft, reverses=1),
        seq=3,
        recorded_us=to_micros(undo.recorded_at),
        prev_hash=undo.prev_hash,
        definitions=definitions,
    )
    _unguard(ledger, "tl_entries")
    digest = _hex(ledger, forged.hash)
    execute_sql(ledger, f"UPDATE tl_entries SET reverses = 1, hash = {digest} WHERE seq = 3")
    execute_sql(ledger, f"UPDATE tl_books SET head_hash = {digest}")
    fresh = open_ledger(db_url)
    try:
        report = fresh.verify(BOOK)
    finally:
        fresh.close()
    assert (report.ok, report.first_bad_seq) == (False, 3), report
    assert report.problem == "does not negate the postings of entry 1 exactly"


def _hex(lg: Ledger, digest: bytes) -> str:
    """Return a SQL literal of `digest` in the ledger's dialect."""
    if lg.engine.dialect.name == "sqlite":
        return f"X'{digest.hex()}'"
    return f"'\\x{digest.hex()}'::bytea"
