"""Kernel rules on both databases: idempotency, reversals, balance rules, batches."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ledger.clock import FixedClock
from ledger.domain.journal import Account, AccountType, BalanceRule
from ledger.errors import Reason, Rejected
from ledger.services.ledger import Ledger
from tests.test_kernel_support import (
    BOOK,
    T0,
    day,
    draft,
    mint,
    move,
    refused,
    row_counts,
    setup_book,
    snapshot,
)

# --- idempotency -----------------------------------------------------------------------------


def test_same_key_same_content_returns_the_original(ledger: Ledger, clock: FixedClock) -> None:
    """A repeated key with the same content returns the original entry and writes nothing."""
    setup_book(ledger)
    original = ledger.post(mint("holder:alice", 500, key="mint-1", meta={"memo": "first"}))
    ledger.post(mint("holder:bob", 7))
    clock.moment = T0 + timedelta(hours=5)  # a re-sealed entry would get another record time
    before = snapshot(ledger)
    again = ledger.post(mint("holder:alice", 500, key="mint-1", meta={"memo": "first"}))
    assert again == original
    assert (again.seq, again.hash, again.recorded_at) == (1, original.hash, T0)
    assert snapshot(ledger) == before
    assert ledger.head(BOOK)[0] == 2


def test_same_key_twice_in_one_batch_writes_once(ledger: Ledger) -> None:
    """A key repeated inside one batch with the same content yields one entry."""
    setup_book(ledger)
    made = ledger.post_many([mint("holder:alice", 5, key="k"), mint("holder:alice", 5, key="k")])
    assert [e.seq for e in made] == [1, 1]
    assert made[0].hash == made[1].hash
    assert row_counts(ledger) == (1, 2)
    assert ledger.balance(BOOK, "holder:alice", "ETH") == 5


@pytest.mark.parametrize(
    "changed",
    [
        mint("holder:alice", 501, key="mint-1", meta={"memo": "first"}),
        mint("holder:bob", 500, key="mint-1", meta={"memo": "first"}),
        mint("holder:alice", 500, key="mint-1", meta={"memo": "other"}),
        mint("holder:alice", 500, key="mint-1", meta={"memo": "first"}, at=day(1)),
        mint("holder:alice", 500, key="mint-1", meta={"memo": "first"}, kind="mint"),
    ],
    ids=["amount", "account", "metadata", "effective_at", "kind"],
)
def test_same_key_other_content_is_a_conflict(ledger: Ledger, changed: object) -> None:
    """The same key with any other content is refused with IDEMPOTENCY_CONFLICT."""
    setup_book(ledger)
    ledger.post(mint("holder:alice", 500, key="mint-1", meta={"memo": "first"}))
    refused(ledger, Reason.IDEMPOTENCY_CONFLICT, ledger.post, changed)
    refused(
        ledger,
        Reason.IDEMPOTENCY_CONFLICT,
        ledger.post_many,
        [mint("holder:bob", 1), changed],
    )


def test_same_key_other_content_in_one_batch_is_a_conflict(ledger: Ledger) -> None:
    """Two drafts of one batch that share a key but differ are refused, nothing written."""
    setup_book(ledger)
    batch = [mint("holder:alice", 5, key="k"), mint("holder:alice", 6, key="k")]
    refused(ledger, Reason.IDEMPOTENCY_CONFLICT, ledger.post_many, batch)
    assert row_counts(ledger) == (0, 0)


# --- reversals -------------------------------------------------------------------------------


def test_reversal_undoes_and_references_the_entry(ledger: Ledger) -> None:
    """A reversal negates entry N exactly, points to N, and restores the balances."""
    setup_book(ledger)
    ledger.post(mint("holder:alice", 1_000))
    balances_before = ledger.balances(BOOK)
    wrong = ledger.post(move("holder:alice", "holder:bob", 300, "ETH", meta={"memo": "oops"}))
    fix = ledger.reverse(BOOK, wrong.seq, key="fix-2", effective_at=day(1))
    assert (fix.seq, fix.draft.reverses, fix.draft.kind) == (3, 2, "reversal")
    assert fix.prev_hash == wrong.hash
    assert [(p.account, p.amount) for p in fix.postings] == [
        ("holder:bob", -300),
        ("holder:alice", 300),
    ]
    assert ledger.balances(BOOK) == balances_before
    assert ledger.entry(BOOK, 3).draft.reverses == 2
    assert ledger.verify(BOOK).ok


def test_second_reversal_is_refused(ledger: Ledger) -> None:
    """An entry can be reversed once; a second reversal is refused with ALREADY_REVERSED."""
    setup_book(ledger)
    ledger.post(mint("holder:alice", 1_000))
    ledger.reverse(BOOK, 1)
    refused(ledger, Reason.ALREADY_REVERSED, ledger.reverse, BOOK, 1)
    negation = mint("holder:alice", -1_000, reverses=1)
    refused(ledger, Reason.ALREADY_REVERSED, ledger.post, negation)


def test_reversal_in_the_same_batch_twice_is_refused(ledger: Ledger) -> None:
    """Two reversals of one entry inside one batch are refused, nothing written."""
    setup_book(ledger)
    ledger.post(mint("holder:alice", 1_000))
    negation = mint("holder:alice", -1_000, reverses=1)
    refused(ledger, Reason.ALREADY_REVERSED, ledger.post_many, [negation, negation])


def test_batch_may_reverse_its_own_earlier_entry(ledger: Ledger) -> None:
    """Inside one batch an entry may be reversed after it is made, never before."""
    setup_book(ledger)
    ledger.post(mint("holder:alice", 10))
    made = ledger.post_many([mint("holder:bob", 7), mint("holder:bob", -7, reverses=2)])
    assert [(e.seq, e.draft.reverses) for e in made] == [(2, None), (3, 2)]
    assert ledger.balances(BOOK) == {("equity", "ETH"): -10, ("holder:alice", "ETH"): 10}
    early = [mint("holder:bob", -7, reverses=5), mint("holder:bob", 7)]  # 5 would be the mint
    refused(ledger, Reason.UNKNOWN_ENTRY, ledger.post_many, early)
    assert ledger.verify(BOOK).ok


@pytest.mark.parametrize(
    "bad",
    [
        mint("holder:alice", -999, reverses=1),
        move("equity", "holder:bob", -1_000, "ETH", reverses=1),
        draft(
            ("holder:alice", "ETH", -1_000),
            ("equity", "ETH", 999),
            ("fees", "ETH", 1),
            reverses=1,
        ),
    ],
    ids=["amount", "account", "extra-line"],
)
def test_reversal_that_does_not_negate_exactly_is_refused(ledger: Ledger, bad: object) -> None:
    """A draft claiming to reverse entry N must negate N's postings exactly."""
    setup_book(ledger)
    ledger.post(mint("holder:alice", 1_000))
    refused(ledger, Reason.BAD_INPUT, ledger.post, bad)


def test_reversal_of_unknown_entry_is_refused(ledger: Ledger) -> None:
    """Reversing an entry that does not exist is refused with UNKNOWN_ENTRY."""
    setup_book(ledger)
    ledger.post(mint("holder:alice", 1_000))
    refused(ledger, Reason.UNKNOWN_ENTRY, ledger.reverse, BOOK, 2)
    refused(ledger, Reason.UNKNOWN_ENTRY, ledger.post, mint("holder:alice", -1, reverses=7))


def test_reverse_retry_with_key_returns_the_original(ledger: Ledger, clock: FixedClock) -> None:
    """Retrying `reverse` with the same key returns the first reversal (idempotency)."""
    setup_book(ledger)
    ledger.post(mint("holder:alice", 1_000))
    first = ledger.reverse(BOOK, 1, key="fix-1")
    clock.moment = T0 + timedelta(seconds=30)  # the retry comes a little later
    assert ledger.reverse(BOOK, 1, key="fix-1") == first


# --- balance rules ---------------------------------------------------------------------------


def test_overdraft_of_non_negative_account_is_refused(ledger: Ledger) -> None:
    """A NON_NEGATIVE account cannot go below zero; the refused entry writes nothing."""
    setup_book(ledger)
    ledger.post(mint("holder:alice", 100))
    refused(
        ledger,
        Reason.BALANCE_CONSTRAINT,
        ledger.post,
        move("holder:alice", "holder:bob", 101, "ETH"),
    )
    ledger.post(move("holder:alice", "holder:bob", 100, "ETH"))  # exactly to zero is fine
    assert ledger.balance(BOOK, "holder:alice", "ETH") == 0
    refused(ledger, Reason.BALANCE_CONSTRAINT, ledger.post, mint("holder:alice", -1))
    assert ledger.balances(BOOK) == {("equity", "ETH"): -100, ("holder:bob", "ETH"): 100}


def test_rule_is_checked_after_every_entry_of_a_batch(ledger: Ledger) -> None:
    """In a batch, a dip below zero between entries is refused even if a later entry repays it."""
    setup_book(ledger)
    ledger.post(mint("holder:alice", 10))
    batch = [move("holder:alice", "holder:bob", 15, "ETH"), mint("holder:alice", 10)]
    refused(ledger, Reason.BALANCE_CONSTRAINT, ledger.post_many, batch)
    made = ledger.post_many(list(reversed(batch)))
    assert [e.seq for e in made] == [2, 3]
    assert ledger.balance(BOOK, "holder:alice", "ETH") == 5


def test_non_positive_account_cannot_turn_debit(ledger: Ledger) -> None:
    """A NON_POSITIVE account (credit-normal) is refused any entry that leaves it above zero."""
    setup_book(ledger)
    ledger.open_account(
        Account(BOOK, "equity:capped", AccountType.EQUITY, BalanceRule.NON_POSITIVE)
    )
    ledger.post(move("equity:capped", "cash", 50))
    refused(ledger, Reason.BALANCE_CONSTRAINT, ledger.post, move("cash", "equity:capped", 51))
    ledger.post(move("cash", "equity:capped", 50))
    assert ledger.balances(BOOK) == {}


# --- batches ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        draft(("holder:alice", "ETH", 5), ("equity", "ETH", -4)),
        move("holder:alice", "holder:bob", 10**6, "ETH"),
        mint("holder:nobody", 5),
        mint("holder:alice", 5, asset="BTC"),
        mint("holder:alice", 5, key="m-1"),
    ],
    ids=["unbalanced", "overdraft", "unknown-account", "unknown-asset", "key-conflict"],
)
def test_post_many_is_all_or_nothing(ledger: Ledger, bad: object) -> None:
    """One bad draft in the middle of a batch leaves nothing written."""
    setup_book(ledger)
    ledger.post(mint("holder:alice", 100, key="m-1"))
    batch = [mint("holder:bob", 1), move("holder:alice", "holder:bob", 50, "ETH"), bad]
    batch += [mint("holder:bob", 2)]
    before = snapshot(ledger)
    with pytest.raises(Rejected):
        ledger.post_many(batch)
    assert snapshot(ledger) == before
    made = ledger.post_many(batch[:2] + batch[3:])
    assert [e.seq for e in made] == [2, 3, 4]


def test_post_many_spans_books(ledger: Ledger) -> None:
    """A batch may write to several books; each keeps its own gapless chain."""
    setup_book(ledger)
    setup_book(ledger, "C")
    made = ledger.post_many(
        [mint("holder:alice", 1), mint("holder:alice", 2, book="C"), mint("holder:bob", 3)]
    )
    assert [(e.book, e.seq) for e in made] == [("B", 1), ("C", 1), ("B", 2)]
    assert made[2].prev_hash == made[0].hash
    assert ledger.head("C") == (1, made[1].hash)
    assert ledger.verify("B").ok and ledger.verify("C").ok
