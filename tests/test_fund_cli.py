"""The fund CLI: every command answers --json with decimal strings; bad input gets one line on
stderr, exit status 2, and nothing written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ledger.cli.main import cli
from ledger.services.ledger import open_ledger
from ledger.storage import fund_store


@pytest.fixture
def db(tmp_path: Path) -> str:
    """An initialised database: fund commands refuse one without the schema (issue 9)."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert CliRunner().invoke(cli, ["--db", url, "init"]).exit_code == 0
    return url


def run(db: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", db, *args], catch_exceptions=False)


def ok_json(db: str, *args: str) -> Any:
    result = run(db, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def snapshot(db: str) -> tuple[object, ...]:
    """Return what a refused command must leave untouched: books, heads, products, prices."""
    lg = open_ledger(db)
    try:
        lg.init()
        books = lg.books()
        return (
            tuple((b, lg.head(b)) for b in books),
            tuple(p.name for p in fund_store.load_products(lg.engine)),
            fund_store.latest_price(lg.engine, "BTC"),
            tuple(sorted(lg.balances(b).items()) for b in books),
        )
    finally:
        lg.close()


def test_product_price_mint_redeem_nav_holders_statement_json(db: str) -> None:
    """The happy path through the CLI: every payload is JSON with decimal strings."""
    created = ok_json(db, "product", "create", "BTC3L", "--management-fee", "0.0001")
    assert created["management_fee"] == "0.0001" and created["multiple"] == "3"
    price = ok_json(db, "price", "BTC", "100", "--at", "2020-01-01T01:00:00Z")
    assert price["products"][0]["product"] == "BTC3L"
    minted = ok_json(
        db,
        "mint",
        "BTC3L",
        "alice",
        "--cash",
        "1000",
        "--key",
        "k1",
        "--at",
        "2020-01-01T01:00:00Z",
    )
    # 999 net buys N = 999 / (1 + 3 x 0.0005) = 997.503744 of shares at NAV 100 and its 3x
    # position at once (the order pays the 1.496256 trading fee).
    assert (minted["shares_delta"], minted["fee"]) == ("9.975037440000000000", "1.000000")
    assert minted["priced_at_nav"] == "100.000000"
    again = ok_json(
        db,
        "mint",
        "BTC3L",
        "alice",
        "--cash",
        "1000",
        "--key",
        "k1",
        "--at",
        "2020-01-01T01:00:01Z",
    )
    assert again["seq"] == minted["seq"]  # the retry wrote nothing new
    rebalanced = ok_json(db, "rebalance", "BTC3L", "--at", "2020-01-01T01:00:00Z")
    assert rebalanced["traded"] == "0.000000000000"  # the mint already traded to 3x
    stale = run(db, "redeem", "BTC3L", "alice", "--shares", "1")  # now: the 2020 price is old
    assert stale.exit_code == 2 and "stale_price" in stale.stderr
    redeemed = ok_json(
        db, "redeem", "BTC3L", "alice", "--shares", "1", "--at", "2020-01-01T01:00:30Z"
    )
    assert redeemed["shares_delta"] == "-1.000000000000000000"
    nav = ok_json(db, "nav", "BTC3L")
    assert isinstance(nav["nav_per_share"], str) and nav["wiped_out"] is False
    past = ok_json(db, "nav", "BTC3L", "--at", "2020-01-01T01:00:00Z")
    assert past["supply"] == "9.975037440000000000"
    holders = ok_json(db, "holders", "BTC3L")
    assert [h["holder"] for h in holders["holders"]] == ["alice"]
    statement = ok_json(db, "statement", "BTC3L", "alice")
    assert [e["kind"] for e in statement["entries"]] == ["mint", "redeem"]
    split = ok_json(db, "split", "BTC3L", "1:5")
    assert split["ratio_num"] == "5"
    merged = ok_json(db, "merge", "BTC3L", "5:1")
    assert merged["nav"]["supply"] == "8.975037440000000000"
    assert run(db, "verify", "BTC3L").exit_code == 0


@pytest.mark.parametrize(
    "args",
    [
        ["product", "create", "BTC3X"],
        ["product", "create", "BTC3L", "--subscription-fee", "2"],
        ["mint", "BTC3L", "alice", "--cash", "0"],
        ["mint", "BTC3L", "alice", "--cash", "-5"],
        ["mint", "BTC3L", "alice", "--cash", "1e3"],
        ["mint", "BTC3L", "bad holder!", "--cash", "100"],
        ["redeem", "BTC3L", "alice", "--shares", "1000"],
        ["redeem", "BTC3L", "alice", "--shares", "0"],
        ["redeem", "BTC3L", "nobody", "--shares", "1"],
        ["price", "BTC", "0"],
        ["price", "BTC", "--", "-1"],
        ["price", "BTC", "abc"],
        ["split", "BTC3L", "5:1"],
        ["mint", "ETH3L", "alice", "--cash", "100"],
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(db: str, args: list[str]) -> None:
    """Bad names, zero/negative amounts, over-redeeming, a zero price: refused, nothing written."""
    ok_json(db, "product", "create", "BTC3L")
    ok_json(db, "price", "BTC", "100")
    ok_json(db, "mint", "BTC3L", "alice", "--cash", "1000")
    before = snapshot(db)
    result = run(db, *args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("token-ledger: "), result.stderr
    assert snapshot(db) == before


def test_json_errors_are_one_json_line(db: str) -> None:
    """Under --json a refusal is one JSON object on stderr with a stable reason code."""
    result = run(db, "product", "create", "XYZ", "--json")
    assert result.exit_code == 2
    payload = json.loads(result.stderr)
    assert payload["error"] == "bad_product_name"


def test_malformed_csv_row_is_refused_before_any_write(db: str, tmp_path: Path) -> None:
    """A malformed price row names file and line in one line; the simulation writes nothing."""
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "Date,Open,High,Low,Close\n2020-01-01,100,110,90,105\n2020-01-02,105,oops,100,104\n"
    )
    result = run(db, "simulate", "--prices", str(bad), "--no-chart")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "token-ledger: bad_input: bad.csv:3: High 'oops' is not a positive decimal number"
    )
    assert snapshot(db)[0] == ()  # no book was created


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("Date,Open,High,Low,Close\n2020-01-01,100,110,90\n", "bad.csv:2: expected 5 columns"),
        ("Date,Open,High,Low,Close\n2020-13-01,100,110,90,100\n", "bad.csv:2: date"),
        ("Date,Open,High,Low,Close\n2020-01-01,100,90,95,100\n", "bad.csv:2: High must be"),
        ("Date,Open,High,Low,Close\n2020-01-01,0,1,0,1\n", "bad.csv:2: Open '0' must be"),
        ("Day,Price\n2020-01-01,100\n", "bad.csv:1: header must name"),
        (
            "Date,Open,High,Low,Close\n2020-01-02,1,1,1,1\n2020-01-01,1,1,1,1\n",
            "bad.csv:3: date 2020-01-01 does not follow",
        ),
    ],
)
def test_csv_reader_errors(db: str, tmp_path: Path, body: str, problem: str) -> None:
    """Each malformed CSV is refused with the file, the line and the problem."""
    bad = tmp_path / "bad.csv"
    bad.write_text(body)
    result = run(db, "simulate", "--prices", str(bad), "--no-chart")
    assert result.exit_code == 2
    assert problem in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "options",
    [("--fees", "bogus"), ("--step", "0.5"), ("--step", "nan"), ("--from", "2020-02-30")],
)
def test_simulate_replace_deletes_nothing_when_an_option_is_bad(
    tmp_path: Path, options: tuple[str, str]
) -> None:
    """--replace deletes the database only after every option was validated."""
    path = tmp_path / "keep.db"
    path.write_bytes(b"precious")
    result = run(f"sqlite:///{path}", "simulate", "--replace", "--no-chart", *options)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert path.read_bytes() == b"precious"


@pytest.mark.parametrize(
    ("step", "problem"),
    [
        ("nan", "--step must be a decimal number such as 0.025, got 'nan'"),
        ("inf", "--step must be a decimal number such as 0.025, got 'inf'"),
        ("sNaN", "--step must be a decimal number such as 0.025, got 'sNaN'"),
        ("1e-30", "--step must be a decimal number such as 0.025, got '1e-30'"),
        ("-0.01", "--step must be a decimal number such as 0.025, got '-0.01'"),
        ("0.5", "--step must be between 0.0001 and 0.1, got 0.5"),
        ("0.00001", "--step must be between 0.0001 and 0.1, got 0.00001"),
        ("0", "--step must be between 0.0001 and 0.1, got 0"),
    ],
)
def test_simulate_step_is_a_plain_decimal_within_the_trigger(
    db: str, step: str, problem: str
) -> None:
    """--step is a plain decimal in [0.0001, the ad-hoc move]: one line, exit 2, no write."""
    result = run(db, "simulate", "--days", "2", "--no-chart", "--step", step)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"token-ledger: bad_input: {problem}"
    assert snapshot(db)[0] == ()


def test_text_output_never_shows_python_values(db: str) -> None:
    """People read "off", "-", "yes"/"no" where Python would print None and False."""
    run(db, "product", "create", "BTC3L", "--split-above", "off")
    shown = run(db, "product", "show", "BTC3L").stdout
    nav = run(db, "nav", "BTC3L").stdout
    for text in (shown, nav):
        assert "None" not in text and "False" not in text and "True" not in text
    assert "split_nav_above        off" in shown and "leverage_band          2.0000:4.0000" in shown
    assert "wiped_out              no" in nav and "at                     -" in nav


def test_product_create_short_help_is_a_whole_sentence() -> None:
    """`product --help` lists create with its whole first line, not cut at "(e.g."."""
    listing = CliRunner().invoke(cli, ["product", "--help"]).output
    assert "create  Create product NAME with its book and accounts.\n" in listing
