"""Create and upgrade the schema with Alembic; refuse to write to an unknown version.

Alembic itself (about 120 ms to import) is loaded only by `upgrade` (`token-ledger init`):
every other command only compares the database's revision with the revisions of the files in
migrations/versions, read with a regular expression (`tests/test_kernel_guards.py` checks that
they agree with Alembic's own reading).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, text

from ledger.errors import Reason, Rejected

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION = re.compile(r'^revision = "([^"]+)"$', re.M)
_DOWN = re.compile(r'^down_revision = (?:"([^"]+)"|None)$', re.M)


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def _graph() -> dict[str, str | None]:
    """Return {revision: down revision} of every migration file."""
    graph: dict[str, str | None] = {}
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(source), _DOWN.search(source)
        if revision is not None and down is not None:
            graph[revision.group(1)] = down.group(1)
    return graph


def head_revision() -> str:
    """Return the newest schema revision this library knows (the one no other revises)."""
    graph = _graph()
    heads = set(graph) - {down for down in graph.values() if down is not None}
    assert len(heads) == 1, f"the migrations have {len(heads)} heads: {sorted(heads)}"
    return heads.pop()


def known_revisions() -> set[str]:
    """Return every schema revision this library knows."""
    return set(_graph())


def current_revision(connection: Connection) -> str | None:
    """Return the database's schema revision, or None when it has no schema."""
    try:
        with connection.begin_nested() if connection.in_transaction() else connection.begin():
            row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
    except Exception:
        return None
    return None if row is None else str(row[0])


def upgrade(engine: Engine) -> str:
    """Create or upgrade the schema to the newest revision; return it."""
    with engine.connect() as connection:
        revision = current_revision(connection)
        if revision is not None and revision not in known_revisions():
            raise Rejected(
                Reason.SCHEMA_VERSION,
                f"database schema {revision} is newer than this token-ledger knows; upgrade it",
            )
    from alembic import command

    with engine.begin() as connection:
        command.upgrade(_config(connection), "head")
    return head_revision()


def check_writable(connection: Connection) -> None:
    """Refuse unless the database schema is exactly the revision this library writes."""
    revision = current_revision(connection)
    if revision is None:
        raise Rejected(
            Reason.SCHEMA_NOT_INITIALISED,
            "the database has no ledger schema: run `token-ledger init`",
        )
    head = head_revision()
    if revision == head:
        return
    if revision in known_revisions():
        raise Rejected(
            Reason.SCHEMA_VERSION,
            f"database schema {revision} is older than {head}: run `token-ledger init` to upgrade",
        )
    raise Rejected(
        Reason.SCHEMA_VERSION,
        f"database schema {revision} is unknown to this token-ledger (knows up to {head})",
    )
