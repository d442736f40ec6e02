"""Render fund state and entries as JSON-ready dicts (amounts as decimal strings)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

from ledger.domain.fund import accounts as acc
from ledger.domain.fund.shareindex import index_ratio, shares_of
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
    """Return NAV per share, equity, supply (shares outstanding; `units`, the holders'
    internal units, and `index`, the share index's ratios), position and multiple."""
    quote, share, pos = terms.quote_asset.scale, terms.share_asset.scale, terms.position_asset.scale
    return {
        "product": terms.book,
        "nav_per_share": format_units(nav_per_share_units(terms, state), quote),
        "equity": format_units(max(state.collateral, 0), quote),
        "supply": format_units(state.shares, share),
        "units": format_units(state.supply, share),
        "index": " ".join(f"{num}/{den}" for num, den in state.index),
        "position": format_units(state.position, pos),
        "price": format_units(state.price, quote),
        "effective_multiple": multiple_text(effective_multiple(terms, state)),
        "wiped_out": state.wiped_out,
        "shortfall": format_units(state.shortfall, quote),
        "quote_asset": terms.quote_asset.code,
    }


def holder_rows(
    terms: Terms,
    state: FundState,
    holders: Mapping[str, int],
    shares: Mapping[str, int] | None = None,
) -> list[dict[str, str]]:
    """Return each holder's shares (their units under the share index), units and value, by
    holder id; holders with no units left out. The value is shares x NAV per share (rounded
    down) without an index; under one it is units x E / U, the exact value per unit rounded
    down once (the NAV per share shown may round to nothing after many splits). `shares`:
    the holders' shares if the caller has them (`shareindex.holder_shares`)."""
    nav = nav_per_share_units(terms, state)
    one, scale, quote = terms.share_one, terms.share_asset.scale, terms.quote_asset.scale
    index = state.index
    equity, units_out = max(state.collateral, 0), state.supply
    rows = []
    for holder, units in sorted(holders.items()):
        if not units:
            continue
        if index:
            shown = shares[holder] if shares is not None else shares_of(units, index)
            value = mul_div(units, equity, units_out, Rounding.DOWN) if units_out else 0
        else:
            shown, value = units, mul_div(units, nav, one, Rounding.DOWN)
        rows.append(
            {
                "holder": holder,
                "shares": format_units(shown, scale),
                "units": format_units(units, scale),
                "value": format_units(value, quote),
            }
        )
    return rows


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
        shares = delta
        if draft.kind in ("mint", "redeem") and any(
            p.account == acc.SHARE_INDEX for p in draft.postings
        ):
            # Under a share index the shares outstanding move by this one holder's shares.
            shares = -sum(p.amount for p in draft.postings if p.account == acc.SHARES_OUTSTANDING)
        summary["shares_delta"] = format_units(shares, terms.share_asset.scale)
        summary["units_delta"] = format_units(delta, terms.share_asset.scale)
    for name in ("cash", "paid", "ratio_num", "ratio_den"):
        if name in meta:
            summary[name] = meta[name]
    return summary


def holder_entries(
    terms: Terms, entries: Sequence[JournalEntry], holder: str
) -> list[dict[str, Any]]:
    """Return a holder's entries as `entry_summary`s with the change of their shares and
    units at each: `entries` are the holder's own and the book's index splits, in order.

    An index split moves no unit of the holder; their shares change by the ratio.
    """
    code = acc.HOLDER_PREFIX + holder
    scale = terms.share_asset.scale
    units, index = 0, ()  # type: tuple[int, tuple[tuple[int, int], ...]]
    rows = []
    for entry in entries:
        before = shares_of(units, index)
        ratio = index_ratio(entry.draft.kind, dict(entry.draft.metadata))
        if ratio is not None:
            moved = 0
            index = (*index, ratio)
        else:
            moved = sum(p.amount for p in entry.draft.postings if p.account == code)
            units += moved
        row = entry_summary(terms, entry, holder=holder)
        row["shares_delta"] = format_units(shares_of(units, index) - before, scale)
        row["units_delta"] = format_units(moved, scale)
        rows.append(row)
    return rows
