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
    utf8_text,
)

MAX_DOCUMENT_BYTES = 16 << 20
"""The largest JSON document a command reads (a batch of orders): 16 MiB."""


def load_document(data: bytes, what: str, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> Any:
    """Return the JSON value in `data` (UTF-8), or refuse naming `what` and the problem."""
    text = utf8_text(data, what, max_bytes)
    check_json_shape(text, max_bytes=max_bytes, max_depth=MAX_JSON_DEPTH)
    try:
        return json.loads(text, parse_float=no_float, object_pairs_hook=no_repeats)
    except json.JSONDecodeError as exc:
        raise Rejected(
            Reason.BAD_INPUT, f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}"
        ) from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise Rejected(Reason.BAD_INPUT, f"{what}: {exc}") from None
