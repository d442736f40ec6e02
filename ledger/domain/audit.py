"""Audit replay: recompute a book's chain and balances from stored rows alone.

The `Auditor` is fed entries in sequence order as primitive fields (so that a million of them
stay cheap) and records the first sequence number at which anything disagrees: a gap, a broken
link, a hash that does not match the canonical encoding, postings that do not balance, or a
balance rule broken along the way. `finish` compares the recomputed balances and head with
what the database claims.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _s  # type: ignore[attr-defined]

from ledger.domain.canonical import FORMAT_TAG, GENESIS_HASH, encode_postings
from ledger.domain.journal import BalanceRule

EntryRow = tuple[int, str, int, int, str | None, int | None, str, bytes, bytes]
"""(seq, kind, effective_us, recorded_us, key, reverses, metadata_json, prev_hash, hash)"""


@dataclass
class Finding:
    """The first disagreement found, with the sequence number it concerns (0: the book)."""

    seq: int
    problem: str


@dataclass
class Auditor:
    """Fold over a book's entries that checks everything the journal promises."""

    book: str
    rules: Mapping[str, BalanceRule] = field(default_factory=dict)
    balances: dict[tuple[str, str], int] = field(default_factory=dict)
    head_seq: int = 0
    head_hash: bytes = GENESIS_HASH
    finding: Finding | None = None
    _book_json: str = ""

    def __post_init__(self) -> None:
        self._book_json = _s(self.book)

    def feed(
        self,
        row: EntryRow,
        postings: Sequence[tuple[str, str, int]],
    ) -> bool:
        """Check one entry; return False (and keep the finding) at the first problem.

        `row` is (seq, kind, effective_us, recorded_us, key, reverses, metadata_json,
        prev_hash, hash) as stored; `postings` are (account, asset, units) in posting order.
        """
        (
            seq,
            kind,
            effective_us,
            recorded_us,
            key,
            reverses,
            metadata_json,
            prev_hash,
            stored_hash,
        ) = row
        if self.finding is not None:
            return False
        if seq != self.head_seq + 1:
            expected = self.head_seq + 1
            return self._found(expected, f"sequence gap: expected {expected}, found {seq}")
        if prev_hash != self.head_hash:
            return self._found(seq, "prev_hash does not link to the previous entry's hash")
        key_json = "null" if key is None else _s(key)
        reverses_json = "null" if reverses is None else f'"{reverses}"'
        canonical = (
            f'["{FORMAT_TAG}",{self._book_json},"{seq}",{_s(kind)},"{effective_us}",'
            f'"{recorded_us}",{key_json},{reverses_json},{metadata_json},'
            f"{encode_postings(postings)}]"
        ).encode()
        if hashlib.sha256(self.head_hash + canonical).digest() != stored_hash:
            return self._found(seq, "hash does not match the entry's canonical encoding")
        if not postings:
            return self._found(seq, "entry has no postings")
        totals: dict[str, int] = {}
        balances = self.balances
        for account, asset, units in postings:
            totals[asset] = totals.get(asset, 0) + units
            k = (account, asset)
            balances[k] = balances.get(k, 0) + units
        if any(totals.values()):
            return self._found(seq, "postings do not sum to zero per asset")
        if self.rules:
            for account, asset, _ in postings:
                rule = self.rules.get(account)
                if rule is not None and not rule.allows(balances[(account, asset)]):
                    return self._found(seq, f"{account} breaks its rule {rule.value} in {asset}")
        self.head_seq = seq
        self.head_hash = stored_hash
        return True

    def finish(
        self,
        *,
        stored_balances: Mapping[tuple[str, str], int],
        stored_head: tuple[int, bytes],
    ) -> Finding | None:
        """Compare the recomputed state with the stored caches; return the first finding."""
        if self.finding is not None:
            return self.finding
        if stored_head != (self.head_seq, self.head_hash):
            return Finding(self.head_seq, f"stored head {stored_head[0]} does not match the chain")
        recomputed = {k: v for k, v in self.balances.items() if v != 0}
        stored = {k: v for k, v in stored_balances.items() if v != 0}
        if recomputed != stored:
            diff = sorted(set(recomputed.items()) ^ set(stored.items()))
            account, asset = diff[0][0]
            return Finding(
                0,
                f"stored balance of {account} {asset} is {stored.get((account, asset), 0)},"
                f" postings say {recomputed.get((account, asset), 0)}",
            )
        return None

    def _found(self, seq: int, problem: str) -> bool:
        self.finding = Finding(seq, problem)
        return False
