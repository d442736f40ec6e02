"""Anchors recorded with the deployment they were written to; deployments with their owner.

- `tl_chain_deployments.owner`: the contract's owner when it was deployed (the operator).
- `tl_chain_anchors.chain_id / address / deploy_tx / owner`: the deployment an anchor was
  written to, copied into the anchor row when it is written, so `verify --chain` notices a
  deployment record changed after anchors were written. Filled from the deployment for older
  anchors; their owner stays NULL (not recorded then).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tl_chain_deployments", sa.Column("owner", sa.String(42), nullable=True))
    op.add_column("tl_chain_anchors", sa.Column("chain_id", sa.BigInteger, nullable=True))
    op.add_column("tl_chain_anchors", sa.Column("address", sa.String(42), nullable=True))
    op.add_column("tl_chain_anchors", sa.Column("deploy_tx", sa.LargeBinary(32), nullable=True))
    op.add_column("tl_chain_anchors", sa.Column("owner", sa.String(42), nullable=True))
    for column in ("chain_id", "address", "deploy_tx"):
        op.execute(
            f"UPDATE tl_chain_anchors SET {column} = (SELECT d.{column} FROM tl_chain_deployments d"
            " WHERE d.id = tl_chain_anchors.deployment_id)"
        )


def downgrade() -> None:
    with op.batch_alter_table("tl_chain_anchors") as batch:
        for column in ("owner", "deploy_tx", "address", "chain_id"):
            batch.drop_column(column)
    with op.batch_alter_table("tl_chain_deployments") as batch:
        batch.drop_column("owner")
