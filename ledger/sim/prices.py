"""Price histories: a CSV reader (daily OHLC or timestamped ticks), a seeded synthetic path,
and the intraday walk that feeds a day's OHLC as a price feed would deliver it.

Prices are integers: quote base units per whole unit of the underlying. A decimal price with
more places than the quote scale is rounded half-even (the only rounding of an input).
"""

from __future__ import annotations

import csv
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

from ledger.domain.fund.terms import quantise_units
from ledger.errors import Reason, Rejected

_DECIMAL = re.compile(r"^\d+(\.\d+)?$")
POINT_TIMES = (time(0, 0), time(8, 0), time(16, 0), time(23, 59))


@dataclass(frozen=True, slots=True)
class Bar:
    """One UTC day of prices, in quote base units."""

    day: date
    open: int
    high: int
    low: int
    close: int


@dataclass(frozen=True, slots=True)
class Tick:
    """One observed price at an instant, in quote base units."""

    at: datetime
    price: int


def _fail(path: Path, line: int, problem: str) -> Rejected:
    return Rejected(Reason.BAD_INPUT, f"{path.name}:{line}: {problem}")


def _price(path: Path, line: int, column: str, text: str, scale: int) -> int:
    value = text.strip()
    if not _DECIMAL.match(value):
        raise _fail(path, line, f"{column} {text!r} is not a positive decimal number")
    units = quantise_units(Decimal(value), scale)
    if units <= 0:
        raise _fail(path, line, f"{column} {text!r} must be positive")
    return units


def read_bars(path: Path, *, scale: int) -> list[Bar]:
    """Read a daily OHLC CSV (Date,Open,High,Low,Close[,...]); refuse a malformed row."""
    if not path.is_file():
        raise Rejected(Reason.BAD_INPUT, f"price file {path} does not exist")
    bars: list[Bar] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = [name.strip().lower() for name in next(reader, [])]
        needed = ["date", "open", "high", "low", "close"]
        if not set(needed) <= set(header):
            raise _fail(path, 1, f"header must name {','.join(needed)}, got {','.join(header)}")
        index = [header.index(name) for name in needed]
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) < len(header):
                raise _fail(path, line, f"expected {len(header)} columns, got {len(row)}")
            bars.append(_bar(path, line, [row[i] for i in index], scale, bars))
    if not bars:
        raise Rejected(Reason.BAD_INPUT, f"{path.name}: no price rows")
    return bars


def _bar(path: Path, line: int, cells: list[str], scale: int, bars: list[Bar]) -> Bar:
    try:
        day = date.fromisoformat(cells[0].strip())
    except ValueError:
        raise _fail(path, line, f"date {cells[0]!r} is not YYYY-MM-DD") from None
    o, h, lo, c = (
        _price(path, line, name, text, scale)
        for name, text in zip(("Open", "High", "Low", "Close"), cells[1:], strict=True)
    )
    if h < max(o, c, lo) or lo > min(o, c):
        raise _fail(path, line, "High must be >= Open, Close, Low and Low <= Open, Close")
    if bars and day <= bars[-1].day:
        raise _fail(path, line, f"date {day} does not follow {bars[-1].day}")
    return Bar(day, o, h, lo, c)


def synthetic_bars(*, days: int, seed: int, start: date, price: int) -> list[Bar]:
    """Return a seeded random daily path: four quarter-day moves of -3%..+3% (integers only)."""
    rng = random.Random(seed)
    bars = []
    current = price
    for offset in range(days):
        path = [current]
        for _ in range(4):
            bps = rng.randint(-300, 300)
            current = max(1, current * (10_000 + bps) // 10_000)
            path.append(current)
        bars.append(Bar(start + timedelta(days=offset), path[0], max(path), min(path), path[-1]))
    return bars


def walk(bar: Bar, *, step: tuple[int, int]) -> Iterator[Tick]:
    """Yield the day as a feed would: open, high, low, close (low before high on a rising
    day), with steps of at most `step` (num, den) of the lower price between the points.
    """
    points = (
        (bar.open, bar.high, bar.low, bar.close)
        if bar.close < bar.open
        else (bar.open, bar.low, bar.high, bar.close)
    )
    base = datetime.combine(bar.day, time(0), tzinfo=UTC)
    stamps = [datetime.combine(bar.day, t, tzinfo=UTC) for t in POINT_TIMES]
    yield Tick(base, points[0])
    num, den = step
    for i in range(3):
        a, b = points[i], points[i + 1]
        t_a, t_b = stamps[i], stamps[i + 1]
        low = min(a, b)
        n = max(1, -((-abs(b - a) * den) // (low * num)))
        span = t_b - t_a
        for k in range(1, n + 1):
            yield Tick(t_a + span * k / n, a + (b - a) * k // n)
