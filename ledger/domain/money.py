"""Exact money: integers of base units with a known scale, and divisions that name their rounding.

Text and `Decimal` are converted only here, at the edge: `parse_units("1.25", 6) == 1_250_000`
and `format_units(1_250_000, 6) == "1.250000"`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from ledger.errors import Reason, Rejected

UINT256_MAX = 2**256 - 1
"""The largest magnitude any single amount or balance may take (an ERC-20 uint256)."""

MAX_SCALE = 36

MAX_DIGITS = len(str(UINT256_MAX))
"""78: the most significant digits an amount in range can have; checked on the text, before
int() (which refuses more than 4,300 digits with an error of its own)."""

_CODE = re.compile(r"^[A-Z][A-Z0-9._-]{0,31}$")
# ASCII digits only: `\d` and int() also accept other scripts' digits ("٥" is 5).
_DECIMAL = re.compile(r"^(-)?([0-9]+)(?:\.([0-9]+))?$", re.ASCII)
_INTEGER = re.compile(r"^-?[0-9]+$", re.ASCII)


class Rounding(Enum):
    """How a division treats its remainder."""

    DOWN = "down"  # toward negative infinity (floor)
    UP = "up"  # toward positive infinity (ceiling)
    HALF_EVEN = "half_even"


@dataclass(frozen=True, slots=True)
class Asset:
    """A unit of account with a fixed number of decimals (`scale`)."""

    code: str
    scale: int

    def __post_init__(self) -> None:
        check_asset_code(self.code)
        if not 0 <= self.scale <= MAX_SCALE:
            raise Rejected(Reason.BAD_INPUT, f"decimals must be 0..{MAX_SCALE}, got {self.scale}")


def check_asset_code(code: str) -> str:
    """Return `code` if it is a valid asset code (upper case, digits, `._-`, <= 32 chars)."""
    if not _CODE.match(code):
        raise Rejected(
            Reason.BAD_INPUT,
            f"asset code {code!r} must be 1-32 characters of A-Z, 0-9, '.', '_', '-'"
            " starting with a letter",
        )
    return code


def check_range(units: int, what: str = "amount") -> int:
    """Return `units` if its magnitude fits a uint256, else refuse."""
    if -UINT256_MAX <= units <= UINT256_MAX:
        return units
    # str() of an int beyond 4,300 digits raises: name its size instead of its digits.
    shown = str(units) if units.bit_length() <= 1024 else f"of {units.bit_length()} bits"
    raise Rejected(Reason.AMOUNT_OUT_OF_RANGE, f"{what} {shown} exceeds the uint256 range")


def parse_int(text: str, what: str = "amount") -> int:
    """Parse a decimal integer string of base units (no float, no exponent, no separators).

    More than `MAX_DIGITS` significant digits is `amount_out_of_range`, decided on the text.
    """
    if not isinstance(text, str) or not _INTEGER.match(text.strip()):
        raise Rejected(
            Reason.BAD_INPUT, f"{what} must be a decimal integer string, got {_short(text)}"
        )
    stripped = text.strip()
    sign, digits = ("-", stripped[1:]) if stripped.startswith("-") else ("", stripped)
    return check_range(int(sign + _significant(digits, what)), what)


def _significant(digits: str, what: str) -> str:
    """Return ASCII `digits` without leading zeros; refuse more than MAX_DIGITS of them."""
    significant = digits.lstrip("0") or "0"
    if len(significant) > MAX_DIGITS:
        raise Rejected(
            Reason.AMOUNT_OUT_OF_RANGE,
            f"{what} has {len(significant)} digits: beyond the uint256 range"
            f" ({MAX_DIGITS} digits at most)",
        )
    return significant


def _short(value: object, limit: int = 80) -> str:
    """Return repr(value) cut to about `limit` characters, for one-line messages."""
    try:
        text = repr(value)
    except ValueError:  # an int beyond 4,300 digits
        return f"a {type(value).__name__} too long to show"
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-1]}"


def parse_units(text: str, scale: int, what: str = "amount") -> int:
    """Convert a decimal string such as "1.25" to base units at `scale`; refuse lost digits."""
    if not isinstance(text, str):
        raise Rejected(Reason.BAD_INPUT, f"{what} must be a decimal string, got {_short(text)}")
    match = _DECIMAL.match(text.strip())
    if not match:
        raise Rejected(Reason.BAD_INPUT, f"{what} must be a decimal number, got {_short(text)}")
    sign, whole, frac = match.group(1), match.group(2), match.group(3) or ""
    frac = frac.rstrip("0")
    if len(frac) > scale:
        raise Rejected(
            Reason.BAD_INPUT, f"{what} {_short(text)} has more than {scale} decimal places"
        )
    units = int(_significant(whole, what)) * 10**scale + (
        int(frac) * 10 ** (scale - len(frac)) if frac else 0
    )
    return check_range(-units if sign else units, what)


def format_units(units: int, scale: int) -> str:
    """Render base units as a decimal string with exactly `scale` decimals."""
    sign = "-" if units < 0 else ""
    magnitude = -units if units < 0 else units
    if scale == 0:
        return f"{sign}{magnitude}"
    whole, frac = divmod(magnitude, 10**scale)
    return f"{sign}{whole}.{frac:0{scale}d}"


def div_round(numerator: int, denominator: int, rounding: Rounding) -> int:
    """Divide two integers exactly, rounding as named."""
    if denominator == 0:
        raise ZeroDivisionError("division by zero")
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    quotient, remainder = divmod(numerator, denominator)
    if remainder == 0 or rounding is Rounding.DOWN:
        return quotient
    if rounding is Rounding.UP:
        return quotient + 1
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        return quotient + 1
    return quotient


def mul_div(a: int, b: int, c: int, rounding: Rounding) -> int:
    """Return a * b / c, rounded as named, with no intermediate rounding."""
    return div_round(a * b, c, rounding)
