"""The ledger service: the one way to append to and read from the journal.

    from ledger.services.ledger import open_ledger
    lg = open_ledger("sqlite:///books.db")   # or postgresql://...
    lg.init()                                # create or upgrade the schema (idempotent)
    lg.add_asset(Asset("USDT", 6))
    lg.open_account(Account("BTC3L", "fund:collateral", AccountType.ASSET))
    entry = lg.post(draft)                   # one DB transaction, chained, checked

Every public call is one database transaction. Writes to one book are serialised by its
chain head: on PostgreSQL the head row is locked (`SELECT ... FOR UPDATE`), on SQLite the
whole database is (`BEGIN IMMEDIATE`). Writers to different PostgreSQL books never wait for
each other.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from ledger.clock import Clock, SystemClock
from ledger.domain.audit import Auditor, Finding, entry_row
from ledger.domain.canonical import GENESIS_HASH, Definitions
from ledger.domain.journal import (
    Account,
    AccountType,
    BalanceRule,
    EntryDraft,
    JournalEntry,
    check_account_code,
    check_book,
    check_draft,
    check_seq,
    reversal_of,
    to_micros,
)
from ledger.domain.money import Asset
from ledger.errors import Reason, Rejected, invariant
from ledger.services.append import AppendBatch
from ledger.services.bulk import BULK_POSTINGS, collector_paused
from ledger.services.prefetch import prefetch
from ledger.services.restore import Record, Restore
from ledger.services.verify_slice import SliceJob, slice_child, split_point
from ledger.storage import migrate
from ledger.storage.engine import make_engine
from ledger.storage.errors import DRIVER_ERRORS, connection_problem, translate
from ledger.storage.guards import missing_guards
from ledger.storage.journal_store import JournalStore, small_append
from ledger.storage.mapping import rows_to_entries

__all__ = ["Ledger", "UnitOfWork", "VerifyReport", "connection_problem", "open_ledger"]

READ_CHUNK = 5_000
RESTORE_CHUNK = 10_000
VERIFY_CHUNK = 20_000
EXPORT_CHUNK = 20_000


@dataclass(frozen=True)
class VerifyReport:
    """What `verify` found: ok, or the first sequence number where something disagrees."""

    book: str
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None


@dataclass(frozen=True)
class BookSnapshot:
    """A book as of one moment: reference data and a lazy iterator of its entries."""

    book: str
    head_seq: int
    assets: list[Asset]
    accounts: list[Account]
    entries: Iterator[JournalEntry]
    chunks: Iterator[tuple[list[Any], list[Any]]]
    """The same entries as stored rows, (entry rows, posting rows) per chunk: consume one."""


class Ledger:
    """Append-only, hash-chained double-entry journal over one database."""

    def __init__(self, engine: Engine, *, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock: Clock = clock or SystemClock()
        self._assets: dict[str, int] = {}
        self._accounts: dict[str, dict[str, tuple[str, str]]] = {}
        self._rules: dict[str, dict[str, BalanceRule]] = {}
        self._rule_sets: dict[str, tuple[set[str], set[str]]] = {}
        self._owners: dict[str, str] = {}
        self._definitions: dict[str, Definitions] = {}
        self._schema_checked = False

    # --- transactions -------------------------------------------------------------------------
    @contextmanager
    def _tx(
        self, *, write: bool, pipelined: bool = False, snapshot: str | None = None
    ) -> Iterator[JournalStore]:
        """Run one database transaction; map a busy database to a retryable rejection.

        `snapshot` (PostgreSQL, a read): see what another transaction sees, the one that
        exported it (`JournalStore.export_snapshot`) and is still open.

        `pipelined` (PostgreSQL; for a transaction of raw statements only, no SQLAlchemy
        Core, which cannot read results that are still on their way): the statements after
        the schema check go in pipeline mode, and the last writes travel with the COMMIT in
        one round trip; the pipeline ends after the commit.
        """
        try:
            with (
                self.engine.connect() as connection,
                ExitStack() as after_commit,
                connection.execution_options(tl_begin="IMMEDIATE" if write else "DEFERRED").begin(),
            ):
                store = JournalStore(connection)
                if not write and not store.is_sqlite:
                    # One snapshot for the whole read (PostgreSQL's READ COMMITTED would take a
                    # new one per statement, and an audit beside a live writer would see a
                    # head, entries and balances from different moments).
                    store.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    if snapshot is not None:
                        store.import_snapshot(snapshot)
                if write and not self._schema_checked:
                    self._check_schema(store)
                if pipelined and not store.is_sqlite:
                    after_commit.enter_context(store.raw.pipeline())
                yield store
        except DRIVER_ERRORS as exc:
            translated = translate(exc)
            if translated is exc:
                raise
            raise translated from exc

    def _check_schema(self, store: JournalStore) -> None:
        migrate.check_writable(store.connection)
        missing = missing_guards(lambda sql: [row[0] for row in store.all(sql)], store.dialect)
        if missing:
            raise Rejected(
                Reason.SCHEMA_VERSION,
                f"append-only guards are missing ({', '.join(missing)}): run `token-ledger init`",
            )
        self._schema_checked = True

    # --- schema and reference data ---------------------------------------------------------------
    def init(self) -> str:
        """Create or upgrade the schema to the newest revision; return the revision."""
        try:
            revision = migrate.upgrade(self.engine)
        except DRIVER_ERRORS as exc:
            translated = translate(exc)
            if translated is exc:
                raise
            raise translated from exc
        with self.engine.begin() as connection:
            store = JournalStore(connection)
            from ledger.storage.guards import install_guards

            install_guards(lambda sql: store.execute(sql).close(), store.dialect)
        self._schema_checked = False
        return revision

    def add_asset(self, asset: Asset) -> Asset:
        """Register an asset; idempotent when the scale matches, refused otherwise."""
        with self._tx(write=True) as store:
            _add_assets(store, [asset])
        return asset

    def asset(self, code: str) -> Asset:
        """Return a registered asset or refuse."""
        if code not in self._assets:
            with self._tx(write=False) as store:
                self._assets = store.assets()
        if code not in self._assets:
            raise Rejected(Reason.UNKNOWN_ASSET, f"unknown asset {code!r}: add it first")
        return Asset(code, self._assets[code])

    def assets(self) -> list[Asset]:
        """Return every registered asset, by code."""
        with self._tx(write=False) as store:
            self._assets = store.assets()
        return [Asset(code, scale) for code, scale in sorted(self._assets.items())]

    def open_account(self, account: Account) -> Account:
        """Open an account (and its book, if new); idempotent when identical."""
        self.open_accounts([account])
        return account

    def open_accounts(self, accounts: Sequence[Account]) -> None:
        """Open many accounts in one transaction; idempotent for identical ones."""
        with self._tx(write=True) as store:
            _open_accounts(store, accounts)
        self._forget({a.book for a in accounts})

    def _forget(self, books: Iterable[str]) -> None:
        for book in books:
            self._accounts.pop(book, None)
            self._rules.pop(book, None)
            self._rule_sets.pop(book, None)
            self._definitions.pop(book, None)

    def accounts(self, book: str) -> list[Account]:
        """Return the accounts of a book, by code."""
        with self._tx(write=False) as store:
            rows = store.accounts(check_book(book))
        return [
            Account(book, code, AccountType(type_), BalanceRule(rule))
            for code, (type_, rule) in sorted(rows.items())
        ]

    def definitions(self, book: str) -> Definitions:
        """Return what the codes of `book` mean (asset scales, account types and rules): what
        an entry of encoding 2 commits to (`ledger.domain.canonical.seal` takes it)."""
        with self._tx(write=False) as store:
            return Definitions(store.assets(), store.accounts(check_book(book)))

    def books(self) -> list[str]:
        """Return every book, by code."""
        with self._tx(write=False) as store:
            return store.books()

    # --- appends ----------------------------------------------------------------------------------
    def post(self, draft: EntryDraft) -> JournalEntry:
        """Append one entry in its own transaction; see `post_many`."""
        return self.post_many([draft])[0]

    def post_many(
        self, drafts: Sequence[EntryDraft], *, accounts: Sequence[Account] = ()
    ) -> list[JournalEntry]:
        """Append entries in one transaction, all or nothing; return them as recorded.

        Each draft must balance per asset and touch only opened accounts and known assets;
        every balance rule must hold after every entry. A draft whose idempotency key was used
        with the same content returns the original entry and writes nothing; the same key with
        other content is refused. `accounts` are opened first (idempotently), in the same
        transaction. A book reserved for an owner (a fund's) is refused with FUND_BOOK: its
        writer posts through `unit_of_work(owner=...)`.
        """
        if not drafts and not accounts:
            return []
        size = sum(len(d.postings) for d in drafts) + len(accounts)
        with (
            collector_paused(size >= BULK_POSTINGS),
            self._unit_of_work(None, pipelined=small_append(size)) as uow,
        ):
            return uow.post(drafts, accounts=accounts)

    def unit_of_work(self, *, owner: str | None = None) -> AbstractContextManager[UnitOfWork]:
        """Run one write transaction shared by everything done through the yielded object.

        Reads, appends and an adapter's own records (through `uow.connection` and the
        storage functions) commit together or not at all. `owner` is the writer the
        transaction acts for: a book reserved for an owner accepts appends only from it.
        """
        return self._unit_of_work(owner, pipelined=False)

    @contextmanager
    def _unit_of_work(self, owner: str | None, *, pipelined: bool) -> Iterator[UnitOfWork]:
        """`unit_of_work`; `pipelined` only for raw statements (see `_tx`): `post_many`."""
        uow: UnitOfWork | None = None
        try:
            with self._tx(write=True, pipelined=pipelined) as store:
                uow = UnitOfWork(self, store, owner)
                yield uow
        except BaseException:
            # Rolled back: accounts this transaction opened may sit in the caches.
            if uow is not None:
                uow.release()
            raise

    def _batch(
        self,
        store: JournalStore,
        *,
        owner: str | None = None,
        locked: dict[str, tuple[int, bytes]] | None = None,
    ) -> AppendBatch:
        """Return an append batch over `store` sharing this ledger's caches."""
        return AppendBatch(
            store,
            self._assets,
            self._accounts,
            self.clock.now(),
            self._rules,
            self._rule_sets,
            owner=owner,
            owner_cache=self._owners,
            locked=locked,
            definition_cache=self._definitions,
        )

    def restore(
        self,
        book: str,
        entries: Iterable[JournalEntry],
        *,
        assets: Sequence[Asset] = (),
        accounts: Sequence[Account] = (),
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Append already-sealed entries (a replay) in one transaction; return the count.

        `assets` and `accounts` are registered first, in the same transaction. Each entry must
        extend the book's chain exactly: its sequence number follows the head, its prev_hash is
        the head's hash, and its hash recomputes from its content and the definitions of what
        it posts to. Everything else is checked as for `post_many`. Nothing at all is written
        unless every entry passes.
        """
        records = (_record(book, check_draft(entry.draft), entry) for entry in entries)
        return self._replay(
            book, records, assets=assets, accounts=accounts, progress=progress, checked=False
        )[0]

    def replay(
        self,
        book: str,
        records: Iterable[Record],
        *,
        assets: Sequence[Asset],
        accounts: Sequence[Account],
        progress: Callable[[int], None] | None = None,
    ) -> tuple[int, int, bytes]:
        """Append the records of a JSON Lines export (`read_jsonl(...).records`, whose hashes
        the reader recomputed against `assets` and `accounts`) in one transaction; return
        (count, head seq, head hash). Checked as `restore`, in one pass, hashes not twice."""
        return self._replay(
            book, records, assets=assets, accounts=accounts, progress=progress, checked=True
        )

    def _replay(
        self,
        book: str,
        records: Iterable[Record],
        *,
        assets: Sequence[Asset],
        accounts: Sequence[Account],
        progress: Callable[[int], None] | None,
        checked: bool,
    ) -> tuple[int, int, bytes]:
        self._forget([book])
        try:
            with collector_paused(), self._tx(write=True) as store:
                _add_assets(store, assets)
                _open_accounts(store, accounts)
                store.ensure_book(check_book(book), GENESIS_HASH)
                definitions = Definitions(store.assets(), store.accounts(book))
                restore = Restore(store, book, definitions, hashes_checked=checked)
                deferred = store.defer_posting_index()
                for chunk in _batched(records, RESTORE_CHUNK):
                    restore.feed(chunk)
                    if progress is not None:
                        progress(len(chunk))
                seq, hash_ = restore.finish()
                if deferred:
                    store.rebuild_posting_index()
        finally:
            self._forget([book])
            self._assets.clear()
        return restore.count, seq, hash_

    def reverse(
        self,
        book: str,
        seq: int,
        *,
        key: str | None = None,
        effective_at: datetime | None = None,
    ) -> JournalEntry:
        """Append the entry that exactly undoes entry `seq` and points to it.

        A retry with the same `key` returns the reversal already made, whatever the time.
        """
        if key is not None:
            done = self.entry_with_key(book, key)
            if done is not None and done.draft.reverses == seq:
                return done
        original = self.entry(book, seq)  # checks the sequence number's range
        moment = effective_at or self.clock.now()
        return self.post(reversal_of(original, effective_at=moment, key=key))

    def entry_with_key(self, book: str, key: str) -> JournalEntry | None:
        """Return the entry of `book` posted under idempotency `key`, or None."""
        with self._tx(write=False) as store:
            used = store.keys_used(book, [key])
        return None if key not in used else self.entry(book, used[key][0])

    # --- reads ------------------------------------------------------------------------------------
    def head(self, book: str) -> tuple[int, bytes]:
        """Return (last seq, last hash) of a book; (0, zero hash) if it has no entries."""
        with self._tx(write=False) as store:
            found = store.head(book)
        return (0, GENESIS_HASH) if found is None else found

    def balance(
        self,
        book: str,
        account: str,
        asset: str,
        *,
        as_of_seq: int | None = None,
        as_of_time: datetime | None = None,
    ) -> int:
        """Return an account's balance of an asset in base units, now or as of a point."""
        check_account_code(account)
        if as_of_seq is not None:
            check_seq(as_of_seq, "as_of_seq", least=0)
        with self._tx(write=False) as store:
            if as_of_seq is None and as_of_time is None:
                return store.balances_of(book, [account]).get((account, asset), 0)
            return store.sum_postings(
                book,
                account,
                asset,
                max_seq=as_of_seq,
                max_effective_us=None if as_of_time is None else to_micros(as_of_time),
            )

    def balances(
        self, book: str, *, account: str | None = None, asset: str | None = None
    ) -> dict[tuple[str, str], int]:
        """Return current non-zero balances {(account, asset): units} of a book."""
        with self._tx(write=False) as store:
            rows = (
                store.all_balances(book) if account is None else store.balances_of(book, [account])
            )
        return {
            key: units
            for key, units in sorted(rows.items())
            if units != 0 and (asset is None or key[1] == asset)
        }

    def entry(self, book: str, seq: int) -> JournalEntry:
        """Return one entry or refuse."""
        check_seq(seq)
        found = list(self.entries(book, from_seq=seq, to_seq=seq))
        if not found:
            raise Rejected(Reason.UNKNOWN_ENTRY, f"book {book} has no entry {seq}")
        return found[0]

    def entries(
        self, book: str, *, from_seq: int = 1, to_seq: int | None = None
    ) -> Iterator[JournalEntry]:
        """Yield a book's entries in sequence order, reading in chunks."""
        last = self.head(book)[0] if to_seq is None else to_seq
        with self._tx(write=False) as store:
            for rows, postings in store.iter_chunks(book, max(1, from_seq), last, READ_CHUNK):
                yield from rows_to_entries(book, rows, postings)

    @contextmanager
    def reading(self) -> Iterator[UnitOfWork]:
        """Run one read transaction (one snapshot on PostgreSQL) for a group of reads."""
        with self._tx(write=False) as store:
            yield UnitOfWork(self, store, None)

    @contextmanager
    def snapshot(self, book: str) -> Iterator[BookSnapshot]:
        """Read a book's assets, accounts and entries in one read transaction (one snapshot)."""
        with self._tx(write=False) as store:
            head = store.head(book)
            if head is None:
                raise Rejected(Reason.UNKNOWN_BOOK, f"unknown book {book!r}")
            last = head[0]

            def entries() -> Iterator[JournalEntry]:
                for rows, postings in store.iter_chunks(book, 1, last, READ_CHUNK):
                    yield from rows_to_entries(book, rows, postings)

            def chunks() -> Iterator[tuple[list[Any], list[Any]]]:
                yield from store.iter_chunks(book, 1, last, EXPORT_CHUNK)

            yield BookSnapshot(
                book=book,
                head_seq=last,
                assets=[Asset(c, s) for c, s in sorted(store.assets().items())],
                accounts=[
                    Account(book, code, AccountType(type_), BalanceRule(rule))
                    for code, (type_, rule) in sorted(store.accounts(book).items())
                ],
                entries=entries(),
                chunks=chunks(),
            )

    def export_rows(self, book: str) -> tuple[list[Asset], list[Account], Iterator[Any]]:
        """Return a book's assets, accounts and (entry rows, posting rows) chunks, all from one
        read transaction, read by a background thread a chunk ahead of the caller (which
        formats them: the export streams at the speed of both cores)."""
        feed = prefetch(lambda: self._export_rows(book))
        assets, accounts = next(feed)
        return assets, accounts, feed

    def _export_rows(self, book: str) -> Iterator[Any]:
        with self._tx(write=False) as store:
            head = store.head(book)
            if head is None:
                raise Rejected(Reason.UNKNOWN_BOOK, f"unknown book {book!r}")
            yield (
                [Asset(c, s) for c, s in sorted(store.assets().items())],
                [
                    Account(book, code, AccountType(type_), BalanceRule(rule))
                    for code, (type_, rule) in sorted(store.accounts(book).items())
                ],
            )
            yield from store.iter_chunks(book, 1, head[0], EXPORT_CHUNK)

    def history(self, book: str, account: str) -> list[JournalEntry]:
        """Return the entries that post to `account`, in sequence order."""
        with self._tx(write=False) as store:
            seqs = store.account_seqs(book, check_account_code(account))
        return [self.entry(book, seq) for seq in seqs]

    def entries_of_kind(self, book: str, kinds: Sequence[str]) -> list[JournalEntry]:
        """Return the entries of the given kinds, in sequence order (few: splits, say)."""
        with self._tx(write=False) as store:
            seqs = store.kind_seqs(book, kinds)
        return [self.entry(book, seq) for seq in seqs]

    def verify(
        self,
        book: str,
        *,
        progress: Callable[[int], None] | None = None,
        parallel: bool | None = None,
    ) -> VerifyReport:
        """Walk a book's chain; recompute every hash and balance from the postings alone.

        Everything is read in one snapshot, by a background thread that stays a chunk ahead
        of the audit. A long book on a machine of two or more cores (`parallel` forces either
        way) is audited in two slices at once, the second in a child process
        (`ledger.services.verify_slice`); the report is the one-pass audit's either way.
        """
        settled = threading.Event()  # the snapshot may go: the child is done or given up
        feed = prefetch(lambda: self._audit_rows(book, parallel, settled))
        try:
            stored_head, definitions, targets, helper = next(feed)
            auditor = Auditor(book, definitions, targets)
            stored_balances: dict[tuple[str, str], int] = {}
            for item in feed:
                if isinstance(item, dict):
                    stored_balances = item
                    break
                rows, postings = item
                if not auditor.feed_chunk(rows, postings):
                    break
                if progress is not None:
                    progress(len(rows))
            if helper is not None and auditor.finding is None:
                part = helper.result(progress)
                if part is None or not auditor.join(part):
                    done = auditor.head_seq + helper.reported  # reported so far
                    return self.verify(book, progress=_credited(progress, done), parallel=False)
        finally:
            settled.set()
            feed.close()
        finding = auditor.finish(stored_balances=stored_balances, stored_head=stored_head)
        return VerifyReport(
            book=book,
            ok=finding is None,
            entries=auditor.head_seq,
            head_seq=auditor.head_seq,
            head_hash=auditor.head_hash.hex(),
            first_bad_seq=None if finding is None else finding.seq,
            problem=None if finding is None else finding.problem,
        )

    def _audit_rows(
        self, book: str, parallel: bool | None, settled: threading.Event
    ) -> Iterator[Any]:
        """Yield (stored head, definitions, reversal targets, the child's helper or None),
        then (entry rows, posting rows) chunks, then the stored balances; with a child
        auditing the rest of the book, the chunks stop where its slice begins, and the
        snapshot is held until `settled`."""
        with self._tx(write=False) as store:
            stored_head = store.head(book)
            if stored_head is None:
                raise Rejected(Reason.UNKNOWN_BOOK, f"unknown book {book!r}")
            definitions, targets = _audit_definitions(store, book)
            last = max(stored_head[0], store.max_seq(book))
            url = self._url()
            first = None if url is None else split_point(last, parallel=parallel)
            if url is None or first is None:  # one pass, or no other process can open it
                yield stored_head, definitions, targets, None
                yield from store.iter_chunks(book, 1, last, VERIFY_CHUNK)
                yield store.all_balances(book)
                return
            job = SliceJob(url, book, first, last, store.export_snapshot())
            with slice_child(job, settled) as helper:
                yield stored_head, definitions, targets, helper
                yield from store.iter_chunks(book, 1, first - 1, VERIFY_CHUNK)
                yield store.all_balances(book)
                settled.wait()

    def audit_slice(
        self,
        book: str,
        first: int,
        last: int,
        *,
        snapshot: str | None,
        progress: Callable[[int], None],
    ) -> Auditor:
        """Fold entries `first`..`last` as an `Auditor.slice` anchored at the stored hash of
        entry `first - 1` (the child's half of a parallel `verify`), in `snapshot`."""
        feed = prefetch(lambda: self._slice_rows(book, first, last, snapshot))
        try:
            definitions, targets, anchor = next(feed)
            auditor = Auditor.slice(book, definitions, targets, from_seq=first, anchor=anchor)
            if anchor is None:
                auditor.finding = Finding(first - 1, "the entry before the slice is missing")
                return auditor
            for rows, postings in feed:
                if not auditor.feed_chunk(rows, postings):
                    break
                progress(len(rows))
            return auditor
        finally:
            feed.close()

    def _slice_rows(self, book: str, first: int, last: int, snapshot: str | None) -> Iterator[Any]:
        with self._tx(write=False, snapshot=snapshot) as store:
            before = store.entry_rows(book, first - 1, first - 1)
            yield *_audit_definitions(store, book), (before[0][-1] if before else None)
            yield from store.iter_chunks(book, first, last, VERIFY_CHUNK)

    def _url(self) -> str | None:
        """The database's URL for another process, or None (an in-memory database)."""
        url = self.engine.url
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            return None
        return url.render_as_string(hide_password=False)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()


class UnitOfWork:
    """One write transaction of a `Ledger`: lock, read, append, and adapters' records.

    Obtained from `Ledger.unit_of_work()`; valid only inside its `with` block. The fund
    engine and the chain mirror do all of one operation through one of these, so what they
    read is what they write against: on PostgreSQL `lock(book)` holds the book's head row
    until the commit; on SQLite the transaction holds the database (`BEGIN IMMEDIATE`).
    """

    def __init__(self, lg: Ledger, store: JournalStore, owner: str | None) -> None:
        self._lg = lg
        self._store = store
        self.owner = owner
        self._opened: set[str] = set()
        self._locked: dict[str, tuple[int, bytes]] = {}  # heads held, as of this transaction

    @property
    def connection(self) -> Connection:
        """The transaction's connection, for the storage functions of an adapter's records."""
        return self._store.connection

    def lock(self, book: str) -> tuple[int, bytes]:
        """Lock a book's head until the commit and return (seq, hash); refuse an unknown book."""
        head = self._locked.get(book)
        if head is None:
            found = self._store.lock_head_and_owner(book)
            if found is None:
                raise Rejected(Reason.UNKNOWN_BOOK, f"unknown book {book!r}")
            head, owner = found
            if owner is not None:
                self._lg._owners[book] = owner
            self._locked[book] = head
        return head

    def head(self, book: str) -> tuple[int, bytes]:
        """Return (seq, hash) of a book's head without locking it; (0, genesis) if unknown."""
        return self._store.head(book) or (0, GENESIS_HASH)

    def reserve(self, book: str) -> None:
        """Reserve `book` for this unit's owner (write-once; refused if another owns it)."""
        invariant(self.owner is not None, "only an owner reserves a book")
        owner = self._store.set_book_owner(book, str(self.owner))
        if owner != self.owner:
            raise Rejected(Reason.FUND_BOOK, f"book {book} belongs to a {owner} product")
        self._lg._owners[book] = owner

    def account_codes(self, book: str) -> list[str]:
        """Return the codes of a book's open accounts, sorted."""
        return sorted(self._store.accounts(book))

    def balances_of(self, book: str, accounts: Iterable[str]) -> dict[tuple[str, str], int]:
        """Return the current balances of the named accounts of a book (zeros left out)."""
        return self._store.balances_of(book, accounts)

    def balances(self, book: str) -> dict[tuple[str, str], int]:
        """Return every balance of a book (one scan)."""
        return self._store.all_balances(book)

    def entry_with_key(self, book: str, key: str) -> JournalEntry | None:
        """Return the entry of `book` posted under idempotency `key`, or None."""
        used = self._store.keys_used(book, [key])
        if key not in used:
            return None
        seq = used[key][0]
        rows = self._store.entry_rows(book, seq, seq)
        return next(rows_to_entries(book, rows, self._store.posting_rows(book, seq, seq)))

    def entries(self, book: str, *, from_seq: int = 1, to_seq: int) -> Iterator[JournalEntry]:
        """Yield a book's entries in sequence order, in this transaction."""
        for rows, postings in self._store.iter_chunks(book, max(1, from_seq), to_seq, READ_CHUNK):
            yield from rows_to_entries(book, rows, postings)

    def open_accounts(self, accounts: Sequence[Account]) -> None:
        """Open accounts (idempotently) in this transaction.

        Accounts never change once open, so those the ledger already knows as open with the
        same type and rule cost nothing (a mint's holder account after the first mint).
        """
        known = self._lg._accounts
        wanted = [
            a for a in accounts if known.get(a.book, {}).get(a.code) != (a.type.value, a.rule.value)
        ]
        if wanted:
            self._forget({a.book for a in wanted})
            _open_accounts(self._store, wanted)

    def add_assets(self, assets: Sequence[Asset]) -> None:
        """Register assets (idempotently) in this transaction."""
        _add_assets(self._store, assets)

    def post(
        self, drafts: Sequence[EntryDraft], *, accounts: Sequence[Account] = ()
    ) -> list[JournalEntry]:
        """Append `drafts` in this transaction (see `Ledger.post_many`); accounts open first."""
        if accounts:
            self.open_accounts(accounts)
        if not drafts:
            return []
        batch = self._lg._batch(self._store, owner=self.owner, locked=self._locked)
        made = batch.append(drafts)
        self._locked.update(batch.heads)  # the heads this batch moved, still locked
        return made

    def _forget(self, books: set[str]) -> None:
        # The caches only ever hold accounts read from the database, and an account never
        # changes once open: the ones opened here are read when first posted to. They are
        # dropped only if this transaction rolls back (`release`), as they may be cached by
        # then. Not dropping them now keeps a book of millions of holders cached.
        self._opened |= books

    def release(self) -> None:
        """Drop the ledger's caches of books whose accounts this transaction opened (after a
        rollback; after a commit they are true)."""
        if self._opened:
            self._lg._forget(self._opened)


def open_ledger(url: str, *, clock: Clock | None = None, **engine_options: Any) -> Ledger:
    """Return a `Ledger` over the database at `url` (sqlite:///FILE or postgresql://...)."""
    return Ledger(make_engine(url, **engine_options), clock=clock)


def _add_assets(store: JournalStore, assets: Iterable[Asset]) -> None:
    known = store.assets()
    for asset in assets:
        if asset.code not in known:
            # Another writer may have registered it since we looked: the insert tells.
            known[asset.code] = store.insert_asset(asset.code, asset.scale)
        if known[asset.code] != asset.scale:
            raise Rejected(
                Reason.DUPLICATE, f"asset {asset.code} exists with {known[asset.code]} decimals"
            )


def _open_accounts(store: JournalStore, accounts: Sequence[Account]) -> None:
    books = sorted({a.book for a in accounts})
    for book in books:
        store.ensure_book(book, GENESIS_HASH)
    existing = {
        book: store.accounts_named(book, [a.code for a in accounts if a.book == book])
        for book in books
    }
    for account in accounts:
        found = existing[account.book].get(account.code)
        wanted = (account.type.value, account.rule.value)
        if found is None:
            found = store.insert_account(account.book, account.code, *wanted)
            existing[account.book][account.code] = found
        if found != wanted:
            raise Rejected(
                Reason.DUPLICATE,
                f"account {account.code} exists in {account.book} as {found[0]} ({found[1]})",
            )


def _record(book: str, draft: EntryDraft, entry: JournalEntry) -> Record:
    """Return a sealed entry as a replay record (its hash is checked by `Restore`)."""
    if draft.book != book:
        raise Rejected(Reason.BAD_INPUT, f"entry {entry.seq} belongs to {draft.book}")
    return entry_row(entry), [(p.account, p.asset, p.amount) for p in draft.postings]


def _audit_definitions(store: JournalStore, book: str) -> tuple[Definitions, frozenset[int]]:
    """What an audit of `book` needs before its first entry: the definitions of its codes
    and the entries that some entry reverses."""
    definitions = Definitions(store.assets(), store.accounts(book))
    return definitions, frozenset(store.reversal_targets(book))


def _credited(progress: Callable[[int], None] | None, done: int) -> Callable[[int], None] | None:
    """Return `progress` that passes on counts only beyond the first `done` (a pass that
    repeats work already reported)."""
    if progress is None:
        return None
    owed = done

    def report(count: int) -> None:
        nonlocal owed
        skip = min(owed, count)
        owed -= skip
        if count > skip:
            progress(count - skip)

    return report


T = TypeVar("T")


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Yield lists of up to `size` items (itertools.batched arrives in Python 3.12)."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
