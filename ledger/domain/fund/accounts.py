"""The chart of accounts of one fund book (docs/funds.md explains every account).

Two sub-balance-sheets share the book. The fund's: `fund:collateral` (its margin at the
exchange; its balance is the equity E behind the NAV) against the holders' capital, the
realised trading result, the fund's expenses and the rounding dust it kept. The manager's:
`manager:fees` (fee cash owed to the manager, outside the NAV) against `income:fees:*`.
Share units live in `holder:<id>` against `equity:shares-outstanding`; the perpetual position
lives in `fund:position` against `equity:position-contra`.
"""

from __future__ import annotations

from collections.abc import Mapping

from ledger.domain.fund.product import check_holder_id
from ledger.domain.fund.terms import Terms
from ledger.domain.journal import Account, AccountType, BalanceRule

COLLATERAL = "fund:collateral"
POSITION = "fund:position"
POSITION_CONTRA = "equity:position-contra"
CONTRIBUTED = "equity:contributed"
ROUNDING = "equity:rounding"
SHARES_OUTSTANDING = "equity:shares-outstanding"
SHARE_INDEX = "equity:share-index"
"""Shares outstanding less the holders' internal units, in the share asset (shareindex.py);
opened by a fund's first index split."""
TRADING_PNL = "income:trading-pnl"
TRADING_FEES = "expense:trading-fees"
FUNDING = "expense:funding"
MANAGEMENT_EXPENSE = "expense:management-fees"
SHORTFALL = "liability:shortfall"
"""Where books written before the insurance cover booked a wipe-out's excess (still verified)."""
INSURANCE_COVER = "income:insurance-cover"
"""The loss beyond the collateral at a wipe-out: borne by the venue's insurance fund."""
MANAGER_FEES = "manager:fees"
FEE_SUBSCRIPTION = "income:fees:subscription"
FEE_REDEMPTION = "income:fees:redemption"
FEE_MANAGEMENT = "income:fees:management"
HOLDER_PREFIX = "holder:"
TREASURY = "holder:treasury"

_FIXED: tuple[tuple[str, AccountType, BalanceRule], ...] = (
    (COLLATERAL, AccountType.ASSET, BalanceRule.NON_NEGATIVE),
    (POSITION, AccountType.ASSET, BalanceRule.NONE),
    (POSITION_CONTRA, AccountType.EQUITY, BalanceRule.NONE),
    (CONTRIBUTED, AccountType.EQUITY, BalanceRule.NONE),
    (ROUNDING, AccountType.EQUITY, BalanceRule.NON_POSITIVE),
    (SHARES_OUTSTANDING, AccountType.EQUITY, BalanceRule.NON_POSITIVE),
    (TRADING_PNL, AccountType.INCOME, BalanceRule.NONE),
    (TRADING_FEES, AccountType.EXPENSE, BalanceRule.NON_NEGATIVE),
    (FUNDING, AccountType.EXPENSE, BalanceRule.NONE),
    (MANAGEMENT_EXPENSE, AccountType.EXPENSE, BalanceRule.NON_NEGATIVE),
    (SHORTFALL, AccountType.LIABILITY, BalanceRule.NON_POSITIVE),
    (INSURANCE_COVER, AccountType.INCOME, BalanceRule.NON_POSITIVE),
    (MANAGER_FEES, AccountType.ASSET, BalanceRule.NON_NEGATIVE),
    (FEE_SUBSCRIPTION, AccountType.INCOME, BalanceRule.NON_POSITIVE),
    (FEE_REDEMPTION, AccountType.INCOME, BalanceRule.NON_POSITIVE),
    (FEE_MANAGEMENT, AccountType.INCOME, BalanceRule.NON_POSITIVE),
)


def holder_account_code(holder: str) -> str:
    """Return the account code that holds a customer's share units (id checked, canonical)."""
    return HOLDER_PREFIX + check_holder_id(holder)


def holder_account(book: str, holder: str) -> Account:
    """Return the share account of `holder` in `book` (equity units, never negative)."""
    return Account(book, holder_account_code(holder), AccountType.EQUITY, BalanceRule.NON_NEGATIVE)


def insurance_cover_account(book: str) -> Account:
    """Return the account of the venue's insurance cover (opened on demand in older books)."""
    return Account(book, INSURANCE_COVER, AccountType.INCOME, BalanceRule.NON_POSITIVE)


def share_index_account(book: str) -> Account:
    """Return the account of the share index (either sign: a merge makes it negative)."""
    return Account(book, SHARE_INDEX, AccountType.EQUITY, BalanceRule.NONE)


def chart_of_accounts(terms: Terms) -> tuple[Account, ...]:
    """Return every fixed account of the fund's book, the treasury holder included."""
    fixed = tuple(Account(terms.book, code, kind, rule) for code, kind, rule in _FIXED)
    treasury = Account(terms.book, TREASURY, AccountType.EQUITY, BalanceRule.NON_NEGATIVE)
    return (*fixed, treasury)


def holder_units(balances: Mapping[tuple[str, str], int], share: str) -> dict[str, int]:
    """Return {holder id: share units} from a book's balances {(account, asset): units}."""
    cut = len(HOLDER_PREFIX)
    return {
        account[cut:]: units
        for (account, asset), units in balances.items()
        if asset == share and account.startswith(HOLDER_PREFIX) and units
    }
