"""Fund-like journal entries posted straight through the kernel, for the mirror's tests and bench.

They follow the fund/chain conventions (one book per product, share asset = book, holders in
`holder:<id>` accounts against `equity:shares-outstanding`) without the fund engine's services,
so a test can also write what older data may hold (e.g. two spellings of one address). The
accounts carry the fund engine's own types and balance rules, so both can share a book, and
splits are built by the fund domain's `split_shares` (one rounding rule, not a copy).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from ledger.chain.holders import holder_of
from ledger.domain.fund.accounts import HOLDER_PREFIX, SHARES_OUTSTANDING, TREASURY
from ledger.domain.fund.product import make_params
from ledger.domain.fund.split import split_shares
from ledger.domain.fund.state import FundState
from ledger.domain.fund.terms import terms_of
from ledger.domain.journal import Account, AccountType, BalanceRule, EntryDraft, Posting
from ledger.domain.money import Asset
from ledger.services.ledger import Ledger

EQUITY = SHARES_OUTSTANDING


def open_share_book(lg: Ledger, book: str, *, scale: int = 18) -> None:
    """Create the share asset `book` and its equity and treasury accounts (idempotent)."""
    lg.add_asset(Asset(book, scale))
    # The fund engine's rules (ledger/domain/fund/accounts.py): the supply is never negative.
    lg.open_account(Account(book, EQUITY, AccountType.EQUITY, BalanceRule.NON_POSITIVE))
    lg.open_account(Account(book, TREASURY, AccountType.EQUITY, BalanceRule.NON_NEGATIVE))


def open_holders(lg: Ledger, book: str, holder_ids: list[str]) -> None:
    """Open `holder:<id>` accounts (NON_NEGATIVE) for every id, spelled as given."""
    lg.open_accounts(
        [
            Account(book, f"{HOLDER_PREFIX}{h}", AccountType.EQUITY, BalanceRule.NON_NEGATIVE)
            for h in holder_ids
        ]
    )


def mint_draft(
    book: str, units: Mapping[str, int], *, at: datetime, key: str | None = None
) -> EntryDraft:
    """Return a mint entry: Dr holder:<id> +units for each holder, Cr the equity account."""
    postings = [Posting(f"{HOLDER_PREFIX}{h}", book, n) for h, n in sorted(units.items()) if n]
    postings.append(Posting(EQUITY, book, -sum(units.values())))
    return EntryDraft(book, "mint", at, tuple(postings), idempotency_key=key)


def redeem_draft(book: str, units: Mapping[str, int], *, at: datetime) -> EntryDraft:
    """Return a redeem entry: Cr holder:<id> -units for each holder, Dr the equity account."""
    postings = [Posting(f"{HOLDER_PREFIX}{h}", book, -n) for h, n in sorted(units.items()) if n]
    postings.append(Posting(EQUITY, book, sum(units.values())))
    return EntryDraft(book, "redeem", at, tuple(postings))


def split_draft(lg: Ledger, book: str, *, num: int, den: int, at: datetime) -> EntryDraft:
    """Return the split (num > den) or merge entry of the book's current holder accounts.

    Built by the fund domain's `split_shares`: each account's new units = old * num / den
    rounded down, the supply after = supply * num / den rounded down, the dust to the treasury.
    `book` must parse as a product name (e.g. BTC3L).
    """
    holders = {
        account.removeprefix(HOLDER_PREFIX): units
        for (account, _), units in lg.balances(book, asset=book).items()
        if account.startswith(HOLDER_PREFIX)
    }
    terms = terms_of(make_params(book, share_decimals=lg.asset(book).scale))
    # split_shares reads only the supply and refuses a wiped-out fund (no collateral and no
    # position); these books carry shares only, so one unit of collateral says "not wiped out".
    state = FundState(supply=sum(holders.values()), collateral=1)
    kind = "split" if num > den else "merge"
    draft, _, _ = split_shares(terms, state, holders, num=num, den=den, at=at, kind=kind)
    return draft


def holder_balances(lg: Ledger, book: str) -> dict[str, int]:
    """Return {holder key: share units} of the book's non-zero holders (spellings added up)."""
    result: dict[str, int] = {}
    for (account, _), units in lg.balances(book, asset=book).items():
        if (h := holder_of(account)) is not None:
            result[h] = result.get(h, 0) + units
    return result


def cli_env(db_url: str, rpc_url: str, **extra: str) -> dict[str, str]:
    """Return the environment for a `token-ledger` process: no inherited TOKEN_LEDGER_*."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKEN_LEDGER_")}
    env.update(TOKEN_LEDGER_DB=db_url, TOKEN_LEDGER_RPC_URL=rpc_url, **extra)
    return env
