"""The two kinds of failure: a refused request (`Rejected`) and a broken invariant.

`Rejected` is expected, carries a stable `Reason` code, is shown to the user and makes the
CLI exit with status 2. `InvariantViolation` means our code or our data is wrong: roll back
and stop, never catch it and continue.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NoReturn


class Reason(StrEnum):
    """Stable codes for refused requests; scripts may match on them."""

    BAD_INPUT = "bad_input"
    UNBALANCED = "unbalanced"
    EMPTY_ENTRY = "empty_entry"
    AMOUNT_OUT_OF_RANGE = "amount_out_of_range"
    UNKNOWN_ASSET = "unknown_asset"
    UNKNOWN_ACCOUNT = "unknown_account"
    UNKNOWN_BOOK = "unknown_book"
    UNKNOWN_ENTRY = "unknown_entry"
    DUPLICATE = "duplicate"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    BALANCE_CONSTRAINT = "balance_constraint"
    ALREADY_REVERSED = "already_reversed"
    SCHEMA_NOT_INITIALISED = "schema_not_initialised"
    SCHEMA_VERSION = "schema_version"
    BUSY = "busy"
    UNAVAILABLE = "unavailable"
    INSUFFICIENT_SHARES = "insufficient_shares"
    BELOW_MINIMUM = "below_minimum"
    FUND_WIPED_OUT = "fund_wiped_out"
    UNKNOWN_PRODUCT = "unknown_product"
    BAD_PRODUCT_NAME = "bad_product_name"
    NO_PRICE = "no_price"
    CHAIN = "chain"
    FUND_BOOK = "fund_book"
    STALE_PRICE = "stale_price"
    UNKNOWN_SYMBOL = "unknown_symbol"
    FUND_CLOSED = "fund_closed"
    TIME_OUT_OF_RANGE = "time_out_of_range"
    BAD_ENCODING = "bad_encoding"
    TRUNCATED_EXPORT = "truncated_export"
    TRAILER_MISMATCH = "trailer_mismatch"
    HASH_MISMATCH = "hash_mismatch"


class LedgerError(Exception):
    """Root of every error token-ledger raises on purpose; carries context."""

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context


class Rejected(LedgerError):
    """The request is refused; nothing was written.

    `retryable` is true when the same request may succeed later unchanged (a busy database).
    """

    def __init__(
        self, reason: Reason, message: str, *, retryable: bool = False, **context: Any
    ) -> None:
        super().__init__(message, **context)
        self.reason = reason
        self.retryable = retryable

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.message}"


class InvariantViolation(LedgerError):
    """Our code or data is wrong. Roll back and stop."""


def invariant(condition: bool, message: str, **context: Any) -> None:
    """Raise `InvariantViolation` unless `condition` holds; stays on under `python -O`."""
    if not condition:
        _fail(message, context)


def _fail(message: str, context: dict[str, Any]) -> NoReturn:
    raise InvariantViolation(message, **context)
