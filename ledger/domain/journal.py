"""Journal values: accounts, postings, entry drafts and recorded entries, and their rules.

An amount is a signed integer of the asset's base units: positive is a debit, negative a
credit. Per entry and per asset the postings sum to zero.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from ledger.domain.money import UINT256_MAX, check_range
from ledger.errors import Reason, Rejected

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
# Every time is an instant in this window, in UTC after its offset is applied: the range of a
# Python datetime, so that any instant accepted can be shown in UTC, stored and read back.
# `9999-12-31T23:59:59-12:00` is 10000-01-01T11:59:59Z: outside, refused before any write.
MIN_TIME = datetime(1, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
MIN_MICROS = (MIN_TIME - EPOCH) // _MICRO
MAX_MICROS = (MAX_TIME - EPOCH) // _MICRO
MAX_SEQ = 2**63 - 1
"""The largest sequence number (a signed 64-bit column on both databases)."""

_BOOK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Colon-separated path parts, none empty (ledger-cli would merge "a::b" into "a:b").
_ACCOUNT = re.compile(r"^(?=.{1,128}$)[A-Za-z0-9][A-Za-z0-9_.@-]*(?::[A-Za-z0-9_.@-]+)*$")
_KIND = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_KEY_LENGTH = 256
MAX_METADATA_ITEMS = 64
MAX_METADATA_TEXT = 4096


class AccountType(StrEnum):
    """The five classic account types."""

    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    INCOME = "income"
    EXPENSE = "expense"


class BalanceRule(StrEnum):
    """A constraint on an account's balance, per asset, checked atomically with every write."""

    NONE = "none"
    NON_NEGATIVE = "non_negative"  # balance >= 0 (a holder cannot spend what they lack)
    NON_POSITIVE = "non_positive"  # balance <= 0 (a credit-normal account never turns debit)

    def allows(self, balance: int) -> bool:
        """Return whether `balance` satisfies this rule."""
        if self is BalanceRule.NON_NEGATIVE:
            return balance >= 0
        if self is BalanceRule.NON_POSITIVE:
            return balance <= 0
        return True


@dataclass(frozen=True, slots=True)
class Account:
    """An account of one book, opened explicitly before it is posted to."""

    book: str
    code: str
    type: AccountType
    rule: BalanceRule = BalanceRule.NONE

    def __post_init__(self) -> None:
        check_book(self.book)
        check_account_code(self.code)


@dataclass(frozen=True, slots=True)
class Posting:
    """One line of an entry: `amount` base units of `asset` to `account` (debit > 0)."""

    account: str
    asset: str
    amount: int


@dataclass(frozen=True, slots=True)
class EntryDraft:
    """What a caller asks to append: one economic event, not yet sequenced or chained.

    `metadata` is a sorted tuple of (key, value) text pairs. `reverses` is the sequence number
    of the entry this one corrects, if any.
    """

    book: str
    kind: str
    effective_at: datetime
    postings: tuple[Posting, ...]
    metadata: tuple[tuple[str, str], ...] = ()
    idempotency_key: str | None = None
    reverses: int | None = None


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """An appended entry: the draft plus its sequence number, record time and chain hashes."""

    draft: EntryDraft
    seq: int
    recorded_at: datetime
    prev_hash: bytes
    hash: bytes = field(repr=False)

    @property
    def book(self) -> str:
        return self.draft.book

    @property
    def postings(self) -> tuple[Posting, ...]:
        return self.draft.postings


def check_book(book: str) -> str:
    """Return `book` if it is a valid book code."""
    if not isinstance(book, str) or not _BOOK.match(book):
        raise Rejected(
            Reason.BAD_INPUT, f"book {book!r} must be 1-64 characters of A-Z a-z 0-9 _ . -"
        )
    return book


def check_account_code(code: str) -> str:
    """Return `code` if it is a valid account code."""
    if not isinstance(code, str) or not _ACCOUNT.match(code):
        raise Rejected(
            Reason.BAD_INPUT,
            f"account {code!r} must be 1-128 characters of A-Z a-z 0-9 _ . @ - in"
            " ':'-separated parts, none empty",
        )
    return code


def make_metadata(
    items: Mapping[str, str] | Iterable[tuple[str, str]],
) -> tuple[tuple[str, str], ...]:
    """Return metadata as sorted (key, value) text pairs, refusing non-text values."""
    pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
    if len(pairs) > MAX_METADATA_ITEMS:
        raise Rejected(Reason.BAD_INPUT, f"metadata has more than {MAX_METADATA_ITEMS} items")
    for key, value in pairs:
        if not isinstance(key, str) or not isinstance(value, str):
            raise Rejected(
                Reason.BAD_INPUT, f"metadata {key!r} must map text to text (got {value!r})"
            )
        if len(key) + len(value) > MAX_METADATA_TEXT:
            raise Rejected(Reason.BAD_INPUT, f"metadata {key!r} is too long")
        check_text(key, "metadata key")
        check_text(value, f"metadata {key!r}")
    result = tuple(sorted(pairs))
    if len({key for key, _ in result}) != len(result):
        raise Rejected(Reason.BAD_INPUT, "metadata has a repeated key")
    return result


def check_text(text: str, what: str) -> str:
    """Return `text` if it is valid Unicode text (encodable as UTF-8: no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Rejected(Reason.BAD_INPUT, f"{what} is not valid Unicode text") from exc
    return text


def to_micros(moment: datetime) -> int:
    """Return an aware datetime as integer microseconds since the Unix epoch (UTC).

    Refuses a naive time, and one whose UTC instant is outside MIN_TIME..MAX_TIME.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise Rejected(Reason.BAD_INPUT, f"time {moment.isoformat()} has no time zone")
    micros = (moment - EPOCH) // _MICRO
    if MIN_MICROS <= micros <= MAX_MICROS:  # the message below is built only when needed
        return micros
    return check_micros(micros, f"time {moment.isoformat()}")


def check_micros(micros: int, what: str = "time") -> int:
    """Return `micros` (since the Unix epoch) if it lies in MIN_TIME..MAX_TIME, else refuse."""
    if type(micros) is not int or not MIN_MICROS <= micros <= MAX_MICROS:
        raise Rejected(
            Reason.TIME_OUT_OF_RANGE,
            f"{what} is outside 0001-01-01T00:00:00Z..9999-12-31T23:59:59.999999Z (in UTC)",
        )
    return micros


def check_seq(seq: int, what: str = "sequence number", *, least: int = 1) -> int:
    """Return `seq` if it is an int in least..MAX_SEQ (2**63-1), else refuse."""
    if type(seq) is not int or not least <= seq <= MAX_SEQ:
        shown = seq if type(seq) is int and seq.bit_length() <= 1024 else "given"
        raise Rejected(Reason.BAD_INPUT, f"{what} {shown} must be {least}..{MAX_SEQ} (2**63-1)")
    return seq


def from_micros(micros: int) -> datetime:
    """Return integer microseconds since the Unix epoch as an aware UTC datetime."""
    return EPOCH + timedelta(microseconds=micros)


def _check_sorted_metadata(metadata: tuple[tuple[str, str], ...]) -> None:
    """Refuse metadata that `make_metadata` would not have produced exactly as given."""
    if not isinstance(metadata, tuple) or len(metadata) > MAX_METADATA_ITEMS:
        raise Rejected(Reason.BAD_INPUT, "metadata must be a tuple of pairs: use make_metadata")
    previous = None
    for pair in metadata:
        if type(pair) is not tuple or len(pair) != 2:
            raise Rejected(Reason.BAD_INPUT, "metadata must hold (key, value) pairs")
        key, value = pair
        if type(key) is not str or type(value) is not str:
            raise Rejected(Reason.BAD_INPUT, f"metadata {key!r} must map text to text")
        if previous is not None and key <= previous:
            raise Rejected(
                Reason.BAD_INPUT, "metadata must be sorted by unique key: use make_metadata"
            )
        if len(key) + len(value) > MAX_METADATA_TEXT:
            raise Rejected(Reason.BAD_INPUT, f"metadata {key!r} is too long")
        if not (key.isascii() and value.isascii()):
            check_text(key, "metadata key")
            check_text(value, f"metadata {key!r}")
        previous = key


def check_draft(draft: EntryDraft) -> EntryDraft:
    """Return `draft` if it is well formed and balanced per asset; otherwise refuse it."""
    check_book(draft.book)
    if not isinstance(draft.kind, str) or not _KIND.match(draft.kind):
        raise Rejected(Reason.BAD_INPUT, f"kind {draft.kind!r} must match [a-z][a-z0-9_.]*")
    to_micros(draft.effective_at)
    key = draft.idempotency_key
    if key is not None:
        if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH:
            raise Rejected(Reason.BAD_INPUT, f"key must be 1-{MAX_KEY_LENGTH} characters")
        check_text(key, "key")
        if _CONTROL.search(key):
            raise Rejected(Reason.BAD_INPUT, "key must not contain control characters")
    if draft.reverses is not None and (
        type(draft.reverses) is not int or not 1 <= draft.reverses <= MAX_SEQ
    ):
        raise Rejected(Reason.BAD_INPUT, f"reverses must name a sequence number 1..{MAX_SEQ}")
    if not draft.postings:
        raise Rejected(Reason.EMPTY_ENTRY, "an entry needs at least one posting")
    if draft.metadata:
        _check_sorted_metadata(draft.metadata)
    # Account codes are checked when accounts are opened; an entry may only post to opened
    # accounts, which the service checks, so the codes need no second pattern match here.
    totals: dict[str, int] = {}
    for posting in draft.postings:
        units = posting.amount
        if type(units) is not int:
            raise Rejected(Reason.BAD_INPUT, f"amount {units!r} is not an integer")
        if units == 0:
            raise Rejected(Reason.BAD_INPUT, f"posting to {posting.account} has amount zero")
        if units > UINT256_MAX or units < -UINT256_MAX:
            check_range(units)
        totals[posting.asset] = totals.get(posting.asset, 0) + units
    unbalanced = {asset: total for asset, total in totals.items() if total != 0}
    if unbalanced:
        detail = ", ".join(f"{asset} {total:+d}" for asset, total in sorted(unbalanced.items()))
        raise Rejected(Reason.UNBALANCED, f"postings do not sum to zero per asset: {detail}")
    return draft


def reversal_of(
    entry: JournalEntry, *, effective_at: datetime, key: str | None = None
) -> EntryDraft:
    """Return the draft of an entry that exactly undoes `entry` and points to it."""
    return EntryDraft(
        book=entry.draft.book,
        kind="reversal",
        effective_at=effective_at,
        postings=tuple(Posting(p.account, p.asset, -p.amount) for p in entry.draft.postings),
        metadata=(("reverses_kind", entry.draft.kind),),
        idempotency_key=key,
        reverses=entry.seq,
    )
