"""Out-of-range values through the Python API and the fund CLI are refusals, never crashes."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger.cli.main import cli
from ledger.errors import Reason, Rejected
from ledger.services.ledger import open_ledger


@pytest.mark.parametrize(
    "call",
    [
        lambda lg: lg.entry("main", 2**256),
        lambda lg: lg.reverse("main", 2**256),
        lambda lg: lg.reverse("main", 0),
        lambda lg: lg.balance("main", "assets:bank", "USDT", as_of_seq=2**256),
        lambda lg: lg.balance("main", "assets:bank", "USDT", as_of_seq=-1),
    ],
)
def test_sequence_numbers_out_of_range_are_refused_by_the_api(tmp_path: Path, call: object) -> None:
    lg = open_ledger(f"sqlite:///{tmp_path / 'seq.db'}")
    lg.init()
    try:
        with pytest.raises(Rejected) as caught:
            call(lg)  # type: ignore[operator]
        assert caught.value.reason is Reason.BAD_INPUT
        assert "2**63-1" in str(caught.value)
    finally:
        lg.close()


@pytest.mark.parametrize("multiple", ["abc", "NaN", "Infinity", "1e999999999"])
def test_product_create_with_a_malformed_multiple_is_one_line_exit_2(
    tmp_path: Path, multiple: str
) -> None:
    db = f"sqlite:///{tmp_path / 'm.db'}"
    assert CliRunner().invoke(cli, ["--db", db, "init"]).exit_code == 0
    result = CliRunner().invoke(
        cli, ["--db", db, "product", "create", "ETH3L", "--multiple", multiple]
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("token-ledger: bad_input: ") and result.stderr.count("\n") == 1
