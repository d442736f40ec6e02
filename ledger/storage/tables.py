"""Table names the guards and checks need at run time, without the models (ledger/storage/
schema.py imports SQLModel and pydantic, about 110 ms, which no command needs to start)."""

from __future__ import annotations

JOURNAL_TABLES = ("tl_entries", "tl_postings")
GUARDED_TABLES = ("tl_assets", "tl_accounts", *JOURNAL_TABLES)
"""Append-only: the journal, and the reference data its amounts and rules depend on."""
