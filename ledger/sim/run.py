"""Run a whole simulation into a database: products, days, prices, verify."""

from __future__ import annotations

import time as wallclock
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger.clock import FixedClock
from ledger.domain.fund.product import make_params
from ledger.domain.fund.terms import ratio_of, terms_of
from ledger.errors import Reason, Rejected
from ledger.services.audit import verify_book
from ledger.services.funds import Funds, gc_paused
from ledger.services.ledger import open_ledger
from ledger.sim.driver import SimOutcome, run_days, setup_products
from ledger.sim.population import holder_ids
from ledger.sim.prices import Bar, read_bars, synthetic_bars, walk
from ledger.storage import fund_store

FIXTURE_NAME = "btc-usd-daily-2014-2022.csv"


def default_prices_path() -> Path:
    """Return the bundled BTC-USD fixture: the package copy, else the repo's fixtures/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "data" / FIXTURE_NAME, here.parents[1] / "fixtures" / FIXTURE_NAME):
        if candidate.is_file():
            return candidate
    raise Rejected(Reason.BAD_INPUT, f"cannot find {FIXTURE_NAME}: pass --prices FILE")


@dataclass
class SimConfig:
    """What to simulate. Defaults: BTC3L and BTC3S over the bundled 2014-2022 BTC history,
    1,000 holders, about 50 orders per product per day, intraday steps of at most 2.5%.
    """

    products: list[str] = field(default_factory=lambda: ["BTC3L", "BTC3S"])
    prices: Path | None = None
    synthetic_days: int | None = None
    holders: int = 1_000
    orders_per_day: int = 50
    seed: int = 42
    step: Decimal = Decimal("0.025")
    start: date | None = None
    days: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


def load_bars(config: SimConfig, quote_scale: int) -> list[Bar]:
    """Return the configured price history, cut to start/days."""
    if config.synthetic_days is not None:
        bars = synthetic_bars(
            days=config.synthetic_days,
            seed=config.seed,
            start=config.start or date(2020, 1, 1),
            price=10_000 * 10**quote_scale,
        )
    else:
        bars = read_bars(config.prices or default_prices_path(), scale=quote_scale)
        if config.start is not None:
            bars = [bar for bar in bars if bar.day >= config.start]
    if config.days is not None:
        bars = bars[: config.days]
    if not bars:
        raise Rejected(Reason.BAD_INPUT, "the price history is empty for these dates")
    return bars


def price_source(config: SimConfig) -> str:
    """Name where the run's prices come from; a synthetic run says that it is not real."""
    if config.synthetic_days is not None:
        return f"synthetic random walk, seed {config.seed} (not real prices)"
    if config.prices is None:
        return f"bundled {FIXTURE_NAME}"
    return f"file {config.prices}"


def check_products_free(lg: Any, names: list[str], overrides: dict[str, Any]) -> None:
    """Refuse, before anything is created, a product that exists with other parameters or
    whose book already has entries (the run would stop half-way, having created the others)."""
    for name in names:
        params = make_params(name, **overrides)
        existing = fund_store.load_product(lg.engine, params.name)
        if existing is not None and existing != params:
            raise Rejected(
                Reason.DUPLICATE,
                f"product {name} exists in this database with other parameters: pass --db with"
                " a new file (or --replace for SQLite)",
            )
        if lg.head(terms_of(params).book)[0] > 0:
            raise Rejected(
                Reason.DUPLICATE,
                f"book {name} already has entries in this database: pass --db with a new file"
                " (or --replace for SQLite)",
            )


def simulate(
    db_url: str,
    config: SimConfig,
    *,
    progress: Callable[[int, int], Callable[[int], None]] | None = None,
) -> SimOutcome:
    """Run the simulation into `db_url` and verify every book; return the outcome.

    `progress(total_days, total_books)` may return a callback advanced once per day.
    """
    if config.holders < 1 or config.orders_per_day < 0:
        raise Rejected(Reason.BAD_INPUT, "holders must be >= 1 and orders per day >= 0")
    if config.step <= 0:
        raise Rejected(Reason.BAD_INPUT, "step must be positive")
    names = config.products
    if not names:
        raise Rejected(Reason.BAD_INPUT, "name at least one product to simulate")
    clock = FixedClock(datetime(1970, 1, 1, tzinfo=UTC))
    lg = open_ledger(db_url, clock=clock)
    try:
        lg.init()
        funds = Funds(lg, clock=clock)
        ids = holder_ids(config.holders)
        # Validate everything before the first write: parameters, then the price history.
        scales = {terms_of(make_params(n, **config.overrides)).quote_asset.scale for n in names}
        if len(scales) != 1:
            raise Rejected(Reason.BAD_INPUT, "the simulated products must share a quote scale")
        bars = load_bars(config, scales.pop())
        check_products_free(lg, names, config.overrides)  # before the first product is made
        runs = setup_products(funds, names, config.overrides, ids, config.seed)
        clock.moment = datetime.combine(bars[0].day, datetime.min.time(), tzinfo=UTC)
        on_day = progress(len(bars), len(runs)) if progress else None
        started = wallclock.perf_counter()
        with gc_paused():
            total = run_days(
                lg,
                clock,
                runs,
                bars,
                step=ratio_of(config.step),
                ids=ids,
                per_day=config.orders_per_day,
                on_day=on_day,
            )
        outcome = SimOutcome(runs=runs, bars=bars, entries=total)
        outcome.seconds_posting = wallclock.perf_counter() - started
        _save_feed(lg.engine, runs, bars, ratio_of(config.step))
        started = wallclock.perf_counter()
        outcome.verify = {run.terms.book: verify_book(lg, run.terms.book) for run in runs}
        outcome.seconds_verify = wallclock.perf_counter() - started
        outcome.balances = {run.terms.book: lg.balances(run.terms.book) for run in runs}
        return outcome
    finally:
        lg.close()


def _save_feed(engine: Any, runs: list[Any], bars: list[Bar], step: tuple[int, int]) -> None:
    """Record every price the feed delivered (the same walk), for NAV and multiple at a time."""
    from ledger.domain.money import format_units

    symbols = {run.terms.underlying: run.terms.quote_asset.scale for run in runs}
    rows = [
        (symbol, tick.at, format_units(tick.price, scale))
        for symbol, scale in symbols.items()
        for bar in bars
        for tick in walk(bar, step=step)
    ]
    fund_store.save_prices(engine, rows)
