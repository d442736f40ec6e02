"""The canonical encoding matches its specification (docs/canonical-encoding.md).

The vectors are read from the document itself, so the document and the code cannot drift
apart: each `C_n` must be what the code encodes, what an independent json.dumps encoder writes,
and must hash (chained) to the published `hash_n`.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.audit import Auditor, rows_of
from ledger.domain.canonical import (
    GENESIS_HASH,
    Definitions,
    definitions_of,
    encode_entry,
    request_digest,
    seal,
)
from ledger.domain.journal import (
    Account,
    AccountType,
    BalanceRule,
    EntryDraft,
    JournalEntry,
    Posting,
    make_metadata,
    reversal_of,
    to_micros,
)
from ledger.domain.money import UINT256_MAX, Asset

DOC = Path(__file__).resolve().parent.parent / "docs" / "canonical-encoding.md"
BOOK = "BTC3L"
ASSETS = (Asset("BTC3L", 18), Asset("USDT", 6))
ACCOUNTS = (
    Account(BOOK, "holder:alice", AccountType.LIABILITY, BalanceRule.NON_NEGATIVE),
    Account(BOOK, "equity:shares-outstanding", AccountType.EQUITY),
    Account(BOOK, "fund:cash", AccountType.ASSET),
    Account(BOOK, "fees:mgmt", AccountType.INCOME),
)
MINT = EntryDraft(
    book=BOOK,
    kind="mint",
    effective_at=datetime(2020, 3, 12, tzinfo=UTC),
    postings=(
        Posting("holder:alice", "BTC3L", 10**18),
        Posting("equity:shares-outstanding", "BTC3L", -(10**18)),
    ),
    metadata=make_metadata({"memo": 'é"'}),
    idempotency_key="k-1",
)
TRANSFER = EntryDraft(
    book=BOOK,
    kind="transfer",
    effective_at=datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    postings=(
        Posting("fund:cash", "USDT", UINT256_MAX),
        Posting("fees:mgmt", "USDT", -UINT256_MAX),
        Posting("holder:alice", "BTC3L", -1),
        Posting("equity:shares-outstanding", "BTC3L", 1),
    ),
    metadata=make_metadata(
        {"10": "ten", "9": "nine", "-1": "minus", "1e3": "exp", "note": 'q"b\\s/\n\t\x01😀€'}
    ),
)


def doc_vectors() -> dict[str, str]:
    """Return every `NAME = value` line of the document's code blocks (C_n, hash_n, ...)."""
    found = re.findall(r"^((?:C|hash|request_digest)_\w+) = (.+)$", DOC.read_text(), re.M)
    return dict(found)


def vector_chain() -> list[JournalEntry]:
    """Return the three documented entries, sealed as the kernel seals them."""
    definitions = definitions_of(ASSETS, ACCOUNTS)
    first = seal(
        MINT, seq=1, recorded_us=1583971200000001, prev_hash=GENESIS_HASH, definitions=definitions
    )
    second = seal(
        TRANSFER, seq=2, recorded_us=1583971200000002, prev_hash=first.hash, definitions=definitions
    )
    undo = reversal_of(second, effective_at=datetime(2020, 3, 13, tzinfo=UTC), key="fix-2")
    third = seal(
        undo, seq=3, recorded_us=1583971200000003, prev_hash=second.hash, definitions=definitions
    )
    return [first, second, third]


def _independent_encoding(
    entry: JournalEntry, definitions: Definitions | None, *, tag: str = "tl2"
) -> bytes:
    """Encode as the document says, with the standard json module only."""
    draft = entry.draft
    value: list[object] = [
        tag,
        draft.book,
        str(entry.seq),
        draft.kind,
        str(to_micros(draft.effective_at)),
        str(to_micros(entry.recorded_at)),
        draft.idempotency_key,
        None if draft.reverses is None else str(draft.reverses),
        [[k, v] for k, v in sorted(draft.metadata)],
        [[p.account, p.asset, str(p.amount)] for p in draft.postings],
    ]
    if definitions is not None:
        assets = dict.fromkeys(p.asset for p in draft.postings)
        accounts = dict.fromkeys(p.account for p in draft.postings)
        value.append([[c, str(definitions.scales[c])] for c in assets])
        value.append([[a, *definitions.accounts[a]] for a in accounts])
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def test_documented_chain_of_three_entries() -> None:
    """C_1..C_3 and hash_1..hash_3 in the document are what the code writes, chained."""
    vectors = doc_vectors()
    definitions = definitions_of(ASSETS, ACCOUNTS)
    prev = GENESIS_HASH
    for n, entry in enumerate(vector_chain(), start=1):
        canonical = vectors[f"C_{n}"].encode()
        assert encode_entry(entry, definitions) == canonical
        assert _independent_encoding(entry, definitions) == canonical
        assert entry.prev_hash == prev
        assert hashlib.sha256(prev + canonical).hexdigest() == vectors[f"hash_{n}"]
        assert entry.hash.hex() == vectors[f"hash_{n}"]
        prev = entry.hash


def test_documented_vectors_hold_what_the_text_says() -> None:
    """The later link has a null key, number-like keys sorted as text, escapes, an astral
    character and 2**256-1; the reversal negates it and points to it."""
    c2, c3 = doc_vectors()["C_2"], doc_vectors()["C_3"]
    assert ',null,null,[["-1","minus"],["10","ten"],["1e3","exp"],["9","nine"],' in c2
    assert '"q\\"b\\\\s/\\n\\t\\u0001😀€"' in c2
    assert f'"{UINT256_MAX}"' in c2 and f'"-{UINT256_MAX}"' in c3
    assert c3.startswith(
        '["tl2","BTC3L","3","reversal","1584057600000000","1583971200000003","fix-2","2",'
    )
    assert c2.endswith(
        '[["USDT","6"],["BTC3L","18"]],[["fund:cash","asset","none"],["fees:mgmt","income","none"],'
        '["holder:alice","liability","non_negative"],["equity:shares-outstanding","equity","none"]]]'
    )


def test_documented_legacy_vector_and_request_digest() -> None:
    """Encoding 1 (before definitions) still hashes as published, and the digest is of it."""
    vectors = doc_vectors()
    definitions = definitions_of(ASSETS, ACCOUNTS)
    legacy = seal(
        MINT,
        seq=1,
        recorded_us=1583971200000001,
        prev_hash=GENESIS_HASH,
        definitions=definitions,
        encoding=1,
    )
    assert encode_entry(legacy, definitions, encoding=1) == vectors["C_legacy"].encode()
    assert _independent_encoding(legacy, None, tag="tl1") == vectors["C_legacy"].encode()
    assert legacy.hash.hex() == vectors["hash_legacy"]
    assert request_digest(MINT).hex() == vectors["request_digest_1"]


def test_the_auditor_accepts_the_vectors_and_refuses_changed_definitions() -> None:
    """The documented chain verifies; with USDT at scale 2, or alice's rule removed, it does
    not, at the first entry that uses the changed definition."""
    rows, postings = rows_of(vector_chain())
    good = Auditor(BOOK, definitions_of(ASSETS, ACCOUNTS), frozenset({2}))
    assert good.feed_chunk(rows, postings) and good.head_seq == 3
    scale = Auditor(BOOK, definitions_of((ASSETS[0], Asset("USDT", 2)), ACCOUNTS), {2})
    assert not scale.feed_chunk(rows, postings)
    assert scale.finding is not None and scale.finding.seq == 2
    assert "hash does not match" in scale.finding.problem
    no_rule = (Account(BOOK, "holder:alice", AccountType.LIABILITY), *ACCOUNTS[1:])
    rule = Auditor(BOOK, definitions_of(ASSETS, no_rule), {2})
    assert not rule.feed_chunk(rows, postings)
    assert rule.finding is not None and rule.finding.seq == 1


def test_a_legacy_chain_verifies_and_cannot_go_back_after_encoding_2() -> None:
    """Encoding 1 entries verify, then encoding 2 ones may follow; never 1 after 2."""
    definitions = definitions_of(ASSETS, ACCOUNTS)
    one = seal(
        MINT, seq=1, recorded_us=1, prev_hash=GENESIS_HASH, definitions=definitions, encoding=1
    )
    two = seal(MINT, seq=2, recorded_us=2, prev_hash=one.hash, definitions=definitions)
    three = seal(
        MINT, seq=3, recorded_us=3, prev_hash=two.hash, definitions=definitions, encoding=1
    )
    ok = Auditor(BOOK, definitions)
    assert ok.feed_chunk(*rows_of([one, two])) and ok.head_encoding == 2
    back = Auditor(BOOK, definitions)
    assert not back.feed_chunk(*rows_of([one, two, three]))
    assert back.finding is not None and back.finding.seq == 3


def test_request_digest_ignores_what_the_ledger_chose() -> None:
    """The idempotency digest covers the request, not the seq or record time."""
    zero = JournalEntry(MINT, 0, datetime(1970, 1, 1, tzinfo=UTC), GENESIS_HASH, b"")
    expected = hashlib.sha256(_independent_encoding(zero, None, tag="tl1")).digest()
    assert request_digest(MINT) == expected


text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@given(
    key=st.one_of(st.none(), text.filter(bool)),
    meta=st.dictionaries(text, text, max_size=4),
    amounts=st.lists(st.integers(1, 2**256 - 1), min_size=1, max_size=4),
    seconds=st.integers(-(10**9), 4 * 10**9),
    reverses=st.one_of(st.none(), st.integers(1, 10**12)),
    assets=st.lists(st.sampled_from(["X", "Y", "Z"]), min_size=1, max_size=4),
)
def test_encoding_equals_plain_json(
    key: str | None,
    meta: dict[str, str],
    amounts: list[int],
    seconds: int,
    reverses: int | None,
    assets: list[str],
) -> None:
    """For any content, the fast encoder writes what json.dumps writes for the documented array."""
    postings = tuple(
        Posting(f"a{i % 3}", assets[i % len(assets)], u) for i, u in enumerate(amounts)
    ) + tuple(Posting(f"b{i}", assets[i % len(assets)], -u) for i, u in enumerate(amounts))
    draft = EntryDraft(
        book="B",
        kind="k",
        effective_at=datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds),
        postings=postings,
        metadata=make_metadata(meta),
        idempotency_key=key,
        reverses=reverses,
    )
    definitions = definitions_of(
        [Asset(c, n) for n, c in enumerate("XYZ")],
        [Account("B", f"{s}{i}", AccountType.ASSET) for s in "ab" for i in range(4)],
    )
    entry = seal(draft, seq=7, recorded_us=123, prev_hash=GENESIS_HASH, definitions=definitions)
    assert encode_entry(entry, definitions) == _independent_encoding(entry, definitions)
