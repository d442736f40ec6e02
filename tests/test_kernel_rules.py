"""Kernel rules on both databases: idempotency, reversals, balance rules, batches, queries."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from ledger.clock import FixedClock
from ledger.domain.journal import Account, AccountType, BalanceRule
from ledger.errors import Reason, Rejected
from ledger.services.ledger import Ledger
from tests.test_kernel_support import (
    BOOK,
    T0,
    UINT256_MAX,
    day,
    draft,
    mint,
    move,
    row_counts,
    setup_book,
    snapshot,
)


def _refused(lg: Ledger, reason: Reason, call: object, *args: object, **kwargs: object) -> None:
    """Assert that `call(*args)` is refused with `reason` and changes nothing."""
    before = snapshot(lg)
    with pytest.raises(Rejected) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    assert caught.value.reason is reason, caught.value
    assert snapshot(lg) == before


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
    _refused(ledger, Reason.IDEMPOTENCY_CONFLICT, ledger.post, changed)
    _refused(
        ledger,
        Reason.IDEMPOTENCY_CONFLICT,
        ledger.post_many,
        [mint("holder:bob", 1), changed],
    )


def test_same_key_other_content_in_one_batch_is_a_conflict(ledger: Ledger) -> None:
    """Two drafts of one batch that share a key but differ are refused, nothing written."""
    setup_book(ledger)
    batch = [mint("holder:alice", 5, key="k"), mint("holder:alice", 6, key="k")]
    _refused(ledger, Reason.IDEMPOTENCY_CONFLICT, ledger.post_many, batch)
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
    _refused(ledger, Reason.ALREADY_REVERSED, ledger.reverse, BOOK, 1)
    negation = mint("holder:alice", -1_000, reverses=1)
    _refused(ledger, Reason.ALREADY_REVERSED, ledger.post, negation)


def test_reversal_in_the_same_batch_twice_is_refused(ledger: Ledger) -> None:
    """Two reversals of one entry inside one batch are refused, nothing written."""
    setup_book(ledger)
    ledger.post(mint("holder:alice", 1_000))
    negation = mint("holder:alice", -1_000, reverses=1)
    _refused(ledger, Reason.ALREADY_REVERSED, ledger.post_many, [negation, negation])


def test_batch_may_reverse_its_own_earlier_entry(ledger: Ledger) -> None:
    """Inside one batch an entry may be reversed after it is made, never before."""
    setup_book(ledger)
    ledger.post(mint("holder:alice", 10))
    made = ledger.post_many([mint("holder:bob", 7), mint("holder:bob", -7, reverses=2)])
    assert [(e.seq, e.draft.reverses) for e in made] == [(2, None), (3, 2)]
    assert ledger.balances(BOOK) == {("equity", "ETH"): -10, ("holder:alice", "ETH"): 10}
    early = [mint("holder:bob", -7, reverses=5), mint("holder:bob", 7)]  # 5 would be the mint
    _refused(ledger, Reason.UNKNOWN_ENTRY, ledger.post_many, early)
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
    _refused(ledger, Reason.BAD_INPUT, ledger.post, bad)


def test_reversal_of_unknown_entry_is_refused(ledger: Ledger) -> None:
    """Reversing an entry that does not exist is refused with UNKNOWN_ENTRY."""
    setup_book(ledger)
    ledger.post(mint("holder:alice", 1_000))
    _refused(ledger, Reason.UNKNOWN_ENTRY, ledger.reverse, BOOK, 2)
    _refused(ledger, Reason.UNKNOWN_ENTRY, ledger.post, mint("holder:alice", -1, reverses=7))


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
    _refused(
        ledger,
        Reason.BALANCE_CONSTRAINT,
        ledger.post,
        move("holder:alice", "holder:bob", 101, "ETH"),
    )
    ledger.post(move("holder:alice", "holder:bob", 100, "ETH"))  # exactly to zero is fine
    assert ledger.balance(BOOK, "holder:alice", "ETH") == 0
    _refused(ledger, Reason.BALANCE_CONSTRAINT, ledger.post, mint("holder:alice", -1))
    assert ledger.balances(BOOK) == {("equity", "ETH"): -100, ("holder:bob", "ETH"): 100}


def test_rule_is_checked_after_every_entry_of_a_batch(ledger: Ledger) -> None:
    """In a batch, a dip below zero between entries is refused even if a later entry repays it."""
    setup_book(ledger)
    ledger.post(mint("holder:alice", 10))
    batch = [move("holder:alice", "holder:bob", 15, "ETH"), mint("holder:alice", 10)]
    _refused(ledger, Reason.BALANCE_CONSTRAINT, ledger.post_many, batch)
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
    _refused(ledger, Reason.BALANCE_CONSTRAINT, ledger.post, move("cash", "equity:capped", 51))
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
    _refused(ledger, Reason.UNKNOWN_ACCOUNT, ledger.post, mint("holder:carol", 1))
    _refused(ledger, Reason.UNKNOWN_ASSET, ledger.post, mint("holder:alice", 1, asset="BTC"))
    _refused(ledger, Reason.UNKNOWN_BOOK, ledger.post, mint("holder:alice", 1, book="Z"))
    _refused(ledger, Reason.UNKNOWN_BOOK, ledger.verify, "Z")
    _refused(ledger, Reason.UNKNOWN_ENTRY, ledger.entry, BOOK, 1)
    ledger.open_account(Account(BOOK, "holder:carol", AccountType.LIABILITY))
    assert ledger.post(mint("holder:carol", 1)).seq == 1


def test_malformed_drafts_are_refused(ledger: Ledger) -> None:
    """Unbalanced, empty, zero-amount, float-amount and naive-time drafts are refused."""
    setup_book(ledger)
    cases = [
        (Reason.UNBALANCED, draft(("holder:alice", "ETH", 5), ("equity", "ETH", -4))),
        (Reason.UNBALANCED, draft(("holder:alice", "ETH", 5), ("equity", "USDT", -5))),
        (Reason.EMPTY_ENTRY, draft()),
        (Reason.BAD_INPUT, draft(("holder:alice", "ETH", 0), ("equity", "ETH", 0))),
        (Reason.BAD_INPUT, draft(("holder:alice", "ETH", 1.0), ("equity", "ETH", -1.0))),
        (Reason.BAD_INPUT, mint("holder:alice", 5, at=T0.replace(tzinfo=None))),
        (Reason.BAD_INPUT, mint("holder:alice", 5, kind="Bad Kind")),
    ]
    for reason, bad in cases:
        _refused(ledger, reason, ledger.post, bad)
    assert row_counts(ledger) == (0, 0)


# --- text edge cases -------------------------------------------------------------------------


ODD_TEXT = {
    "nul-key": {"key": "k\x00nul"},
    "nul-metadata": {"meta": {"memo": "a\x00b"}},
    "surrogate-metadata": {"meta": {"memo": "lone \ud800 surrogate"}},
    "surrogate-key": {"key": "lone \udfff surrogate"},
}


@pytest.mark.parametrize("name", list(ODD_TEXT))
def test_odd_text_is_stored_exactly_or_refused(ledger: Ledger, name: str) -> None:
    """Text the databases cannot hold is refused with BAD_INPUT on both, never a driver error."""
    setup_book(ledger)
    before = snapshot(ledger)
    try:
        entry = ledger.post(mint("holder:alice", 5, **ODD_TEXT[name]))
    except Rejected as exc:
        assert exc.reason is Reason.BAD_INPUT, exc
        assert snapshot(ledger) == before
        return
    assert ledger.entry(BOOK, entry.seq) == entry
    assert ledger.verify(BOOK).ok


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("reverses", True, id="bool-reverses"),
        pytest.param("reverses", 1.0, id="float-reverses"),
        pytest.param("idempotency_key", 5, id="int-key"),
        pytest.param("kind", 5, id="int-kind"),
        pytest.param("book", None, id="none-book"),
    ],
)
def test_ill_typed_draft_fields_are_refused(ledger: Ledger, field: str, value: object) -> None:
    """A draft field of the wrong type is refused with BAD_INPUT; it never reaches the chain."""
    setup_book(ledger)
    ledger.post(move("cash", "fees", 1))
    bad = replace(move("fees", "cash", 1), **{field: value})
    _refused(ledger, Reason.BAD_INPUT, ledger.post, bad)
    assert ledger.verify(BOOK).ok


def test_longest_codes_fit_the_columns(ledger: Ledger) -> None:
    """Book, account, asset, kind and key at their maximum length are stored and verified."""
    from ledger.domain.money import Asset

    book, account, kind = "B" * 64, "a" * 127 + "z", "k" * 64
    asset, key = "A" * 32, "é" * 256  # 256 characters, 512 bytes
    ledger.add_asset(Asset(asset, 18))
    for code in (account, "equity"):
        ledger.open_account(Account(book, code, AccountType.EQUITY))
    meta = {f"m{i:02d}": "✓" * 4000 for i in range(64)}
    made = ledger.post(
        draft(
            (account, asset, UINT256_MAX),
            ("equity", asset, -UINT256_MAX),
            book=book,
            kind=kind,
            key=key,
            meta=meta,
        )
    )
    assert ledger.entry(book, 1) == made
    assert ledger.verify(book).ok
    too_long = [
        lambda: Account(book + "B", "x", AccountType.ASSET),
        lambda: Account(book, account + "z", AccountType.ASSET),
        lambda: Asset(asset + "A", 2),
        lambda: ledger.post(mint(account, 1, book=book, kind=kind + "k")),
        lambda: ledger.post(mint(account, 1, book=book, key=key + "é")),
    ]
    for make in too_long:
        with pytest.raises(Rejected) as caught:
            make()
        assert caught.value.reason is Reason.BAD_INPUT


def test_extreme_business_times_round_trip(ledger: Ledger, tmp_path: Path) -> None:
    """Effective times from year 1 to year 9999 (negative microseconds too) store and replay."""
    import io
    from datetime import UTC, datetime

    from ledger.services.exports import export_book, replay_file
    from ledger.services.ledger import open_ledger

    setup_book(ledger)
    moments = [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    ]
    made = [ledger.post(mint("holder:alice", 1, at=moment)) for moment in moments]
    assert [e.draft.effective_at for e in ledger.entries(BOOK)] == moments
    assert ledger.balance(BOOK, "holder:alice", "ETH", as_of_time=moments[1]) == 2
    assert ledger.verify(BOOK).ok
    out = io.StringIO()
    export_book(ledger, BOOK, "jsonl", out)
    path = tmp_path / "b.jsonl"
    path.write_text(out.getvalue(), encoding="utf-8")
    fresh = open_ledger(f"sqlite:///{tmp_path}/replay.db")
    try:
        fresh.init()
        assert replay_file(fresh, path).ok
        assert list(fresh.entries(BOOK)) == made
    finally:
        fresh.close()
