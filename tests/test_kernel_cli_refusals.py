"""The kernel CLI refuses bad input on one line of stderr, exit 2, and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger.services.ledger import Ledger
from tests.test_kernel_cli_support import (
    ENTRY,
    SETUP,
    assert_one_line_refusal,
    entry_text,
    ok,
    postings_text,
    run,
)
from tests.test_kernel_support import row_counts

# --- bad input: one line on stderr, exit 2, nothing written ----------------------------------


BAD_POSTS = {
    "malformed-json": ('{"book": "main", "kind": ', "bad_input: not valid JSON"),
    "empty-input": ("", "bad_input: not valid JSON"),
    "not-an-object": ("[1, 2]", "bad_input: entry:"),
    "float-amount": (
        entry_text().replace('"2500000"', "2500000.0"),
        "bad_input: number 2500000.0 is a float",
    ),
    "number-amount": (entry_text().replace('"2500000"', "2500000"), "bad_input: postings.2.amount"),
    "decimal-string-amount": (
        postings_text(("cash", "USDT", "2.5"), ("fees", "USDT", "-2.5")),
        "bad_input: postings[0].amount",
    ),
    "non-ascii-digits": (
        postings_text(("cash", "USDT", "٥"), ("fees", "USDT", "-5")),
        "bad_input: postings[0].amount",
    ),
    "repeated-json-key": (
        '{"book": "main", "book": "other", "kind": "t"}',
        "bad_input: key 'book' appears twice",
    ),
    "unbalanced": (
        postings_text(("cash", "USDT", "5"), ("fees", "USDT", "-4")),
        "unbalanced: postings do not sum to zero per asset: USDT +1",
    ),
    "unknown-account": (
        postings_text(("cash", "USDT", "5"), ("income:other", "USDT", "-5")),
        "unknown_account: account income:other is not open in book main",
    ),
    "unknown-asset": (postings_text(("cash", "EUR", "5"), ("fees", "EUR", "-5")), "unknown_asset"),
    "unknown-book": (entry_text(book="nobook"), "unknown_book"),
    "naive-time": (entry_text(effective_at="2020-03-12T00:00:00"), "bad_input: effective_at: time"),
    "unix-number-time": (entry_text(effective_at=1584000000), "bad_input: effective_at:"),
    "sub-microsecond-time": (
        entry_text(effective_at="2020-03-12T00:00:00.1234567Z"),
        "bad_input: effective_at: time",
    ),
    "overdraft": (
        postings_text(("holder:bob", "BTC3L", "-1"), ("holder:alice", "BTC3L", "1")),
        "balance_constraint: holder:bob would hold -1 BTC3L",
    ),
    "beyond-uint256": (
        postings_text(("cash", "USDT", str(2**256)), ("fees", "USDT", str(-(2**256)))),
        "amount_out_of_range",
    ),
    "missing-field": (json.dumps({k: v for k, v in ENTRY.items() if k != "kind"}), "bad_input"),
    "unknown-field": (entry_text(memo="x"), "bad_input: memo"),
    "key-conflict": (entry_text(metadata={"memo": "changed"}), "idempotency_conflict"),
    "bad-kind": (entry_text(kind="Mint Now", key="other"), "bad_input: kind"),
}


@pytest.mark.parametrize("name", list(BAD_POSTS))
def test_bad_post_is_a_one_line_refusal_that_writes_nothing(db: str, lg: Ledger, name: str) -> None:
    """Bad entry JSON or a refused entry: one line on stderr, exit 2, nothing written."""
    ok(db, "post", "-", stdin=json.dumps(ENTRY))  # key mint-1 in use; alice holds shares
    before = (lg.head("main"), lg.balances("main"), row_counts(lg))
    text, reason_text = BAD_POSTS[name]
    assert_one_line_refusal(run(db, "post", "-", stdin=text), reason_text)
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
    assert_one_line_refusal(run(db, *[a.format(tmp=tmp_path) for a in args]), reason_text)
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
        assert_one_line_refusal(run(url, *args, stdin=json.dumps(ENTRY)), reason_text)
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
        assert_one_line_refusal(result, "unavailable: cannot open the database ")
        assert "s3cret" not in result.stderr
        # Only a server that is down may come back; a bad path or role will not.
        assert result.stderr.endswith(" (retryable)\n") == ("127.0.0.1:1/" in url)


@pytest.mark.parametrize("command", [["balances"], ["verify", "main"], ["history", "cash"]])
def test_read_without_schema_is_a_one_line_rejection(db_url: str, command: list[str]) -> None:
    """Reading a database that has no ledger schema is refused (exit 2), not an internal error."""
    if db_url.startswith("sqlite"):
        Path(db_url.removeprefix("sqlite:///")).touch()  # an existing but empty file
    assert_one_line_refusal(run(db_url, *command), "schema_not_initialised")


def test_post_without_schema_writes_nothing(db_url: str) -> None:
    """Posting to a database without the schema is refused and creates no tables."""
    if db_url.startswith("sqlite"):
        Path(db_url.removeprefix("sqlite:///")).touch()
    assert_one_line_refusal(run(db_url, "post", "-", stdin=json.dumps(ENTRY)), "schema_not")
    assert_one_line_refusal(run(db_url, *SETUP[0]), "schema_not_initialised")
