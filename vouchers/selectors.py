"""Reads of the vouchers app: the coupon center, a voucher's history, why an
order did or did not use a voucher, and program budgets."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Q, QuerySet, Sum

from ledger.bookkeeping import funding_account_code
from ledger.models import Account, ClosedOrder, ExchangeUser
from ledger.selectors import measure_since
from vouchers import matching, rules
from vouchers.models import Consumption, Voucher, VoucherProgram
from vouchers.services import VOID_MEASURE


def voucher_status(voucher: Voucher, now: dt.datetime) -> str:
    if voucher.voided_at is not None:
        return "voided"
    if voucher.remaining <= 0:
        return "used"
    if voucher.expires_at <= now:
        return "expired"
    return "active"


def active_vouchers(user_id: str, now: dt.datetime) -> QuerySet[Voucher]:
    return Voucher.objects.filter(
        user_id=user_id, voided_at__isnull=True, remaining__gt=0, expires_at__gt=now
    ).order_by("arrived_at", "id")


def voucher_history(user_id: str, now: dt.datetime) -> QuerySet[Voucher]:
    return (
        Voucher.objects.filter(user_id=user_id)
        .filter(Q(voided_at__isnull=False) | Q(remaining__lte=0) | Q(expires_at__lte=now))
        .order_by("-arrived_at", "-id")
    )


def payout_status(consumption: Consumption) -> str:
    if consumption.released_at is not None:
        return "released"
    if consumption.cancelled_at is not None:
        return "cancelled"
    if consumption.paid_at is not None:
        return "paid"
    return "pending"


# Why a match (or the lack of one) can or cannot change any more.
NOTES = {
    "paid": "the compensation was paid: this match is final, later fills of the order"
    " change nothing",
    "cancelled": "the match was cancelled by a risk measure",
    "pending": "paid the day after the order's day; until then the match follows every"
    " closing fill of the order (and of the account's earlier orders)",
    "day_paid": "the order's day was paid and the order has not changed since: its"
    " matching is final",
}


@dataclass(frozen=True)
class Explanation:
    order_id: str
    consumed: bool
    reasons: list[str]
    consumption: Consumption | None
    vouchers: list[dict[str, Any]]
    # True when nothing can change this order's match any more (or its lack of one).
    final: bool = False
    note: str = ""
    # Earlier matches of the order, replaced as its fills changed (oldest first).
    released: list[Consumption] = field(default_factory=list)


def explain_order(user_id: str, order_id: str) -> Explanation | None:
    """Why an order did or did not use a voucher, with the rules that decide,
    and whether that can still change."""
    closed = ClosedOrder.objects.filter(user_id=user_id, order_id=order_id).first()
    if closed is None:
        return None
    matches = list(
        Consumption.objects.filter(user_id=user_id, order_id=order_id)
        .select_related("voucher")
        .order_by("matched_at", "id")
    )
    released = [c for c in matches if c.released_at is not None]
    consumption = next((c for c in matches if c.released_at is None), None)
    if consumption is not None:
        status = payout_status(consumption)
        return Explanation(
            order_id,
            True,
            [],
            consumption,
            [],
            final=status != "pending",
            note=NOTES[status],
            released=released,
        )
    final = matching.day_closed_for(closed.first_close_at, closed.last_position)
    order = rules.LosingOrder(
        order_id,
        closed.first_close_at,
        closed.realized_pnl,
        closed.closing_notional,
        closed.market,
        closed.origin,
        tuple(closed.promo_funding or ()),
    )
    account_type = (
        ExchangeUser.objects.filter(user_id=user_id).values_list("account_type", flat=True).first()
    )
    reasons = rules.order_reasons(
        order,
        account_type=account_type,
        vouchers_voided=measure_since(user_id, VOID_MEASURE) is not None,
    )
    per_voucher = []
    if not reasons:
        # The order is eligible: say, voucher by voucher (as they stand now),
        # why none serves it.
        for voucher in Voucher.objects.filter(user_id=user_id).order_by("arrived_at", "id"):
            state = rules.VoucherState(
                voucher.pk,
                voucher.arrived_at,
                voucher.expires_at,
                voucher.remaining,
                voucher.min_closing_amount,
                voided=voucher.voided_at is not None,
            )
            reason = rules.voucher_reason(order, state)
            per_voucher.append({"voucher_id": voucher.pk, "reason": reason or "usable now"})
        usable = any(v["reason"] == "usable now" for v in per_voucher)
        reasons = [rules.DAY_PAID if final and usable else rules.NO_USABLE_VOUCHER]
    return Explanation(
        order_id,
        False,
        reasons,
        None,
        per_voucher,
        final=final,
        note=NOTES["day_paid"] if final else "",
        released=released,
    )


@dataclass(frozen=True)
class ProgramBudget:
    available: Decimal
    paid: Decimal
    owed: Decimal


def program_budget(program: VoucherProgram) -> ProgramBudget:
    account = Account.objects.filter(
        code=funding_account_code(program.funding_program, program.asset)
    ).first()
    consumptions = Consumption.objects.filter(voucher__program=program, cancelled_at__isnull=True)
    paid = consumptions.filter(paid_at__isnull=False).aggregate(s=Sum("amount"))["s"] or Decimal(0)
    owed = consumptions.filter(paid_at__isnull=True).aggregate(s=Sum("amount"))["s"] or Decimal(0)
    return ProgramBudget(account.balance if account else Decimal(0), paid, owed)
