"""What every command shares: the database option, `--json`, rendering and exit codes.

Exit codes: 0 ok, 2 rejected (bad input or refused request), 3 audit findings,
70 internal error. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ledger.errors import InvariantViolation, LedgerError, Reason, Rejected

if TYPE_CHECKING:
    from ledger.services.ledger import Ledger

EXIT_OK = 0
EXIT_REJECTED = 2
EXIT_AUDIT = 3
EXIT_INTERNAL = 70

DEFAULT_DB = "sqlite:///token-ledger.db"
ENV_DB = "TOKEN_LEDGER_DB"
ENV_MAX_SKEW = "TOKEN_LEDGER_MAX_SKEW"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliState:
    """Options given before the command name, shared by every command."""

    db_url: str
    json_output: bool = False
    max_skew: str | None = None


class AuditFailed(Exception):
    """Raised by a command whose audit found a discrepancy; exits with status 3."""

    def __init__(self, message: str, payload: Any = None) -> None:
        super().__init__(message)
        self.payload = payload


def db_url_from(value: str | None) -> str:
    """Return the database URL: the option, else TOKEN_LEDGER_DB, else ./token-ledger.db.

    An empty `--db ""` is a usage error, never the default file (a script's unset variable
    must not write to ./token-ledger.db).
    """
    if value is not None and not value.strip():
        raise click.BadParameter("is empty: name a database URL", param_hint="'--db'")
    return value or os.environ.get(ENV_DB) or DEFAULT_DB


def latest_time() -> datetime | None:
    """The latest effective or price time a command accepts: now plus --max-skew
    ($TOKEN_LEDGER_MAX_SKEW; default 604800 seconds, 7 days; "off" for none)."""
    from ledger.services.entry_input import DEFAULT_MAX_SKEW, latest_time, parse_skew

    st = click.get_current_context().find_object(CliState)
    text = (st.max_skew if st is not None else None) or os.environ.get(ENV_MAX_SKEW)
    skew = DEFAULT_MAX_SKEW if text is None else parse_skew(text)
    return latest_time(datetime.now(UTC), skew)


def open_cli_ledger(*, create: bool = False) -> Ledger:
    """Open --db and connect once; unless `create`, refuse a database without the schema
    (a SQLite file that does not exist is not created).

    A database that cannot be opened is `unavailable` (exit 2), never an internal error.
    """
    from sqlalchemy.exc import DBAPIError

    from ledger.services.ledger import connection_problem, open_ledger

    url = state().db_url
    if not create:
        _refuse_missing_sqlite_file(url)
    lg = open_ledger(url)
    try:
        with lg.engine.connect() as connection:
            if not create:
                _require_schema(connection)
    except DBAPIError as exc:
        lg.close()
        raise connection_problem(exc, redact(url)) from exc
    except BaseException:
        lg.close()
        raise
    return lg


def _require_schema(connection: Any) -> None:
    """Refuse a database without the ledger schema (no alembic_version table or row).

    Only a missing table means "no schema"; any other error (a damaged file) propagates.
    """
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    try:
        with connection.begin():
            row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
    except DBAPIError as exc:
        if not _missing_table(exc):
            raise  # open_cli_ledger makes it `unavailable`
        row = None
    if row is None:
        raise Rejected(
            Reason.SCHEMA_NOT_INITIALISED,
            "the database has no ledger schema: run `token-ledger init`",
        )


def _missing_table(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None) or exc
    return (
        str(getattr(orig, "sqlstate", "") or "") == "42P01" or "no such table" in str(orig).lower()
    )


def _refuse_missing_sqlite_file(url: str) -> None:
    """Refuse a SQLite URL naming no existing file: opening it would leave an empty file behind."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return  # open_ledger refuses it with the reason
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return
    if database.startswith("file:") or Path(database).exists():
        return
    raise Rejected(
        Reason.SCHEMA_NOT_INITIALISED,
        f"no database file {database}: run `token-ledger --db {url} init` first",
    )


def redact(url: str) -> str:
    """Return `url` with any password hidden, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable URL)"


def json_option(func: F) -> F:
    """Add `--json` to a command; it may also be given before the command name."""

    def callback(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        if value:
            ctx.find_object(CliState).json_output = True  # type: ignore[union-attr]
        return value

    return click.option(
        "--json",
        "json_flag",
        is_flag=True,
        expose_value=False,
        callback=callback,
        help="Print machine-readable JSON (stable; amounts are decimal strings).",
    )(func)


def state() -> CliState:
    """Return the shared CLI state of the running command."""
    obj = click.get_current_context().find_object(CliState)
    assert obj is not None
    return obj


def emit(payload: Any, text: Callable[[], str] | str | None = None) -> None:
    """Print `payload` as JSON under `--json`, else the human text (default: the JSON)."""
    if state().json_output or text is None:
        click.echo(json.dumps(payload, indent=2, sort_keys=False, ensure_ascii=False))
        return
    click.echo(text() if callable(text) else text)


def fail(message: str, code: int, reason: str) -> None:
    """Write one line to stderr (JSON under `--json`) and exit with `code`."""
    st = click.get_current_context().find_object(CliState)
    if st is not None and st.json_output:
        click.echo(json.dumps({"error": reason, "message": message}), err=True)
    else:
        click.echo(f"token-ledger: {message}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Turn library errors into one-line messages and exit codes, never tracebacks."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Rejected as exc:
            retry = " (retryable)" if exc.retryable else ""
            fail(f"{exc.reason.value}: {exc.message}{retry}", EXIT_REJECTED, exc.reason.value)
        except AuditFailed as exc:
            if state().json_output and exc.payload is not None:
                click.echo(json.dumps(exc.payload, indent=2))
            fail(str(exc), EXIT_AUDIT, "audit_failed")
        except InvariantViolation as exc:
            fail(f"invariant violated: {exc.message}", EXIT_INTERNAL, "invariant")
        except LedgerError as exc:
            fail(exc.message, EXIT_INTERNAL, "error")
        except OSError as exc:  # a file the user named cannot be read or written
            fail(f"{type(exc).__name__}: {exc}", EXIT_REJECTED, Reason.BAD_INPUT.value)
        except UnicodeDecodeError as exc:  # a file the user named is not UTF-8 text
            fail(
                f"{Reason.BAD_ENCODING.value}: input is not UTF-8 text"
                f" ({exc.object[exc.start : exc.start + 1]!r} at byte {exc.start})",
                EXIT_REJECTED,
                Reason.BAD_ENCODING.value,
            )
        except Exception as exc:
            problem = database_problem(exc)
            if problem is not None:
                retry = " (retryable)" if problem.retryable else ""
                fail(f"{problem}{retry}", EXIT_REJECTED, problem.reason.value)
            if os.environ.get("TOKEN_LEDGER_DEBUG"):
                raise
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            fail(
                f"internal error: {type(exc).__name__}: {first_line}"
                " (set TOKEN_LEDGER_DEBUG=1 for the traceback)",
                EXIT_INTERNAL,
                "internal",
            )
        return None

    return wrapper  # type: ignore[return-value]


# What a database says when the fault is the environment's, not ours: (words, what it means).
_DAMAGED = (
    "database disk image is malformed",
    "file is not a database",
    "malformed database schema",
    "file is encrypted",
)
_READ_ONLY = ("readonly database", "read-only", "read only")
_NO_ROOM = ("database or disk is full", "disk i/o error", "no space left", "disk full")
_DRIVER_MODULES = ("sqlalchemy", "sqlite3", "psycopg")


def database_problem(exc: BaseException) -> Rejected | None:
    """Return the refusal for a database error whose cause is the environment, else None.

    A damaged, truncated or foreign file, a read-only database, a full disk, missing grants or
    a lost connection are `unavailable` (exit 2); any other database error stays a bug (70).
    """
    if type(exc).__module__.split(".")[0] not in _DRIVER_MODULES:
        return None
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    first = lines[0] if lines else type(orig).__name__
    text = first.lower()
    sqlstate = str(getattr(orig, "sqlstate", None) or "")
    if _missing_table(exc):
        return Rejected(
            Reason.SCHEMA_NOT_INITIALISED,
            f"the database lacks a ledger table ({first}): run `token-ledger init`",
        )
    if any(words in text for words in _DAMAGED):
        why = "the database file is damaged, truncated or not a database"
    elif any(words in text for words in _READ_ONLY) or sqlstate == "25006":
        why = "the database is read-only"
    elif any(words in text for words in _NO_ROOM) or sqlstate.startswith("53"):
        why = "the database cannot write (disk full or I/O error)"
    elif sqlstate == "42501":
        why = "the database role lacks a permission"
    elif "unable to open database" in text:
        why = "the database cannot be opened"
    elif sqlstate.startswith("08") or "server closed the connection" in text:
        return Rejected(
            Reason.UNAVAILABLE, f"lost the database connection: {first}", retryable=True
        )
    else:
        return None
    return Rejected(Reason.UNAVAILABLE, f"{why}: {first}")


class Progress:
    """A progress bar on stderr for long work; silent under --json or when not a terminal."""

    def __init__(self, label: str, total: int | None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        console = Console(stderr=True)
        self._enabled = console.is_terminal and not state().json_output
        self._bar = RichProgress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not self._enabled,
        )
        self._task = self._bar.add_task(label, total=total)

    def __enter__(self) -> Progress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(None, None, None)

    def advance(self, count: int) -> None:
        """Record `count` more units of work done."""
        self._bar.advance(self._task, count)
