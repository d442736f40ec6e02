"""Exports to a file are atomic: a bad path is one clean line before anything is read, a
refused export leaves nothing behind, and a finished one replaces the target whole."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ledger.services.ledger import Ledger
from tests.test_kernel_cli_support import assert_one_line_refusal, ok, run, setup_cli

FORMATS = ("jsonl", "ledger", "beancount")


@pytest.fixture
def exported_db(db: str) -> str:
    """A database with one posted entry in book main."""
    setup_cli(db)
    ok(db, "post", "-", stdin=_entry())
    return db


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An empty folder for the exports (the database lives beside it)."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def _entry() -> str:
    import json

    from tests.test_kernel_cli_support import ENTRY

    return json.dumps(ENTRY)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_missing_directory_is_one_line_and_creates_nothing(
    exported_db: str, out: Path, fmt: str
) -> None:
    """-o into a directory that does not exist: bad_input, exit 2, no file anywhere."""
    before = sorted(out.iterdir())
    target = out / "nowhere" / f"book.{fmt}"
    result = run(exported_db, "export", "--format", fmt, "-o", str(target))
    assert_one_line_refusal(result, f"bad_input: output directory '{target.parent}' does not exist")
    assert sorted(out.iterdir()) == before


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_directory_or_a_device_is_refused(exported_db: str, tmp_path: Path, fmt: str) -> None:
    """-o naming a directory is a usage error; a device (not a regular file) is refused and
    left as it is (the rename would have replaced it)."""
    folder = run(exported_db, "export", "--format", fmt, "-o", str(tmp_path))
    assert folder.exit_code == 2 and "is a directory" in folder.stderr  # click's usage error
    device = run(exported_db, "export", "--format", fmt, "-o", "/dev/null")
    assert_one_line_refusal(device, "bad_input: output '/dev/null' exists and is not a regular")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_refused_export_leaves_no_file_and_the_old_one_intact(
    exported_db: str, out: Path, fmt: str
) -> None:
    """An export of an unknown book is refused; an existing target keeps its bytes and no
    temporary file is left in its directory."""
    target = out / f"book.{fmt}"
    target.write_text("previous export\n")
    result = run(exported_db, "export", "--book", "nosuch", "--format", fmt, "-o", str(target))
    assert_one_line_refusal(result, "unknown_book")
    assert target.read_text() == "previous export\n"
    assert sorted(p.name for p in out.iterdir()) == [target.name]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_finished_export_replaces_the_target_whole(exported_db: str, out: Path, fmt: str) -> None:
    """The file written equals the stdout export byte for byte, with the usual permissions."""
    target = out / f"book.{fmt}"
    target.write_text("previous export\n")
    result = run(exported_db, "export", "--format", fmt, "-o", str(target))
    assert result.exit_code == 0, result.stderr
    to_stdout = run(exported_db, "export", "--format", fmt)
    assert target.read_text(encoding="utf-8") == to_stdout.stdout
    assert sorted(p.name for p in out.iterdir()) == [target.name]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    if fmt == "jsonl":
        assert to_stdout.stdout.splitlines()[-1].startswith('{"entries":"1","head_hash":"')


def test_the_service_refuses_a_bad_path_before_reading(lg: Ledger, tmp_path: Path) -> None:
    """export_to_path checks the path first: an unknown book into a missing directory is a
    path error, not a book error."""
    from ledger.errors import Reason, Rejected
    from ledger.services.exports import export_to_path

    with pytest.raises(Rejected) as caught:
        export_to_path(lg, "nosuch", "jsonl", tmp_path / "missing" / "x.jsonl")
    assert caught.value.reason is Reason.BAD_INPUT
    assert "does not exist" in caught.value.message
