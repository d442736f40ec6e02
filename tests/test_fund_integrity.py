"""Only the fund engine writes a product's book, and `verify` audits the fund's rules.

`post` and `reverse` (CLI and API) refuse a product's book with `fund_book`, writing nothing.
Entries forged behind the library's back, chained and balanced so that the kernel's own audit
passes (the book's reservation removed by SQL, the entry posted through the kernel, the
reservation put back), make `token-ledger verify` exit 3 naming the entry and the fund rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger.cli.main import cli
from ledger.clock import FixedClock
from ledger.domain.fund import accounts as acc
from ledger.domain.fund import entries
from ledger.domain.journal import EntryDraft, Posting
from ledger.errors import Reason, Rejected
from ledger.services.audit import verify_book
from ledger.services.funds import Funds
from ledger.services.ledger import Ledger, open_ledger
from ledger.storage import fund_store
from tests.test_kernel_support import execute_sql, row_counts

T0 = datetime(2026, 1, 5, 0, 5, tzinfo=UTC)
BOOK = "BTC3L"


@pytest.fixture
def funds(db_url: str) -> Iterator[Funds]:
    clock = FixedClock(T0)
    lg = open_ledger(db_url, clock=clock)
    lg.init()
    service = Funds(lg)
    service.create_product(BOOK)
    service.set_price("BTC", "100")
    service.mint(BOOK, "alice", cash="1000")
    service.mint(BOOK, "bob", cash="500")
    service.rebalance(BOOK)
    yield service
    lg.close()


def _state(lg: Ledger) -> tuple[object, ...]:
    return (lg.head(BOOK), lg.balances(BOOK), row_counts(lg))


def _cli(db_url: str, *args: str, stdin: str | None = None) -> object:
    return CliRunner().invoke(cli, ["--db", db_url, *args], input=stdin)


def test_post_and_reverse_refuse_a_product_book_api(funds: Funds) -> None:
    """`Ledger.post`, `post_many` and `reverse` of a product's book: fund_book, nothing written."""
    lg = funds.lg
    before = _state(lg)
    forged = EntryDraft(
        book=BOOK,
        kind="mark",
        effective_at=T0 + timedelta(hours=1),
        postings=(
            Posting(acc.COLLATERAL, "USDT", 500 * 10**6),
            Posting(acc.TRADING_PNL, "USDT", -500 * 10**6),
        ),
        metadata=(("price", "150"),),
    )
    for call in (lambda: lg.post(forged), lambda: lg.post_many([forged])):
        with pytest.raises(Rejected) as caught:
            call()
        assert caught.value.reason is Reason.FUND_BOOK
        assert str(caught.value).startswith("fund_book: book BTC3L belongs to a fund product")
    with pytest.raises(Rejected) as caught:
        lg.reverse(BOOK, lg.head(BOOK)[0])
    assert caught.value.reason is Reason.FUND_BOOK
    assert _state(lg) == before
    assert verify_book(lg, BOOK).ok


def test_post_and_reverse_refuse_a_product_book_cli(funds: Funds, db_url: str) -> None:
    """The CLI's `post` and `reverse`: one line, exit 2, nothing written."""
    lg = funds.lg
    before = _state(lg)
    entry = {
        "book": BOOK,
        "kind": "mark",
        "effective_at": "2026-01-05T01:00:00Z",
        "metadata": {"price": "150"},
        "postings": [
            {"account": "fund:collateral", "asset": "USDT", "amount": "500000000"},
            {"account": "income:trading-pnl", "asset": "USDT", "amount": "-500000000"},
        ],
    }
    posted = _cli(db_url, "post", "-", stdin=json.dumps(entry))
    assert posted.exit_code == 2, posted.output
    assert re.fullmatch(r"token-ledger: fund_book: book BTC3L belongs to .*\n", posted.stderr)
    reversed_ = _cli(db_url, "reverse", "--book", BOOK, str(lg.head(BOOK)[0]))
    assert reversed_.exit_code == 2, reversed_.output
    assert "fund_book" in reversed_.stderr and reversed_.stderr.count("\n") == 1
    assert _state(lg) == before


def _behind_the_back(lg: Ledger, draft: EntryDraft | None = None, reverse: int = 0) -> int:
    """Post `draft` (or the reversal of entry `reverse`) through the kernel after removing
    the book's reservation by SQL, then put the reservation back; return the new seq.
    The chain, hashes and balances stay consistent, so the kernel's audit passes.
    """
    execute_sql(lg, f"DELETE FROM tl_book_owners WHERE book = '{BOOK}'")
    lg._owners.clear()
    try:
        made = lg.reverse(BOOK, reverse) if reverse else lg.post(draft)  # type: ignore[arg-type]
    finally:
        execute_sql(lg, f"INSERT INTO tl_book_owners (book, owner) VALUES ('{BOOK}', 'fund')")
    assert lg.verify(BOOK).ok  # the kernel sees nothing wrong
    return made.seq


def _assert_finding(db_url: str, lg: Ledger, seq: int, rule: str) -> None:
    report = verify_book(lg, BOOK)
    assert (report.ok, report.first_bad_seq) == (False, seq), report
    assert f"fund rule {rule}:" in (report.problem or "")
    result = _cli(db_url, "verify", BOOK)
    assert result.exit_code == 3, result.output
    assert re.fullmatch(
        rf"token-ledger: verify failed: book {BOOK} at seq {seq}: fund rule {rule}: .*\n",
        result.stderr,
    ), result.stderr
    as_json = _cli(db_url, "--json", "verify", BOOK)
    assert as_json.exit_code == 3
    assert [(p["ok"], p["first_bad_seq"]) for p in json.loads(as_json.stdout)] == [(False, seq)]


def test_untouched_fund_book_verifies_with_the_fund_audit(funds: Funds, db_url: str) -> None:
    result = _cli(db_url, "verify", BOOK)
    assert result.exit_code == 0, result.stderr


def test_mint_priced_off_the_folds_nav_is_found(funds: Funds, db_url: str) -> None:
    """A mint that gives `mallory` shares at half the NAV (twice the shares)."""
    lg = funds.lg
    terms = funds.terms(BOOK)
    state = funds.state(BOOK)
    cheap = replace(state, collateral=state.collateral // 2)
    lg.open_account(acc.holder_account(BOOK, "mallory"))
    draft, _, _ = entries.mint(
        terms, cheap, holder="mallory", cash=1000 * 10**6, at=T0 + timedelta(minutes=1)
    )
    seq = _behind_the_back(lg, draft)
    _assert_finding(db_url, lg, seq, "mint_price")


def test_mark_with_the_wrong_pnl_is_found(funds: Funds, db_url: str) -> None:
    """A hand-made mark: price 150 recorded, but a P&L that is not q x (150 - 100)."""
    lg = funds.lg
    pnl = 500 * 10**6
    draft = EntryDraft(
        book=BOOK,
        kind="mark",
        effective_at=T0 + timedelta(minutes=1),
        postings=(
            Posting(acc.COLLATERAL, "USDT", pnl),
            Posting(acc.TRADING_PNL, "USDT", -pnl),
        ),
        metadata=(("price", "150"),),
    )
    seq = _behind_the_back(lg, draft)
    _assert_finding(db_url, lg, seq, "mark_pnl")


def test_reversed_wipeout_is_found(funds: Funds, db_url: str) -> None:
    """After a crash wipes the fund out, reversing the wipe-out brings NAV back from nothing:
    found as a reversal in a fund book, at the reversal's seq."""
    lg = funds.lg
    lg.clock.moment = T0 + timedelta(hours=1)  # type: ignore[attr-defined]
    update = funds.set_price("BTC", "60")  # -40% on 3x: equity gone
    assert "wipeout" in update["products"][0]["entries"]
    wipeout_seq = lg.head(BOOK)[0]
    assert next(iter(lg.entries(BOOK, from_seq=wipeout_seq))).draft.kind == "wipeout"
    seq = _behind_the_back(lg, reverse=wipeout_seq)
    _assert_finding(db_url, lg, seq, "no_reversal")


def test_state_record_edited_behind_the_back_is_found(funds: Funds, db_url: str) -> None:
    """Doubling the collateral in the fund's state record (not the journal) is found."""
    lg = funds.lg
    record = fund_store.load_record(lg.engine, BOOK)
    assert record is not None
    doubled = replace(record, state=replace(record.state, collateral=record.state.collateral * 2))
    with lg.engine.begin() as connection:
        fund_store.save_record(connection, BOOK, doubled)
    _assert_finding(db_url, lg, lg.head(BOOK)[0], "state_record")


def test_a_wiped_out_fund_stays_wiped_out_for_the_engine(funds: Funds, tmp_path: Path) -> None:
    """The fund engine itself never reverses: a wiped-out fund refuses mint and redeem."""
    funds.lg.clock.moment = T0 + timedelta(hours=1)  # type: ignore[attr-defined]
    funds.set_price("BTC", "60")
    for call in (
        lambda: funds.mint(BOOK, "carol", cash="100"),
        lambda: funds.redeem(BOOK, "alice", shares="1"),
    ):
        with pytest.raises(Rejected) as caught:
            call()
        assert caught.value.reason is Reason.FUND_WIPED_OUT


def test_an_auditor_replays_the_export_and_runs_the_fund_audit(
    funds: Funds, db_url: str, tmp_path: Path
) -> None:
    """Export the product's book, replay it into an empty database, record the product's
    parameters there (`product create`, same parameters), and `verify` runs the fund audit:
    ok for the real books; a forged entry in the export would not replay (hash mismatch)."""
    export = tmp_path / "BTC3L.jsonl"
    assert (
        _cli(db_url, "export", "--book", BOOK, "--format", "jsonl", "-o", str(export)).exit_code
        == 0
    )
    audit = f"sqlite:///{tmp_path / 'audit.db'}"
    assert _cli(audit, "init").exit_code == 0
    replayed = _cli(audit, "replay", str(export))
    assert replayed.exit_code == 0, replayed.output
    assert _cli(audit, "product", "create", BOOK).exit_code == 0
    lg = open_ledger(audit)
    try:
        assert fund_store.load_record(lg.engine, BOOK) is not None  # built from the journal
        report = verify_book(lg, BOOK)
        assert report.ok and report.head_seq == funds.lg.head(BOOK)[0]
        # The same state from the journal alone, but for a scheduled day that posted nothing
        # (the day's run found no shares): such a day lives only in the engine's records.
        original, rebuilt = funds.state(BOOK), Funds(lg).state(BOOK)
        assert replace(original, daily_on=None) == replace(rebuilt, daily_on=None)
        assert rebuilt.daily_on is None and original.daily_on is not None
    finally:
        lg.close()
    assert _cli(audit, "verify", BOOK).exit_code == 0
