"""The ledger service: the one way to append to and read from the journal.

    from ledger.services.ledger import open_ledger
    lg = open_ledger("sqlite:///books.db")   # or postgresql://...
    lg.init()                                # create or upgrade the schema (idempotent)
    lg.add_asset(Asset("USDT", 6))
    lg.open_account(Account("BTC3L", "fund:collateral", AccountType.ASSET))
    entry = lg.post(draft)                   # one DB transaction, chained, checked
"""

from __future__ import annotations

# Implementation lands in the next commits; the public surface is fixed here so that the
# fund engine and the chain mirror can be written against it.
