"""Raw SQL over the journal tables, shared by SQLite and PostgreSQL: the hot paths.

Everything here runs inside the caller's transaction on one SQLAlchemy `Connection`, through
its DB-API cursor (executemany of plain tuples is 5-10x faster than ORM or Core row handling).
Amounts cross this boundary as Python ints; only this module and `amount.py` know how a
database spells them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import Any, Generic, TypeVar

from psycopg import pq
from sqlalchemy import Connection

from ledger.storage.amount import to_db

CHUNK = 900  # stays under SQLite's default limit of bound parameters per statement
COPY_THRESHOLD = 64  # below this many rows, COPY's setup costs more than it saves
VALUES_ROWS = 1_000  # rows per multi-row VALUES statement (PostgreSQL allows 65,535 parameters)
T = TypeVar("T")

_BY_ACCOUNT = itemgetter(0, 3)  # (book, account) of a posting row; sorts are stable


def small_append(postings: int) -> bool:
    """Whether an append of this many postings is small: on PostgreSQL it is written with one
    statement and sent in one pipeline; a larger one is written with COPY, which a pipeline
    cannot carry."""
    return postings < COPY_THRESHOLD


ENTRY_COLUMNS = (
    "book, seq, kind, effective_us, recorded_us, idem_key, request_digest, reverses,"
    " metadata_json, prev_hash, hash"
)
POSTING_COLUMNS = "book, seq, idx, account, asset, amount"
BALANCE_COLUMNS = "book, account, asset, amount"
UPSERT_BALANCE = " ON CONFLICT (book, account, asset) DO UPDATE SET amount = excluded.amount"

EntryTuple = tuple[Any, ...]
"""(seq, kind, effective_us, recorded_us, idem_key, reverses, metadata_json, prev_hash, hash)"""


class Pending(Generic[T]):
    """Rows asked for and not read yet.

    In PostgreSQL's pipeline mode (`JournalStore.pipelined`) statements sent one after another
    travel to the server together, and the first `result()` waits for all of them: the reads
    an append needs (the locked head, its accounts, keys and balances) cost one round trip.
    Elsewhere the statement has already run and `result()` only reads its rows.
    """

    __slots__ = ("_convert", "_cursors")

    def __init__(self, cursors: list[Any], convert: Callable[[list[Any]], T]) -> None:
        self._cursors = cursors
        self._convert = convert

    def result(self) -> T:
        rows: list[Any] = []
        for cursor in self._cursors:
            rows.extend(cursor.fetchall())
            cursor.close()
        return self._convert(rows)


class JournalStore:
    """Statements over one connection, in the dialect's parameter style."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.dialect = connection.dialect.name
        self.is_sqlite = self.dialect == "sqlite"
        self.raw: Any = connection.connection.driver_connection
        self._amount = to_db if self.is_sqlite else int
        self.db_amount: Any = to_db if self.is_sqlite else _same
        """How this database is given an amount (`insert_posting_rows` takes it so)."""

    def sql(self, statement: str) -> str:
        """Return `statement` with `?` placeholders in this driver's style."""
        return statement if self.is_sqlite else statement.replace("?", "%s")

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        cursor = self.raw.cursor()
        if params:
            cursor.execute(self.sql(statement), params)
        else:  # no parameters: the text goes as written (a '%' in PL/pgSQL stays a '%')
            cursor.execute(statement)
        return cursor

    @property
    def in_pipeline(self) -> bool:
        """Whether the connection is in PostgreSQL's pipeline mode (no COPY there)."""
        return not self.is_sqlite and self.raw.pgconn.pipeline_status != pq.PipelineStatus.OFF

    @contextmanager
    def pipelined(self) -> Iterator[None]:
        """Send the block's statements in PostgreSQL's pipeline mode: they go out together
        and a read waits only for what was sent before it. Leaving the block waits for them
        all (one round trip), so an error in any of them is raised here. A no-op on SQLite
        and inside a pipeline already (the caller's, which ends with its commit)."""
        if self.is_sqlite or self.in_pipeline:
            yield
            return
        with self.raw.pipeline():
            yield

    def ask(
        self, statement: str, params: Sequence[Any], convert: Callable[[list[Any]], T]
    ) -> Pending[T]:
        """Send one statement; its rows, passed through `convert`, come with `result()`."""
        return Pending([self.execute(statement, params)], convert)

    def ask_chunked(
        self,
        template: str,
        head: Sequence[Any],
        items: Sequence[Any],
        convert: Callable[[list[Any]], T],
    ) -> Pending[T]:
        """Send `template` (with `{marks}` for an IN list) once per CHUNK of `items`."""
        cursors = []
        for start in range(0, len(items), CHUNK):
            chunk = items[start : start + CHUNK]
            marks = ",".join("?" * len(chunk))
            cursors.append(self.execute(template.format(marks=marks), (*head, *chunk)))
        return Pending(cursors, convert)

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            cursor = self.raw.cursor()
            cursor.executemany(self.sql(statement), rows)
            cursor.close()

    def bulk_insert(self, table: str, columns: str, rows: Sequence[Sequence[Any]]) -> None:
        """Insert plain rows: COPY on PostgreSQL for large batches, executemany otherwise."""
        if not rows:
            return
        if self.is_sqlite:
            marks = ",".join("?" * len(rows[0]))
            self.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
            return
        if len(rows) < COPY_THRESHOLD or self.in_pipeline:
            self.values_insert(table, columns, rows)
            return
        cursor = self.raw.cursor()
        with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.close()

    def all(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        cursor = self.execute(statement, params)
        rows: list[Any] = cursor.fetchall()
        cursor.close()
        return rows

    # --- reference data -------------------------------------------------------------------
    def assets(self) -> dict[str, int]:
        return dict(self.all("SELECT code, scale FROM tl_assets"))

    def insert_asset(self, code: str, scale: int) -> int:
        """Insert an asset unless one with `code` exists (a concurrent writer); return its scale."""
        self.execute(
            "INSERT INTO tl_assets (code, scale) VALUES (?, ?) ON CONFLICT (code) DO NOTHING",
            (code, scale),
        ).close()
        return int(self.all("SELECT scale FROM tl_assets WHERE code = ?", (code,))[0][0])

    def accounts(self, book: str) -> dict[str, tuple[str, str]]:
        return self.ask_accounts(book).result()

    def ask_accounts(self, book: str) -> Pending[dict[str, tuple[str, str]]]:
        return self.ask(
            "SELECT code, type, rule FROM tl_accounts WHERE book = ?", (book,), _accounts
        )

    def accounts_named(self, book: str, codes: Sequence[str]) -> dict[str, tuple[str, str]]:
        """Return {code: (type, rule)} for those of `codes` that are open in `book`."""
        return self.ask_accounts_named(book, codes).result()

    def ask_accounts_named(
        self, book: str, codes: Iterable[str]
    ) -> Pending[dict[str, tuple[str, str]]]:
        return self.ask_chunked(
            "SELECT code, type, rule FROM tl_accounts WHERE book = ? AND code IN ({marks})",
            (book,),
            sorted(set(codes)),
            _accounts,
        )

    def insert_account(self, book: str, code: str, type_: str, rule: str) -> tuple[str, str]:
        """Insert an account unless it exists (a concurrent writer); return its (type, rule)."""
        self.execute(
            "INSERT INTO tl_accounts (book, code, type, rule) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (book, code) DO NOTHING",
            (book, code, type_, rule),
        ).close()
        row = self.all(
            "SELECT type, rule FROM tl_accounts WHERE book = ? AND code = ?", (book, code)
        )
        return (row[0][0], row[0][1])

    def ensure_book(self, book: str, genesis: bytes) -> None:
        self.execute(
            "INSERT INTO tl_books (code, head_seq, head_hash) VALUES (?, 0, ?)"
            " ON CONFLICT (code) DO NOTHING",
            (book, genesis),
        ).close()

    def books(self) -> list[str]:
        return [row[0] for row in self.all("SELECT code FROM tl_books ORDER BY code")]

    # --- the chain head ---------------------------------------------------------------------
    def lock_head(self, book: str) -> tuple[int, bytes] | None:
        """Return (seq, hash) of the book's head, locking it until commit on PostgreSQL."""
        found = self.lock_head_and_owner(book)
        return None if found is None else found[0]

    def lock_head_and_owner(self, book: str) -> tuple[tuple[int, bytes], str | None] | None:
        """Return the book's head (locked until commit on PostgreSQL) and the owner it is
        reserved for, in one round trip; None for an unknown book."""
        return self.ask_head_and_owner(book).result()

    def ask_head_and_owner(self, book: str) -> Pending[tuple[tuple[int, bytes], str | None] | None]:
        lock = "" if self.is_sqlite else " FOR UPDATE"
        return self.ask(
            "SELECT head_seq, head_hash, (SELECT owner FROM tl_book_owners WHERE book = ?)"
            f" FROM tl_books WHERE code = ?{lock}",
            (book, book),
            _head_and_owner,
        )

    def head(self, book: str) -> tuple[int, bytes] | None:
        """Return (seq, hash) of the book's head without locking it, or None."""
        rows = self.all("SELECT head_seq, head_hash FROM tl_books WHERE code = ?", (book,))
        return None if not rows else (int(rows[0][0]), bytes(rows[0][1]))

    def max_seq(self, book: str) -> int:
        """Return the highest stored sequence number of a book (0 if none)."""
        top = self.all("SELECT MAX(seq) FROM tl_entries WHERE book = ?", (book,))[0][0]
        return int(top or 0)

    def set_book_owner(self, book: str, owner: str) -> str:
        """Reserve a book for `owner` unless already reserved; return its owner."""
        self.execute(
            "INSERT INTO tl_book_owners (book, owner) VALUES (?, ?) ON CONFLICT (book) DO NOTHING",
            (book, owner),
        ).close()
        return str(self.all("SELECT owner FROM tl_book_owners WHERE book = ?", (book,))[0][0])

    def set_head(self, book: str, seq: int, hash_: bytes) -> None:
        self.execute(
            "UPDATE tl_books SET head_seq = ?, head_hash = ? WHERE code = ?", (seq, hash_, book)
        ).close()

    # --- appends ----------------------------------------------------------------------------
    def write_append(
        self,
        entries: Sequence[Sequence[Any]],
        postings: Sequence[tuple[str, int, int, str, str, int]],
        balances: dict[str, dict[tuple[str, str], int]],
        heads: dict[str, tuple[int, bytes]],
    ) -> None:
        """Write one append: its entry and posting rows, each book's changed balances and new
        head. On PostgreSQL a small append is one statement of data-modifying CTEs (one
        statement's overhead, and in a pipeline it travels with the COMMIT); a large one, and
        SQLite, use a statement per table (COPY for the large)."""
        if self.is_sqlite or not small_append(len(postings)) or not entries:
            self.insert_entries(entries)
            self.insert_postings(postings)
            for book, book_balances in balances.items():
                self.upsert_balances(book, book_balances)
                self.set_head(book, *heads[book])
            return
        changed = [
            (book, account, asset, units)
            for book, rows in balances.items()
            for (account, asset), units in rows.items()
        ]
        inserts = [
            _values_insert("tl_entries", ENTRY_COLUMNS, entries),
            _values_insert("tl_postings", POSTING_COLUMNS, postings),
        ]
        if changed:
            inserts.append(_values_insert("tl_balances", BALANCE_COLUMNS, changed, UPSERT_BALANCE))
        marks = ",".join(["(?::text, ?::bigint, ?::bytea)"] * len(heads))
        statement = (
            "WITH "
            + ", ".join(f"i{n} AS ({sql})" for n, (sql, _) in enumerate(inserts))
            + " UPDATE tl_books SET head_seq = h.seq, head_hash = h.hash"
            + f" FROM (VALUES {marks}) AS h (code, seq, hash) WHERE tl_books.code = h.code"
        )
        params = [value for _, values in inserts for value in values]
        params.extend(value for book, (seq, hash_) in heads.items() for value in (book, seq, hash_))
        self.execute(statement, params).close()

    def insert_entries(self, rows: Sequence[Sequence[Any]]) -> None:
        self.bulk_insert("tl_entries", ENTRY_COLUMNS, rows)

    def insert_postings(self, rows: Iterable[tuple[str, int, int, str, str, int]]) -> None:
        amount = self._amount
        converted = [(b, s, i, a, c, amount(u)) for b, s, i, a, c, u in rows]
        if self.is_sqlite:
            # In the order of the account index: each account's new rows go into its index
            # leaf together, not one random leaf per row (the postings' insert 8.9 -> 7.5 s
            # for a million entries over 1,000 accounts).
            converted.sort(key=_BY_ACCOUNT)
        self.bulk_insert("tl_postings", POSTING_COLUMNS, converted)

    def insert_posting_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """Insert (book, seq, idx, account, asset, amount) rows whose amounts already went
        through `db_amount`."""
        self.bulk_insert("tl_postings", POSTING_COLUMNS, rows)

    def defer_posting_index(self) -> bool:
        """On SQLite with no posting at all yet (a replay into an empty database), drop the
        postings' account index until `rebuild_posting_index`, in the same transaction: one
        sorted build instead of a million random inserts. Return whether it was dropped."""
        if not self.is_sqlite or self.all("SELECT 1 FROM tl_postings LIMIT 1"):
            return False
        self.execute("DROP INDEX tl_postings_account").close()
        return True

    def rebuild_posting_index(self) -> None:
        """Re-create the index `defer_posting_index` dropped (as migration 0001 made it)."""
        self.execute("CREATE INDEX tl_postings_account ON tl_postings (book, account, seq)").close()

    def upsert_balances(self, book: str, balances: dict[tuple[str, str], int]) -> None:
        amount = self._amount
        if not self.is_sqlite and len(balances) >= COPY_THRESHOLD and not self.in_pipeline:
            self._upsert_balances_by_copy(book, balances)
            return
        if not self.is_sqlite and balances:
            self.values_insert(
                "tl_balances",
                BALANCE_COLUMNS,
                [(book, account, asset, units) for (account, asset), units in balances.items()],
                UPSERT_BALANCE,
            )
            return
        self.executemany(
            "INSERT INTO tl_balances (book, account, asset, amount) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (book, account, asset) DO UPDATE SET amount = excluded.amount",
            [(book, account, asset, amount(units)) for (account, asset), units in balances.items()],
        )

    def values_insert(
        self, table: str, columns: str, rows: Sequence[Sequence[Any]], suffix: str = ""
    ) -> None:
        """Insert rows with multi-row VALUES statements, VALUES_ROWS rows each."""
        for start in range(0, len(rows), VALUES_ROWS):
            self.execute(
                *_values_insert(table, columns, rows[start : start + VALUES_ROWS], suffix)
            ).close()

    def _upsert_balances_by_copy(self, book: str, balances: dict[tuple[str, str], int]) -> None:
        """COPY the new balances into a scratch table, then upsert them in one statement."""
        self.execute(
            "CREATE TEMP TABLE IF NOT EXISTS tl_balances_in"
            " (LIKE tl_balances INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        ).close()
        self.bulk_insert(
            "tl_balances_in",
            "book, account, asset, amount",
            [(book, account, asset, units) for (account, asset), units in balances.items()],
        )
        self.execute(
            "INSERT INTO tl_balances (book, account, asset, amount)"
            " SELECT book, account, asset, amount FROM tl_balances_in"
            " ON CONFLICT (book, account, asset) DO UPDATE SET amount = excluded.amount"
        ).close()
        self.execute("DELETE FROM tl_balances_in").close()

    # --- lookups ----------------------------------------------------------------------------
    def balances_of(self, book: str, accounts: Iterable[str]) -> dict[tuple[str, str], int]:
        """Return stored balances of `accounts` (every asset), chunked for large sets."""
        return self.ask_balances_of(book, accounts).result()

    def ask_balances_of(
        self, book: str, accounts: Iterable[str]
    ) -> Pending[dict[tuple[str, str], int]]:
        return self.ask_chunked(
            "SELECT account, asset, amount FROM tl_balances WHERE book = ?"
            " AND account IN ({marks})",
            (book,),
            sorted(set(accounts)),
            _balances,
        )

    def all_balances(self, book: str) -> dict[tuple[str, str], int]:
        return self.ask_all_balances(book).result()

    def ask_all_balances(self, book: str) -> Pending[dict[tuple[str, str], int]]:
        return self.ask(
            "SELECT account, asset, amount FROM tl_balances WHERE book = ?", (book,), _balances
        )

    def keys_used(self, book: str, keys: Sequence[str]) -> dict[str, tuple[int, bytes]]:
        """Return {key: (seq, request_digest)} for the keys already used in `book`."""
        return self.ask_keys_used(book, keys).result()

    def ask_keys_used(
        self, book: str, keys: Sequence[str]
    ) -> Pending[dict[str, tuple[int, bytes]]]:
        return self.ask_chunked(
            "SELECT idem_key, seq, request_digest FROM tl_entries WHERE book = ?"
            " AND idem_key IN ({marks})",
            (book,),
            list(keys),
            _keys,
        )

    def reversed_by(self, book: str, seq: int) -> int | None:
        rows = self.all("SELECT seq FROM tl_entries WHERE book = ? AND reverses = ?", (book, seq))
        return None if not rows else int(rows[0][0])

    def export_snapshot(self) -> str | None:
        """PostgreSQL: return this transaction's snapshot for another to import (valid while
        this one is open); SQLite: None."""
        if self.is_sqlite:
            return None
        return str(self.all("SELECT pg_export_snapshot()")[0][0])

    def import_snapshot(self, snapshot: str) -> None:
        """PostgreSQL, first in a REPEATABLE READ transaction: take an exported snapshot."""
        if not re.fullmatch(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?", snapshot):
            raise ValueError(f"not a snapshot identifier: {snapshot!r}")
        self.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")  # takes no parameter

    def reversal_targets(self, book: str) -> list[int]:
        """Return the sequence numbers that some entry of `book` reverses."""
        rows = self.all(
            "SELECT reverses FROM tl_entries WHERE book = ? AND reverses IS NOT NULL", (book,)
        )
        return [int(row[0]) for row in rows]

    # --- reads ------------------------------------------------------------------------------
    def entry_rows(self, book: str, first: int, last: int) -> list[EntryTuple]:
        return self.all(
            "SELECT seq, kind, effective_us, recorded_us, idem_key, reverses, metadata_json,"
            " prev_hash, hash FROM tl_entries WHERE book = ? AND seq BETWEEN ? AND ? ORDER BY seq",
            (book, first, last),
        )

    def posting_rows(self, book: str, first: int, last: int) -> list[tuple[int, str, str, int]]:
        """Return (seq, account, asset, units) ordered by seq and posting order; units exact."""
        rows = self.all(
            "SELECT seq, account, asset, amount FROM tl_postings WHERE book = ?"
            " AND seq BETWEEN ? AND ? ORDER BY seq, idx",
            (book, first, last),
        )
        # SQLite keeps amounts beyond 64 bits as TEXT; PostgreSQL loads NUMERIC as int (see
        # engine.py). Either way the caller sees Python ints; anything else SQLite holds (a
        # REAL or a BLOB written behind the library's back) is passed on as it is, for the
        # audit to name (int() would take 2.2e19 or b"5" without a word).
        return [r if r[3].__class__ is not str else (r[0], r[1], r[2], int(r[3])) for r in rows]

    def iter_chunks(
        self, book: str, first: int, last: int, size: int
    ) -> Iterator[tuple[list[EntryTuple], list[tuple[int, str, str, Any]]]]:
        """Yield (entry rows, posting rows) for consecutive seq ranges of `size` entries."""
        start = first
        while start <= last:
            end = min(last, start + size - 1)
            yield self.entry_rows(book, start, end), self.posting_rows(book, start, end)
            start = end + 1

    def account_seqs(self, book: str, account: str) -> list[int]:
        rows = self.all(
            "SELECT DISTINCT seq FROM tl_postings WHERE book = ? AND account = ? ORDER BY seq",
            (book, account),
        )
        return [int(row[0]) for row in rows]

    def kind_seqs(self, book: str, kinds: Sequence[str]) -> list[int]:
        marks = ", ".join("?" for _ in kinds)
        rows = self.all(
            f"SELECT seq FROM tl_entries WHERE book = ? AND kind IN ({marks}) ORDER BY seq",
            (book, *kinds),
        )
        return [int(row[0]) for row in rows]

    def sum_postings(
        self,
        book: str,
        account: str,
        asset: str,
        *,
        max_seq: int | None,
        max_effective_us: int | None,
    ) -> int:
        """Return the exact sum of an account's postings up to a seq or a business time."""
        statement = (
            "SELECT p.amount FROM tl_postings p JOIN tl_entries e"
            " ON e.book = p.book AND e.seq = p.seq"
            " WHERE p.book = ? AND p.account = ? AND p.asset = ?"
        )
        params: list[Any] = [book, account, asset]
        if max_seq is not None:
            statement += " AND p.seq <= ?"
            params.append(max_seq)
        if max_effective_us is not None:
            statement += " AND e.effective_us <= ?"
            params.append(max_effective_us)
        return sum(int(row[0]) for row in self.all(statement, params))


def _same(units: int) -> int:
    return units


def _values_insert(
    table: str, columns: str, rows: Sequence[Sequence[Any]], suffix: str = ""
) -> tuple[str, list[Any]]:
    """Return one multi-row INSERT of `rows` (`?` placeholders) and its flat parameters."""
    row = "(" + ",".join("?" * len(rows[0])) + ")"
    statement = f"INSERT INTO {table} ({columns}) VALUES " + ",".join([row] * len(rows))
    return statement + suffix, [value for r in rows for value in r]


def _accounts(rows: list[Any]) -> dict[str, tuple[str, str]]:
    return {code: (type_, rule) for code, type_, rule in rows}


def _balances(rows: list[Any]) -> dict[tuple[str, str], int]:
    return {(account, asset): int(units) for account, asset, units in rows}


def _keys(rows: list[Any]) -> dict[str, tuple[int, bytes]]:
    return {key: (int(seq), bytes(digest)) for key, seq, digest in rows}


def _head_and_owner(rows: list[Any]) -> tuple[tuple[int, bytes], str | None] | None:
    if not rows:
        return None
    seq, hash_, owner = rows[0]
    return (int(seq), bytes(hash_)), None if owner is None else str(owner)
