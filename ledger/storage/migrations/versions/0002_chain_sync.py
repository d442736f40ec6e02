"""The chain mirror's sync records: deployments, chain transactions, anchors.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.storage.amount import Amount

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tl_chain_deployments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("book", sa.String(64), nullable=False),
        sa.Column("chain_id", sa.BigInteger, nullable=False),
        sa.Column("genesis_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("address", sa.String(42), nullable=False),
        sa.Column("deploy_tx", sa.LargeBinary(32), nullable=False),
        sa.Column("deploy_block", sa.BigInteger, nullable=False),
        sa.Column("deployed_us", sa.BigInteger, nullable=False),
        sa.Column("retired_us", sa.BigInteger, nullable=True),
        sa.Column("retired_reason", sa.Text, nullable=True),
    )
    op.create_index("tl_chain_deployments_book", "tl_chain_deployments", ["book", "retired_us"])
    op.create_table(
        "tl_chain_txs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "deployment_id", sa.Integer, sa.ForeignKey("tl_chain_deployments.id"), nullable=False
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target_seq", sa.BigInteger, nullable=False),
        sa.Column("holders", sa.Integer, nullable=False),
        sa.Column("units_minted", Amount, nullable=False),
        sa.Column("units_burned", Amount, nullable=False),
        sa.Column("tx_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("gas_used", sa.BigInteger, nullable=False),
        sa.Column("succeeded", sa.Integer, nullable=False),
        sa.Column("recorded_us", sa.BigInteger, nullable=False),
    )
    op.create_index("tl_chain_txs_deployment", "tl_chain_txs", ["deployment_id", "target_seq"])
    op.create_table(
        "tl_chain_anchors",
        sa.Column(
            "deployment_id",
            sa.Integer,
            sa.ForeignKey("tl_chain_deployments.id"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("entry_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("tx_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("recorded_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tl_chain_anchors")
    op.drop_index("tl_chain_txs_deployment", table_name="tl_chain_txs")
    op.drop_table("tl_chain_txs")
    op.drop_index("tl_chain_deployments_book", table_name="tl_chain_deployments")
    op.drop_table("tl_chain_deployments")
