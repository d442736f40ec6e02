"""CLI commands of the trading day: `token-ledger orders FILE` (orders that arrive together,
one netted `orders` entry per batch) and `token-ledger funding SYMBOL RATE` (the funding rate
feed). Thin: read the input, call one `Funds` method, render."""

from __future__ import annotations

from typing import Any, BinaryIO

import click

from ledger.cli.common import emit, handle_errors, json_option
from ledger.cli.fund_cmds import _funds, _time, at_option
from ledger.errors import Reason, Rejected
from ledger.services.json_input import MAX_DOCUMENT_BYTES, load_document


@click.command("orders")
@click.argument("file", type=click.File("rb"))
@click.option(
    "--key", default=None, help='Idempotency key of the batch (overrides the file\'s "key").'
)
@at_option
@json_option
@handle_errors
def orders_cmd(file: BinaryIO, key: str | None, at: str | None) -> None:
    """Post a batch of mints and redemptions from FILE (`-` for stdin) as one entry.

    FILE is UTF-8 JSON: {"product": "BTC3L", "key": "batch-7", "orders": [...]}, each order
    {"side": "mint", "holder": "alice", "cash": "1000"} or {"side": "redeem", "holder":
    "bob", "shares": "2.5"}. Every order is priced at the same NAV as if it came alone; only
    the net of their trades is traded and the trading fee saved is shared back to the orders
    in proportion to their own fees. One bad order refuses the whole batch (nothing written).

    \b
    Example:
      token-ledger orders day-2024-01-05.json --json
    """
    doc = load_document(file.read(MAX_DOCUMENT_BYTES + 1), "the orders file")
    if not isinstance(doc, dict) or set(doc) - {"product", "key", "orders"}:
        raise Rejected(Reason.BAD_INPUT, 'the orders file must be {"product", "orders"[, "key"]}')
    product, file_key = doc.get("product"), doc.get("key")
    if not isinstance(product, str) or (file_key is not None and not isinstance(file_key, str)):
        raise Rejected(Reason.BAD_INPUT, "the orders file's product and key must be strings")
    result = (
        _funds().orders(product, doc.get("orders"), key=key or file_key, at=_time(at)).json_dict()
    )
    emit(result, lambda: _text(result))


def _text(result: dict[str, Any]) -> str:
    lines = [
        f"batch of {len(result['fills'])} orders, entry #{result['seq']}: net trade"
        f" {result['net_trade']}, trading fee {result['trading_fee']}"
        f" (saved {result['trading_fee_saved']})"
    ]
    for fill in result["fills"]:
        lines.append(
            f"  {fill['side']:<6} {fill['holder']:<20} shares {fill['shares_delta']:>28}"
            f"  cash {fill['cash']:>20}  fee {fill['fee']}  rebate {fill['rebate']}"
        )
    return "\n".join(lines)


@click.command("funding")
@click.argument("symbol")
@click.argument("rate")
@at_option
@json_option
@handle_errors
def funding_cmd(symbol: str, rate: str, at: str | None) -> None:
    """Publish SYMBOL's funding RATE per funding interval (> 0: longs pay shorts), in force
    from --at (default now) on, for every product on SYMBOL.

    RATE is a decimal per interval (each product's `funding_interval`, default 8 h), as
    perpetual exchanges quote it: 0.0001 is 0.01% per 8 h. Funding then accrues with time at
    every operation, pro rata, on the position held; each product first accrues up to --at at
    the rate in force until then, so no accrual spans two rates. |RATE| <= 0.1.

    \b
    Example:
      token-ledger funding BTC 0.0001 --at 2024-01-05T08:00:00Z
    """
    result = _funds().set_funding_rate(symbol, rate, at=_time(at))
    emit(
        result,
        lambda: (
            f"{symbol} funding {result['rate']} per interval from {result['at']}: "
            + ", ".join(
                f"{p['product']} (accrued #{p['accrued'][0]})" if p["accrued"] else p["product"]
                for p in result["products"]
            )
        ),
    )


def register(cli: click.Group) -> None:
    """Add this module's commands to the root group."""
    cli.add_command(orders_cmd)
    cli.add_command(funding_cmd)
