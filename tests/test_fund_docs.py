"""docs/funds.md: its Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "funds.md"


def test_python_example_in_docs_runs() -> None:
    """The first ```python block of docs/funds.md executes without error and verifies its book."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert blocks, "docs/funds.md must have a Python example"
    namespace: dict[str, object] = {"__name__": "docs_example"}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)
    assert "funds" in namespace
