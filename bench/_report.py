"""Write one benchmark's section of BENCHMARKS.md, leaving the other sections alone."""

from __future__ import annotations

import platform
import re
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
PREAMBLE = """# Benchmarks

Figures from real runs of the scripts in bench/ on the project's machine (2 cores, 24 GiB,
SQLite 3.40, PostgreSQL 15 on loopback, Anvil 1.7.1). Each section is rewritten by its script;
rerun with `make bench`. Targets come from the issues; a figure that misses its target says so.
"""


def machine() -> str:
    """Return a one-line description of where the figures were measured."""
    return f"{platform.python_implementation()} {platform.python_version()}, {platform.machine()}"


def cpu_ticks() -> tuple[int, int] | None:
    """Return (all, stolen) CPU ticks since boot from /proc/stat, or None off Linux. On a
    virtual machine, stolen time is when the host ran someone else on our cores: a run with
    much of it measures the neighbours as much as the code."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(fields[:8]), fields[7] if len(fields) > 7 else 0


def steal_since(start: tuple[int, int] | None) -> str:
    """Return the share of CPU time stolen by the host since `start`, as text."""
    end = cpu_ticks()
    if start is None or end is None or end[0] == start[0]:
        return "not available"
    return f"{(end[1] - start[1]) / (end[0] - start[0]):.0%} of all CPU time"


def write_section(heading: str, body: str) -> None:
    """Replace (or append) the section `## heading` of BENCHMARKS.md with `body`."""
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else PREAMBLE
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = f"## {heading}\n\nMeasured {stamp} on {machine()}.\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section + "\n", text, count=1)
    else:
        text = text.rstrip() + "\n\n" + section
    BENCHMARKS.write_text(text.rstrip() + "\n")
