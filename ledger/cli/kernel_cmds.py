"""CLI commands of the ledger kernel: schema, assets, accounts, entries, audit and export."""

from __future__ import annotations

import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import click

from ledger.cli.chain_cmds import chain_connection_options, connect_chain
from ledger.cli.common import (
    AuditFailed,
    Progress,
    emit,
    handle_errors,
    json_option,
    latest_time,
    open_cli_ledger,
    redact,
    state,
)
from ledger.domain.journal import MAX_SEQ, Account, AccountType, BalanceRule, JournalEntry
from ledger.domain.money import Asset, format_units
from ledger.errors import Reason, Rejected
from ledger.services.entry_input import MAX_ENTRY_BYTES, entry_from_bytes, parse_time

if TYPE_CHECKING:
    from ledger.services.ledger import Ledger, VerifyReport

DEFAULT_BOOK = "main"
book_option = click.option(
    "--book", default=DEFAULT_BOOK, show_default=True, help="The book (one fund = one book)."
)


def _ledger(*, create: bool = False) -> Ledger:
    """Open --db; unless `create`, refuse a SQLite file that does not exist yet."""
    return open_cli_ledger(create=create)


def entry_json(entry: JournalEntry, scales: dict[str, int]) -> dict[str, Any]:
    """Return the stable JSON form of a recorded entry (amounts as decimal strings)."""
    draft = entry.draft
    return {
        "book": draft.book,
        "seq": entry.seq,
        "kind": draft.kind,
        "effective_at": _utc_text(draft.effective_at),
        "recorded_at": _utc_text(entry.recorded_at),
        "key": draft.idempotency_key,
        "reverses": draft.reverses,
        "metadata": dict(draft.metadata),
        "postings": [
            {
                "account": p.account,
                "asset": p.asset,
                "units": str(p.amount),
                "amount": format_units(p.amount, scales.get(p.asset, 0)),
            }
            for p in draft.postings
        ],
        "prev_hash": entry.prev_hash.hex(),
        "hash": entry.hash.hex(),
    }


def _utc_text(moment: datetime) -> str:
    """Return an aware time as ISO 8601 in UTC with 'Z', whatever zone it was given in.

    The entry a `post` returns keeps the caller's zone, the stored one is UTC: without this the
    same entry would print differently from `post` and from `history`.
    """
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _entry_text(entry: JournalEntry) -> str:
    moment = entry.draft.effective_at.astimezone(UTC)
    lines = [f"#{entry.seq} {entry.draft.kind} {moment:%Y-%m-%d %H:%M:%S}Z"]
    lines += [f"  {p.account:<40} {p.amount:>30} {p.asset}" for p in entry.postings]
    lines.append(f"  hash {entry.hash.hex()}")
    return "\n".join(lines)


@click.command("init")
@json_option
@handle_errors
def init_cmd() -> None:
    """Create the ledger schema in --db, or upgrade an older one (idempotent).

    \b
    Example:
      token-ledger --db sqlite:///books.db init
      token-ledger --db postgresql://postgres@127.0.0.1:5432/test init
    """
    revision = _ledger(create=True).init()
    emit({"schema": revision, "db": redact(state().db_url)}, f"schema at revision {revision}")


@click.group("asset")
def asset_group() -> None:
    """Register assets (units of account with a fixed number of decimals)."""


@asset_group.command("add")
@click.argument("code")
@click.option("--decimals", type=click.IntRange(0, 36), required=True, help="Decimal places.")
@json_option
@handle_errors
def asset_add(code: str, decimals: int) -> None:
    """Register asset CODE with --decimals N (idempotent when N matches).

    \b
    Example:
      token-ledger asset add USDT --decimals 6
    """
    asset = _ledger().add_asset(Asset(code, decimals))
    emit({"code": asset.code, "decimals": asset.scale}, f"asset {asset.code} ({asset.scale} dp)")


@asset_group.command("list")
@json_option
@handle_errors
def asset_list() -> None:
    """List the registered assets.

    \b
    Example:
      token-ledger asset list --json
    """
    assets = _ledger().assets()
    emit(
        [{"code": a.code, "decimals": a.scale} for a in assets],
        lambda: "\n".join(f"{a.code:<16} {a.scale}" for a in assets) or "no assets",
    )


@click.group("account")
def account_group() -> None:
    """Open and list accounts."""


@account_group.command("open")
@click.argument("code")
@click.option("--type", "type_", type=click.Choice([t.value for t in AccountType]), required=True)
@book_option
@click.option("--non-negative", is_flag=True, help="Refuse any write that takes it below zero.")
@click.option("--non-positive", is_flag=True, help="Refuse any write that takes it above zero.")
@json_option
@handle_errors
def account_open(code: str, type_: str, book: str, non_negative: bool, non_positive: bool) -> None:
    """Open account CODE in --book (idempotent when identical).

    \b
    Example:
      token-ledger account open holder:alice --type liability --book BTC3L --non-negative
    """
    if non_negative and non_positive:
        raise Rejected(Reason.BAD_INPUT, "choose at most one of --non-negative and --non-positive")
    rule = (
        BalanceRule.NON_NEGATIVE
        if non_negative
        else BalanceRule.NON_POSITIVE
        if non_positive
        else BalanceRule.NONE
    )
    account = _ledger().open_account(Account(book, code, AccountType(type_), rule))
    emit(
        {"book": book, "code": code, "type": account.type.value, "rule": rule.value},
        f"opened {book}/{code} ({account.type.value}, {rule.value})",
    )


@account_group.command("list")
@book_option
@json_option
@handle_errors
def account_list(book: str) -> None:
    """List the accounts of --book.

    \b
    Example:
      token-ledger account list --book BTC3L
    """
    lg = _ledger()
    _check_known(lg, book)
    accounts = lg.accounts(book)
    emit(
        [{"code": a.code, "type": a.type.value, "rule": a.rule.value} for a in accounts],
        lambda: "\n".join(f"{a.code:<40} {a.type.value:<10} {a.rule.value}" for a in accounts),
    )


@click.command("post")
@click.argument("file", type=click.File("rb"))
@json_option
@handle_errors
def post_cmd(file: BinaryIO) -> None:
    """Append one entry read as JSON from FILE (`-` for stdin); see docs/cli.md.

    \b
    Example:
      echo '{"book":"main","kind":"transfer","key":"t-1",
             "effective_at":"2020-03-12T00:00:00Z","metadata":{},
             "postings":[{"account":"cash","asset":"USDT","amount":"-100"},
                         {"account":"fees","asset":"USDT","amount":"100"}]}' \\
        | token-ledger post -
    A repeated key with the same content returns the original entry; with other content
    it is refused. FILE is UTF-8 JSON of at most 1 MiB.
    """
    data = file.read(MAX_ENTRY_BYTES + 1)  # read no more than the limit
    draft = entry_from_bytes(data, not_after=latest_time())
    lg = _ledger()
    entry = lg.post(draft)
    emit(entry_json(entry, _scales(lg)), lambda: _entry_text(entry))


@click.command("reverse")
@click.argument("seq", type=click.IntRange(1, MAX_SEQ))
@book_option
@click.option("--key", default=None, help="Idempotency key for the reversing entry.")
@click.option("--at", "at", default=None, help="Effective time (ISO 8601 with zone); default now.")
@json_option
@handle_errors
def reverse_cmd(seq: int, book: str, key: str | None, at: str | None) -> None:
    """Append the entry that exactly undoes entry SEQ of --book (a correction).

    \b
    Example:
      token-ledger reverse 42 --book BTC3L --key fix-42
    """
    moment = None if at is None else parse_time(at, not_after=latest_time())  # before the db
    lg = _ledger()
    entry = lg.reverse(book, seq, key=key, effective_at=moment)
    emit(entry_json(entry, _scales(lg)), lambda: _entry_text(entry))


@click.command("balances")
@book_option
@click.option("--account", default=None, help="Only this account.")
@click.option("--as-of-seq", type=click.IntRange(0, MAX_SEQ), default=None, help="As of entry N.")
@click.option("--at", "at", default=None, help="As of a business time (ISO 8601 with zone).")
@json_option
@handle_errors
def balances_cmd(book: str, account: str | None, as_of_seq: int | None, at: str | None) -> None:
    """Show the trial balance of --book (per account and asset), now or as of a point.

    \b
    Examples:
      token-ledger balances --book BTC3L
      token-ledger balances --book BTC3L --account holder:alice --at 2020-03-12T12:00:00Z
    """
    moment = None if at is None else parse_time(at)  # input is checked before the database
    lg = _ledger()
    _check_known(lg, book, account)
    scales = _scales(lg)
    if as_of_seq is None and at is None:
        rows = lg.balances(book, account=account)
    else:
        accounts = [account] if account else [a.code for a in lg.accounts(book)]
        rows = {}
        for code in accounts:
            for asset in scales:
                units = lg.balance(book, code, asset, as_of_seq=as_of_seq, as_of_time=moment)
                if units:
                    rows[(code, asset)] = units
    totals: dict[str, int] = {}
    for (_, asset), units in rows.items():
        totals[asset] = totals.get(asset, 0) + units
    payload = {
        "book": book,
        "balances": [
            {"account": a, "asset": c, "units": str(u), "amount": format_units(u, scales[c])}
            for (a, c), u in sorted(rows.items())
        ],
        "totals": {c: str(u) for c, u in sorted(totals.items())},
    }

    def text() -> str:
        lines = [
            f"{a:<40} {format_units(u, scales[c]):>40} {c}" for (a, c), u in sorted(rows.items())
        ]
        lines.append("-" * 90)
        lines += [f"{'total':<40} {format_units(u, scales[c]):>40} {c}" for c, u in totals.items()]
        return "\n".join(lines)

    emit(payload, text)


@click.command("history")
@click.argument("account")
@book_option
@json_option
@handle_errors
def history_cmd(account: str, book: str) -> None:
    """List the entries of --book that post to ACCOUNT, oldest first.

    \b
    Example:
      token-ledger history holder:alice --book BTC3L --json
    """
    lg = _ledger()
    _check_known(lg, book, account)
    entries = lg.history(book, account)
    scales = _scales(lg)
    emit(
        [entry_json(e, scales) for e in entries],
        lambda: "\n".join(_entry_text(e) for e in entries) or "no entries",
    )


@click.command("verify")
@click.argument("books", nargs=-1)
@click.option("--chain", is_flag=True, help="Also check every anchor written to the chain.")
@chain_connection_options
@json_option
@handle_errors
def verify_cmd(
    books: tuple[str, ...],
    chain: bool,
    rpc_url: str | None,
    allow_remote_rpc: bool,
    chain_dir: str | None,
) -> None:
    """Re-check BOOKS (default: every book): chain, hashes, balances, rules.

    Recomputes every hash and every balance from the postings alone and names the first
    sequence number where anything disagrees. A product's book is also folded through the
    fund's rules (docs/funds.md, "Audit"): every mark, mint, redeem, rebalance, fee, funding,
    split and wipe-out recomputed, and the fund's state record compared. Exit 0 when all is
    well, 3 on a finding.

    \b
    Examples:
      token-ledger verify
      token-ledger verify BTC3L --chain
    """
    from ledger.services.audit import verify_book

    lg = _ledger()
    names = list(books) or lg.books()
    reports: list[VerifyReport] = []
    for book in names:
        with Progress(f"verify {book}", lg.head(book)[0]) as bar:
            reports.append(verify_book(lg, book, progress=bar.advance))
    payload: list[dict[str, Any]] = [_report_json(r) for r in reports]
    if chain:
        from ledger.chain import verify_anchors

        w3 = connect_chain(rpc_url=rpc_url, allow_remote_rpc=allow_remote_rpc, chain_dir=chain_dir)
        for item, book in zip(payload, names, strict=True):
            anchors = verify_anchors(lg, book, w3=w3)
            item["chain"] = {
                "address": anchors.address,
                "anchors": anchors.anchors,
                "ok": anchors.ok,
                "mismatches": [
                    {
                        "seq": m.seq,
                        "anchored_hash": m.anchored_hash,
                        "database_hash": m.database_hash,
                    }
                    for m in anchors.mismatches
                ],
            }
            if not anchors.ok:
                item["ok"] = False
                if item["problem"] is None:
                    item["problem"] = f"chain anchors: {anchors.problem}"
                    item["first_bad_seq"] = anchors.mismatches[0].seq
    bad = [item for item in payload if not item["ok"]]
    text = "\n".join(_report_text(item) for item in payload) or "no books"
    if bad:
        first = bad[0]
        if not state().json_output:
            click.echo(text)
        raise AuditFailed(
            f"verify failed: book {first['book']} at seq {first['first_bad_seq']}:"
            f" {first['problem']}",
            payload,
        )
    emit(payload, text)


def _report_json(report: VerifyReport) -> dict[str, Any]:
    return {
        "book": report.book,
        "ok": report.ok,
        "entries": report.entries,
        "head_seq": report.head_seq,
        "head_hash": report.head_hash,
        "first_bad_seq": report.first_bad_seq,
        "problem": report.problem,
    }


def _report_text(item: dict[str, Any]) -> str:
    if item["ok"]:
        head = f"head {item['head_seq']} {item['head_hash'][:16]}"
        return f"{item['book']}: ok, {item['entries']} entries, {head}"
    return f"{item['book']}: FAILED at seq {item['first_bad_seq']}: {item['problem']}"


@click.command("export")
@book_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "ledger", "beancount"]),
    default="jsonl",
    show_default=True,
    help="jsonl replays exactly; ledger and beancount are for audit tools.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file (default: stdout).",
)
@json_option
@handle_errors
def export_cmd(book: str, fmt: str, output: Path | None) -> None:
    """Export --book as JSON Lines (replayable), ledger-cli or beancount.

    Without -o the export itself goes to stdout (--json is then ignored); with -o, --json
    prints a summary {"book", "format", "entries", "output"}.

    \b
    Examples:
      token-ledger export --book BTC3L --format jsonl -o btc3l.jsonl
      token-ledger export --book BTC3L --format ledger -o btc3l.ledger && ledger -f btc3l.ledger bal
    """
    from ledger.services.exports import check_output_path, export_book, export_to_path

    if output is not None:
        check_output_path(output)  # a bad path is refused before the database is opened
    lg = _ledger()
    if output is None:
        # Buffered (in memory, then a temporary file): a refused export prints nothing at all.
        with tempfile.SpooledTemporaryFile(
            max_size=16 << 20, mode="w+", encoding="utf-8", newline="\n"
        ) as buffer:
            export_book(lg, book, fmt, buffer)
            buffer.seek(0)
            shutil.copyfileobj(buffer, sys.stdout)
        return
    with Progress(f"export {book}", lg.head(book)[0]):
        count = export_to_path(lg, book, fmt, output)
    summary = {"book": book, "format": fmt, "entries": count, "output": str(output)}
    if state().json_output:
        emit(summary)
    else:
        click.echo(f"exported {count} entries of {book} to {output}", err=True)


@click.command("replay")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
@handle_errors
def replay_cmd(file: Path) -> None:
    """Rebuild a book from a JSON Lines export into --db, checking it as it goes.

    Every hash is recomputed against the file's entries and header definitions, and every link,
    balance, rule, reversal and the trailer is checked, in one pass. The book must have no
    entries in --db yet (an export always starts at entry 1). All or nothing: on any error
    nothing is written.

    \b
    Example:
      token-ledger --db sqlite:///audit.db init
      token-ledger --db sqlite:///audit.db replay btc3l.jsonl
    """
    from ledger.services.exports import replay_file

    lg = _ledger()
    with Progress(f"replay {file.name}", None) as bar:
        report = replay_file(lg, file, progress=bar.advance)
    item = _report_json(report)
    if not report.ok:
        raise AuditFailed(f"replayed book {report.book} does not verify: {report.problem}", item)
    emit(item, _report_text(item))


def _check_known(lg: Ledger, book: str, account: str | None = None) -> None:
    """Refuse an unknown book or account: a typo must not read as an empty, zero ledger."""
    if book not in lg.books():
        raise Rejected(Reason.UNKNOWN_BOOK, f"unknown book {book!r}")
    if account is not None and account not in {a.code for a in lg.accounts(book)}:
        raise Rejected(Reason.UNKNOWN_ACCOUNT, f"account {account} is not open in book {book}")


def _scales(lg: Ledger) -> dict[str, int]:
    return {asset.code: asset.scale for asset in lg.assets()}


def register(cli: click.Group) -> None:
    """Add the kernel commands to the root group."""
    for command in (
        init_cmd,
        asset_group,
        account_group,
        post_cmd,
        reverse_cmd,
        balances_cmd,
        history_cmd,
        verify_cmd,
        export_cmd,
        replay_cmd,
    ):
        cli.add_command(command)
