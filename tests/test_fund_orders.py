"""Orders that arrive together net: one `orders` entry, only the net trade traded, the fee
saved shared back. Expectations in exact fractions computed here, not by the engine.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.clock import FixedClock
from ledger.domain.fund import entries
from ledger.domain.fund.orders import Order, batch
from ledger.domain.fund.state import FundState, nav_per_share_units
from ledger.errors import Reason, Rejected
from ledger.services.audit import verify_book
from ledger.services.funds import Funds
from ledger.services.ledger import open_ledger
from tests.fund.helpers import USDT, cli, zero_fee_terms

T0 = datetime(2026, 1, 5, 0, 5, tzinfo=UTC)
AT = datetime(2024, 1, 1, tzinfo=UTC)
BTC = 10**12
SHARE = 10**18
RATE = Fraction(5, 10_000)  # the trading fee of these tests: 0.05%


def _fund() -> tuple[object, FundState]:
    """10 shares at NAV 100, 30 BTC at 100 (3x), alice 6 shares, dave 4: the reference's
    example 7 set-up, with a 0.05% trading fee and no other fee."""
    terms = zero_fee_terms("BTC3L", trading_fee="0.0005")
    state = FundState(
        collateral=1000 * USDT,
        position=30 * BTC,
        supply=10 * SHARE,
        price=100 * USDT,
        mark_price=100 * USDT,
        rebalance_price=100 * USDT,
    )
    return terms, state


HELD = {"alice": 6 * SHARE, "dave": 4 * SHARE}


def _fee(trade: int) -> int:
    """The trading fee of a trade of `trade` position units at 100, rounded up (here)."""
    exact = Fraction(abs(trade) * 100 * USDT, BTC) * RATE
    return -(-exact.numerator // exact.denominator)


def test_a_mint_and_a_redemption_of_the_same_size_trade_almost_nothing() -> None:
    """bob mints 400 while alice redeems 4 shares (400 at NAV): alone each would trade about
    12 BTC and pay about 0.6 USDT of fee; together the fund trades only their difference,
    and nearly all of the 1.2 USDT is handed back to the two orders."""
    terms, state = _fund()
    orders = [Order("mint", "bob", 400 * USDT), Order("redeem", "alice", 4 * SHARE)]
    draft, after, fills = batch(terms, state, orders, HELD, at=AT)  # type: ignore[arg-type]
    mint_fill, redeem_fill = fills
    # Each order alone, as the single-order engine prices it (the reference's formulas):
    # N = 400 / (1 + 3 x 0.0005) of equity for bob; 4 / 10 of the fund for alice.
    n = Fraction(400) / Fraction(10015, 10000)
    n_units = int(n * USDT)  # 399.400898 USDT, rounded down to whole base units
    assert mint_fill.trade == 3 * n_units * BTC // (100 * USDT) == 11_982_026_940_000
    assert redeem_fill.trade == -12 * BTC
    net = mint_fill.trade + redeem_fill.trade
    assert dict((p.account, p.amount) for p in draft.postings)["fund:position"] == net
    assert abs(net) < BTC // 50  # 0.018 BTC of 24 BTC traded by the orders alone
    fees_alone = mint_fill.trade_fee + redeem_fill.trade_fee
    assert (mint_fill.trade_fee, redeem_fill.trade_fee) == (_fee(mint_fill.trade), 600_000)
    net_fee = _fee(net)
    meta = dict(draft.metadata)
    assert Fraction(meta["trading_fee"]) * USDT == net_fee
    saved = fees_alone - net_fee
    assert Fraction(meta["trading_fee_saved"]) * USDT == saved
    # Shared back in proportion to each order's own fee, rounded down; the rest stays.
    assert mint_fill.rebate == saved * mint_fill.trade_fee // fees_alone
    assert redeem_fill.rebate == saved * redeem_fill.trade_fee // fees_alone
    kept = saved - mint_fill.rebate - redeem_fill.rebate
    assert 0 <= kept <= 1
    # dave, who did nothing: NAV per share not lower, multiple unchanged within rounding.
    assert nav_per_share_units(terms, after) >= nav_per_share_units(terms, state)  # type: ignore[arg-type]
    assert abs(Fraction(after.position * 100 * USDT, BTC * after.collateral) - 3) < Fraction(
        1, 10**6
    )
    assert sum(p.amount for p in draft.postings if p.asset == "USDT") == 0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["mint", "redeem"]),
            st.sampled_from(["alice", "dave", "bob"]),
            st.integers(min_value=1, max_value=10**6),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_a_batch_is_never_worse_than_its_orders_alone(raw: list[tuple[str, str, int]]) -> None:
    """Whatever the batch: the position is the sum of the orders' own trades; the fund pays
    the fee of the net trade only; every order pays in at most (or is paid at least) what it
    would alone, in turn; the fund keeps at least the collateral of the orders one by one;
    and the holders outside the batch keep their NAV per share."""
    terms, state = _fund()
    held = dict(HELD)
    orders = []
    for side, holder, size in raw:
        if side == "mint":
            orders.append(Order("mint", holder, 10 * USDT + size * 1000))
        else:
            have = held.get(holder, 0)
            if have == 0:
                continue
            amount = max(1, have * size // 10**6)
            orders.append(Order("redeem", holder, amount))
            held[holder] = have - amount
    if not orders:
        return
    try:
        draft, after, fills = batch(terms, state, orders, dict(HELD), at=AT)  # type: ignore[arg-type]
    except Rejected:
        return
    # The orders one by one (the single-order builders, in turn).
    one_by_one = state
    holdings = dict(HELD)
    for order, fill in zip(orders, fills, strict=True):
        if order.side == "mint":
            _, one_by_one, mq = entries.mint(
                terms,
                one_by_one,
                holder=order.holder,
                cash=order.amount,
                at=AT,  # type: ignore[arg-type]
            )
            assert (fill.shares, fill.trade, fill.trade_fee) == (mq.shares, mq.trade, mq.trade_fee)
            holdings[order.holder] = holdings.get(order.holder, 0) + mq.shares
        else:
            _, one_by_one, rq = entries.redeem(
                terms,  # type: ignore[arg-type]
                one_by_one,
                holder=order.holder,
                shares=order.amount,
                held=holdings[order.holder],
                at=AT,
            )
            assert (fill.trade, fill.trade_fee, fill.cash) == (rq.trade, rq.trade_fee, rq.paid)
            holdings[order.holder] -= order.amount
        assert fill.rebate >= 0
    assert after.position == one_by_one.position and after.supply == one_by_one.supply
    assert after.collateral >= one_by_one.collateral
    net = after.position - state.position
    lines = {(p.account, p.asset): p.amount for p in draft.postings}
    assert lines.get(("expense:trading-fees", "USDT"), 0) == _fee(net)
    assert lines.get(("fund:position", terms.position_asset.code), 0) == net  # type: ignore[attr-defined]
    saved = sum(f.trade_fee for f in fills) - _fee(net)
    assert 0 <= saved - sum(f.rebate for f in fills) < max(1, len(fills))
    for asset in {p.asset for p in draft.postings}:
        assert sum(p.amount for p in draft.postings if p.asset == asset) == 0
    if after.supply:
        assert nav_per_share_units(terms, after) >= nav_per_share_units(terms, state) - 1  # type: ignore[arg-type]


# --- through the service and the CLI --------------------------------------------------------


@pytest.fixture()
def funds(tmp_path: Path) -> Funds:
    lg = open_ledger(f"sqlite:///{tmp_path / 'funds.db'}", clock=FixedClock(T0))
    lg.init()
    engine = Funds(lg)
    engine.create_product("BTC3L", max_price_age=None)
    engine.set_price("BTC", "100")
    engine.mint("BTC3L", "alice", cash="1000")
    engine.mint("BTC3L", "dave", cash="500")
    return engine


def test_a_batch_is_one_entry_that_verifies_and_retries_exactly(funds: Funds) -> None:
    head = funds.lg.head("BTC3L")[0]
    nav_before = funds.nav("BTC3L").nav_per_share
    items = [
        {"side": "mint", "holder": "bob", "cash": "9000"},
        {"side": "redeem", "holder": "alice", "shares": "5"},
    ]
    result = funds.orders("BTC3L", items, key="day-1")
    assert result.seq == head + 1 == funds.lg.head("BTC3L")[0]  # one entry (no accrual: same time)
    assert [f.side for f in result.fills] == ["mint", "redeem"]
    assert result.trading_fee_saved > 0
    assert funds.nav("BTC3L").nav_per_share >= nav_before
    assert funds.orders("BTC3L", items, key="day-1").json_dict() == result.json_dict()
    assert funds.lg.head("BTC3L")[0] == result.seq
    with pytest.raises(Rejected) as caught:
        funds.orders("BTC3L", items[:1], key="day-1")
    assert caught.value.reason is Reason.IDEMPOTENCY_CONFLICT
    statement = funds.statement("BTC3L", "bob")
    assert [e.kind for e in statement.entries] == ["orders"]
    assert statement.entries[0].shares_delta == result.fills[0].shares_delta
    assert verify_book(funds.lg, "BTC3L").ok


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        ([], Reason.BAD_INPUT),
        ([{"side": "buy", "holder": "bob", "cash": "10"}], Reason.BAD_INPUT),
        ([{"side": "mint", "holder": "bob", "cash": 10}], Reason.BAD_INPUT),
        ([{"side": "mint", "holder": "bob", "cash": "10", "x": "1"}], Reason.BAD_INPUT),
        ([{"side": "mint", "holder": "bob", "cash": "-10"}], Reason.BAD_INPUT),
        (
            [
                {"side": "mint", "holder": "bob", "cash": "100"},
                {"side": "redeem", "holder": "alice", "shares": "100000"},
            ],
            Reason.INSUFFICIENT_SHARES,
        ),
        ([{"side": "redeem", "holder": "nobody", "shares": "1"}], Reason.INSUFFICIENT_SHARES),
    ],
)
def test_one_bad_order_refuses_the_whole_batch(
    funds: Funds, items: list[dict[str, object]], reason: Reason
) -> None:
    head = funds.lg.head("BTC3L")
    with pytest.raises(Rejected) as caught:
        funds.orders("BTC3L", items)
    assert caught.value.reason is reason
    assert funds.lg.head("BTC3L") == head
    assert funds.lg.balances("BTC3L", asset="BTC3L").get(("holder:bob", "BTC3L")) is None


def test_a_stale_price_refuses_the_batch(funds: Funds) -> None:
    funds.create_product("BTC3S")
    funds.set_price("BTC", "100")
    funds.lg.clock.moment = T0 + timedelta(seconds=61)  # type: ignore[attr-defined]
    with pytest.raises(Rejected) as caught:
        funds.orders("BTC3S", [{"side": "mint", "holder": "bob", "cash": "100"}])
    assert caught.value.reason is Reason.STALE_PRICE


def test_the_orders_command_reads_a_file_and_refuses_in_one_line(tmp_path: Path) -> None:
    run = cli(f"sqlite:///{tmp_path / 'cli.db'}")

    assert run("init").returncode == 0
    assert run("product", "create", "BTC3L").returncode == 0
    assert run("price", "BTC", "100").returncode == 0
    batch_file = tmp_path / "day.json"
    batch_file.write_text(
        json.dumps(
            {
                "product": "BTC3L",
                "key": "d1",
                "orders": [
                    {"side": "mint", "holder": "alice", "cash": "1000"},
                    {"side": "mint", "holder": "bob", "cash": "500"},
                ],
            }
        )
    )
    done = run("orders", str(batch_file), "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert [f["holder"] for f in payload["fills"]] == ["alice", "bob"]
    assert all(isinstance(f["cash"], str) for f in payload["fills"])
    again = run("orders", str(batch_file), "--json")
    assert json.loads(again.stdout) == payload
    head = json.loads(run("nav", "BTC3L", "--json").stdout)
    bad_file = tmp_path / "bad.json"
    for bad in (b'{"product": "BTC3L", "orders": [{"side": "mint"}]}', b"[1", b'"\xff"', b"{}"):
        bad_file.write_bytes(bad)
        refused = run("orders", str(bad_file))
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert json.loads(run("nav", "BTC3L", "--json").stdout) == head
    assert json.loads(run("nav", "BTC3L", "--json").stdout)["supply"] == payload["nav"]["supply"]


def test_the_audit_checks_every_fill_of_a_batch(funds: Funds) -> None:
    """The postings of a batch add its orders up, so the audit also checks the fills its
    metadata records: a batch whose recorded cash for one holder was changed is found."""
    from dataclasses import replace as dc_replace

    from ledger.domain.fund import fold as fold_module
    from ledger.domain.fund.orders import fills_of

    items = [
        {"side": "mint", "holder": "bob", "cash": "900"},
        {"side": "redeem", "holder": "alice", "shares": "2"},
    ]
    result = funds.orders("BTC3L", items)
    terms = funds.terms("BTC3L")
    book = list(funds.lg.entries("BTC3L"))
    assert fold_module.fold_entries(terms, book)[1] is None
    batch_entry = book[-1]
    meta = dict(batch_entry.draft.metadata)
    recorded = fills_of(meta)
    assert [int(f["cash"]) for f in recorded] == [int(f.cash * 10**6) for f in result.fills]
    # alice is recorded as paid 1 USDT more than she was: the postings still add up.
    forged_text = ";".join(
        " ".join(str(int(v) + 10**6) if (i == 1 and k == "cash") else v for k, v in f.items())
        for i, f in enumerate(recorded)
    )
    forged = {k: v for k, v in meta.items() if not k.startswith("fills.")}
    forged["fills.000"] = forged_text
    tampered = dc_replace(
        batch_entry, draft=dc_replace(batch_entry.draft, metadata=tuple(sorted(forged.items())))
    )
    finding = fold_module.fold_entries(terms, [*book[:-1], tampered])[1]
    assert finding is not None and finding.rule == "orders_price"


def test_an_orders_file_that_is_not_utf8_is_bad_encoding(tmp_path: Path) -> None:
    run = cli(f"sqlite:///{tmp_path / 'enc.db'}")
    assert run("init").returncode == 0
    bad = tmp_path / "latin1.json"
    bad.write_bytes('{"product": "BTC3L", "orders": [], "key": "caf\u00e9"}'.encode("latin-1"))
    refused = run("orders", str(bad))
    assert refused.returncode == 2
    assert refused.stderr.startswith("token-ledger: bad_encoding: the orders file is not UTF-8")
