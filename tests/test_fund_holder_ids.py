"""Holder ids: the fund's own ids are reserved, and an Ethereum address has one spelling (lower
case), accepted lower case or EIP-55 checksummed, so one address is one holder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from eth_utils import keccak, to_checksum_address

from ledger.clock import FixedClock
from ledger.domain.fund.keccak import checksum_address, keccak256
from ledger.domain.fund.product import check_holder_id
from ledger.errors import Reason, Rejected
from ledger.services.funds import Funds
from ledger.services.ledger import open_ledger

ADDRESS = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


@pytest.fixture
def funds(tmp_path: Path) -> Iterator[Funds]:
    lg = open_ledger(
        f"sqlite:///{tmp_path / 'ids.db'}", clock=FixedClock(datetime(2026, 1, 5, tzinfo=UTC))
    )
    lg.init()
    service = Funds(lg)
    service.create_product("BTC3L")
    service.set_price("BTC", "100")
    yield service
    lg.close()


def test_keccak_and_eip55_match_eth_utils() -> None:
    """The domain's Keccak-256 (eth-hash) and EIP-55 agree with eth_utils and with the
    published digest of the empty string (block edges included)."""
    empty = "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert keccak256(b"").hex() == empty
    assert checksum_address("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed") == (
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # EIP-55's own example
    )
    for size in (0, 1, 135, 136, 137, 272, 300):
        data = bytes(i % 256 for i in range(size))
        assert keccak256(data) == keccak(data)
    for _ in range(20):
        address = "0x" + os.urandom(20).hex()
        assert checksum_address(address) == to_checksum_address(address)


@pytest.mark.parametrize("holder", ["treasury", "Treasury", "TREASURY"])
def test_reserved_holder_ids_are_refused(holder: str) -> None:
    """The fund's own holder ids cannot be taken by a customer."""
    with pytest.raises(Rejected, match="reserved"):
        check_holder_id(holder)


def test_an_address_has_one_spelling() -> None:
    """An address is accepted lower case or EIP-55, stored lower case; other spellings fail."""
    assert check_holder_id(ADDRESS) == ADDRESS
    assert check_holder_id(CHECKSUMMED) == ADDRESS
    for bad in (
        ADDRESS.upper().replace("0X", "0x"),
        CHECKSUMMED.replace("a", "A", 1),
        "0X" + ADDRESS[2:],
    ):
        with pytest.raises(Rejected) as caught:
            check_holder_id(bad)
        assert caught.value.reason is Reason.BAD_INPUT
    assert check_holder_id("alice") == "alice"


def test_two_spellings_of_an_address_are_one_holder(funds: Funds) -> None:
    """Minting to both spellings of one address credits one holder account."""
    funds.mint("BTC3L", ADDRESS, cash="100")
    funds.mint("BTC3L", CHECKSUMMED, cash="100")
    rows = funds.holders("BTC3L")["holders"]
    # Each 99.9 net buys 0.99750374 shares at NAV 100 (the rest pays its own 3x trade).
    assert [(r["holder"], r["shares"]) for r in rows] == [(ADDRESS, "1.995007480000000000")]
    with pytest.raises(Rejected, match="reserved"):
        funds.mint("BTC3L", "treasury", cash="100")


def test_statements_read_the_treasury_and_any_address_spelling(funds: Funds) -> None:
    """Reads accept the fund's own ids and either address spelling (the canonical holder)."""
    funds.mint("BTC3L", CHECKSUMMED, cash="100")
    funds.mint("BTC3L", "alice", cash="104")
    funds.merge("BTC3L", "7:1")  # the share index: no unit moves, nothing to the treasury
    treasury = funds.statement("BTC3L", "treasury")
    assert treasury["entries"] == [] and treasury["shares"] == "0.000000000000000000"
    mine = funds.statement("BTC3L", CHECKSUMMED)
    assert mine["holder"] == ADDRESS
    assert [(e["kind"], e["shares_delta"], e["units_delta"]) for e in mine["entries"]] == [
        ("mint", "0.997503740000000000", "0.997503740000000000"),
        # floor(0.99750374e18 / 7) = 142500534285714285 base units; the units stay
        ("merge", "-0.855003205714285715", "0.000000000000000000"),
    ]
    assert mine["shares"] == "0.142500534285714285"
