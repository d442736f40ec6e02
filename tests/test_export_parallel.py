"""A JSON Lines export read in a child process (ledger.services.jsonl_parallel) is read exactly
as in-process: the same records, the same refusal at the same line, nothing written when a
replay is refused, and a reader that dies is never taken for the end of the file."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger.clock import FixedClock
from ledger.domain.journal import Account, AccountType, BalanceRule, EntryDraft, Posting
from ledger.domain.money import Asset
from ledger.errors import Reason, Rejected
from ledger.services import jsonl_parallel
from ledger.services.child import Child
from ledger.services.exports import export_to_path, replay_file
from ledger.services.jsonl_parallel import ReaderFailed, open_jsonl
from ledger.services.ledger import Ledger, open_ledger
from tests.test_export_jsonl import CASES, EVIDENCE_CASES, SMALL_BOOK, export

T0 = datetime(2021, 3, 4, tzinfo=UTC)
ENTRIES = 12_345  # three chunks of the child's 5,000 records, the last one partial


def outcome(path: Path, *, parallel: bool) -> tuple[str, object]:
    """Read every record of `path`; return ("ok", header and records) or what was raised."""
    try:
        with open_jsonl(path, parallel=parallel) as parsed:
            return "ok", (parsed.book, parsed.assets, parsed.accounts, list(parsed.records))
    except Rejected as exc:
        return "rejected", (exc.reason, str(exc), exc.context)
    except OSError as exc:
        return "oserror", (type(exc), exc.errno)


def write_lines(lines: list[str]) -> Path:
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", newline="", suffix=".jsonl", delete=False
    ) as handle:
        handle.writelines(lines)
    return Path(handle.name)


ALL_CASES = [(c[0], c[1]) for c in CASES] + [(c[0], c[1]) for c in EVIDENCE_CASES]


@pytest.mark.parametrize("tamper", [c[1] for c in ALL_CASES], ids=[c[0] for c in ALL_CASES])
def test_a_bad_file_is_refused_alike_in_a_child(tamper: Callable[[list[str]], list[str]]) -> None:
    """Every malformed or untrue file of the in-process tests: same reason, message, line."""
    path = write_lines(tamper(export(SMALL_BOOK)))
    try:
        serial = outcome(path, parallel=False)
        assert serial[0] == "rejected"
        assert outcome(path, parallel=True) == serial
    finally:
        path.unlink()


def test_an_untouched_file_gives_the_same_records(tmp_path: Path) -> None:
    path = tmp_path / "small.jsonl"
    path.write_text("".join(export(SMALL_BOOK)), encoding="utf-8")
    serial = outcome(path, parallel=False)
    assert serial[0] == "ok"
    assert outcome(path, parallel=True) == serial


def test_a_file_that_is_not_utf8_or_not_a_file(tmp_path: Path) -> None:
    lines = export(SMALL_BOOK)
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes("".join(lines[:2]).encode() + b'{"\xff"}\n' + lines[-1].encode())
    serial = outcome(bad, parallel=False)
    assert serial[0] == "rejected" and serial[1][0] is Reason.BAD_ENCODING  # type: ignore[index]
    assert outcome(bad, parallel=True) == serial
    folder = tmp_path / "a-directory.jsonl"
    folder.mkdir()
    assert outcome(folder, parallel=True) == outcome(folder, parallel=False)
    assert outcome(folder, parallel=True)[0] == "oserror"


def big_book(tmp_path: Path) -> tuple[Ledger, Path]:
    """A book of ENTRIES entries over 50 accounts, exported to JSON Lines."""
    lg = open_ledger(f"sqlite:///{tmp_path / 'source.db'}", clock=FixedClock(T0))
    lg.init()
    lg.add_asset(Asset("USDT", 6))
    holders = [f"holder:h{i:02d}" for i in range(50)]
    lg.open_accounts(
        [Account("B", "cash", AccountType.ASSET)]
        + [Account("B", h, AccountType.LIABILITY, BalanceRule.NON_NEGATIVE) for h in holders]
    )
    lg.post_many(
        [
            EntryDraft(
                book="B",
                kind="deposit",
                effective_at=T0 + timedelta(seconds=i),
                postings=(Posting(holders[i % 50], "USDT", 1 + i), Posting("cash", "USDT", -1 - i)),
                idempotency_key=f"d-{i}" if i % 7 == 0 else None,
            )
            for i in range(ENTRIES)
        ]
    )
    path = tmp_path / "big.jsonl"
    export_to_path(lg, "B", "jsonl", path)
    return lg, path


def test_a_replay_through_a_child_is_the_replay_in_process(tmp_path: Path, db_url: str) -> None:
    """Same head, same balances, same rows, on SQLite and PostgreSQL; and the records
    streamed in several chunks."""
    source, path = big_book(tmp_path)
    heads = []
    for parallel in (False, True):
        url = db_url if parallel else f"sqlite:///{tmp_path / 'replay.db'}"
        lg = open_ledger(url, clock=FixedClock(T0))
        lg.init()
        report = replay_file(lg, path, parallel=parallel)
        assert report.ok and report.entries == ENTRIES
        assert lg.balances("B") == source.balances("B")
        assert lg.verify("B").ok
        middle = list(lg.entries("B", from_seq=9_999, to_seq=10_001))
        heads.append((report.head_seq, report.head_hash, middle))
    assert heads[0] == heads[1]
    assert heads[0][1] == source.head("B")[1].hex()


def test_a_lie_deep_in_the_file_writes_nothing(tmp_path: Path, db_url: str) -> None:
    """An amount edited in the third chunk: refused at its line, after the parent wrote two
    chunks inside its transaction, and the database holds nothing of it."""
    _, path = big_book(tmp_path)
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[11_001] = lines[11_001].replace('"amount":"11001"', '"amount":"11002"', 1)
    lines[11_001] = lines[11_001].replace('"amount":"-11001"', '"amount":"-11002"', 1)
    path.write_text("\n".join(lines), encoding="utf-8")
    lg = open_ledger(db_url, clock=FixedClock(T0))
    lg.init()
    with pytest.raises(Rejected) as caught:
        replay_file(lg, path, parallel=True)
    assert caught.value.reason is Reason.HASH_MISMATCH
    assert str(caught.value).startswith("hash_mismatch: line 11002: entry 11001 does not match")
    assert "B" not in lg.books()
    assert lg.assets() == []


@pytest.mark.parametrize(
    "written",
    [b"\0\0\0", b"\0\0\0\0\0\0\0\x10" + b"\x80\x05"],
    ids=["cut in a frame's length", "cut in a frame's pickle"],
)
def test_a_reader_that_dies_is_a_failure_not_the_end(written: bytes) -> None:
    """A child cut off mid-message (killed, or a crash before its report) is ReaderFailed."""
    script = f"import sys; sys.stdout.buffer.write({written!r}); sys.exit(9)"
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    with tempfile.TemporaryFile() as errors:
        frames = Child(
            child, errors, doing="reading the export", until="the end", failure=ReaderFailed
        )
        try:
            with pytest.raises(ReaderFailed, match=r"exited \(code 9\) before the end"):
                frames.receive()
        finally:
            frames.stop()


def test_the_default_reads_a_large_file_in_a_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`replay` takes the child for a file of PARALLEL_BYTES or more (lowered here)."""
    _, path = big_book(tmp_path)
    started: list[list[str]] = []
    real = subprocess.Popen

    def popen(args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        started.append(args)
        return real(args, **kwargs)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(subprocess, "Popen", popen)
    lg = open_ledger(f"sqlite:///{tmp_path / 'replay.db'}", clock=FixedClock(T0))
    lg.init()
    monkeypatch.setattr(jsonl_parallel, "PARALLEL_BYTES", path.stat().st_size + 1)
    assert replay_file(lg, path).ok and not started
    lg2 = open_ledger(f"sqlite:///{tmp_path / 'replay2.db'}", clock=FixedClock(T0))
    lg2.init()
    monkeypatch.setattr(jsonl_parallel, "PARALLEL_BYTES", path.stat().st_size)
    assert replay_file(lg2, path).ok
    assert started == [[sys.executable, "-m", "ledger.services.jsonl_parallel", str(path)]]
