"""The canonical encoding of a journal entry and the per-book sha256 hash chain.

docs/canonical-encoding.md specifies this byte for byte; keep the two in step. In short:

    hash_n = sha256(hash_{n-1} || canonical(entry_n)),   hash_0 = 32 zero bytes

where canonical(entry) is the UTF-8 of a compact JSON array whose scalars are all strings
or null:

    ["tl1", book, seq, kind, effective_us, recorded_us, key|null, reverses|null,
     [[meta_key, meta_value], ...sorted by key],
     [[account, asset, amount], ...in posting order]]

Integers (seq, times in microseconds since the Unix epoch, amounts in base units) are
written as decimal strings, so no reader ever meets a float.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from json.encoder import encode_basestring

from ledger.domain.journal import EntryDraft, JournalEntry, from_micros, to_micros

FORMAT_TAG = "tl1"
GENESIS_HASH = bytes(32)

_s = encode_basestring  # JSON string literal, non-ASCII kept as UTF-8 (ensure_ascii=False)


def encode_metadata(metadata: Sequence[tuple[str, str]]) -> str:
    """Return the canonical JSON array of sorted metadata pairs."""
    return "[" + ",".join(f"[{_s(k)},{_s(v)}]" for k, v in metadata) + "]"


def encode_postings(postings: Sequence[tuple[str, str, int]]) -> str:
    """Return the canonical JSON array of (account, asset, amount) triples."""
    return "[" + ",".join(f'[{_s(a)},{_s(c)},"{u}"]' for a, c, u in postings) + "]"


def encode_fields(
    *,
    book: str,
    seq: int,
    kind: str,
    effective_us: int,
    recorded_us: int,
    key: str | None,
    reverses: int | None,
    metadata_json: str,
    postings_json: str,
) -> bytes:
    """Return the canonical bytes of an entry given its primitive fields."""
    key_json = "null" if key is None else _s(key)
    reverses_json = "null" if reverses is None else f'"{reverses}"'
    return (
        f'["{FORMAT_TAG}",{_s(book)},"{seq}",{_s(kind)},"{effective_us}","{recorded_us}",'
        f"{key_json},{reverses_json},{metadata_json},{postings_json}]"
    ).encode()


def encode_entry(entry: JournalEntry) -> bytes:
    """Return the canonical bytes of a recorded entry."""
    draft = entry.draft
    return encode_fields(
        book=draft.book,
        seq=entry.seq,
        kind=draft.kind,
        effective_us=to_micros(draft.effective_at),
        recorded_us=to_micros(entry.recorded_at),
        key=draft.idempotency_key,
        reverses=draft.reverses,
        metadata_json=encode_metadata(draft.metadata),
        postings_json=encode_postings([(p.account, p.asset, p.amount) for p in draft.postings]),
    )


def chain_hash(prev_hash: bytes, canonical: bytes) -> bytes:
    """Return sha256(prev_hash || canonical)."""
    return hashlib.sha256(prev_hash + canonical).digest()


def request_digest(draft: EntryDraft) -> bytes:
    """Return a digest of what a caller asked for, to compare idempotent retries.

    It covers everything in the draft (not the sequence number or record time), so the same
    key with any other content is detected as a conflict.
    """
    canonical = encode_fields(
        book=draft.book,
        seq=0,
        kind=draft.kind,
        effective_us=to_micros(draft.effective_at),
        recorded_us=0,
        key=draft.idempotency_key,
        reverses=draft.reverses,
        metadata_json=encode_metadata(draft.metadata),
        postings_json=encode_postings([(p.account, p.asset, p.amount) for p in draft.postings]),
    )
    return hashlib.sha256(canonical).digest()


def seal(draft: EntryDraft, *, seq: int, recorded_us: int, prev_hash: bytes) -> JournalEntry:
    """Return `draft` appended at `seq` after `prev_hash`: the recorded, chained entry."""
    recorded_at = from_micros(recorded_us)
    unsigned = JournalEntry(
        draft=draft, seq=seq, recorded_at=recorded_at, prev_hash=prev_hash, hash=b""
    )
    return JournalEntry(
        draft=draft,
        seq=seq,
        recorded_at=recorded_at,
        prev_hash=prev_hash,
        hash=chain_hash(prev_hash, encode_entry(unsigned)),
    )
