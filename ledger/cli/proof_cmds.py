"""CLI commands of the proof of liabilities: a holder's proof, its offline check, the root.

    token-ledger proof PRODUCT HOLDER [--seq N] [-o FILE]    the holder's proof file
    token-ledger proof verify FILE [--root HASH]              check it offline (exit 3: fails)
    token-ledger proof root PRODUCT [--seq N]                 root hash, sum, depth, seq

Thin: parse, call one service, render (docs/proof-of-liabilities.md).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ledger.cli.chain_cmds import chain_connection_options, connect_chain
from ledger.cli.common import AuditFailed, emit, handle_errors, json_option, open_cli_ledger
from ledger.errors import Reason, Rejected

if TYPE_CHECKING:
    from ledger.domain.proof import ChainRef, LiabilityProof
    from ledger.services.ledger import Ledger

HOLDER_COMMAND = "holder"
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$", re.ASCII)

seq_option = click.option(
    "--seq",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="The register as of entry N (default: the book's head).",
)
chain_option = click.option(
    "--chain", "use_chain", is_flag=True, help="Check against the root anchored on chain."
)


class ProofGroup(click.Group):
    """`proof PRODUCT HOLDER` runs the holder command; `proof verify|root ...` the others."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [HOLDER_COMMAND, *args]
        return super().parse_args(ctx, args)


@click.group("proof", cls=ProofGroup)
def proof_group() -> None:
    """Proofs of liabilities: each holder checks alone that their shares are in the supply.

    \b
    Commands:
      token-ledger proof PRODUCT HOLDER [--seq N] [-o FILE]   write HOLDER's proof (JSON)
      token-ledger proof verify FILE [--root HASH]            check a proof file offline
      token-ledger proof root PRODUCT [--seq N]               the tree's root and sum
    """


def _ledger() -> Ledger:
    lg = open_cli_ledger()
    lg.init()
    return lg


def _chain_ref(product: str) -> ChainRef | None:
    """Return where the product's roots are anchored (its active mirror deployment), for
    the proof file's `chain` field; None when the product has no mirror."""
    from ledger.chain.records import active_deployment
    from ledger.domain.proof import ChainRef

    deployment = active_deployment(open_cli_ledger().engine, product)
    if deployment is None:
        return None
    return ChainRef(chain_id=deployment.chain_id, address=deployment.address)


@proof_group.command(HOLDER_COMMAND, hidden=True)
@click.argument("product")
@click.argument("holder")
@seq_option
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the proof to FILE (default: print it).",
)
@json_option
@handle_errors
def holder_cmd(product: str, holder: str, seq: int | None, output: Path | None) -> None:
    """Write HOLDER's proof of PRODUCT's liabilities at --seq: a self-contained JSON file.

    \b
    Examples:
      token-ledger proof BTC3L alice -o alice.proof.json
      token-ledger proof BTC3L alice --seq 1200
    """
    from ledger.domain.proof.proof_file import proof_json
    from ledger.services.exports import atomic_text_file, check_output_path
    from ledger.services.proof import liability_proof

    if output is not None:
        check_output_path(output)  # before the proof is built (and the book's key made)
    proof = liability_proof(_ledger(), product, holder, seq=seq, chain=_chain_ref(product))
    document = proof_json(proof)
    if output is None:
        click.echo(json.dumps(document, indent=2))
        return
    with atomic_text_file(output) as out:  # all of it or nothing, on disk before the rename
        out.write(json.dumps(document, indent=2) + "\n")
    summary = {
        "written": str(output),
        "book": proof.book,
        "holder": proof.holder,
        "seq": proof.seq,
        "units": str(proof.units),
        "root": document["root"],
        "depth": proof.depth,
    }
    emit(
        summary,
        lambda: (
            f"wrote the proof of {proof.holder} in {proof.book} at seq {proof.seq} to {output}"
            f" (root {proof.root.hash.hex()}, depth {proof.depth})"
        ),
    )


@proof_group.command("verify")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True))
@click.option(
    "--root",
    "root_hash",
    default=None,
    metavar="HASH",
    help="The root hash published for the proof's seq (64 hex digits); must match.",
)
@chain_option
@chain_connection_options
@json_option
@handle_errors
def verify_cmd(
    file: Path,
    root_hash: str | None,
    use_chain: bool,
    rpc_url: str | None,
    allow_remote_rpc: bool,
    chain_dir: str | None,
) -> None:
    """Check the proof in FILE offline: exit 0 if it verifies, 3 if it does not.

    Recomputes the commitment from the secret and holder id, then the root from the leaf and
    the path, and compares hash and sum with the proof's root (and with --root if given).
    FILE may be - for stdin. A file that is not a proof is refused (exit 2).

    \b
    Examples:
      token-ledger proof verify alice.proof.json
      token-ledger proof verify alice.proof.json --root 3f2a...c1
    """
    from ledger.domain.proof import check_proof

    if root_hash is not None and not _HEX64.match(root_hash):
        raise Rejected(Reason.BAD_INPUT, "--root must be 64 hex digits")
    proof = read_proof_file(file)
    published = proof.published_root()
    if root_hash is not None:
        from dataclasses import replace

        published = replace(published, hash=bytes.fromhex(root_hash))
    problem = check_proof(proof, published=published)
    payload = _verdict(proof, problem)
    if use_chain:
        problem = problem or _chain_problem(proof, rpc_url, allow_remote_rpc, chain_dir, payload)
    if problem is not None:
        raise AuditFailed(f"the proof does not verify: {problem}", payload)
    emit(
        payload,
        lambda: (
            f"ok: {proof.holder}'s {proof.units} units are in {proof.book}'s liabilities at seq"
            f" {proof.seq} (root {proof.root.hash.hex()}, sum {proof.root.sum})"
        ),
    )


def _chain_problem(
    proof: LiabilityProof,
    rpc_url: str | None,
    allow_remote_rpc: bool,
    chain_dir: str | None,
    payload: dict[str, Any],
) -> str | None:
    """Check `proof` with the share token's `verifyLiability` (one eth_call) against the root
    anchored at its seq; record the chain's answer in `payload`; return the problem or None."""
    from ledger.chain.liabilities import proof_on_chain

    if proof.chain is None:
        raise Rejected(Reason.BAD_INPUT, "the proof names no chain (its `chain` is null)")
    w3 = connect_chain(rpc_url=rpc_url, allow_remote_rpc=allow_remote_rpc, chain_dir=chain_dir)
    ok, anchored = proof_on_chain(w3, proof)
    payload["chain"] = {
        "address": proof.chain.address if proof.chain else None,
        "verify_liability": ok,
        "anchored_root": None if anchored is None else anchored.hash.hex(),
    }
    if anchored is None:
        problem = f"no liabilities root is anchored on chain at seq {proof.seq}"
    elif not ok:
        problem = "the share token's verifyLiability rejects it against the anchored root"
    else:
        return None
    payload["ok"], payload["problem"] = False, problem
    return problem


def read_proof_file(file: Path) -> LiabilityProof:
    """Return the proof in a proof file (`-`: stdin); refuse one that is not (`bad_input`)."""
    from ledger.domain.proof.proof_file import read_proof

    try:
        raw = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    except OSError as exc:
        raise Rejected(Reason.BAD_INPUT, f"cannot read {file}: {exc.strerror}") from None
    try:
        value = json.loads(raw.decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise Rejected(
            Reason.BAD_INPUT, f"malformed proof file: not JSON ({exc.msg}, line {exc.lineno})"
        ) from None
    return read_proof(value)


def _verdict(proof: LiabilityProof, problem: str | None) -> dict[str, Any]:
    return {
        "ok": problem is None,
        "problem": problem,
        "book": proof.book,
        "holder": proof.holder,
        "seq": proof.seq,
        "units": str(proof.units),
        "root": {"hash": proof.root.hash.hex(), "sum": str(proof.root.sum)},
        "depth": proof.depth,
    }


@proof_group.command("root")
@click.argument("product")
@seq_option
@chain_option
@chain_connection_options
@json_option
@handle_errors
def root_cmd(
    product: str,
    seq: int | None,
    use_chain: bool,
    rpc_url: str | None,
    allow_remote_rpc: bool,
    chain_dir: str | None,
) -> None:
    """Show the root of PRODUCT's liabilities at --seq: hash, sum, depth, seq.

    The sum is in share base units and must equal the ledger's shares outstanding at that
    seq; if it does not, the command exits 3.

    \b
    Examples:
      token-ledger proof root BTC3L
      token-ledger proof root BTC3L --seq 1200 --json
    """
    from ledger.domain.money import format_units
    from ledger.services.proof import liabilities_at

    lg = _ledger()
    ref = _chain_ref(product) if use_chain else None
    if use_chain and ref is None:  # before the tree is built (and the book's key made)
        raise Rejected(Reason.CHAIN, f"{product} has no mirror contract: run `chain sync`")
    found = liabilities_at(lg, product, seq=seq)
    root, register, scale = found.root(), found.register, found.terms.share_asset.scale
    payload = {
        "product": product,
        "seq": root.seq,
        "head_seq": register.head_seq,
        "root": {"hash": root.hash.hex(), "sum": str(root.sum), "depth": root.depth},
        "holders": len(register.units),
        "shares_outstanding": str(register.shares_outstanding),
        "shares_outstanding_amount": format_units(register.shares_outstanding, scale),
        "remainder": str(register.remainder),
        "sum_matches_shares_outstanding": register.remainder >= 0
        and root.sum + register.remainder == register.shares_outstanding,
    }
    if ref is not None:
        _compare_on_chain(ref, product, root, payload, rpc_url, allow_remote_rpc, chain_dir)
    if not payload["sum_matches_shares_outstanding"]:
        raise AuditFailed(
            f"{product} at seq {root.seq}: the tree's sum {root.sum} and the split rounding"
            f" {register.remainder} are not the shares outstanding {register.shares_outstanding}",
            payload,
        )
    emit(
        payload,
        lambda: (
            f"{product} at seq {root.seq} (head {register.head_seq}): root {root.hash.hex()}\n"
            f"sum {root.sum} (+ split rounding {register.remainder}) = shares outstanding"
            f" {payload['shares_outstanding_amount']},"
            f" depth {root.depth}, {payload['holders']} holders"
        ),
    )


def _compare_on_chain(
    ref: ChainRef,
    product: str,
    root: Any,
    payload: dict[str, Any],
    rpc_url: str | None,
    allow_remote_rpc: bool,
    chain_dir: str | None,
) -> None:
    """Compare the ledger's root at its seq with the root anchored on chain (exit 3 if not
    anchored or different)."""
    from ledger.chain.liabilities import liabilities_root

    w3 = connect_chain(rpc_url=rpc_url, allow_remote_rpc=allow_remote_rpc, chain_dir=chain_dir)
    anchored = liabilities_root(w3, ref.address, root.seq)
    payload["chain"] = {
        "address": ref.address,
        "anchored_root": None if anchored is None else anchored.hash.hex(),
        "anchored_sum": None if anchored is None else str(anchored.sum),
    }
    if anchored is None:
        raise AuditFailed(f"{product}: no liabilities root anchored at seq {root.seq}", payload)
    if (anchored.hash, anchored.sum, anchored.depth) != (root.hash, root.sum, root.depth):
        raise AuditFailed(
            f"{product} at seq {root.seq}: the anchored root {anchored.hash.hex()} is not"
            f" the ledger's {root.hash.hex()}",
            payload,
        )


def statement_proof(product: str, holder: str) -> dict[str, Any] | None:
    """Return the proof file of `holder` at the head for `statement --proof`; None when the
    holder has no units (a zero holding is not in the tree).
    """
    from ledger.domain.proof.proof_file import proof_json
    from ledger.services.proof import liability_proof

    try:
        return proof_json(liability_proof(_ledger(), product, holder, chain=_chain_ref(product)))
    except Rejected as exc:
        if exc.reason is Reason.INSUFFICIENT_SHARES:
            return None
        raise


def register(cli: click.Group) -> None:
    """Add this module's commands to the root group."""
    cli.add_command(proof_group)
