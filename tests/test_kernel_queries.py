"""Kernel queries on both databases: as-of balances, history, trial balance, unknown names."""

from __future__ import annotations

from datetime import timedelta

from ledger.domain.journal import Account, AccountType
from ledger.errors import Reason
from ledger.services.ledger import Ledger
from tests.test_kernel_support import (
    BOOK,
    day,
    draft,
    mint,
    move,
    refused,
    setup_book,
)

# --- queries ---------------------------------------------------------------------------------


def test_balance_as_of_seq_and_business_time(ledger: Ledger) -> None:
    """Balances as of a sequence number and as of a business time count the right entries."""
    setup_book(ledger)
    ledger.post(mint("holder:alice", 100, at=day(1)))  # seq 1
    ledger.post(mint("holder:alice", 20, at=day(3)))  # seq 2
    ledger.post(mint("holder:alice", 3, at=day(2)))  # seq 3, back-dated
    balance = ledger.balance
    assert balance(BOOK, "holder:alice", "ETH") == 123
    assert [balance(BOOK, "holder:alice", "ETH", as_of_seq=n) for n in range(4)] == [
        0,
        100,
        120,
        123,
    ]
    assert balance(BOOK, "holder:alice", "ETH", as_of_time=day(0)) == 0
    assert balance(BOOK, "holder:alice", "ETH", as_of_time=day(1)) == 100
    assert balance(BOOK, "holder:alice", "ETH", as_of_time=day(2)) == 103
    assert balance(BOOK, "holder:alice", "ETH", as_of_time=day(2) + timedelta(hours=1)) == 103
    assert balance(BOOK, "holder:alice", "ETH", as_of_time=day(3)) == 123
    assert balance(BOOK, "equity", "ETH", as_of_seq=2, as_of_time=day(2)) == -100


def test_history_lists_the_entries_of_an_account(ledger: Ledger) -> None:
    """An account's history is exactly the entries posting to it, in sequence order."""
    setup_book(ledger)
    ledger.post(mint("holder:alice", 100))
    ledger.post(mint("holder:bob", 5))
    ledger.post(move("holder:alice", "holder:bob", 40, "ETH"))
    ledger.post(move("cash", "fees", 7))
    assert [e.seq for e in ledger.history(BOOK, "holder:alice")] == [1, 3]
    assert [e.seq for e in ledger.history(BOOK, "holder:bob")] == [2, 3]
    assert [e.seq for e in ledger.history(BOOK, "fees")] == [4]
    assert ledger.history(BOOK, "holder:alice")[1] == ledger.entry(BOOK, 3)


def test_trial_balance_sums_to_zero_per_asset(ledger: Ledger) -> None:
    """Every asset's balances over a book sum to zero."""
    setup_book(ledger)
    ledger.post(mint("holder:alice", 10**40))
    ledger.post(move("cash", "fees", 2_500_000))
    ledger.post(
        draft(
            ("holder:bob", "ETH", 3 * 10**20),
            ("holder:alice", "ETH", -(3 * 10**20)),
            ("fees", "USDT", 1),
            ("cash", "USDT", -1),
        )
    )
    balances = ledger.balances(BOOK)
    totals: dict[str, int] = {}
    for (_, asset), units in balances.items():
        totals[asset] = totals.get(asset, 0) + units
    assert totals == {"ETH": 0, "USDT": 0}
    assert balances == {
        ("cash", "USDT"): -2_500_001,
        ("equity", "ETH"): -(10**40),
        ("fees", "USDT"): 2_500_001,
        ("holder:alice", "ETH"): 10**40 - 3 * 10**20,
        ("holder:bob", "ETH"): 3 * 10**20,
    }
    assert ledger.balances(BOOK, asset="USDT") == {
        ("cash", "USDT"): -2_500_001,
        ("fees", "USDT"): 2_500_001,
    }


def test_unknown_account_asset_and_book_are_refused(ledger: Ledger) -> None:
    """Posting to an unopened account, an unknown asset or an unknown book is refused."""
    setup_book(ledger)
    refused(ledger, Reason.UNKNOWN_ACCOUNT, ledger.post, mint("holder:carol", 1))
    refused(ledger, Reason.UNKNOWN_ASSET, ledger.post, mint("holder:alice", 1, asset="BTC"))
    refused(ledger, Reason.UNKNOWN_BOOK, ledger.post, mint("holder:alice", 1, book="Z"))
    refused(ledger, Reason.UNKNOWN_BOOK, ledger.verify, "Z")
    refused(ledger, Reason.UNKNOWN_ENTRY, ledger.entry, BOOK, 1)
    ledger.open_account(Account(BOOK, "holder:carol", AccountType.LIABILITY))
    assert ledger.post(mint("holder:carol", 1)).seq == 1
