"""Keccak-256 (the pre-standard SHA-3 Ethereum uses) and EIP-55 address spellings.

Keccak-256 comes from eth-hash (installed with web3; no I/O; its pycryptodome backend loads
in about 10 ms, on first use only: just holder ids that look like Ethereum addresses are
hashed). EIP-55 is the five lines below; eth-utils would do it too, but importing it costs
about 180 ms, which every fund command would pay.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache


@cache
def _keccak() -> Callable[[bytes], bytes]:
    from eth_hash.auto import keccak

    return keccak


def keccak256(data: bytes) -> bytes:
    """Return the 32-byte Keccak-256 digest of `data` (eth-hash)."""
    return _keccak()(data)


def checksum_address(address: str) -> str:
    """Return the EIP-55 spelling of a 0x + 40 hex address (any case in, mixed case out)."""
    hex_digits = address[2:].lower()
    digest = keccak256(hex_digits.encode("ascii")).hex()
    spelled = (
        ch.upper() if ch.isalpha() and int(digest[i], 16) >= 8 else ch
        for i, ch in enumerate(hex_digits)
    )
    return "0x" + "".join(spelled)
