"""What a liability tree is built from: a book's proof key (`tl_proof_keys`, migration 0008)
and its holder register at a sequence number, folded from the postings.

The key is 32 random bytes per book, written once and never changed (guarded like the
journal); nothing else reads it, and no export includes it. The register is the exact sum,
in Python, of every `holder:*` posting of the share asset up to the seq: the journal alone,
not the balance cache, so a tree of a past seq is as exact as one of the head.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Connection, LargeBinary, MetaData, String, Table, select

from ledger.storage.journal_store import JournalStore

METADATA = MetaData()

PROOF_KEYS = Table(
    "tl_proof_keys",
    METADATA,
    Column("book", String(64), primary_key=True),
    Column("proof_key", LargeBinary(32), nullable=False),
)

HOLDER_PREFIX = "holder:"


def load_key(connection: Connection, book: str) -> bytes | None:
    """Return a book's proof key, or None if it has none yet."""
    row = connection.execute(
        select(PROOF_KEYS.c.proof_key).where(PROOF_KEYS.c.book == book)
    ).first()
    return None if row is None else bytes(row[0])


def save_key_once(connection: Connection, book: str, key: bytes) -> bytes:
    """Store `key` as the book's proof key unless it has one; return the stored key.

    Two first requests racing each other both get the key that won.
    """
    store = JournalStore(connection)
    store.execute(
        "INSERT INTO tl_proof_keys (book, proof_key) VALUES (?, ?) ON CONFLICT (book) DO NOTHING",
        (book, key),
    ).close()
    stored = load_key(connection, book)
    assert stored is not None
    return stored


def holder_units_at(connection: Connection, book: str, share: str, seq: int) -> dict[str, int]:
    """Return {holder id: share units} as of entry `seq` (zero holdings left out)."""
    units: dict[str, int] = {}
    get = units.get
    cut = len(HOLDER_PREFIX)
    for account, amount in _rows(connection, book, share, seq):
        if not account.startswith(HOLDER_PREFIX):
            continue  # SQLite's LIKE ignores case: the prefix is checked exactly here
        holder = account[cut:]
        units[holder] = get(holder, 0) + (amount if amount.__class__ is int else int(amount))
    return {holder: value for holder, value in units.items() if value}


def account_units_at(connection: Connection, book: str, account: str, share: str, seq: int) -> int:
    """Return the exact sum of one account's postings of `share` up to entry `seq`."""
    rows = JournalStore(connection).all(
        "SELECT amount FROM tl_postings WHERE book = ? AND account = ? AND asset = ? AND seq <= ?",
        (book, account, share, seq),
    )
    return sum(int(row[0]) for row in rows)


def _rows(connection: Connection, book: str, share: str, seq: int) -> list[Any]:
    return JournalStore(connection).all(
        "SELECT account, amount FROM tl_postings WHERE book = ? AND asset = ?"
        " AND account LIKE ? AND seq <= ?",
        (book, share, HOLDER_PREFIX + "%", seq),
    )


def account_exists(connection: Connection, book: str, account: str) -> bool:
    """Return whether `account` is open in `book`."""
    rows = JournalStore(connection).all(
        "SELECT 1 FROM tl_accounts WHERE book = ? AND code = ?", (book, account)
    )
    return bool(rows)
