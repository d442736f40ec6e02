"""The shape of the entry JSON `post` reads, as pydantic models (strict, no extra fields).

A module of its own so that pydantic is imported only by the commands that parse an entry.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class PostingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    account: str
    asset: str
    amount: str


class EntrySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    book: str
    kind: str
    key: str | None = None
    # Text parsed by `parse_time`: pydantic alone would read 1584000000 as Unix seconds and
    # silently drop fractional digits beyond the microsecond.
    effective_at: str
    metadata: dict[str, str] = {}
    postings: list[PostingSpec]


def entry_spec_of(raw: Any) -> EntrySpec:
    """Return the entry JSON value `raw` validated (pydantic's ValidationError if it is not)."""
    return EntrySpec.model_validate(raw)
