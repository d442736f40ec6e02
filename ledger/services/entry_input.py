"""The JSON form of one entry, as `token-ledger post` reads it (documented in docs/cli.md).

    {"book": "main", "kind": "transfer", "key": "payout-0001",
     "effective_at": "2020-03-12T00:00:00Z", "metadata": {"memo": "March payout"},
     "postings": [{"account": "assets:bank", "asset": "USDT", "amount": "-2500000"},
                  {"account": "expenses:payroll", "asset": "USDT", "amount": "2500000"}]}

Amounts are strings of ASCII digits in base units (never JSON numbers, never floats). Times are
ISO 8601 strings with a zone, to the microsecond, whose UTC instant lies in
0001-01-01T00:00:00Z..9999-12-31T23:59:59.999999Z. A key repeated inside one JSON object is
refused (JSON parsers would silently keep the last one).

Limits checked before the JSON is parsed (docs/cli.md): at most MAX_ENTRY_BYTES of UTF-8,
nested at most MAX_JSON_DEPTH deep (a valid entry is 3 deep), no JSON number longer than
MAX_NUMBER_DIGITS characters (int() of thousands of digits is slow, then refused).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.domain.journal import EntryDraft, Posting, make_metadata, to_micros
from ledger.domain.money import MAX_DIGITS, parse_int
from ledger.errors import Reason, Rejected

MAX_ENTRY_BYTES = 1 << 20
"""1 MiB: the largest entry `post` reads (a valid entry with 64 metadata items of 4 KiB and a
thousand postings is well under it)."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of JSON arrays and objects accepted (a valid entry is 3 deep)."""
MAX_NUMBER_DIGITS = MAX_DIGITS + 1

# ASCII digits only: a regex `\d` and int() also take other scripts' digits ("٥" is 5).
_AMOUNT = re.compile(r"-?[0-9]+", re.ASCII)
# The fractional seconds of an ISO 8601 time, to refuse more than six digits.
_FRACTION = re.compile(r"\d[T ]\d\d:?\d\d:?\d\d[.,](\d+)", re.ASCII)
# A JSON string literal (escapes included), removed before brackets are counted.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
MAX_TIME_TEXT = 64
DEFAULT_MAX_SKEW = timedelta(days=7)
"""How far ahead of the clock an effective or price time may be, unless configured."""


def parse_time(text: str, *, not_after: datetime | None = None) -> datetime:
    """Parse an ISO 8601 time with a zone ('Z' or an offset); refuse a naive or finer one.

    Times are kept to the microsecond; more fractional digits are refused, never truncated.
    With `not_after` (the clock plus the allowed skew, see `latest_time`), a later time is
    refused with TIME_OUT_OF_RANGE.
    """
    if not isinstance(text, str):
        raise Rejected(Reason.BAD_INPUT, f"time must be an ISO 8601 string, got {text!r}")
    if len(text) > MAX_TIME_TEXT:
        raise Rejected(Reason.BAD_INPUT, f"not an ISO 8601 time: {text[:20]!r}... is too long")
    fraction = _FRACTION.search(text)
    if fraction is not None and len(fraction.group(1)) > 6:
        raise Rejected(Reason.BAD_INPUT, f"time {text!r} is finer than a microsecond")
    try:
        moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError as exc:
        raise Rejected(Reason.BAD_INPUT, f"not an ISO 8601 time: {text!r}") from exc
    if moment.tzinfo is None:
        example = moment.isoformat() + "Z"
        raise Rejected(Reason.BAD_INPUT, f"time {text!r} needs a zone, e.g. {example}")
    to_micros(moment)  # its UTC instant must lie in the window (refused here, never written)
    if not_after is not None and moment > not_after:
        raise Rejected(
            Reason.TIME_OUT_OF_RANGE,
            f"time {text} is ahead of the clock by more than the allowed skew"
            f" (latest {_utc(not_after)}; see --max-skew)",
        )
    return moment


def latest_time(now: datetime, skew: timedelta | None) -> datetime | None:
    """Return the latest time accepted at `now` with `skew` (None: no bound), capped at the
    end of the window."""
    if skew is None:
        return None
    try:
        return now.astimezone(UTC) + skew
    except OverflowError:
        return None


def parse_skew(text: str) -> timedelta | None:
    """Return the skew in `text`: whole seconds 0..10^9, or 'off' for no bound."""
    value = text.strip().lower()
    if value in ("off", "none"):
        return None
    if not re.fullmatch(r"[0-9]{1,10}", value, re.ASCII) or int(value) > 10**9:
        raise Rejected(
            Reason.BAD_INPUT, f"--max-skew must be whole seconds (0..10^9) or 'off', got {text!r}"
        )
    return timedelta(seconds=int(value))


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def entry_from_bytes(data: bytes, *, not_after: datetime | None = None) -> EntryDraft:
    """Return the draft described by UTF-8 JSON `data` (at most MAX_ENTRY_BYTES), or refuse."""
    return draft_from_json(utf8_text(data, "entry", MAX_ENTRY_BYTES), not_after=not_after)


def utf8_text(data: bytes, what: str, max_bytes: int) -> str:
    """Return `data` decoded as UTF-8, or refuse: larger than `max_bytes` (`bad_input`), or
    not UTF-8 (`bad_encoding`, naming the first bad byte)."""
    if len(data) > max_bytes:
        raise Rejected(Reason.BAD_INPUT, f"{what} is larger than {max_bytes} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(
            Reason.BAD_ENCODING, f"{what} is not UTF-8 text (byte {exc.start} is invalid)"
        ) from None


def check_json_shape(text: str, *, max_bytes: int, max_depth: int) -> None:
    """Refuse JSON text of more than `max_bytes` characters or nested deeper than `max_depth`.

    A cheap scan before json.loads, whose recursion a deeply nested input would exhaust.
    """
    if len(text) > max_bytes:
        raise Rejected(Reason.BAD_INPUT, f"entry is longer than {max_bytes} characters")
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    depth = deepest = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > max_depth:
                    raise Rejected(
                        Reason.BAD_INPUT, f"JSON is nested deeper than {max_depth} levels"
                    )
        else:
            depth -= 1


def draft_from_json(text: str, *, not_after: datetime | None = None) -> EntryDraft:
    """Return the draft described by one JSON object, or refuse with a one-line reason."""
    check_json_shape(text, max_bytes=MAX_ENTRY_BYTES, max_depth=MAX_JSON_DEPTH)
    try:
        raw: Any = json.loads(
            text, parse_float=no_float, parse_int=_short_int, object_pairs_hook=no_repeats
        )
    except json.JSONDecodeError as exc:
        raise Rejected(Reason.BAD_INPUT, f"not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    except RecursionError:  # not reached after check_json_shape; kept as a second guard
        raise Rejected(Reason.BAD_INPUT, "JSON is nested too deeply") from None
    from pydantic import ValidationError  # imported by `post` only (start-up time)

    from ledger.services.entry_spec import entry_spec_of

    try:
        spec = entry_spec_of(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "entry"
        raise Rejected(Reason.BAD_INPUT, f"{where}: {first['msg']}") from exc
    try:
        effective_at = parse_time(spec.effective_at, not_after=not_after)
    except Rejected as exc:
        raise Rejected(exc.reason, f"effective_at: {exc.message}") from exc
    return EntryDraft(
        book=spec.book,
        kind=spec.kind,
        effective_at=effective_at,
        postings=tuple(
            Posting(p.account, p.asset, _amount(p.amount, f"postings[{i}].amount"))
            for i, p in enumerate(spec.postings)
        ),
        metadata=make_metadata(spec.metadata),
        idempotency_key=spec.key,
    )


def _amount(text: str, what: str) -> int:
    """Return the base units in `text`, which must be ASCII digits with an optional '-'."""
    if not _AMOUNT.fullmatch(text):
        raise Rejected(
            Reason.BAD_INPUT, f"{what} must be a string of ASCII digits (base units), got {text!r}"
        )
    return parse_int(text, what)


def no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a JSON object, refusing a key given twice (json would keep the last silently)."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise Rejected(Reason.BAD_INPUT, f"key {key!r} appears twice in one JSON object")
        result[key] = value
    return result


def _short_int(text: str) -> int:
    if len(text) > MAX_NUMBER_DIGITS:
        raise Rejected(
            Reason.BAD_INPUT,
            f"a JSON number of {len(text)} digits (amounts are strings, at most {MAX_DIGITS})",
        )
    return int(text)


def no_float(text: str) -> Any:
    raise Rejected(Reason.BAD_INPUT, f"number {text} is a float: amounts are decimal strings")
