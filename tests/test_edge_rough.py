"""The rough edges of issue 9: the clock-skew bound, one reason code per cause, nothing created
by accident (fund commands included), `--db ""`, and simulate's checks, source and series."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ledger.cli.main import cli
from ledger.services.ledger import open_ledger
from tests.test_kernel_cli_support import ENTRY, setup_cli

BINARY = Path(sys.executable).parent / "token-ledger"


def invoke(
    db: str, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> Result:
    return CliRunner(env=env).invoke(cli, ["--db", db, *args], input=stdin)


def refused(result: Result, start: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(start), result.stderr


def _fund_db(tmp_path: Path) -> str:
    db = f"sqlite:///{tmp_path / 'fund.db'}"
    for args in (["init"], ["product", "create", "BTC3L"], ["price", "BTC", "8000"]):
        assert invoke(db, *args).exit_code == 0
    return db


def _rows(db: str) -> tuple[int, bytes]:
    lg = open_ledger(db)
    try:
        return lg.head("BTC3L")[0], lg.head("BTC3L")[1]
    finally:
        lg.close()


# --- clock skew -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["price", "BTC", "8000", "--at", "9999-12-31T23:59:59Z"],
        ["mint", "BTC3L", "alice", "--cash", "100", "--at", "2999-01-01T00:00:00Z"],
        ["rebalance", "BTC3L", "--at", "2999-01-01T00:00:00Z"],
    ],
)
def test_a_time_far_ahead_of_the_clock_is_refused(tmp_path: Path, args: list[str]) -> None:
    db = _fund_db(tmp_path)
    before = _rows(db)
    refused(invoke(db, *args), f"token-ledger: time_out_of_range: time {args[-1]} is ahead")
    assert _rows(db) == before
    # and the fund still takes orders now (the issue: a 9999 price blocked them for ever)
    assert invoke(db, "mint", "BTC3L", "alice", "--cash", "100").exit_code == 0


def test_post_and_reverse_refuse_a_time_ahead_of_the_clock(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'k.db'}"
    setup_cli(db)
    entry = dict(ENTRY, effective_at="2999-01-01T00:00:00Z")
    refused(
        invoke(db, "post", "-", stdin=json.dumps(entry)),
        "token-ledger: time_out_of_range: effective_at: time 2999-01-01T00:00:00Z is ahead of"
        " the clock by more than the allowed skew",
    )
    assert invoke(db, "post", "-", stdin=json.dumps(ENTRY)).exit_code == 0
    refused(invoke(db, "reverse", "1", "--at", "2999-01-01T00:00:00Z"), "token-ledger: time_out")


def test_the_skew_bound_is_configurable(tmp_path: Path) -> None:
    db = _fund_db(tmp_path)
    soon = "2999-01-01T00:00:00Z"
    assert invoke(db, "--max-skew", "off", "price", "BTC", "8000", "--at", soon).exit_code == 0
    (tmp_path / "b").mkdir()
    db2 = _fund_db(tmp_path / "b")
    ok = invoke(db2, "price", "BTC", "8000", "--at", soon, env={"TOKEN_LEDGER_MAX_SKEW": "off"})
    assert ok.exit_code == 0
    refused(
        invoke(db2, "--max-skew", "1e3", "nav", "BTC3L", "--at", soon),
        "token-ledger: bad_input: --max-skew must be whole seconds",
    )


def test_a_query_time_is_not_bounded_by_the_skew(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'q.db'}"
    setup_cli(db)
    assert invoke(db, "post", "-", stdin=json.dumps(ENTRY)).exit_code == 0
    assert invoke(db, "balances", "--at", "9999-01-01T00:00:00Z").exit_code == 0


# --- one code per cause -------------------------------------------------------------------------


def test_non_utf8_prices_are_bad_encoding(tmp_path: Path) -> None:
    prices = tmp_path / "p.csv"
    prices.write_bytes(b"Date,Open,High,Low,Close\n2020-01-01,1\xff,2,1,1\n")
    db = tmp_path / "s.db"
    result = invoke(f"sqlite:///{db}", "simulate", "--prices", str(prices), "--no-chart")
    refused(result, "token-ledger: bad_encoding: input is not UTF-8 text")
    assert not db.exists()


# --- nothing created by accident ------------------------------------------------------------------

FUND_COMMANDS = [
    ["product", "create", "BTC3L"],
    ["product", "show", "BTC3L"],
    ["price", "BTC", "8000"],
    ["mint", "BTC3L", "alice", "--cash", "100"],
    ["redeem", "BTC3L", "alice", "--shares", "1"],
    ["rebalance", "BTC3L"],
    ["split", "BTC3L", "2:1"],
    ["merge", "BTC3L", "2:1"],
    ["close", "BTC3L"],
    ["nav", "BTC3L"],
    ["holders", "BTC3L"],
    ["statement", "BTC3L", "alice"],
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        (tmp_path / "empty.db").touch()
        return f"sqlite:///{tmp_path}/empty.db"
    return str(request.getfixturevalue("pg_url"))


@pytest.mark.parametrize("args", FUND_COMMANDS, ids=" ".join)
def test_fund_commands_refuse_a_database_without_the_schema(empty_db: str, args: list[str]) -> None:
    done = subprocess.run(
        [str(BINARY), "--db", empty_db, *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        "token-ledger: schema_not_initialised: the database has no ledger schema:"
        " run `token-ledger init`\n"
    )
    lg = open_ledger(empty_db)
    try:
        from sqlalchemy import inspect

        assert inspect(lg.engine).get_table_names() == []  # nothing was created
    finally:
        lg.close()


@pytest.mark.parametrize("args", FUND_COMMANDS, ids=" ".join)
def test_fund_commands_do_not_create_a_missing_file(tmp_path: Path, args: list[str]) -> None:
    result = invoke(f"sqlite:///{tmp_path}/typo.db", *args)
    refused(result, "token-ledger: schema_not_initialised: no database file")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [["asset", "list"], ["init"], ["nav", "BTC3L"]])
def test_an_empty_db_option_is_refused(tmp_path: Path, args: list[str]) -> None:
    done = subprocess.run(
        [str(BINARY), "--db", "", *args], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert done.returncode == 2
    assert done.stderr.startswith("token-ledger: Invalid value for '--db': is empty")
    assert done.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # no ./token-ledger.db


# --- simulate --------------------------------------------------------------------------------


def test_simulate_refuses_before_creating_any_product(tmp_path: Path) -> None:
    """Found by the fuzzer: `--products BTC3S,BTC3L` on a database whose BTC3L has entries
    created BTC3S, then refused at BTC3L."""
    db = _fund_db(tmp_path)
    assert invoke(db, "mint", "BTC3L", "alice", "--cash", "100").exit_code == 0
    argv = ["simulate", "--products", "BTC3S,BTC3L", "--synthetic", "3", "--holders", "3"]
    refused(invoke(db, *argv, "--no-chart"), "token-ledger: duplicate: book BTC3L already has")
    refused(invoke(db, "product", "show", "BTC3S"), "token-ledger: unknown_product")


def test_simulate_refuses_a_price_file_of_another_underlying(tmp_path: Path) -> None:
    prices = tmp_path / "eth-usd-daily.csv"
    prices.write_text("Date,Open,High,Low,Close\n2020-01-01,100,110,90,105\n")
    db = tmp_path / "s.db"
    result = invoke(f"sqlite:///{db}", "simulate", "--prices", str(prices), "--no-chart")
    refused(
        result, "token-ledger: bad_input: --prices eth-usd-daily.csv holds ETH prices, not BTC's"
    )
    assert not db.exists()
    ok = invoke(f"sqlite:///{db}", "--json", "simulate", "--prices", str(prices), "--products",
                "ETH3L", "--holders", "3", "--no-chart")  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["prices"] == f"file {prices}"


def test_simulate_names_its_source_and_writes_the_daily_series(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    chart = tmp_path / "out" / "run.png"
    argv = ["--json", "simulate", "--synthetic", "6", "--holders", "5", "--orders-per-day", "3"]
    result = invoke(db, *argv, "--chart", str(chart))
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["prices"] == "synthetic random walk, seed 42 (not real prices)"
    assert payload["synthetic"] is True
    assert payload["chart"] == str(chart) and chart.stat().st_size > 10_000
    assert payload["series"] == str(tmp_path / "out" / "run.csv")
    with open(payload["series"], newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == [
        "date", "BTC_close",
        "BTC3L_nav_per_share", "BTC3L_multiple", "BTC3L_events",
        "BTC3S_nav_per_share", "BTC3S_multiple", "BTC3S_events",
    ]  # fmt: skip
    assert len(rows) == 7 and rows[1][0] == "2020-01-01"
    products = {p["product"]: p for p in payload["products"]}
    assert rows[-1][2] == products["BTC3L"]["nav_final"]
    assert rows[-1][5] == products["BTC3S"]["nav_final"]
    assert all(float(r[3]) > 2 and float(r[6]) < -2 for r in rows[1:])  # float-ok: a check


def test_the_series_marks_splits_merges_and_wipeouts() -> None:
    from datetime import date
    from fractions import Fraction

    from ledger.domain.fund.state import FundState
    from ledger.sim.chart import day_events
    from ledger.sim.driver import ProductRun
    from tests.fund.helpers import zero_fee_terms

    run = ProductRun(terms=zero_fee_terms("BTC3S"), state=FundState())
    run.closes = [
        (date(2020, 1, 1), 1, Fraction(1)),
        (date(2020, 1, 2), 1, Fraction(1, 1000)),
        (date(2020, 1, 3), 1, Fraction(1, 1000)),
        (date(2020, 1, 4), 1, Fraction(1, 100)),
        (date(2020, 1, 5), 0, Fraction(1, 100)),
    ]
    run.wiped_on = date(2020, 1, 5)
    assert day_events(run) == {
        date(2020, 1, 2): "merge 1000:1",
        date(2020, 1, 4): "split 10:1",
        date(2020, 1, 5): "wipeout",
    }
