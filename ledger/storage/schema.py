"""The tables, as SQLModel models. Journal tables (entries, postings) are append-only.

`tl_balances` and `tl_books` are caches maintained in the same transaction as each append
(current balance per account and asset; the chain head per book); `verify` recomputes both
from the postings alone.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, String, Text, text
from sqlmodel import Field, SQLModel

from ledger.storage.amount import Amount
from ledger.storage.tables import GUARDED_TABLES, JOURNAL_TABLES


class AssetRow(SQLModel, table=True):
    __tablename__ = "tl_assets"

    code: str = Field(sa_column=Column(String(32), primary_key=True))
    scale: int = Field(sa_column=Column(Integer, nullable=False))


class BookRow(SQLModel, table=True):
    __tablename__ = "tl_books"

    code: str = Field(sa_column=Column(String(64), primary_key=True))
    head_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    head_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))


class AccountRow(SQLModel, table=True):
    __tablename__ = "tl_accounts"

    book: str = Field(sa_column=Column(String(64), primary_key=True))
    code: str = Field(sa_column=Column(String(128), primary_key=True))
    type: str = Field(sa_column=Column(String(16), nullable=False))
    rule: str = Field(sa_column=Column(String(16), nullable=False))


class EntryRow(SQLModel, table=True):
    __tablename__ = "tl_entries"
    __table_args__ = (
        Index(
            "tl_entries_key",
            "book",
            "idem_key",
            unique=True,
            sqlite_where=text("idem_key IS NOT NULL"),
            postgresql_where=text("idem_key IS NOT NULL"),
        ),
        Index(
            "tl_entries_reverses",
            "book",
            "reverses",
            unique=True,
            sqlite_where=text("reverses IS NOT NULL"),
            postgresql_where=text("reverses IS NOT NULL"),
        ),
        {"sqlite_with_rowid": False},
    )

    book: str = Field(sa_column=Column(String(64), primary_key=True))
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    kind: str = Field(sa_column=Column(String(64), nullable=False))
    effective_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    recorded_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    idem_key: str | None = Field(default=None, sa_column=Column(String(256), nullable=True))
    request_digest: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    reverses: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    metadata_json: str = Field(sa_column=Column(Text, nullable=False))
    prev_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))


class PostingRow(SQLModel, table=True):
    __tablename__ = "tl_postings"
    __table_args__ = (
        Index("tl_postings_account", "book", "account", "seq"),
        {"sqlite_with_rowid": False},
    )

    book: str = Field(sa_column=Column(String(64), primary_key=True))
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    idx: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    account: str = Field(sa_column=Column(String(128), nullable=False))
    asset: str = Field(sa_column=Column(String(32), nullable=False))
    amount: int = Field(sa_column=Column(Amount(), nullable=False))


class BalanceRow(SQLModel, table=True):
    __tablename__ = "tl_balances"
    __table_args__ = ({"sqlite_with_rowid": False},)

    book: str = Field(sa_column=Column(String(64), primary_key=True))
    account: str = Field(sa_column=Column(String(128), primary_key=True))
    asset: str = Field(sa_column=Column(String(32), primary_key=True))
    amount: int = Field(sa_column=Column(Amount(), nullable=False))


__all__ = ["GUARDED_TABLES", "JOURNAL_TABLES"]  # names only: ledger/storage/tables.py
