"""The kernel CLI: stable --json, one-line errors that write nothing, export/replay, --help."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from freezegun import freeze_time

from ledger.cli.main import cli
from ledger.domain.canonical import GENESIS_HASH, seal
from ledger.domain.journal import EntryDraft, Posting, make_metadata, to_micros
from ledger.services.ledger import Ledger, open_ledger
from ledger.storage.migrate import head_revision
from tests.test_kernel_support import UINT256_MAX, row_counts

NOW = datetime(2020, 3, 12, 12, 0, tzinfo=UTC)
BIG = UINT256_MAX - 1  # a share amount no int64 or float could hold
BIG_18DP = "115792089237316195423570985008687907853269984665640564039457.584007913129639934"
ENTRY: dict[str, Any] = {
    "book": "main",
    "kind": "mint",
    "key": "mint-1",
    "effective_at": "2020-03-12T00:00:00Z",
    "metadata": {"memo": "first mint", "nav": "10.000000"},
    "postings": [
        {"account": "holder:alice", "asset": "BTC3L", "amount": str(BIG)},
        {"account": "equity:shares-outstanding", "asset": "BTC3L", "amount": str(-BIG)},
        {"account": "cash", "asset": "USDT", "amount": "2500000"},
        {"account": "fees", "asset": "USDT", "amount": "-2500000"},
    ],
}
SETUP = [
    ["asset", "add", "USDT", "--decimals", "6"],
    ["asset", "add", "BTC3L", "--decimals", "18"],
    ["account", "open", "cash", "--type", "asset"],
    ["account", "open", "fees", "--type", "income"],
    ["account", "open", "equity:shares-outstanding", "--type", "equity"],
    ["account", "open", "holder:alice", "--type", "liability", "--non-negative"],
    ["account", "open", "holder:bob", "--type", "liability", "--non-negative"],
]


def run(db: str, *args: str, stdin: str | None = None) -> Result:
    """Invoke `token-ledger --db DB ARGS...` in-process at the frozen time NOW."""
    with freeze_time(NOW):
        return CliRunner().invoke(cli, ["--db", db, *args], input=stdin)


def ok(db: str, *args: str, stdin: str | None = None) -> Any:
    """Invoke with --json, assert exit 0 and an empty stderr, and return the parsed stdout."""
    result = run(db, *args, "--json", stdin=stdin)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    assert result.stderr == ""
    return json.loads(result.stdout)


def _setup(db: str) -> None:
    ok(db, "init")
    for args in SETUP:
        ok(db, *args)


@pytest.fixture
def db(sqlite_url: str) -> str:
    """A SQLite file with the schema, two assets and five accounts of book `main`."""
    _setup(sqlite_url)
    return sqlite_url


@pytest.fixture
def lg(db: str) -> Iterator[Ledger]:
    ledger = open_ledger(db)
    yield ledger
    ledger.close()


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
    sealed = seal(draft, seq=1, recorded_us=to_micros(NOW), prev_hash=GENESIS_HASH)
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
    offset = _entry(effective_at="2020-03-14T00:30:00.000001+02:00")
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
        _setup(db)
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


# --- bad input: one line on stderr, exit 2, nothing written ----------------------------------


def _entry(**changes: Any) -> str:
    return json.dumps(dict(ENTRY, **changes))


def _postings(*lines: tuple[str, str, Any]) -> str:
    return _entry(
        key="other", postings=[{"account": a, "asset": c, "amount": u} for a, c, u in lines]
    )


BAD_POSTS = {
    "malformed-json": ('{"book": "main", "kind": ', "bad_input: not valid JSON"),
    "empty-input": ("", "bad_input: not valid JSON"),
    "not-an-object": ("[1, 2]", "bad_input: entry:"),
    "float-amount": (
        _entry().replace('"2500000"', "2500000.0"),
        "bad_input: number 2500000.0 is a float",
    ),
    "number-amount": (_entry().replace('"2500000"', "2500000"), "bad_input: postings.2.amount"),
    "decimal-string-amount": (
        _postings(("cash", "USDT", "2.5"), ("fees", "USDT", "-2.5")),
        "bad_input: postings[0].amount",
    ),
    "non-ascii-digits": (
        _postings(("cash", "USDT", "٥"), ("fees", "USDT", "-5")),
        "bad_input: postings[0].amount",
    ),
    "repeated-json-key": (
        '{"book": "main", "book": "other", "kind": "t"}',
        "bad_input: key 'book' appears twice",
    ),
    "unbalanced": (
        _postings(("cash", "USDT", "5"), ("fees", "USDT", "-4")),
        "unbalanced: postings do not sum to zero per asset: USDT +1",
    ),
    "unknown-account": (
        _postings(("cash", "USDT", "5"), ("income:other", "USDT", "-5")),
        "unknown_account: account income:other is not open in book main",
    ),
    "unknown-asset": (_postings(("cash", "EUR", "5"), ("fees", "EUR", "-5")), "unknown_asset"),
    "unknown-book": (_entry(book="nobook"), "unknown_book"),
    "naive-time": (_entry(effective_at="2020-03-12T00:00:00"), "bad_input: effective_at: time"),
    "unix-number-time": (_entry(effective_at=1584000000), "bad_input: effective_at:"),
    "sub-microsecond-time": (
        _entry(effective_at="2020-03-12T00:00:00.1234567Z"),
        "bad_input: effective_at: time",
    ),
    "overdraft": (
        _postings(("holder:bob", "BTC3L", "-1"), ("holder:alice", "BTC3L", "1")),
        "balance_constraint: holder:bob would hold -1 BTC3L",
    ),
    "beyond-uint256": (
        _postings(("cash", "USDT", str(2**256)), ("fees", "USDT", str(-(2**256)))),
        "amount_out_of_range",
    ),
    "missing-field": (json.dumps({k: v for k, v in ENTRY.items() if k != "kind"}), "bad_input"),
    "unknown-field": (_entry(memo="x"), "bad_input: memo"),
    "key-conflict": (_entry(metadata={"memo": "changed"}), "idempotency_conflict"),
    "bad-kind": (_entry(kind="Mint Now", key="other"), "bad_input: kind"),
}


def _assert_one_line_refusal(result: Result, reason_text: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), result.stderr
    assert result.stderr.startswith(f"token-ledger: {reason_text}"), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", list(BAD_POSTS))
def test_bad_post_is_a_one_line_refusal_that_writes_nothing(db: str, lg: Ledger, name: str) -> None:
    """Bad entry JSON or a refused entry: one line on stderr, exit 2, nothing written."""
    ok(db, "post", "-", stdin=json.dumps(ENTRY))  # key mint-1 in use; alice holds shares
    before = (lg.head("main"), lg.balances("main"), row_counts(lg))
    text, reason_text = BAD_POSTS[name]
    _assert_one_line_refusal(run(db, "post", "-", stdin=text), reason_text)
    as_json = run(db, "--json", "post", "-", stdin=text)
    assert as_json.exit_code == 2 and as_json.stdout == ""
    error = json.loads(as_json.stderr)
    assert error["message"].startswith(reason_text) and error["error"] == reason_text.split(":")[0]
    assert (lg.head("main"), lg.balances("main"), row_counts(lg)) == before


BAD_COMMANDS = {
    "reverse-unknown-seq": (["reverse", "9"], "unknown_entry"),
    "reverse-twice": (["reverse", "1"], "already_reversed"),
    "reverse-naive-time": (["reverse", "1", "--at", "2020-03-15T00:00:00"], "bad_input: time"),
    "balances-naive-time": (["balances", "--at", "2020-03-12T00:00:00"], "bad_input: time"),
    "balances-bad-time": (["balances", "--at", "yesterday"], "bad_input: not an ISO 8601"),
    "verify-unknown-book": (["verify", "nobook"], "unknown_book"),
    "balances-unknown-book": (["balances", "--book", "nobook"], "unknown_book"),
    "balances-unknown-account": (["balances", "--account", "typo"], "unknown_account"),
    "history-unknown-book": (["history", "cash", "--book", "nobook"], "unknown_book"),
    "history-unknown-account": (["history", "typo"], "unknown_account"),
    "account-list-unknown-book": (["account", "list", "--book", "nobook"], "unknown_book"),
    "export-unknown-book": (["export", "--book", "nobook"], "unknown_book"),
    "export-file-unknown-book": (
        ["export", "--book", "nobook", "-o", "{tmp}/x.jsonl"],
        "unknown_book",
    ),
    "asset-other-decimals": (["asset", "add", "USDT", "--decimals", "8"], "duplicate"),
    "asset-bad-code": (["asset", "add", "usdt!", "--decimals", "8"], "bad_input"),
    "account-other-type": (["account", "open", "cash", "--type", "equity"], "duplicate"),
    "account-bad-code": (["account", "open", "a b", "--type", "asset"], "bad_input"),
}


@pytest.mark.parametrize("name", list(BAD_COMMANDS))
def test_bad_command_is_a_one_line_refusal_that_writes_nothing(
    db: str, lg: Ledger, name: str, tmp_path: Path
) -> None:
    """Refused commands other than post: one line on stderr, exit 2, nothing written."""
    ok(db, "post", "-", stdin=json.dumps(ENTRY))
    ok(db, "reverse", "1", "--at", "2020-03-13T00:00:00Z")
    before = (
        lg.head("main"),
        lg.balances("main"),
        row_counts(lg),
        lg.assets(),
        lg.accounts("main"),
    )
    args, reason_text = BAD_COMMANDS[name]
    _assert_one_line_refusal(run(db, *[a.format(tmp=tmp_path) for a in args]), reason_text)
    assert list(tmp_path.glob("x.jsonl*")) == []
    after = (lg.head("main"), lg.balances("main"), row_counts(lg), lg.assets(), lg.accounts("main"))
    assert after == before


@pytest.mark.parametrize(
    ("url", "reason_text"),
    [
        ("notaurl", "bad_input: not a database URL"),
        ("mysql://user@localhost/db", "bad_input: unsupported database 'mysql'"),
        ("sqlite:///{tmp}/absent.db", "schema_not_initialised: no database file"),
        ("postgresql://postgres:s3cret@127.0.0.1:1/test", "unavailable: cannot open the database"),
    ],
    ids=["not-a-url", "unsupported", "missing-sqlite-file", "unreachable-server"],
)
def test_bad_database_url_is_a_one_line_refusal(tmp_path: Path, url: str, reason_text: str) -> None:
    """A bad --db URL is refused on one line with exit 2, and no file is created."""
    url = url.format(tmp=tmp_path)
    for args in (["balances"], ["verify"], ["post", "-"], ["asset", "list"]):
        _assert_one_line_refusal(run(url, *args, stdin=json.dumps(ENTRY)), reason_text)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///{tmp}/no/such/folder/x.db",
        "postgresql://postgres:s3cret@127.0.0.1:1/test",
        "postgresql://no_such_role_tl@127.0.0.1:5432/test",
    ],
    ids=["sqlite-no-folder", "server-down", "unknown-role"],
)
def test_init_on_a_database_that_cannot_be_opened(tmp_path: Path, url: str) -> None:
    """init (or any command) on a database that cannot be opened: one line, exit 2, no secret."""
    url = url.format(tmp=tmp_path)
    commands = (["init"], ["verify"]) if url.startswith("postgresql") else (["init"],)
    for args in commands:
        result = run(url, *args)
        _assert_one_line_refusal(result, "unavailable: cannot open the database ")
        assert "s3cret" not in result.stderr
        assert result.stderr.endswith(" (retryable)\n")


@pytest.mark.parametrize("command", [["balances"], ["verify", "main"], ["history", "cash"]])
def test_read_without_schema_is_a_one_line_rejection(db_url: str, command: list[str]) -> None:
    """Reading a database that has no ledger schema is refused (exit 2), not an internal error."""
    if db_url.startswith("sqlite"):
        Path(db_url.removeprefix("sqlite:///")).touch()  # an existing but empty file
    _assert_one_line_refusal(run(db_url, *command), "schema_not_initialised")


def test_post_without_schema_writes_nothing(db_url: str) -> None:
    """Posting to a database without the schema is refused and creates no tables."""
    if db_url.startswith("sqlite"):
        Path(db_url.removeprefix("sqlite:///")).touch()
    _assert_one_line_refusal(run(db_url, "post", "-", stdin=json.dumps(ENTRY)), "schema_not")
    _assert_one_line_refusal(run(db_url, *SETUP[0]), "schema_not_initialised")


# --- export, replay ----------------------------------------------------------------------------


def test_export_then_replay_reproduces_the_head(db_url: str, tmp_path: Path) -> None:
    """export --format jsonl then replay into a new database gives the identical head hash."""
    _setup(db_url)
    ok(db_url, "post", "-", stdin=json.dumps(ENTRY))
    ok(db_url, "reverse", "1", "--key", "fix-1", "--at", "2020-03-13T00:00:00Z")
    ok(db_url, "post", "-", stdin=_entry(key="mint-2", metadata={"memo": "ünïcode ✓"}))
    source = ok(db_url, "verify", "main")[0]
    exported = tmp_path / "main.jsonl"
    result = run(db_url, "export", "--book", "main", "--format", "jsonl", "-o", str(exported))
    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"exported 3 entries of main to {exported}\n"
    to_stdout = run(db_url, "export", "--book", "main", "--format", "jsonl")
    assert to_stdout.exit_code == 0 and to_stdout.stdout == exported.read_text(encoding="utf-8")
    assert len(exported.read_text(encoding="utf-8").splitlines()) == 4  # header + 3 entries

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
    _assert_one_line_refusal(result, "bad_input: line 2: ")
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
