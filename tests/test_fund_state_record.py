"""The fund's state record always equals the state rebuilt from the journal alone.

A Hypothesis state machine drives every fund operation (prices with jumps that fire the
ad-hoc triggers and cross the daily schedule, mints, redeems including over-draws and full
redemptions, manual rebalances, splits and merges, time passing) through the public API.
After every step: the fund fold over the journal (`ledger.domain.fund.fold`, the code behind
`verify`) finds no broken rule, and the stored state record equals what the fold gives; a
refused operation changed nothing at all.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule

from ledger.clock import FixedClock
from ledger.domain.fund.fold import FundFold
from ledger.errors import Rejected
from ledger.services.audit import compare_record, verify_book
from ledger.services.funds import Funds
from ledger.services.ledger import open_ledger
from ledger.storage import fund_store
from tests.fund.machines import FreshDatabaseMachine, postgres_schemas, run_machine, sqlite_urls

T0 = datetime(2024, 3, 1, 23, 0, tzinfo=UTC)
HOLDERS = ("alice", "bob", "carol")
PRODUCTS = ("BTC3L", "BTC3S")


class FundMachine(FreshDatabaseMachine):
    @initialize()
    def setup(self) -> None:
        self.clock = FixedClock(T0)
        self.lg = open_ledger(self.url, clock=self.clock)
        self.lg.init()
        self.funds = Funds(self.lg)
        for name in PRODUCTS:
            self.funds.create_product(name, min_subscription="1")
        self.price = 50_000 * 10**6  # quote base units
        self.funds.set_price("BTC", self._price_text())

    def _price_text(self) -> str:
        return f"{self.price // 10**6}.{self.price % 10**6:06d}"

    def _refusal_changes_nothing(self, call: object) -> None:
        before = [(b, self.lg.head(b)) for b in PRODUCTS]
        records = [fund_store.load_record(self.lg.engine, b) for b in PRODUCTS]
        try:
            call()  # type: ignore[operator]
        except Rejected:
            assert [(b, self.lg.head(b)) for b in PRODUCTS] == before
            assert [fund_store.load_record(self.lg.engine, b) for b in PRODUCTS] == records

    @rule(minutes=st.integers(0, 36 * 60))
    def time_passes(self, minutes: int) -> None:
        self.clock.moment = self.clock.moment + timedelta(minutes=minutes)

    @rule(move=st.sampled_from([-300, -150, -60, -5, 0, 5, 60, 150, 300]))
    def price(self, move: int) -> None:
        """A move in thousandths: up to 30% (ad-hoc triggers fire, a 3x fund can wipe out)."""
        self.price = max(10**6, self.price * (1000 + move) // 1000)
        self._refusal_changes_nothing(lambda: self.funds.set_price("BTC", self._price_text()))

    @rule(
        product=st.sampled_from(PRODUCTS),
        holder=st.sampled_from(HOLDERS),
        cash=st.integers(1, 20_000),
    )
    def mint(self, product: str, holder: str, cash: int) -> None:
        self._refusal_changes_nothing(lambda: self.funds.mint(product, holder, cash=str(cash)))

    @rule(
        product=st.sampled_from(PRODUCTS),
        holder=st.sampled_from(HOLDERS),
        percent=st.sampled_from([1, 10, 50, 100, 150]),
    )
    def redeem(self, product: str, holder: str, percent: int) -> None:
        terms = self.funds.terms(product)
        held = self.lg.balance(product, f"holder:{holder}", terms.share_asset.code)
        units = max(1, held * percent // 100)
        shares = f"{units // 10**18}.{units % 10**18:018d}"
        self._refusal_changes_nothing(lambda: self.funds.redeem(product, holder, shares=shares))

    @rule(product=st.sampled_from(PRODUCTS))
    def rebalance(self, product: str) -> None:
        self._refusal_changes_nothing(lambda: self.funds.rebalance(product))

    @rule(product=st.sampled_from(PRODUCTS), ratio=st.sampled_from(["1:10", "10:1", "3:7"]))
    def split(self, product: str, ratio: str) -> None:
        num, den = ratio.split(":")
        kind = "split" if int(den) >= int(num) else "merge"
        self._refusal_changes_nothing(lambda: self.funds.split(product, ratio, kind=kind))

    @rule(product=st.sampled_from(PRODUCTS))
    def close(self, product: str) -> None:
        """Closing is refused unless the fund is wiped out; a closed fund refuses the rest."""
        self._refusal_changes_nothing(lambda: self.funds.close(product))

    @invariant()
    def record_equals_the_journal_fold(self) -> None:
        if not hasattr(self, "funds"):
            return
        for product in PRODUCTS:
            terms = self.funds.terms(product)
            head = self.lg.head(product)[0]
            fold = FundFold(terms)
            assert fold.apply_all(self.lg.entries(product, to_seq=head)) is None
            record = fund_store.load_record(self.lg.engine, product)
            assert record is not None
            assert compare_record(fold, record, head) is None, (record, fold.state)
            assert record.state.collateral == fold.state.collateral
            assert record.state.supply == fold.state.supply

    def teardown(self) -> None:
        if hasattr(self, "lg"):
            for product in PRODUCTS:
                assert verify_book(self.lg, product).ok
            self.lg.close()


def test_state_record_equals_the_journal_fold_sqlite(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    run_machine(FundMachine, sqlite_urls(tmp_path_factory, "rec"), examples=40, steps=20)


@pytest.mark.postgres
def test_state_record_equals_the_journal_fold_postgres(pg_url: str) -> None:
    from tests.conftest import PG_URL

    with postgres_schemas(PG_URL) as new_url:
        run_machine(FundMachine, new_url, examples=6, steps=15)
