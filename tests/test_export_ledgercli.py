"""ledger-cli export: the real `ledger` and `hledger` binaries find exactly our balances."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.balances import fold
from ledger.domain.canonical import GENESIS_HASH, definitions_of, seal
from ledger.domain.journal import (
    Account,
    AccountType,
    BalanceRule,
    EntryDraft,
    JournalEntry,
    Posting,
    check_draft,
    make_metadata,
)
from ledger.domain.money import UINT256_MAX, Asset, parse_units
from ledger.errors import Reason, Rejected
from ledger.export.ledgercli import (
    ROOT_NAMES,
    ledger_accounts,
    ledger_commodity,
    write_ledger,
)
from tests.conftest import require

BOOK = "BTC1.5L"
ASSETS = (Asset("BTC1.5L", 18), Asset("BTC3L", 18), Asset("USDT", 6), Asset("PTS", 0))
HOLDERS = ("holder:alice", "holder:0xAbCdEf0123456789aBcDeF0123456789AbCdEf01", "holder:bob@x.io")
ACCOUNTS = (
    *(Account(BOOK, code, AccountType.ASSET, BalanceRule.NON_NEGATIVE) for code in HOLDERS),
    Account(BOOK, "holder:treasury", AccountType.ASSET, BalanceRule.NON_NEGATIVE),
    Account(BOOK, "equity:shares-outstanding", AccountType.EQUITY),
    Account(BOOK, "cash", AccountType.ASSET),
    Account(BOOK, "cash:hot_wallet", AccountType.ASSET),  # a child of another account
    Account(BOOK, "cash:_:cold", AccountType.ASSET),
    Account(BOOK, "fees", AccountType.INCOME),
    Account(BOOK, "payable", AccountType.LIABILITY),
    Account(BOOK, "gas", AccountType.EXPENSE),
)
SHARE = 10**18
NEAR_MAX = UINT256_MAX - 12_345
BOB_MAX = UINT256_MAX - 99 * SHARE - 1


def when(day: int) -> datetime:
    """Return noon UTC of January `day`, 2024."""
    return datetime(2024, 1, day, 12, tzinfo=UTC)


def move(kind: str, day: int, *legs: tuple[str, str, str, int], **extra: object) -> EntryDraft:
    """Return a draft of (debit account, credit account, asset, units) legs."""
    postings = []
    for debit, credit, asset, units in legs:
        postings += [Posting(debit, asset, units), Posting(credit, asset, -units)]
    return EntryDraft(BOOK, kind, when(day), tuple(postings), **extra)  # type: ignore[arg-type]


def chain(drafts: list[EntryDraft]) -> list[JournalEntry]:
    """Seal drafts into a hash chain, as the kernel would record them."""
    entries, prev = [], GENESIS_HASH
    for seq, draft in enumerate(drafts, start=1):
        entries.append(
            seal(
                check_draft(draft),
                seq=seq,
                recorded_us=seq,
                prev_hash=prev,
                definitions=definitions_of(ASSETS, ACCOUNTS),
            )
        )
        prev = entries[-1].hash
    return entries


SCENARIO = chain(
    [
        move("deposit", 2, ("cash", "payable", "USDT", 1_000_000_000_000_000)),
        move(
            "mint",
            3,
            ("holder:alice", "equity:shares-outstanding", "BTC1.5L", 99 * SHARE + 1),
            ("cash:hot_wallet", "fees", "USDT", 5_000_001),
            metadata=make_metadata({"nav": "10.000000", "note": 'é "q"\nline'}),
            idempotency_key='mint "1" ✓',
        ),
        move("mint", 4, ("holder:bob@x.io", "equity:shares-outstanding", "BTC1.5L", NEAR_MAX)),
        move("fee", 1, ("gas", "cash", "USDT", 1), ("holder:treasury", "fees", "PTS", 7)),
        move("mint", 5, (HOLDERS[1], "equity:shares-outstanding", "BTC3L", 1)),
        move("reversal", 6, ("fees", "cash:hot_wallet", "USDT", 5_000_001), reverses=2),
        move("redeem", 7, ("equity:shares-outstanding", "holder:bob@x.io", "BTC1.5L", NEAR_MAX)),
        # Shares outstanding reach exactly 2**256-1, the most the kernel allows.
        move("mint", 8, ("holder:bob@x.io", "equity:shares-outstanding", "BTC1.5L", BOB_MAX)),
    ]
)


def need(binary: str) -> str:
    """Return the path of `binary`; skip without it, but fail under CI=true."""
    path = shutil.which(binary)
    require(path is not None, f"the {binary} binary (Debian package {binary})")
    assert path is not None
    return path


def journal(entries: list[JournalEntry], directory: Path) -> Path:
    """Write `entries` as a ledger-cli journal in `directory` and return its path."""
    path = directory / "book.ledger"
    with path.open("w", encoding="utf-8") as out:
        write_ledger(out, book=BOOK, assets=ASSETS, accounts=ACCOUNTS, entries=entries)
    return path


_CODES = {name: code for code, name in ledger_accounts(ACCOUNTS).items()}
_ASSETS = {a.code: a for a in ASSETS}


def parse_amount(text: str, assets: dict[str, Asset] | None = None) -> tuple[str, int]:
    """Parse a tool's `NUMBER COMMODITY` (commodity maybe quoted) to (asset code, units)."""
    number, _, symbol = text.strip().partition(" ")
    asset = (assets or _ASSETS)[symbol.strip('"')]
    return asset.code, parse_units(number, asset.scale)


def ledger_balances(
    path: Path,
    *,
    codes: dict[str, str] | None = None,
    assets: dict[str, Asset] | None = None,
) -> dict[tuple[str, str], int]:
    """Return the (account, asset) balances the real `ledger` binary computes from `path`
    (`codes`: ledger account name -> our code, `assets`: symbol -> asset; this module's
    book by default)."""
    result = subprocess.run(
        [
            need("ledger"),
            "-f",
            str(path),
            "--pedantic",
            "balance",
            "--flat",
            "--empty",
            "--no-total",
            # display_amount: the account's own postings, not its children's.
            "--balance-format",
            "%(account)\t%(join(display_amount))\n",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stderr == ""
    names = codes or _CODES
    balances = {}
    for line in result.stdout.splitlines():
        name, _, amounts = line.partition("\t")
        for text in amounts.split("\\n"):
            if text.strip() != "0":
                asset, units = parse_amount(text, assets)
                balances[(names[name], asset)] = units
    return balances


def hledger_balances(path: Path) -> dict[tuple[str, str], int]:
    """Return the (account, asset) balances the real `hledger` binary computes from `path`."""
    # CSV, not JSON: hledger 1.25's JSON rounds quantities to 10 decimal places.
    command = [need("hledger"), "-f", str(path), "--strict", "balance", "--flat", "--no-total"]
    result = subprocess.run(
        [*command, "--output-format", "csv"], capture_output=True, text=True, check=True
    )
    balances = {}
    for name, amounts in list(csv.reader(io.StringIO(result.stdout)))[1:]:
        for text in amounts.split(", "):
            if text.strip() != "0":
                asset, units = parse_amount(text)
                balances[(_CODES[name], asset)] = units
    return balances


@pytest.mark.ledgercli
def test_ledger_finds_the_balances_of_a_fold_including_18_decimals_and_2_256(
    tmp_path: Path,
) -> None:
    """`ledger --pedantic balance` equals a fold of the postings, exactly, up to 2**256-1."""
    expected = fold(p for e in SCENARIO for p in e.postings)
    assert expected[("holder:alice", "BTC1.5L")] == 99 * SHARE + 1
    assert expected[("holder:bob@x.io", "BTC1.5L")] == BOB_MAX
    assert expected[("equity:shares-outstanding", "BTC1.5L")] == -UINT256_MAX
    assert ledger_balances(journal(SCENARIO, tmp_path)) == expected


@pytest.mark.ledgercli
def test_hledger_reads_the_same_journal_and_finds_the_same_balances(tmp_path: Path) -> None:
    """`hledger --strict balance` on the same file equals the fold too."""
    expected = fold(p for e in SCENARIO for p in e.postings)
    assert hledger_balances(journal(SCENARIO, tmp_path)) == expected


@pytest.mark.ledgercli
def test_ledger_sees_one_transaction_per_entry_with_payee_seq_and_kind(tmp_path: Path) -> None:
    """Each entry is one ledger transaction, dated by its UTC effective day, payee "#seq kind"."""
    result = subprocess.run(
        [
            need("ledger"),
            "-f",
            str(journal(SCENARIO, tmp_path)),
            "register",
            "--collapse",
            "--empty",
            "--sort",
            "date",
            "--format",
            "%(date)|%(payee)\n",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "2024/01/01|#4 fee"
    assert sorted(lines) == sorted(  # one line per transaction: each collapses to one
        f"2024/01/{e.draft.effective_at.day:02d}|#{e.seq} {e.draft.kind}" for e in SCENARIO
    )


accounts_st = st.sampled_from([a.code for a in ACCOUNTS])
assets_st = st.sampled_from(ASSETS)


@st.composite
def random_books(draw: st.DrawFn) -> list[JournalEntry]:
    """Draw a small book of balanced entries with amounts anywhere in the uint256 range."""
    drafts = []
    for day in draw(st.lists(st.integers(1, 28), min_size=1, max_size=6)):
        legs = draw(
            st.lists(
                st.tuples(accounts_st, accounts_st, assets_st.map(lambda a: a.code)).filter(
                    lambda leg: leg[0] != leg[1]
                ),
                min_size=1,
                max_size=3,
            )
        )
        units = draw(
            st.lists(st.integers(1, UINT256_MAX // 64), min_size=len(legs), max_size=len(legs))
        )
        drafts.append(
            move("mint", day, *((d, c, a, u) for (d, c, a), u in zip(legs, units, strict=True)))
        )
    return chain(drafts)


@pytest.mark.ledgercli
@settings(max_examples=15, deadline=None)
@given(random_books())
def test_ledger_and_hledger_agree_with_the_fold_on_random_books(
    entries: list[JournalEntry],
) -> None:
    """For any small book, both tools' balances equal the fold of its postings."""
    expected = fold(p for e in entries for p in e.postings)
    with tempfile.TemporaryDirectory() as directory:
        path = journal(entries, Path(directory))
        assert ledger_balances(path) == expected
        assert hledger_balances(path) == expected


def test_account_names_are_the_type_root_then_the_code() -> None:
    """Accounts map to `Root:code` with the documented root per type, codes unchanged."""
    assert set(ROOT_NAMES.values()) == {"Assets", "Liabilities", "Equity", "Income", "Expenses"}
    names = ledger_accounts(ACCOUNTS)
    assert names["holder:bob@x.io"] == "Assets:holder:bob@x.io"
    assert names["fees"] == "Income:fees" and names["gas"] == "Expenses:gas"
    assert names["payable"] == "Liabilities:payable"
    assert names["equity:shares-outstanding"] == "Equity:equity:shares-outstanding"


def test_empty_components_cannot_exist() -> None:
    """ledger-cli would merge `a::b` into `a:b`, so the domain refuses empty path parts."""
    for code in ("a::b", "c:", ":a"):
        with pytest.raises(Rejected):
            Account(BOOK, code, AccountType.ASSET)
    names = ledger_accounts([Account(BOOK, c, AccountType.ASSET) for c in ("a:b", "a:_:b")])
    assert names["a:b"] == "Assets:a:b" and names["a:_:b"] == "Assets:a:_:b"


def test_commodities_are_quoted_unless_letters_only() -> None:
    """A symbol with digits, '.', '-' or '_' is double-quoted; letters-only stays bare."""
    assert ledger_commodity("USDT") == "USDT"
    assert ledger_commodity("BTC3L") == '"BTC3L"'
    assert ledger_commodity("BTC1.5L") == '"BTC1.5L"'
    assert ledger_commodity("A_B-C") == '"A_B-C"'


def test_amounts_are_exact_decimals_at_the_asset_scale() -> None:
    """One base unit of an 18-decimal asset and 2**256-1 units are written digit for digit."""
    out = io.StringIO()
    write_ledger(out, book=BOOK, assets=ASSETS, accounts=ACCOUNTS, entries=SCENARIO)
    text = out.getvalue()
    assert '  99.000000000000000001 "BTC1.5L"\n' in text
    assert f'  -{NEAR_MAX // SHARE}.{NEAR_MAX % SHARE:018d} "BTC1.5L"\n' in text
    assert "  -5.000001 USDT\n" in text and "  7 PTS\n" in text
    assert '    ; key: "mint \\"1\\" \\u2713"\n' in text
    assert '    ; meta: {"nav":"10.000000","note":"\\u00e9 \\"q\\"\\nline"}\n' in text
    assert "    ; reverses: 2\n" in text


def test_a_posting_to_an_account_not_given_is_refused() -> None:
    """The export refuses an entry that posts to an account it was not told about."""
    with pytest.raises(Rejected) as caught:
        write_ledger(
            io.StringIO(), book=BOOK, assets=ASSETS, accounts=ACCOUNTS[:1], entries=SCENARIO
        )
    assert caught.value.reason is Reason.UNKNOWN_ACCOUNT
