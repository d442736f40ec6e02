"""The examples in the documentation run as written."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _blocks() -> list[tuple[str, int, str]]:
    found = []
    for path in DOCS:
        for number, match in enumerate(BLOCK.finditer(path.read_text()), start=1):
            found.append((path.name, number, match.group(1)))
    return found


@pytest.mark.parametrize(("doc", "number", "code"), _blocks(), ids=lambda v: str(v)[:24])
def test_python_example_runs(doc: str, number: int, code: str, tmp_path: Path) -> None:
    """Every ```python block in README.md and docs/ runs without error."""
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, f"{doc}#{number}", "exec"), {"__name__": f"doc_{number}"})
    finally:
        os.chdir(cwd)


def test_readme_gives_the_two_commands() -> None:
    """The README's two commands are the ones the Makefile and CI run."""
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo: setup\n(\t.*\n)*\t.*token-ledger .*simulate", makefile, re.M)
    assert re.search(r"^test: setup\n(\t.*\n)*\t.*pytest", makefile, re.M)


def test_every_reason_code_is_documented_in_the_cli_reference() -> None:
    """Scripts match on reason codes: each one has a row in docs/cli.md's table."""
    import re as _re

    from ledger.errors import Reason

    text = (ROOT / "docs" / "cli.md").read_text()
    documented = set(_re.findall(r"`([a-z_]+)`", text))
    missing = sorted(r.value for r in Reason if r.value not in documented)
    assert missing == []
