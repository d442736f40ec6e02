"""CLI commands of the fund engine: products, prices, mint/redeem, rebalance, split/merge,
NAV, holders, statements, and the simulation. Thin: parse, call one service, render.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ledger.cli.common import (
    AuditFailed,
    Progress,
    emit,
    handle_errors,
    json_option,
    latest_time,
    max_skew,
    open_cli_ledger,
    state,
)
from ledger.errors import Reason, Rejected
from ledger.services.entry_input import parse_time
from ledger.services.funds import Funds

at_option = click.option(
    "--at",
    "at",
    default=None,
    metavar="TIME",
    help="Effective time, ISO 8601 with a zone (e.g. 2020-03-12T08:00:00Z); default now.",
)
key_option = click.option(
    "--key", default=None, help="Idempotency key: a retry with the same key writes nothing new."
)


def _funds() -> Funds:
    # Refuses a database without the schema (never creates one); --max-skew bounds `at`.
    return Funds(open_cli_ledger(), max_skew=max_skew())


def _time(text: str | None) -> datetime | None:
    return None if text is None else parse_time(text, not_after=latest_time())


def _off(text: str | None) -> Any:
    """Return None for "off"/"none", else the text (a rule switched off, or its value)."""
    return None if text is not None and text.strip().lower() in ("off", "none") else text


def _kv_text(payload: dict[str, Any], *, none: str = "-") -> str:
    """Return one "key value" line per scalar; None prints as `none`, booleans as yes/no."""
    return "\n".join(
        f"{k:<22} {_text_value(v, none)}" for k, v in payload.items() if not isinstance(v, dict)
    )


def _text_value(value: Any, none: str) -> str:
    if value is None:
        return none
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ":".join(_text_value(v, none) for v in value)  # a band, as --leverage-band takes it
    return str(value)


@click.group("product")
def product_group() -> None:
    """Create and inspect leveraged-token products (one book per product)."""


@product_group.command("create")
@click.argument("name")
@click.option("--underlying", default=None, help="Underlying symbol (default: from NAME).")
@click.option("--multiple", default=None, help="Signed multiple, e.g. 3 or -3 (default: NAME).")
@click.option("--quote-asset", default=None, help="Quote asset code. Default USDT.")
@click.option("--quote-decimals", type=int, default=None, help="Quote decimals. Default 6.")
@click.option("--share-decimals", type=int, default=None, help="Share decimals. Default 18.")
@click.option("--initial-nav", default=None, help="NAV per share at the first mint. Default 100.")
@click.option("--subscription-fee", default=None, help="Rate, e.g. 0.001 (default 0.1%).")
@click.option("--redemption-fee", default=None, help="Rate, e.g. 0.001 (default 0.1%).")
@click.option("--management-fee", default=None, help="Rate per day. Default 0.0003.")
@click.option("--trading-fee", default=None, help="Rate of rebalance notional. Default 0.0005.")
@click.option("--funding-rate", default=None, help="Per day, longs pay if > 0. Default 0.0003.")
@click.option(
    "--funding-interval",
    type=int,
    default=None,
    help="Seconds a published rate (`funding SYMBOL RATE`) is quoted for. Default 28800 (8 h).",
)
@click.option("--min-subscription", default=None, help="Minimum cash per mint. Default 10.")
@click.option("--rebalance-time", default=None, help="Daily rebalance, HH:MM UTC. Default 00:02.")
@click.option("--adhoc-move", default=None, help="Ad-hoc trigger move, rate or 'off'.")
@click.option("--leverage-band", default=None, help="|multiple| band LOW:HIGH or 'off'.")
@click.option(
    "--adhoc-side",
    type=click.Choice(["both", "losing"]),
    default=None,
    help="Ad hoc on any move, or 'losing': only on moves that raise leverage. Default both.",
)
@click.option("--merge-below", default=None, help="Merge when NAV is below this, or 'off'.")
@click.option("--split-above", default=None, help="Split when NAV is above this, or 'off'.")
@click.option(
    "--split-merge-ratio",
    type=int,
    default=None,
    help="Fixed policy ratio N (1:N split, N:1 merge). Default: a power of ten back to NAV_0.",
)
@click.option(
    "--max-price-age",
    default=None,
    help="Refuse mint/redeem when the last price is older than SECONDS, or 'off'. Default 60.",
)
@json_option
@handle_errors
def product_create(name: str, **options: str | int | None) -> None:
    """Create product NAME with its book and accounts.

    NAME is UNDERLYING + MULTIPLE + L|S, such as BTC3L, BTC3S, ETH5L or BTC1.5L. Rates are
    decimal fractions ("0.001" is 0.1%). Unset options take the documented
    defaults (docs/funds.md). Creating the same product again is a no-op.

    \b
    Examples:
      token-ledger product create BTC3L
      token-ledger product create BTC3S --management-fee 0.0001 --adhoc-move 0.08
      token-ledger product create ETH5L --leverage-band 4:6 --split-above off --json
    """
    names = {
        "merge_below": "merge_nav_below",
        "split_above": "split_nav_above",
    }
    overrides: dict[str, Any] = {}
    for option, value in options.items():
        if value is None:
            continue
        field = names.get(option, option)
        if option == "leverage_band":
            band = _off(str(value))
            overrides[field] = None if band is None else tuple(_band(band))
        elif option in ("adhoc_move", "merge_below", "split_above"):
            overrides[field] = _off(str(value))
        elif option == "max_price_age":
            age = _off(str(value))
            if age is not None and not str(age).isdigit():
                raise Rejected(Reason.BAD_INPUT, f"--max-price-age must be seconds or off: {age}")
            overrides[field] = None if age is None else int(age)
        else:
            overrides[field] = value
    payload = _funds().create_product(name, **overrides)
    emit(payload, lambda: f"created {payload['name']}\n" + _kv_text(payload, none="off"))


def _band(text: str) -> list[str]:
    parts = text.split(":")
    if len(parts) != 2:
        raise Rejected(Reason.BAD_INPUT, f"--leverage-band must be LOW:HIGH, got {text!r}")
    return parts


@product_group.command("show")
@click.argument("name")
@json_option
@handle_errors
def product_show(name: str) -> None:
    """Show a product's parameters.

    \b
    Example:
      token-ledger product show BTC3L --json
    """
    payload = _funds().params(name).model_dump(mode="json")
    emit(payload, lambda: _kv_text(payload, none="off"))  # None is a rule switched off


@click.command("price")
@click.argument("symbol")
@click.argument("price")
@at_option
@json_option
@handle_errors
def price_cmd(symbol: str, price: str, at: str | None) -> None:
    """Apply PRICE of SYMBOL to every product on it: mark, then rebalance if due.

    The daily rebalance runs on the first price at or after its UTC time each day; an
    ad-hoc rebalance runs in the same update whose price crosses the trigger.

    \b
    Examples:
      token-ledger price BTC 7913.62 --at 2020-03-12T00:00:00Z
      token-ledger price BTC 4860.35 --json
    """
    payload = _funds().set_price(symbol, price, at=_time(at)).json_dict()

    def text() -> str:
        lines = [f"{symbol} {payload['price']} at {payload['at']}"]
        for p in payload["products"]:
            done = ", ".join(p["entries"]) or "no entries"
            lines.append(
                f"  {p['product']}: NAV {p['nav_per_share']} x{p['effective_multiple']}"
                f" ({done}){' WIPED OUT' if p['wiped_out'] else ''}"
            )
        return "\n".join(lines)

    emit(payload, text)


@click.command("mint")
@click.argument("product")
@click.argument("holder")
@click.option("--cash", required=True, help="Quote amount paid, decimal string, e.g. 1000.")
@key_option
@at_option
@json_option
@handle_errors
def mint_cmd(product: str, holder: str, cash: str, key: str | None, at: str | None) -> None:
    """Issue shares of PRODUCT to HOLDER at NAV for --cash (fee deducted, shares rounded down).

    \b
    Example:
      token-ledger mint BTC3L alice --cash 1000 --key order-17
    """
    payload = _funds().mint(product, holder, cash=cash, key=key, at=_time(at)).json_dict()
    emit(
        payload,
        lambda: (
            f"minted {payload['shares_delta']} {product} to {holder}"
            f" for {payload['cash']} (fee {payload['fee']}), entry #{payload['seq']}"
        ),
    )


@click.command("redeem")
@click.argument("product")
@click.argument("holder")
@click.option("--shares", required=True, help="Shares returned, decimal string, e.g. 2.5.")
@key_option
@at_option
@json_option
@handle_errors
def redeem_cmd(product: str, holder: str, shares: str, key: str | None, at: str | None) -> None:
    """Redeem --shares of PRODUCT held by HOLDER for cash at NAV (rounded down, fee deducted).

    \b
    Example:
      token-ledger redeem BTC3L alice --shares 2.5
    """
    payload = _funds().redeem(product, holder, shares=shares, key=key, at=_time(at)).json_dict()
    emit(
        payload,
        lambda: (
            f"redeemed {shares} {product} of {holder}: paid {payload['paid']}"
            f" (fee {payload['fee']}), entry #{payload['seq']}"
        ),
    )


@click.command("rebalance")
@click.argument("product")
@at_option
@json_option
@handle_errors
def rebalance_cmd(product: str, at: str | None) -> None:
    """Trade PRODUCT's position back to multiple x NAV at the last price.

    \b
    Example:
      token-ledger rebalance BTC3L
    """
    payload = _funds().rebalance(product, at=_time(at)).json_dict()
    emit(
        payload,
        lambda: (
            f"{product}: traded {payload['traded']} ({payload['traded_notional']}"
            f" {payload['nav']['quote_asset']}), fee {payload['trading_fee']},"
            f" multiple {payload['multiple_before']} -> {payload['nav']['effective_multiple']}"
        ),
    )


def _split_text(payload: dict[str, Any]) -> str:
    return (
        f"{payload['kind']} {payload['product']} by {payload['ratio_num']}/{payload['ratio_den']}:"
        f" NAV {payload['nav_before']} -> {payload['nav']['nav_per_share']}, supply"
        f" {payload['supply_before']} -> {payload['supply_after']} (index epoch"
        f" {payload['epoch']}, one entry; every holder's units unchanged)"
    )


@click.command("split")
@click.argument("product")
@click.argument("ratio")
@at_option
@json_option
@handle_errors
def split_cmd(product: str, ratio: str, at: str | None) -> None:
    """Split PRODUCT's shares by RATIO OLD:NEW such as 1:5 (five times the shares, NAV / 5).

    One entry whatever the number of holders: the ratio joins the fund's share index, and
    every holder's shares are their units with each ratio applied in turn, rounded down
    (docs/funds.md, "Share index"). The shares outstanding become floor(S x NEW / OLD).

    \b
    Example:
      token-ledger split BTC3L 1:5
    """
    payload = _funds().split(product, ratio, at=_time(at)).json_dict()
    emit(payload, lambda: _split_text(payload))


@click.command("merge")
@click.argument("product")
@click.argument("ratio")
@at_option
@json_option
@handle_errors
def merge_cmd(product: str, ratio: str, at: str | None) -> None:
    """Merge (reverse-split) PRODUCT's shares by RATIO OLD:NEW such as 5:1 (NAV x 5).

    One entry, as `split`: each holder's shares round down under the share index; their
    units, and so their value, are unchanged. What the rounding leaves of the shares
    outstanding is no holder's (`holders` reports it as the remainder).

    \b
    Example:
      token-ledger merge BTC3S 10:1
    """
    payload = _funds().merge(product, ratio, at=_time(at)).json_dict()
    emit(payload, lambda: _split_text(payload))


@click.command("close")
@click.argument("product")
@at_option
@json_option
@handle_errors
def close_cmd(product: str, at: str | None) -> None:
    """Close wiped-out PRODUCT: cancel every holder's shares at zero and seal its book.

    Only a wiped-out fund closes this way (a live fund's holders redeem at NAV). One entry;
    afterwards every fund operation on PRODUCT is refused with fund_closed.

    \b
    Example:
      token-ledger close BTC3L
    """
    payload = _funds().close(product, at=_time(at))
    emit(
        payload,
        lambda: (
            f"closed {product}: {payload['shares_cancelled']} shares of {payload['holders']}"
            f" holders cancelled at zero, entry #{payload['seq']}"
        ),
    )


@click.command("nav")
@click.argument("product")
@at_option
@json_option
@handle_errors
def nav_cmd(product: str, at: str | None) -> None:
    """Show PRODUCT's NAV per share, equity, supply and effective multiple, now or --at.

    \b
    Example:
      token-ledger nav BTC3L --at 2020-03-12T12:00:00Z --json
    """
    payload = _funds().nav(product, at=_time(at)).json_dict()
    emit(payload, lambda: _kv_text(payload))


@click.command("holders")
@click.argument("product")
@json_option
@handle_errors
def holders_cmd(product: str) -> None:
    """List PRODUCT's holders with their shares, value at NAV and ERC-20 mirror address.

    A holder's shares are their units under the fund's share index (equal until its first
    split or merge); `--json` gives both, and the split rounding no holder shows
    (`remainder`). The address is the one `chain sync` mirrors the holder to (docs/chain.md):
    the holder id itself when it is an 0x address, else derived from it deterministically.

    \b
    Example:
      token-ledger holders BTC3L --json
    """
    from ledger.chain import book_address_of

    payload = _funds().holders(product).json_dict()
    for row in payload["holders"]:
        row["address"] = book_address_of(row["holder"])
    emit(
        payload,
        lambda: (
            (
                "\n".join(
                    f"{h['holder']:<24} {h['shares']:>34} {h['value']:>22}  {h['address']}"
                    for h in payload["holders"]
                )
                or "no holders"
            )
            + (
                f"\nsplit rounding held by no holder: {payload['remainder']}"
                if payload["remainder"].strip("0.")
                else ""
            )
        ),
    )


@click.command("statement")
@click.argument("product")
@click.argument("holder")
@click.option("--proof", "with_proof", is_flag=True, help="Add the holder's liability proof.")
@json_option
@handle_errors
def statement_cmd(product: str, holder: str, with_proof: bool) -> None:
    """Show HOLDER's entries in PRODUCT (mint, redeem, split, merge) and current value.

    With --proof the statement carries the holder's proof of liabilities at the head
    (docs/proof-of-liabilities.md; null when the holder has no units).

    \b
    Example:
      token-ledger statement BTC3L alice
    """
    payload = _funds().statement(product, holder).json_dict()
    if with_proof:
        from ledger.cli.proof_cmds import statement_proof

        payload["proof"] = statement_proof(product, holder)

    def text() -> str:
        lines = [f"{holder} in {product}: {payload['shares']} shares worth {payload['value']}"]
        for e in payload["entries"]:
            lines.append(
                f"  #{e['seq']:<6} {e['effective_at']} {e['kind']:<7}"
                f" {e.get('shares_delta', ''):>30} fee {e['fee']}"
            )
        if with_proof:
            found = payload["proof"]
            lines.append(
                "proof: none (no units)"
                if found is None
                else f"proof: seq {found['seq']} root {found['root']['hash']} (--json for the file)"
            )
        return "\n".join(lines)

    emit(payload, text)


@click.command("simulate")
@click.option(
    "--prices",
    type=click.Path(path_type=Path),
    default=None,
    help="CSV: Date,Open,High,Low,Close[,...]. Default: the bundled BTC-USD 2014-2022.",
)
@click.option(
    "--synthetic",
    "synthetic_days",
    type=click.IntRange(min=1),
    default=None,
    help="Use a seeded synthetic path of this many days instead of a CSV.",
)
@click.option("--products", default="BTC3L,BTC3S", show_default=True, help="Comma-separated.")
@click.option("--holders", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option(
    "--orders-per-day",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="About this many mints/redeems per product per day.",
)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
    "--step",
    default="0.025",
    show_default=True,
    help="Largest intraday price step between OHLC points, 0.0001 up to the ad-hoc trigger.",
)
@click.option("--from", "start", default=None, help="First day, YYYY-MM-DD.")
@click.option("--days", type=click.IntRange(min=1), default=None, help="Simulate only N days.")
@click.option("--fees", default=None, help="'zero' sets every fee and funding to 0.")
@click.option(
    "--chart",
    type=click.Path(path_type=Path),
    default=Path("out/simulation.png"),
    show_default=True,
    help="PNG chart of NAV vs the underlying.",
)
@click.option("--no-chart", is_flag=True, help="Do not draw the chart.")
@click.option("--replace", is_flag=True, help="SQLite only: delete --db first if it exists.")
@json_option
@handle_errors
def simulate_cmd(
    prices: Path | None,
    synthetic_days: int | None,
    products: str,
    holders: int,
    orders_per_day: int,
    seed: int,
    step: str,
    start: str | None,
    days: int | None,
    fees: str | None,
    chart: Path,
    no_chart: bool,
    replace: bool,
) -> None:
    """Run leveraged-token funds through a price history with holders minting and redeeming.

    Each day is walked open, high, low, close (low before high on a rising day) in steps
    finer than the ad-hoc trigger; fund state stays in memory and whole days are posted
    through the kernel. At the end every book is verified; a failure exits with status 3.

    \b
    Examples:
      token-ledger simulate
      token-ledger --db sqlite:///sim.db simulate --replace --days 365 --chart out/year.png
      token-ledger simulate --synthetic 200 --products ETH5L,ETH5S --json
    """
    from ledger.sim.chart import series_path, write_chart
    from ledger.sim.options import build_config, check_chart_path, replace_database
    from ledger.sim.run import price_source, simulate
    from ledger.sim.summary import summary, summary_text

    config = build_config(
        products=products,
        prices=prices,
        synthetic_days=synthetic_days,
        holders=holders,
        orders_per_day=orders_per_day,
        seed=seed,
        step=step,
        start=start,
        days=days,
        fees=fees,
    )
    if not no_chart:
        check_chart_path(chart)
    url = state().db_url
    if replace:
        replace_database(url)  # only now: every option above was valid
    with _progress_bars() as progress:
        outcome = simulate(url, config, progress=progress)
    result = summary(outcome, source=price_source(config))
    result["chart"] = (
        None if no_chart else str(write_chart(outcome, chart, source=result["prices"]))
    )
    result["series"] = None if no_chart else str(series_path(chart))
    if not result["verify_ok"]:
        raise AuditFailed("verify found a problem after the simulation", result)
    emit(result, lambda: summary_text(result))


@contextmanager
def _progress_bars() -> Iterator[Callable[[int, int], Callable[[int], None]]]:
    """Yield a `progress` callback for `simulate` that draws a bar; close the bars after."""
    bars: list[Progress] = []

    def progress(total_days: int, _books: int) -> Callable[[int], None]:
        bar = Progress("simulating days", total_days)
        bar.__enter__()
        bars.append(bar)
        return bar.advance

    try:
        yield progress
    finally:
        for bar in bars:
            bar.__exit__(None, None, None)


def register(cli: click.Group) -> None:
    """Add this module's commands to the root group."""
    for command in (
        product_group,
        price_cmd,
        mint_cmd,
        redeem_cmd,
        rebalance_cmd,
        split_cmd,
        merge_cmd,
        close_cmd,
        nav_cmd,
        holders_cmd,
        statement_cmd,
        simulate_cmd,
    ):
        cli.add_command(command)
