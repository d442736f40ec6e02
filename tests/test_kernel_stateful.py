"""Laws of the journal under random streams of valid and invalid writes (Hypothesis, stateful).

A pure model predicts, for every write, whether the kernel must accept it and, if not, with
which reason (in the kernel's order of checks: shape, then accounts and assets per book, then per
entry idempotency, reversal, uint256 range and balance rules). After every step the
invariants compare the database with the model and with a fold of its own postings.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field, replace
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import psycopg
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ledger.clock import FixedClock
from ledger.domain.balances import fold
from ledger.domain.canonical import GENESIS_HASH, seal
from ledger.domain.journal import EntryDraft, JournalEntry, Posting, reversal_of, to_micros
from ledger.errors import Reason, Rejected
from ledger.services.exports import export_book, replay_file
from ledger.services.ledger import open_ledger
from tests.conftest import PG_URL, require
from tests.test_kernel_support import ACCOUNTS, T0, UINT256_MAX, draft, setup_book

BOOKS = ("B", "C")
CODES = [code for code, _, _ in ACCOUNTS]
GUARDED = {code for code, _, rule in ACCOUNTS if rule.value == "non_negative"}

amounts = st.one_of(
    st.integers(1, 10**6),
    st.integers(2**63 - 3, 2**63 + 3),
    st.integers(10**18, 10**30),
    st.integers(UINT256_MAX - 3, UINT256_MAX),
)
moves = st.tuples(st.sampled_from(CODES), st.sampled_from(CODES), st.sampled_from(["USDT", "ETH"]))
DEFECTS = ["none"] * 10 + ["unbalanced", "unknown_account", "unknown_asset", "zero"]


@st.composite
def drafts(draw: Any) -> tuple[str, list[tuple[str, str, int]], str, dict[str, str], timezone]:
    """Draw (book, lines, defect, metadata, zone): 1-3 balanced moves, at most one defect."""
    lines: list[tuple[str, str, int]] = []
    for source, target, asset in draw(st.lists(moves, min_size=1, max_size=3)):
        units = draw(amounts)
        lines += [(target, asset, units), (source, asset, -units)]
    defect = draw(st.sampled_from(DEFECTS))
    if defect == "unbalanced":
        lines.append(("fees", lines[0][1], 1))
    elif defect == "unknown_account":
        lines[0] = ("holder:ghost", *lines[0][1:])
    elif defect == "unknown_asset":
        lines = [(a, "BTC", u) if i < 2 else (a, c, u) for i, (a, c, u) in enumerate(lines)]
    elif defect == "zero":
        lines += [("fees", "USDT", 0)]
    meta = draw(st.dictionaries(st.sampled_from(["memo", "ref"]), st.text(max_size=5), max_size=2))
    zone = timezone(timedelta(minutes=draw(st.sampled_from([0, 120, -330]))))
    return draw(st.sampled_from(BOOKS)), lines, defect, meta, zone


@dataclass
class Model:
    """What the journal must contain: entries, balances, keys and reversals per book."""

    entries: dict[str, list[JournalEntry]] = field(default_factory=lambda: {b: [] for b in BOOKS})
    balances: dict[str, dict[tuple[str, str], int]] = field(
        default_factory=lambda: {b: {} for b in BOOKS}
    )

    def copy(self) -> Model:
        return Model(
            {b: list(e) for b, e in self.entries.items()},
            {b: dict(v) for b, v in self.balances.items()},
        )

    def keyed(self, book: str) -> dict[str, JournalEntry]:
        return {e.draft.idempotency_key: e for e in self.entries[book] if e.draft.idempotency_key}

    def reversed(self, book: str) -> set[int]:
        return {e.draft.reverses for e in self.entries[book] if e.draft.reverses}


def _shape_error(d: EntryDraft) -> Reason | None:
    totals: dict[str, int] = {}
    for p in d.postings:
        if p.amount == 0:
            return Reason.BAD_INPUT
        if abs(p.amount) > UINT256_MAX:
            return Reason.AMOUNT_OUT_OF_RANGE
        totals[p.asset] = totals.get(p.asset, 0) + p.amount
    return Reason.UNBALANCED if any(totals.values()) else None


def _reference_error(ds: list[EntryDraft]) -> Reason | None:
    for book in sorted({d.book for d in ds}):
        mine = [p for d in ds if d.book == book for p in d.postings]
        if any(p.account not in CODES for p in mine):
            return Reason.UNKNOWN_ACCOUNT
        if any(p.asset not in ("USDT", "ETH") for p in mine):
            return Reason.UNKNOWN_ASSET
    return None


def _rule_error(balances: dict[tuple[str, str], int], d: EntryDraft) -> Reason | None:
    changed: dict[tuple[str, str], int] = {}
    for p in d.postings:
        key = (p.account, p.asset)
        changed[key] = changed.get(key, balances.get(key, 0)) + p.amount
    # The kernel checks the uint256 range of every touched balance before any balance rule.
    if any(abs(units) > UINT256_MAX for units in changed.values()):
        return Reason.AMOUNT_OUT_OF_RANGE
    if any(account in GUARDED and units < 0 for (account, _), units in changed.items()):
        return Reason.BALANCE_CONSTRAINT
    balances.update(changed)
    return None


def predict(model: Model, ds: list[EntryDraft]) -> Reason | None:
    """Return the reason the kernel must refuse batch `ds` with, or None; apply it if accepted."""
    for d in ds:
        if (error := _shape_error(d)) is not None:
            return error
    if (error := _reference_error(ds)) is not None:
        return error
    trial = model.copy()
    for d in ds:
        book = d.book
        used = trial.keyed(book).get(d.idempotency_key or "")
        if used is not None:
            if used.draft != d:
                return Reason.IDEMPOTENCY_CONFLICT
            continue
        if d.reverses is not None:
            target = d.reverses
            if target > len(trial.entries[book]):
                return Reason.UNKNOWN_ENTRY
            if target in trial.reversed(book):
                return Reason.ALREADY_REVERSED
        if (error := _rule_error(trial.balances[book], d)) is not None:
            return error
        seq = len(trial.entries[book]) + 1
        prev = trial.entries[book][-1].hash if seq > 1 else GENESIS_HASH
        trial.entries[book].append(JournalEntry(d, seq, T0, prev, b""))  # placeholder
    return None


class JournalMachine(RuleBasedStateMachine):
    """Drive one ledger with random writes; compare it with the model after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.url = self.make_url()
        self.clock = FixedClock(T0)
        self.lg = open_ledger(self.url, clock=self.clock)
        self.lg.init()
        for book in BOOKS:
            setup_book(self.lg, book)
        self.model = Model()
        self.serial = 0

    def make_url(self) -> str:
        raise NotImplementedError

    def drop(self) -> None:
        raise NotImplementedError

    # --- helpers -------------------------------------------------------------------------------
    def _state(self) -> tuple[Any, ...]:
        heads = tuple(self.lg.head(b) for b in BOOKS)
        return heads, tuple(tuple(sorted(self.lg.balances(b).items())) for b in BOOKS)

    def _key(self, choice: int, book: str) -> str | None:
        """0: no key, 1: a fresh key, 2+: reuse a key already used in `book` (if any)."""
        used = sorted(self.model.keyed(book))
        if choice == 0 or (choice >= 2 and not used):
            return None
        if choice == 1:
            self.serial += 1
            return f"k{self.serial}"
        return used[choice % len(used)]

    def _make(self, spec: Any, key_choice: int, *, copy_key: bool = True) -> EntryDraft:
        book, lines, _, meta, zone = spec
        key = self._key(key_choice, book)
        if key is not None and key_choice >= 2 and copy_key and key_choice % 2 == 0:
            return self.model.keyed(book)[key].draft  # an exact retry
        at = self.clock.now().astimezone(zone)  # the same instant in another zone
        return draft(*lines, book=book, key=key, at=at, meta=meta)

    def _submit(self, ds: list[EntryDraft], call: Any) -> None:
        """Run `call`, which writes `ds`; check the outcome against the model's prediction."""
        expected = predict(self.model, ds)
        event(f"outcome {len(ds)} draft(s): {expected}")
        before = self._state()
        try:
            made = call()
        except Rejected as exc:
            assert exc.reason is expected, (exc, expected, ds)
            assert self._state() == before, "a refused write changed the database"
            return
        assert expected is None, (expected, ds)
        for d, entry in zip(ds, made if isinstance(made, list) else [made], strict=True):
            self._record(d, entry)

    def _record(self, d: EntryDraft, entry: JournalEntry) -> None:
        book = d.book
        assert entry.draft == d
        used = self.model.keyed(book).get(d.idempotency_key or "")
        if used is not None:
            assert entry == used, "an idempotent retry must return the original entry"
            return
        entries = self.model.entries[book]
        prev = entries[-1].hash if entries else GENESIS_HASH
        assert (entry.seq, entry.prev_hash) == (len(entries) + 1, prev)
        resealed = seal(
            d,
            seq=entry.seq,
            recorded_us=to_micros(entry.recorded_at),
            prev_hash=prev,
            definitions=self.lg.definitions(book),
        )
        assert resealed.hash == entry.hash
        entries.append(entry)
        balances = self.model.balances[book]
        for p in d.postings:
            key = (p.account, p.asset)
            balances[key] = balances.get(key, 0) + p.amount
            if balances[key] == 0:
                del balances[key]

    # --- rules ---------------------------------------------------------------------------------
    @rule(spec=drafts(), key_choice=st.integers(0, 5))
    def post(self, spec: Any, key_choice: int) -> None:
        d = self._make(spec, key_choice)
        self._submit([d], lambda: self.lg.post(d))

    @rule(specs=st.lists(st.tuples(drafts(), st.integers(0, 5)), min_size=2, max_size=4))
    def post_many(self, specs: list[Any]) -> None:
        ds = [self._make(spec, key_choice) for spec, key_choice in specs]
        self._submit(ds, lambda: self.lg.post_many(ds))

    @precondition(lambda self: any(self.model.entries.values()))
    @rule(book=st.sampled_from(BOOKS), pick=st.integers(0, 10**6), key_choice=st.integers(0, 1))
    def reverse(self, book: str, pick: int, key_choice: int) -> None:
        entries = self.model.entries[book]
        if not entries:
            return
        target = entries[pick % len(entries)]
        key = self._key(key_choice, book)
        d = reversal_of(target, effective_at=self.clock.now(), key=key)
        self._submit([d], lambda: self.lg.reverse(book, target.seq, key=key))

    @precondition(lambda self: any(self.model.entries.values()))
    @rule(book=st.sampled_from(BOOKS), pick=st.integers(0, 10**6), delta=st.integers(-2, 2))
    def forged_reversal(self, book: str, pick: int, delta: int) -> None:
        entries = self.model.entries[book]
        if not entries:
            return
        target = entries[pick % len(entries)]
        d = reversal_of(target, effective_at=self.clock.now())
        first = d.postings[0]
        if delta:  # no longer an exact negation (and unbalanced, so refused by shape first)
            d = replace(d, postings=(Posting(first.account, first.asset, first.amount + delta),))
        self._submit([d], lambda: self.lg.post(d))

    @rule(seconds=st.integers(1, 10**6))
    def tick(self, seconds: int) -> None:
        self.clock.moment += timedelta(seconds=seconds)

    # --- invariants ----------------------------------------------------------------------------
    @invariant()
    def journal_matches_model(self) -> None:
        for book in BOOKS:
            stored = list(self.lg.entries(book))
            assert stored == self.model.entries[book]
            for entry in stored:
                totals: dict[str, int] = {}
                for p in entry.postings:
                    totals[p.asset] = totals.get(p.asset, 0) + p.amount
                assert not any(totals.values()), f"entry {entry.seq} does not balance"
            recomputed = fold(p for e in stored for p in e.postings)
            assert self.lg.balances(book) == recomputed == self.model.balances[book]
            head = (stored[-1].seq, stored[-1].hash) if stored else (0, GENESIS_HASH)
            assert self.lg.head(book) == head
            report = self.lg.verify(book)
            assert report.ok and report.head_seq == head[0], report
            middle = len(stored) // 2  # as-of queries agree with a fold of the prefix
            prefix = fold(p for e in stored[:middle] for p in e.postings)
            moment = stored[middle].draft.effective_at if stored else T0
            until = fold(p for e in stored if e.draft.effective_at <= moment for p in e.postings)
            for account, asset in {(p.account, p.asset) for e in stored for p in e.postings}:
                as_of = self.lg.balance(book, account, asset, as_of_seq=middle)
                assert as_of == prefix.get((account, asset), 0)
                at = self.lg.balance(book, account, asset, as_of_time=moment)
                assert at == until.get((account, asset), 0)

    def teardown(self) -> None:
        try:
            self._replay_matches()
        finally:
            self.lg.close()
            self.drop()

    def _replay_matches(self) -> None:
        """Export every book to JSON Lines and replay it into a fresh SQLite database."""
        folder = Path(tempfile.mkdtemp(prefix="tl-replay-"))
        fresh = open_ledger(f"sqlite:///{folder / 'replay.db'}")
        try:
            fresh.init()
            for book in BOOKS:
                out = io.StringIO()
                assert export_book(self.lg, book, "jsonl", out) == len(self.model.entries[book])
                path = folder / f"{book}.jsonl"
                path.write_text(out.getvalue(), encoding="utf-8")
                report = replay_file(fresh, path)
                assert report.ok, report
                assert list(fresh.entries(book)) == self.model.entries[book]
                assert fresh.head(book) == self.lg.head(book)
                assert fresh.balances(book) == self.model.balances[book]
        finally:
            fresh.close()
            shutil.rmtree(folder, ignore_errors=True)


class SqliteJournal(JournalMachine):
    def make_url(self) -> str:
        self.folder = Path(tempfile.mkdtemp(prefix="tl-stateful-"))
        return f"sqlite:///{self.folder / 'ledger.db'}"

    def drop(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class PostgresJournal(JournalMachine):
    def make_url(self) -> str:
        self.schema = f"tl_stateful_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {self.schema}")
        sep = "&" if "?" in PG_URL else "?"
        return f"{PG_URL}{sep}options=-csearch_path%3D{self.schema}"

    def drop(self) -> None:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")


QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]


def test_journal_laws_on_sqlite() -> None:
    """Entries balance, stored = recomputed balances, refusals change nothing, replay = hashes."""
    run_state_machine_as_test(
        SqliteJournal,
        settings=settings(
            max_examples=50, stateful_step_count=30, deadline=None, suppress_health_check=QUIET
        ),
    )


@pytest.mark.postgres
def test_journal_laws_on_postgres(pg_available: bool) -> None:
    """The same laws hold on the real PostgreSQL server (a shorter run)."""
    require(pg_available, f"PostgreSQL at {PG_URL}")
    run_state_machine_as_test(
        PostgresJournal,
        settings=settings(
            max_examples=10, stateful_step_count=20, deadline=None, suppress_health_check=QUIET
        ),
    )
