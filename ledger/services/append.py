"""Appending a batch of entries inside one transaction: the write path of the ledger.

Order of work, all inside the caller's transaction:
1. check every draft in the pure domain (shape, balance per asset, ranges);
2. lock the head of every book touched, in sorted order (no deadlock between batches);
3. load, once, what the batch needs: accounts, assets, used idempotency keys, balances;
4. for each draft in order: resolve idempotency, check the reversal, apply postings to the
   in-memory balances and check every balance rule, seal it into the chain;
5. write entries, postings, changed balances and new heads with executemany.
Nothing is written unless every draft passes, so a refused batch changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ledger.domain.balances import check_rules
from ledger.domain.canonical import (
    ENCODING,
    Definitions,
    chain_hash,
    encode_fields,
    encode_metadata,
    encode_postings,
    request_digest,
)
from ledger.domain.journal import (
    BalanceRule,
    EntryDraft,
    JournalEntry,
    check_draft,
    from_micros,
    to_micros,
)
from ledger.domain.money import UINT256_MAX
from ledger.errors import Reason, Rejected, invariant
from ledger.storage.journal_store import JournalStore, Pending, small_append
from ledger.storage.mapping import rows_to_entries

SCAN_THRESHOLD = 20_000
"""Above this many accounts in one batch, read the book's balances in one scan, not by key."""


@dataclass(frozen=True)
class _Reads:
    """What `_prepare` asked the store for one book, before any of it is read."""

    held: tuple[int, bytes] | None  # the head, when this transaction holds it already
    head: Pending[tuple[tuple[int, bytes], str | None] | None] | None
    needed: set[str]
    accounts: Pending[dict[str, tuple[str, str]]] | None
    keys: Pending[dict[str, tuple[int, bytes]]] | None
    balances: Pending[dict[tuple[str, str], int]]


class AppendBatch:
    """One transaction's worth of appends."""

    def __init__(
        self,
        store: JournalStore,
        asset_cache: dict[str, int],
        account_cache: dict[str, dict[str, tuple[str, str]]],
        now: datetime,
        rule_cache: dict[str, dict[str, BalanceRule]] | None = None,
        rule_set_cache: dict[str, tuple[set[str], set[str]]] | None = None,
        *,
        owner: str | None = None,
        owner_cache: dict[str, str] | None = None,
        locked: dict[str, tuple[int, bytes]] | None = None,
        definition_cache: dict[str, Definitions] | None = None,
    ) -> None:
        self.store = store
        self.owner = owner
        self.owners = {} if owner_cache is None else owner_cache
        self.locked = {} if locked is None else locked  # heads this transaction holds locked
        self.assets = asset_cache
        self.accounts = account_cache
        self.rule_cache = {} if rule_cache is None else rule_cache
        self.recorded_us = to_micros(now)
        self.recorded_at = from_micros(self.recorded_us)
        self.heads: dict[str, tuple[int, bytes]] = {}
        self.rules: dict[str, dict[str, BalanceRule]] = {}
        self.rule_sets: dict[str, tuple[set[str], set[str]]] = (
            {} if rule_set_cache is None else rule_set_cache
        )
        self.balances: dict[str, dict[tuple[str, str], int]] = {}
        self.dirty: dict[str, set[tuple[str, str]]] = {}
        self.used_keys: dict[str, dict[str, tuple[int, bytes]]] = {}
        self.reversed: set[tuple[str, int]] = set()
        self.entry_rows: list[tuple[object, ...]] = []
        self.posting_rows: list[tuple[str, int, int, str, str, int]] = []
        self.made: dict[tuple[str, int], JournalEntry] = {}
        self.definitions = {} if definition_cache is None else definition_cache

    # --- public ---------------------------------------------------------------------------------
    def append(self, drafts: Sequence[EntryDraft]) -> list[JournalEntry]:
        """Check, seal and write `drafts`; return the recorded entries in order."""
        for draft in drafts:
            check_draft(draft)
        if small_append(sum(len(d.postings) for d in drafts)):
            # One pipeline on PostgreSQL: the reads go out together after the lock (one
            # round trip), the writes with the end of the block or, inside the caller's
            # pipeline, with the commit.
            with self.store.pipelined():
                self._prepare(drafts)
                results = self._seal(drafts)
        else:  # written with COPY, which a pipeline cannot carry: only the reads are
            with self.store.pipelined():
                self._prepare(drafts)
            results = self._seal(drafts)
        return [
            r if isinstance(r, JournalEntry) else self._load(drafts[i].book, r)
            for i, r in enumerate(results)
        ]

    # --- steps ----------------------------------------------------------------------------------
    def _seal(self, drafts: Sequence[EntryDraft]) -> list[JournalEntry | int]:
        """Seal every draft into its book's chain (a repeated key: the original's entry or
        seq) and write the batch."""
        results: list[JournalEntry | int] = []
        for draft in drafts:
            duplicate = self._resolve_key(draft)
            if duplicate is not None:
                results.append(duplicate)
                continue
            seq, prev_hash = self.heads[draft.book]
            results.append(self._append_one(draft, seq + 1, self.recorded_us, prev_hash))
        self._write()
        return results

    def _prepare(self, drafts: Sequence[EntryDraft]) -> None:
        """Read what the batch needs: every statement is sent before the first is read, so
        on PostgreSQL (pipeline mode) the head locks and reads of all books cost one round
        trip. Each read is sent after its book's lock, in sorted book order: the balances
        are those the previous holder of the lock committed."""
        by_book: dict[str, list[EntryDraft]] = {}
        for draft in drafts:
            by_book.setdefault(draft.book, []).append(draft)
        asked = {book: self._ask(book, by_book[book]) for book in sorted(by_book)}
        for book, reads in asked.items():
            self._receive(book, by_book[book], reads)

    def _ask(self, book: str, drafts: list[EntryDraft]) -> _Reads:
        store = self.store
        held = self.locked.get(book)
        head = None if held is not None else store.ask_head_and_owner(book)
        needed = {p.account for d in drafts for p in d.postings}
        known = self.accounts.get(book)
        if known is None or book not in self.rule_cache:
            self.accounts[book] = {}
            self.rule_cache[book] = {}
            self.rule_sets.pop(book, None)
            self.definitions.pop(book, None)
            known = self.accounts[book]
        missing = [code for code in needed if code not in known]  # not `needed - known.keys()`:
        accounts = (  # that walks every key of a book of millions of accounts
            None
            if not missing
            else store.ask_accounts(book)
            if len(missing) > SCAN_THRESHOLD
            else store.ask_accounts_named(book, missing)
        )
        keys = sorted({d.idempotency_key for d in drafts if d.idempotency_key})
        return _Reads(
            held=held,
            head=head,
            needed=needed,
            accounts=accounts,
            keys=store.ask_keys_used(book, keys) if keys else None,
            balances=store.ask_all_balances(book)
            if len(needed) > SCAN_THRESHOLD
            else store.ask_balances_of(book, needed),
        )

    def _receive(self, book: str, drafts: list[EntryDraft], reads: _Reads) -> None:
        head = reads.held if reads.head is None else self._locked_head(book, reads.head.result())
        if head is None:
            raise Rejected(Reason.UNKNOWN_BOOK, f"book {book!r} has no accounts: open one first")
        self.heads[book] = head
        self._check_owner(book)
        self._load_accounts(book, reads)
        self._check_assets(drafts)
        self.used_keys[book] = {} if reads.keys is None else reads.keys.result()
        self.balances[book] = reads.balances.result()
        self.dirty[book] = set()

    def _locked_head(
        self, book: str, found: tuple[tuple[int, bytes], str | None] | None
    ) -> tuple[int, bytes] | None:
        """Return the head read with its lock, remembering the book's owner (a reservation
        is write-once, so one found is kept; a book found free is looked up again by the
        next transaction)."""
        if found is None:
            return None
        head, owner = found
        if owner is not None:
            self.owners[book] = owner
        return head

    def _check_owner(self, book: str) -> None:
        """Refuse a book reserved for another writer (a fund's book: the fund engine only)."""
        owner = self.owners.get(book)  # read with the head lock, here or by the unit of work
        if owner is None:
            return
        if owner != self.owner:
            raise Rejected(
                Reason.FUND_BOOK,
                f"book {book} belongs to a {owner} product: only the {owner} engine writes it"
                " (use its commands: mint, redeem, price, rebalance, split, merge)",
                book=book,
            )

    def _load_accounts(self, book: str, reads: _Reads) -> None:
        """Make sure every account posted to is open. Only the accounts the cache did not
        know were read (a book of ten million holders is never read whole for one entry; a
        batch posting to more than SCAN_THRESHOLD new accounts reads the book's in one scan).
        """
        known = self.accounts[book]
        if reads.accounts is not None:
            fetched = reads.accounts.result()
            known.update(fetched)
            rules = self.rule_cache[book]
            sets = self.rule_sets.get(book)
            for code, (_, rule) in fetched.items():
                if rule == "none":
                    continue
                rules[code] = BalanceRule(rule)
                if sets is not None:
                    (sets[0] if rules[code] is BalanceRule.NON_NEGATIVE else sets[1]).add(code)
            unknown = sorted(code for code in reads.needed if code not in known)
            if unknown:
                raise Rejected(
                    Reason.UNKNOWN_ACCOUNT, f"account {unknown[0]} is not open in book {book}"
                )
        self.rules[book] = self.rule_cache[book]
        if book not in self.definitions:
            self.definitions[book] = Definitions(self.assets, known)

    def _check_assets(self, drafts: list[EntryDraft]) -> None:
        needed = {p.asset for d in drafts for p in d.postings}
        if not needed <= self.assets.keys():
            self.assets.update(self.store.assets())
        missing = sorted(needed - self.assets.keys())
        if missing:
            raise Rejected(Reason.UNKNOWN_ASSET, f"unknown asset {missing[0]!r}: add it first")

    def _resolve_key(self, draft: EntryDraft) -> JournalEntry | int | None:
        """Return the original entry (or its seq) for a repeated key; refuse a conflict."""
        key = draft.idempotency_key
        if key is None:
            return None
        used = self.used_keys[draft.book].get(key)
        if used is None:
            return None
        seq, digest = used
        if digest != request_digest(draft):
            raise Rejected(
                Reason.IDEMPOTENCY_CONFLICT,
                f"key {key!r} was used by entry {seq} with different content",
                seq=seq,
            )
        return self.made.get((draft.book, seq), seq)

    def _check_reversal(self, draft: EntryDraft, next_seq: int) -> None:
        target = draft.reverses
        if target is None:
            return
        if target >= next_seq:
            raise Rejected(Reason.UNKNOWN_ENTRY, f"book {draft.book} has no entry {target}")
        if (draft.book, target) in self.reversed or self.store.reversed_by(draft.book, target):
            raise Rejected(Reason.ALREADY_REVERSED, f"entry {target} is already reversed")
        original = self.made.get((draft.book, target))
        lines = (
            [(p.account, p.asset, p.amount) for p in original.postings]
            if original is not None
            else [
                (a, c, int(u)) for _, a, c, u in self.store.posting_rows(draft.book, target, target)
            ]
        )
        if sorted((a, c, -u) for a, c, u in lines) != sorted(
            (p.account, p.asset, p.amount) for p in draft.postings
        ):
            raise Rejected(
                Reason.BAD_INPUT, f"a reversal of {target} must negate its postings exactly"
            )
        self.reversed.add((draft.book, target))

    def _append_one(
        self,
        draft: EntryDraft,
        seq: int,
        recorded_us: int,
        prev_hash: bytes,
    ) -> JournalEntry:
        book = draft.book
        if draft.reverses is not None:
            self._check_reversal(draft, seq)
        self._apply(book, draft)
        metadata_json = encode_metadata(draft.metadata)
        postings = [(p.account, p.asset, p.amount) for p in draft.postings]
        effective_us = to_micros(draft.effective_at)
        key = draft.idempotency_key
        hash_ = chain_hash(
            prev_hash,
            encode_fields(
                book=book,
                seq=seq,
                kind=draft.kind,
                effective_us=effective_us,
                recorded_us=recorded_us,
                key=key,
                reverses=draft.reverses,
                metadata_json=metadata_json,
                postings_json=encode_postings(postings),
                encoding=ENCODING,
                definitions_json=self.definitions[book].encode_used(postings),
            ),
        )
        digest = b"" if key is None else request_digest(draft)
        self.entry_rows.append(
            (
                book,
                seq,
                draft.kind,
                effective_us,
                recorded_us,
                key,
                digest,
                draft.reverses,
                metadata_json,
                prev_hash,
                hash_,
            )
        )
        self.posting_rows.extend(
            [
                (book, seq, idx, account, asset, units)
                for idx, (account, asset, units) in enumerate(postings)
            ]
        )
        if key is not None:
            self.used_keys[book][key] = (seq, digest)
        self.heads[book] = (seq, hash_)
        recorded_at = (
            self.recorded_at if recorded_us == self.recorded_us else from_micros(recorded_us)
        )
        entry = JournalEntry(
            draft=draft,
            seq=seq,
            recorded_at=recorded_at,
            prev_hash=prev_hash,
            hash=hash_,
        )
        self.made[(book, seq)] = entry
        return entry

    def _apply(self, book: str, draft: EntryDraft) -> None:
        """Apply the postings to the batch's balances, then check the balances they touch.

        The range is checked before the rules: a balance no database can hold is refused as
        such, whatever rule it would also break. The batch is discarded as a whole on a
        refusal, so updating in place is safe. This runs once per posting of a split of a
        million holders, so it stays flat and set-based.
        """
        balances = self.balances[book]
        keys = [(p.account, p.asset) for p in draft.postings]
        for key, posting in zip(keys, draft.postings, strict=True):
            balances[key] = balances.get(key, 0) + posting.amount
        self.dirty[book].update(keys)
        for key in keys:
            units = balances[key]
            if units > UINT256_MAX or units < -UINT256_MAX:
                check_rules({key: units}, {})
        rules = self.rules[book]
        if rules:
            non_negative, non_positive = self._rule_sets(book)
            for key in keys:
                units = balances[key]
                if (units < 0 and key[0] in non_negative) or (units > 0 and key[0] in non_positive):
                    check_rules({key: units}, rules)

    def _rule_sets(self, book: str) -> tuple[set[str], set[str]]:
        """Return the accounts that may not go below zero, and those that may not go above
        (kept up to date as `_load_accounts` learns accounts)."""
        cached = self.rule_sets.get(book)
        if cached is None:
            rules = self.rules[book]
            cached = self.rule_sets[book] = (
                {a for a, r in rules.items() if r is BalanceRule.NON_NEGATIVE},
                {a for a, r in rules.items() if r is BalanceRule.NON_POSITIVE},
            )
        return cached

    def _write(self) -> None:
        changed = {
            book: {key: self.balances[book][key] for key in keys}
            for book, keys in self.dirty.items()
        }
        self.store.write_append(
            self.entry_rows,
            self.posting_rows,
            changed,
            {book: self.heads[book] for book in changed},
        )
        invariant(
            len(self.entry_rows) == len({(r[0], r[1]) for r in self.entry_rows}),
            "a batch assigned one sequence number twice",
        )

    def _load(self, book: str, seq: int) -> JournalEntry:
        rows = self.store.entry_rows(book, seq, seq)
        return next(rows_to_entries(book, rows, self.store.posting_rows(book, seq, seq)))
