"""A batch of orders as the API and `token-ledger orders FILE` take it, checked whole before
anything is locked, and the result of a posted batch.

    [{"side": "mint", "holder": "alice", "cash": "1000"},
     {"side": "redeem", "holder": "bob", "shares": "2.5"}]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ledger.domain.fund.orders import MAX_ORDERS, Order, fills_of
from ledger.domain.fund.product import check_holder_id
from ledger.domain.fund.terms import Terms
from ledger.domain.journal import JournalEntry
from ledger.domain.money import format_units, parse_units
from ledger.errors import Reason, Rejected
from ledger.services.fund_report import utc_text

_FIELDS = {"mint": "cash", "redeem": "shares"}


def parse_orders(terms: Terms, items: object) -> list[Order]:
    """Return the orders of a batch, every field checked; refuse the whole batch (naming the
    order) at the first bad one."""
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise Rejected(Reason.BAD_INPUT, "orders must be a list of {side, holder, cash|shares}")
    if not items:
        raise Rejected(Reason.BAD_INPUT, "a batch needs at least one order")
    if len(items) > MAX_ORDERS:
        raise Rejected(Reason.BAD_INPUT, f"a batch takes at most {MAX_ORDERS} orders")
    return [_order(terms, i, item) for i, item in enumerate(items)]


def _order(terms: Terms, index: int, item: object) -> Order:
    where = f"order {index}"
    if not isinstance(item, Mapping):
        raise Rejected(Reason.BAD_INPUT, f"{where} must be an object")
    side = item.get("side")
    if side not in _FIELDS:
        raise Rejected(Reason.BAD_INPUT, f"{where}: side must be 'mint' or 'redeem'")
    field = _FIELDS[side]
    extra = set(item) - {"side", "holder", field}
    if extra:
        raise Rejected(Reason.BAD_INPUT, f"{where}: unknown field {sorted(extra)[0]!r}")
    holder = item.get("holder")
    if not isinstance(holder, str):
        raise Rejected(Reason.BAD_INPUT, f"{where}: holder must be a string")
    holder = check_holder_id(holder)
    text = item.get(field)
    if not isinstance(text, str):
        raise Rejected(Reason.BAD_INPUT, f"{where}: {field} must be a decimal string")
    asset = terms.quote_asset if side == "mint" else terms.share_asset
    units = parse_units(text, asset.scale, field)
    if units <= 0:
        raise Rejected(Reason.BAD_INPUT, f"{where}: {field} must be positive, got {text!r}")
    return Order(side, holder, units)


def request_of(orders: Sequence[Order]) -> tuple[str, ...]:
    """Return what identifies a batch for its idempotency key (as `FundOperation.replay`
    reads it back from a posted `orders` entry): each order's side, holder and base units."""
    return ("orders", *(f"{o.side}:{o.holder}:{o.amount}" for o in orders))


def batch_payload(terms: Terms, entry: JournalEntry) -> dict[str, Any]:
    """Return the JSON-ready result of a posted batch, read from its entry alone (so a retry
    under the same key returns exactly the original)."""
    meta = dict(entry.draft.metadata)
    qs, ss = terms.quote_asset.scale, terms.share_asset.scale
    ps = terms.position_asset.scale
    fills = [
        {
            "side": f["side"],
            "holder": f["holder"],
            "shares_delta": format_units(int(f["shares"]), ss),
            "cash": format_units(int(f["cash"]), qs),
            "fee": format_units(int(f["fee"]), qs),
            "trade": format_units(int(f["trade"]), ps),
            "rebate": format_units(int(f["rebate"]), qs),
        }
        for f in fills_of(meta)
    ]
    return {
        "product": terms.book,
        "seq": entry.seq,
        "key": entry.draft.idempotency_key,
        "hash": entry.hash.hex(),
        "effective_at": utc_text(entry.draft.effective_at),
        "net_trade": meta["net_trade"],
        "trading_fee": meta["trading_fee"],
        "trading_fee_saved": meta["trading_fee_saved"],
        "priced_at_nav": meta["priced_at_nav"],
        "fills": fills,
    }
