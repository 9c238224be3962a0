"""Reads of the ledger app: state as of an instant, balances, credits, payouts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db.models import QuerySet, Sum

from ledger.models import (
    Account,
    ClosedOrder,
    FuturesPositionsState,
    FuturesWalletState,
    HoldingState,
    PayoutInstruction,
    Posting,
    RiskMeasure,
)


def wallet_as_of(user_id: str, asset: str, at: dt.datetime) -> FuturesWalletState | None:
    """The futures wallet as last reported at or before ``at`` (latest
    ``occurred_at`` wins, whatever the arrival order)."""
    return (
        FuturesWalletState.objects.filter(user_id=user_id, asset=asset, occurred_at__lte=at)
        .order_by("-occurred_at", "-event_id")
        .first()
    )


def positions_as_of(user_id: str, at: dt.datetime) -> FuturesPositionsState | None:
    return (
        FuturesPositionsState.objects.filter(user_id=user_id, occurred_at__lte=at)
        .order_by("-occurred_at", "-event_id")
        .first()
    )


def holding_as_of(user_id: str, asset: str, at: dt.datetime) -> Decimal:
    """The user's holding of ``asset`` at ``at``; 0 if never reported."""
    state = (
        HoldingState.objects.filter(user_id=user_id, asset=asset, occurred_at__lte=at)
        .order_by("-occurred_at", "-event_id")
        .first()
    )
    return state.amount if state is not None else Decimal(0)


def closed_orders(user_id: str) -> QuerySet[ClosedOrder]:
    """A user's closed orders in close-time order (ties: first closing event id)."""
    return ClosedOrder.objects.filter(user_id=user_id).order_by(
        "first_close_at", "first_close_event_id"
    )


def balance_as_of(account: Account, at: dt.datetime) -> Decimal:
    """The sum of the account's postings at or before ``at``."""
    total = Posting.objects.filter(account=account, posted_at__lte=at).aggregate(s=Sum("amount"))
    return total["s"] or Decimal(0)


def user_credits(user_id: str) -> QuerySet[PayoutInstruction]:
    """Every credit to a user, newest first, with its cause."""
    return (
        PayoutInstruction.objects.filter(user_id=user_id)
        .select_related("transaction")
        .order_by("-created_at", "-id")
    )


def pending_payouts(*, after_id: int = 0, limit: int = 500) -> QuerySet[PayoutInstruction]:
    """Instructions the wallet service has not acknowledged yet, oldest first."""
    return PayoutInstruction.objects.filter(acked_at__isnull=True, id__gt=after_id).order_by("id")[
        :limit
    ]


def measure_since(user_id: str, measure: str) -> dt.datetime | None:
    """When the user first came under a risk measure (``disqualify_campaigns``,
    ``void_vouchers``, ``invalidate_referral``), or None."""
    first = (
        RiskMeasure.objects.filter(user_id=user_id, measure=measure)
        .order_by("occurred_at")
        .values_list("occurred_at", flat=True)
        .first()
    )
    return first
