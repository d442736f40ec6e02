"""The canonical encoding matches its specification (docs/canonical-encoding.md)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.canonical import GENESIS_HASH, encode_entry, request_digest, seal
from ledger.domain.journal import EntryDraft, Posting, make_metadata, to_micros

VECTOR = EntryDraft(
    book="BTC3L",
    kind="mint",
    effective_at=datetime(2020, 3, 12, tzinfo=UTC),
    postings=(
        Posting("holder:alice", "BTC3L", 10**18),
        Posting("equity:shares-outstanding", "BTC3L", -(10**18)),
    ),
    metadata=make_metadata({"memo": 'é"'}),
    idempotency_key="k-1",
)
PINNED_HASH = "c446b5c35c7e9ed7d83a4c068c5fa0aa055f7ff750d03b8441436ab148fcf7bb"
VECTOR_C = (
    '["tl1","BTC3L","1","mint","1583971200000000","1583971200000001","k-1",null,'
    '[["memo","é\\""]],[["holder:alice","BTC3L","1000000000000000000"],'
    '["equity:shares-outstanding","BTC3L","-1000000000000000000"]]]'
)


def _independent_encoding(draft: EntryDraft, seq: int, recorded_us: int) -> bytes:
    """Encode as the document says, with the standard json module only."""
    value = [
        "tl1",
        draft.book,
        str(seq),
        draft.kind,
        str(to_micros(draft.effective_at)),
        str(recorded_us),
        draft.idempotency_key,
        None if draft.reverses is None else str(draft.reverses),
        [[k, v] for k, v in sorted(draft.metadata)],
        [[p.account, p.asset, str(p.amount)] for p in draft.postings],
    ]
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def test_documented_vector() -> None:
    """The test vector in the document encodes and hashes exactly as published."""
    entry = seal(VECTOR, seq=1, recorded_us=1583971200000001, prev_hash=GENESIS_HASH)
    assert encode_entry(entry) == VECTOR_C.encode()
    expected = hashlib.sha256(GENESIS_HASH + VECTOR_C.encode()).hexdigest()
    assert entry.hash.hex() == expected
    assert expected == PINNED_HASH


def test_chain_links_second_entry() -> None:
    """hash_2 = sha256(hash_1 || C(entry_2)): the chain is prefixed with the raw previous hash."""
    first = seal(VECTOR, seq=1, recorded_us=1, prev_hash=GENESIS_HASH)
    second = seal(VECTOR, seq=2, recorded_us=2, prev_hash=first.hash)
    assert second.hash == hashlib.sha256(first.hash + encode_entry(second)).digest()
    assert second.hash != first.hash


def test_request_digest_ignores_what_the_ledger_chose() -> None:
    """The idempotency digest covers the request, not the seq or record time."""
    assert request_digest(VECTOR) == hashlib.sha256(_independent_encoding(VECTOR, 0, 0)).digest()


text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@given(
    key=st.one_of(st.none(), text.filter(bool)),
    meta=st.dictionaries(text, text, max_size=4),
    amounts=st.lists(st.integers(1, 2**256 - 1), min_size=1, max_size=4),
    seconds=st.integers(-(10**9), 4 * 10**9),
    reverses=st.one_of(st.none(), st.integers(1, 10**12)),
)
def test_encoding_equals_plain_json(
    key: str | None, meta: dict[str, str], amounts: list[int], seconds: int, reverses: int | None
) -> None:
    """For any content, the fast encoder writes what json.dumps writes for the documented array."""
    postings = tuple(Posting(f"a{i}", "X", u) for i, u in enumerate(amounts)) + tuple(
        Posting(f"b{i}", "X", -u) for i, u in enumerate(amounts)
    )
    draft = EntryDraft(
        book="B",
        kind="k",
        effective_at=datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds),
        postings=postings,
        metadata=make_metadata(meta),
        idempotency_key=key,
        reverses=reverses,
    )
    entry = seal(draft, seq=7, recorded_us=123, prev_hash=GENESIS_HASH)
    assert encode_entry(entry) == _independent_encoding(draft, 7, 123)
