"""`verify` of a book as an auditor runs it: the kernel's chain, hashes, balances and rules,
then, for a product's book, the fund's rules (`ledger.domain.fund.fold`) and its state record.

    from ledger.services.audit import verify_book
    report = verify_book(lg, "BTC3L")   # VerifyReport; first_bad_seq names the first problem
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import datetime

from ledger.domain.fund.fold import FundFinding, FundFold
from ledger.domain.fund.state import FundRecord
from ledger.domain.fund.terms import Terms, terms_of
from ledger.domain.journal import JournalEntry
from ledger.services.ledger import Ledger, VerifyReport
from ledger.storage import fund_store


def verify_book(
    lg: Ledger, book: str, *, progress: Callable[[int], None] | None = None
) -> VerifyReport:
    """Verify `book`: the kernel's audit, and for a product the fund audit after it."""
    report = lg.verify(book, progress=progress)
    if not report.ok:
        return report
    params = fund_store.load_product(lg.engine, book)
    if params is None:
        return report
    finding = audit_fund(lg, terms_of(params))
    if finding is None:
        return report
    return replace(report, ok=False, first_bad_seq=finding.seq, problem=finding.text())


def audit_fund(lg: Ledger, terms: Terms) -> FundFinding | None:
    """Fold a product's book through the fund's rules (one read transaction) and compare the
    result with its state record; return the first finding, or None.
    """
    accruals: list[JournalEntry] = []

    def noting_accruals(items: Iterable[JournalEntry]) -> Iterator[JournalEntry]:
        for entry in items:
            if entry.draft.kind == "accrual":
                accruals.append(entry)
            yield entry

    with lg.reading() as unit:
        head = unit.head(terms.book)[0]
        fold = FundFold(terms)
        finding = fold.apply_all(noting_accruals(unit.entries(terms.book, to_seq=head)))
        if finding is None:
            finding = fold.index_finding()
        if finding is not None:
            return finding
        record = fund_store.load_record(unit.connection, terms.book)
        feed = fund_store.funding_rates(unit.connection, terms.underlying)
    finding = check_funding_feed(accruals, feed)
    if finding is not None:
        return finding
    return None if record is None else compare_record(fold, record, head)


def check_funding_feed(
    accruals: list[JournalEntry], feed: list[tuple[datetime, str]]
) -> FundFinding | None:
    """Return a finding if an accrual's funding rate is not the feed's rate in force at its
    start (the product's own rate, recorded as no `funding_rate`, before the first)."""
    times = [at for at, _ in feed]
    for entry in accruals:
        meta = dict(entry.draft.metadata)
        start = datetime.fromisoformat(meta["from"].replace("Z", "+00:00"))
        index = bisect_right(times, start)
        want = feed[index - 1][1] if index else None
        have = meta.get("funding_rate")
        if have != want:
            return FundFinding(
                entry.seq,
                "funding_feed",
                f"entry {entry.seq} (accrual): accrues at funding rate {have or 'of the product'}"
                f", the feed's rate from {meta['from']} is {want or 'none (the product rate)'}",
            )
    return None


def compare_record(fold: FundFold, record: FundRecord, head: int) -> FundFinding | None:
    """Return a finding if the state record disagrees with what the journal alone gives.

    The amounts, the mark basis and the rebalance reference must be equal; the record may
    know a later price (one that posted nothing) and a later scheduled day (one that
    posted nothing), never an earlier one.
    """

    def finding(problem: str) -> FundFinding:
        return FundFinding(head, "state_record", f"the fund's state record {problem}")

    if record.seq != head:
        return finding(f"describes seq {record.seq}, the book's head is {head}")
    want, have = fold.state, record.state
    names = ("collateral", "position", "supply", "shortfall", "mark_price", "rebalance_price")
    for name in (*names, "accrued_at", "closed", "index", "index_gap"):
        if getattr(have, name) != getattr(want, name):
            return finding(
                f"has {name} {getattr(have, name)}, the journal gives {getattr(want, name)}"
            )
    if want.daily_on is not None and (have.daily_on is None or have.daily_on < want.daily_on):
        return finding(f"has daily_on {have.daily_on}, the journal gives {want.daily_on}")
    if fold.last_at is not None and (record.last_at is None or record.last_at < fold.last_at):
        return finding("is older than the book's last entry")
    return None
