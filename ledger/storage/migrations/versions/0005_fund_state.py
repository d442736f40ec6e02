"""The fund engine's state record per product book, book ownership, and a price index.

- `tl_fund_state`: what the next fund operation needs (amounts, prices, schedule, last time),
  written in the same transaction as the entries it follows and audited by `verify`.
- `tl_book_owners`: a book written only through its owner (the fund engine for a product):
  `post` and `reverse` refuse it. Filled here for every product created before.
- `ix_tl_fund_prices_symbol_at`: the latest price of a symbol in one index probe.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tl_fund_state",
        sa.Column("book", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("state_json", sa.Text, nullable=False),
    )
    op.create_table(
        "tl_book_owners",
        sa.Column("book", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(32), nullable=False),
    )
    op.execute("INSERT INTO tl_book_owners (book, owner) SELECT name, 'fund' FROM tl_fund_products")
    op.create_index("ix_tl_fund_prices_symbol_at", "tl_fund_prices", ["symbol", "at_us", "id"])


def downgrade() -> None:
    op.drop_index("ix_tl_fund_prices_symbol_at", "tl_fund_prices")
    op.drop_table("tl_book_owners")
    op.drop_table("tl_fund_state")
