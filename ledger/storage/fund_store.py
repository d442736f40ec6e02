"""The fund engine's own records, next to the journal: product terms and the price feed.

Neither is accounting: a product row holds the validated parameters (JSON, decimals as
strings) and a price row one observed price of an underlying. The journal never depends on
them for its hashes. The tables are created by migration 0004 (`token-ledger init`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
)

from ledger.domain.fund.product import ProductParams
from ledger.domain.journal import from_micros, to_micros

METADATA = MetaData()

PRODUCTS = Table(
    "tl_fund_products",
    METADATA,
    Column("name", String(64), primary_key=True),
    Column("params_json", Text, nullable=False),
)

PRICES = Table(
    "tl_fund_prices",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("symbol", String(32), nullable=False, index=True),
    Column("at_us", BigInteger, nullable=False),
    Column("price", String(80), nullable=False),  # decimal string, quote per whole unit
)

DAILY = Table(
    "tl_fund_daily",
    METADATA,
    Column("book", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),  # ISO date of a scheduled rebalance run
)


def save_product(engine: Engine, params: ProductParams) -> None:
    """Record a product's parameters (once; the caller checks for an existing one)."""
    with engine.begin() as connection:
        connection.execute(
            insert(PRODUCTS).values(name=params.name, params_json=params.model_dump_json())
        )


def load_product(engine: Engine, name: str) -> ProductParams | None:
    """Return a product's parameters, or None if it was never created."""
    with engine.connect() as connection:
        row = connection.execute(
            select(PRODUCTS.c.params_json).where(PRODUCTS.c.name == name)
        ).first()
    return None if row is None else ProductParams.model_validate(json.loads(row[0]))


def load_products(engine: Engine) -> list[ProductParams]:
    """Return every product, by name."""
    with engine.connect() as connection:
        rows = connection.execute(select(PRODUCTS.c.params_json).order_by(PRODUCTS.c.name)).all()
    return [ProductParams.model_validate(json.loads(row[0])) for row in rows]


@contextmanager
def _writing(target: Engine | Connection) -> Iterator[Connection]:
    """Use the caller's transaction when given a connection, else a transaction of our own."""
    if isinstance(target, Connection):
        yield target
        return
    with target.begin() as connection:
        yield connection


def save_prices(target: Engine | Connection, rows: list[tuple[str, datetime, str]]) -> None:
    """Append observed prices (symbol, time, decimal string)."""
    if not rows:
        return
    with _writing(target) as connection:
        connection.execute(
            insert(PRICES),
            [{"symbol": s, "at_us": to_micros(at), "price": p} for s, at, p in rows],
        )


def latest_price(
    engine: Engine, symbol: str, *, at: datetime | None = None
) -> tuple[datetime, str] | None:
    """Return the latest (time, price) of `symbol` at or before `at`, or None."""
    query = select(PRICES.c.at_us, PRICES.c.price).where(PRICES.c.symbol == symbol)
    if at is not None:
        query = query.where(PRICES.c.at_us <= to_micros(at))
    query = query.order_by(PRICES.c.at_us.desc(), PRICES.c.id.desc()).limit(1)
    with engine.connect() as connection:
        row = connection.execute(query).first()
    return None if row is None else (from_micros(int(row[0])), str(row[1]))


def mark_daily(target: Engine | Connection, book: str, day: date) -> None:
    """Record that `book`'s scheduled rebalance of `day` ran (even if it traded nothing)."""
    with _writing(target) as connection:
        found = connection.execute(
            select(DAILY.c.day).where(DAILY.c.book == book, DAILY.c.day == day.isoformat())
        ).first()
        if found is None:
            connection.execute(insert(DAILY).values(book=book, day=day.isoformat()))


def last_daily(engine: Engine, book: str) -> date | None:
    """Return the last day whose scheduled rebalance ran for `book`, or None."""
    with engine.connect() as connection:
        row = connection.execute(
            select(DAILY.c.day).where(DAILY.c.book == book).order_by(DAILY.c.day.desc()).limit(1)
        ).first()
    return None if row is None else date.fromisoformat(str(row[0]))
