"""Split and merge: one entry that adds the ratio N/D to the share index (`index_split`).

No holder is posted to: every holder's shares are their units under the index, each ratio
applied in turn and rounded down (`shareindex.shares_of`), and the shares outstanding become
floor(S x N / D). Total equity and every holder's units are untouched, so every holder's
value in units is exactly unchanged and their shares' value within one share base unit x
NAV per split; NAV per share scales by D / N.

`split_shares` is the rule of books written before the index: each holder's units posted
to floor(old x N / D), the remainder to `holder:treasury` (kept so they still verify).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from ledger.domain.fund import accounts as acc
from ledger.domain.fund.entries import fund_draft
from ledger.domain.fund.shareindex import INDEX_KEY
from ledger.domain.fund.state import FundState, nav_per_share_units
from ledger.domain.fund.terms import Terms
from ledger.domain.journal import EntryDraft, Posting
from ledger.errors import Reason, Rejected, invariant

_RATIO = re.compile(r"^\s*(\d+)\s*(?::\s*(\d+)\s*)?$")
MAX_RATIO = 10**12


def parse_ratio(text: str, *, kind: str) -> tuple[int, int]:
    """Return (num, den) of a split "1:5" (or "5") or a merge "5:1" (or "5").

    A split of OLD:NEW gives each holder NEW/OLD times the units (num=NEW, den=OLD); a merge
    of OLD:NEW likewise, with OLD > NEW.
    """
    match = _RATIO.match(text) if isinstance(text, str) else None
    if match is None:
        raise Rejected(Reason.BAD_INPUT, f"ratio {text!r} must look like 1:5 or 5")
    first, second = int(match[1]), int(match[2]) if match[2] else None
    if kind == "split":
        old, new = (1, first) if second is None else (first, second)
        ok = new > old
    else:
        old, new = (first, 1) if second is None else (first, second)
        ok = old > new
    rule = "NEW > OLD" if kind == "split" else "OLD > NEW"
    if not ok or min(old, new) < 1 or max(old, new) > MAX_RATIO:
        raise Rejected(
            Reason.BAD_INPUT,
            f"{kind} ratio {text!r} must be OLD:NEW with {rule} >= 1 and at most {MAX_RATIO}",
        )
    return new, old


def index_split(
    terms: Terms,
    state: FundState,
    *,
    num: int,
    den: int,
    at: datetime,
    kind: str = "split",
    key: str | None = None,
) -> tuple[EntryDraft, FundState]:
    """Return the one entry of a split or merge by num/den, and the state after it.

    No holder is posted to: the ratio joins the index. The shares outstanding S become
    floor(S * num / den). Refused for a fund without shares, a wiped-out fund, or a ratio
    that leaves no share or changes none.
    """
    if state.supply == 0:
        raise Rejected(Reason.BAD_INPUT, f"{terms.book} has no shares to {kind}")
    if state.wiped_out:
        raise Rejected(Reason.FUND_WIPED_OUT, f"{terms.book} is wiped out")
    before = state.shares
    after = before * num // den
    if after == 0:
        raise Rejected(Reason.BAD_INPUT, f"a {kind} by {den}:{num} leaves no shares")
    if after == before:
        raise Rejected(Reason.BAD_INPUT, f"a {kind} by {den}:{num} changes no share")
    share = terms.share_asset.code
    postings = [
        Posting(acc.SHARES_OUTSTANDING, share, before - after),
        Posting(acc.SHARE_INDEX, share, after - before),
    ]
    index = (*state.index, (num, den))
    meta = {
        "ratio_num": str(num),
        "ratio_den": str(den),
        "shares_after": str(after),
        INDEX_KEY: str(len(index)),
    }
    draft = fund_draft(terms, kind, at, postings, meta, key)
    return draft, replace(state, index=index, index_gap=state.index_gap + after - before)


def split_shares(
    terms: Terms,
    state: FundState,
    holders: Mapping[str, int],
    *,
    num: int,
    den: int,
    at: datetime,
    kind: str = "split",
    key: str | None = None,
) -> tuple[EntryDraft, FundState, dict[str, int]]:
    """Rescale `holders` (holder id -> share units) by num/den, rounding each down: the
    split of books written before the share index (the fold re-checks those with it).

    Returns the draft, the state after and every holder's units after (the treasury gets the
    remainder). Refused if the fund has no shares or is wiped out.
    """
    if state.supply == 0:
        raise Rejected(Reason.BAD_INPUT, f"{terms.book} has no shares to {kind}")
    if state.wiped_out:
        raise Rejected(Reason.FUND_WIPED_OUT, f"{terms.book} is wiped out")
    asset = terms.share_asset.code
    prefix = acc.HOLDER_PREFIX
    # Comprehensions, not a loop with branches: this runs once per holder (a million, say).
    names = list(holders)
    olds = list(holders.values())
    news = [units * num // den for units in olds]
    postings = [
        Posting(prefix + name, asset, new - old)
        for name, old, new in zip(names, olds, news, strict=True)
        if new != old
    ]
    after = dict(zip(names, news, strict=True))
    total = sum(news)
    invariant(sum(olds) == state.supply, "holders must sum to the supply")
    supply_after = state.supply * num // den
    remainder = supply_after - total
    invariant(remainder >= 0, "split remainder cannot be negative")
    if remainder:
        after["treasury"] = after.get("treasury", 0) + remainder
        postings.append(Posting(acc.TREASURY, asset, remainder))
    if supply_after != state.supply:
        postings.append(Posting(acc.SHARES_OUTSTANDING, asset, state.supply - supply_after))
    if supply_after == 0:
        raise Rejected(Reason.BAD_INPUT, f"a {kind} by {den}:{num} leaves no shares")
    meta = {
        "ratio_num": str(num),
        "ratio_den": str(den),
        "supply_after": str(supply_after),
        "remainder": str(remainder),
    }
    draft = fund_draft(terms, kind, at, postings, meta, key)
    return draft, replace(state, supply=supply_after), after


def policy_ratio(terms: Terms, state: FundState) -> tuple[str, int, int] | None:
    """Return (kind, num, den) if the NAV left the policy's bounds, else None.

    The ratio is `split_merge_ratio` if set, else the power of ten that brings NAV back to
    the order of the initial NAV.
    """
    if state.supply == 0 or state.wiped_out:
        return None
    nav = nav_per_share_units(terms, state)
    above, below = terms.split_nav_above_units, terms.merge_nav_below_units
    fixed = terms.split_merge_ratio
    if above is not None and nav > above:
        ratio = fixed or 10 ** (len(str(nav // terms.nav0_units)) - 1)
        return ("split", ratio, 1) if ratio > 1 else None
    if below is not None and 0 < nav < below:
        ratio = fixed or 10 ** (len(str(terms.nav0_units // nav)) - 1)
        return ("merge", 1, ratio) if ratio > 1 else None
    return None
