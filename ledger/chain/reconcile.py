"""Compare every holder's balance and the total supply on chain with the ledger.

The chain side is read in batches (chunked `balancesOf` calls in one JSON-RPC batch), so 10,000
holders cost a handful of eth_calls, not 10,000.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from web3 import Web3

from ledger.chain.deployment import attach
from ledger.chain.holders import address_map
from ledger.chain.plan import balances_at
from ledger.chain.sync import read_snapshot
from ledger.services.ledger import Ledger


@dataclass(frozen=True, slots=True)
class HolderDifference:
    """One holder whose chain balance differs from the ledger (base units)."""

    holder: str
    address: str
    ledger_units: int
    chain_units: int


@dataclass
class ReconcileReport:
    """The result of `reconcile_book`: equal only when there are no differences at all."""

    book: str
    address: str
    ledger_seq: int
    chain_seq: int
    holders: int
    ledger_supply: int
    ledger_sum: int
    """The holders' shares in the ledger (below the supply by the share index's rounding)."""
    chain_supply: int
    chain_sum: int
    differences: list[HolderDifference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.differences
            and self.ledger_supply == self.chain_supply
            and self.ledger_sum == self.chain_sum
        )

    def as_json(self) -> dict[str, Any]:
        """Return the stable JSON form (`chain reconcile --json`); units as decimal strings."""
        return {
            "book": self.book,
            "address": self.address,
            "equal": self.ok,
            "ledger_seq": self.ledger_seq,
            "chain_seq": self.chain_seq,
            "holders": self.holders,
            "ledger_supply": str(self.ledger_supply),
            "ledger_sum": str(self.ledger_sum),
            "chain_supply": str(self.chain_supply),
            "chain_sum": str(self.chain_sum),
            "differences": [
                {
                    "holder": d.holder,
                    "address": d.address,
                    "ledger_units": str(d.ledger_units),
                    "chain_units": str(d.chain_units),
                }
                for d in self.differences
            ],
        }


def reconcile_book(lg: Ledger, book: str, w3: Web3) -> ReconcileReport:
    """Return how the book's mirror on `w3` differs from the ledger's current state."""
    client = attach(lg, book, w3).client
    chain_seq = client.last_synced_seq()
    snapshot = read_snapshot(lg, book, from_seq=lg.head(book)[0])
    addresses = address_map(snapshot.holders)
    chain = client.balances([addresses[h] for h in snapshot.holders])
    chain_supply = client.total_supply()
    shares = balances_at(snapshot, snapshot.head_seq)
    diffs = [
        HolderDifference(h, addresses[h], shares.get(h, 0), units)
        for h, units in zip(snapshot.holders, chain, strict=True)
        if units != shares.get(h, 0)
    ]
    return ReconcileReport(
        book=book,
        address=client.address,
        ledger_seq=snapshot.head_seq,
        chain_seq=chain_seq,
        holders=len(snapshot.holders),
        ledger_supply=snapshot.shares_outstanding(),
        ledger_sum=sum(shares.values()),
        chain_supply=chain_supply,
        chain_sum=sum(chain),
        differences=diffs,
    )
