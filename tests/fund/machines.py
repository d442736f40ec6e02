"""Running the fund state machines: each example on a fresh database, SQLite or PostgreSQL."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine


class FreshDatabaseMachine(RuleBasedStateMachine):
    """A state machine whose `setup` opens `self.url`, a new database for each example."""

    new_url: Callable[[], str] = staticmethod(lambda: "")

    @property
    def url(self) -> str:
        if not hasattr(self, "_url"):
            self._url = type(self).new_url()
        return self._url


def run_machine(
    machine: type[FreshDatabaseMachine],
    new_url: Callable[[], str],
    *,
    examples: int,
    steps: int,
) -> None:
    """Run `machine` for `examples` x `steps`, each example on `new_url()`."""
    machine.new_url = staticmethod(new_url)
    machine.TestCase.settings = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    machine.TestCase().runTest()


def sqlite_urls(factory: pytest.TempPathFactory, name: str) -> Callable[[], str]:
    """Return a maker of URLs of new SQLite files."""
    counter = itertools.count()
    return lambda: f"sqlite:///{factory.mktemp(name)}/db{next(counter)}.db"


@contextmanager
def postgres_schemas(server: str) -> Iterator[Callable[[], str]]:
    """Yield a maker of URLs of new, empty schemas on `server`; drop them all afterwards."""
    import psycopg

    schemas: list[str] = []

    def new_url() -> str:
        schema = f"tl_sm_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        schemas.append(schema)
        sep = "&" if "?" in server else "?"
        return f"{server}{sep}options=-csearch_path%3D{schema}"

    try:
        yield new_url
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
