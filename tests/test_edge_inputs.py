"""Hostile input (issue 9): every value is checked before anything is written.

Each refusal is one line on stderr, exit 2, with its reason code, and the database is exactly
as before. The real binary is run where the one-line form or a crash (exit 139) is the point.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ledger.domain.journal import MAX_SEQ, check_seq, from_micros, to_micros
from ledger.domain.money import check_range, parse_int, parse_units
from ledger.errors import Reason, Rejected
from ledger.services.entry_input import (
    MAX_ENTRY_BYTES,
    draft_from_json,
    entry_from_bytes,
    parse_time,
)
from ledger.services.ledger import Ledger, open_ledger
from tests.test_kernel_cli_support import (
    ENTRY,
    assert_one_line_refusal,
    entry_text,
    ok,
    run,
    setup_cli,
)
from tests.test_kernel_support import mint, row_counts, setup_book

BINARY = Path(sys.executable).parent / "token-ledger"
WINDOW = "0001-01-01T00:00:00Z..9999-12-31T23:59:59.999999Z (in UTC)"
NINES = "9" * 5000


def run_bin(db: str, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed `token-ledger --db DB ARGS...`; stdin as raw bytes."""
    done = subprocess.run(
        [str(BINARY), "--db", db, *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=120,
        check=False,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def assert_refused(done: subprocess.CompletedProcess[str], start: str) -> None:
    """One line on stderr that starts with `start`, exit 2, nothing on stdout."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.endswith("\n"), done.stderr
    assert done.stderr.startswith(start), done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def cli_db(request: pytest.FixtureRequest) -> Iterator[str]:
    """The kernel CLI's set-up (schema, two assets, five accounts) on SQLite and PostgreSQL."""
    url = str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))
    setup_cli(url)
    yield url


def state(url: str) -> Any:
    """Everything a refusal must leave unchanged: rows, head, balances and the export."""
    lg = open_ledger(url)
    try:
        return (row_counts(lg), lg.head("main"), lg.balances("main"), _export(url))
    finally:
        lg.close()


def _export(url: str) -> str:
    result = run(url, "export", "--book", "main", "--format", "jsonl")
    assert result.exit_code == 0, result.stderr
    return result.stdout


def _posting_entry(amount: str, **changes: Any) -> str:
    postings = [
        {"account": "cash", "asset": "USDT", "amount": amount},
        {"account": "fees", "asset": "USDT", "amount": "-1"},
    ]
    return entry_text(key="edge", postings=postings, **changes)


# --- post: times, sizes, digits, encodings, nesting ------------------------------------------

HOSTILE_POSTS: dict[str, tuple[bytes, str]] = {
    "after-window-once-offset": (
        entry_text(key="t", effective_at="9999-12-31T23:59:59-12:00").encode(),
        "token-ledger: time_out_of_range: effective_at: time 9999-12-31T23:59:59-12:00 is outside "
        + WINDOW,
    ),
    "before-window-once-offset": (
        entry_text(key="t", effective_at="0001-01-01T00:00:00+00:01").encode(),
        "token-ledger: time_out_of_range: effective_at: time 0001-01-01T00:00:00+00:01 is outside "
        + WINDOW,
    ),
    "5000-digit-amount": (
        _posting_entry(NINES).encode(),
        "token-ledger: amount_out_of_range: postings[0].amount has 5000 digits: beyond the"
        " uint256 range (78 digits at most)",
    ),
    "79-digit-amount": (
        _posting_entry("1" + "0" * 78).encode(),
        "token-ledger: amount_out_of_range: postings[0].amount has 79 digits",
    ),
    "5000-digit-json-number": (
        b'{"book": ' + NINES.encode() + b"}",
        "token-ledger: bad_input: a JSON number of 5000 digits (amounts are strings, at most 78)",
    ),
    "non-utf8": (
        b'{"book": "main\xff"}',
        "token-ledger: bad_encoding: entry is not UTF-8 text (byte 14 is invalid)",
    ),
    "deep-arrays": (
        b'{"book": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "token-ledger: bad_input: JSON is nested deeper than 32 levels",
    ),
    "deep-objects": (
        b'{"a": ' * 100_000 + b"1" + b"}" * 100_000,
        "token-ledger: bad_input: JSON is nested deeper than 32 levels",
    ),
    "unclosed-deep-arrays": (
        b"[" * 1_000_000,
        "token-ledger: bad_input: JSON is nested deeper than 32 levels",
    ),
    "over-1-MiB": (
        b" " * MAX_ENTRY_BYTES + b"{}",
        f"token-ledger: bad_input: entry is larger than {MAX_ENTRY_BYTES} bytes",
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE_POSTS))
def test_hostile_post_is_refused_before_anything_is_written(cli_db: str, name: str) -> None:
    ok(cli_db, "post", "-", stdin=json.dumps(ENTRY))
    before = state(cli_db)
    data, message = HOSTILE_POSTS[name]
    assert_refused(run_bin(cli_db, "post", "-", stdin=data), message)
    as_json = run_bin(cli_db, "--json", "post", "-", stdin=data)
    assert as_json.returncode == 2
    error = json.loads(as_json.stderr)
    code = message.removeprefix("token-ledger: ").split(":")[0]
    assert error == {"error": code, "message": message.removeprefix("token-ledger: ")} or (
        error["error"] == code
        and error["message"].startswith(message.removeprefix("token-ledger: "))
    )
    assert state(cli_db) == before


def test_post_file_that_is_not_utf8_is_one_line(db: str, tmp_path: Path) -> None:
    path = tmp_path / "entry.json"
    path.write_bytes(entry_text().encode().replace(b"first mint", b"first \xe9 mint"))
    assert_refused(
        run_bin(db, "post", str(path)), "token-ledger: bad_encoding: entry is not UTF-8 text (byte"
    )
    assert state(db)[0] == (0, 0)


def test_a_deeply_nested_entry_does_not_crash_the_api() -> None:
    with pytest.raises(Rejected) as caught:
        draft_from_json("[" * 200_000 + "]" * 200_000)
    assert caught.value.reason is Reason.BAD_INPUT
    assert caught.value.message == "JSON is nested deeper than 32 levels"
    # Brackets inside strings are text, not nesting.
    with pytest.raises(Rejected) as caught:
        draft_from_json(json.dumps({"book": "[" * 1000, "x": "{" * 1000}))
    assert "nested" not in caught.value.message
    with pytest.raises(Rejected) as caught:
        entry_from_bytes(b"\xff")
    assert caught.value.message == "entry is not UTF-8 text (byte 0 is invalid)"


@pytest.mark.parametrize(
    ("effective_at", "shown"),
    [
        ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
        ("9999-12-31T11:59:59.999999-12:00", "9999-12-31T23:59:59.999999Z"),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),
        ("0001-01-01T12:00:00+12:00", "0001-01-01T00:00:00Z"),
    ],
)
def test_the_edges_of_the_window_post_show_export_and_replay(
    cli_db: str, effective_at: str, shown: str, tmp_path: Path
) -> None:
    """What is accepted can be shown, reversed, exported and replayed: no stuck book (the
    far edge is ahead of the clock: accepted only with the skew bound off)."""
    entry = ok(
        cli_db, "--max-skew", "off", "post", "-", stdin=entry_text(effective_at=effective_at)
    )
    assert entry["effective_at"] == shown
    assert [e["effective_at"] for e in ok(cli_db, "history", "cash")] == [shown]
    reversal = ok(cli_db, "--max-skew", "off", "reverse", "1", "--at", effective_at)
    assert reversal["effective_at"] == shown
    out = tmp_path / "main.jsonl"
    assert ok(cli_db, "export", "--book", "main", "-o", str(out))["entries"] == 2
    for fmt in ("ledger", "beancount"):
        result = run(cli_db, "export", "--book", "main", "--format", fmt)
        if fmt == "ledger" and shown.startswith("0001"):
            assert_one_line_refusal(result, "bad_input: entry 1 is dated 0001-01-01: ledger-cli")
        else:
            assert result.exit_code == 0, result.stderr
    fresh = f"sqlite:///{tmp_path}/replayed.db"
    ok(fresh, "init")
    assert ok(fresh, "replay", str(out))["entries"] == 2


def test_times_outside_the_window_are_refused_by_every_time_option(db: str) -> None:
    ok(db, "post", "-", stdin=json.dumps(ENTRY))
    before = state(db)
    for args in (
        ["reverse", "1", "--at", "9999-12-31T23:59:59-00:01"],
        ["balances", "--at", "0001-01-01T00:00:00+00:01"],
    ):
        assert_one_line_refusal(
            run(db, *args), f"time_out_of_range: time {args[-1]} is outside {WINDOW}"
        )
    assert state(db) == before


def test_the_api_refuses_a_time_outside_the_window_before_writing(ledger: Ledger) -> None:
    setup_book(ledger)
    late = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(-timedelta(hours=12)))
    with pytest.raises(Rejected) as caught:
        ledger.post(mint("holder:alice", 1, at=late))
    assert caught.value.reason is Reason.TIME_OUT_OF_RANGE
    assert caught.value.message == f"time 9999-12-31T23:59:59-12:00 is outside {WINDOW}"
    assert row_counts(ledger) == (0, 0)
    assert [e.seq for e in ledger.entries("B")] == []


def test_the_time_window_in_the_domain() -> None:
    assert to_micros(datetime(1, 1, 1, tzinfo=UTC)) == -62_135_596_800_000_000
    assert to_micros(datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)) == (
        253_402_300_799_999_999
    )
    assert from_micros(253_402_300_799_999_999).year == 9999
    for text in ("0001-01-01T00:00:00+00:00:01", "9999-12-31T23:59:59.999999-00:00:01"):
        with pytest.raises(Rejected, match="is outside"):
            parse_time(text)
    with pytest.raises(Rejected, match="too long"):
        parse_time("2020-01-01T00:00:00" + "0" * 5000 + "Z")


# --- amounts -----------------------------------------------------------------------------------


def test_amount_digits_are_counted_before_int() -> None:
    for parse in (parse_int, lambda t: parse_units(t, 6)):
        with pytest.raises(Rejected) as caught:
            parse(NINES)
        assert caught.value.reason is Reason.AMOUNT_OUT_OF_RANGE
        assert "5000 digits" in caught.value.message
    assert parse_int("0" * 5000 + "7") == 7  # leading zeros are not digits of the value
    assert parse_int(str(2**256 - 1)) == 2**256 - 1
    assert parse_units("0" * 5000 + "1." + "0" * 5000, 6) == 1_000_000
    with pytest.raises(Rejected) as caught:
        parse_int("-" + str(2**256))
    assert caught.value.reason is Reason.AMOUNT_OUT_OF_RANGE
    with pytest.raises(Rejected) as caught:
        check_range(10**5000)
    assert caught.value.message == "amount of 16610 bits exceeds the uint256 range"


def test_amounts_are_ascii_digits_only() -> None:
    for text in ("٥", "1.٥", "５"):
        with pytest.raises(Rejected) as caught:
            parse_units(text, 6)
        assert caught.value.reason is Reason.BAD_INPUT
        with pytest.raises(Rejected):
            parse_int(text)


# --- sequence numbers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "start"),
    [
        (["reverse", str(2**256)], "token-ledger reverse: Invalid value for 'SEQ': "),
        (["reverse", str(2**63)], "token-ledger reverse: Invalid value for 'SEQ': "),
        (["reverse", "9" * 5000], "token-ledger reverse: Invalid value for 'SEQ': "),
        (
            ["balances", "--as-of-seq", str(2**256)],
            "token-ledger balances: Invalid value for '--as-of-seq': ",
        ),
    ],
)
def test_out_of_range_sequence_numbers_are_usage_errors(
    cli_db: str, args: list[str], start: str
) -> None:
    ok(cli_db, "post", "-", stdin=json.dumps(ENTRY))
    before = state(cli_db)
    assert_refused(run_bin(cli_db, *args), start)
    error = json.loads(run_bin(cli_db, *args, "--json").stderr)
    assert error["error"] == "bad_input" and error["message"].startswith(start[:-2])
    assert state(cli_db) == before


def test_the_largest_sequence_number_is_a_plain_lookup(cli_db: str) -> None:
    ok(cli_db, "post", "-", stdin=json.dumps(ENTRY))
    assert_one_line_refusal(run(cli_db, "reverse", str(MAX_SEQ)), "unknown_entry")
    assert len(ok(cli_db, "balances", "--as-of-seq", str(MAX_SEQ))["balances"]) == 4
    assert check_seq(MAX_SEQ) == MAX_SEQ
    with pytest.raises(Rejected, match=r"must be 1\.\.9223372036854775807"):
        check_seq(MAX_SEQ + 1)


# --- replay ------------------------------------------------------------------------------------


def _exported_lines(db: str) -> list[str]:
    ok(db, "post", "-", stdin=json.dumps(ENTRY))
    return _export(db).splitlines(keepends=True)


def _field(line: str, **changes: Any) -> str:
    obj = json.loads(line)
    obj.update(changes)
    return json.dumps(obj) + "\n"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda line: line.encode().replace(b"first mint", b"first \xff mint"),
            "bad_encoding: line 1: the file is not UTF-8 text",
        ),
        (
            lambda line: _field(line, effective_us=str(10**20)).encode(),
            "bad_input: line 2: effective_us is outside",
        ),
        (
            lambda line: _field(line, recorded_us="-" + "9" * 5000).encode(),
            "bad_input: line 2: recorded_us is outside the supported time window",
        ),
        (
            lambda line: _field(line, reverses=str(2**256)).encode(),
            "bad_input: line 2: reverses must name a sequence number 1..9223372036854775807",
        ),
        (
            lambda line: (("[" * 100_000) + ("]" * 100_000) + "\n").encode(),
            "bad_input: line 2: not valid JSON (nested too deeply)",
        ),
        (
            lambda line: line.replace('"2500000"', '"' + NINES + '"').encode(),
            "bad_input: line 2: amount must be a decimal integer string of at most 79",
        ),
    ],
)
def test_hostile_replay_is_refused_and_writes_nothing(
    db: str, tmp_path: Path, change: Any, message: str
) -> None:
    header, line = _exported_lines(db)[:2]  # the trailer is not needed: line 2 is refused
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(header.encode() + change(line))
    fresh = f"sqlite:///{tmp_path}/fresh.db"
    ok(fresh, "init")
    assert_refused(run_bin(fresh, "replay", str(path)), f"token-ledger: {message}")
    lg = open_ledger(fresh)
    try:
        assert lg.books() == [] and row_counts(lg) == (0, 0)
    finally:
        lg.close()


# --- databases that cannot be used -------------------------------------------------------------


def _checkpoint(path: Path) -> None:
    """Move everything from the WAL into the database file, so that the file is the database."""
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _damage_page(path: Path, table: str) -> None:
    """Overwrite the header of `table`'s root page, as a bad disk block would."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)
        ).fetchone()
    conn.close()
    data = bytearray(path.read_bytes())
    offset = (root - 1) * page_size
    data[offset : offset + 8] = b"\x0d\xff\xff\xff\xff\xff\xff\xff"
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("make", "args", "start"),
    [
        (
            lambda p: p.write_bytes(bytes(range(256)) * 40),
            ["asset", "list"],
            "unavailable: cannot open the database sqlite:///{path}: file is not a database",
        ),
        (
            lambda p: p.write_text("hello\n"),
            ["init"],
            "unavailable: cannot open the database sqlite:///{path}: file is not a database",
        ),
        (
            lambda p: p.write_bytes(p.read_bytes()[:8192]),
            ["account", "list"],
            "unavailable: cannot open the database sqlite:///{path}: database disk image is"
            " malformed",
        ),
        (
            lambda p: _damage_page(p, "tl_accounts"),
            ["account", "list"],
            "unavailable: the database file is damaged, truncated or not a database:"
            " database disk image is malformed",
        ),
        (
            lambda p: _damage_page(p, "tl_accounts"),
            ["account", "open", "other", "--type", "asset"],
            "unavailable: the database file is damaged, truncated or not a database:",
        ),
        (
            lambda p: _damage_page(p, "tl_accounts"),
            ["verify"],
            "unavailable: the database file is damaged, truncated or not a database:",
        ),
    ],
)
def test_a_damaged_database_file_is_unavailable_not_an_internal_error(
    db: str, make: Any, args: list[str], start: str
) -> None:
    path = Path(db.removeprefix("sqlite:///"))
    _checkpoint(path)
    make(path)
    for name in ("-wal", "-shm"):
        Path(str(path) + name).unlink(missing_ok=True)
    done = run_bin(db, *args)
    assert_refused(done, "token-ledger: " + start.format(path=path))
    error = json.loads(run_bin(db, "--json", *args).stderr)
    assert error["error"] == "unavailable"


def test_a_directory_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "d.db").mkdir()
    assert_refused(
        run_bin(f"sqlite:///{tmp_path}/d.db", "asset", "list"),
        "token-ledger: unavailable: cannot open the database",
    )


def test_a_read_only_sqlite_database_reads_and_refuses_writes(db: str) -> None:
    ok(db, "post", "-", stdin=json.dumps(ENTRY))
    before = state(db)
    path = db.removeprefix("sqlite:///")
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    assert [a["code"] for a in ok(read_only, "asset", "list")] == ["BTC3L", "USDT"]
    for args in (
        ["asset", "add", "EUR", "--decimals", "2"],
        ["account", "open", "other", "--type", "asset"],
        ["reverse", "1"],
    ):
        assert_refused(
            run_bin(read_only, *args),
            "token-ledger: unavailable: the database is read-only: attempt to write a readonly"
            " database",
        )
    assert state(db) == before


@pytest.mark.postgres
def test_a_read_only_postgres_session_refuses_writes(pg_url: str) -> None:
    setup_cli(pg_url)
    ok(pg_url, "post", "-", stdin=json.dumps(ENTRY))
    before = state(pg_url)
    read_only = pg_url + "%20-cdefault_transaction_read_only%3Don"
    assert [a["code"] for a in ok(read_only, "asset", "list")] == ["BTC3L", "USDT"]
    for args in (["asset", "add", "EUR", "--decimals", "2"], ["reverse", "1"]):
        assert_refused(
            run_bin(read_only, *args),
            "token-ledger: unavailable: the database is read-only: cannot execute",
        )
    assert state(pg_url) == before


# --- nothing is created by accident ------------------------------------------------------------

NEEDS_SCHEMA = [
    ["asset", "add", "USDT", "--decimals", "6"],
    ["asset", "list"],
    ["account", "open", "cash", "--type", "asset"],
    ["account", "list"],
    ["reverse", "1"],
    ["balances"],
    ["history", "cash"],
    ["verify"],
    ["export"],
    ["chain", "status"],
    ["chain", "sync", "BTC3L"],
    ["chain", "deploy", "BTC3L"],
    ["chain", "reconcile", "BTC3L"],
    ["chain", "anchor", "BTC3L"],
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database that exists but has no schema: an empty SQLite file, an empty PG schema."""
    if request.param == "sqlite":
        (tmp_path / "empty.db").touch()
        return f"sqlite:///{tmp_path}/empty.db"
    return str(request.getfixturevalue("pg_url"))


@pytest.mark.parametrize("args", NEEDS_SCHEMA, ids=" ".join)
def test_every_command_but_init_refuses_a_database_without_the_schema(
    empty_db: str, args: list[str], tmp_path: Path
) -> None:
    chain_dir = ["--chain-dir", str(tmp_path)] if args[0] == "chain" else []
    assert_refused(run_bin(empty_db, *args, *chain_dir), "token-ledger: schema_not_initialised: ")


@pytest.mark.parametrize("args", NEEDS_SCHEMA, ids=" ".join)
def test_no_command_but_init_creates_a_missing_sqlite_file(args: list[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/typo.db"
    assert_refused(run_bin(url, *args), "token-ledger: schema_not_initialised: no database file")
    assert list(tmp_path.iterdir()) == []
