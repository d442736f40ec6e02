"""The mirror's own sync records: deployments, chain transactions sent, anchors written.

These tables are the only thing the chain mirror writes to the database (the journal stays
untouched). They are created by the Alembic revisions 0002_chain_sync and
0006_chain_anchor_deployment (owners; each anchor's own copy of its deployment). Amounts use the
kernel's `Amount` column type, exact over the whole uint256 range on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    select,
    update,
)
from sqlmodel import Field, Session, SQLModel

from ledger.errors import Reason, Rejected
from ledger.storage.amount import Amount


class ChainDeploymentRow(SQLModel, table=True):
    __tablename__ = "tl_chain_deployments"
    __table_args__ = (Index("tl_chain_deployments_book", "book", "retired_us"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    book: str = Field(sa_column=Column(String(64), nullable=False))
    chain_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    genesis_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    address: str = Field(sa_column=Column(String(42), nullable=False))
    deploy_tx: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    deploy_block: int = Field(sa_column=Column(BigInteger, nullable=False))
    deployed_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    retired_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    retired_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    owner: str | None = Field(default=None, sa_column=Column(String(42), nullable=True))


class ChainTxRow(SQLModel, table=True):
    __tablename__ = "tl_chain_txs"
    __table_args__ = (Index("tl_chain_txs_deployment", "deployment_id", "target_seq"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    deployment_id: int = Field(
        sa_column=Column(Integer, ForeignKey("tl_chain_deployments.id"), nullable=False)
    )
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    target_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    holders: int = Field(sa_column=Column(Integer, nullable=False))
    units_minted: int = Field(sa_column=Column(Amount, nullable=False))
    units_burned: int = Field(sa_column=Column(Amount, nullable=False))
    tx_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    gas_used: int = Field(sa_column=Column(BigInteger, nullable=False))
    succeeded: int = Field(sa_column=Column(Integer, nullable=False))
    recorded_us: int = Field(sa_column=Column(BigInteger, nullable=False))


class ChainAnchorRow(SQLModel, table=True):
    __tablename__ = "tl_chain_anchors"

    deployment_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("tl_chain_deployments.id"), primary_key=True, autoincrement=False
        )
    )
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    entry_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    tx_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    recorded_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    # The deployment the anchor was written to (revision 0006; NULL owner: not recorded then).
    chain_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    address: str | None = Field(default=None, sa_column=Column(String(42), nullable=True))
    deploy_tx: bytes | None = Field(default=None, sa_column=Column(LargeBinary(32), nullable=True))
    owner: str | None = Field(default=None, sa_column=Column(String(42), nullable=True))


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where a book's mirror contract lives."""

    id: int
    book: str
    chain_id: int
    genesis_hash: bytes
    address: str
    deploy_block: int
    deploy_tx: bytes = b""
    owner: str | None = None  # None: recorded before revision 0006
    retired: bool = False
    retired_reason: str | None = None


@dataclass(frozen=True, slots=True)
class AnchorRecord:
    """An anchor as the database recorded it, with the deployment it was written to."""

    seq: int
    entry_hash: bytes
    tx_hash: bytes
    deployment: Deployment  # the deployment row as it is now
    chain_id: int | None  # the anchor's own copy of the deployment, taken when written
    address: str | None
    deploy_tx: bytes | None
    owner: str | None


def _deployment(row: ChainDeploymentRow) -> Deployment:
    assert row.id is not None
    return Deployment(
        id=row.id,
        book=row.book,
        chain_id=row.chain_id,
        genesis_hash=bytes(row.genesis_hash),
        address=row.address,
        deploy_block=row.deploy_block,
        deploy_tx=bytes(row.deploy_tx),
        owner=row.owner,
        retired=row.retired_us is not None,
        retired_reason=row.retired_reason,
    )


def active_deployment(engine: Engine, book: str) -> Deployment | None:
    """Return the book's current (not retired) deployment, or None."""
    with Session(engine) as session:
        row = session.exec(  # type: ignore[call-overload]
            select(ChainDeploymentRow)
            .where(ChainDeploymentRow.book == book)  # type: ignore[arg-type]
            .where(ChainDeploymentRow.retired_us.is_(None))  # type: ignore[union-attr]
            .order_by(ChainDeploymentRow.id.desc())  # type: ignore[union-attr]
        ).first()
    return None if row is None else _deployment(row[0])


def record_deployment(engine: Engine, row: ChainDeploymentRow) -> Deployment:
    """Retire the book's previous deployments and store `row` as the active one."""
    with Session(engine) as session:
        session.execute(
            update(ChainDeploymentRow)
            .where(ChainDeploymentRow.book == row.book)  # type: ignore[arg-type]
            .where(ChainDeploymentRow.retired_us.is_(None))  # type: ignore[union-attr]
            .values(retired_us=row.deployed_us, retired_reason="replaced by a new deployment")
        )
        session.add(row)
        session.commit()
        session.refresh(row)
    return _deployment(row)


def retire_deployment(engine: Engine, deployment_id: int, *, reason: str, at_us: int) -> None:
    """Mark a deployment as gone (chain reset); its rows stay for the audit trail."""
    with Session(engine) as session:
        session.execute(
            update(ChainDeploymentRow)
            .where(ChainDeploymentRow.id == deployment_id)  # type: ignore[arg-type]
            .values(retired_us=at_us, retired_reason=reason)
        )
        session.commit()


def record_txs(engine: Engine, rows: list[ChainTxRow]) -> None:
    """Store the chain transactions of one sync round."""
    if not rows:
        return
    with Session(engine) as session:
        session.add_all(rows)
        session.commit()


def record_anchor(engine: Engine, row: ChainAnchorRow) -> None:
    """Store an anchor written to the chain: write-once per deployment and seq, seqs increasing.

    Recording the same (seq, hash) again is a no-op; another hash, or a seq at or below the
    deployment's last anchor, is refused (Reason.CHAIN).
    """
    with Session(engine) as session:
        existing = session.get(ChainAnchorRow, (row.deployment_id, row.seq))
        if existing is not None:
            if bytes(existing.entry_hash) != row.entry_hash:
                raise Rejected(Reason.CHAIN, f"seq {row.seq} is already anchored with another hash")
            return
        last = session.execute(
            select(func.max(ChainAnchorRow.seq)).where(
                ChainAnchorRow.deployment_id == row.deployment_id  # type: ignore[arg-type]
            )
        ).scalar()
        if last is not None and row.seq <= last:
            raise Rejected(
                Reason.CHAIN, f"anchors must increase: seq {row.seq} is not after seq {last}"
            )
        session.add(row)
        session.commit()


def book_anchors(engine: Engine, book: str) -> list[AnchorRecord]:
    """Return every anchor recorded for `book`, on every deployment (retired ones too)."""
    with Session(engine) as session:
        rows = session.execute(
            select(ChainAnchorRow, ChainDeploymentRow)
            .join(
                ChainDeploymentRow,
                ChainDeploymentRow.id == ChainAnchorRow.deployment_id,  # type: ignore[arg-type]
            )
            .where(ChainDeploymentRow.book == book)  # type: ignore[arg-type]
            .order_by(ChainAnchorRow.deployment_id, ChainAnchorRow.seq)  # type: ignore[arg-type]
        ).all()
    return [
        AnchorRecord(
            seq=a.seq,
            entry_hash=bytes(a.entry_hash),
            tx_hash=bytes(a.tx_hash),
            deployment=_deployment(d),
            chain_id=a.chain_id,
            address=a.address,
            deploy_tx=None if a.deploy_tx is None else bytes(a.deploy_tx),
            owner=a.owner,
        )
        for a, d in rows
    ]


def count_txs(engine: Engine, deployment_id: int) -> int:
    """Return how many chain transactions were recorded for a deployment."""
    with Session(engine) as session:
        rows = session.execute(
            select(ChainTxRow.id).where(ChainTxRow.deployment_id == deployment_id)  # type: ignore[arg-type]
        ).all()
    return len(rows)
