"""Helpers shared by the kernel CLI tests (no tests here): the standard entry, runners."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from click.testing import CliRunner, Result
from freezegun import freeze_time

from ledger.cli.main import cli
from tests.test_kernel_support import UINT256_MAX

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


def setup_cli(db: str) -> None:
    ok(db, "init")
    for args in SETUP:
        ok(db, *args)


def entry_text(**changes: Any) -> str:
    return json.dumps(dict(ENTRY, **changes))


def postings_text(*lines: tuple[str, str, Any]) -> str:
    return entry_text(
        key="other", postings=[{"account": a, "asset": c, "amount": u} for a, c, u in lines]
    )


def assert_one_line_refusal(result: Result, reason_text: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), result.stderr
    assert result.stderr.startswith(f"token-ledger: {reason_text}"), result.stderr
    assert "Traceback" not in result.stderr
