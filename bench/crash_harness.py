"""Crash harness (issue 9): SIGKILL the CLI at random points and check what survives.

Targets: `post` batches of keyed entries, `simulate`, `replay`, `export -o` and `chain sync`,
each on SQLite and on PostgreSQL. For every trial the command is started as its own process
and killed with SIGKILL after a random delay drawn from its measured running time (a trial
whose process finished first is a survival). After each kill:

- every book verifies (`verify_book`, what `token-ledger verify` runs: hashes, balances, rules
  and for a product's book the fund audit);
- every acknowledged write (the command exited 0) is there, entry for entry (`losses`);
- no entry is half there: each present entry is exactly the one its key describes;
- rerunning the keyed command converges to exactly one entry per key;
- an export file is absent, the old file or the whole new one, never partial;
- a replay leaves the book absent or whole, a simulation a prefix of its uninterrupted run,
  a chain sync a chain that the next sync brings to the ledger (reconcile equal).

Anything else is a violation, printed with the target, backend, seed and trial number.

    .venv/bin/python bench/crash_harness.py                      # full: 100 kills per target
    .venv/bin/python bench/crash_harness.py --kills 5 --targets post,export --db sqlite
    .venv/bin/python bench/crash_harness.py --record             # also write BENCHMARKS.md

The seed of each (target, backend) run is printed; `--seed S` replays the same delays.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ledger.domain.journal import Account, AccountType, BalanceRule, EntryDraft, Posting  # noqa: E402
from ledger.domain.money import Asset  # noqa: E402
from ledger.errors import Rejected  # noqa: E402
from ledger.services.ledger import Ledger, open_ledger  # noqa: E402

PG_URL = os.environ.get("TOKEN_LEDGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
TARGETS = ("post", "export", "replay", "simulate", "chain-sync")
BACKENDS = ("sqlite", "postgres")
T0 = datetime(2020, 3, 12, tzinfo=UTC)
BOOK_ENTRIES = 3000  # entries in the book that export and replay work on
POST_BATCH = 3  # keyed `post` commands per trial, one process each
SIM_BATCH = 400  # simulate posts in batches of this many entries (default 20,000) so kills land between them
SIM_ARGS = ["--synthetic", "12", "--holders", "40", "--orders-per-day", "25", "--no-chart"]
SIM_ARGS += ["--seed", "7"]


def cli_argv(*prefix: str) -> list[str]:
    """The installed `token-ledger` (the same entry point a user runs)."""
    binary = Path(sys.executable).parent / "token-ledger"
    if binary.is_file():
        return [str(binary), *prefix]
    return [sys.executable, "-m", "ledger.cli.main", *prefix]


def sim_argv() -> list[str]:
    """`token-ledger` with the simulation's batch size lowered (the same CLI otherwise)."""
    code = (
        f"import ledger.sim.driver as d; d.BATCH_ENTRIES = {SIM_BATCH}; "
        "from ledger.cli.main import main; main()"
    )
    return [sys.executable, "-c", code]


@dataclass
class Outcome:
    killed: bool
    code: int
    stdout: bytes
    stderr: bytes
    seconds: float


def run_until(argv: list[str], delay: float | None, stdin: bytes = b"") -> Outcome:
    """Run `argv`; after `delay` seconds SIGKILL it if it is still running (None: never)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        out, err = proc.communicate(stdin, timeout=delay if delay is not None else 600)
        killed = False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate()
        killed = proc.returncode == -signal.SIGKILL
    return Outcome(killed, proc.returncode, out, err, time.perf_counter() - started)


def run_ok(argv: list[str], stdin: bytes = b"") -> Outcome:
    done = run_until(argv, None, stdin)
    if done.code != 0:
        raise RuntimeError(f"{argv[-3:]} exited {done.code}: {done.stderr.decode()[-500:]}")
    return done


@dataclass
class Tally:
    """What one (target, backend) run saw."""

    target: str
    backend: str
    seed: int
    trials: int = 0
    kills: int = 0
    survivals: int = 0
    losses: int = 0
    violations: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def violate(self, trial: int, message: str) -> None:
        self.violations.append(
            f"{self.target}/{self.backend} seed {self.seed} trial {trial}: {message}"
        )

    def count(self, trial: int, done: Outcome, what: str) -> None:
        """Count a trial as a kill or a survival; a survival must have exited 0."""
        if done.killed:
            self.kills += 1
            return
        self.survivals += 1
        if done.code != 0:
            self.violate(trial, f"{what} exited {done.code}: {done.stderr.decode()!r}")

    def note(self, name: str, by: int = 1) -> None:
        self.notes[name] = self.notes.get(name, 0) + by

    def line(self) -> str:
        notes = ", ".join(f"{k} {v}" for k, v in sorted(self.notes.items())) or "-"
        return (
            f"| {self.target} | {self.backend} | {self.seed} | {self.kills} | {self.survivals} |"
            f" {self.losses} | {len(self.violations)} | {notes} | {self.seconds:.0f} |"
        )


# --- databases -----------------------------------------------------------------------------------


class Backend:
    """Fresh databases of one kind: SQLite files under a directory, or PostgreSQL schemas."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self.workdir = workdir
        self._schemas: list[str] = []

    def fresh(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.workdir / f'db-{uuid.uuid4().hex[:10]}.db'}"
        import psycopg

        schema = f"tl_crash_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        self._schemas.append(schema)
        sep = "&" if "?" in PG_URL else "?"
        return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"

    def drop(self, url: str) -> None:
        if self.kind == "sqlite":
            path = url.removeprefix("sqlite:///")
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(path + suffix).unlink(missing_ok=True)
            return
        import psycopg

        schema = url.rsplit("%3D", 1)[1]
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        self._schemas.remove(schema)

    def close(self) -> None:
        if self.kind != "postgres" or not self._schemas:
            return
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True) as conn:
            for schema in self._schemas:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        self._schemas.clear()


def postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3):
            return True
    except Exception:
        return False


@contextmanager
def opened(url: str) -> Iterator[Ledger]:
    lg = open_ledger(url)
    try:
        yield lg
    finally:
        lg.close()


def book_problems(lg: Ledger) -> list[str]:
    """Verify every book as `token-ledger verify` does; return the findings."""
    from ledger.services.audit import verify_book

    problems = []
    for book in lg.books():
        report = verify_book(lg, book)
        if not report.ok:
            problems.append(f"verify {book}: seq {report.first_bad_seq}: {report.problem}")
    return problems


def entry_hashes(lg: Ledger, book: str) -> list[str]:
    return [e.hash.hex() for e in lg.entries(book)]


def random_delay(rng: random.Random, expected: float) -> float:
    """A kill time in [0, 1.1 x expected], weighted toward the end, where the writes are."""
    return expected * 1.1 * rng.random() ** 0.5


# --- post: batches of keyed entries ------------------------------------------------------------

ACCOUNTS = ("cash", "fees", "holder:a", "holder:b")


def _post_setup(url: str) -> None:
    with opened(url) as lg:
        lg.init()
        lg.add_asset(Asset("USDT", 6))
        lg.add_asset(Asset("SHR", 18))
        for code, kind in zip(
            ACCOUNTS,
            (AccountType.ASSET, AccountType.INCOME, AccountType.LIABILITY, AccountType.LIABILITY),
            strict=True,
        ):
            lg.open_account(Account("main", code, kind, BalanceRule.NONE))


def keyed_entry(n: int) -> dict[str, Any]:
    """Entry number n: four postings in two assets, so that half an entry cannot balance."""
    big = 2**200 + n  # beyond int64 and float; a million of them fit uint256
    return {
        "book": "main",
        "kind": "transfer",
        "key": f"crash-{n}",
        "effective_at": (T0 + timedelta(seconds=n)).isoformat().replace("+00:00", "Z"),
        "metadata": {"n": str(n)},
        "postings": [
            {"account": "cash", "asset": "USDT", "amount": str(n + 1)},
            {"account": "fees", "asset": "USDT", "amount": str(-(n + 1))},
            {"account": "holder:a", "asset": "SHR", "amount": str(big)},
            {"account": "holder:b", "asset": "SHR", "amount": str(-big)},
        ],
    }


def _expected_postings(n: int) -> list[tuple[str, str, int]]:
    return [(p["account"], p["asset"], int(p["amount"])) for p in keyed_entry(n)["postings"]]


def _keyed_state(lg: Ledger) -> tuple[dict[str, list[Any]], list[str]]:
    by_key: dict[str, list[Any]] = {}
    problems = []
    for entry in lg.entries("main"):
        key = entry.draft.idempotency_key or ""
        by_key.setdefault(key, []).append(entry)
        n = int(key.removeprefix("crash-"))
        got = [(p.account, p.asset, p.amount) for p in entry.draft.postings]
        if got != _expected_postings(n):
            problems.append(f"entry {entry.seq} ({key}) is not whole: {got}")
    return by_key, problems


def target_post(tally: Tally, backend: Backend, kills: int, rng: random.Random) -> None:
    url = backend.fresh()
    _post_setup(url)
    argv = cli_argv("--db", url, "--json", "post", "-")
    expected = run_ok(argv, json.dumps(keyed_entry(0)).encode()).seconds * POST_BATCH
    acked: set[int] = {0}
    tried = 1
    trial = 0
    while tally.kills < kills:
        trial += 1
        batch = list(range(tried, tried + POST_BATCH))
        tried += POST_BATCH
        deadline = time.perf_counter() + random_delay(rng, expected)
        killed_at = None
        for n in batch:
            left = deadline - time.perf_counter()
            done = run_until(argv, max(left, 0.0), json.dumps(keyed_entry(n)).encode())
            if done.killed:
                killed_at = n
                break
            if done.code != 0:
                tally.violate(trial, f"post {n} exited {done.code}: {done.stderr.decode()!r}")
                break
            acked.add(n)
        if killed_at is None:
            tally.survivals += 1
        else:
            tally.kills += 1
        with opened(url) as lg:
            for problem in book_problems(lg):
                tally.violate(trial, problem)
            by_key, problems = _keyed_state(lg)
            for problem in problems:
                tally.violate(trial, problem)
            missing = [n for n in acked if f"crash-{n}" not in by_key]
            tally.losses += len(missing)
            if missing:
                tally.violate(trial, f"acknowledged entries lost: {missing}")
            if killed_at is not None and f"crash-{killed_at}" in by_key:
                tally.note("killed after commit")
        for n in batch:  # the rerun of the whole batch converges: one entry per key
            run_ok(argv, json.dumps(keyed_entry(n)).encode())
            acked.add(n)
        with opened(url) as lg:
            by_key, problems = _keyed_state(lg)
            counts = {k: len(v) for k, v in by_key.items() if len(v) != 1}
            if counts or len(by_key) != tried or problems:
                tally.violate(
                    trial, f"rerun did not converge: {counts or problems}, {len(by_key)} keys"
                )
        tally.trials = trial
    run_ok(cli_argv("--db", url, "verify"))  # the command itself, once at the end
    backend.drop(url)


# --- export -o: the file is absent, the old one or whole ---------------------------------------


def _filled_book(url: str, entries: int) -> None:
    _post_setup(url)
    with opened(url) as lg:
        drafts = []
        for n in range(entries):
            spec = keyed_entry(n)
            drafts.append(
                EntryDraft(
                    "main",
                    "transfer",
                    T0 + timedelta(seconds=n),
                    tuple(Posting(a, c, u) for a, c, u in _expected_postings(n)),
                    idempotency_key=spec["key"],
                )
            )
        for start in range(0, len(drafts), 500):
            lg.post_many(drafts[start : start + 500])


def truncated_export_accepted(url: str, whole: Path, workdir: Path) -> bool:
    """Whether `replay` takes an export cut after a whole line as a whole book (it must not)."""
    lines = whole.read_bytes().splitlines(keepends=True)
    cut = workdir / "cut.jsonl"
    cut.write_bytes(b"".join(lines[: max(2, len(lines) // 2)]))
    fresh = f"sqlite:///{workdir / f'cut-{uuid.uuid4().hex[:6]}.db'}"
    run_ok(cli_argv("--db", fresh, "init"))
    done = run_until(cli_argv("--db", fresh, "replay", str(cut)), None)
    Backend("sqlite", workdir).drop(fresh)
    return done.code == 0


def target_export(tally: Tally, backend: Backend, kills: int, rng: random.Random) -> None:
    url = backend.fresh()
    _filled_book(url, BOOK_ENTRIES)
    out = backend.workdir / "export.jsonl"
    whole = backend.workdir / "whole.jsonl"
    argv = cli_argv("--db", url, "export", "--book", "main", "--format", "jsonl", "-o", str(out))
    expected = run_ok(argv).seconds
    out.replace(whole)
    reference = whole.read_bytes()
    old = b'{"old": "an earlier export"}\n'
    trial = 0
    while tally.kills < kills:
        trial += 1
        had_old = trial % 2 == 0
        out.unlink(missing_ok=True)
        if had_old:
            out.write_bytes(old)
        done = run_until(argv, random_delay(rng, expected))
        tally.count(trial, done, "export")
        if not out.exists():
            if had_old or not done.killed:
                tally.violate(trial, "the export file vanished")
            tally.note("absent")
        else:
            data = out.read_bytes()
            if data == reference:
                tally.note("whole")
            elif had_old and data == old:
                tally.note("old")
            else:
                tally.violate(trial, f"partial export file ({len(data)} of {len(reference)} bytes)")
        leftovers = list(out.parent.glob(out.name + ".*"))
        if leftovers:
            tally.note("temporary file left by the kill")
            for path in leftovers:
                path.unlink()
        tally.trials = trial
    with opened(url) as lg:
        for problem in book_problems(lg):
            tally.violate(trial, problem)
    if truncated_export_accepted(url, whole, backend.workdir):
        tally.gaps.append(
            "export: replay accepts a jsonl export cut after a whole line as a whole book"
            " (no trailer yet: docs/reliability.md)"
        )
    backend.drop(url)


# --- replay: the book is absent or whole ---------------------------------------------------------


def target_replay(tally: Tally, backend: Backend, kills: int, rng: random.Random) -> None:
    source = backend.fresh()
    _filled_book(source, BOOK_ENTRIES)
    export = backend.workdir / "replay-source.jsonl"
    run_ok(cli_argv("--db", source, "export", "--book", "main", "-o", str(export)))
    with opened(source) as lg:
        reference = entry_hashes(lg, "main")
    backend.drop(source)
    expected = 0.0
    trial = 0
    while tally.kills < kills:
        trial += 1
        url = backend.fresh()
        run_ok(cli_argv("--db", url, "init"))
        argv = cli_argv("--db", url, "replay", str(export))
        if not expected:
            expected = run_ok(argv).seconds
            backend.drop(url)
            continue
        done = run_until(argv, random_delay(rng, expected))
        tally.count(trial, done, "replay")
        with opened(url) as lg:
            for problem in book_problems(lg):
                tally.violate(trial, problem)
            present = "main" in lg.books()
            hashes = entry_hashes(lg, "main") if present else []
        if hashes and hashes != reference:
            tally.violate(trial, f"half a replay: {len(hashes)} of {len(reference)} entries")
        if not done.killed and hashes != reference:
            tally.losses += 1
            tally.violate(trial, "replay exited 0 but the book is not whole")
        tally.note("whole" if hashes else "absent")
        again = run_until(argv, None)  # converges: a replay of an absent book makes it whole
        with opened(url) as lg:
            after = entry_hashes(lg, "main") if "main" in lg.books() else []
        if after != reference or again.code != (2 if hashes else 0):
            tally.violate(trial, f"rerun exited {again.code} with {len(after)} entries")
        backend.drop(url)
        tally.trials = trial


# --- simulate: what is there is a prefix of the uninterrupted run ------------------------------


def _sim_state(url: str) -> tuple[str, dict[str, list[str]], list[str]]:
    """('none' | 'books', hashes per book, verify findings) of a database simulate wrote."""
    try:
        with opened(url) as lg:
            books = lg.books()
            return "books", {b: entry_hashes(lg, b) for b in books}, book_problems(lg)
    except Rejected as exc:
        return exc.reason.value, {}, []


def target_simulate(tally: Tally, backend: Backend, kills: int, rng: random.Random) -> None:
    url = backend.fresh()
    expected = run_ok([*sim_argv(), "--db", url, "--json", "simulate", *SIM_ARGS]).seconds
    _, reference, _ = _sim_state(url)
    backend.drop(url)
    trial = 0
    while tally.kills < kills:
        trial += 1
        url = backend.fresh()
        argv = [*sim_argv(), "--db", url, "--json", "simulate", *SIM_ARGS]
        done = run_until(argv, random_delay(rng, expected))
        tally.count(trial, done, "simulate")
        status, books, problems = _sim_state(url)
        for problem in problems:
            tally.violate(trial, problem)
        for book, hashes in books.items():
            if hashes != reference.get(book, [])[: len(hashes)]:
                tally.violate(trial, f"book {book} is not a prefix of the uninterrupted run")
        if not done.killed and books != reference:
            tally.losses += 1
            tally.violate(trial, "simulate exited 0 but its books differ from the reference")
        entries = sum(len(h) for h in books.values())
        tally.note(
            "no schema"
            if status != "books"
            else "whole"
            if books == reference
            else "prefix"
            if entries
            else "empty books"
        )
        again = run_until(cli_argv("--db", url, "init"), None)  # a killed init/migration resumes
        if again.code != 0:
            tally.violate(
                trial, f"init after the kill exited {again.code}: {again.stderr.decode()!r}"
            )
        backend.drop(url)
        tally.trials = trial


# --- chain sync: the next sync makes chain == ledger ------------------------------------------


@dataclass
class ChainRig:
    url: str
    rpc_url: str
    clock: Any
    minted: int = 0


def _chain_grow(rig: ChainRig, rng: random.Random, orders: int) -> None:
    """Post `orders` mints and redeems of BTC3L through the fund engine (the harness's side)."""
    from ledger.services.funds import Funds

    lg = open_ledger(rig.url, clock=rig.clock)
    try:
        funds = Funds(lg)
        rig.clock.moment += timedelta(minutes=1)
        funds.set_price("BTC", str(9000 + rng.randrange(2000)))
        for _ in range(orders):
            holder = f"h{rng.randrange(60):03d}"
            if rig.minted and rng.random() < 0.25:
                with suppress(Rejected):
                    funds.redeem("BTC3L", holder, shares="0.5")
                    continue
            funds.mint("BTC3L", holder, cash=str(100 + rng.randrange(900)))
            rig.minted += 1
    finally:
        lg.close()


def target_chain_sync(tally: Tally, backend: Backend, kills: int, rng: random.Random) -> None:
    from ledger.chain.anvil import find_anvil, start_anvil, stop_anvil
    from ledger.chain.reconcile import reconcile_book
    from ledger.chain.rpc import connect
    from ledger.clock import FixedClock
    from ledger.services.funds import Funds

    if find_anvil() is None:
        raise RuntimeError("anvil not found: run `npm ci` (or set TOKEN_LEDGER_ANVIL)")
    node = start_anvil(workdir=backend.workdir / f"anvil-{uuid.uuid4().hex[:6]}")
    try:
        url = backend.fresh()
        clock = FixedClock(T0)
        with opened(url) as lg:
            lg.init()
            Funds(lg, clock=clock).create_product("BTC3L")
        rig = ChainRig(url, node.rpc_url, clock)
        _chain_grow(rig, rng, 40)
        argv = cli_argv("--db", url, "--json", "chain", "sync", "BTC3L", "--rpc-url", node.rpc_url)
        argv += ["--batch", "4"]
        run_ok(argv)
        _chain_grow(rig, rng, 20)
        expected = run_ok(argv).seconds
        w3 = connect(node.rpc_url)
        trial = 0
        while tally.kills < kills:
            trial += 1
            _chain_grow(rig, rng, rng.randrange(4, 24))
            done = run_until(argv, random_delay(rng, expected))
            tally.count(trial, done, "sync")
            with opened(url) as lg:
                for problem in book_problems(lg):
                    tally.violate(trial, problem)
                if not done.killed and done.code == 0 and not reconcile_book(lg, "BTC3L", w3).ok:
                    tally.losses += 1
                    tally.violate(trial, "sync exited 0 but the chain differs from the ledger")
            again = run_until(argv, None)
            with opened(url) as lg:
                report = reconcile_book(lg, "BTC3L", w3)
            if again.code != 0 or not report.ok:
                tally.violate(
                    trial,
                    f"the sync after the kill exited {again.code}; reconcile ok={report.ok}"
                    f" ({len(report.differences)} holders differ)",
                )
            sent = json.loads(again.stdout or b"{}").get("txs", None)
            tally.note("rerun sent nothing" if sent == 0 else "rerun finished the work")
            tally.trials = trial
        backend.drop(url)
    finally:
        stop_anvil(node)


RUNNERS: dict[str, Callable[[Tally, Backend, int, random.Random], None]] = {
    "post": target_post,
    "export": target_export,
    "replay": target_replay,
    "simulate": target_simulate,
    "chain-sync": target_chain_sync,
}


def run_target(target: str, kind: str, kills: int, seed: int) -> Tally:
    """Run one target on one backend until `kills` processes were killed."""
    tally = Tally(target, kind, seed)
    workdir = Path(tempfile.mkdtemp(prefix=f"crash-{target}-{kind}-"))
    backend = Backend(kind, workdir)
    started = time.perf_counter()
    try:
        RUNNERS[target](tally, backend, kills, random.Random(seed))
    finally:
        tally.seconds = time.perf_counter() - started
        backend.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return tally


HEADER = (
    "| target | db | seed | kills | survivals | losses | violations | after the kill | s |\n"
    "|---|---|---|---:|---:|---:|---:|---|---:|"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100, help="kills per target and backend")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--db", default=",".join(BACKENDS))
    parser.add_argument("--seed", type=int, default=None, help="base seed (default: random)")
    parser.add_argument("--record", action="store_true", help="write the table to BENCHMARKS.md")
    args = parser.parse_args(argv)
    base = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    kinds = [k for k in args.db.split(",") if k]
    if "postgres" in kinds and not postgres_available():
        print(f"PostgreSQL at {PG_URL} is not reachable", file=sys.stderr)
        return 2
    print(f"crash harness: base seed {base}, {args.kills} kills per target and db", flush=True)
    print(HEADER, flush=True)
    tallies = []
    for index, target in enumerate(t for t in args.targets.split(",") if t):
        for offset, kind in enumerate(kinds):
            seed = base + 100 * index + offset
            tally = run_target(target, kind, args.kills, seed)
            tallies.append(tally)
            print(tally.line(), flush=True)
    violations = [v for t in tallies for v in t.violations]
    for violation in violations:
        print("VIOLATION", violation)
    for gap in sorted({g for t in tallies for g in t.gaps}):
        print("GAP", gap)
    total = sum(t.kills for t in tallies)
    print(
        f"{total} kills, {sum(t.survivals for t in tallies)} survivals,"
        f" {sum(t.losses for t in tallies)} losses, {len(violations)} violations"
    )
    if args.record:
        from bench._report import write_section

        body = (
            f"`python bench/crash_harness.py --kills {args.kills} --seed {base}` (see docs/reliability.md)\n\n"
            + HEADER
            + "\n"
            + "\n".join(t.line() for t in tallies)
        )
        write_section("Crash harness (SIGKILL)", body)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
