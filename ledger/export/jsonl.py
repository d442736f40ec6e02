"""Canonical JSON Lines of a book: the lossless export that replays into identical hashes.

Line 1 is the book header, then one line per journal entry in sequence order. Every object
has sorted keys and compact separators; every integer (scale, seq, times in microseconds
since the Unix epoch, amounts in base units) is a decimal string, so no reader meets a float.
The file is UTF-8 (non-ASCII text is kept, not escaped). docs/export-formats.md specifies it
field by field.

`read_jsonl` trusts nothing: it checks every line's shape, every entry's balance per asset,
recomputes every hash with `ledger.domain.canonical` and refuses a chain that does not link.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any, TextIO

from ledger.domain.canonical import (
    GENESIS_HASH,
    chain_hash,
    encode_fields,
    encode_metadata,
    encode_postings,
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
    from_micros,
    make_metadata,
    to_micros,
)
from ledger.domain.money import UINT256_MAX, Asset
from ledger.errors import Reason, Rejected

FORMAT = "token-ledger/1"

_s = encode_basestring  # a JSON string literal, non-ASCII kept (ensure_ascii=False)
_HEX32 = re.compile(r"[0-9a-f]{64}")
_KIND = re.compile(r"[a-z][a-z0-9_.]{0,63}")  # as journal.check_draft
_HEADER_KEYS = frozenset({"type", "format", "book", "assets", "accounts"})
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
    """A parsed export: the header, and the entries as a lazy, checked iterator.

    `entries` raises `Rejected(Reason.BAD_INPUT, "line N: ...")` at the first bad line, so
    consume it inside the database transaction that replays it.
    """

    book: str
    assets: tuple[Asset, ...]
    accounts: tuple[Account, ...]
    entries: Iterator[JournalEntry]


def header_line(*, book: str, assets: Sequence[Asset], accounts: Sequence[Account]) -> str:
    """Return the canonical header line (without newline); assets and accounts sorted by code."""
    header = {
        "type": "book",
        "format": FORMAT,
        "book": book,
        "assets": [{"code": a.code, "scale": str(a.scale)} for a in sorted(assets, key=_code)],
        "accounts": [
            {"code": a.code, "type": a.type.value, "rule": a.rule.value}
            for a in sorted(accounts, key=_code)
        ],
    }
    return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_line(entry: JournalEntry) -> str:
    """Return the canonical line (without newline) of one recorded entry.

    It equals json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False) of
    the entry object, written by hand because this runs a million times per export.
    """
    draft = entry.draft
    key = "null" if draft.idempotency_key is None else _s(draft.idempotency_key)
    reverses = "null" if draft.reverses is None else f'"{draft.reverses}"'
    metadata = ",".join(f"{_s(k)}:{_s(v)}" for k, v in draft.metadata)
    postings = ",".join(
        f'{{"account":{_s(p.account)},"amount":"{p.amount}","asset":{_s(p.asset)}}}'
        for p in draft.postings
    )
    return (
        f'{{"effective_us":"{to_micros(draft.effective_at)}","hash":"{entry.hash.hex()}",'
        f'"key":{key},"kind":{_s(draft.kind)},"metadata":{{{metadata}}},'
        f'"postings":[{postings}],"prev_hash":"{entry.prev_hash.hex()}",'
        f'"recorded_us":"{to_micros(entry.recorded_at)}","reverses":{reverses},'
        f'"seq":"{entry.seq}","type":"entry"}}'
    )


def write_jsonl(
    out: TextIO,
    *,
    book: str,
    assets: Sequence[Asset],
    accounts: Sequence[Account],
    entries: Iterable[JournalEntry],
) -> int:
    """Write `book` as canonical JSON Lines to `out`; return the number of entries written.

    `entries` must be all of the book's entries in sequence order, from seq 1.
    """
    out.write(header_line(book=book, assets=assets, accounts=accounts) + "\n")
    count = 0
    batch: list[str] = []
    for entry in entries:
        if entry.draft.book != book:
            raise Rejected(
                Reason.BAD_INPUT, f"entry {entry.seq} belongs to book {entry.draft.book!r}"
            )
        if entry.seq != count + 1:  # A file that could not be read back is worse than none.
            raise Rejected(
                Reason.BAD_INPUT, f"entry {entry.seq} where seq {count + 1} was expected"
            )
        batch.append(entry_line(entry))
        count += 1
        if len(batch) == 1024:  # Fewer, larger writes: the export is I/O bound otherwise.
            out.write("\n".join(batch) + "\n")
            batch.clear()
    if batch:
        out.write("\n".join(batch) + "\n")
    return count


def read_jsonl(lines: Iterable[str]) -> JsonlBook:
    """Parse a canonical JSON Lines export; entries are checked lazily as they are iterated.

    Raises:
        Rejected: BAD_INPUT "line N: ..." for the first malformed, unbalanced, unknown
            (account/asset) or badly chained line; the header is checked at once.
    """
    iterator = _decoded(lines)
    first = next(iterator, None)
    if first is None:
        raise Rejected(Reason.BAD_INPUT, "line 1: empty file, expected the book header")
    book, assets, accounts = _parse_header(first)
    return JsonlBook(
        book=book,
        assets=assets,
        accounts=accounts,
        entries=_read_entries(iterator, book=book, assets=assets, accounts=accounts),
    )


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
            ) from None
        number += 1
        yield line


def _code(item: Asset | Account) -> str:
    return item.code


def _fail(number: int, message: str) -> Rejected:
    return Rejected(Reason.BAD_INPUT, f"line {number}: {message}", line=number)


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


def _read_entries(
    lines: Iterator[str],
    *,
    book: str,
    assets: tuple[Asset, ...],
    accounts: tuple[Account, ...],
) -> Iterator[JournalEntry]:
    reader = _EntryReader(book=book, assets=assets, accounts=accounts)
    prev_hash = GENESIS_HASH
    for number, text in enumerate(lines, start=2):
        entry = reader.parse(text, number, seq=number - 1)
        if entry.prev_hash != prev_hash:
            raise _fail(
                number,
                f"prev_hash {entry.prev_hash.hex()} does not chain to {prev_hash.hex()}",
            )
        prev_hash = entry.hash
        yield entry


class _EntryReader:
    """Parse and check entry lines of one book; caches what repeats (kinds)."""

    def __init__(
        self, *, book: str, assets: tuple[Asset, ...], accounts: tuple[Account, ...]
    ) -> None:
        self.book = book
        self.assets = frozenset(a.code for a in assets)
        self.accounts = frozenset(a.code for a in accounts)
        self.kinds: set[str] = set()

    def parse(self, text: str, number: int, *, seq: int) -> JournalEntry:
        """Return the entry on line `number`, which must carry `seq` and its own true hash."""
        obj = _load(text, number)
        if obj.get("type") != "entry":
            raise _fail(number, 'expected an entry ("type":"entry")')
        if obj.keys() != _ENTRY_KEYS:
            _check_keys(obj, _ENTRY_KEYS, number, "the entry")
        stated_seq = _int(obj["seq"], "seq", number)
        if stated_seq != seq:
            raise _fail(number, f"seq {stated_seq} where {seq} was expected (gap or reorder)")
        effective_us = _micros(obj["effective_us"], "effective_us", number)
        draft = self._draft(obj, number, effective_us)
        recorded_us = _micros(obj["recorded_us"], "recorded_us", number)
        prev_hash = _hash(obj["prev_hash"], "prev_hash", number)
        stated_hash = _hash(obj["hash"], "hash", number)
        canonical = encode_fields(
            book=self.book,
            seq=seq,
            kind=draft.kind,
            effective_us=effective_us,
            recorded_us=recorded_us,
            key=draft.idempotency_key,
            reverses=draft.reverses,
            metadata_json=encode_metadata(draft.metadata),
            postings_json=encode_postings([(p.account, p.asset, p.amount) for p in draft.postings]),
        )
        recomputed = chain_hash(prev_hash, canonical)
        if recomputed != stated_hash:
            raise _fail(
                number,
                f"entry {seq} does not match its hash (stated {stated_hash.hex()}, "
                f"recomputed {recomputed.hex()})",
            )
        return JournalEntry(
            draft=draft,
            seq=seq,
            recorded_at=from_micros(recorded_us),
            prev_hash=prev_hash,
            hash=stated_hash,
        )

    def _draft(self, obj: dict[str, Any], number: int, effective_us: int) -> EntryDraft:
        # The checks of journal.check_draft, inlined: posting accounts and assets are checked
        # against the header (whose codes were validated), which is cheaper than a regex each.
        kind = obj["kind"]
        if kind not in self.kinds:
            if not isinstance(kind, str) or not _KIND.fullmatch(kind):
                raise _fail(number, f"kind {kind!r} must match [a-z][a-z0-9_.]*")
            self.kinds.add(kind)
        key = obj["key"]
        if key is not None and not (isinstance(key, str) and 0 < len(key) <= MAX_KEY_LENGTH):
            raise _fail(number, f"key must be null or a string of 1-{MAX_KEY_LENGTH} characters")
        reverses = obj["reverses"]
        if reverses is not None:
            reverses = _int(reverses, "reverses", number)
            if not 1 <= reverses <= MAX_SEQ:
                raise _fail(number, f"reverses must name a sequence number 1..{MAX_SEQ}")
        return EntryDraft(
            book=self.book,
            kind=kind,
            effective_at=from_micros(effective_us),
            postings=self._postings(obj["postings"], number),
            metadata=_metadata(obj["metadata"], number),
            idempotency_key=key,
            reverses=reverses,
        )

    def _postings(self, value: Any, number: int) -> tuple[Posting, ...]:
        # Fast path for well-formed lines; any surprise is re-walked by _diagnose for a
        # precise message.
        postings = []
        totals: dict[str, int] = {}
        accounts, assets = self.accounts, self.assets
        try:
            for item in value:
                text = item["amount"]
                amount = int(text)
                account, asset = item["account"], item["asset"]
                if (
                    len(item) != 3
                    or account not in accounts
                    or asset not in assets
                    or str(amount) != text
                    or amount == 0
                    or not -UINT256_MAX <= amount <= UINT256_MAX
                ):
                    break
                totals[asset] = totals.get(asset, 0) + amount
                postings.append(Posting(account, asset, amount))
            else:
                if postings and not any(totals.values()):
                    return tuple(postings)
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


def _metadata(value: Any, number: int) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise _fail(number, "metadata must be an object of text values")
    if not value:
        return ()
    try:
        return make_metadata(value)
    except Rejected as exc:
        raise _fail(number, exc.message) from None
