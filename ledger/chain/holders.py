"""Holder ids and their addresses on the mirror chain.

A holder is the `<id>` of a ledger account `holder:<id>` (ids: 1-64 characters of
A-Za-z0-9_.@-). Its address is chosen in this order:

1. an explicit mapping given by the caller (`explicit={"alice": "0x..."}`);
2. the id itself when it is an Ethereum address (`holder:0xAbC...` mirrors to 0xAbC...);
3. otherwise it is derived: the last 20 bytes of
   `keccak256(b"token-ledger/holder/v1:" + holder_id.encode("utf-8"))`, checksummed (EIP-55).

The derivation is deterministic and independent of the book, so one holder has one address
across every fund and every chain. Nobody holds a key for a derived address: the mirror is
read-only for holders (transfers are disabled), so the address is a label, not a wallet.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import NewType

from eth_utils import is_address, keccak, to_checksum_address

from ledger.errors import Reason, Rejected

HolderId = NewType("HolderId", str)
HOLDER_PREFIX = "holder:"
DERIVATION_TAG = b"token-ledger/holder/v1:"
_HOLDER_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_UPPER_NIBBLES = frozenset("89abcdef")


def check_holder_id(holder_id: str) -> HolderId:
    """Return `holder_id` if it is a valid holder id, else refuse it."""
    if not isinstance(holder_id, str) or not _HOLDER_ID.match(holder_id):
        raise Rejected(
            Reason.BAD_INPUT, f"holder id {holder_id!r} must be 1-64 characters of A-Za-z0-9_.@-"
        )
    return HolderId(holder_id)


def holder_of(account_code: str) -> HolderId | None:
    """Return the holder id of a `holder:<id>` account code, or None for any other account."""
    if not account_code.startswith(HOLDER_PREFIX):
        return None
    return check_holder_id(account_code[len(HOLDER_PREFIX) :])


@functools.lru_cache(maxsize=65_536)
def derived_address(holder_id: str) -> str:
    """Return the derived checksummed address of `holder_id` (see the module docstring)."""
    digest = keccak(DERIVATION_TAG + check_holder_id(holder_id).encode("utf-8"))
    return checksum(digest[-20:])


def checksum(raw: bytes) -> str:
    """Return the EIP-55 mixed-case form of a 20-byte address."""
    lower = raw.hex()
    mask = keccak(lower.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if int(m, 16) >= 8 else c for c, m in zip(lower, mask, strict=False)
    )


def address_of(holder_id: str, *, explicit: Mapping[str, str] | None = None) -> str:
    """Return the checksummed chain address that mirrors `holder_id`.

    An explicit mapping wins, then an id that is itself an address, then the derivation.
    """
    check_holder_id(holder_id)
    if explicit and holder_id in explicit:
        given = explicit[holder_id]
        if not is_address(given):
            raise Rejected(Reason.BAD_INPUT, f"address {given!r} for {holder_id!r} is invalid")
        return to_checksum_address(given)
    if _ADDRESS.match(holder_id):
        return to_checksum_address(holder_id)
    return derived_address(holder_id)


def address_map(
    holder_ids: Iterable[str], *, explicit: Mapping[str, str] | None = None
) -> dict[HolderId, str]:
    """Return holder id -> address for every id, refusing two holders on one address."""
    result: dict[HolderId, str] = {}
    owners: dict[str, HolderId] = {}
    for holder_id in sorted(set(holder_ids)):
        address = address_of(holder_id, explicit=explicit)
        other = owners.get(address)
        if other is not None:
            raise Rejected(
                Reason.BAD_INPUT,
                f"holders {other!r} and {holder_id!r} map to one address {address}",
            )
        owners[address] = HolderId(holder_id)
        result[HolderId(holder_id)] = address
    return result
