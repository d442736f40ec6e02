"""Turn the simulation's command-line options into a checked `SimConfig`, and replace a
SQLite database file, in that order: nothing is deleted before every option is known good.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger.domain.fund.product import make_params
from ledger.domain.fund.terms import terms_of
from ledger.errors import Reason, Rejected
from ledger.sim.run import SimConfig, load_bars

# A price file named SYMBOL-QUOTE... (btc-usd-daily.csv, eth_usdt.csv) says whose prices it holds.
_NAMED_PAIR = re.compile(r"^([A-Za-z]{2,10})[-_](usd|usdt|usdc|eur|gbp|jpy)(?:[-_.]|$)", re.I)
# Digits only: no exponent, sign, NaN or infinity ("1e-30" would never finish the walk).
_DECIMAL = re.compile(r"^\d{1,6}(\.\d{1,12})?$")
MIN_STEP = Decimal("0.0001")  # 1 basis point: about 10^4 ticks per doubling of the price
STEP_CAP = Decimal("0.1")  # the bound when no product has a move trigger
FEE_FIELDS = ("subscription_fee", "redemption_fee", "management_fee", "trading_fee", "funding_rate")


def parse_decimal(text: str, what: str) -> Decimal:
    """Return a plain decimal number ("0.025"); refuse exponents, signs, NaN and infinity."""
    if not isinstance(text, str) or not _DECIMAL.match(text.strip()):
        raise Rejected(
            Reason.BAD_INPUT, f"{what} must be a decimal number such as 0.025, got {text!r}"
        )
    return Decimal(text.strip())


def fee_overrides(fees: str | None) -> dict[str, Any]:
    """Return the parameter overrides of `--fees` (only "zero": every fee and funding 0)."""
    if fees is None:
        return {}
    if fees != "zero":
        raise Rejected(Reason.BAD_INPUT, f"--fees accepts only 'zero', got {fees!r}")
    return dict.fromkeys(FEE_FIELDS, "0")


def step_bound(products: list[str], overrides: dict[str, Any]) -> Decimal:
    """Return the largest allowed step: the smallest positive ad-hoc move of the products."""
    moves = [make_params(name, **overrides).adhoc_move for name in products]
    positive = [move for move in moves if move is not None and move > 0]
    return min(positive) if positive else STEP_CAP


def build_config(
    *,
    products: str,
    prices: Path | None,
    synthetic_days: int | None,
    holders: int,
    orders_per_day: int,
    seed: int,
    step: str,
    start: str | None,
    days: int | None,
    fees: str | None,
) -> SimConfig:
    """Return a `SimConfig` whose every option was checked, the price history read included.

    The step must lie in [MIN_STEP, the smallest ad-hoc move]: a coarser walk would jump over
    the trigger the simulation is meant to exercise.
    """
    names = [p.strip() for p in products.split(",") if p.strip()]
    if not names:
        raise Rejected(Reason.BAD_INPUT, "--products must name at least one product")
    overrides = fee_overrides(fees)
    step_value = parse_decimal(step, "--step")
    bound = step_bound(names, overrides)
    if not MIN_STEP <= step_value <= bound:
        raise Rejected(
            Reason.BAD_INPUT,
            f"--step must be between {MIN_STEP} and {bound.normalize():f}, got {step}",
        )
    config = SimConfig(
        products=names,
        prices=prices,
        synthetic_days=synthetic_days,
        holders=holders,
        orders_per_day=orders_per_day,
        seed=seed,
        step=step_value,
        start=None if start is None else _day(start),
        days=days,
        overrides=overrides,
    )
    if prices is None and synthetic_days is None:
        foreign = sorted(
            {u for n in names if (u := make_params(n, **overrides).underlying) != "BTC"}
        )
        if foreign:
            raise Rejected(
                Reason.BAD_INPUT,
                f"the bundled prices are BTC's, not {', '.join(foreign)}'s: pass --prices FILE"
                " with that history, or --synthetic N",
            )
    if prices is not None and synthetic_days is None:
        check_prices_underlying(prices, [make_params(n, **overrides).underlying for n in names])
    scales = {terms_of(make_params(n, **overrides)).quote_asset.scale for n in names}
    if len(scales) != 1:
        raise Rejected(Reason.BAD_INPUT, "the simulated products must share a quote scale")
    load_bars(config, scales.pop())  # a missing or malformed CSV is refused now, not later
    return config


def prices_symbol(path: Path) -> str | None:
    """Return the symbol a price file's name states (BTC for btc-usd-daily.csv), else None."""
    match = _NAMED_PAIR.match(path.name)
    return match.group(1).upper() if match else None


def check_prices_underlying(path: Path, underlyings: list[str]) -> None:
    """Refuse products on another underlying than the one the price file's name states."""
    symbol = prices_symbol(path)
    foreign = sorted({u for u in underlyings if symbol is not None and u != symbol})
    if foreign:
        raise Rejected(
            Reason.BAD_INPUT,
            f"--prices {path.name} holds {symbol} prices, not {', '.join(foreign)}'s",
        )


def replace_database(url: str) -> None:
    """Delete a SQLite database file and its journal files; refuse any other URL."""
    if not url.startswith("sqlite:///"):
        raise Rejected(Reason.BAD_INPUT, "--replace works only with a sqlite:/// database")
    path = Path(url[len("sqlite:///") :])
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Rejected(Reason.BAD_INPUT, f"--from must be YYYY-MM-DD, got {text!r}") from None


def check_chart_path(path: Path) -> Path:
    """Refuse a chart path the simulation could not write at the end: not a .png file, or
    an existing directory (checked before the simulation runs, not after)."""
    if path.is_dir():
        raise Rejected(Reason.BAD_INPUT, f"--chart {path} is a directory: name a .png file")
    if path.suffix.lower() != ".png":
        raise Rejected(Reason.BAD_INPUT, f"--chart must name a .png file, got {path}")
    if path.parent.exists() and not path.parent.is_dir():
        raise Rejected(Reason.BAD_INPUT, f"--chart {path}: {path.parent} is not a directory")
    return path
