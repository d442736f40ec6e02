"""Find a book's mirror contract, notice when the chain under it was reset, deploy a new one.

A deployment record keeps the chain id, the genesis block hash and the contract address. The
chain counts as reset when the genesis hash or chain id differ, when no code lives at the
address any more, or when the code there is not this book's mirror (its symbol differs).
"""

from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3

from ledger.chain import records
from ledger.chain.keys import Operator
from ledger.chain.records import ChainDeploymentRow, Deployment
from ledger.chain.token import TokenClient
from ledger.clock import Clock, SystemClock
from ledger.domain.journal import to_micros
from ledger.errors import Reason, Rejected
from ledger.services.ledger import Ledger

TOKEN_NAME_PREFIX = "token-ledger "


@dataclass(frozen=True, slots=True)
class Attached:
    """A book's live mirror on the connected chain."""

    client: TokenClient
    deployment: Deployment
    redeployed: bool = False
    reset_reason: str | None = None


def genesis_hash(w3: Web3) -> bytes:
    """Return the hash of block 0 of the connected chain."""
    return bytes(w3.eth.get_block(0)["hash"])


def reset_reason(w3: Web3, deployment: Deployment) -> str | None:
    """Return why `deployment` no longer lives on the connected chain, or None if it does."""
    if w3.eth.chain_id != deployment.chain_id:
        return f"chain id {w3.eth.chain_id} differs from {deployment.chain_id}"
    if genesis_hash(w3) != deployment.genesis_hash:
        return "genesis block differs (the chain was reset)"
    client = TokenClient(w3, deployment.address)
    if not client.has_code():
        return f"no contract code at {deployment.address} (the chain was reset)"
    if client.view("symbol") != deployment.book:
        return f"the contract at {deployment.address} is not the mirror of {deployment.book}"
    return None


def require_share_book(lg: Ledger, book: str) -> None:
    """Refuse unless `book` exists and holds its share asset (asset code == book code)."""
    if book not in lg.books():
        raise Rejected(Reason.UNKNOWN_BOOK, f"no book {book!r} in this database")
    if book not in {asset.code for asset in lg.assets()}:
        raise Rejected(
            Reason.UNKNOWN_PRODUCT,
            f"book {book!r} has no share asset {book!r}: it is not a fund product",
        )


def attach(lg: Ledger, book: str, w3: Web3, operator: Operator | None = None) -> Attached:
    """Return the book's mirror on `w3`; refuse when there is none or the chain was reset."""
    require_share_book(lg, book)
    deployment = records.active_deployment(lg.engine, book)
    if deployment is None:
        raise Rejected(Reason.CHAIN, f"book {book} has no mirror: run `token-ledger chain deploy`")
    reason = reset_reason(w3, deployment)
    if reason is not None:
        raise Rejected(Reason.CHAIN, f"{reason}: run `token-ledger chain sync {book}` to redeploy")
    client = TokenClient(w3, deployment.address, operator)
    if operator is not None:
        require_owner(client, operator)
    return Attached(client, deployment)


def require_owner(client: TokenClient, operator: Operator) -> None:
    """Refuse to write through `operator` when the mirror is owned by another key."""
    owner = client.owner()
    if owner != operator.address:
        raise Rejected(
            Reason.CHAIN,
            f"the mirror at {client.address} is owned by {owner}, not by the operator"
            f" {operator.address}",
        )


def ensure_deployed(
    lg: Ledger, book: str, w3: Web3, operator: Operator, *, clock: Clock | None = None
) -> Attached:
    """Return the book's live mirror, deploying a new one if it has none or the chain was reset."""
    clock = clock or SystemClock()
    require_share_book(lg, book)
    deployment = records.active_deployment(lg.engine, book)
    reason: str | None = None
    if deployment is not None:
        reason = reset_reason(w3, deployment)
        if reason is None:
            client = TokenClient(w3, deployment.address, operator)
            require_owner(client, operator)
            return Attached(client, deployment)
        records.retire_deployment(
            lg.engine, deployment.id, reason=reason, at_us=to_micros(clock.now())
        )
    client, deployment = deploy(lg, book, w3, operator, clock=clock)
    return Attached(client, deployment, redeployed=reason is not None, reset_reason=reason)


def deploy(
    lg: Ledger, book: str, w3: Web3, operator: Operator, *, clock: Clock | None = None
) -> tuple[TokenClient, Deployment]:
    """Deploy a fresh mirror of `book` (decimals = the share asset's scale) and record it."""
    clock = clock or SystemClock()
    scale = lg.asset(book).scale
    if scale > 255:
        raise Rejected(Reason.BAD_INPUT, f"share scale {scale} does not fit ERC-20 decimals")
    client, receipt = TokenClient.deploy(
        w3, operator, name=f"{TOKEN_NAME_PREFIX}{book}", symbol=book, decimals=scale
    )
    row = ChainDeploymentRow(
        book=book,
        chain_id=w3.eth.chain_id,
        genesis_hash=genesis_hash(w3),
        address=client.address,
        deploy_tx=bytes(receipt["transactionHash"]),
        deploy_block=int(receipt["blockNumber"]),
        deployed_us=to_micros(clock.now()),
        owner=operator.address,
    )
    return client, records.record_deployment(lg.engine, row)
