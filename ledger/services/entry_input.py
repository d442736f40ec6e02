"""The JSON form of one entry, as `token-ledger post` reads it (documented in docs/cli.md).

    {"book": "main", "kind": "transfer", "key": "payout-0001",
     "effective_at": "2020-03-12T00:00:00Z", "metadata": {"memo": "March payout"},
     "postings": [{"account": "assets:bank", "asset": "USDT", "amount": "-2500000"},
                  {"account": "expenses:payroll", "asset": "USDT", "amount": "2500000"}]}

Amounts are decimal strings of base units (never JSON numbers, never floats).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ledger.domain.journal import EntryDraft, Posting, make_metadata
from ledger.domain.money import parse_int
from ledger.errors import Reason, Rejected


class PostingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    account: str
    asset: str
    amount: str


class EntrySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    book: str
    kind: str
    key: str | None = None
    effective_at: datetime
    metadata: dict[str, str] = {}
    postings: list[PostingSpec]

    @field_validator("effective_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("effective_at needs a time zone, e.g. 2020-03-12T00:00:00Z")
        return value


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 time with a zone ('Z' or an offset); refuse a naive one."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError as exc:
        raise Rejected(Reason.BAD_INPUT, f"not an ISO 8601 time: {text!r}") from exc
    if moment.tzinfo is None:
        raise Rejected(Reason.BAD_INPUT, f"time {text!r} needs a zone, e.g. {text}Z")
    return moment


def draft_from_json(text: str) -> EntryDraft:
    """Return the draft described by one JSON object, or refuse with a one-line reason."""
    try:
        raw: Any = json.loads(text, parse_float=_no_float)
    except json.JSONDecodeError as exc:
        raise Rejected(Reason.BAD_INPUT, f"not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    try:
        spec = EntrySpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "entry"
        raise Rejected(Reason.BAD_INPUT, f"{where}: {first['msg']}") from exc
    return EntryDraft(
        book=spec.book,
        kind=spec.kind,
        effective_at=spec.effective_at,
        postings=tuple(
            Posting(p.account, p.asset, parse_int(p.amount, f"postings[{i}].amount"))
            for i, p in enumerate(spec.postings)
        ),
        metadata=make_metadata(spec.metadata),
        idempotency_key=spec.key,
    )


def _no_float(text: str) -> Any:
    raise Rejected(Reason.BAD_INPUT, f"number {text} is a float: amounts are decimal strings")
