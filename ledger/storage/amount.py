"""An integer column that keeps the whole uint256 range exact on SQLite and PostgreSQL.

PostgreSQL stores NUMERIC(78, 0): 78 digits hold any uint256 (2**256 - 1 has 78 digits).
SQLite has no such type: NUMERIC affinity turns big values into REAL (15 digits) and INTEGER
stops at 2**63 - 1 (9.2 tokens at 18 decimals). So on SQLite the column is declared BLOB, which
has no affinity and keeps what it is given: values that fit in 64 bits as INTEGER (fast, compact)
and larger ones as their canonical decimal TEXT. Reading turns both back into a Python int.
SQL never sums or compares these values; all arithmetic happens in Python on exact ints.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Dialect, Numeric
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class _SqliteBlob(UserDefinedType[Any]):
    """A column declared BLOB: SQLite applies no affinity and stores values as given."""

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "BLOB"


def to_db(units: int) -> int | str:
    """Return the SQLite representation of `units`: INTEGER if it fits 64 bits, else TEXT."""
    return units if INT64_MIN <= units <= INT64_MAX else str(units)


class Amount(TypeDecorator[int]):
    """Exact signed integer of base units, |value| <= 2**256 - 1, on every database."""

    impl = Numeric(78, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SqliteBlob())
        return dialect.type_descriptor(Numeric(78, 0, asdecimal=True))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return to_db(value)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)
