"""Proof of liabilities: one secret proof key per book (docs/proof-of-liabilities.md).

`tl_proof_keys` holds 32 random bytes per book, generated the first time a proof or root of
the book is asked for. Every holder secret is derived from it, so the tree of any past seq
can be rebuilt exactly; the table is guarded like the journal (no update, no delete), since a
changed key would no longer reproduce the roots already published. The key is never exported.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.storage.guards import guard_names, install_guards

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = ("tl_proof_keys",)


def upgrade() -> None:
    op.create_table(
        "tl_proof_keys",
        sa.Column("book", sa.String(64), primary_key=True),
        sa.Column("proof_key", sa.LargeBinary(32), nullable=False),
    )
    install_guards(lambda sql: op.execute(sa.text(sql)), op.get_bind().dialect.name, tables=TABLES)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name in guard_names(TABLES):
        if sqlite:
            op.execute(sa.text(f"DROP TRIGGER IF EXISTS {name}"))
        else:
            op.execute(sa.text(f"DROP TRIGGER IF EXISTS {name} ON tl_proof_keys"))
    op.drop_table("tl_proof_keys")
