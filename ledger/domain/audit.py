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
from json.encoder import encode_basestring as _s

from ledger.domain.canonical import FORMAT_TAG, GENESIS_HASH
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
    _names: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._book_json = _s(self.book)

    def feed(self, row: EntryRow, postings: Sequence[tuple[str, str, int]]) -> bool:
        """Check one entry; return False (and keep the finding) at the first problem.

        `row` is (seq, kind, effective_us, recorded_us, key, reverses, metadata_json,
        prev_hash, hash) as stored; `postings` are (account, asset, units) in posting order.
        """
        return self.feed_chunk([row], [(row[0], a, c, u) for a, c, u in postings])

    def feed_chunk(
        self, rows: Sequence[EntryRow], postings: Sequence[tuple[int, str, str, int]]
    ) -> bool:
        """Check consecutive entries; return False (and keep the finding) at the first problem.

        `postings` are (seq, account, asset, units) ordered by seq and posting order, for
        exactly the entries in `rows`. This loop runs a million times in an audit, so it binds
        its lookups to locals and memoises the JSON form of account and asset codes.
        """
        if self.finding is not None:
            return False
        names = self._names
        balances = self.balances
        rules = self.rules
        sha256 = hashlib.sha256
        book_json = self._book_json
        head_seq, head_hash = self.head_seq, self.head_hash
        count = len(postings)
        i = 0
        for seq, kind, effective_us, recorded_us, key, reverses, meta, prev, stored in rows:
            if seq != head_seq + 1:
                self.head_seq, self.head_hash = head_seq, head_hash
                return self._found(
                    head_seq + 1, f"sequence gap: expected {head_seq + 1}, found {seq}"
                )
            if prev != head_hash:
                return self._found(seq, "prev_hash does not link to the previous entry's hash")
            lines = []
            totals: dict[str, int] = {}
            start = i
            while i < count and postings[i][0] == seq:
                _, account, asset, units = postings[i]
                i += 1
                account_json = names.get(account)
                if account_json is None:
                    account_json = names[account] = _s(account)
                asset_json = names.get(asset)
                if asset_json is None:
                    asset_json = names[asset] = _s(asset)
                lines.append(f'[{account_json},{asset_json},"{units}"]')
                totals[asset] = totals.get(asset, 0) + units
                k = (account, asset)
                balances[k] = balances.get(k, 0) + units
            key_json = "null" if key is None else _s(key)
            reverses_json = "null" if reverses is None else f'"{reverses}"'
            canonical = (
                f'["{FORMAT_TAG}",{book_json},"{seq}",{_s(kind)},"{effective_us}",'
                f'"{recorded_us}",{key_json},{reverses_json},{meta},[{",".join(lines)}]]'
            ).encode()
            if sha256(head_hash + canonical).digest() != stored:
                return self._found(seq, "hash does not match the entry's canonical encoding")
            if i == start:
                return self._found(seq, "entry has no postings")
            if any(totals.values()):
                return self._found(seq, "postings do not sum to zero per asset")
            if rules:
                for _, account, asset, _units in postings[start:i]:
                    rule = rules.get(account)
                    if rule is not None and not rule.allows(balances[(account, asset)]):
                        return self._found(
                            seq, f"{account} breaks its rule {rule.value} in {asset}"
                        )
            head_seq, head_hash = seq, stored
            self.head_seq, self.head_hash = head_seq, head_hash
        if i != count:
            return self._found(postings[i][0], "postings exist for an entry that does not")
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
        if self.head_seq > stored_head[0]:
            extra = stored_head[0] + 1
            return Finding(
                extra,
                f"entry {extra} is beyond the stored head {stored_head[0]}"
                " (appended outside the ledger)",
            )
        if stored_head[0] > self.head_seq:
            missing = self.head_seq + 1
            return Finding(
                missing, f"entry {missing} is missing: the stored head is {stored_head[0]}"
            )
        if stored_head != (self.head_seq, self.head_hash):
            return Finding(stored_head[0], f"stored head {stored_head[0]} does not match the chain")
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
