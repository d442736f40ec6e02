"""A PNG chart of each fund's NAV (split-adjusted) against the underlying, both from 1, and
the daily series behind it as CSV beside the chart.

Floats appear only in the drawing; the CSV holds the books' exact decimal values.
"""

from __future__ import annotations

import csv
import math
from datetime import date
from fractions import Fraction
from pathlib import Path
from typing import Any

from ledger.domain.money import format_units
from ledger.sim.driver import ProductRun, SimOutcome

MULTIPLE_PLACES = 6


def day_events(run: ProductRun) -> dict[date, str]:
    """The days of splits, merges and the wipe-out, read from the run's closes."""
    events: dict[date, str] = {}
    previous = Fraction(1)
    for day, _, factor in run.closes:
        if factor != previous:
            ratio = factor / previous
            kind = "split" if ratio > 1 else "merge"
            big, small = (
                max(ratio.numerator, ratio.denominator),
                min(ratio.numerator, ratio.denominator),
            )
            events[day] = f"{kind} {big}:{small}"  # a 1000:1 merge: 1,000 shares become 1
            previous = factor
    if run.wiped_on is not None:
        events[run.wiped_on] = "; ".join(filter(None, [events.get(run.wiped_on), "wipeout"]))
    return events


def series_path(chart: Path) -> Path:
    """The CSV beside `chart`: out/simulation.png -> out/simulation.csv."""
    return chart.with_suffix(".csv")


def write_series(outcome: SimOutcome, path: Path) -> Path:
    """Write one row per day: date, underlying close, then per product its NAV per share,
    effective multiple at the close and the day's events (split, merge, wipeout)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    runs = outcome.runs
    scale = runs[0].terms.quote_asset.scale if runs else 0
    underlying = runs[0].terms.underlying if runs else "underlying"
    header = ["date", f"{underlying}_close"]
    for run in runs:
        book = run.terms.book
        header += [f"{book}_nav_per_share", f"{book}_multiple", f"{book}_events"]
    events = [day_events(run) for run in runs]
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for index, bar in enumerate(outcome.bars):
            row: list[Any] = [bar.day.isoformat(), format_units(bar.close, scale)]
            for run, marks in zip(runs, events, strict=True):
                day, nav, _ = run.closes[index]
                multiple = run.close_multiples[index] if index < len(run.close_multiples) else ""
                shown = f"{multiple:.{MULTIPLE_PLACES}f}" if multiple != "" else ""
                row += [format_units(nav, run.terms.quote_asset.scale), shown, marks.get(day, "")]
            writer.writerow(row)
    tmp.replace(path)
    return path


def write_chart(outcome: SimOutcome, path: Path, *, source: str | None = None) -> Path:
    """Draw NAV / NAV_0 per product and S / S_0 on a log scale, the 1.0 line and marks for
    splits, merges and wipe-outs; save a PNG at `path` and the daily series beside it."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    bars = outcome.bars
    days = [bar.day for bar in bars]
    start = bars[0].open
    figure, axis = plt.subplots(figsize=(11, 6), dpi=110)
    underlying = outcome.runs[0].terms.underlying if outcome.runs else "underlying"
    axis.plot(
        days,  # type: ignore[arg-type]
        [bar.close / start for bar in bars],  # float-ok: drawing only
        color="black",
        lw=1.2,  # float-ok
        label=f"{underlying} (close / first open)",
    )
    axis.axhline(1.0, color="grey", lw=0.8, ls="--", label="1.0 (the start)")  # float-ok
    marker = {"split": "^", "merge": "v", "wipeout": "X"}
    for run in outcome.runs:
        nav0 = run.terms.nav0_units
        # A wiped-out fund (NAV 0) has no point on a log scale: NaN breaks the line there.
        series = [
            float(nav * factor) / nav0 if nav > 0 else math.nan  # float-ok: drawing only
            for _, nav, factor in run.closes
        ]
        (line,) = axis.plot(
            [day for day, _, _ in run.closes],  # type: ignore[arg-type]
            series,
            lw=1.0,  # float-ok
            label=f"{run.terms.book} NAV / NAV_0 (split-adjusted)",
        )
        by_day = {day: value for (day, _, _), value in zip(run.closes, series, strict=True)}
        for day, text in day_events(run).items():
            kind = "wipeout" if "wipeout" in text else text.split()[0]
            y = by_day.get(day, math.nan)
            if math.isnan(y):
                y = (
                    min(v for v in series if not math.isnan(v))
                    if any(not math.isnan(v) for v in series)
                    else 1.0
                )  # float-ok: drawing only
            axis.plot([day], [y], marker=marker[kind], color=line.get_color(), ms=7, ls="")  # type: ignore[list-item]
    for kind, shape in marker.items():
        axis.plot([], [], marker=shape, color="grey", ls="", label=kind)
    axis.set_yscale("log")
    axis.set_xlabel("date (UTC)")
    axis.set_ylabel("value / value at the start (log scale)")
    title = f"Leveraged-token NAV vs {underlying}, {days[0]} .. {days[-1]}"
    if source is not None:
        title += f"\nprices: {source}"
    axis.set_title(title)
    axis.grid(True, which="both", alpha=0.3)  # float-ok
    axis.legend(loc="best")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    write_series(outcome, series_path(path))
    return path
