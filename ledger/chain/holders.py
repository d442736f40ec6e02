"""Holder ids and their addresses on the mirror chain.

A holder is the `<id>` of a ledger account `holder:<id>`. Its address is chosen in this order:

1. the id itself when it is an Ethereum address (`holder:0xab...` mirrors to 0xAb..., checksummed);
2. an explicit mapping given by the caller (`explicit={"alice": "0x..."}`);
3. otherwise it is derived: the last 20 bytes of
   `keccak256(b"token-ledger/holder/v1:" + holder_id.encode("utf-8"))`, checksummed (EIP-55).

Ids given by a caller are checked and spelled canonically by the fund's one rule,
`ledger.domain.fund.product.check_holder_id` (address ids lower case; mixed case only if valid
EIP-55). Ids read back from a book are never refused (older data may hold any spelling of an
address): `holder_key` lower-cases an address id, so two spellings of one address are one key.

The derivation is deterministic and independent of the book, so one holder has one address
across every fund and every chain. Nobody holds a key for a derived address: the mirror is
read-only for holders (transfers are disabled), so the address is a label, not a wallet.

Keccak-256 comes from eth-hash (C speed: a sync or a holder listing hashes every holder twice),
imported on the first hash, not with this module: `token-ledger holders` and every other
command import this module, and must not pay for the chain stack (docs/cli.md, start-up).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import NewType

from ledger.domain.fund.accounts import HOLDER_PREFIX, TREASURY
from ledger.domain.fund.keccak import checksum_address, keccak256
from ledger.domain.fund.product import check_holder_id
from ledger.errors import Reason, Rejected

HolderId = NewType("HolderId", str)
DERIVATION_TAG = b"token-ledger/holder/v1:"
# The fund's own holder ids: valid in a book although a customer may not take them.
FUND_HOLDER_IDS = frozenset({TREASURY.removeprefix(HOLDER_PREFIX)})
_ADDRESS = re.compile(r"^0[xX][0-9a-fA-F]{40}$")


def holder_key(holder_id: str) -> HolderId:
    """Return the one key of a holder id read from a book: an address lower case, else as is.

    Never refuses: the ledger already holds the account, and a refusal here would stop every
    later sync of the book.
    """
    if _ADDRESS.match(holder_id):
        return HolderId("0x" + holder_id[2:].lower())
    return HolderId(holder_id)


def holder_of(account_code: str) -> HolderId | None:
    """Return the holder key of a `holder:<id>` account code, or None for any other account."""
    if not account_code.startswith(HOLDER_PREFIX):
        return None
    return holder_key(account_code[len(HOLDER_PREFIX) :])


def canonical_holder_id(holder_id: str) -> HolderId:
    """Return a caller's holder id in its canonical spelling (the fund's rule), or refuse it.

    The fund's own ids (`treasury`) are accepted as they are.
    """
    if holder_id in FUND_HOLDER_IDS:
        return HolderId(holder_id)
    return HolderId(check_holder_id(holder_id))


def keccak(data: bytes) -> bytes:
    """Return the 32-byte Keccak-256 digest of `data` (eth-hash, loaded on first use)."""
    return keccak256(data)


def to_checksum_address(address: str) -> str:
    """Return the EIP-55 spelling of a `0x` + 40 hex digits address given in any case."""
    if not _ADDRESS.match(address):
        raise Rejected(Reason.BAD_INPUT, f"{address!r} is not a 0x + 40 hex digits address")
    return checksum(bytes.fromhex(address[2:]))


def is_checksum_address(address: str) -> bool:
    """Return whether `address` is spelled exactly as EIP-55 spells it."""
    return bool(_ADDRESS.match(address)) and address == to_checksum_address(address)


@functools.lru_cache(maxsize=65_536)
def derived_address(holder_id: str) -> str:
    """Return the derived checksummed address of `holder_id` (see the module docstring)."""
    return checksum(keccak(DERIVATION_TAG + holder_id.encode("utf-8"))[-20:])


def checksum(raw: bytes) -> str:
    """Return the EIP-55 mixed-case form of a 20-byte address (the domain's one spelling)."""
    return checksum_address("0x" + raw.hex())


def address_of(holder_id: str, *, explicit: Mapping[str, str] | None = None) -> str:
    """Return the checksummed chain address that mirrors `holder_id` (any accepted spelling).

    An id that is an address maps to that address; then an explicit mapping; then the
    derivation. `address_of("0xab...") == address_of("0xAb...")` (its EIP-55 spelling).
    """
    return _address(canonical_holder_id(holder_id), _explicit_map(explicit))


def book_address_of(holder_id: str) -> str:
    """Return the address that sync mirrors a holder id read from a book to (never refuses).

    For listing a book's holders: older data may hold ids that `address_of` now refuses (a
    mixed-case address that is not EIP-55); sync still mirrors them, to this address.
    """
    return _address(holder_key(holder_id), {})


def address_map(
    holder_keys: Iterable[str], *, explicit: Mapping[str, str] | None = None
) -> dict[HolderId, str]:
    """Return holder key -> address for ids read from a book; refuse two holders on one address."""
    mapping = _explicit_map(explicit)
    result: dict[HolderId, str] = {}
    owners: dict[str, HolderId] = {}
    for key in sorted({holder_key(h) for h in holder_keys}):
        address = _address(key, mapping)
        other = owners.get(address)
        if other is not None:
            raise Rejected(
                Reason.DUPLICATE,
                f"accounts {HOLDER_PREFIX}{other} and {HOLDER_PREFIX}{key} map to one"
                f" address {address}",
            )
        owners[address] = key
        result[key] = address
    return result


def _address(key: HolderId, explicit: Mapping[HolderId, str]) -> str:
    if _ADDRESS.match(key):
        address = to_checksum_address(key)
        given = explicit.get(key)
        if given is not None and given != address:
            raise Rejected(
                Reason.BAD_INPUT, f"holder {key} is an address; it cannot be mapped to {given}"
            )
        return address
    return explicit.get(key) or derived_address(key)


def _explicit_map(explicit: Mapping[str, str] | None) -> dict[HolderId, str]:
    """Return the caller's mapping keyed by canonical holder id, values checksummed."""
    result: dict[HolderId, str] = {}
    for holder_id, given in (explicit or {}).items():
        result[canonical_holder_id(holder_id)] = _checked_address(given, holder_id)
    return result


def _checked_address(given: str, holder_id: str) -> str:
    """Return `given` checksummed; refuse a non-address or a mixed case that is not EIP-55."""
    ok = isinstance(given, str) and given.startswith("0x") and bool(_ADDRESS.match(given))
    hex_part = given[2:] if ok else ""
    mixed = hex_part != hex_part.lower() and hex_part != hex_part.upper()
    if not ok or (mixed and not is_checksum_address(given)):
        raise Rejected(Reason.BAD_INPUT, f"address {given!r} for {holder_id!r} is invalid")
    return to_checksum_address(given)
