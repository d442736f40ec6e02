"""The kernel CLI: stable --json, export/replay, --help."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger.cli.main import cli
from ledger.domain.canonical import GENESIS_HASH, definitions_of, seal
from ledger.domain.journal import (
    Account,
    AccountType,
    BalanceRule,
    EntryDraft,
    Posting,
    make_metadata,
    to_micros,
)
from ledger.domain.money import Asset
from ledger.services.ledger import Ledger, open_ledger
from ledger.storage.migrate import head_revision
from tests.test_kernel_cli_support import (
    BIG,
    BIG_18DP,
    ENTRY,
    NOW,
    SETUP,
    assert_one_line_refusal,
    entry_text,
    ok,
    run,
    setup_cli,
)
from tests.test_kernel_support import row_counts


def _strings_only(value: Any, path: str = "") -> None:
    """Assert no amount in a JSON payload is a number (all are decimal strings)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("units", "amount") or path.endswith("totals"):
                assert isinstance(item, str), f"{path}.{key} is {item!r}"
            _strings_only(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            _strings_only(item, path)
    else:
        assert not isinstance(value, float), f"{path} is a float"


def _expected_entry() -> dict[str, Any]:
    draft = EntryDraft(
        book="main",
        kind="mint",
        effective_at=datetime(2020, 3, 12, tzinfo=UTC),
        postings=tuple(
            Posting(p["account"], p["asset"], int(p["amount"])) for p in ENTRY["postings"]
        ),
        metadata=make_metadata(ENTRY["metadata"]),
        idempotency_key="mint-1",
    )
    definitions = definitions_of(
        [Asset("USDT", 6), Asset("BTC3L", 18)],
        [
            Account("main", "holder:alice", AccountType.LIABILITY, BalanceRule.NON_NEGATIVE),
            Account("main", "equity:shares-outstanding", AccountType.EQUITY),
            Account("main", "cash", AccountType.ASSET),
            Account("main", "fees", AccountType.INCOME),
        ],
    )  # as SETUP opens them
    sealed = seal(
        draft, seq=1, recorded_us=to_micros(NOW), prev_hash=GENESIS_HASH, definitions=definitions
    )
    return {
        "book": "main",
        "seq": 1,
        "kind": "mint",
        "effective_at": "2020-03-12T00:00:00Z",
        "recorded_at": "2020-03-12T12:00:00Z",
        "key": "mint-1",
        "reverses": None,
        "metadata": {"memo": "first mint", "nav": "10.000000"},
        "postings": [
            {
                "account": "holder:alice",
                "asset": "BTC3L",
                "units": str(BIG),
                "amount": BIG_18DP,
            },
            {
                "account": "equity:shares-outstanding",
                "asset": "BTC3L",
                "units": str(-BIG),
                "amount": "-" + BIG_18DP,
            },
            {"account": "cash", "asset": "USDT", "units": "2500000", "amount": "2.500000"},
            {"account": "fees", "asset": "USDT", "units": "-2500000", "amount": "-2.500000"},
        ],
        "prev_hash": "00" * 32,
        "hash": sealed.hash.hex(),
    }


# --- --json is a stable contract -------------------------------------------------------------


def test_setup_commands_print_stable_json(sqlite_url: str) -> None:
    """init, asset and account commands print exactly the documented JSON."""
    assert ok(sqlite_url, "init") == {"schema": head_revision(), "db": sqlite_url}
    assert ok(sqlite_url, "init") == {"schema": head_revision(), "db": sqlite_url}  # idempotent
    assert ok(sqlite_url, "asset", "add", "USDT", "--decimals", "6") == {
        "code": "USDT",
        "decimals": 6,
    }
    assert ok(sqlite_url, *SETUP[1]) == {"code": "BTC3L", "decimals": 18}
    assert ok(sqlite_url, "asset", "list") == [
        {"code": "BTC3L", "decimals": 18},
        {"code": "USDT", "decimals": 6},
    ]
    assert ok(sqlite_url, *SETUP[5]) == {
        "book": "main",
        "code": "holder:alice",
        "type": "liability",
        "rule": "non_negative",
    }
    assert ok(sqlite_url, "account", "open", "cash", "--type", "asset", "--book", "BTC3L") == {
        "book": "BTC3L",
        "code": "cash",
        "type": "asset",
        "rule": "none",
    }
    assert ok(sqlite_url, "account", "list") == [
        {"code": "holder:alice", "type": "liability", "rule": "non_negative"}
    ]


def test_post_prints_the_entry_as_stable_json(db: str) -> None:
    """post --json prints the recorded entry; amounts are strings; the hash is the chain's."""
    printed = ok(db, "post", "-", stdin=json.dumps(ENTRY))
    assert printed == _expected_entry()
    _strings_only(printed)
    again = ok(db, "post", "-", stdin=json.dumps(ENTRY))  # idempotent retry: the same entry
    assert again == printed
    assert ok(db, "history", "holder:alice") == [printed]


def test_reverse_balances_history_verify_print_stable_json(db: str, lg: Ledger) -> None:
    """reverse, balances (now, as of seq, as of time), history and verify print stable JSON."""
    ok(db, "post", "-", stdin=json.dumps(ENTRY))
    payout = dict(ENTRY, key="pay-1", kind="transfer", effective_at="2020-03-14T00:00:00+02:00")
    payout["postings"] = [
        {"account": "holder:alice", "asset": "BTC3L", "amount": "-5"},
        {"account": "holder:bob", "asset": "BTC3L", "amount": "5"},
    ]
    assert ok(db, "post", "-", stdin=json.dumps(payout))["seq"] == 2
    reversal = ok(db, "reverse", "2", "--key", "fix-2", "--at", "2020-03-15T00:00:00Z")
    assert {k: reversal[k] for k in ("seq", "kind", "reverses", "key", "effective_at")} == {
        "seq": 3,
        "kind": "reversal",
        "reverses": 2,
        "key": "fix-2",
        "effective_at": "2020-03-15T00:00:00Z",
    }
    assert [(p["account"], p["units"]) for p in reversal["postings"]] == [
        ("holder:alice", "5"),
        ("holder:bob", "-5"),
    ]
    assert ok(db, "reverse", "2", "--key", "fix-2") == reversal  # retry returns the original

    now = ok(db, "balances")
    assert now == {
        "book": "main",
        "balances": [
            {"account": "cash", "asset": "USDT", "units": "2500000", "amount": "2.500000"},
            {
                "account": "equity:shares-outstanding",
                "asset": "BTC3L",
                "units": str(-BIG),
                "amount": _expected_entry()["postings"][1]["amount"],
            },
            {"account": "fees", "asset": "USDT", "units": "-2500000", "amount": "-2.500000"},
            {
                "account": "holder:alice",
                "asset": "BTC3L",
                "units": str(BIG),
                "amount": _expected_entry()["postings"][0]["amount"],
            },
        ],
        "totals": {"BTC3L": "0", "USDT": "0"},
    }
    _strings_only(now)
    as_of_2 = ok(db, "balances", "--as-of-seq", "2", "--account", "holder:bob")
    assert as_of_2["balances"] == [
        {"account": "holder:bob", "asset": "BTC3L", "units": "5", "amount": "0.000000000000000005"}
    ]
    at_time = ok(db, "balances", "--at", "2020-03-13T22:00:00Z", "--account", "holder:bob")
    assert [b["units"] for b in at_time["balances"]] == ["5"]  # 2020-03-14T00:00+02:00
    before = ok(db, "balances", "--at", "2020-03-13T21:59:59Z", "--account", "holder:bob")
    assert before["balances"] == []
    assert [e["seq"] for e in ok(db, "history", "holder:bob")] == [2, 3]
    head_seq, head_hash = lg.head("main")
    assert ok(db, "verify") == [
        {
            "book": "main",
            "ok": True,
            "entries": 3,
            "head_seq": head_seq,
            "head_hash": head_hash.hex(),
            "first_bad_seq": None,
            "problem": None,
        }
    ]


def test_an_entry_prints_the_same_from_post_retry_and_history(db: str) -> None:
    """An entry given with a +02:00 offset prints identically (UTC) from post, retry and history."""
    offset = entry_text(effective_at="2020-03-14T00:30:00.000001+02:00")
    printed = ok(db, "post", "-", stdin=offset)
    assert printed["effective_at"] == "2020-03-13T22:30:00.000001Z"
    assert ok(db, "post", "-", stdin=offset) == printed
    assert ok(db, "history", "cash") == [printed]
    text = run(db, "history", "cash")
    assert text.stdout.startswith("#1 mint 2020-03-13 22:30:00Z\n")


def test_same_commands_give_identical_json_on_two_databases(tmp_path: Path) -> None:
    """The JSON output is deterministic: the same commands at the same time print the same."""
    outputs = []
    for name in ("one", "two"):
        db = f"sqlite:///{tmp_path / name}.db"
        setup_cli(db)
        outputs.append(
            [
                ok(db, "post", "-", stdin=json.dumps(ENTRY)),
                ok(db, "reverse", "1", "--at", "2020-03-13T00:00:00Z"),
                ok(db, "balances"),
                ok(db, "history", "cash"),
                ok(db, "verify", "main"),
            ]
        )
    assert outputs[0] == outputs[1]


# --- export, replay ----------------------------------------------------------------------------


def test_export_then_replay_reproduces_the_head(db_url: str, tmp_path: Path) -> None:
    """export --format jsonl then replay into a new database gives the identical head hash."""
    setup_cli(db_url)
    ok(db_url, "post", "-", stdin=json.dumps(ENTRY))
    ok(db_url, "reverse", "1", "--key", "fix-1", "--at", "2020-03-13T00:00:00Z")
    ok(db_url, "post", "-", stdin=entry_text(key="mint-2", metadata={"memo": "ünïcode ✓"}))
    source = ok(db_url, "verify", "main")[0]
    exported = tmp_path / "main.jsonl"
    result = run(db_url, "export", "--book", "main", "--format", "jsonl", "-o", str(exported))
    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"exported 3 entries of main to {exported}\n"
    to_stdout = run(db_url, "export", "--book", "main", "--format", "jsonl")
    assert to_stdout.exit_code == 0 and to_stdout.stdout == exported.read_text(encoding="utf-8")
    assert len(exported.read_text(encoding="utf-8").splitlines()) == 5  # header, 3, trailer

    target = f"sqlite:///{tmp_path / 'replayed.db'}"
    ok(target, "init")
    replayed = ok(target, "replay", str(exported))
    assert replayed == source
    assert ok(target, "verify", "main") == [source]
    assert ok(target, "balances") == ok(db_url, "balances")
    assert ok(target, "history", "holder:alice") == ok(db_url, "history", "holder:alice")
    again = run(target, "replay", str(exported))  # the book exists: refused, nothing written
    assert again.exit_code == 2
    assert ok(target, "verify", "main") == [source]


def _tampered_export(db: str, tmp_path: Path) -> tuple[Path, str]:
    """Return (an export whose amount was edited, an initialised empty target database)."""
    ok(db, "post", "-", stdin=json.dumps(ENTRY))
    exported = tmp_path / "main.jsonl"
    assert run(db, "export", "-o", str(exported)).exit_code == 0
    text = exported.read_text(encoding="utf-8")
    exported.write_text(text.replace('"amount":"2500000"', '"amount":"2500001"'), encoding="utf-8")
    target = f"sqlite:///{tmp_path / 'replayed.db'}"
    ok(target, "init")
    return exported, target


def test_replay_of_a_tampered_export_is_refused(db: str, tmp_path: Path) -> None:
    """A JSON Lines file whose amount was edited is refused on one line naming the line."""
    exported, target = _tampered_export(db, tmp_path)
    result = run(target, "replay", str(exported))
    assert_one_line_refusal(result, "bad_input: line 2: ")
    fresh = open_ledger(target)
    try:
        assert row_counts(fresh) == (0, 0)
    finally:
        fresh.close()


def test_refused_replay_writes_nothing(db: str, tmp_path: Path) -> None:
    """A refused replay leaves no book, account or asset behind (all or nothing)."""
    exported, target = _tampered_export(db, tmp_path)
    assert run(target, "replay", str(exported)).exit_code == 2
    fresh = open_ledger(target)
    try:
        assert (fresh.books(), fresh.assets(), row_counts(fresh)) == ([], [], (0, 0))
    finally:
        fresh.close()


# --- help ----------------------------------------------------------------------------------------

COMMANDS = [
    [],
    ["init"],
    ["asset"],
    ["asset", "add"],
    ["asset", "list"],
    ["account"],
    ["account", "open"],
    ["account", "list"],
    ["post"],
    ["reverse"],
    ["balances"],
    ["history"],
    ["verify"],
    ["export"],
    ["replay"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_help_of_every_command_exits_0(command: list[str], tmp_path: Path) -> None:
    """--help of every kernel command exits 0, shows its usage and touches no database."""
    result = CliRunner().invoke(cli, ["--db", f"sqlite:///{tmp_path}/x.db", *command, "--help"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"Usage: cli {' '.join(command)}".rstrip())
    assert list(tmp_path.iterdir()) == []


def test_installed_binary_posts_from_stdin(db: str) -> None:
    """The installed `token-ledger` script reads an entry from stdin and prints it as JSON."""
    binary = Path(sys.executable).parent / "token-ledger"
    done = subprocess.run(
        [str(binary), "--db", db, "--json", "post", "-"],
        input=json.dumps(ENTRY),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert (printed["seq"], printed["postings"][0]["units"]) == (1, str(BIG))
