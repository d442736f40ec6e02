"""`holders` shows each holder's ERC-20 mirror address, as `chain sync` mirrors it."""

from __future__ import annotations

from pathlib import Path

from eth_utils import to_checksum_address

from ledger.chain import address_of
from tests.test_fund_cli import ok_json

WALLET = "0x8ba1f109551bd432803012645ac136ddd64dba72"


def test_holders_show_the_mirror_address(tmp_path: Path) -> None:
    """An 0x holder maps to itself (checksummed); any other id to its derived address."""
    db = f"sqlite:///{tmp_path / 'h.db'}"
    ok_json(db, "init")
    ok_json(db, "product", "create", "BTC3L")
    ok_json(db, "price", "BTC", "100", "--at", "2020-03-12T00:05:00Z")
    ok_json(db, "mint", "BTC3L", "alice", "--cash", "100", "--at", "2020-03-12T00:05:30Z")
    ok_json(db, "mint", "BTC3L", WALLET, "--cash", "50", "--at", "2020-03-12T00:05:45Z")
    rows = {row["holder"]: row["address"] for row in ok_json(db, "holders", "BTC3L")["holders"]}
    assert rows[WALLET] == to_checksum_address(WALLET)
    assert rows["alice"] == address_of("alice")
    assert rows["alice"] != rows[WALLET] and rows["alice"].startswith("0x")
