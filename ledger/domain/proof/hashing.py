"""The hashes of the liability tree, one function per node kind (docs/proof-of-liabilities.md).

H = SHA-256 and u256(x) = x as 32 bytes big-endian. A domain tag byte starts every preimage,
so a commitment, a leaf and an inner node can never be mistaken for one another.
"""

from __future__ import annotations

import hashlib
import hmac

from ledger.errors import Reason, Rejected

FORMAT = "token-ledger-liability-proof/1"
"""The `format` field of a proof file."""

KEY_BYTES = 32
HASH_BYTES = 32
MAX_DEPTH = 64
SUM_LIMIT = 2**256
"""Every units and sum must be below this (it must fit u256)."""

EMPTY_HASH = bytes(HASH_BYTES)
"""The hash of a padding node (its sum is 0)."""

TAG_COMMITMENT = b"\x00"
TAG_LEAF = b"\x01"
TAG_INNER = b"\x02"


def u256(value: int) -> bytes:
    """Return `value` as 32 bytes big-endian; refuse a negative value or one >= 2**256."""
    if not 0 <= value < SUM_LIMIT:
        raise Rejected(Reason.AMOUNT_OUT_OF_RANGE, f"{value} does not fit an unsigned 256-bit sum")
    return value.to_bytes(32, "big")


def check_key(key: bytes) -> bytes:
    """Return a book proof key if it is 32 bytes."""
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise Rejected(Reason.BAD_INPUT, "a book proof key is 32 bytes")
    return key


def secret_message(holder: str, seq: int) -> bytes:
    """Return the HMAC message of a holder's secret: utf8(holder_id) || 0x00 || u256(seq)."""
    return holder.encode() + b"\x00" + u256(seq)


def holder_secret(key: bytes, holder: str, seq: int) -> bytes:
    """Return a holder's secret at `seq`: HMAC-SHA256(book proof key, message)."""
    return hmac.digest(check_key(key), secret_message(holder, seq), "sha256")


def commitment_of(secret: bytes, holder: str) -> bytes:
    """Return a holder's commitment H(0x00 || secret || utf8(holder_id))."""
    return hashlib.sha256(TAG_COMMITMENT + secret + holder.encode()).digest()


def leaf_hash(commitment: bytes, units: int) -> bytes:
    """Return a leaf's hash H(0x01 || commitment || u256(units))."""
    return hashlib.sha256(TAG_LEAF + commitment + u256(units)).digest()


def inner_hash(left_hash: bytes, left_sum: int, right_hash: bytes, right_sum: int) -> bytes:
    """Return an inner node's hash H(0x02 || l.hash || u256(l.sum) || r.hash || u256(r.sum))."""
    return hashlib.sha256(
        TAG_INNER + left_hash + u256(left_sum) + right_hash + u256(right_sum)
    ).digest()


def empty_subtree_hashes(depth: int) -> list[bytes]:
    """Return the hash of an all-padding subtree of height 0..depth (its sum is always 0)."""
    hashes = [EMPTY_HASH]
    for _ in range(depth):
        hashes.append(inner_hash(hashes[-1], 0, hashes[-1], 0))
    return hashes
