"""The funding rate feed: `token-ledger funding SYMBOL RATE [--at TIME]`.

- `tl_funding_rates`: one row per published rate of an underlying (per funding interval of the
  products on it, > 0: longs pay), in force from `at_us` on; the latest row at or before a time
  is the rate of that time.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tl_funding_rates",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("rate", sa.String(80), nullable=False),
    )
    op.create_index("ix_tl_funding_rates_symbol_at", "tl_funding_rates", ["symbol", "at_us", "id"])


def downgrade() -> None:
    op.drop_index("ix_tl_funding_rates_symbol_at", "tl_funding_rates")
    op.drop_table("tl_funding_rates")
