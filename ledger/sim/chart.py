"""A PNG chart of each fund's NAV (split-adjusted) against the underlying, both from 1.

Floats appear only here, to draw; no value computed here goes back into the books.
"""

from __future__ import annotations

import math
from pathlib import Path

from ledger.sim.driver import SimOutcome


def write_chart(outcome: SimOutcome, path: Path) -> Path:
    """Draw NAV / NAV_0 per product and S / S_0 on a log scale; save a PNG at `path`."""
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
    for run in outcome.runs:
        nav0 = run.terms.nav0_units
        # A wiped-out fund (NAV 0) has no point on a log scale: NaN breaks the line there.
        series = [
            float(nav * factor) / nav0 if nav > 0 else math.nan  # float-ok: drawing only
            for _, nav, factor in run.closes
        ]
        axis.plot(
            [day for day, _, _ in run.closes],  # type: ignore[arg-type]
            series,
            lw=1.0,
            label=f"{run.terms.book} NAV / NAV_0 (split-adjusted)",
        )
    axis.set_yscale("log")
    axis.set_title(f"Leveraged-token NAV vs {underlying}, {days[0]} .. {days[-1]}")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(loc="best")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
