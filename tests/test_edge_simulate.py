"""`simulate` refuses what it could not honour before it simulates anything (exit 2, one
line, no database written): a chart path it cannot write, and a non-BTC product on the
bundled BTC prices."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger.cli.main import cli


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--chart", "{tmp}/x.txt"], "--chart must name a .png file"),
        (["--chart", "{tmp}"], "is a directory"),
        (["--products", "ETH3L"], "the bundled prices are BTC's, not ETH's"),
        (["--products", "BTC3L,ETH5S"], "not ETH's"),
    ],
)
def test_simulate_refuses_before_it_runs(tmp_path: Path, args: list[str], fragment: str) -> None:
    db = tmp_path / "sim.db"
    argv = ["--db", f"sqlite:///{db}", "simulate", "--days", "3", *args]
    result = CliRunner().invoke(cli, [a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("token-ledger: bad_input: ")
    assert fragment in result.stderr and result.stderr.count("\n") == 1
    assert not db.exists()  # nothing was simulated or written


def test_an_eth_fund_simulates_on_synthetic_prices(tmp_path: Path) -> None:
    db = tmp_path / "eth.db"
    argv = ["--db", f"sqlite:///{db}", "--json", "simulate", "--products", "ETH3L"]
    argv += ["--synthetic", "5", "--holders", "10", "--orders-per-day", "3", "--no-chart"]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 0, result.output


def test_the_summary_names_the_day_a_fund_kept_only_dust() -> None:
    """BTC3S over 2014-2022 ends at 1.6e-17 of its start without a wipe-out entry: the
    summary names the first close below 1e-6 of NAV_0 (split-adjusted), not just '-'."""
    from datetime import date
    from fractions import Fraction

    from ledger.domain.fund.state import FundState
    from ledger.sim.driver import ProductRun
    from ledger.sim.summary import _first_day_below
    from tests.fund.helpers import zero_fee_terms

    run = ProductRun(terms=zero_fee_terms("BTC3S"), state=FundState())
    nav0 = run.terms.nav0_units
    run.closes = [
        (date(2020, 1, 1), nav0, Fraction(1)),
        (date(2020, 1, 2), nav0 // 10, Fraction(1, 10**4)),  # 1e-5 of NAV_0: not yet
        (date(2020, 1, 3), nav0 // 100, Fraction(1, 10**5)),  # 1e-7 of NAV_0
    ]
    assert _first_day_below(run, nav0, Fraction(1, 10**6)) == "2020-01-03"
    assert _first_day_below(run, nav0, Fraction(1, 10**9)) is None
