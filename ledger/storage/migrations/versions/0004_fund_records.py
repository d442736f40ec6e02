"""The fund engine's own records: product terms, the price feed, scheduled-rebalance days.

None of these is accounting and none feeds a hash; the journal stays the source of truth.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tl_fund_products",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("params_json", sa.Text, nullable=False),
    )
    op.create_table(
        "tl_fund_prices",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("price", sa.String(80), nullable=False),
    )
    op.create_index("ix_tl_fund_prices_symbol", "tl_fund_prices", ["symbol"])
    op.create_table(
        "tl_fund_daily",
        sa.Column("book", sa.String(64), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("tl_fund_daily")
    op.drop_index("ix_tl_fund_prices_symbol", "tl_fund_prices")
    op.drop_table("tl_fund_prices")
    op.drop_table("tl_fund_products")
