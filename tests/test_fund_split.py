"""Split and merge: the share count scales by the ratio, NAV scales inversely, one entry each;
the per-holder rule of books from before the share index (`split_shares`, the remainder to the
treasury) that `verify` still applies to them; ratios and the split policy. The share index
itself: tests/test_fund_share_index.py."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.clock import FixedClock
from ledger.domain.fund.split import parse_ratio, policy_ratio, split_shares
from ledger.domain.fund.state import FundState, nav_per_share_units
from ledger.errors import Rejected
from ledger.services.funds import Funds
from ledger.services.ledger import open_ledger
from tests.fund.helpers import ZERO_FEES, zero_fee_terms

AT = datetime(2020, 1, 1, tzinfo=UTC)


def test_split_one_to_five_and_merge_back(tmp_path: Path) -> None:
    """NAV 10 split 1:5 gives NAV 2 and five times the shares; a 5:1 merge undoes it exactly."""
    lg = open_ledger(f"sqlite:///{tmp_path / 's.db'}", clock=FixedClock(AT))
    lg.init()
    funds = Funds(lg)
    funds.create_product("BTC3L", **ZERO_FEES, initial_nav="10")
    funds.set_price("BTC", "100", at=AT)
    funds.mint("BTC3L", "alice", cash="10", at=AT)  # 1 share, value 10
    funds.mint("BTC3L", "bob", cash="25", at=AT)  # 2.5 shares
    head = lg.head("BTC3L")[0]
    split = funds.split("BTC3L", "1:5", at=AT)
    assert lg.head("BTC3L")[0] == head + 1  # one entry
    assert (split["nav_before"], split["nav"]["nav_per_share"]) == ("10.000000", "2.000000")
    holders = {h["holder"]: h for h in funds.holders("BTC3L")["holders"]}
    assert holders["alice"]["shares"] == "5.000000000000000000"
    assert holders["alice"]["value"] == "10.000000"
    assert holders["bob"]["shares"] == "12.500000000000000000"
    assert split["remainder_to_treasury"] == "0.000000000000000000"
    entry = lg.entry("BTC3L", head + 1)
    assert entry.draft.kind == "split"
    assert dict(entry.draft.metadata)["ratio_num"] == "5"
    assert dict(entry.draft.metadata)["ratio_den"] == "1"
    merged = funds.merge("BTC3L", "5:1", at=AT)
    assert merged["nav"]["nav_per_share"] == "10.000000"
    holders = {h["holder"]: h for h in funds.holders("BTC3L")["holders"]}
    assert holders["alice"]["shares"] == "1.000000000000000000"
    assert holders["bob"]["value"] == "25.000000"
    assert lg.verify("BTC3L").ok


def test_reverse_split_rounding_goes_to_the_treasury() -> None:
    """123456.78999999 (8 decimals) merged 100,000:1 rounds down to 1.23456789; dust to treasury."""
    terms = zero_fee_terms("BTC3L", share_decimals=8)
    holders = {"alice": 12345678999999, "bob": 1}
    state = FundState(collateral=10**12, supply=sum(holders.values()), price=1)
    draft, after, new = split_shares(terms, state, holders, num=1, den=100_000, at=AT, kind="merge")
    assert new["alice"] == 123456789  # 1.23456789: down, not half-even's 1.23456790
    assert new["bob"] == 0
    assert after.supply == 123456790  # floor(12345679000000 / 100000)
    assert new["treasury"] == 1  # the remainder, posted, not dropped
    assert sum(new.values()) == after.supply
    assert sum(p.amount for p in draft.postings) == 0


@settings(max_examples=60, deadline=None)
@given(
    units=st.lists(st.integers(min_value=0, max_value=10**30), min_size=1, max_size=30),
    num=st.integers(min_value=1, max_value=10**6),
    den=st.integers(min_value=1, max_value=10**6),
    equity=st.integers(min_value=1, max_value=10**15),
)
def test_split_laws(units: list[int], num: int, den: int, equity: int) -> None:
    """Any ratio: supply = sum of holders, entry balances, each value within one unit of before."""
    if sum(units) * num // den == 0:
        return
    terms = zero_fee_terms("BTC3L")
    holders = {f"h{i}": u for i, u in enumerate(units)}
    state = FundState(collateral=equity, supply=sum(units), price=1)
    draft, after, new = split_shares(terms, state, holders, num=num, den=den, at=AT)
    assert sum(new.values()) == after.supply
    assert sum(p.amount for p in draft.postings) == 0
    # A holder's value is units x E / supply. With x = old x N/D and y = S x N/D, new units are
    # in (x - 1, x] and the new supply in (y - 1, y], so the share of E moves by at most
    # 1 / (y - 1) <= 1 / (S' - 1): about one new share unit's worth, whatever the ratio.
    big_s, new_s = state.supply, after.supply
    for holder, before in holders.items():
        if new_s >= 2:
            assert abs(new[holder] * big_s - before * new_s) * (new_s - 1) <= big_s * new_s
    assert after.collateral == equity  # value moves between holders only through rounding


def test_ratio_parsing_and_refusals() -> None:
    """Ratios read OLD:NEW; a split must grow the count, a merge shrink it; zero is refused."""
    assert parse_ratio("1:5", kind="split") == (5, 1)
    assert parse_ratio("5", kind="split") == (5, 1)
    assert parse_ratio("100000:1", kind="merge") == (1, 100_000)
    assert parse_ratio("10", kind="merge") == (1, 10)
    for text, kind in (("5:1", "split"), ("1:5", "merge"), ("0:1", "merge"), ("a", "split")):
        with pytest.raises(Rejected):
            parse_ratio(text, kind=kind)


def test_policy_picks_a_power_of_ten_back_to_the_initial_nav() -> None:
    """NAV above the split bound splits by 10^k, below the merge bound merges by 10^k."""
    terms = zero_fee_terms("BTC3L", merge_nav_below="0.1", split_nav_above="10000")
    one = 10**18
    high = FundState(collateral=12_345 * 10**6, supply=one)
    assert nav_per_share_units(terms, high) == 12_345 * 10**6
    assert policy_ratio(terms, high) == ("split", 100, 1)
    low = FundState(collateral=5 * 10**4, supply=one)  # NAV 0.05
    assert policy_ratio(terms, low) == ("merge", 1, 1000)
    assert policy_ratio(terms, FundState(collateral=50 * 10**6, supply=one)) is None
    fixed = zero_fee_terms(
        "BTC3L", merge_nav_below="0.1", split_nav_above="10000", split_merge_ratio=10
    )
    assert policy_ratio(fixed, high) == ("split", 10, 1)
    assert policy_ratio(fixed, low) == ("merge", 1, 10)


def test_policy_split_runs_at_the_daily_event(tmp_path: Path) -> None:
    """When NAV passes split_nav_above, the next daily event splits by 10^k in the same batch."""
    lg = open_ledger(f"sqlite:///{tmp_path / 'p.db'}", clock=FixedClock(AT))
    lg.init()
    funds = Funds(lg)
    funds.create_product("BTC3L", **ZERO_FEES, split_nav_above="150", adhoc_move=None)
    funds.set_price("BTC", "100", at=AT)
    funds.mint("BTC3L", "alice", cash="100", at=AT)
    funds.rebalance("BTC3L", at=AT)
    price, kinds = 100, []
    for day in range(2, 12):
        price = price * 11 // 10  # +10% a day: NAV x 1.3 a day
        at = datetime(2020, 1, day, 0, 5, tzinfo=UTC)
        lg.clock.moment = at  # type: ignore[attr-defined]  # the clock follows business time
        report = funds.set_price("BTC", str(price), at=at)["products"][0]
        kinds.append(report["entries"])
        if "split" in report["entries"]:
            break
    assert kinds[-1] == ["mark", "rebalance", "split"]
    [entry] = [e for e in lg.entries("BTC3L") if e.draft.kind == "split"]
    assert dict(entry.draft.metadata)["ratio_num"] == "10"
    nav = funds.nav("BTC3L")
    assert 100 <= float(nav["nav_per_share"]) < 1000  # float-ok: a range check on display text
    assert nav["supply"] == "10.000000000000000000"
    assert lg.verify("BTC3L").ok
