"""Entry point of the `token-ledger` command."""

from __future__ import annotations

import importlib
import sys

import click

from ledger import __version__
from ledger.cli.common import ENV_DB, CliState, db_url_from

COMMAND_MODULES = ("ledger.cli.kernel_cmds", "ledger.cli.fund_cmds", "ledger.cli.chain_cmds")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--db",
    "db",
    metavar="URL",
    default=None,
    help=f"Database URL (sqlite:///FILE or postgresql://...). Default: ${ENV_DB}, "
    "else sqlite:///token-ledger.db in the working directory.",
)
@click.option("--json", "json_output", is_flag=True, help="Print machine-readable JSON.")
@click.version_option(__version__, prog_name="token-ledger")
@click.pass_context
def cli(ctx: click.Context, db: str | None, json_output: bool) -> None:
    """Immutable, hash-chained double-entry books for leveraged-token funds.

    \b
    Start here:
      token-ledger simulate            run funds through real BTC prices 2014-2022
      token-ledger init                create the schema in --db
      token-ledger verify BOOK         re-check a book's hash chain and balances
    Every command takes --json. Exit codes: 0 ok, 2 rejected, 3 audit findings,
    70 internal error.
    """
    ctx.obj = CliState(db_url=db_url_from(db), json_output=json_output)


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(cli)


def main() -> None:
    """Run the CLI; a usage error is one line on stderr and exit 2, like every refusal."""
    try:
        cli.main(prog_name="token-ledger", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("token-ledger: aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "token-ledger"
        message = " ".join(exc.format_message().split()).rstrip(".")
        click.echo(f"{where}: {message} (see {where} --help)", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
