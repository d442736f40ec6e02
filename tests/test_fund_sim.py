"""The simulation: verify passes, the journal rebuilds the in-memory state, the same run gives
the same hashes on SQLite and PostgreSQL, and the feed steps finer than the trigger."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger.cli.main import cli
from ledger.domain.fund import accounts as acc
from ledger.domain.fund.fold import fold_entries
from ledger.domain.money import format_units
from ledger.services.funds import Funds
from ledger.services.ledger import open_ledger
from ledger.sim.prices import Bar, synthetic_bars, walk
from ledger.sim.run import SimConfig, default_prices_path, simulate
from ledger.storage import fund_store
from tests.fund.helpers import BTC_CSV

SMALL = {"holders": 40, "orders_per_day": 12, "seed": 7}


def test_default_price_file_is_the_bundled_fixture() -> None:
    """`simulate` with no arguments finds the BTC fixture from any working directory."""
    assert default_prices_path() == BTC_CSV


def test_walk_steps_finer_than_the_trigger_in_feed_order() -> None:
    """A falling day runs O, H, L, C; a rising day O, L, H, C; every step <= 2.5% of the price."""
    falling = Bar(date(2020, 3, 12), 7913_616211, 7929_116211, 4860_354004, 4970_788086)
    ticks = list(walk(falling, step=(25, 1000)))
    prices = [t.price for t in ticks]
    assert prices[0] == falling.open and prices[-1] == falling.close
    assert prices.index(falling.high) < prices.index(falling.low)
    for a, b in itertools.pairwise(prices):
        assert abs(b - a) * 1000 <= 25 * min(a, b) + 1000
    assert [t.at for t in ticks] == sorted(t.at for t in ticks)
    rising = Bar(date(2020, 3, 13), 100, 130, 90, 120)
    order = [t.price for t in walk(rising, step=(1, 1))]
    assert order.index(90) < order.index(130)


def test_synthetic_path_is_seeded() -> None:
    """The same seed gives the same path; another seed another."""
    one = synthetic_bars(days=30, seed=1, start=date(2020, 1, 1), price=10**10)
    assert one == synthetic_bars(days=30, seed=1, start=date(2020, 1, 1), price=10**10)
    assert one != synthetic_bars(days=30, seed=2, start=date(2020, 1, 1), price=10**10)


def test_cli_simulation_verifies_and_draws(tmp_path: Path) -> None:
    """`simulate` prints the summary, verifies every book, writes the PNG; a rerun is refused."""
    db = f"sqlite:///{tmp_path / 'sim.db'}"
    chart = tmp_path / "out" / "sim.png"
    args = [
        "--db",
        db,
        "simulate",
        "--days",
        "25",
        "--holders",
        "40",
        "--orders-per-day",
        "12",
        "--from",
        "2020-03-01",
        "--chart",
        str(chart),
    ]
    result = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["verify_ok"] is True and summary["days"] == 25
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    long, short = summary["products"]
    assert (long["product"], short["product"]) == ("BTC3L", "BTC3S")
    assert long["rebalances_adhoc"] >= 1  # 2020-03-12 is in range
    assert long["wiped_out_on"] is None
    assert long["entries"] > 25 * 12
    text = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert text.exit_code == 2 and "already has entries" in text.stderr
    again = CliRunner().invoke(cli, [*args, "--replace"], catch_exceptions=False)
    assert again.exit_code == 0 and "decay: (NAV_T/NAV_0) / (S_T/S_0)^L" in again.stdout


def test_journal_rebuilds_the_simulated_state(tmp_path: Path) -> None:
    """What the journal alone says (the fund fold: amounts, prices, schedule, holders) equals
    the simulation's in-memory state, the fold finds no broken fund rule, and the stored state
    record is that same state.
    """
    db = f"sqlite:///{tmp_path / 'fold.db'}"
    outcome = simulate(db, SimConfig(synthetic_days=40, **SMALL))
    lg = open_ledger(db)
    for run in outcome.runs:
        fold, finding = fold_entries(run.terms, lg.entries(run.terms.book))
        assert finding is None
        rebuilt = fold.state
        assert rebuilt == run.state
        record = fund_store.load_record(lg.engine, run.terms.book)
        assert record is not None and record.state == run.state
        assert record.seq == lg.head(run.terms.book)[0]
        shares = lg.balances(run.terms.book, asset=run.terms.share_asset.code)
        live = {k: v for k, v in run.holders.items() if v}
        assert {
            a[len(acc.HOLDER_PREFIX) :]: u
            for (a, _), u in shares.items()
            if a.startswith(acc.HOLDER_PREFIX)
        } == live
        assert outcome.verify[run.terms.book].ok
    lg.close()


@pytest.mark.postgres
def test_same_hashes_on_sqlite_and_postgres(tmp_path: Path, pg_url: str) -> None:
    """The same simulation gives byte-identical chains on SQLite and PostgreSQL."""
    config = SimConfig(days=30, start=date(2020, 2, 25), **SMALL)
    on_sqlite = simulate(f"sqlite:///{tmp_path / 'a.db'}", config)
    on_postgres = simulate(pg_url, SimConfig(days=30, start=date(2020, 2, 25), **SMALL))
    for book in ("BTC3L", "BTC3S"):
        a, b = on_sqlite.verify[book], on_postgres.verify[book]
        assert a.ok and b.ok
        assert (a.head_seq, a.head_hash) == (b.head_seq, b.head_hash)
        assert a.head_seq > 300


def test_nav_at_a_time_reads_the_journal_and_the_feed(tmp_path: Path) -> None:
    """NAV and multiple at a past instant come from balances as of then and the price then."""
    db = f"sqlite:///{tmp_path / 'at.db'}"
    outcome = simulate(db, SimConfig(days=3, start=date(2020, 3, 11), **SMALL))
    lg = open_ledger(db)
    funds = Funds(lg)
    at = datetime(2020, 3, 12, 12, tzinfo=UTC)
    nav = funds.nav("BTC3L", at=at)
    # The feed's last price at or before noon of the crash day is between its high and low.
    assert Decimal("4860.354004") <= Decimal(nav["price"]) <= Decimal("7929.116211")
    assert nav["at"] == "2020-03-12T12:00:00Z"
    last = funds.nav("BTC3L")
    assert last["nav_per_share"] == format_units(outcome.runs[0].closes[-1][1], 6)
    lg.close()
