"""The canonical encoding of a journal entry and the per-book sha256 hash chain.

docs/canonical-encoding.md specifies this byte for byte; keep the two in step. In short:

    hash_n = sha256(hash_{n-1} || canonical(entry_n)),   hash_0 = 32 zero bytes

where canonical(entry) is the UTF-8 of a compact JSON array whose scalars are all strings
or null. Encoding 2 (tag "tl2", every entry written since migration 0008):

    ["tl2", book, seq, kind, effective_us, recorded_us, key|null, reverses|null,
     [[meta_key, meta_value], ...sorted by key],
     [[account, asset, amount], ...in posting order],
     [[asset, scale], ...each asset once, in order of first use by the postings],
     [[account, type, rule], ...each account once, in order of first use]]

so every entry commits to the definitions that give its amounts their meaning (an asset's
scale) and that its balances obey (an account's type and rule). Encoding 1 (tag "tl1", entries
written before) is the first ten elements with the tag "tl1"; it is read and verified, never
written. The tag is inside the hashed bytes, so the hash itself says which encoding an entry
has (`matching_encoding`); along one chain the encoding never goes back from 2 to 1.
Integers (seq, times in microseconds since the Unix epoch, amounts in base units, scales) are
written as decimal strings, so no reader ever meets a float.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from json.encoder import encode_basestring

from ledger.domain.journal import Account, EntryDraft, JournalEntry, from_micros, to_micros
from ledger.domain.money import Asset
from ledger.errors import Reason, Rejected

LEGACY_ENCODING = 1
ENCODING = 2
"""The encoding new entries are sealed with."""
TAGS = {LEGACY_ENCODING: "tl1", ENCODING: "tl2"}
FORMAT_TAG = TAGS[LEGACY_ENCODING]
GENESIS_HASH = bytes(32)

_s = encode_basestring  # JSON string literal, non-ASCII kept as UTF-8 (ensure_ascii=False)


@dataclass(slots=True)
class Definitions:
    """What a book's codes mean: each asset's scale and each account's (type, rule).

    An entry of encoding 2 commits to the definitions of every asset and account it posts
    to. The JSON form of each definition is memoised: this is looked up once per posting.
    """

    scales: Mapping[str, int]
    accounts: Mapping[str, tuple[str, str]]
    _asset_json: dict[str, str] = field(default_factory=dict)
    _account_json: dict[str, str] = field(default_factory=dict)

    def asset_json(self, code: str) -> str:
        """Return `[asset, scale]` as canonical JSON; refuse an asset that is not defined."""
        text = self._asset_json.get(code)
        if text is None:
            scale = self.scales.get(code)
            if scale is None:
                raise Rejected(Reason.UNKNOWN_ASSET, f"asset {code!r} has no definition")
            text = self._asset_json[code] = f'[{_s(code)},"{scale}"]'
        return text

    def account_json(self, code: str) -> str:
        """Return `[account, type, rule]` as canonical JSON; refuse an undefined account."""
        text = self._account_json.get(code)
        if text is None:
            found = self.accounts.get(code)
            if found is None:
                raise Rejected(Reason.UNKNOWN_ACCOUNT, f"account {code!r} has no definition")
            text = self._account_json[code] = f"[{_s(code)},{_s(found[0])},{_s(found[1])}]"
        return text

    def encode_used(self, postings: Sequence[tuple[str, str, int]]) -> str:
        """Return the two definition arrays of encoding 2 (with their leading commas)."""
        return self.encode_used_rows([(0, a, c, u) for a, c, u in postings])

    def encode_used_rows(self, postings: Sequence[tuple[int, str, str, int]]) -> str:
        """As `encode_used`, for (seq, account, asset, units) rows as the storage reads them."""
        if len(postings) == 2:  # the common case: one asset, two accounts
            (_, a0, c0, _), (_, a1, c1, _) = postings
            assets = (
                self.asset_json(c0) if c0 == c1 else f"{self.asset_json(c0)},{self.asset_json(c1)}"
            )
            accounts = (
                self.account_json(a0)
                if a0 == a1
                else f"{self.account_json(a0)},{self.account_json(a1)}"
            )
            return f",[{assets}],[{accounts}]"
        used_assets = dict.fromkeys(c for _, _, c, _ in postings)
        used_accounts = dict.fromkeys(a for _, a, _, _ in postings)
        asset_json, account_json = self.asset_json, self.account_json
        return (
            f",[{','.join([asset_json(c) for c in used_assets])}]"
            f",[{','.join([account_json(a) for a in used_accounts])}]"
        )


def definitions_of(assets: Iterable[Asset], accounts: Iterable[Account]) -> Definitions:
    """Return the definitions of `assets` and of `accounts` (all of one book)."""
    return Definitions(
        {a.code: a.scale for a in assets},
        {a.code: (a.type.value, a.rule.value) for a in accounts},
    )


def encode_metadata(metadata: Sequence[tuple[str, str]]) -> str:
    """Return the canonical JSON array of sorted metadata pairs."""
    if not metadata:
        return "[]"
    return "[" + ",".join([f"[{_s(k)},{_s(v)}]" for k, v in metadata]) + "]"


def encode_postings(postings: Sequence[tuple[str, str, int]]) -> str:
    """Return the canonical JSON array of (account, asset, amount) triples."""
    return "[" + ",".join([f'[{_s(a)},{_s(c)},"{u}"]' for a, c, u in postings]) + "]"


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
    encoding: int = LEGACY_ENCODING,
    definitions_json: str = "",
) -> bytes:
    """Return the canonical bytes of an entry given its primitive fields.

    `definitions_json` is `Definitions.encode_used(postings)` for encoding 2, "" for 1.
    """
    key_json = "null" if key is None else _s(key)
    reverses_json = "null" if reverses is None else f'"{reverses}"'
    return (
        f'["{TAGS[encoding]}",{_s(book)},"{seq}",{_s(kind)},"{effective_us}","{recorded_us}",'
        f"{key_json},{reverses_json},{metadata_json},{postings_json}{definitions_json}]"
    ).encode()


def encode_entry(
    entry: JournalEntry, definitions: Definitions, *, encoding: int = ENCODING
) -> bytes:
    """Return the canonical bytes of a recorded entry in `encoding` (2 unless told)."""
    draft = entry.draft
    postings = [(p.account, p.asset, p.amount) for p in draft.postings]
    definitions_json = definitions.encode_used(postings) if encoding == ENCODING else ""
    return encode_fields(
        book=draft.book,
        seq=entry.seq,
        kind=draft.kind,
        effective_us=to_micros(draft.effective_at),
        recorded_us=to_micros(entry.recorded_at),
        key=draft.idempotency_key,
        reverses=draft.reverses,
        metadata_json=encode_metadata(draft.metadata),
        postings_json=encode_postings(postings),
        encoding=encoding,
        definitions_json=definitions_json,
    )


def matching_encoding(
    *, prev_hash: bytes, stated: bytes, body: str, definitions_json: str, last: int | None
) -> int | None:
    """Return the encoding (1 or 2) whose canonical bytes hash to `stated`, or None.

    `body` is the canonical array after its tag, without the closing bracket; encoding 2
    appends `definitions_json`. `last` is the previous entry's encoding (None for the first
    entry): after an entry of encoding 2 only encoding 2 is accepted; otherwise the previous
    entry's encoding is tried first.
    """
    sha256 = hashlib.sha256
    order = (ENCODING, LEGACY_ENCODING) if last is None else (last, ENCODING)
    for encoding in order if last != ENCODING else (ENCODING,):
        canonical = f'["tl2"{body}{definitions_json}]' if encoding == ENCODING else f'["tl1"{body}]'
        if sha256(prev_hash + canonical.encode()).digest() == stated:
            return encoding
    return None


def chain_hash(prev_hash: bytes, canonical: bytes) -> bytes:
    """Return sha256(prev_hash || canonical)."""
    return hashlib.sha256(prev_hash + canonical).digest()


def request_digest(draft: EntryDraft) -> bytes:
    """Return a digest of what a caller asked for, to compare idempotent retries.

    It covers everything in the draft (not the sequence number or record time), so the same
    key with any other content is detected as a conflict. It is encoding 1 with seq and
    record time "0", unchanged since the first release (stored digests stay comparable).
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


def seal(
    draft: EntryDraft,
    *,
    seq: int,
    recorded_us: int,
    prev_hash: bytes,
    definitions: Definitions,
    encoding: int = ENCODING,
) -> JournalEntry:
    """Return `draft` appended at `seq` after `prev_hash`: the recorded, chained entry.

    `encoding` 1 exists to build the test vectors of entries written before encoding 2.
    """
    unsigned = JournalEntry(
        draft=draft, seq=seq, recorded_at=from_micros(recorded_us), prev_hash=prev_hash, hash=b""
    )
    canonical = encode_entry(unsigned, definitions, encoding=encoding)
    return replace(unsigned, hash=chain_hash(prev_hash, canonical))
