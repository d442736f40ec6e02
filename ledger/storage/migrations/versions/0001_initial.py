"""The journal: assets, books, accounts, entries, postings, balances, append-only guards.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.storage.amount import Amount
from ledger.storage.guards import install_guards

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tl_assets",
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("scale", sa.Integer, nullable=False),
    )
    op.create_table(
        "tl_books",
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("head_seq", sa.BigInteger, nullable=False),
        sa.Column("head_hash", sa.LargeBinary(32), nullable=False),
    )
    op.create_table(
        "tl_accounts",
        sa.Column("book", sa.String(64), primary_key=True),
        sa.Column("code", sa.String(128), primary_key=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("rule", sa.String(16), nullable=False),
    )
    op.create_table(
        "tl_entries",
        sa.Column("book", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("effective_us", sa.BigInteger, nullable=False),
        sa.Column("recorded_us", sa.BigInteger, nullable=False),
        sa.Column("idem_key", sa.String(256), nullable=True),
        sa.Column("request_digest", sa.LargeBinary(32), nullable=False),
        sa.Column("reverses", sa.BigInteger, nullable=True),
        sa.Column("metadata_json", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.CheckConstraint("seq >= 1", name="tl_entries_seq_positive"),
        sqlite_with_rowid=False,
    )
    # Partial indexes: most entries carry no key and reverse nothing, so they cost nothing here.
    op.create_index(
        "tl_entries_key",
        "tl_entries",
        ["book", "idem_key"],
        unique=True,
        sqlite_where=sa.text("idem_key IS NOT NULL"),
        postgresql_where=sa.text("idem_key IS NOT NULL"),
    )
    op.create_index(
        "tl_entries_reverses",
        "tl_entries",
        ["book", "reverses"],
        unique=True,
        sqlite_where=sa.text("reverses IS NOT NULL"),
        postgresql_where=sa.text("reverses IS NOT NULL"),
    )
    op.create_table(
        "tl_postings",
        sa.Column("book", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("account", sa.String(128), nullable=False),
        sa.Column("asset", sa.String(32), nullable=False),
        sa.Column("amount", Amount(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("tl_postings_account", "tl_postings", ["book", "account", "seq"])
    op.create_table(
        "tl_balances",
        sa.Column("book", sa.String(64), primary_key=True),
        sa.Column("account", sa.String(128), primary_key=True),
        sa.Column("asset", sa.String(32), primary_key=True),
        sa.Column("amount", Amount(), nullable=False),
        sqlite_with_rowid=False,
    )
    install_guards(
        lambda sql: op.execute(sa.text(sql)),
        op.get_bind().dialect.name,
        tables=("tl_entries", "tl_postings"),
    )


def downgrade() -> None:
    for table in ("tl_balances", "tl_postings", "tl_entries", "tl_accounts", "tl_books"):
        op.drop_table(table)
    op.drop_table("tl_assets")
