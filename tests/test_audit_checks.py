"""The audit's checks of an entry whose hash is right (a forger who recomputed every hash) agree
with an independent model of docs/canonical-encoding.md section 5, steps 6 and 7: every amount
non-zero and within +-(2**256 - 1), per asset a zero sum, every ruled balance on its side.

Entries of two postings take the audit's fast path and others the general one, so the books
mix both; the model knows no such split. Amounts are chosen near the edges that matter: zero,
the uint256 bound and one past it, sums that miss zero by one, two assets whose amounts cancel
numerically but not per asset, and one account posted twice.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.audit import Auditor, rows_of
from ledger.domain.canonical import GENESIS_HASH, definitions_of, seal
from ledger.domain.journal import (
    Account,
    AccountType,
    BalanceRule,
    EntryDraft,
    JournalEntry,
    Posting,
)
from ledger.domain.money import UINT256_MAX, Asset

BOOK = "F"
ASSETS = (Asset("USDT", 6), Asset("BTC", 8))
ACCOUNTS = (
    Account(BOOK, "a", AccountType.LIABILITY, BalanceRule.NON_NEGATIVE),
    Account(BOOK, "c", AccountType.ASSET, BalanceRule.NON_POSITIVE),
    Account(BOOK, "d", AccountType.ASSET),
    Account(BOOK, "e", AccountType.EQUITY),
)
RULES = {"a": 1, "c": -1}  # the side a ruled balance must stay on (or zero)
T0 = datetime(2021, 1, 1, tzinfo=UTC)

amounts = st.one_of(
    st.integers(-1000, 1000),
    st.sampled_from([0, UINT256_MAX, -UINT256_MAX, UINT256_MAX + 1, -UINT256_MAX - 1]),
)
line = st.tuples(st.sampled_from([a.code for a in ACCOUNTS]), st.sampled_from(["USDT", "BTC"]))


@st.composite
def entry_lines(draw: st.DrawFn) -> list[tuple[str, str, int]]:
    """A valid move half the time (so books run long enough to matter), else two lines
    whose amounts cancel across two assets, or random lines (one to four, often balanced)."""
    shape = draw(st.sampled_from(["move", "move", "move", "cross", "random"]))
    asset = draw(st.sampled_from(["USDT", "BTC"]))
    units = draw(st.integers(1, UINT256_MAX))
    if shape == "move":  # into a (non-negative) or out of c (non-positive), against d or e
        ruled, unruled = draw(st.sampled_from(["a", "c"])), draw(st.sampled_from(["d", "e"]))
        sign = 1 if ruled == "a" else -1
        pair = [(ruled, asset, sign * units), (unruled, asset, -sign * units)]
        return pair if draw(st.booleans()) else pair[::-1]
    if shape == "cross":
        other = "BTC" if asset == "USDT" else "USDT"
        return [("d", asset, units), (draw(line)[0], other, -units)]
    size = draw(st.sampled_from([2, 2, 1, 3, 4]))
    lines = [(*draw(line), draw(amounts)) for _ in range(size)]
    if size >= 2 and draw(st.booleans()):  # make the last line balance its asset
        account, asset, _ = lines[-1]
        rest = sum(u for _, c, u in lines[:-1] if c == asset)
        lines[-1] = (account, asset, -rest + draw(st.sampled_from([0, 0, 0, 1])))
    return lines


def model(book: list[list[tuple[str, str, int]]]) -> tuple[int, str] | None:
    """The first entry that breaks steps 6-7, and why, or None."""
    balances: dict[tuple[str, str], int] = {}
    for seq, lines in enumerate(book, start=1):
        for account, _, units in lines:
            if units == 0 or abs(units) > UINT256_MAX:
                return seq, f"posting to {account} of {units} is out of range"
        for asset in {c for _, c, _ in lines}:
            if sum(u for _, c, u in lines if c == asset) != 0:
                return seq, "postings do not sum to zero per asset"
        for account, asset, units in lines:
            balances[account, asset] = balances.get((account, asset), 0) + units
        for account, asset, _ in lines:
            side = RULES.get(account)
            if side is not None and balances[account, asset] * side < 0:
                return seq, f"{account} breaks its rule"
    return None


def _sealed(book: list[list[tuple[str, str, int]]]) -> list[JournalEntry]:
    definitions = definitions_of(ASSETS, ACCOUNTS)
    entries: list[JournalEntry] = []
    prev = GENESIS_HASH
    for seq, lines in enumerate(book, start=1):
        draft = EntryDraft(
            book=BOOK,
            kind="transfer",
            effective_at=T0,
            postings=tuple(Posting(a, c, u) for a, c, u in lines),
        )
        entry = seal(draft, seq=seq, recorded_us=seq, prev_hash=prev, definitions=definitions)
        entries.append(entry)
        prev = entry.hash
    return entries


@given(st.lists(entry_lines(), min_size=1, max_size=8))
def test_the_audit_judges_each_entry_as_the_model_does(
    book: list[list[tuple[str, str, int]]],
) -> None:
    entries = _sealed(book)
    rows, postings = rows_of(entries)
    auditor = Auditor(BOOK, definitions_of(ASSETS, ACCOUNTS))
    vouched = auditor.feed_chunk(rows, postings)
    expected = model(book)
    if expected is None:
        assert vouched and auditor.finding is None and auditor.head_seq == len(book)
        totals: dict[tuple[str, str], int] = {}
        for account, asset, units in (x for lines in book for x in lines):
            totals[account, asset] = totals.get((account, asset), 0) + units
        assert auditor.balances == totals
    else:
        assert not vouched and auditor.finding is not None
        assert (auditor.finding.seq, auditor.finding.problem[: len(expected[1])]) == expected
