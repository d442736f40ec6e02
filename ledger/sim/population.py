"""A seeded population of holders that mint and redeem through the day (integers only)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

FIRST_OP_SECOND = 3 * 60  # after the 00:02 scheduled rebalance
LAST_OP_SECOND = 86_400 - 2 * 60
REDEEM_PERCENT = 48  # of requests by holders who hold shares


@dataclass(frozen=True, slots=True)
class Order:
    """One holder request: mint `amount` quote units, or redeem `percent` of their shares."""

    at: datetime
    holder: str
    redeem: bool
    amount: int  # mint: quote base units; redeem: percent of the holder's shares (1..100)


def holder_ids(count: int) -> list[str]:
    """Return `count` holder ids h0000, h0001, ..."""
    width = max(4, len(str(count - 1)))
    return [f"h{i:0{width}d}" for i in range(count)]


def day_orders(
    rng: random.Random,
    *,
    day: date,
    holders: list[str],
    per_day: int,
    quote_one: int,
    has_shares: dict[str, int],
) -> list[Order]:
    """Return about `per_day` (+-20%) orders at sorted random times of `day`.

    Mints are 100..5,000 whole quote units; a redemption is of 1..100% of a holding (30% of
    them the whole holding). Whether an order is a redemption is decided when it is made, so
    the caller passes the live holdings.
    """
    spread = max(1, per_day // 5)
    count = rng.randint(per_day - spread, per_day + spread)
    base = datetime(day.year, day.month, day.day, tzinfo=UTC)
    span = LAST_OP_SECOND - FIRST_OP_SECOND
    bits = rng.getrandbits
    seconds = sorted(FIRST_OP_SECOND + bits(40) % span for _ in range(count))
    size = len(holders)
    orders = []
    for second in seconds:
        # One 64-bit draw per order, cut into its fields (the modulo bias is below 2**-40).
        draw = bits(64)
        draw, pick = divmod(draw, size)
        draw, side = divmod(draw, 100)
        draw, whole = divmod(draw, 10)
        holder = holders[pick]
        redeem = side < REDEEM_PERCENT and has_shares.get(holder, 0) > 0
        if redeem:
            amount = 100 if whole < 3 else 1 + draw % 100
        else:
            amount = (100 + draw % 4_901) * quote_one
        orders.append(Order(base + timedelta(seconds=second), holder, redeem, amount))
    return orders
