"""The proof file: a `LiabilityProof` as JSON-ready values and back (format "/1").

Reading is strict: every field must be present with its type, no other field is allowed,
hashes are 64 hex digits and amounts decimal strings. A field of the right shape but a wrong
value (a negative sum, a path of the wrong length) reads fine and fails `check_proof`, so a
tampered proof is reported as failing, not as unreadable.
"""

from __future__ import annotations

import re
from typing import Any

from ledger.domain.proof.hashing import FORMAT
from ledger.domain.proof.values import ChainRef, LiabilitiesRoot, LiabilityProof, Node
from ledger.errors import Reason, Rejected

FIELDS = (
    "format",
    "book",
    "holder",
    "seq",
    "secret",
    "commitment",
    "units",
    "index",
    "depth",
    "path",
    "root",
    "chain",
)
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$", re.ASCII)
_DECIMAL = re.compile(r"^-?(0|[1-9][0-9]{0,79})$", re.ASCII)
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$", re.ASCII)
_MAX_INT_DIGITS = 80
_MAX_PATH = 256  # far beyond the depth limit of 64: a longer path is not a proof at all


def proof_json(proof: LiabilityProof) -> dict[str, Any]:
    """Return the proof file's JSON object (amounts as decimal strings, hashes as hex)."""
    return {
        "format": FORMAT,
        "book": proof.book,
        "holder": proof.holder,
        "seq": proof.seq,
        "secret": proof.secret.hex(),
        "commitment": proof.commitment.hex(),
        "units": str(proof.units),
        "index": proof.index,
        "depth": proof.depth,
        "path": [{"hash": n.hash.hex(), "sum": str(n.sum)} for n in proof.path],
        "root": {"hash": proof.root.hash.hex(), "sum": str(proof.root.sum)},
        "chain": (
            None
            if proof.chain is None
            else {"chain_id": proof.chain.chain_id, "address": proof.chain.address}
        ),
    }


def root_json(root: LiabilitiesRoot) -> dict[str, Any]:
    """Return a root as JSON-ready values."""
    return {"hash": root.hash.hex(), "sum": str(root.sum), "depth": root.depth, "seq": root.seq}


def read_proof(value: Any) -> LiabilityProof:
    """Return the proof in a parsed proof file; refuse a malformed one (`bad_input`)."""
    obj = _object(value, "the proof", FIELDS)
    if obj["format"] != FORMAT:
        raise _bad(f"format is {obj['format']!r}, expected {FORMAT!r}")
    path = obj["path"]
    if not isinstance(path, list) or len(path) > _MAX_PATH:
        raise _bad(f"path must be a list of at most {_MAX_PATH} nodes")
    root = _object(obj["root"], "root", ("hash", "sum"))
    return LiabilityProof(
        book=_text(obj["book"], "book"),
        holder=_text(obj["holder"], "holder"),
        seq=_int(obj["seq"], "seq"),
        secret=_hash(obj["secret"], "secret"),
        commitment=_hash(obj["commitment"], "commitment"),
        units=_decimal(obj["units"], "units"),
        index=_int(obj["index"], "index"),
        depth=_int(obj["depth"], "depth"),
        path=tuple(_node(n, f"path[{i}]") for i, n in enumerate(path)),
        root=Node(_hash(root["hash"], "root.hash"), _decimal(root["sum"], "root.sum")),
        chain=None if obj["chain"] is None else _chain(obj["chain"]),
    )


def _bad(message: str) -> Rejected:
    return Rejected(Reason.BAD_INPUT, f"malformed proof file: {message}")


def _object(value: Any, what: str, fields: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(f"{what} must be a JSON object")
    missing = [f for f in fields if f not in value]
    extra = sorted(str(k) for k in value if k not in fields)
    if missing or extra:
        raise _bad(f"{what}: missing {missing}, unknown {extra}")
    return value


def _node(value: Any, what: str) -> Node:
    node = _object(value, what, ("hash", "sum"))
    return Node(_hash(node["hash"], f"{what}.hash"), _decimal(node["sum"], f"{what}.sum"))


def _chain(value: Any) -> ChainRef:
    chain = _object(value, "chain", ("chain_id", "address"))
    address = chain["address"]
    if not isinstance(address, str) or not _ADDRESS.match(address):
        raise _bad("chain.address must be 0x and 40 hex digits")
    return ChainRef(_int(chain["chain_id"], "chain.chain_id"), address)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(f"{what} must be a non-empty string")
    return value


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or len(str(value)) > _MAX_INT_DIGITS:
        raise _bad(f"{what} must be a JSON integer")
    return value


def _decimal(value: Any, what: str) -> int:
    if not isinstance(value, str) or not _DECIMAL.match(value):
        raise _bad(f"{what} must be a decimal string of an integer, got {value!r}")
    return int(value)


def _hash(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not _HEX64.match(value):
        raise _bad(f"{what} must be 64 hex digits")
    return bytes.fromhex(value)
