"""Entry point of the `token-ledger` command."""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import click

from ledger import __version__
from ledger.cli.common import ENV_DB, CliState, db_url_from

KERNEL, FUND, CHAIN = "ledger.cli.kernel_cmds", "ledger.cli.fund_cmds", "ledger.cli.chain_cmds"
BATCH = "ledger.cli.batch_cmds"
PROOF = "ledger.cli.proof_cmds"
COMMAND_MODULES = (KERNEL, FUND, BATCH, CHAIN, PROOF)
# Where each command lives, so that running one imports only its module (start-up time). Only
# a hint: a name missing here loads every module, and `--help` loads them all.
_KERNEL_COMMANDS = "init asset account post reverse balances history verify export replay"
_FUND_COMMANDS = (
    "product price mint redeem rebalance split merge close nav holders statement simulate"
)
COMMAND_HOMES = {
    **dict.fromkeys(_KERNEL_COMMANDS.split(), KERNEL),
    **dict.fromkeys(_FUND_COMMANDS.split(), FUND),
    "orders": BATCH,
    "funding": BATCH,
    "chain": CHAIN,
    "proof": PROOF,
}


class LazyGroup(click.Group):
    """The root group: imports a command module when one of its commands is first needed.

    The chain stack (web3, eth-account) and matplotlib are imported inside the commands that
    use them; this keeps even the fund and kernel modules out of a command that needs neither.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: set[str] = set()

    def load(self, module: str) -> None:
        """Register the commands of `module` (once)."""
        if module not in self._loaded:
            self._loaded.add(module)
            importlib.import_module(module).register(self)

    def load_all(self) -> None:
        """Register every command module."""
        for module in COMMAND_MODULES:
            self.load(module)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.load_all()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        home = COMMAND_HOMES.get(cmd_name)
        if home is not None:
            self.load(home)
        command = super().get_command(ctx, cmd_name)
        if command is None:
            self.load_all()
            command = super().get_command(ctx, cmd_name)
        return command


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--db",
    "db",
    metavar="URL",
    default=None,
    help=f"Database URL (sqlite:///FILE or postgresql://...). Default: ${ENV_DB}, "
    "else sqlite:///token-ledger.db in the working directory.",
)
@click.option("--json", "json_output", is_flag=True, help="Print machine-readable JSON.")
@click.option(
    "--max-skew",
    metavar="SECONDS",
    default=None,
    help="How far ahead of the clock an effective or price time may be (default 604800 = 7 days, or"
    " $TOKEN_LEDGER_MAX_SKEW; 'off' for no bound).",
)
@click.version_option(__version__, prog_name="token-ledger")
@click.pass_context
def cli(ctx: click.Context, db: str | None, json_output: bool, max_skew: str | None) -> None:
    """Immutable, hash-chained double-entry books for leveraged-token funds.

    \b
    Start here:
      token-ledger simulate            run funds through real BTC prices 2014-2022
      token-ledger init                create the schema in --db
      token-ledger verify BOOK         re-check a book's hash chain and balances
    Every command takes --json. Exit codes: 0 ok, 2 rejected, 3 audit findings,
    70 internal error.
    """
    ctx.obj = CliState(db_url=db_url_from(db), json_output=json_output, max_skew=max_skew)


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
        if _json_requested(ctx):
            error = {"error": "bad_input", "message": f"{where}: {message}"}
            click.echo(json.dumps(error, ensure_ascii=False), err=True)
        else:
            click.echo(f"{where}: {message} (see {where} --help)", err=True)
        sys.exit(exc.exit_code)


def _json_requested(ctx: click.Context | None) -> bool:
    """Whether --json was given: a usage error may stop parsing before its option is read."""
    state = None if ctx is None else ctx.find_object(CliState)
    return (state is not None and state.json_output) or "--json" in sys.argv[1:]


if __name__ == "__main__":
    main()
