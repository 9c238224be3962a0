"""The campaign's rules as pure functions (RULES.md section 1): no ORM, plain values.

The verifiable draw
-------------------
Every random choice of a campaign is derived from its secret ``seed`` (32
random bytes, hex), published as ``sha256(seed)`` when the campaign is created
and revealed after the coverage draw. With ``ticket(seed, text) =
HMAC-SHA256(key=bytes.fromhex(seed), msg=text.encode()).hexdigest()``:

- **Coverage card** of user U: ``int(ticket(seed, f"{slug}:card:{U}"), 16) mod W``
  where W is the sum of the card table's weights; walk the table in its order,
  the first entry whose cumulative weight exceeds the value is the card.
- **Daily prize** of U's spin number N (1, 2, ...): the same over the prize
  table with ``f"{slug}:daily:{U}:{N}"``.
- **Covered orders** of U: take U's losing futures orders (stablecoin futures
  excluded) whose first close is at or after U's registration and before the
  end, in order of first close time (ties by event id), the first ``limit``
  (100) of them: n orders. ``k = round_half_up(percent * n / 100)``. Sort the n
  orders by ``ticket(seed, f"{slug}:order:{U}:{order_id}")``; the k smallest are
  covered. This is a uniformly random choice of k of the n, without replacement.
- Each covered order is rebated its loss, capped at ``cap_per_order``, rounded
  down to 8 decimals.

Anyone holding the revealed seed can recompute every card, prize and covered
order; ``manage.py verify_draw SLUG`` does it for a whole campaign.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from ledger.money import round_payout

FUTURES_MARKETS = ("usdt_m", "usdc_m", "coin_m")


def new_seed() -> str:
    return secrets.token_hex(32)


def seed_hash(seed: str) -> str:
    return hashlib.sha256(bytes.fromhex(seed)).hexdigest()


def ticket(seed: str, text: str) -> str:
    return hmac.new(bytes.fromhex(seed), text.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Weighted:
    value: Decimal
    weight: int


def weighted_pick(table: Sequence[Weighted], draw: str) -> Decimal:
    """The table entry a ticket (hex) selects, in proportion to the weights."""
    total = sum(entry.weight for entry in table)
    if total <= 0:
        raise ValueError("a weighted table needs a positive total weight")
    point = int(draw, 16) % total
    for entry in table:
        if point < entry.weight:
            return entry.value
        point -= entry.weight
    raise AssertionError("unreachable: point < total")


def card_for(seed: str, slug: str, user_id: str, table: Sequence[Weighted]) -> Decimal:
    return weighted_pick(table, ticket(seed, f"{slug}:card:{user_id}"))


def daily_prize_for(
    seed: str, slug: str, user_id: str, number: int, table: Sequence[Weighted]
) -> Decimal:
    return weighted_pick(table, ticket(seed, f"{slug}:daily:{user_id}:{number}"))


def covered_count(percent: Decimal, losing_orders: int) -> int:
    """k = X% of n, rounded half up: 8% of 50 = 4, 5% of 30 = 1.5 -> 2."""
    return int((percent * losing_orders / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def rebate(loss: Decimal, cap: Decimal) -> Decimal:
    """100% of the loss, capped per order, rounded down once."""
    return round_payout(min(loss, cap))


@dataclass(frozen=True)
class LosingOrder:
    order_id: str
    loss: Decimal


@dataclass(frozen=True)
class DrawResult:
    losing_orders: int
    covered: int
    candidates_digest: str
    chosen: list[tuple[LosingOrder, Decimal]]  # (order, rebate) in ticket order


def candidates_digest(orders: Sequence[LosingOrder]) -> str:
    """Fingerprint of the n orders a draw chose from (their ids, in order)."""
    return hashlib.sha256("\n".join(order.order_id for order in orders).encode()).hexdigest()


def draw_orders(
    *,
    seed: str,
    slug: str,
    user_id: str,
    percent: Decimal,
    first_losing_orders: Sequence[LosingOrder],
    cap: Decimal,
) -> DrawResult:
    """Choose the covered orders among a user's first losing orders (already cut to the limit)."""
    n = len(first_losing_orders)
    k = covered_count(percent, n)
    ranked = sorted(
        first_losing_orders,
        key=lambda order: ticket(seed, f"{slug}:order:{user_id}:{order.order_id}"),
    )
    chosen = [(order, rebate(order.loss, cap)) for order in ranked[:k]]
    return DrawResult(n, k, candidates_digest(first_losing_orders), chosen)


# --- eligibility ------------------------------------------------------------------

UNKNOWN_USER = "unknown_user"
ACCOUNT_TYPE = "account_type"
NOT_INVITED = "not_invited"
DISQUALIFIED = "disqualified"
REGISTRATION_NOT_OPEN = "registration_not_open"
REGISTRATION_CLOSED = "registration_closed"

REASON_MESSAGES = {
    UNKNOWN_USER: "the exchange has not told us about this user",
    ACCOUNT_TYPE: "only main accounts take part (not sub, institutional or market-maker accounts)",
    NOT_INVITED: "this campaign is by invitation and the user is not on the list",
    DISQUALIFIED: "the user is under a risk measure that excludes them from campaigns",
    REGISTRATION_NOT_OPEN: "registration has not opened yet",
    REGISTRATION_CLOSED: "registration has closed",
}


def ineligibility_reasons(
    *,
    account_type: str | None,
    invitation_only: bool,
    invited: bool,
    disqualified: bool,
    registration_opens_at: dt.datetime,
    registration_closes_at: dt.datetime,
    now: dt.datetime,
) -> list[str]:
    """Every reason the user may not register now (empty: eligible)."""
    reasons = []
    if account_type is None:
        reasons.append(UNKNOWN_USER)
    elif account_type != "main":
        reasons.append(ACCOUNT_TYPE)
    if invitation_only and not invited:
        reasons.append(NOT_INVITED)
    if disqualified:
        reasons.append(DISQUALIFIED)
    if now < registration_opens_at:
        reasons.append(REGISTRATION_NOT_OPEN)
    elif now >= registration_closes_at:
        reasons.append(REGISTRATION_CLOSED)
    return reasons


def parse_table(rows: Sequence[dict[str, object]], value_key: str) -> list[Weighted]:
    """A card or prize table from its stored form ({"percent"|"amount": "8", "weight": 10})."""
    return [Weighted(Decimal(str(row[value_key])), int(str(row["weight"]))) for row in rows]
