"""A beancount v3 file of a book, so an auditor can re-check balances with `bean-check`.

Beancount is stricter about names than our codes, so both are mapped deterministically (the
mapping is a function of the book's account or asset list; docs/export-formats.md has the rules):
- account: the type's root (`Assets`, `Liabilities`, `Equity`, `Income`, `Expenses`), then each
  ':' component with '_', '.', '@' turned into '-', its first letter upper-cased, and 'X'
  prefixed if it would not start with a letter or digit:
  `holder:bob@x.io` of type asset -> `Assets:Holder:Bob-x-io`;
- commodity: the asset code unchanged (our codes are valid beancount currencies) unless it
  ends in '.', '_' or '-', which beancount refuses; then 'X' is appended;
- two codes that map to the same name both get '-' and the first 8 hex digits of the sha256 of
  their code appended, so the mapping stays one-to-one; the `open` and `commodity` directives
  carry the original code as metadata `code`.

Amounts are exact decimals at the asset's scale. Beancount computes with Python's Decimal in
the default context (28 significant digits): amounts or sums beyond 28 digits are rounded
(see the docs for how to check such books exactly). The lossless export is JSON Lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date
from typing import TextIO

from ledger.domain.journal import Account, JournalEntry, to_micros
from ledger.domain.money import Asset, format_units
from ledger.errors import Reason, Rejected
from ledger.export.ledgercli import ROOT_NAMES, day_of, digest, metadata_json, unique_names

_CURRENCY = re.compile(r"[A-Z](?:[A-Z0-9'._-]*[A-Z0-9])?")
_NOT_NAME_CHAR = re.compile(r"[^A-Za-z0-9-]")
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def beancount_string(text: str) -> str:
    """Return `text` as a beancount double-quoted string literal (C-style escapes)."""
    return '"' + text.translate(_STRING_ESCAPES) + '"'


def beancount_accounts(accounts: Sequence[Account]) -> dict[str, str]:
    """Return each account code's beancount name; one-to-one over `accounts`."""
    candidates = {a.code: f"{ROOT_NAMES[a.type]}:{_account_path(a.code)}" for a in accounts}
    return unique_names(candidates, lambda code: "-" + digest(code), "account")


def beancount_commodities(assets: Sequence[Asset]) -> dict[str, str]:
    """Return each asset code's beancount currency; one-to-one over `assets`."""
    candidates = {a.code: a.code if _CURRENCY.fullmatch(a.code) else a.code + "X" for a in assets}
    return unique_names(candidates, lambda code: "-" + digest(code).upper(), "asset")


def _account_path(code: str) -> str:
    return ":".join(_component(part) for part in code.split(":"))


def _component(part: str) -> str:
    name = _NOT_NAME_CHAR.sub("-", part)
    if not name or not name[0].isalnum():
        return "X" + name
    return name[0].upper() + name[1:]


def write_beancount(
    out: TextIO,
    *,
    book: str,
    assets: Sequence[Asset],
    accounts: Sequence[Account],
    entries: Iterable[JournalEntry],
) -> int:
    """Write `book` as a beancount v3 file to `out`; return the number of entries written.

    Amounts are written exactly (no rounding) at their asset's scale. The `open` and
    `commodity` directives come last, dated at the earliest entry (beancount sorts by date),
    so the entries stream through once.

    Raises:
        Rejected: an entry of another book, or a posting to an account or asset not given.
    """
    names = beancount_accounts(accounts)
    currencies = beancount_commodities(assets)
    units = {a.code: (a.scale, currencies[a.code]) for a in assets}
    out.write(
        f"; token-ledger book {book}: beancount v3 file (see docs/export-formats.md)\n"
        "; Amounts are exact; dates are the UTC day of each entry's effective time.\n"
        "; The open and commodity directives are at the end, dated at the first entry.\n"
        "; bean-check keeps 28 significant digits: for larger amounts use Decimal precision\n"
        "; 100 (docs/export-formats.md gives the command).\n"
        f'option "title" {beancount_string("token-ledger book " + book)}\n\n'
    )
    first_us: int | None = None
    count = 0
    for entry in entries:
        if entry.draft.book != book:
            raise Rejected(
                Reason.BAD_INPUT, f"entry {entry.seq} belongs to book {entry.draft.book!r}"
            )
        micros = to_micros(entry.draft.effective_at)
        first_us = micros if first_us is None or micros < first_us else first_us
        out.write(_entry_text(entry, day_of(micros), names=names, units=units))
        count += 1
    opened = date(1970, 1, 1) if first_us is None else day_of(first_us)
    _write_directives(out, opened, accounts=accounts, names=names, assets=assets, units=units)
    return count


def _entry_text(
    entry: JournalEntry,
    day: date,
    *,
    names: dict[str, str],
    units: dict[str, tuple[int, str]],
) -> str:
    draft = entry.draft
    lines = [f"{day.isoformat()} * {beancount_string(f'#{entry.seq} {draft.kind}')}"]
    if draft.idempotency_key is not None:
        lines.append(f"  key: {beancount_string(draft.idempotency_key)}")
    if draft.reverses is not None:
        lines.append(f'  reverses: "{draft.reverses}"')
    if draft.metadata:
        lines.append(f"  meta: {beancount_string(metadata_json(draft.metadata))}")
    for posting in draft.postings:
        unit, name = units.get(posting.asset), names.get(posting.account)
        if unit is None or name is None:
            missing = posting.asset if unit is None else posting.account
            raise Rejected(
                Reason.UNKNOWN_ASSET if unit is None else Reason.UNKNOWN_ACCOUNT,
                f"entry {entry.seq} posts to {missing!r}, which was not given to the export",
            )
        lines.append(f"  {name}  {format_units(posting.amount, unit[0])} {unit[1]}")
    lines.append("\n")
    return "\n".join(lines)


def _write_directives(
    out: TextIO,
    opened: date,
    *,
    accounts: Sequence[Account],
    names: dict[str, str],
    assets: Sequence[Asset],
    units: dict[str, tuple[int, str]],
) -> None:
    lines = []
    for asset in sorted(assets, key=lambda a: units[a.code][1]):
        lines.append(f"{opened.isoformat()} commodity {units[asset.code][1]}")
        lines.append(f"  code: {beancount_string(asset.code)}")
        lines.append(f'  scale: "{asset.scale}"')
    for account in sorted(accounts, key=lambda a: names[a.code]):
        lines.append(f"{opened.isoformat()} open {names[account.code]}")
        lines.append(f"  code: {beancount_string(account.code)}")
        lines.append(f'  rule: "{account.rule.value}"')
    out.write("\n".join(lines) + "\n")
