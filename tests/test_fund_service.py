"""Fund service rules found by review: the last redemption closes the position, times never go
back, keyed retries return the original, refusals write nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from ledger.clock import FixedClock
from ledger.domain.fund import entries
from ledger.domain.fund.navmath import quote_mint
from ledger.domain.fund.state import FundState
from ledger.errors import InvariantViolation, Reason, Rejected
from ledger.services.funds import Funds
from ledger.services.ledger import open_ledger
from tests.fund.helpers import USDT, zero_fee_terms

T0 = datetime(2026, 1, 5, 0, 5, tzinfo=UTC)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def funds(tmp_path: Path, clock: FixedClock) -> Iterator[Funds]:
    lg = open_ledger(f"sqlite:///{tmp_path / 'funds.db'}", clock=clock)
    lg.init()
    service = Funds(lg)
    service.create_product("BTC3L")
    service.set_price("BTC", "100")
    yield service
    lg.close()


def _write_marks(funds: Funds) -> tuple[object, ...]:
    lg = funds.lg
    return tuple((b, lg.head(b), tuple(a.code for a in lg.accounts(b))) for b in lg.books())


def test_last_redemption_closes_the_position_and_the_next_minter_pays_nav_0(
    funds: Funds, clock: FixedClock
) -> None:
    """Redeeming the last shares sells the whole position with them (fee to the redeemer):
    nothing is left for the next minter, who gets exactly what NAV_0 promises.

    The mint trades at once: of 999 net cash, N = 999 / (1 + 3 x 0.0005) = 997.503744 buys
    shares at NAV 100 and 3 x N / 100 = 29.92511232 BTC, whose fee 1.496256 the order pays.
    """
    funds.mint("BTC3L", "alice", cash="1000")
    assert funds.state("BTC3L").position == 29_925_112_320_000  # 29.92511232 BTC
    assert funds.rebalance("BTC3L")["traded"] == "0.000000000000"  # already at 3x
    out = funds.redeem("BTC3L", "alice", shares="9.97503744")
    # 997.503744 less the closing fee 1.496256 = 996.007488 gross; fee 0.996008 (up).
    assert (out["paid"], out["fee"]) == ("995.011480", "0.996008")
    state = funds.state("BTC3L")
    assert (state.collateral, state.position, state.supply) == (0, 0, 0)
    kinds = [e.draft.kind for e in funds.lg.entries("BTC3L")]
    assert kinds[-2:] == ["mint", "redeem"]  # the redemption trades itself: no close entry
    clock.moment = T0 + timedelta(days=1)  # a whole day later: daily fee and funding time
    funds.set_price("BTC", "120")
    assert funds.state("BTC3L").collateral == 0
    bob = funds.mint("BTC3L", "bob", cash="100")
    # 99.9 net: N = 99.9 / 1.0015 = 99.750374 at NAV_0 100 (the rest pays bob's own trade).
    assert bob["shares_delta"] == "0.997503740000000000"
    assert funds.holders("BTC3L")["holders"][0]["value"] == "99.750374"


def test_an_empty_fund_pays_no_management_fee_or_funding() -> None:
    """Without shares nobody bears a fee: fee.management and funding post nothing."""
    terms = zero_fee_terms("BTC3L", management_fee="0.0003", funding_rate="0.0003")
    empty = FundState(collateral=5 * USDT, position=3 * 10**12, price=100 * USDT)
    day = T0.date()
    assert entries.charge_management_fee(terms, empty, at=T0, day=day) == (None, empty)
    assert entries.pay_funding(terms, empty, at=T0, day=day) == (None, empty)


def test_nav_0_applies_only_to_a_fund_that_holds_nothing() -> None:
    """A first mint at NAV_0 into a fund that still holds a position is a bug, not a price."""
    terms = zero_fee_terms("BTC3L")
    with pytest.raises(InvariantViolation):
        quote_mint(terms, FundState(position=3 * 10**12, price=100 * USDT), 100 * USDT)


def test_a_price_dated_before_the_book_is_refused_and_writes_nothing(funds: Funds) -> None:
    """Effective times never go back: an older price names both times and changes nothing."""
    funds.mint("BTC3L", "alice", cash="1000")
    before = _write_marks(funds)
    with pytest.raises(Rejected) as caught:
        funds.set_price("BTC", "100", at=datetime(2019, 1, 1, tzinfo=UTC))
    assert caught.value.reason is Reason.BAD_INPUT
    assert str(caught.value) == (
        "bad_input: time 2019-01-01T00:00:00Z is before BTC3L's last entry at 2026-01-05T00:05:00Z"
    )
    with pytest.raises(Rejected, match="before BTC3L's last entry"):
        funds.mint("BTC3L", "bob", cash="100", at=datetime(2020, 1, 1, tzinfo=UTC))
    assert _write_marks(funds) == before


def test_retrying_a_full_redemption_returns_the_original(funds: Funds) -> None:
    """A keyed retry is answered from the key before any balance check (it held 0 by then)."""
    funds.mint("BTC3L", "carol", cash="1000", key="m1")
    first = funds.redeem("BTC3L", "carol", shares="9.97503744", key="all1")
    again = funds.redeem("BTC3L", "carol", shares="9.97503744", key="all1")
    assert (again["seq"], again["hash"], again["paid"]) == (
        first["seq"],
        first["hash"],
        "995.011480",  # as in the test above: the same mint, then everything redeemed
    )
    assert funds.mint("BTC3L", "carol", cash="1000", key="m1")["seq"] == 1
    with pytest.raises(Rejected) as caught:
        funds.redeem("BTC3L", "carol", shares="1", key="all1")
    assert caught.value.reason is Reason.IDEMPOTENCY_CONFLICT


def test_a_mint_refused_for_its_key_opens_no_account(funds: Funds) -> None:
    """A refused mint writes nothing, not even the new holder's account."""
    funds.mint("BTC3L", "alice", cash="1000", key="k1")
    before = _write_marks(funds)
    with pytest.raises(Rejected) as caught:
        funds.mint("BTC3L", "dave", cash="1000", key="k1")
    assert caught.value.reason is Reason.IDEMPOTENCY_CONFLICT
    assert _write_marks(funds) == before


def test_times_are_printed_in_utc_with_z(funds: Funds) -> None:
    """Every time in a fund payload is UTC with "Z", whatever offset it was given in."""
    plus_two = timezone(timedelta(hours=2))
    price = funds.set_price("BTC", "101", at=datetime(2026, 1, 5, 3, 0, tzinfo=plus_two))
    assert price["at"] == "2026-01-05T01:00:00Z"
    at = datetime(2026, 1, 5, 3, 0, 30, tzinfo=plus_two)  # 30 s after the price: fresh
    minted = funds.mint("BTC3L", "alice", cash="100", at=at)
    assert minted["effective_at"] == "2026-01-05T01:00:30Z"
    assert funds.nav("BTC3L", at=datetime(2026, 1, 5, 5, tzinfo=plus_two))["at"] == (
        "2026-01-05T03:00:00Z"
    )
