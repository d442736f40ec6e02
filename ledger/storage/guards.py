"""Database guards that keep the journal append-only, per dialect.

Migrations call `install_guards` after creating or altering a journal table; an Alembic
batch (move-and-copy) migration on SQLite silently drops triggers, so every migration that
touches a journal table must call it again. `missing_guards` is checked before every write.
"""

from __future__ import annotations

from typing import Any

from ledger.storage.tables import GUARDED_TABLES

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION tl_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'token-ledger: % on % refused: the journal is append-only',
    TG_OP, TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation';
END $$
"""


def guard_names(tables: tuple[str, ...] = GUARDED_TABLES) -> list[str]:
    """Return the names of every trigger the guards consist of."""
    names = []
    for table in tables:
        names += [f"{table}_no_update", f"{table}_no_delete", f"{table}_no_truncate"]
    return names


def install_guards(execute: Any, dialect: str, tables: tuple[str, ...] = GUARDED_TABLES) -> None:
    """Create the append-only triggers on `tables` with `execute(sql)`; idempotent."""
    if dialect == "sqlite":
        for table in tables:
            for op in ("update", "delete"):
                execute(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op} BEFORE {op.upper()} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'token-ledger: {op.upper()} on {table} refused: "
                    "the table is append-only'); END"
                )
        return
    execute(_PG_FUNCTION)
    for table in tables:
        for op, level in (("update", "ROW"), ("delete", "ROW"), ("truncate", "STATEMENT")):
            name = f"{table}_no_{op}"
            execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            execute(
                f"CREATE TRIGGER {name} BEFORE {op.upper()} ON {table} "
                f"FOR EACH {level} EXECUTE FUNCTION tl_refuse_change()"
            )
            # ALWAYS: still fires under session_replication_role = replica.
            execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}")


def missing_guards(fetch_names: Any, dialect: str) -> list[str]:
    """Return the guard triggers absent from the database (`fetch_names(sql)` -> names)."""
    if dialect == "sqlite":
        present = set(fetch_names("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
        expected = [n for n in guard_names() if not n.endswith("_no_truncate")]
    else:
        # tgenabled 'A' = ENABLE ALWAYS; a disabled ('D') or origin-only trigger does not count.
        present = set(
            fetch_names(
                "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                " WHERE NOT t.tgisinternal AND t.tgenabled = 'A'"
                " AND c.relnamespace ="
                " (SELECT oid FROM pg_namespace WHERE nspname = current_schema())"
            )
        )
        expected = guard_names()
    return [name for name in expected if name not in present]
