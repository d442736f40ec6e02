"""The lines of the canonical JSON Lines export (format `token-ledger/2`), written by hand.

Each line equals json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
of its object; the writers below build the text directly because they run a million times per
export. docs/export-formats.md specifies every field.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from json.encoder import encode_basestring

from ledger.domain.journal import Account, JournalEntry, to_micros
from ledger.domain.money import Asset

FORMAT = "token-ledger/2"
LEGACY_FORMATS = frozenset({"token-ledger/1"})

_s = encode_basestring  # a JSON string literal, non-ASCII kept (ensure_ascii=False)

EntryRow = tuple[int, str, int, int, str | None, int | None, str, bytes, bytes]
"""(seq, kind, effective_us, recorded_us, key, reverses, metadata_json, prev_hash, hash) as
stored; metadata_json is the canonical array of pairs."""


def header_line(*, book: str, assets: Sequence[Asset], accounts: Sequence[Account]) -> str:
    """Return the canonical header line (without newline); assets and accounts sorted by code."""
    header = {
        "type": "book",
        "format": FORMAT,
        "book": book,
        "assets": [
            {"code": a.code, "scale": str(a.scale)} for a in sorted(assets, key=lambda a: a.code)
        ],
        "accounts": [
            {"code": a.code, "type": a.type.value, "rule": a.rule.value}
            for a in sorted(accounts, key=lambda a: a.code)
        ],
    }
    return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def trailer_line(*, entries: int, head_hash: bytes) -> str:
    """Return the trailer line (without newline): the entry count and the last entry's hash."""
    return f'{{"entries":"{entries}","head_hash":"{head_hash.hex()}","type":"end"}}'


def metadata_object(metadata_json: str) -> str:
    """Return the export's `{"k":"v",...}` form of a canonical `[["k","v"],...]` array."""
    if metadata_json == "[]":
        return "{}"
    pairs = json.loads(metadata_json)
    return "{" + ",".join([f"{_s(k)}:{_s(v)}" for k, v in pairs]) + "}"


def row_line(row: EntryRow, postings_json: str) -> str:
    """Return the line of one stored entry given its row and its postings' JSON array body."""
    seq, kind, eff, rec, key, reverses, meta, prev, hash_ = row
    key_json = "null" if key is None else _s(key)
    reverses_json = "null" if reverses is None else f'"{reverses}"'
    return (
        f'{{"effective_us":"{eff}","hash":"{hash_.hex()}",'
        f'"key":{key_json},"kind":{_s(kind)},'
        f'"metadata":{metadata_object(meta)},"postings":[{postings_json}],'
        f'"prev_hash":"{prev.hex()}","recorded_us":"{rec}","reverses":{reverses_json},'
        f'"seq":"{seq}","type":"entry"}}'
    )


def posting_json(account: str, asset: str, units: int) -> str:
    """Return one posting object of an entry line."""
    return f'{{"account":{_s(account)},"amount":"{units}","asset":{_s(asset)}}}'


def entry_line(entry: JournalEntry) -> str:
    """Return the canonical line (without newline) of one recorded entry."""
    draft = entry.draft
    metadata = ",".join([f"{_s(k)}:{_s(v)}" for k, v in draft.metadata])
    postings = ",".join([posting_json(p.account, p.asset, p.amount) for p in draft.postings])
    key = "null" if draft.idempotency_key is None else _s(draft.idempotency_key)
    reverses = "null" if draft.reverses is None else f'"{draft.reverses}"'
    return (
        f'{{"effective_us":"{to_micros(draft.effective_at)}","hash":"{entry.hash.hex()}",'
        f'"key":{key},"kind":{_s(draft.kind)},"metadata":{{{metadata}}},'
        f'"postings":[{postings}],"prev_hash":"{entry.prev_hash.hex()}",'
        f'"recorded_us":"{to_micros(entry.recorded_at)}","reverses":{reverses},'
        f'"seq":"{entry.seq}","type":"entry"}}'
    )
