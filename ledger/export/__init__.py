"""Export formats of a book, as pure functions over domain values.

- `write_jsonl` / `write_jsonl_rows` / `read_jsonl`: canonical JSON Lines, lossless, with a
  trailer; replays into identical hashes.
- `write_ledger`: a ledger-cli 3 journal (also read by hledger), for re-checking balances.
- `write_beancount`: a beancount v3 file, for re-checking balances with bean-check.

docs/export-formats.md specifies each format and the name mappings.
"""

from ledger.export.beancount import write_beancount
from ledger.export.jsonl import FORMAT, JsonlBook, read_jsonl, write_jsonl
from ledger.export.ledgercli import write_ledger

__all__ = ["FORMAT", "JsonlBook", "read_jsonl", "write_beancount", "write_jsonl", "write_ledger"]
