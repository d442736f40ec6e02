"""CLI commands: chain (the ERC-20 mirror of each fund's share register on a local Anvil)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ledger.cli.common import AuditFailed, emit, handle_errors, json_option, open_cli_ledger, state
from ledger.errors import Reason, Rejected

if TYPE_CHECKING:
    from web3 import Web3

    from ledger.chain.anvil import AnvilNode
    from ledger.chain.keys import Operator
    from ledger.chain.reconcile import ReconcileReport
    from ledger.chain.sync import SyncReport
    from ledger.services.ledger import Ledger

# The chain stack (web3, eth-account: about 1.5 s to import) is imported inside the commands
# that use it, never at module level: every other command must start fast (docs/cli.md).

F = TypeVar("F", bound=Callable[..., Any])


def chain_connection_options(func: F) -> F:
    """Add --rpc-url, --allow-remote-rpc and --chain-dir to a command.

    The command receives them as `rpc_url`, `allow_remote_rpc` and `chain_dir`; pass them to
    `connect_chain`. Every command that talks to the mirror chain uses this, so that
    `verify --chain` finds a chain the same way as `chain sync`.
    """
    func = click.option(
        "--chain-dir",
        metavar="DIR",
        default=None,
        help="Where `chain up` keeps the node record, state and log. "
        "Default: $TOKEN_LEDGER_CHAIN_DIR, else ./.token-ledger-chain.",
    )(func)
    func = click.option(
        "--allow-remote-rpc",
        is_flag=True,
        help="Allow an RPC URL that is not loopback (refused by default).",
    )(func)
    return click.option(
        "--rpc-url",
        metavar="URL",
        default=None,
        help="JSON-RPC endpoint. Default: $TOKEN_LEDGER_RPC_URL, else the node of `chain up`.",
    )(func)


def chain_url(rpc_url: str | None, chain_dir: str | None) -> str:
    """Return the RPC URL: --rpc-url, else $TOKEN_LEDGER_RPC_URL, else the node of `chain up`."""
    from ledger.chain import anvil

    url = rpc_url or anvil.default_rpc_url(anvil.chain_dir(chain_dir))
    if url is None:
        raise Rejected(
            Reason.CHAIN,
            "no chain: run `token-ledger chain up`, or pass --rpc-url or --chain-dir",
        )
    return url


def connect_chain(*, rpc_url: str | None, allow_remote_rpc: bool, chain_dir: str | None) -> Web3:
    """Return the chain named by the `chain_connection_options` values, connected.

    Refuses (exit 2) when no chain is found, the URL is not loopback without
    --allow-remote-rpc, or no node answers. Pass the result as `verify_anchors(..., w3=...)`.
    """
    from ledger.chain.rpc import connect

    return connect(chain_url(rpc_url, chain_dir), allow_remote=allow_remote_rpc)


def _connect(rpc_url: str | None, allow_remote: bool, chain_dir: str | None) -> tuple[Web3, str]:
    from ledger.chain.rpc import connect

    url = chain_url(rpc_url, chain_dir)
    return connect(url, allow_remote=allow_remote), url


def _operator(w3: Web3, url: str) -> Operator:
    from ledger.chain.keys import ANVIL_CHAIN_ID, load_operator
    from ledger.chain.rpc import is_loopback_url

    # Anvil's public test key is acceptable only on a local Anvil chain.
    chain_id = int(w3.eth.chain_id)
    dev_ok = chain_id == ANVIL_CHAIN_ID and is_loopback_url(url)
    return load_operator(allow_dev_key=dev_ok, chain_id=chain_id)


def _ledger(*books: str) -> Ledger:
    """Open the ledger; refuse first if any of `books` is not a fund book in it."""
    from ledger.chain.deployment import require_share_book

    lg = open_cli_ledger()
    for book in books:
        require_share_book(lg, book)
    return lg


@click.group("chain")
def chain_group() -> None:
    """Mirror each fund's share register to an ERC-20 on a local Anvil chain.

    \b
    The ledger stays the source of truth; the chain follows it:
      npm ci                                   # once: installs anvil + solc (package.json)
      token-ledger chain up                    # start Anvil on a free loopback port
      token-ledger chain sync BTC3L            # deploy if needed, mirror every holder
      token-ledger chain reconcile BTC3L       # exit 0 only when chain == ledger
      token-ledger chain anchor BTC3L          # write the journal head (seq, hash) on chain
      token-ledger chain status --json
      token-ledger chain down                  # stop Anvil; its state is saved for `up`
    The operator key comes from $TOKEN_LEDGER_OPERATOR_KEY or an encrypted keystore
    ($TOKEN_LEDGER_OPERATOR_KEYSTORE + $TOKEN_LEDGER_OPERATOR_PASSWORD[_FILE]); on a local
    Anvil (chain id 31337) Anvil's public test key is used when neither is set.
    """


@chain_group.command("up")
@click.option("--chain-dir", metavar="DIR", default=None, help="Node record, state and log folder.")
@click.option("--fresh", is_flag=True, help="Discard the saved chain state and start a new chain.")
@json_option
@handle_errors
def up_cmd(chain_dir: str | None, fresh: bool) -> None:
    """Start a local Anvil on a free loopback port (state kept in --chain-dir).

    \b
    Examples:
      token-ledger chain up
      token-ledger chain up --fresh --chain-dir /tmp/chain --json
    """
    from ledger.chain import anvil

    workdir = anvil.chain_dir(chain_dir)
    node = anvil.load_node(workdir)
    if node is not None and anvil.pid_alive(node.pid):
        emit(
            _node_json(node, running=True, started=False),
            f"anvil already running at {node.rpc_url}",
        )
        return
    state_path = workdir / anvil.STATE_FILE
    if fresh:
        state_path.unlink(missing_ok=True)
    node = anvil.start_anvil(workdir=workdir, state_path=state_path)
    anvil.save_node(workdir, node)
    emit(
        _node_json(node, running=True, started=True),
        f"anvil started at {node.rpc_url} (pid {node.pid})",
    )


@chain_group.command("down")
@click.option("--chain-dir", metavar="DIR", default=None, help="Node record, state and log folder.")
@json_option
@handle_errors
def down_cmd(chain_dir: str | None) -> None:
    """Stop the Anvil started by `chain up`; it saves its state for the next `up`.

    \b
    Example:
      token-ledger chain down
    """
    from ledger.chain import anvil

    workdir = anvil.chain_dir(chain_dir)
    node = anvil.load_node(workdir)
    if node is None or not anvil.pid_alive(node.pid):
        anvil.forget_node(workdir)
        emit({"stopped": False, "running": False}, "anvil is not running")
        return
    anvil.stop_anvil(node)
    anvil.forget_node(workdir)
    emit(
        {"stopped": True, "running": False, "pid": node.pid, "state_path": node.state_path},
        f"anvil stopped (pid {node.pid}); state saved to {node.state_path}",
    )


@chain_group.command("deploy")
@click.argument("product")
@chain_connection_options
@json_option
@handle_errors
def deploy_cmd(
    product: str, rpc_url: str | None, allow_remote_rpc: bool, chain_dir: str | None
) -> None:
    """Deploy PRODUCT's mirror contract if it has none on this chain (idempotent).

    \b
    Example:
      token-ledger chain deploy BTC3L --json
    """
    from ledger.chain.deployment import ensure_deployed

    lg = _ledger(product)
    w3, url = _connect(rpc_url, allow_remote_rpc, chain_dir)
    attached = ensure_deployed(lg, product, w3, _operator(w3, url))
    dep = attached.deployment
    payload = {
        "book": product,
        "address": dep.address,
        "chain_id": dep.chain_id,
        "deploy_block": dep.deploy_block,
        "redeployed": attached.redeployed,
        "reset_reason": attached.reset_reason,
    }
    emit(payload, f"{product} mirror at {dep.address} (chain {dep.chain_id})")


@chain_group.command("sync")
@click.argument("product")
@click.option(
    "--batch",
    type=click.IntRange(1, 2000),
    default=None,
    help="Holders per transaction (default: what fits the block gas limit, <= 500).",
)
@chain_connection_options
@json_option
@handle_errors
def sync_cmd(
    product: str,
    batch: int | None,
    rpc_url: str | None,
    allow_remote_rpc: bool,
    chain_dir: str | None,
) -> None:
    """Bring PRODUCT's mirror to the ledger's head (deploys, or redeploys after a reset).

    Idempotent (a second run sends nothing) and resumable (a killed run is finished by the
    next one, never minting twice). A split or merge is mirrored as one transaction.

    \b
    Example:
      token-ledger chain sync BTC3L --json
    """
    from ledger.chain.sync import sync_book

    lg = _ledger(product)
    w3, url = _connect(rpc_url, allow_remote_rpc, chain_dir)
    report = sync_book(lg, product, w3, _operator(w3, url), batch=batch, max_rounds=1000)
    emit(report.as_json(), lambda: _sync_text(report))


@chain_group.command("reconcile")
@click.argument("product")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="Differences to list in text output (--json lists all).",
)
@chain_connection_options
@json_option
@handle_errors
def reconcile_cmd(
    product: str, limit: int, rpc_url: str | None, allow_remote_rpc: bool, chain_dir: str | None
) -> None:
    """Compare every holder's balance and the supply on chain with the ledger.

    Exit 0 only when equal; 3 (audit findings) with the differences otherwise.

    \b
    Example:
      token-ledger chain reconcile BTC3L --json
    """
    from ledger.chain.reconcile import reconcile_book

    lg = _ledger(product)
    w3, _ = _connect(rpc_url, allow_remote_rpc, chain_dir)
    report = reconcile_book(lg, product, w3)
    payload = report.as_json()
    if not report.ok:
        if not state().json_output:
            click.echo(_reconcile_text(report, limit))
        raise AuditFailed(
            f"{product}: chain differs from the ledger ({len(report.differences)} holders)", payload
        )
    emit(payload, lambda: _reconcile_text(report, limit))


@chain_group.command("anchor")
@click.argument("product")
@chain_connection_options
@json_option
@handle_errors
def anchor_cmd(
    product: str, rpc_url: str | None, allow_remote_rpc: bool, chain_dir: str | None
) -> None:
    """Write PRODUCT's journal head (seq and hash) to its mirror contract, and beside it the
    root of its holders' Merkle-sum tree at that seq (docs/proof-of-liabilities.md).

    `token-ledger verify PRODUCT --chain` later checks the database against every anchor;
    `token-ledger proof verify FILE --chain` checks a holder's proof against the root.

    \b
    Example:
      token-ledger chain anchor BTC3L --json
    """
    from ledger.chain.anchor import anchor_book
    from ledger.chain.liabilities import anchor_book_liabilities
    from ledger.storage import fund_store

    lg = _ledger(product)
    w3, url = _connect(rpc_url, allow_remote_rpc, chain_dir)
    operator = _operator(w3, url)
    result = anchor_book(lg, product, w3, operator)
    # A fund product's holders' root goes beside its head (a plain share book has no proofs).
    root = None
    if fund_store.load_product(lg.engine, product) is not None:
        root = anchor_book_liabilities(lg, product, w3, operator, seq=result.seq)
    payload = {
        "book": result.book,
        "seq": result.seq,
        "hash": result.entry_hash,
        "tx": result.tx_hash,
        "already_anchored": result.already_anchored,
        "liabilities": None
        if root is None
        else {
            "root": root.root.hash.hex(),
            "sum": str(root.root.sum),
            "depth": root.root.depth,
            "tx": root.tx_hash,
            "already_anchored": root.already_anchored,
        },
    }
    verb = "was already anchored" if result.already_anchored else "anchored"
    text = f"{product} seq {result.seq} {verb}: {result.entry_hash}"
    if root is not None:
        text += (
            f"\nliabilities root {root.root.hash.hex()} (sum {root.root.sum},"
            f" depth {root.root.depth})"
        )
    emit(payload, text)


@chain_group.command("status")
@click.argument("products", nargs=-1)
@chain_connection_options
@json_option
@handle_errors
def status_cmd(
    products: tuple[str, ...], rpc_url: str | None, allow_remote_rpc: bool, chain_dir: str | None
) -> None:
    """Show the node and, per book, its mirror address and how far it is synced.

    \b
    Examples:
      token-ledger chain status
      token-ledger chain status BTC3L --json
    """
    from ledger.chain import anvil
    from ledger.chain.rpc import check_rpc_url, connect

    lg = _ledger(*products)
    workdir = anvil.chain_dir(chain_dir)
    node = anvil.load_node(workdir)
    url = rpc_url or anvil.default_rpc_url(workdir)
    payload: dict[str, Any] = {"rpc_url": url, "node": None, "chain": None, "books": []}
    if node is not None:
        payload["node"] = _node_json(node, running=anvil.pid_alive(node.pid))
    w3 = None
    if url is not None:
        # A refused URL (not loopback, bad scheme) is an error; only a silent node is a status.
        check_rpc_url(url, allow_remote=allow_remote_rpc)
        try:
            w3 = connect(url, allow_remote=allow_remote_rpc)
            payload["chain"] = {"chain_id": w3.eth.chain_id, "block": w3.eth.block_number}
        except Rejected as exc:
            if not exc.retryable:
                raise
            w3 = None
    for book in products or tuple(lg.books()):
        payload["books"].append(_book_status(lg, book, w3))
    emit(payload, lambda: _status_text(payload))


def _book_status(lg: Ledger, book: str, w3: Web3 | None) -> dict[str, Any]:
    from ledger.chain.deployment import attach, reset_reason
    from ledger.chain.records import active_deployment

    head_seq = lg.head(book)[0]
    dep = active_deployment(lg.engine, book)
    row: dict[str, Any] = {
        "book": book,
        "ledger_seq": head_seq,
        "address": None,
        "synced_seq": None,
        "in_sync": False,
        "anchors": None,
        "problem": None,
    }
    if dep is None:
        row["problem"] = "not deployed"
        return row
    row["address"] = dep.address
    if w3 is None:
        row["problem"] = "chain not reachable"
        return row
    reason = reset_reason(w3, dep)
    if reason is not None:
        row["problem"] = reason
        return row
    client = attach(lg, book, w3).client
    row["synced_seq"] = client.last_synced_seq()
    row["in_sync"] = row["synced_seq"] == head_seq
    row["anchors"] = int(client.view("anchorCount"))
    return row


def _node_json(node: AnvilNode, *, running: bool, started: bool | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "running": running,
        "pid": node.pid,
        "rpc_url": node.rpc_url,
        "chain_id": node.chain_id,
        "state_path": node.state_path,
        "log_path": node.log_path,
    }
    if started is not None:
        out["started"] = started
    return out


def _sync_text(r: SyncReport) -> str:
    lines = [
        f"{r.book} mirrored to seq {r.synced_seq} at {r.address}: {r.txs} txs "
        f"({r.holders_written} holder writes, {r.rebases} split/merge), gas {r.gas_used}"
    ]
    if r.catch_ups:
        lines.append(f"{r.catch_ups} catchUp txs moved holders far behind on splits forward")
    if r.redeployed:
        lines.append(f"redeployed: {r.reset_reason}")
    if r.failed_txs:
        lines.append(f"{r.failed_txs} txs reverted and were redone")
    return "\n".join(lines)


def _reconcile_text(r: ReconcileReport, limit: int) -> str:
    head = (
        f"{r.book}: {r.holders} holders, ledger seq {r.ledger_seq}, chain seq {r.chain_seq}, "
        f"supply ledger {r.ledger_supply} chain {r.chain_supply}"
    )
    if r.ok:
        return head + "\nequal"
    lines = [head, f"{len(r.differences)} holders differ (units):"]
    lines += [
        f"  {d.holder:<24} {d.address} ledger {d.ledger_units} chain {d.chain_units}"
        for d in r.differences[:limit]
    ]
    return "\n".join(lines)


def _status_text(payload: dict[str, Any]) -> str:
    chain = payload["chain"]
    lines = [
        f"rpc {payload['rpc_url'] or '-'}: "
        + (f"chain {chain['chain_id']} at block {chain['block']}" if chain else "not reachable")
    ]
    for row in payload["books"]:
        state_text = row["problem"] or ("in sync" if row["in_sync"] else "behind")
        lines.append(
            f"  {row['book']:<12} {row['address'] or '-':<42} ledger {row['ledger_seq']}"
            f" chain {row['synced_seq']} anchors {row['anchors']} {state_text}"
        )
    return "\n".join(lines)


def register(cli: click.Group) -> None:
    """Add this module's commands to the root group."""
    cli.add_command(chain_group)
