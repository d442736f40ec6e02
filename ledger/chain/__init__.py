"""The ERC-20 mirror of each fund's share register on a local Anvil chain.

The ledger is the source of truth; the chain follows it. Public entry points:

    from ledger.chain import address_of, verify_anchors
    address_of("alice")                      # checksummed holder address (see holders.py)
    book_address_of(holder_id)               # the same for an id read from a book (lenient)
    report = verify_anchors(lg, "BTC3L", rpc_url="http://127.0.0.1:8545")
    report.ok, report.mismatches, report.problem

`sync_book`, `reconcile_book` and `anchor_book` live in ledger.chain.sync, .reconcile and
.anchor; the CLI is `token-ledger chain ...` (ledger/cli/chain_cmds.py). See docs/chain.md.
"""

from __future__ import annotations

from typing import Any

from ledger.chain.holders import address_of, book_address_of

__all__ = ["address_of", "book_address_of", "verify_anchors"]


def __getattr__(name: str) -> Any:
    # web3 is heavy to import: load the chain client only when it is used.
    if name == "verify_anchors":
        from ledger.chain.anchor import verify_anchors

        return verify_anchors
    raise AttributeError(name)
