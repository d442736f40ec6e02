"""A JSON document from a file or stdin, checked before it is parsed: size, UTF-8, nesting,
no floats (amounts are decimal strings), no key given twice. One-line refusals."""

from __future__ import annotations

import json
from typing import Any

from ledger.errors import Reason, Rejected
from ledger.services.entry_input import (
    MAX_JSON_DEPTH,
    check_json_shape,
    no_float,
    no_repeats,
)

MAX_DOCUMENT_BYTES = 16 << 20
"""The largest JSON document a command reads (a batch of orders): 16 MiB."""


def load_document(data: bytes, what: str, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> Any:
    """Return the JSON value in `data` (UTF-8), or refuse naming `what` and the problem."""
    if len(data) > max_bytes:
        raise Rejected(Reason.BAD_INPUT, f"{what} is larger than {max_bytes} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(
            Reason.BAD_ENCODING, f"{what} is not UTF-8 text (byte {exc.start} is invalid)"
        ) from None
    check_json_shape(text, max_bytes=max_bytes, max_depth=MAX_JSON_DEPTH)
    try:
        return json.loads(text, parse_float=no_float, object_pairs_hook=no_repeats)
    except json.JSONDecodeError as exc:
        raise Rejected(
            Reason.BAD_INPUT, f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}"
        ) from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise Rejected(Reason.BAD_INPUT, f"{what}: {exc}") from None
