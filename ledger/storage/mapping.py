"""Rows to domain values and back: the only place that knows both shapes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ledger.domain.journal import EntryDraft, JournalEntry, Posting, from_micros


def rows_to_entries(book: str, rows: list[Any], postings: list[Any]) -> Iterator[JournalEntry]:
    """Yield domain entries from entry rows and their posting rows (same seq range)."""
    grouped: dict[int, list[Posting]] = {}
    for seq, account, asset, units in postings:
        grouped.setdefault(seq, []).append(Posting(account, asset, int(units)))
    for seq, kind, eff, rec, key, reverses, metadata_json, prev_hash, hash_ in rows:
        draft = EntryDraft(
            book=book,
            kind=kind,
            effective_at=from_micros(eff),
            postings=tuple(grouped.get(seq, ())),
            metadata=tuple((k, v) for k, v in json.loads(metadata_json)),
            idempotency_key=key,
            reverses=None if reverses is None else int(reverses),
        )
        yield JournalEntry(
            draft=draft,
            seq=int(seq),
            recorded_at=from_micros(rec),
            prev_hash=bytes(prev_hash),
            hash=bytes(hash_),
        )
