"""Guard the reference data too: assets and accounts become append-only.

An asset's scale gives every amount of it its meaning, and an account's rule is what verify
re-checks; neither may change after the fact.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.storage.guards import guard_names, install_guards

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("tl_assets", "tl_accounts")


def upgrade() -> None:
    install_guards(lambda sql: op.execute(sa.text(sql)), op.get_bind().dialect.name, tables=TABLES)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name in guard_names(TABLES):
        if sqlite:
            op.execute(sa.text(f"DROP TRIGGER IF EXISTS {name}"))
        else:
            table = name.rsplit("_no_", 1)[0]
            op.execute(sa.text(f"DROP TRIGGER IF EXISTS {name} ON {table}"))
