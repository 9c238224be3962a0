"""Loss-coverage vouchers as pure functions (RULES.md section 2): which orders
may use a voucher, which voucher an order uses, and for how much.

The consumption job and the explanation endpoint both call these, so what a
user is told is what decided.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

FUTURES_MARKETS = ("usdt_m", "usdc_m", "coin_m")
MIN_LOSS = Decimal(1)  # "a loss amount greater than 1 USDT"

# Why an order cannot use any voucher.
NOT_A_LOSS = "not_a_loss"
LOSS_TOO_SMALL = "loss_too_small"
NOT_FUTURES = "not_futures"
COPY_TRADE = "copy_trade"
GRID_TRADE = "grid_trade"
BOT_TRADE = "bot_trade"
PROMO_FUNDED = "promo_funded"
ACCOUNT_TYPE = "account_type"
UNKNOWN_USER = "unknown_user"
VOUCHERS_VOIDED = "vouchers_voided"
# Why one voucher cannot serve an eligible order.
BEFORE_ARRIVAL = "before_arrival"
EXPIRED = "expired"
BELOW_THRESHOLD = "below_threshold"
USED_UP = "used_up"
VOIDED = "voided"
NO_USABLE_VOUCHER = "no_usable_voucher"
# Why an order's matching can no longer change.
DAY_PAID = "day_paid"

MESSAGES = {
    NOT_A_LOSS: "the order did not close at a loss",
    LOSS_TOO_SMALL: "the loss must be greater than 1 USDT",
    NOT_FUTURES: "only futures orders can use loss-coverage vouchers",
    COPY_TRADE: "copy-trading orders cannot use vouchers",
    GRID_TRADE: "grid-trading orders cannot use vouchers",
    BOT_TRADE: "trading-bot orders cannot use vouchers",
    PROMO_FUNDED: "orders funded by a bonus, fee voucher or futures voucher cannot use vouchers",
    ACCOUNT_TYPE: "only main accounts can use vouchers (not sub or institutional accounts)",
    UNKNOWN_USER: "the exchange has not told us about this account",
    VOUCHERS_VOIDED: "the account's vouchers were voided by a risk measure",
    BEFORE_ARRIVAL: "the order closed at or before the voucher arrived",
    EXPIRED: "the order closed after the voucher expired",
    BELOW_THRESHOLD: "the order's closing amount is below the voucher's minimum",
    USED_UP: "the voucher had nothing left",
    VOIDED: "the voucher was voided",
    NO_USABLE_VOUCHER: "no voucher could serve this order",
    DAY_PAID: "the order's day was paid without a match for it and the order has not"
    " changed since: that day's matching is final",
}

_ORIGIN_REASONS = {"copy": COPY_TRADE, "grid": GRID_TRADE, "bot": BOT_TRADE}


@dataclass(frozen=True)
class LosingOrder:
    order_id: str
    closed_at: dt.datetime
    realized_pnl: Decimal
    closing_notional: Decimal
    market: str
    origin: str
    promo_funding: tuple[str, ...] = ()

    @property
    def loss(self) -> Decimal:
        # copy_negate: unary minus would round to the context's precision.
        return self.realized_pnl.copy_negate() if self.realized_pnl < 0 else Decimal(0)


@dataclass(frozen=True)
class VoucherState:
    voucher_id: int
    arrived_at: dt.datetime
    expires_at: dt.datetime
    remaining: Decimal
    min_closing_amount: Decimal | None = None
    voided: bool = False


def order_reasons(
    order: LosingOrder, *, account_type: str | None, vouchers_voided: bool
) -> list[str]:
    """Every reason the order may not use any voucher (empty: it may)."""
    reasons = []
    if account_type is None:
        reasons.append(UNKNOWN_USER)
    elif account_type != "main":
        reasons.append(ACCOUNT_TYPE)
    if vouchers_voided:
        reasons.append(VOUCHERS_VOIDED)
    if order.market not in FUTURES_MARKETS:
        reasons.append(NOT_FUTURES)
    if order.realized_pnl >= 0:
        reasons.append(NOT_A_LOSS)
    elif order.loss <= MIN_LOSS:
        reasons.append(LOSS_TOO_SMALL)
    if order.origin in _ORIGIN_REASONS:
        reasons.append(_ORIGIN_REASONS[order.origin])
    if order.promo_funding:
        reasons.append(PROMO_FUNDED)
    return reasons


def voucher_reason(order: LosingOrder, voucher: VoucherState) -> str | None:
    """Why this voucher cannot serve this (eligible) order, or None if it can."""
    if voucher.voided:
        return VOIDED
    if order.closed_at <= voucher.arrived_at:
        return BEFORE_ARRIVAL
    if order.closed_at >= voucher.expires_at:
        return EXPIRED
    if (
        voucher.min_closing_amount is not None
        and order.closing_notional < voucher.min_closing_amount
    ):
        return BELOW_THRESHOLD
    if voucher.remaining <= 0:
        return USED_UP
    return None


def by_arrival(vouchers: Iterable[VoucherState]) -> list[VoucherState]:
    """Earliest arrival first; ties by lowest id."""
    return sorted(vouchers, key=lambda v: (v.arrived_at, v.voucher_id))


@dataclass(frozen=True)
class Match:
    order: LosingOrder
    voucher_id: int
    amount: Decimal


def match_orders(
    orders: Sequence[LosingOrder], vouchers: Sequence[VoucherState]
) -> tuple[list[Match], dict[int, Decimal]]:
    """Match one user's eligible orders, in close-time order, each to the
    earliest-arrived usable voucher; compensation = min(loss, remaining).

    Returns the matches and each touched voucher's new remaining amount."""
    states = {v.voucher_id: v for v in vouchers}
    ordered = by_arrival(vouchers)
    matches: list[Match] = []
    for order in sorted(orders, key=lambda o: (o.closed_at, o.order_id)):
        for candidate in ordered:
            current = states[candidate.voucher_id]
            if voucher_reason(order, current) is None:
                amount = min(order.loss, current.remaining)
                states[current.voucher_id] = replace(current, remaining=current.remaining - amount)
                matches.append(Match(order, current.voucher_id, amount))
                break
    touched = {m.voucher_id for m in matches}
    return matches, {voucher_id: states[voucher_id].remaining for voucher_id in touched}


def expires_at(
    arrived_at: dt.datetime, *, validity_days: int | None, valid_until: dt.datetime | None
) -> dt.datetime:
    """The earlier of "N days from arrival" and the fixed end, whichever are set."""
    ends = []
    if validity_days is not None:
        ends.append(arrived_at + dt.timedelta(days=validity_days))
    if valid_until is not None:
        ends.append(valid_until)
    if not ends:
        raise ValueError("a voucher needs validity_days or valid_until")
    return min(ends)
