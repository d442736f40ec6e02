"""Balances as a fold over postings, and the check of balance rules after a fold."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ledger.domain.journal import BalanceRule, Posting
from ledger.domain.money import UINT256_MAX
from ledger.errors import Reason, Rejected

BalanceKey = tuple[str, str]  # (account, asset)


def apply_postings(
    balances: Mapping[BalanceKey, int], postings: Iterable[Posting]
) -> dict[BalanceKey, int]:
    """Return the balances that `postings` change, after applying them to `balances`."""
    changed: dict[BalanceKey, int] = {}
    for posting in postings:
        key = (posting.account, posting.asset)
        before = changed[key] if key in changed else balances.get(key, 0)
        changed[key] = before + posting.amount
    return changed


def check_rules(changed: Mapping[BalanceKey, int], rules: Mapping[str, BalanceRule]) -> None:
    """Refuse if any changed balance breaks its account's rule or leaves the uint256 range."""
    for (account, asset), balance in changed.items():
        rule = rules.get(account, BalanceRule.NONE)
        if not rule.allows(balance):
            raise Rejected(
                Reason.BALANCE_CONSTRAINT,
                f"{account} would hold {balance} {asset}, which breaks its rule {rule.value}",
                account=account,
                asset=asset,
                balance=balance,
            )
        if not -UINT256_MAX <= balance <= UINT256_MAX:
            raise Rejected(
                Reason.AMOUNT_OUT_OF_RANGE,
                f"{account} balance of {asset} would exceed the uint256 range",
            )


def fold(postings: Iterable[Posting]) -> dict[BalanceKey, int]:
    """Return every (account, asset) balance that `postings` produce from nothing."""
    totals: dict[BalanceKey, int] = {}
    for posting in postings:
        key = (posting.account, posting.asset)
        totals[key] = totals.get(key, 0) + posting.amount
    return {key: value for key, value in totals.items() if value != 0}
