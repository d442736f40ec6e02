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
