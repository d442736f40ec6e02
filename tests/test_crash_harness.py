"""The crash harness (bench/crash_harness.py), short: a few SIGKILLs per target and database.

The full run (100 kills per target and database) is `python bench/crash_harness.py`; its
figures are in docs/reliability.md. Here each target is killed twice at random points with a
fixed seed: every kill must leave books that verify, no acknowledged write lost, no entry half
there, and a rerun that converges.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bench.crash_harness import cli_argv as argv_of
from bench.crash_harness import run_ok, run_target, truncated_export_accepted
from tests.conftest import require

KILLS = 2
SEEDS = {"post": 11, "export": 12, "replay": 13, "simulate": 14, "chain-sync": 15}


def _backend(request: pytest.FixtureRequest, kind: str) -> None:
    if kind == "postgres":
        require(request.getfixturevalue("pg_available"), "PostgreSQL")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("target", ["post", "export", "replay", "simulate"])
def test_a_killed_command_leaves_whole_books(
    request: pytest.FixtureRequest, target: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _backend(request, kind)
    monkeypatch.setattr("bench.crash_harness.BOOK_ENTRIES", 600)  # the full run: 3,000
    tally = run_target(target, kind, KILLS, SEEDS[target])
    assert tally.violations == []
    assert tally.losses == 0
    assert tally.kills == KILLS and tally.trials >= KILLS


@pytest.mark.slow
@pytest.mark.anvil
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_killed_chain_sync_is_finished_by_the_next(
    request: pytest.FixtureRequest, kind: str
) -> None:
    from ledger.chain.anvil import find_anvil

    require(find_anvil() is not None, "anvil (run `npm ci`)")
    _backend(request, kind)
    tally = run_target("chain-sync", kind, KILLS, SEEDS["chain-sync"])
    assert tally.violations == []
    assert tally.losses == 0 and tally.kills == KILLS


def test_a_kill_is_a_sigkill_and_a_finished_run_is_not() -> None:
    """The harness's own instrument: a sleeping process is killed, a quick one survives."""
    from bench.crash_harness import random_delay, run_until

    slow = run_until(["sleep", "5"], 0.2)
    assert slow.killed and slow.code == -9 and slow.seconds < 4
    quick = run_until(["true"], 5.0)
    assert not quick.killed and quick.code == 0
    rng = random.Random(1)
    delays = [random_delay(rng, 1.0) for _ in range(1000)]
    assert min(delays) >= 0 and max(delays) <= 1.1
    assert sum(d > 0.55 for d in delays) > 700  # weighted toward the end, where writes are


def test_replay_refuses_an_export_cut_after_a_whole_line(tmp_path: Path) -> None:
    """An export file that a crash cut short must not pass for the whole book."""
    from bench.crash_harness import _filled_book

    url = f"sqlite:///{tmp_path / 'src.db'}"
    _filled_book(url, 40)
    whole = tmp_path / "whole.jsonl"
    run_ok(argv_of("--db", url, "export", "--book", "main", "-o", str(whole)))
    assert not truncated_export_accepted(url, whole, tmp_path)
