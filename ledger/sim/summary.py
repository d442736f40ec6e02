"""The simulation summary: per product, what the books say after the run.

Returns are computed exactly (Fractions of integers) and shown as decimal fractions with six
places: the fund's NAV return (adjusted for splits and merges), the underlying's return,
the multiple times it, and the volatility decay as the ratio (NAV_T/NAV_0) / (S_T/S_0)^L
(1 means none; fees included), also as `volatility_decay` = that ratio - 1 in the JSON.
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any

from ledger.domain.fund import accounts as acc
from ledger.domain.fund.state import nav_per_share_units
from ledger.domain.money import format_units
from ledger.sim.driver import ProductRun, SimOutcome

PLACES = Decimal("0.000001")


def _fraction_text(value: Fraction) -> str:
    with localcontext() as ctx:
        ctx.prec = 40
        return f"{(Decimal(value.numerator) / Decimal(value.denominator)).quantize(PLACES):f}"


def _first_day_below(run: ProductRun, nav0: int, fraction: Fraction) -> str | None:
    """Return the first day whose closing NAV (split-adjusted) fell below `fraction` of NAV_0:
    a fund that is not wiped out in the books can still have lost all but dust."""
    for day, nav, factor in run.closes:
        if Fraction(nav, nav0) * factor < fraction:
            return day.isoformat()
    return None


def product_summary(run: ProductRun, outcome: SimOutcome) -> dict[str, Any]:
    """Return one product's summary (decimal strings; counts as integers)."""
    terms = run.terms
    quote = terms.quote_asset.scale
    balances = outcome.balances.get(terms.book, {})
    qa = terms.quote_asset.code

    def paid(account: str) -> str:
        return format_units(abs(balances.get((account, qa), 0)), quote)

    nav = nav_per_share_units(terms, run.state)
    fund_ratio = Fraction(nav, terms.nav0_units) * run.split_factor
    start, end = outcome.bars[0].open, outcome.bars[-1].close
    underlying = Fraction(end, start)
    multiple = Fraction(*terms.multiple)
    with localcontext() as ctx:
        ctx.prec = 40
        exponent = Decimal(multiple.numerator) / multiple.denominator
        power = (Decimal(end) / Decimal(start)) ** exponent
        fund = Decimal(fund_ratio.numerator) / fund_ratio.denominator
        decay = fund / power
    report = outcome.verify.get(terms.book)
    counts = run.counts
    return {
        "product": terms.book,
        "multiple": str(multiple),
        "nav_initial": format_units(terms.nav0_units, quote),
        "nav_final": format_units(nav, quote),
        "split_factor": str(run.split_factor),
        "fund_return": _fraction_text(fund_ratio - 1),
        "underlying_return": _fraction_text(underlying - 1),
        "multiple_x_underlying": _fraction_text(multiple * (underlying - 1)),
        "fund_nav_ratio": f"{fund:.6g}",
        "decay_ratio": f"{decay:.6g}",
        "volatility_decay": f"{(decay - 1).quantize(PLACES):f}",
        "rebalances_daily": counts.get("rebalance_daily", 0),
        "rebalances_adhoc": counts.get("rebalance_adhoc", 0),
        "fees_subscription": paid(acc.FEE_SUBSCRIPTION),
        "fees_redemption": paid(acc.FEE_REDEMPTION),
        "fees_management": paid(acc.FEE_MANAGEMENT),
        "trading_fees": paid(acc.TRADING_FEES),
        "trading_fees_orders": format_units(counts.get("order_trading_fees", 0), quote),
        "trading_fees_rebalances": format_units(
            balances.get((acc.TRADING_FEES, qa), 0) - counts.get("order_trading_fees", 0), quote
        ),
        "trading_fees_saved_by_netting": format_units(counts.get("order_fees_saved", 0), quote),
        "order_batches": counts.get("order_batches", 0),
        "funding_paid": format_units(balances.get((acc.FUNDING, qa), 0), quote),
        "splits": counts.get("splits", 0),
        "merges": counts.get("merges", 0),
        "mints": counts.get("mints", 0),
        "redeems": counts.get("redeems", 0),
        "refused": counts.get("refused", 0),
        "holders": sum(1 for units in run.holders.values() if units > 0),
        "entries": 0 if report is None else report.entries,
        "wiped_out_on": None if run.wiped_on is None else run.wiped_on.isoformat(),
        "lost_99_9999_on": _first_day_below(run, terms.nav0_units, Fraction(1, 10**6)),
        "verify_ok": None if report is None else report.ok,
        "head_hash": None if report is None else report.head_hash,
    }


def summary(outcome: SimOutcome, *, source: str | None = None) -> dict[str, Any]:
    """Return the whole run's summary; `source` names the prices (see run.price_source)."""
    bars = outcome.bars
    return {
        "prices": source,
        "synthetic": source is not None and source.startswith("synthetic"),
        "days": len(bars),
        "from": bars[0].day.isoformat(),
        "to": bars[-1].day.isoformat(),
        "entries": outcome.entries,
        "seconds_posting": round(outcome.seconds_posting, 3),  # float-ok: a duration
        "seconds_verify": round(outcome.seconds_verify, 3),  # float-ok: a duration
        "verify_ok": all(r.ok for r in outcome.verify.values()),
        "products": [product_summary(run, outcome) for run in outcome.runs],
    }


ROWS = (
    ("final NAV per share", "nav_final"),
    ("split/merge factor", "split_factor"),
    ("fund return (split-adjusted)", "fund_return"),
    ("underlying return", "underlying_return"),
    ("L x underlying return (no decay)", "multiple_x_underlying"),
    ("NAV_T/NAV_0 (split-adjusted)", "fund_nav_ratio"),
    ("decay: (NAV_T/NAV_0) / (S_T/S_0)^L", "decay_ratio"),
    ("rebalances daily / ad hoc", ("rebalances_daily", "rebalances_adhoc")),
    ("subscription fees", "fees_subscription"),
    ("redemption fees", "fees_redemption"),
    ("management fees", "fees_management"),
    ("trading fees borne by orders", "trading_fees_orders"),
    ("trading fees of rebalancing", "trading_fees_rebalances"),
    ("trading fees saved by netting", "trading_fees_saved_by_netting"),
    ("order batches (one per day)", "order_batches"),
    ("funding paid (< 0: received)", "funding_paid"),
    ("splits / merges", ("splits", "merges")),
    ("mints / redeems / refused", ("mints", "redeems", "refused")),
    ("holders with shares", "holders"),
    ("entries", "entries"),
    ("wiped out on", "wiped_out_on"),
    ("NAV below 1e-6 x NAV_0 on", "lost_99_9999_on"),
    ("verify", "verify_ok"),
    ("head hash", "head_hash"),
)


def table_rows(result: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """Return (label, one cell per product) rows for a text table."""
    rows = []
    for label, key in ROWS:
        cells = []
        for product in result["products"]:
            if isinstance(key, tuple):
                cells.append(" / ".join(str(product[k]) for k in key))
            elif key == "verify_ok":
                cells.append("ok" if product[key] else "FAILED")
            elif key == "head_hash" and product[key]:
                cells.append(product[key][:16] + "...")
            else:
                cells.append("-" if product[key] is None else str(product[key]))
        rows.append((label, cells))
    return rows


def summary_text(result: dict[str, Any]) -> str:
    """Return the summary as a plain-text table, one column per product."""
    names = [p["product"] for p in result["products"]]
    lines = [
        f"{result['days']} days {result['from']} .. {result['to']}: {result['entries']} entries"
        f" posted in {result['seconds_posting']} s, verified in {result['seconds_verify']} s",
        f"prices: {result.get('prices') or '-'}",
        f"{'':<34}" + "".join(f"{n:>26}" for n in names),
    ]
    lines += [
        f"{label:<34}" + "".join(f"{c:>26}" for c in cells) for label, cells in table_rows(result)
    ]
    if result.get("chart"):
        lines.append(f"chart: {result['chart']}")
    if result.get("series"):
        lines.append(f"daily series: {result['series']}")
    return "\n".join(lines)
