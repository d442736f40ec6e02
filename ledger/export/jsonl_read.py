"""Read a canonical JSON Lines export back, trusting nothing (docs/export-formats.md).

`read_jsonl` checks the header at once and every further line lazily, as it is iterated: the
shape of each line, every entry's balance per asset, its hash recomputed with the canonical
encoding (encoding 2 covers the header's definitions of the assets and accounts it posts to),
the link to the previous entry, and at the end the trailer: a file without its trailer is
`truncated_export`, one whose entries disagree with it is `trailer_mismatch`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ledger.domain.canonical import (
    ENCODING,
    GENESIS_HASH,
    Definitions,
    definitions_of,
    encode_metadata,
    matching_encoding,
)
from ledger.domain.journal import (
    MAX_KEY_LENGTH,
    MAX_SEQ,
    Account,
    AccountType,
    BalanceRule,
    EntryDraft,
    JournalEntry,
    Posting,
    check_book,
    check_micros,
    check_text,
    from_micros,
    make_metadata,
)
from ledger.domain.money import UINT256_MAX, Asset
from ledger.errors import Reason, Rejected
from ledger.export.jsonl_format import FORMAT, LEGACY_FORMATS, EntryRow, _s

Record = tuple[EntryRow, list[tuple[str, str, int]]]
"""One checked entry: its row as stored (hash recomputed and equal) and its postings."""

_HEX32 = re.compile(r"[0-9a-f]{64}")
_KIND = re.compile(r"[a-z][a-z0-9_.]{0,63}")  # as journal.check_draft
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HEADER_KEYS = frozenset({"type", "format", "book", "assets", "accounts"})
_TRAILER_KEYS = frozenset({"type", "entries", "head_hash"})
_ENTRY_KEYS = frozenset(
    {
        "type",
        "seq",
        "kind",
        "effective_us",
        "recorded_us",
        "key",
        "reverses",
        "metadata",
        "postings",
        "prev_hash",
        "hash",
    }
)
_POSTING_KEYS = frozenset({"account", "asset", "amount"})
_MAX_INT_TEXT = 79  # "-" and the 78 digits of 2**256-1: no integer in an export is longer


@dataclass(frozen=True, slots=True)
class JsonlBook:
    """A parsed export: the header, and its entries as one lazy, checked iterator.

    `records` (rows for the ledger's replay) and `entries` (domain values) iterate the same
    lines: consume one of them, inside the database transaction that replays it. Either
    raises `Rejected` at the first bad line, and at the end if the trailer is missing or
    disagrees.
    """

    book: str
    assets: tuple[Asset, ...]
    accounts: tuple[Account, ...]
    records: Iterator[Record]
    entries: Iterator[JournalEntry]


def read_jsonl(lines: Iterable[str]) -> JsonlBook:
    """Parse a canonical JSON Lines export; entries are checked lazily as they are iterated.

    Raises:
        Rejected: for the first bad line, "line N: ...": BAD_INPUT (malformed, unbalanced,
            unknown account or asset), HASH_MISMATCH (a hash that does not recompute or a
            broken link), TRUNCATED_EXPORT (no trailer), TRAILER_MISMATCH (count or head hash
            not those of the entries, or a line after the trailer). The header is checked at
            once.
    """
    iterator = _decoded(lines)
    first = next(iterator, None)
    if first is None:
        raise _fail(1, "empty file, expected the book header", Reason.TRUNCATED_EXPORT)
    book, assets, accounts = _parse_header(first)
    records = _EntryReader(book, definitions_of(assets, accounts)).read(iterator)
    return JsonlBook(book, assets, accounts, records, entries_of(book, records))


def entries_of(book: str, records: Iterator[Record]) -> Iterator[JournalEntry]:
    """Return the domain entries of `book`'s checked records, lazily."""
    for row, postings in records:
        seq, kind, eff, rec, key, reverses, meta, prev, hash_ = row
        draft = EntryDraft(
            book=book,
            kind=kind,
            effective_at=from_micros(eff),
            postings=tuple(Posting(a, c, u) for a, c, u in postings),
            metadata=tuple((k, v) for k, v in json.loads(meta)),
            idempotency_key=key,
            reverses=reverses,
        )
        yield JournalEntry(draft, seq, from_micros(rec), prev, hash_)


def _decoded(lines: Iterable[str]) -> Iterator[str]:
    """Yield `lines`; a file that is not UTF-8 is refused with the line it was found near."""
    iterator = iter(lines)
    number = 0
    while True:
        try:
            line = next(iterator)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            # A text file decodes in blocks: the bad byte is on this line or a later one.
            raise _fail(
                number + 1,
                f"the file is not UTF-8 text (invalid byte at or after this line: {exc})",
                Reason.BAD_ENCODING,
            ) from None
        number += 1
        yield line


def _fail(number: int, message: str, reason: Reason = Reason.BAD_INPUT) -> Rejected:
    return Rejected(reason, f"line {number}: {message}", line=number)


def _load(text: str, number: int) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise _fail(number, f"not valid JSON ({exc})") from None
    except RecursionError:
        raise _fail(number, "not valid JSON (nested too deeply)") from None
    if not isinstance(obj, dict):
        raise _fail(number, "expected a JSON object")
    return obj


def _check_keys(obj: dict[str, Any], expected: frozenset[str], number: int, what: str) -> None:
    if obj.keys() != expected:
        missing = sorted(expected - obj.keys())
        extra = sorted(obj.keys() - expected)
        detail = f"missing {missing}" if missing else f"unexpected {extra}"
        raise _fail(number, f"{what} has {detail} fields")


def _parse_header(text: str) -> tuple[str, tuple[Asset, ...], tuple[Account, ...]]:
    obj = _load(text, 1)
    if obj.get("type") == "book" and obj.get("format") in LEGACY_FORMATS:
        raise _fail(
            1,
            f"format {obj['format']} has no trailer and no definitions commitment:"
            f" export the book again with this token-ledger ({FORMAT})",
        )
    if obj.get("type") != "book" or obj.get("format") != FORMAT:
        raise _fail(1, f'expected a header with "type":"book","format":"{FORMAT}"')
    _check_keys(obj, _HEADER_KEYS, 1, "the header")
    try:
        book = check_book(obj["book"])
        assets = tuple(
            Asset(code=_text(a["code"], "asset code", 1), scale=_int(a["scale"], "scale", 1))
            for a in _list(obj["assets"], "assets")
        )
        accounts = tuple(
            Account(
                book=book,
                code=_text(a["code"], "account code", 1),
                type=AccountType(a["type"]),
                rule=BalanceRule(a["rule"]),
            )
            for a in _list(obj["accounts"], "accounts")
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail(1, f"malformed header ({exc.__class__.__name__}: {exc})") from None
    except Rejected as exc:
        if "line" in exc.context:
            raise
        raise _fail(1, exc.message) from None
    if len({a.code for a in assets}) != len(assets):
        raise _fail(1, "an asset is listed twice")
    if len({a.code for a in accounts}) != len(accounts):
        raise _fail(1, "an account is listed twice")
    return book, assets, accounts


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"{what} must be a list")
    return value


def _text(value: Any, what: str, number: int) -> str:
    if not isinstance(value, str):
        raise _fail(number, f"{what} must be a string, got {value!r}")
    return value


def _int(value: Any, what: str, number: int) -> int:
    # str(int(v)) == v admits exactly the canonical form: no sign "+", no leading zeros,
    # no spaces or "_", no non-ASCII digits, and never a JSON number.
    if isinstance(value, str) and len(value) > _MAX_INT_TEXT:
        raise _fail(number, f"{what} must be a decimal integer string of at most 79 characters")
    try:
        result = int(value)
        if str(result) == value:
            return result
    except (TypeError, ValueError):
        pass
    raise _fail(number, f"{what} must be a decimal integer string, got {value!r}")


def _micros(value: Any, what: str, number: int) -> int:
    """Return a time in microseconds since the epoch, within the supported window."""
    if isinstance(value, str) and len(value) > 24:  # the window's bounds have 17 digits
        raise _fail(number, f"{what} is outside the supported time window")
    micros = _int(value, what, number)
    try:
        return check_micros(micros, what)
    except Rejected as exc:
        raise _fail(number, exc.message) from None


def _hash(value: Any, what: str, number: int) -> bytes:
    if not isinstance(value, str) or not _HEX32.fullmatch(value):
        raise _fail(number, f"{what} must be 64 lower-case hex digits")
    return bytes.fromhex(value)


class _EntryReader:
    """Parse and check the entry lines of one book, then its trailer."""

    def __init__(self, book: str, definitions: Definitions) -> None:
        self.book = book
        self.book_json = _s(book)
        self.definitions = definitions
        # Each code maps to one string object, which every record then shares (fewer objects
        # in memory, and a pickle of many records carries each code once).
        self.assets = {code: code for code in definitions.scales}
        self.accounts = {code: code for code in definitions.accounts}
        self.kinds: dict[str, str] = {}

    def read(self, lines: Iterator[str]) -> Iterator[Record]:
        """Yield the checked records of the entry lines, then check the trailer."""
        seq, prev = 0, GENESIS_HASH
        self.encoding: int | None = None
        number = 1
        for text in lines:
            number += 1
            if not text.endswith("\n"):
                raise _fail(
                    number, "the file ends inside a line (cut short)", Reason.TRUNCATED_EXPORT
                )
            obj = _load(text, number)
            if obj.get("type") == "end":
                self._check_trailer(obj, number, seq, prev)
                for _ in lines:
                    raise _fail(number + 1, "a line after the trailer", Reason.TRAILER_MISMATCH)
                return
            seq += 1
            record = self.parse(obj, number, seq, prev)
            prev = record[0][8]
            yield record
        raise _fail(
            number + 1,
            f"the file ends after entry {seq} without its trailer line (cut short)",
            Reason.TRUNCATED_EXPORT,
        )

    def _check_trailer(self, obj: dict[str, Any], number: int, seq: int, prev: bytes) -> None:
        _check_keys(obj, _TRAILER_KEYS, number, "the trailer")
        stated = _int(obj["entries"], "entries", number)
        head = _hash(obj["head_hash"], "head_hash", number)
        if stated != seq:
            raise _fail(
                number,
                f"the trailer counts {stated} entries, the file holds {seq}",
                Reason.TRAILER_MISMATCH,
            )
        if head != prev:
            raise _fail(
                number,
                f"the trailer's head_hash {head.hex()} is not the last entry's {prev.hex()}",
                Reason.TRAILER_MISMATCH,
            )

    def parse(self, obj: dict[str, Any], number: int, seq: int, prev: bytes) -> Record:
        """Return the entry on line `number`, which must carry `seq` and chain to `prev`."""
        if obj.get("type") != "entry":
            raise _fail(number, 'expected an entry ("type":"entry") or the trailer ("end")')
        if obj.keys() != _ENTRY_KEYS:
            _check_keys(obj, _ENTRY_KEYS, number, "the entry")
        if obj["seq"] != str(seq):
            stated_seq = _int(obj["seq"], "seq", number)
            raise _fail(number, f"seq {stated_seq} where {seq} was expected (gap or reorder)")
        effective_us = _micros(obj["effective_us"], "effective_us", number)
        recorded_us = _micros(obj["recorded_us"], "recorded_us", number)
        kind = self.kinds.get(obj["kind"])
        if kind is None:
            kind = obj["kind"]
            if not isinstance(kind, str) or not _KIND.fullmatch(kind):
                raise _fail(number, f"kind {kind!r} must match [a-z][a-z0-9_.]*")
            self.kinds[kind] = kind
        key = obj["key"]
        if key is not None:
            _check_key(key, number)
        reverses = obj["reverses"]
        if reverses is not None:
            reverses = _int(reverses, "reverses", number)
            if not 1 <= reverses <= MAX_SEQ:
                raise _fail(number, f"reverses must name a sequence number 1..{MAX_SEQ}")
        metadata = obj["metadata"]
        metadata_json = "[]" if metadata == {} else encode_metadata(_metadata(metadata, number))
        postings, postings_json = self._postings(obj["postings"], number)
        definitions_json = self.definitions.encode_used(postings)
        key_json = "null" if key is None else _s(key)
        reverses_json = "null" if reverses is None else f'"{reverses}"'
        body = (
            f',{self.book_json},"{seq}",{_s(kind)},"{effective_us}","{recorded_us}",'
            f"{key_json},{reverses_json},{metadata_json},[{postings_json}]"
        )
        if obj["prev_hash"] != prev.hex():
            stated_prev = _hash(obj["prev_hash"], "prev_hash", number)
            raise _fail(
                number,
                f"prev_hash {stated_prev.hex()} does not chain to {prev.hex()}",
                Reason.HASH_MISMATCH,
            )
        stated_text = obj["hash"]
        if self.encoding == ENCODING:  # the common case: one hash
            recomputed = hashlib.sha256(prev + f'["tl2"{body}{definitions_json}]'.encode()).digest()
            matches = recomputed.hex() == stated_text
        else:
            recomputed = _hash(stated_text, "hash", number)
            found = matching_encoding(
                prev_hash=prev,
                stated=recomputed,
                body=body,
                definitions_json=definitions_json,
                last=self.encoding,
            )
            matches, self.encoding = found is not None, found or self.encoding
        if not matches:
            stated = _hash(stated_text, "hash", number)
            raise _fail(
                number,
                f"entry {seq} does not match its hash {stated.hex()}: its content, or the"
                " header's definition of an asset or account it posts to, differs from what"
                " was hashed",
                Reason.HASH_MISMATCH,
            )
        row = (seq, kind, effective_us, recorded_us, key, reverses, metadata_json)
        return (*row, prev, recomputed), postings

    def _postings(self, value: Any, number: int) -> tuple[list[tuple[str, str, int]], str]:
        # Fast path for well-formed lines; any surprise is re-walked by _diagnose for a
        # precise message.
        postings: list[tuple[str, str, int]] = []
        parts: list[str] = []
        totals: dict[str, int] = {}
        accounts, assets = self.accounts, self.assets
        try:
            for item in value:
                text = item["amount"]
                amount = int(text)
                account, asset = accounts.get(item["account"]), assets.get(item["asset"])
                if (
                    len(item) != 3
                    or account is None
                    or asset is None
                    or str(amount) != text
                    or amount == 0
                    or not -UINT256_MAX <= amount <= UINT256_MAX
                ):
                    break
                totals[asset] = totals.get(asset, 0) + amount
                postings.append((account, asset, amount))
                # Codes in the header passed their patterns: none needs escaping.
                parts.append(f'["{account}","{asset}","{text}"]')
            else:
                if postings and not any(totals.values()):
                    return postings, ",".join(parts)
        except (KeyError, TypeError, ValueError):
            pass
        raise self._diagnose(value, number)

    def _diagnose(self, value: Any, number: int) -> Rejected:
        """Return the precise error for postings the fast path refused."""
        if not isinstance(value, list) or not value:
            return _fail(number, "postings must be a non-empty list")
        totals: dict[str, int] = {}
        for item in value:
            if not isinstance(item, dict) or item.keys() != _POSTING_KEYS:
                return _fail(number, 'each posting must be {"account","amount","asset"}')
            account, asset = item["account"], item["asset"]
            if not isinstance(account, str) or account not in self.accounts:
                return _fail(number, f"account {account!r} is not in the header")
            if not isinstance(asset, str) or asset not in self.assets:
                return _fail(number, f"asset {asset!r} is not in the header")
            amount = _int(item["amount"], "amount", number)
            if amount == 0 or not -UINT256_MAX <= amount <= UINT256_MAX:
                return _fail(number, f"amount {amount} is zero or beyond the uint256 range")
            totals[asset] = totals.get(asset, 0) + amount
        detail = ", ".join(f"{a} {t:+d}" for a, t in sorted(totals.items()) if t)
        return _fail(number, f"postings do not sum to zero per asset: {detail}")


def _check_key(key: Any, number: int) -> None:
    if not (isinstance(key, str) and 0 < len(key) <= MAX_KEY_LENGTH):
        raise _fail(number, f"key must be null or a string of 1-{MAX_KEY_LENGTH} characters")
    if _CONTROL.search(key):
        raise _fail(number, "key must not contain control characters")
    try:
        check_text(key, "key")
    except Rejected as exc:
        raise _fail(number, exc.message) from None


def _metadata(value: Any, number: int) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise _fail(number, "metadata must be an object of text values")
    try:
        return make_metadata(value)
    except Rejected as exc:
        raise _fail(number, exc.message) from None
