"""Render fund state and entries as JSON-ready dicts (amounts as decimal strings)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

from ledger.domain.fund import accounts as acc
from ledger.domain.fund.state import FundState, effective_multiple, nav_per_share_units
from ledger.domain.fund.terms import Terms
from ledger.domain.journal import JournalEntry
from ledger.domain.money import Rounding, format_units, mul_div

MULTIPLE_PLACES = Decimal("0.000000000001")


def utc_text(moment: datetime) -> str:
    """Return an aware time in UTC as ISO 8601 with "Z" (docs/cli.md), microseconds if any."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def multiple_text(value: Decimal) -> str:
    """Return an effective multiple with 12 decimals (half-even) as text."""
    with localcontext() as ctx:
        ctx.prec = 40
        return f"{value.quantize(MULTIPLE_PLACES):f}"


def nav_payload(terms: Terms, state: FundState) -> dict[str, Any]:
    """Return NAV per share, equity, supply, position and multiple of a state."""
    quote, share, pos = terms.quote_asset.scale, terms.share_asset.scale, terms.position_asset.scale
    return {
        "product": terms.book,
        "nav_per_share": format_units(nav_per_share_units(terms, state), quote),
        "equity": format_units(max(state.collateral, 0), quote),
        "supply": format_units(state.supply, share),
        "position": format_units(state.position, pos),
        "price": format_units(state.price, quote),
        "effective_multiple": multiple_text(effective_multiple(terms, state)),
        "wiped_out": state.wiped_out,
        "shortfall": format_units(state.shortfall, quote),
        "quote_asset": terms.quote_asset.code,
    }


def holder_rows(terms: Terms, state: FundState, holders: Mapping[str, int]) -> list[dict[str, str]]:
    """Return each holder's shares and value at NAV (value rounded down), by holder id."""
    nav = nav_per_share_units(terms, state)
    one = terms.share_one
    return [
        {
            "holder": holder,
            "shares": format_units(units, terms.share_asset.scale),
            "value": format_units(mul_div(units, nav, one, Rounding.DOWN), terms.quote_asset.scale),
        }
        for holder, units in sorted(holders.items())
        if units
    ]


def entry_summary(
    terms: Terms, entry: JournalEntry, *, holder: str | None = None
) -> dict[str, Any]:
    """Return an entry's kind, time, sequence, hash and its effect on holders and fees."""
    draft = entry.draft
    meta = dict(draft.metadata)
    fee = sum(p.amount for p in draft.postings if p.account == acc.MANAGER_FEES)
    summary: dict[str, Any] = {
        "seq": entry.seq,
        "kind": draft.kind,
        "effective_at": utc_text(draft.effective_at),
        "key": draft.idempotency_key,
        "hash": entry.hash.hex(),
        "holder": meta.get("holder", holder),
        "fee": format_units(fee, terms.quote_asset.scale),
    }
    if holder is not None or "holder" in meta:
        # The id as posted (no re-check): the treasury and ids from older entries read back too.
        code = acc.HOLDER_PREFIX + (holder or meta["holder"])
        delta = sum(p.amount for p in draft.postings if p.account == code)
        summary["shares_delta"] = format_units(delta, terms.share_asset.scale)
    for name in ("cash", "paid", "ratio_num", "ratio_den"):
        if name in meta:
            summary[name] = meta[name]
    return summary
