"""The fund engine's own records, next to the journal: product terms, the price feed, the
days whose schedule ran, the funding rate feed, and each product's state record.

None is accounting: a product row holds the validated parameters (JSON, decimals as
strings), a price row one observed price of an underlying, a state row what the next fund
operation needs (`FundRecord`, written in the same transaction as the entries it follows and
audited by `verify`). The journal never depends on them for its hashes. Tables: migrations
0004, 0005 and 0007 (`token-ledger init`).
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
from ledger.domain.fund.state import FundRecord, FundState
from ledger.domain.journal import from_micros, to_micros
from ledger.storage.journal_store import JournalStore

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

FUNDING_RATES = Table(
    "tl_funding_rates",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("symbol", String(32), nullable=False),
    Column("at_us", BigInteger, nullable=False),
    Column("rate", String(80), nullable=False),  # decimal string, per funding interval
)

DAILY = Table(
    "tl_fund_daily",
    METADATA,
    Column("book", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),  # ISO date of a scheduled rebalance run
)


def save_product(target: Engine | Connection, params: ProductParams) -> None:
    """Record a product's parameters (once; the caller checks for an existing one)."""
    with _using(target, write=True) as connection:
        connection.execute(
            insert(PRODUCTS).values(name=params.name, params_json=params.model_dump_json())
        )


def load_product(target: Engine | Connection, name: str) -> ProductParams | None:
    """Return a product's parameters, or None if it was never created."""
    with _using(target) as connection:
        row = connection.execute(
            select(PRODUCTS.c.params_json).where(PRODUCTS.c.name == name)
        ).first()
    return None if row is None else ProductParams.model_validate(json.loads(row[0]))


def load_products(target: Engine | Connection) -> list[ProductParams]:
    """Return every product, by name."""
    with _using(target) as connection:
        rows = connection.execute(select(PRODUCTS.c.params_json).order_by(PRODUCTS.c.name)).all()
    return [ProductParams.model_validate(json.loads(row[0])) for row in rows]


@contextmanager
def _using(target: Engine | Connection, *, write: bool = False) -> Iterator[Connection]:
    """Use the caller's connection (and transaction) when given one, else one of our own."""
    if isinstance(target, Connection):
        yield target
        return
    with target.begin() if write else target.connect() as connection:
        yield connection


def save_prices(target: Engine | Connection, rows: list[tuple[str, datetime, str]]) -> None:
    """Append observed prices (symbol, time, decimal string)."""
    if not rows:
        return
    with _using(target, write=True) as connection:
        connection.execute(
            insert(PRICES),
            [{"symbol": s, "at_us": to_micros(at), "price": p} for s, at, p in rows],
        )


def latest_price(
    target: Engine | Connection, symbol: str, *, at: datetime | None = None
) -> tuple[datetime, str] | None:
    """Return the latest (time, price) of `symbol` at or before `at`, or None."""
    return _latest(target, PRICES, "price", symbol, at)


def save_funding_rate(connection: Connection, symbol: str, at: datetime, rate: str) -> None:
    """Record a published funding rate of `symbol` (per funding interval), in force from `at`."""
    connection.execute(
        insert(FUNDING_RATES), [{"symbol": symbol, "at_us": to_micros(at), "rate": rate}]
    )


def funding_rate(
    target: Engine | Connection, symbol: str, *, at: datetime | None = None
) -> tuple[datetime, str] | None:
    """Return the latest (time, rate) of `symbol`'s funding feed at or before `at`, or None."""
    return _latest(target, FUNDING_RATES, "rate", symbol, at)


def funding_rates(target: Engine | Connection, symbol: str) -> list[tuple[datetime, str]]:
    """Return `symbol`'s whole funding feed, (time, rate) in the order it was published."""
    table = FUNDING_RATES
    query = (
        select(table.c.at_us, table.c.rate)
        .where(table.c.symbol == symbol)
        .order_by(table.c.at_us, table.c.id)
    )
    with _using(target) as connection:
        return [(from_micros(int(at)), str(rate)) for at, rate in connection.execute(query)]


def _latest(
    target: Engine | Connection, table: Table, column: str, symbol: str, at: datetime | None
) -> tuple[datetime, str] | None:
    """Return the latest (time, `column`) of a per-symbol feed at or before `at`, or None."""
    query = select(table.c.at_us, table.c[column]).where(table.c.symbol == symbol)
    if at is not None:
        query = query.where(table.c.at_us <= to_micros(at))
    query = query.order_by(table.c.at_us.desc(), table.c.id.desc()).limit(1)
    with _using(target) as connection:
        row = connection.execute(query).first()
    return None if row is None else (from_micros(int(row[0])), str(row[1]))


def mark_daily(target: Engine | Connection, book: str, day: date) -> None:
    """Record that `book`'s scheduled rebalance of `day` ran (even if it traded nothing)."""
    with _using(target, write=True) as connection:
        JournalStore(connection).execute(
            "INSERT INTO tl_fund_daily (book, day) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (book, day.isoformat()),
        ).close()


def last_daily(target: Engine | Connection, book: str) -> date | None:
    """Return the last day whose scheduled rebalance ran for `book`, or None."""
    with _using(target) as connection:
        row = connection.execute(
            select(DAILY.c.day).where(DAILY.c.book == book).order_by(DAILY.c.day.desc()).limit(1)
        ).first()
    return None if row is None else date.fromisoformat(str(row[0]))


STATE = Table(
    "tl_fund_state",
    METADATA,
    Column("book", String(64), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("state_json", Text, nullable=False),
)

_INT_FIELDS = ("collateral", "position", "supply", "shortfall", "price", "mark_price")
_INT_FIELDS_2 = ("rebalance_price",)


def encode_record(record: FundRecord) -> str:
    """Return a state record as JSON text; integers as decimal strings (uint256-safe)."""
    state = record.state
    doc: dict[str, str | None] = {
        name: str(getattr(state, name)) for name in (*_INT_FIELDS, *_INT_FIELDS_2)
    }
    doc["daily_on"] = None if state.daily_on is None else state.daily_on.isoformat()
    doc["closed"] = "1" if state.closed else None
    doc["accrued_at_us"] = None if state.accrued_at is None else str(to_micros(state.accrued_at))
    doc["last_at_us"] = None if record.last_at is None else str(to_micros(record.last_at))
    doc["price_at_us"] = None if record.price_at is None else str(to_micros(record.price_at))
    if state.index:  # a book without a share index writes the record it always did
        doc["index"] = " ".join(f"{num}/{den}" for num, den in state.index)
        doc["index_gap"] = str(state.index_gap)
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def decode_record(seq: int, text: str) -> FundRecord:
    """Return the `FundRecord` that `encode_record` wrote."""
    doc = json.loads(text)
    state = FundState(
        collateral=int(doc["collateral"]),
        position=int(doc["position"]),
        supply=int(doc["supply"]),
        shortfall=int(doc["shortfall"]),
        price=int(doc["price"]),
        rebalance_price=int(doc["rebalance_price"]),
        daily_on=None if doc["daily_on"] is None else date.fromisoformat(doc["daily_on"]),
        mark_price=int(doc["mark_price"]),
        closed=doc.get("closed") == "1",
        accrued_at=None
        if doc.get("accrued_at_us") is None
        else from_micros(int(doc["accrued_at_us"])),
        index=_index(doc.get("index")),
        index_gap=int(doc.get("index_gap") or 0),
    )
    last, priced = doc["last_at_us"], doc["price_at_us"]
    return FundRecord(
        state=state,
        seq=seq,
        last_at=None if last is None else from_micros(int(last)),
        price_at=None if priced is None else from_micros(int(priced)),
    )


def _index(text: str | None) -> tuple[tuple[int, int], ...]:
    """Return the share index a state record wrote as "num/den num/den ..."."""
    if not text:
        return ()
    pairs = (item.split("/") for item in text.split(" "))
    return tuple((int(num), int(den)) for num, den in pairs)


def load_record(target: Engine | Connection, book: str) -> FundRecord | None:
    """Return a product's state record, or None if it has none yet."""
    with _using(target) as connection:
        rows = JournalStore(connection).all(
            "SELECT seq, state_json FROM tl_fund_state WHERE book = ?", (book,)
        )
    return None if not rows else decode_record(int(rows[0][0]), str(rows[0][1]))


def save_record(connection: Connection, book: str, record: FundRecord) -> None:
    """Write a product's state record (in the caller's transaction)."""
    JournalStore(connection).execute(
        "INSERT INTO tl_fund_state (book, seq, state_json) VALUES (?, ?, ?)"
        " ON CONFLICT (book) DO UPDATE SET seq = excluded.seq, state_json = excluded.state_json",
        (book, record.seq, encode_record(record)),
    ).close()
