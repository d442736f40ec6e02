"""The share index: a split or merge of a fund with thousands of holders is one entry of two
postings, every holder's units (so their value) are untouched and their shares follow the
ratio exactly as the ERC-20 mirror's `balanceOf` does; statements, redemptions, the ledger-cli
and beancount exports and the proofs agree with `holders` after several splits and merges; and
`verify` checks the index. The expected shares come from exact fractions and the ratios here,
not from the engine's functions.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.clock import FixedClock
from ledger.domain.fund import accounts as acc
from ledger.domain.fund.fold import FundFold
from ledger.domain.fund.shareindex import (
    in_shares,
    shares_of,
    units_showing,
    units_to_cancel,
)
from ledger.domain.journal import Posting
from ledger.domain.money import format_units, parse_units
from ledger.errors import Reason, Rejected
from ledger.export.beancount import beancount_accounts
from ledger.export.ledgercli import ledger_accounts
from ledger.services.audit import verify_book
from ledger.services.exports import export_to_path
from ledger.services.funds import Funds
from ledger.services.ledger import Ledger, open_ledger
from ledger.services.proof import liabilities_at
from tests.conftest import T0, require
from tests.fund.helpers import ZERO_FEES
from tests.test_export_ledgercli import ledger_balances

BOOK = "BTC3L"
ONE = 10**18
# OLD:NEW as the CLI takes them: split 1:10, merge 7:1, split 2:3, merge 1000:1, split 1:4.
STEPS = (("split", "1:10", 10, 1), ("merge", "7:1", 1, 7), ("split", "2:3", 3, 2))
MORE = (("merge", "1000:1", 1, 1000), ("split", "1:4", 4, 1))

ratios = st.lists(
    st.tuples(st.integers(1, 10**6), st.integers(1, 10**6)).filter(lambda r: r[0] != r[1]),
    max_size=6,
)


def exact(units: int, index: list[tuple[int, int]]) -> Fraction:
    """The holder's shares with no rounding: units times the product of the ratios."""
    value = Fraction(units)
    for num, den in index:
        value *= Fraction(num, den)
    return value


def slack(index: list[tuple[int, int]]) -> Fraction:
    """How far below `exact` rounding each ratio down can leave: < 1 at each step, scaled by
    the ratios after it."""
    total, scale = Fraction(0), Fraction(1)
    for num, den in reversed(index):
        total += scale
        scale *= Fraction(num, den)
    return total


@settings(max_examples=200, deadline=None)
@given(units=st.integers(0, 2**256 - 1), index=ratios)
def test_shares_round_down_from_the_exact_product(units: int, index: list[tuple[int, int]]) -> None:
    """shares(u) is within the stated rounding below u x prod(num/den), never above."""
    shown = shares_of(units, tuple(index))
    assert exact(units, index) - slack(index) <= shown <= exact(units, index)


@settings(max_examples=200, deadline=None)
@given(held=st.integers(1, 10**30), index=ratios, part=st.fractions(0, 1))
def test_a_redemption_cancels_the_fewest_units_that_take_the_shares(
    held: int, index: list[tuple[int, int]], part: Fraction
) -> None:
    """Redeeming s shares cancels the fewest units that lower the holder's shares by s or
    more; all of them for the whole balance; more shares than held are refused."""
    idx = tuple(index)
    shown = shares_of(held, idx)
    asked = int(shown * part)
    if asked == 0:
        return
    units = units_to_cancel(asked, held, idx)
    assert 0 < units <= held
    assert shown - shares_of(held - units, idx) >= asked
    if asked == shown:
        assert units == held
    else:
        assert shown - shares_of(held - units + 1, idx) < asked  # one unit fewer is short
    with pytest.raises(Rejected) as refused:
        units_to_cancel(shown + 1, held, idx)
    assert refused.value.reason is Reason.INSUFFICIENT_SHARES


@settings(max_examples=200, deadline=None)
@given(shares=st.integers(0, 10**30), index=ratios)
def test_the_first_units_after_an_index_show_at_most_the_shares_bought(
    shares: int, index: list[tuple[int, int]]
) -> None:
    """An emptied fund's first mint gets the most units that show at most its shares."""
    idx = tuple(index)
    units = units_showing(shares, idx)
    assert shares_of(units, idx) <= shares < shares_of(units + 1, idx)


def _fund(url: str, holders: int) -> tuple[Ledger, Funds, FixedClock]:
    clock = FixedClock(T0)
    lg = open_ledger(url, clock=clock)
    lg.init()
    return lg, populated(lg, holders), clock


def populated(lg: Ledger, holders: int) -> Funds:
    """Create BTC3L (no fees, no price age, no merge policy) and mint `holders` holders in
    netted batches of 500 (one second apart on the ledger's FixedClock)."""
    clock = lg.clock
    assert isinstance(clock, FixedClock)
    funds = Funds(lg)
    funds.create_product(BOOK, **ZERO_FEES, max_price_age=None, merge_nav_below=None)
    funds.set_price("BTC", "100")
    mints = [
        {"side": "mint", "holder": f"h{i:05d}", "cash": str(10 + (i * 37) % 990)}
        for i in range(holders)
    ]
    for start in range(0, holders, 500):
        clock.moment += timedelta(seconds=1)
        funds.orders(BOOK, mints[start : start + 500])
    return funds


def _units(lg: Ledger) -> dict[str, int]:
    cut = len(acc.HOLDER_PREFIX)
    return {
        code[cut:]: units
        for (code, _), units in lg.balances(BOOK, asset=BOOK).items()
        if code.startswith(acc.HOLDER_PREFIX) and units
    }


def _shown(funds: Funds) -> dict[str, int]:
    return {r["holder"]: parse_units(r["shares"], 18) for r in funds.holders(BOOK)["holders"]}


def _split_checks(
    lg: Ledger, funds: Funds, kind: str, ratio: str, num: int, den: int
) -> dict[str, int]:
    """Run one split/merge and check it against the shares and values before it."""
    units, shares, state = _units(lg), _shown(funds), funds.state(BOOK)
    head = lg.head(BOOK)[0]
    done = funds.split(BOOK, ratio, kind=kind)
    assert lg.head(BOOK)[0] == head + 1 == done["seq"]  # one entry ...
    entry = lg.entry(BOOK, done["seq"])
    assert len(entry.postings) == 2  # ... of two postings, whatever the number of holders
    assert _units(lg) == units  # no unit moved
    after_state = funds.state(BOOK)
    assert after_state.shares == state.shares * num // den  # S' = floor(S x num / den)
    after = _shown(funds)
    equity = Fraction(after_state.collateral)
    for holder, before in shares.items():
        now = after.get(holder, 0)
        assert now == before * num // den  # balanceOf's rule: the ratio on the old shares
        # Its value at NAV moves only by the rounding: the holder's share down by < 1 base
        # unit, the shares outstanding by < 1.
        value_before = before * equity / state.shares
        value_after = now * equity / after_state.shares
        assert value_after - value_before <= value_before / (after_state.shares - 1)
        assert value_before - value_after <= equity / after_state.shares
    remainder = parse_units(funds.holders(BOOK)["remainder"], 18)
    assert remainder == after_state.shares - sum(after.values())
    # What was left scales with the ratio; the holders' rounding adds < 1 base unit each.
    bound = -(-_BOUND[0] * num // den) + len(units)
    assert 0 <= remainder <= bound
    _BOUND[0] = bound
    return after


_BOUND = [0]  # the rounding bound so far of the fund `_scenario` runs (one at a time)


def _ledger_cli_holders(path: Path, lg: Ledger) -> dict[str, int]:
    """Every holder's balance of shares and the share index's, as the `ledger` binary reads
    the export."""
    codes = {name: code for code, name in ledger_accounts(lg.accounts(BOOK)).items()}
    assets = {a.code: a for a in lg.assets()}
    found: dict[str, int] = {}
    cut = len(acc.HOLDER_PREFIX)
    for (code, asset), units in ledger_balances(path, codes=codes, assets=assets).items():
        if asset == BOOK and code.startswith(acc.HOLDER_PREFIX) and units:
            found[code[cut:]] = units
        elif asset == BOOK and code == acc.SHARE_INDEX:
            found["<remainder>"] = units
    return found


def _beancount_holders(path: Path, lg: Ledger) -> dict[str, int]:
    from beancount import loader
    from beancount.core import realization

    entries, errors, _ = loader.load_file(str(path))
    assert errors == []
    codes = {name: code for code, name in beancount_accounts(lg.accounts(BOOK)).items()}
    found: dict[str, int] = {}
    cut = len(acc.HOLDER_PREFIX)
    for real in realization.iter_children(realization.realize(entries)):
        code = codes.get(real.account, "")
        for position in real.balance:
            if position.units.currency != BOOK:
                continue
            number = Decimal(position.units.number).scaleb(18)
            assert number == number.to_integral_value()
            if code.startswith(acc.HOLDER_PREFIX) and number:
                found[code[cut:]] = int(number)
            elif code == acc.SHARE_INDEX:
                found["<remainder>"] = int(number)
    return found


def _scenario(
    lg: Ledger, funds: Funds, clock: FixedClock, steps: tuple[tuple[str, str, int, int], ...]
) -> None:
    """Splits and merges with orders between them; every check after each."""
    _BOUND[0] = 0
    for n, (kind, ratio, num, den) in enumerate(steps):
        clock.moment += timedelta(minutes=1)
        funds.set_price("BTC", str(100 + 3 * n))
        _split_checks(lg, funds, kind, ratio, num, den)
        clock.moment += timedelta(minutes=1)
        shown = _shown(funds)
        ids = sorted(shown)
        full, part, new = ids[n], ids[n + 7], f"late{n}"
        # A redemption of a holder's whole balance cancels every unit they hold.
        paid = funds.redeem(BOOK, full, shares=format_units(shown[full], 18))
        state_before_pay = funds.state(BOOK)
        assert full not in _units(lg)
        # Its result states the shares it took and the units: the holder's whole balance.
        assert paid["shares_delta"] == "-" + format_units(shown[full], 18)
        assert paid["units_delta"].startswith("-") and paid["units_delta"] != paid["shares_delta"]
        # A part: the shares fall by at least what was asked; the units cancelled are paid
        # at the value per unit (zero fees: the exact pro rata of the equity, rounded down).
        asked = shown[part] // 3
        units_before, state = _units(lg)[part], funds.state(BOOK)
        out = funds.redeem(BOOK, part, shares=format_units(asked, 18))
        units_after = _units(lg)[part]
        cancelled = units_before - units_after
        assert shown[part] - _shown(funds)[part] >= asked
        assert parse_units(out["paid"], 6) == cancelled * state.collateral // state.supply
        assert state_before_pay.supply >= state.supply
        funds.mint(BOOK, new, cash="123.45")
        assert _shown(funds)[new] > 0
    # Statements: each holder's shares and the changes that add up to them.
    shown = _shown(funds)
    for holder in sorted(shown)[:40:7]:
        statement = funds.statement(BOOK, holder)
        assert parse_units(statement["shares"], 18) == shown[holder]
        assert (
            sum(parse_units(e["shares_delta"], 18) for e in statement["entries"]) == shown[holder]
        )
        assert (
            sum(parse_units(e["units_delta"], 18) for e in statement["entries"])
            == _units(lg)[holder]
        )
        kinds = {e["kind"] for e in statement["entries"]}
        assert {"split", "merge"} <= kinds  # the splits while they held units are listed
    # The proofs' leaves are the holders' shares, the rest of the supply is the rounding.
    register = liabilities_at(lg, BOOK).register
    assert register.units == shown
    assert register.remainder == parse_units(funds.holders(BOOK)["remainder"], 18)
    assert verify_book(lg, BOOK).ok


def test_several_splits_and_merges_of_three_thousand_holders(tmp_path: Path) -> None:
    """3,000 holders through five splits and merges with orders between them."""
    lg, funds, clock = _fund(f"sqlite:///{tmp_path / 'index.db'}", 3000)
    _scenario(lg, funds, clock, STEPS + MORE)
    # The ledger-cli and beancount exports give every holder's shares exactly as `holders`,
    # and `equity:share-index` the rounding no holder shows.
    shown = _shown(funds)
    want = {**shown, "<remainder>": parse_units(funds.holders(BOOK)["remainder"], 18)}
    require(shutil.which("ledger") is not None, "the ledger binary (Debian package ledger)")
    export_to_path(lg, BOOK, "ledger", tmp_path / "book.ledger")
    assert _ledger_cli_holders(tmp_path / "book.ledger", lg) == want
    export_to_path(lg, BOOK, "beancount", tmp_path / "book.beancount")
    assert _beancount_holders(tmp_path / "book.beancount", lg) == want
    lg.close()


@pytest.mark.postgres
def test_several_splits_and_merges_on_postgres(pg_url: str) -> None:
    """The same on PostgreSQL, 600 holders (uint256-safe amounts, the same rounding)."""
    lg, funds, clock = _fund(pg_url, 600)
    try:
        _scenario(lg, funds, clock, STEPS)
    finally:
        lg.close()


def test_verify_checks_the_index(tmp_path: Path) -> None:
    """A split whose recorded index or shares outstanding is not its ratio's, an order after
    it whose shares outstanding do not follow the holders' shares, or holders showing more
    shares than are outstanding: each is the fund audit's finding at that entry."""
    lg, funds, clock = _fund(f"sqlite:///{tmp_path / 'tamper.db'}", 50)
    clock.moment += timedelta(minutes=1)
    split = funds.split(BOOK, "2:3")["seq"]
    clock.moment += timedelta(minutes=1)
    order = funds.mint(BOOK, "h00001", cash="77")["seq"]
    entries = list(lg.entries(BOOK))
    terms = funds.terms(BOOK)

    def fold(changed: dict[int, object]) -> tuple[int, str] | None:
        folded = FundFold(terms)
        finding = folded.apply_all(changed.get(e.seq, e) for e in entries)  # type: ignore[misc]
        finding = finding or folded.index_finding()
        return None if finding is None else (finding.seq, finding.rule)

    assert fold({}) is None
    entry = entries[split - 1]
    meta = dict(entry.draft.metadata)
    for key, value in (("epoch", "2"), ("shares_after", str(int(meta["shares_after"]) + 1))):
        doctored = replace(
            entry,
            draft=replace(entry.draft, metadata=tuple(sorted({**meta, key: value}.items()))),
        )
        assert fold({split: doctored}) == (split, "split"), key
    # The ratio itself changed with postings to match: the fold recomputes S' and the index.
    shares = int(meta["shares_after"])
    wrong = replace(
        entry,
        draft=replace(
            entry.draft,
            metadata=tuple(sorted({**meta, "ratio_num": "4"}.items())),
        ),
    )
    assert fold({split: wrong}) == (split, "split")
    # An order that moves the shares outstanding by one unit more than its holder's shares.
    mint = entries[order - 1]
    bumped = tuple(
        Posting(p.account, p.asset, p.amount - 1)
        if p.account == acc.SHARES_OUTSTANDING
        else Posting(p.account, p.asset, p.amount + 1)
        if p.account == acc.SHARE_INDEX
        else p
        for p in mint.postings
    )
    assert any(p.account == acc.SHARE_INDEX for p in mint.postings)
    assert fold({order: replace(mint, draft=replace(mint.draft, postings=bumped))}) == (
        order,
        "mint_price",
    )
    assert shares > 0 and verify_book(lg, BOOK).ok
    lg.close()


def test_an_emptied_fund_restarts_at_the_initial_nav_per_share(tmp_path: Path) -> None:
    """After a split every holder redeems everything; the next first mint is priced so that a
    share is worth the initial NAV again, not a unit."""
    lg, funds, _ = _fund(f"sqlite:///{tmp_path / 'empty.db'}", 3)
    funds.split(BOOK, "1:10")
    for holder, shares in _shown(funds).items():
        funds.redeem(BOOK, holder, shares=format_units(shares, 18))
    assert funds.state(BOOK).supply == 0
    out = funds.mint(BOOK, "fresh", cash="1000")
    assert out["nav"]["nav_per_share"] == "100.000000"  # the product's initial NAV
    assert _shown(funds) == {"fresh": 10 * ONE}
    assert verify_book(lg, BOOK).ok
    lg.close()


def test_the_export_stream_shows_shares_and_balances_each_entry() -> None:
    """`in_shares` over a fund's journal: the share asset sums to zero in every entry it
    yields, and the holders' sums are their shares."""
    from ledger.services.ledger import open_ledger as opened

    lg = opened("sqlite://", clock=FixedClock(T0))
    lg.init()
    funds = Funds(lg)
    funds.create_product(BOOK, **ZERO_FEES, max_price_age=None)
    funds.set_price("BTC", "100")
    for i, cash in enumerate(("100", "33.33", "7.77")):
        funds.mint(BOOK, f"h{i}", cash=cash)
    funds.merge(BOOK, "7:1")
    funds.mint(BOOK, "h1", cash="5")
    funds.split(BOOK, "3:11")
    funds.redeem(BOOK, "h0", shares="0.5")
    totals: dict[str, int] = {}
    for entry in in_shares(lg.entries(BOOK), BOOK):
        share = [p for p in entry.postings if p.asset == BOOK]
        assert sum(p.amount for p in share) == 0, entry.seq
        for p in share:
            totals[p.account] = totals.get(p.account, 0) + p.amount
    shown = _shown(funds)
    assert {
        k[len("holder:") :]: v for k, v in totals.items() if k.startswith("holder:") and v
    } == shown
    assert -totals[acc.SHARES_OUTSTANDING] == funds.state(BOOK).shares
    lg.close()


def test_nav_at_a_past_time_reads_the_index_then(tmp_path: Path) -> None:
    """`nav --at` rebuilds supply (shares), units and the index as of that time."""
    lg, funds, clock = _fund(f"sqlite:///{tmp_path / 'at.db'}", 5)
    before = clock.moment
    clock.moment += timedelta(minutes=1)
    funds.split(BOOK, "1:10")
    clock.moment += timedelta(minutes=1)
    funds.merge(BOOK, "7:1")
    then, now = funds.nav(BOOK, at=before), funds.nav(BOOK)
    assert then["index"] == "" and then["supply"] == then["units"]
    middle = funds.nav(BOOK, at=before + timedelta(minutes=1, seconds=30))
    assert middle["index"] == "10/1" and middle["units"] == then["units"]
    assert parse_units(middle["supply"], 18) == parse_units(then["supply"], 18) * 10
    assert (now["index"], now["supply"], now["units"]) == (
        "10/1 1/7",
        format_units(funds.state(BOOK).shares, 18),
        then["units"],
    )
    lg.close()


def test_the_rounding_check_bounds_the_remainder() -> None:
    """The audit's last check: holders showing more shares than are outstanding, or short of
    them by more than the splits can round away, is a `share_index` finding."""
    from ledger.domain.fund.state import FundState
    from tests.fund.helpers import zero_fee_terms

    fold = FundFold(zero_fee_terms(BOOK))
    fold.holders = {"a": 7, "b": 8}
    fold.state = FundState(collateral=10, supply=15, index=((1, 2),), index_gap=-8)  # S = 7
    fold.rounding_bound = 2
    assert fold.index_finding() is None  # 3 + 4 = 7 shown: no remainder
    fold.state = replace(fold.state, index_gap=-9)  # S = 6 < 7 shown
    finding = fold.index_finding()
    assert finding is not None and finding.rule == "share_index"
    fold.state = replace(fold.state, index_gap=-5)  # S = 10: 3 short, the bound is 2
    assert fold.index_finding() is not None
    fold.rounding_bound = 3
    assert fold.index_finding() is None


def test_a_book_from_before_the_index_still_verifies_and_then_splits_by_it(
    tmp_path: Path,
) -> None:
    """A per-holder split as the engine wrote it before the share index (holders posted, the
    remainder to the treasury) folds and verifies by the old rule; the next split goes
    through the index on top of it; a per-holder split after that is a finding."""
    from ledger.domain.fund.split import split_shares
    from ledger.services.fund_operation import FUND_OWNER

    lg, funds, clock = _fund(f"sqlite:///{tmp_path / 'old.db'}", 20)
    terms = funds.terms(BOOK)
    clock.moment += timedelta(minutes=1)
    old, state, _ = split_shares(
        terms, funds.state(BOOK), _units(lg), num=1, den=7, at=clock.moment, kind="merge"
    )
    with lg.unit_of_work(owner=FUND_OWNER) as uow:
        uow.post([old])
    assert funds.record(BOOK).state.supply == state.supply  # the record rebuilt by the fold
    assert _units(lg)["treasury"] > 0  # the old rule gave the remainder to the treasury
    assert verify_book(lg, BOOK).ok
    before = _shown(funds)
    clock.moment += timedelta(minutes=1)
    funds.split(BOOK, "1:3")
    assert _shown(funds) == {h: s * 3 for h, s in before.items()}
    assert verify_book(lg, BOOK).ok
    late, _, _ = split_shares(
        terms, funds.state(BOOK), _units(lg), num=2, den=1, at=clock.moment, kind="split"
    )
    with lg.unit_of_work(owner=FUND_OWNER) as uow:
        uow.post([late])
    report = verify_book(lg, BOOK)
    assert not report.ok and report.first_bad_seq == lg.head(BOOK)[0]
    assert "index split" in (report.problem or "")
    lg.close()
