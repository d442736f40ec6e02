"""Create and upgrade the schema with Alembic; refuse to write to an unknown version."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from ledger.errors import Reason, Rejected

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """Return the newest schema revision this library knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    """Return every schema revision this library knows."""
    return {rev.revision for rev in ScriptDirectory.from_config(_config()).walk_revisions()}


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
