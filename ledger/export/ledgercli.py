"""A ledger-cli 3 journal of a book, so an auditor can re-check balances with `ledger` or `hledger`.

Mapping (docs/export-formats.md has the full rules):
- account: the type's root, then the code unchanged: `holder:alice` of type asset is
  `Assets:holder:alice` (our codes already use ':' as the hierarchy separator); only an empty
  component (`a::b`), which ledger-cli would drop, is written `_`;
- commodity: the asset code, double-quoted unless it is letters only (`USDT`, `"BTC3L"`,
  `"BTC1.5L"`): a bare symbol with digits or '.' would be read as part of the number;
- amount: the exact decimal at the asset's scale (`1.000000000000000000 "BTC3L"`); both tools
  use arbitrary precision, so 18 decimals and amounts near 2**256-1 stay exact;
- entry: dated by its effective time (UTC day), payee `#seq kind`; key, reverses and metadata
  (as compact JSON) are `; tag: value` comments. The lossless export is JSON Lines.

Every account, commodity and tag is declared, so `ledger --pedantic` and `hledger --strict` pass.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from json.encoder import encode_basestring_ascii
from typing import TextIO

from ledger.domain.journal import Account, AccountType, JournalEntry, to_micros
from ledger.domain.money import Asset, format_units
from ledger.errors import Reason, Rejected

ROOT_NAMES: dict[AccountType, str] = {
    AccountType.ASSET: "Assets",
    AccountType.LIABILITY: "Liabilities",
    AccountType.EQUITY: "Equity",
    AccountType.INCOME: "Income",
    AccountType.EXPENSE: "Expenses",
}
"""The top-level account each account type is filed under (the names both tools expect)."""

TAGS = ("key", "reverses", "meta")
LEDGER_MIN_YEAR = 1400  # ledger-cli: "Year is out of valid range: 1400..9999"

_json = encode_basestring_ascii  # a JSON string literal on one line, ASCII only
_BARE_COMMODITY = re.compile(r"[A-Za-z]+")
_MICROS_PER_DAY = 86_400_000_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def ledger_accounts(accounts: Sequence[Account]) -> dict[str, str]:
    """Return each account code's ledger-cli name: its type's root, ':' and its code.

    ledger-cli drops empty components (`a::b` is shown as `a:b`), so each empty component
    becomes `_`; should that make two names equal, both get a digest suffix (`unique_names`).
    """
    candidates = {
        a.code: f"{ROOT_NAMES[a.type]}:" + ":".join(part or "_" for part in a.code.split(":"))
        for a in accounts
    }
    return unique_names(candidates, lambda code: "-" + digest(code), "account")


def digest(code: str) -> str:
    """Return the first 8 hex digits of SHA-256 of `code` (UTF-8), to tell clashing names apart."""
    return hashlib.sha256(code.encode()).hexdigest()[:8]


def unique_names(
    candidates: dict[str, str], suffix: Callable[[str], str], what: str
) -> dict[str, str]:
    """Return code -> name, appending `suffix(code)` to every name two or more codes share."""
    counts = Counter(candidates.values())
    names = {
        code: name + suffix(code) if counts[name] > 1 else name for code, name in candidates.items()
    }
    if len(set(names.values())) != len(names):
        raise Rejected(Reason.BAD_INPUT, f"cannot give every {what} a distinct name in the export")
    return names


def ledger_commodity(code: str) -> str:
    """Return the ledger-cli symbol of an asset code, double-quoted unless letters only."""
    return code if _BARE_COMMODITY.fullmatch(code) else f'"{code}"'


def metadata_json(metadata: Sequence[tuple[str, str]]) -> str:
    """Return sorted metadata pairs as one line of compact, ASCII-only JSON (an object)."""
    return "{" + ",".join(f"{_json(k)}:{_json(v)}" for k, v in metadata) + "}"


LEDGER_LINE_LIMIT = 4096
"""ledger-cli refuses a journal line longer than this ("Line exceeds 4096 characters")."""
_META_ROOM = LEDGER_LINE_LIMIT - len("    ; meta: ") - 1


def metadata_lines(metadata: Sequence[tuple[str, str]]) -> list[str]:
    """Return metadata as `metadata_json` objects, one per line, each short enough for
    ledger-cli: one object when it fits, else consecutive pairs per line (a batch's fills
    run to many kilobytes); the objects' union is the metadata."""
    whole = metadata_json(metadata)
    if len(whole) <= _META_ROOM:
        return [whole]
    found: list[str] = []
    group: list[tuple[str, str]] = []
    for pair in metadata:
        if group and len(metadata_json([*group, pair])) > _META_ROOM:
            found.append(metadata_json(group))
            group = []
        group.append(pair)
    found.append(metadata_json(group))
    return found


def day_of(micros: int) -> date:
    """Return the UTC calendar day of a time in microseconds since the Unix epoch."""
    return date.fromordinal(_EPOCH_ORDINAL + micros // _MICROS_PER_DAY)


def write_ledger(
    out: TextIO,
    *,
    book: str,
    assets: Sequence[Asset],
    accounts: Sequence[Account],
    entries: Iterable[JournalEntry],
) -> int:
    """Write `book` as a ledger-cli journal to `out`; return the number of entries written.

    Amounts are written exactly (no rounding) at their asset's scale.

    Raises:
        Rejected: an entry of another book, or a posting to an account or asset not given.
    """
    names = ledger_accounts(accounts)
    units = {a.code: (a.scale, ledger_commodity(a.code)) for a in assets}
    _write_declarations(out, book=book, names=names, units=units)
    dates: dict[int, str] = {}
    count = 0
    for entry in entries:
        if entry.draft.book != book:
            raise Rejected(
                Reason.BAD_INPUT, f"entry {entry.seq} belongs to book {entry.draft.book!r}"
            )
        out.write(_entry_text(entry, names=names, units=units, dates=dates))
        count += 1
    return count


def _write_declarations(
    out: TextIO, *, book: str, names: dict[str, str], units: dict[str, tuple[int, str]]
) -> None:
    lines = [
        f"; token-ledger book {book}: ledger-cli journal (see docs/export-formats.md)",
        "; Amounts are exact; dates are the UTC day of each entry's effective time.",
        "",
        *(f"account {name}" for name in sorted(names.values())),
        *(f"commodity {symbol}" for _, symbol in sorted(units.values(), key=_symbol)),
        *(f"tag {tag}" for tag in TAGS),
        "",
    ]
    out.write("\n".join(lines) + "\n")


def _symbol(unit: tuple[int, str]) -> str:
    return unit[1]


def _entry_text(
    entry: JournalEntry,
    *,
    names: dict[str, str],
    units: dict[str, tuple[int, str]],
    dates: dict[int, str],
) -> str:
    draft = entry.draft
    micros = to_micros(draft.effective_at)
    day = micros // _MICROS_PER_DAY
    if day not in dates:  # Consecutive entries mostly share a day: format each day once.
        moment = day_of(micros)
        if moment.year < LEDGER_MIN_YEAR:
            raise Rejected(
                Reason.BAD_INPUT,
                f"entry {entry.seq} is dated {moment.isoformat()}: ledger-cli reads only years"
                f" {LEDGER_MIN_YEAR}-9999 (export it as jsonl or beancount)",
            )
        # Not strftime("%Y"): it does not pad years before 1000 to four digits.
        dates[day] = f"{moment.year:04d}/{moment.month:02d}/{moment.day:02d}"
    lines = [f"{dates[day]} #{entry.seq} {draft.kind}"]
    if draft.idempotency_key is not None:
        lines.append(f"    ; key: {_json(draft.idempotency_key)}")
    if draft.reverses is not None:
        lines.append(f"    ; reverses: {draft.reverses}")
    if draft.metadata:
        lines.extend(f"    ; meta: {text}" for text in metadata_lines(draft.metadata))
    for posting in draft.postings:
        unit, name = units.get(posting.asset), names.get(posting.account)
        if unit is None or name is None:
            raise _unknown(entry.seq, account=posting.account, known=name is not None)
        lines.append(f"    {name}  {format_units(posting.amount, unit[0])} {unit[1]}")
    lines.append("\n")
    return "\n".join(lines)


def _unknown(seq: int, *, account: str, known: bool) -> Rejected:
    if known:
        return Rejected(Reason.UNKNOWN_ASSET, f"entry {seq} posts an asset not given to the export")
    return Rejected(
        Reason.UNKNOWN_ACCOUNT, f"entry {seq} posts to {account!r}, not given to the export"
    )
