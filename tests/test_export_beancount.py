"""beancount export: bean-check accepts it and beancount finds exactly our balances."""

from __future__ import annotations

import decimal
import io
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

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
from ledger.domain.money import UINT256_MAX, Asset
from ledger.errors import Rejected
from ledger.export.beancount import (
    beancount_accounts,
    beancount_commodities,
    beancount_string,
    write_beancount,
)
from tests.conftest import require

BOOK = "BTC3L"
ASSETS = (Asset("BTC3L", 18), Asset("USDT", 6), Asset("V", 0), Asset("PT_-.", 2))
HOLDERS = ("holder:alice", "holder:Alice", "holder:0xAbCdEf0123456789aBcDeF01", "holder:bob@x.io")
ACCOUNTS = (
    *(Account(BOOK, code, AccountType.ASSET, BalanceRule.NON_NEGATIVE) for code in HOLDERS),
    Account(BOOK, "holder:_tmp.1", AccountType.ASSET),
    Account(BOOK, "equity:shares-outstanding", AccountType.EQUITY),
    Account(BOOK, "cash", AccountType.ASSET),
    Account(BOOK, "cash:hot_wallet", AccountType.ASSET),
    Account(BOOK, "fees", AccountType.INCOME),
    Account(BOOK, "payable", AccountType.LIABILITY),
    Account(BOOK, "gas", AccountType.EXPENSE),
)
SHARE = 10**18
BILLION_SHARES = 10**9 * SHARE  # 28 significant digits: the most beancount keeps exactly
BEAN_CHECK_EXACT = (
    "import decimal, sys; decimal.getcontext().prec = 100; "
    "from beancount.scripts.check import main; main()"
)  # the command docs/export-formats.md gives auditors for books beyond 28 digits


def move(kind: str, day: int, *legs: tuple[str, str, str, int], **extra: object) -> EntryDraft:
    """Return a draft of (debit account, credit account, asset, units) legs."""
    postings = []
    for debit, credit, asset, units in legs:
        postings += [Posting(debit, asset, units), Posting(credit, asset, -units)]
    when = datetime(2024, 1, day, 23, 59, tzinfo=UTC)
    return EntryDraft(BOOK, kind, when, tuple(postings), **extra)  # type: ignore[arg-type]


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


SHARES = "equity:shares-outstanding"
REALISTIC = chain(
    [
        move("deposit", 3, ("cash", "payable", "USDT", 999_999_999_999_999_999)),
        move(
            "mint",
            4,
            ("holder:alice", SHARES, "BTC3L", BILLION_SHARES // 2 + 1),
            ("cash:hot_wallet", "fees", "USDT", 5_000_001),
            metadata=make_metadata({"nav": "10.000000", "note": 'é "q"\\\nline'}),
            idempotency_key='mint "1" \\',
        ),
        move("mint", 5, ("holder:Alice", SHARES, "BTC3L", BILLION_SHARES // 2 - 1)),
        move("fee", 2, ("gas", "cash", "USDT", 1), ("holder:bob@x.io", "fees", "V", 7)),
        move("transfer", 6, (HOLDERS[2], "holder:_tmp.1", "PT_-.", 1)),
        move("redeem", 7, (SHARES, "holder:Alice", "BTC3L", 1)),
        move("reversal", 8, ("fees", "cash:hot_wallet", "USDT", 5_000_001), reverses=2),
    ]
)
HUGE = chain(
    [
        move("mint", 2, ("holder:alice", SHARES, "BTC3L", UINT256_MAX - 1)),
        move("mint", 3, ("holder:bob@x.io", SHARES, "BTC3L", 1)),
    ]
)


def need_beancount() -> ModuleType:
    """Return the beancount package; skip without it, but fail under CI=true."""
    try:
        import beancount
    except ImportError:
        require(False, "the beancount package (pip beancount>=3)")
        raise
    return beancount


def export(entries: list[JournalEntry]) -> str:
    """Return `entries` as beancount text."""
    out = io.StringIO()
    write_beancount(out, book=BOOK, assets=ASSETS, accounts=ACCOUNTS, entries=entries)
    return out.getvalue()


def to_units(number: decimal.Decimal, scale: int) -> int:
    """Return a Decimal as integer base units, exactly (refusing a fraction of a unit)."""
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    magnitude = int("".join(map(str, digits)) or "0")
    shift = exponent + scale
    assert shift >= 0 or magnitude % 10**-shift == 0, f"{number} is not whole base units"
    units = magnitude * 10**shift if shift >= 0 else magnitude // 10**-shift
    return -units if sign else units


def beancount_balances(text: str) -> dict[tuple[str, str], int]:
    """Return the (account, asset) balances beancount's loader and realization compute."""
    need_beancount()
    from beancount import loader
    from beancount.core import realization

    entries, errors, _ = loader.load_string(text)
    assert errors == []
    codes = {name: code for code, name in beancount_accounts(ACCOUNTS).items()}
    assets = {
        name: a
        for a in ASSETS
        for code, name in beancount_commodities(ASSETS).items()
        if code == a.code
    }
    balances = {}
    for real in realization.iter_children(realization.realize(entries)):
        for position in real.balance:
            asset = assets[position.units.currency]
            units = to_units(position.units.number, asset.scale)
            if units:
                balances[(codes[real.account], asset.code)] = units
    return balances


def bean_check(path: Path, *, exact: bool = False) -> subprocess.CompletedProcess[str]:
    """Run bean-check (or its documented 100-digit form) on `path`, without its cache."""
    need_beancount()
    command = (
        [sys.executable, "-c", BEAN_CHECK_EXACT]
        if exact
        else [sys.executable, "-m", "beancount.scripts.check"]
    )
    return subprocess.run(
        [*command, "--no-cache", str(path)], capture_output=True, text=True, check=False
    )


def test_bean_check_accepts_the_realistic_book(tmp_path: Path) -> None:
    """bean-check exits 0 with no output on a book within 28 significant digits."""
    path = tmp_path / "book.beancount"
    path.write_text(export(REALISTIC), encoding="utf-8")
    result = bean_check(path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_beancount_finds_the_balances_of_a_fold(tmp_path: Path) -> None:
    """beancount's own balances equal a fold of the postings, to the base unit."""
    expected = fold(p for e in REALISTIC for p in e.postings)
    assert expected[("holder:alice", "BTC3L")] == BILLION_SHARES // 2 + 1
    assert beancount_balances(export(REALISTIC)) == expected


def test_amounts_beyond_28_digits_are_exact_with_a_100_digit_context(tmp_path: Path) -> None:
    """With Decimal precision 100 (the documented way) 2**256-1 units check and balance exactly."""
    path = tmp_path / "huge.beancount"
    path.write_text(export(HUGE), encoding="utf-8")
    result = bean_check(path, exact=True)
    assert (result.returncode, result.stderr) == (0, "")
    with decimal.localcontext(decimal.Context(prec=100)):
        balances = beancount_balances(export(HUGE))
    assert balances == fold(p for e in HUGE for p in e.postings)
    assert balances[("equity:shares-outstanding", "BTC3L")] == -UINT256_MAX


def test_plain_bean_check_rounds_beyond_28_digits_as_documented(tmp_path: Path) -> None:
    """The documented limit is real: plain bean-check (28 digits) reports a false imbalance."""
    path = tmp_path / "huge.beancount"
    path.write_text(export(HUGE), encoding="utf-8")
    result = bean_check(path)
    assert result.returncode == 1
    assert "Transaction does not balance" in result.stderr + result.stdout


def test_accounts_map_to_capitalised_components_under_the_type_root() -> None:
    """The documented mapping: '_' '.' '@' become '-', first letter upper, 'X' before others."""
    names = beancount_accounts(ACCOUNTS)
    assert names["holder:bob@x.io"] == "Assets:Holder:Bob-x-io"
    assert names["holder:0xAbCdEf0123456789aBcDeF01"] == "Assets:Holder:0xAbCdEf0123456789aBcDeF01"
    assert names["holder:_tmp.1"] == "Assets:Holder:X-tmp-1"
    assert names["equity:shares-outstanding"] == "Equity:Equity:Shares-outstanding"
    assert names["cash:hot_wallet"] == "Assets:Cash:Hot-wallet"
    assert names["fees"] == "Income:Fees" and names["gas"] == "Expenses:Gas"
    assert names["payable"] == "Liabilities:Payable"


def test_codes_that_would_collide_both_get_a_digest_suffix() -> None:
    """`holder:alice` and `holder:Alice` stay distinct: each gets '-' + 8 hex of sha256(code)."""
    names = beancount_accounts(ACCOUNTS)
    assert names["holder:alice"] == "Assets:Holder:Alice-5d0f3384"
    assert names["holder:Alice"] == "Assets:Holder:Alice-1a14933f"


def test_commodities_keep_their_code_unless_beancount_refuses_it() -> None:
    """A code ending in '.', '_' or '-' gets an 'X' appended; a clash suffixes both codes."""
    assert beancount_commodities(ASSETS) == {
        "BTC3L": "BTC3L",
        "USDT": "USDT",
        "V": "V",
        "PT_-.": "PT_-.X",
    }
    clash = beancount_commodities([Asset("AB-", 0), Asset("AB-X", 0)])
    assert sorted(clash.values()) == ["AB-X-637048A1", "AB-X-F038F85E"]


def test_strings_use_c_escapes() -> None:
    """Quotes, backslashes and line breaks are escaped; other text is kept as is."""
    assert beancount_string('a"b\\c\nd\te é') == '"a\\"b\\\\c\\nd\\te é"'


account_codes = st.from_regex(
    r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,9}(:[A-Za-z0-9_.@-]{1,9}){0,2}", fullmatch=True
)
asset_codes = st.from_regex(r"[A-Z][A-Z0-9._-]{0,8}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(account_codes, unique=True, max_size=8), st.lists(asset_codes, unique=True, max_size=6)
)
def test_any_codes_map_one_to_one_to_names_beancount_accepts(
    accounts: list[str], assets: list[str]
) -> None:
    """Every valid code gets a distinct name that beancount's own validators accept."""
    need_beancount()
    from beancount.core.account import is_valid
    from beancount.core.amount import CURRENCY_RE

    try:
        names = beancount_accounts([Account(BOOK, c, AccountType.ASSET) for c in accounts])
        currencies = beancount_commodities([Asset(c, 0) for c in assets])
    except Rejected:  # Only an astronomically unlikely digest clash may refuse.
        pytest.fail("the mapping refused ordinary codes")
    assert len(set(names.values())) == len(accounts) and all(map(is_valid, names.values()))
    assert len(set(currencies.values())) == len(assets)
    import regex

    assert all(regex.fullmatch(CURRENCY_RE, c) and c[-1].isalnum() for c in currencies.values())
