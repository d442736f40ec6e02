"""docs/funds.md: its Python example runs as written, and it names every reason code the fund
engine raises and how its tables are created."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "funds.md"
FUND_CODE = [
    *sorted((REPO / "ledger" / "domain" / "fund").glob("*.py")),
    *sorted((REPO / "ledger" / "sim").glob("*.py")),
    *sorted((REPO / "ledger" / "services").glob("fund*.py")),
    REPO / "ledger" / "storage" / "fund_store.py",
    REPO / "ledger" / "cli" / "fund_cmds.py",
]


def test_python_example_in_docs_runs() -> None:
    """The first ```python block of docs/funds.md executes without error and verifies its book."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert blocks, "docs/funds.md must have a Python example"
    namespace: dict[str, object] = {"__name__": "docs_example"}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)
    assert "funds" in namespace


def test_every_fund_reason_code_is_documented() -> None:
    """Each Reason the fund engine raises has a row in the docs' reason-code table."""
    from ledger.errors import Reason

    raised = {
        Reason[name].value
        for path in FUND_CODE
        for name in re.findall(r"Reason\.([A-Z_]+)", path.read_text())
    }
    assert len(raised) >= 10
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", DOC.read_text(), re.M))
    assert raised <= rows, sorted(raised - rows)


def test_docs_say_the_fund_tables_come_from_migration_0004() -> None:
    """The fund tables are created by Alembic migration 0004, not CREATE TABLE IF NOT EXISTS."""
    text = DOC.read_text()
    assert "CREATE TABLE IF NOT EXISTS" not in text
    assert "0004_fund_records.py" in text
    assert (REPO / "ledger/storage/migrations/versions/0004_fund_records.py").is_file()
