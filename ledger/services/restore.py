"""Replaying sealed entries into a book: extend its chain, check as it goes, write in bulk.

A replay (`token-ledger replay`, `Ledger.restore`) appends entries that already carry their
sequence numbers, record times and hashes. Everything the journal promises is checked while
the entries stream through, in one pass and one transaction: each one extends the head
exactly, its hash recomputes (already done by the JSON Lines reader, which recomputes every
hash against the header's definitions; done here for any other caller), keys are not used
twice, reversals undo an earlier entry exactly and once, balances stay in range and obey
their accounts' rules. Rows are written per chunk with executemany (COPY on PostgreSQL);
balances and the head are written once, at the end. Nothing touches the database per entry
except the reversal of an entry outside the current chunk (one lookup).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from json.encoder import encode_basestring as _s

from ledger.domain.canonical import (
    Definitions,
    encode_fields,
    encode_postings,
    matching_encoding,
)
from ledger.domain.money import UINT256_MAX
from ledger.errors import Reason, Rejected
from ledger.storage.journal_store import JournalStore

Row = tuple[int, str, int, int, str | None, int | None, str, bytes, bytes]
Record = tuple[Row, list[tuple[str, str, int]]]


_UNKNOWN = -1


class Restore:
    """One replay into `book`, inside the caller's write transaction."""

    def __init__(
        self, store: JournalStore, book: str, definitions: Definitions, *, hashes_checked: bool
    ) -> None:
        found = store.lock_head_and_owner(book)
        if found is None:
            raise Rejected(Reason.UNKNOWN_BOOK, f"unknown book {book!r}")
        (self.seq, self.hash), owner = found
        if owner is not None:
            raise Rejected(
                Reason.FUND_BOOK, f"book {book} belongs to a {owner} product: it is not replayed"
            )
        self.store, self.book, self.definitions = store, book, definitions
        self.book_json = _s(book)
        self.hashes_checked = hashes_checked
        self.start_seq = self.seq
        self.encoding: int | None = None if self.seq == 0 else _UNKNOWN
        self.balances = store.all_balances(book) if self.seq else {}
        rules = {code: rule for code, (_, rule) in definitions.accounts.items()}
        self.non_negative = frozenset(a for a, r in rules.items() if r == "non_negative")
        self.non_positive = frozenset(a for a, r in rules.items() if r == "non_positive")
        self.keys: set[str] = set()
        self.reversed: set[int] = set()
        self.count = 0
        self._amount = store.db_amount

    def feed(self, records: Sequence[Record]) -> None:
        """Check and write one chunk of consecutive records."""
        book, balances = self.book, self.balances
        guarded = self.non_negative | self.non_positive
        entry_rows: list[tuple[object, ...]] = []
        posting_rows: list[tuple[object, ...]] = []
        chunk: dict[int, list[tuple[str, str, int]]] = {}
        amount = self._amount
        self._check_keys(records)
        for row, postings in records:
            seq, _, _, _, key, reverses, _, prev, hash_ = row
            if seq != self.seq + 1 or prev != self.hash:
                raise Rejected(
                    Reason.HASH_MISMATCH,
                    f"entry {seq} does not extend {book} at {self.seq} (chain mismatch)",
                )
            if not self.hashes_checked:
                self._check_hash(row, postings)
            if reverses is not None:
                self._check_reversal(seq, reverses, postings, chunk)
            for account, asset, units in postings:
                k = (account, asset)
                balances[k] = balances.get(k, 0) + units
            # Balances are checked after the whole entry, as a post checks them.
            for account, asset, _ in postings:
                balance = balances[(account, asset)]
                if account in guarded or not -UINT256_MAX <= balance <= UINT256_MAX:
                    self._check_balance(account, asset, balance)
            chunk[seq] = postings
            digest = b"" if key is None else _request_digest(book, row, postings)
            # (book, seq, kind, eff, rec, key, digest, reverses, meta, prev, hash, encoding)
            entry_rows.append((book, *row[:5], digest, *row[5:]))
            posting_rows.extend(
                [(book, seq, idx, a, c, amount(u)) for idx, (a, c, u) in enumerate(postings)]
            )
            self.seq, self.hash = seq, hash_
        self.store.insert_entries(entry_rows)
        self.store.insert_posting_rows(posting_rows)
        self.count += len(records)

    def finish(self) -> tuple[int, bytes]:
        """Write the balances and the head once; return the new head."""
        self.store.upsert_balances(self.book, self.balances)
        self.store.set_head(self.book, self.seq, self.hash)
        return self.seq, self.hash

    def _check_keys(self, records: Sequence[Record]) -> None:
        keys = [row[4] for row, _ in records if row[4] is not None]
        if not keys:
            return
        fresh = set(keys)
        if len(fresh) != len(keys) or not fresh.isdisjoint(self.keys):
            raise Rejected(Reason.DUPLICATE, "an idempotency key is used twice in the replay")
        if self.start_seq and self.store.keys_used(self.book, sorted(fresh)):
            raise Rejected(Reason.DUPLICATE, "an idempotency key of the replay is already used")
        self.keys |= fresh

    def _check_hash(self, row: Row, postings: list[tuple[str, str, int]]) -> None:
        seq, kind, eff, rec, key, reverses, meta, prev, hash_ = row
        key_json = "null" if key is None else _s(key)
        reverses_json = "null" if reverses is None else f'"{reverses}"'
        body = (
            f',{self.book_json},"{seq}",{_s(kind)},"{eff}","{rec}",{key_json},{reverses_json},'
            f"{meta},{encode_postings(postings)}"
        )
        found = matching_encoding(
            prev_hash=prev,
            stated=hash_,
            body=body,
            definitions_json=self.definitions.encode_used(postings),
            # Continuing a book whose last encoding is not known here: accept either once.
            last=None if self.encoding == _UNKNOWN else self.encoding,
        )
        if found is None:
            raise Rejected(
                Reason.HASH_MISMATCH,
                f"entry {seq}: hash does not match its content and the definitions of what it"
                " posts to",
            )
        self.encoding = found

    def _check_reversal(
        self,
        seq: int,
        target: int,
        postings: list[tuple[str, str, int]],
        chunk: dict[int, list[tuple[str, str, int]]],
    ) -> None:
        if not 1 <= target < seq:
            raise Rejected(Reason.UNKNOWN_ENTRY, f"book {self.book} has no entry {target}")
        if target in self.reversed or (
            target <= self.start_seq and self.store.reversed_by(self.book, target) is not None
        ):
            raise Rejected(Reason.ALREADY_REVERSED, f"entry {target} is already reversed")
        original = chunk.get(target)
        if original is None:  # written by an earlier chunk of this transaction, or before
            rows = self.store.posting_rows(self.book, target, target)
            original = [(a, c, u) for _, a, c, u in rows]
        if sorted((a, c, -u) for a, c, u in original) != sorted(postings):
            raise Rejected(
                Reason.BAD_INPUT, f"entry {seq}: a reversal of {target} must negate its postings"
            )
        self.reversed.add(target)

    def _check_balance(self, account: str, asset: str, balance: int) -> None:
        if not -UINT256_MAX <= balance <= UINT256_MAX:
            raise Rejected(
                Reason.AMOUNT_OUT_OF_RANGE, f"balance of {account} {asset} exceeds uint256"
            )
        if (balance < 0 and account in self.non_negative) or (
            balance > 0 and account in self.non_positive
        ):
            rule = "non_negative" if balance < 0 else "non_positive"
            raise Rejected(
                Reason.BALANCE_CONSTRAINT,
                f"{account} would hold {balance} {asset}, which breaks its rule {rule}",
                account=account,
                asset=asset,
            )


def _request_digest(book: str, row: Row, postings: list[tuple[str, str, int]]) -> bytes:
    """Return the idempotency digest of a keyed entry (canonical.request_digest, from rows)."""
    _, kind, eff, _, key, reverses, meta, *_ = row
    return hashlib.sha256(
        encode_fields(
            book=book,
            seq=0,
            kind=kind,
            effective_us=eff,
            recorded_us=0,
            key=key,
            reverses=reverses,
            metadata_json=meta,
            postings_json=encode_postings(postings),
        )
    ).digest()
