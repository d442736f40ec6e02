"""An audit in slices (`Auditor.slice` + `join`) agrees with the audit in one pass.

The property, on random books with balance rules, reversals, both encodings and tampered
rows: the joined slices vouch for a book exactly when the one-pass audit finds nothing, and
then hold the same balances, head and encoding. A slice that cannot vouch makes the caller
audit in one pass, so a problem is always named by the one-pass audit.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import event, given, settings
from hypothesis import strategies as st

from ledger.domain.audit import Auditor, EntryRow, PostingRow, rows_of
from ledger.domain.canonical import GENESIS_HASH, Definitions, definitions_of, seal
from ledger.domain.journal import (
    Account,
    AccountType,
    BalanceRule,
    EntryDraft,
    JournalEntry,
    Posting,
    reversal_of,
    to_micros,
)
from ledger.domain.money import Asset

BOOK = "F"
ASSETS = (Asset("USDT", 6), Asset("BTC", 8))
ACCOUNTS = (
    Account(BOOK, "a", AccountType.LIABILITY, BalanceRule.NON_NEGATIVE),
    Account(BOOK, "b", AccountType.LIABILITY, BalanceRule.NON_NEGATIVE),
    Account(BOOK, "c", AccountType.ASSET, BalanceRule.NON_POSITIVE),
    Account(BOOK, "d", AccountType.ASSET),
)
NAMES = [a.code for a in ACCOUNTS]
T0 = datetime(2021, 1, 1, tzinfo=UTC)

transfer = st.tuples(
    st.just("move"),
    st.sampled_from(NAMES),
    st.sampled_from(NAMES),
    st.sampled_from([a.code for a in ASSETS]),
    st.integers(1, 50),
)
reversal = st.tuples(st.just("reverse"), st.integers(1, 40), st.sampled_from([True, True, False]))
operations = st.lists(st.one_of(*[transfer] * 8, reversal), min_size=1, max_size=40)
tamper = st.one_of(
    st.none(),
    st.none(),
    st.none(),
    st.tuples(st.just("hash"), st.integers(0, 45)),
    st.tuples(st.just("amount"), st.integers(0, 45)),
    st.tuples(st.just("drop"), st.integers(0, 45)),
    st.tuples(st.just("relink"), st.integers(0, 45)),
)


FUNDING = [("move", h, "d", c, 100) for h in ("a", "b") for c in ("USDT", "BTC")]


def build(
    ops: list[tuple[object, ...]], legacy_until: int, back_at: int | None = None
) -> list[JournalEntry]:
    """Seal a chain from `ops` without checking it (rules may break, reversals may be
    wrong or repeated): entries before seq `legacy_until` in encoding 1, then encoding 2,
    and from `back_at` encoding 1 again (which no audit accepts after encoding 2)."""
    definitions = definitions_of(ASSETS, ACCOUNTS)
    entries: list[JournalEntry] = []
    prev = GENESIS_HASH
    for op in ops:
        seq = len(entries) + 1
        at = T0 + timedelta(seconds=seq)
        if op[0] == "move":
            _, debit, credit, asset, units = op
            draft = EntryDraft(
                book=BOOK,
                kind="move",
                effective_at=at,
                postings=(
                    Posting(str(debit), str(asset), int(str(units))),
                    Posting(str(credit), str(asset), -int(str(units))),
                ),
            )
        else:
            _, target, exact = op
            if not entries:
                continue
            original = entries[(int(str(target)) - 1) % len(entries)]
            draft = reversal_of(original, effective_at=at)
            if not exact:  # balanced, but repeats the original instead of negating it
                draft = replace(draft, postings=original.draft.postings)
        entry = seal(
            draft,
            seq=seq,
            recorded_us=to_micros(at),
            prev_hash=prev,
            definitions=definitions,
            encoding=1 if seq < legacy_until or (back_at is not None and seq >= back_at) else 2,
        )
        entries.append(entry)
        prev = entry.hash
    return entries


def tampered(
    rows: list[EntryRow], postings: list[PostingRow], how: tuple[str, int] | None
) -> tuple[list[EntryRow], list[PostingRow]]:
    if how is None:
        return rows, postings
    kind, at = how
    i = at % len(rows)
    seq = rows[i][0]
    if kind == "hash":
        rows[i] = (*rows[i][:8], bytes(32))
    elif kind == "relink":
        rows[i] = (*rows[i][:7], bytes(32), rows[i][8])
    elif kind == "drop":
        del rows[i]
        postings = [p for p in postings if p[0] != seq]
    else:
        j = next(k for k, p in enumerate(postings) if p[0] == seq)
        postings[j] = (*postings[j][:3], postings[j][3] + 1)
    return rows, postings


def sliced(
    definitions: Definitions,
    targets: frozenset[int],
    rows: list[EntryRow],
    postings: list[PostingRow],
    cuts: list[int],
) -> Auditor | None:
    """Audit rows[0:cuts[0]] from the genesis, then each further slice on its own, then join
    them in order; return the joined fold, or None where a join refused."""
    bounds = [0, *sorted({c % (len(rows) + 1) for c in cuts} - {0}), len(rows)]
    whole: Auditor | None = None
    for start, end in itertools.pairwise(bounds):
        part_rows = rows[start:end]
        seqs = {r[0] for r in part_rows}
        part_postings = [p for p in postings if p[0] in seqs]
        if whole is None:
            fold = Auditor(BOOK, definitions, targets)
        else:
            first = part_rows[0][0] if part_rows else whole.head_seq + 1
            anchor = rows[start - 1][8]
            fold = Auditor.slice(BOOK, definitions, targets, from_seq=first, anchor=anchor)
        fold.feed_chunk(part_rows, part_postings)
        if whole is None:
            if fold.finding is not None:
                return None
            whole = fold
        else:
            event(
                f"slice keeps: reversals {bool(fold.open_reversals)}, rules {bool(fold.extremes)}"
            )
            if not whole.join(fold):
                return None
    return whole


@settings(max_examples=400, deadline=None)
@given(
    ops=operations,
    legacy_until=st.integers(1, 50),
    back_at=st.one_of(st.none(), st.integers(2, 50)),
    how=tamper,
    cuts=st.lists(st.integers(0, 60), max_size=4),
)
def test_joined_slices_vouch_exactly_when_one_pass_finds_nothing(
    ops: list[tuple[object, ...]],
    legacy_until: int,
    back_at: int | None,
    how: tuple[str, int] | None,
    cuts: list[int],
) -> None:
    entries = build([*FUNDING, *ops], legacy_until, back_at)
    rows, postings = tampered(*rows_of(entries), how)
    definitions = definitions_of(ASSETS, ACCOUNTS)
    targets = frozenset(r[5] for r in rows if r[5] is not None)
    serial = Auditor(BOOK, definitions, targets)
    serial.feed_chunk(rows, postings)
    joined = sliced(definitions_of(ASSETS, ACCOUNTS), targets, rows, postings, cuts)
    event(f"one pass finds {'nothing' if serial.finding is None else 'a problem'}")
    if serial.finding is None:
        assert joined is not None
        assert {k: v for k, v in joined.balances.items() if v} == {
            k: v for k, v in serial.balances.items() if v
        }
        assert (joined.head_seq, joined.head_hash, joined.head_encoding) == (
            serial.head_seq,
            serial.head_hash,
            serial.head_encoding,
        )
        assert (joined._kept, joined._reversed) == (serial._kept, serial._reversed)
    else:
        assert joined is None


def test_a_rule_broken_across_a_slice_boundary_is_refused_by_join() -> None:
    """Slice 2 alone sees `a` go to -5 from its start, which is fine only if `a` starts at
    5 or more: after +3 it refuses; after +7 it vouches, with a's balance 2."""
    for first_amount, vouched in ((3, False), (7, True)):
        ops = [("move", "a", "d", "USDT", first_amount), ("move", "d", "a", "USDT", 5)]
        rows, postings = rows_of(build(ops, 1))
        definitions = definitions_of(ASSETS, ACCOUNTS)
        whole = Auditor(BOOK, definitions)
        assert whole.feed_chunk(rows[:1], postings[:2])
        part = Auditor.slice(BOOK, definitions, frozenset(), from_seq=2, anchor=rows[0][8])
        assert part.feed_chunk(rows[1:], postings[2:])
        assert part.extremes == {("a", "USDT"): -5}
        assert whole.join(part) is vouched
        if vouched:
            assert whole.balances[("a", "USDT")] == 2 and whole.head_seq == 2


def test_a_reversal_of_an_entry_before_the_slice_is_settled_by_join() -> None:
    """Entry 3 reverses entry 1 from another slice: joined once, it vouches; a second
    slice reversing entry 1 again is refused."""
    ops = [("move", "d", "c", "USDT", 4), ("move", "d", "c", "BTC", 1), ("reverse", 1, True)]
    ops += [("reverse", 1, True)]
    rows, postings = rows_of(build(ops, 1))
    definitions = definitions_of(ASSETS, ACCOUNTS)
    whole = Auditor(BOOK, definitions, frozenset({1}))
    assert whole.feed_chunk(rows[:2], postings[:4])
    third = Auditor.slice(BOOK, definitions, frozenset({1}), from_seq=3, anchor=rows[1][8])
    assert third.feed_chunk(rows[2:3], postings[4:6])
    assert [(s, t) for s, t, _ in third.open_reversals] == [(3, 1)]
    assert whole.join(third)
    fourth = Auditor.slice(BOOK, definitions, frozenset({1}), from_seq=4, anchor=rows[2][8])
    assert fourth.feed_chunk(rows[3:], postings[6:])
    assert not whole.join(fourth)


def test_join_refuses_what_the_slice_could_not_see() -> None:
    """Each question a slice keeps, failing across the boundary while both halves pass
    alone: a reversal of an earlier entry that does not negate it, encoding 1 after encoding
    2, and a slice anchored at a hash that is not the joined fold's head."""
    definitions = definitions_of(ASSETS, ACCOUNTS)
    cases = {
        "inexact reversal": build(
            [FUNDING[0], ("move", "d", "c", "USDT", 4), ("reverse", 2, False)], 1
        ),
        "encoding back": build([FUNDING[0], FUNDING[1], FUNDING[2]], 2, back_at=3),
    }
    for name, entries in cases.items():
        rows, postings = rows_of(entries)
        targets = frozenset(r[5] for r in rows if r[5] is not None)
        serial = Auditor(BOOK, definitions, targets)
        assert not serial.feed_chunk(rows, postings), name
        whole = Auditor(BOOK, definitions, targets)
        assert whole.feed_chunk(rows[:2], postings[:4]), name
        part = Auditor.slice(BOOK, definitions, targets, from_seq=3, anchor=rows[1][8])
        assert part.feed_chunk(rows[2:], postings[4:]), name
        assert not whole.join(part), name
    entries = build(FUNDING, 1)
    rows, postings = rows_of(entries)
    whole = Auditor(BOOK, definitions)
    assert whole.feed_chunk(rows[:2], postings[:4])
    elsewhere = seal(
        entries[2].draft,
        seq=3,
        recorded_us=to_micros(entries[2].recorded_at),
        prev_hash=bytes(32),
        definitions=definitions,
    )
    stranger = Auditor.slice(BOOK, definitions, frozenset(), from_seq=3, anchor=bytes(32))
    assert stranger.feed_chunk(*rows_of([elsewhere]))
    assert not whole.join(stranger)
