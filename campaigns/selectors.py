"""Reads of the campaigns app: eligibility, a participant's progress, rewards and budget."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet, Sum

from campaigns import rules
from campaigns.models import (
    Campaign,
    CoverageDraw,
    DailySpin,
    DailyVolume,
    Invitation,
    Participant,
    Reward,
    SpinAllowance,
)
from ledger.bookkeeping import funding_account_code
from ledger.models import (
    Account,
    ExchangeUser,
    LedgerTransaction,
    PayoutInstruction,
    RiskMeasure,
)
from ledger.selectors import measure_since

DISQUALIFY = "disqualify_campaigns"


def campaign_by_slug(slug: str) -> Campaign:
    return Campaign.objects.get(slug=slug)


def disqualified_since(user_id: str) -> dt.datetime | None:
    return measure_since(user_id, DISQUALIFY)


def disqualified_users(user_ids: list[str]) -> set[str]:
    """Those of the users excluded from campaigns (any time: the measure is final)."""
    return set(
        RiskMeasure.objects.filter(user_id__in=user_ids, measure=DISQUALIFY).values_list(
            "user_id", flat=True
        )
    )


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    reasons: list[str]
    registered: bool


def eligibility(campaign: Campaign, user_id: str, now: dt.datetime) -> Eligibility:
    return eligibilities(campaign, [user_id], now)[user_id]


def eligibilities(
    campaign: Campaign, user_ids: list[str], now: dt.datetime
) -> dict[str, Eligibility]:
    """Each user's eligibility, in four reads whatever their number."""
    types = dict(
        ExchangeUser.objects.filter(user_id__in=user_ids).values_list("user_id", "account_type")
    )
    invited = set(
        Invitation.objects.filter(campaign=campaign, user_id__in=user_ids).values_list(
            "user_id", flat=True
        )
    )
    disqualified = disqualified_users(user_ids)
    registered = set(
        Participant.objects.filter(campaign=campaign, user_id__in=user_ids).values_list(
            "user_id", flat=True
        )
    )
    verdicts = {}
    for user_id in user_ids:
        reasons = rules.ineligibility_reasons(
            account_type=types.get(user_id),
            invitation_only=campaign.invitation_only,
            invited=user_id in invited,
            disqualified=user_id in disqualified,
            registration_opens_at=campaign.registration_opens_at,
            registration_closes_at=campaign.registration_closes_at,
            now=now,
        )
        verdicts[user_id] = Eligibility(not reasons, reasons, user_id in registered)
    return verdicts


def visible_campaigns(user_id: str) -> QuerySet[Campaign]:
    """Campaigns open to everyone, or to which the user is invited or registered."""
    return Campaign.objects.filter(
        Q(invitation_only=False)
        | Exists(Invitation.objects.filter(campaign=OuterRef("pk"), user_id=user_id))
        | Exists(Participant.objects.filter(campaign=OuterRef("pk"), user_id=user_id))
    ).order_by("-starts_at")


def funding_account(campaign: Campaign) -> Account | None:
    return Account.objects.filter(
        code=funding_account_code(campaign.funding_program, campaign.asset)
    ).first()


def issued_keys(keys: list[str]) -> set[str]:
    return set(
        LedgerTransaction.objects.filter(idempotency_key__in=keys).values_list(
            "idempotency_key", flat=True
        )
    )


def reward_status(reward: Reward, *, issued: bool, disqualified_at: dt.datetime | None) -> str:
    if issued:
        return "issued"
    if disqualified_at is not None:
        return "void"
    return "pending"


def rewards_with_status(campaign: Campaign, user_id: str) -> list[dict[str, Any]]:
    rewards = list(
        Reward.objects.filter(campaign=campaign, user_id=user_id).order_by("earned_at", "id")
    )
    keys = [reward.idempotency_key for reward in rewards]
    issued = {
        payout.transaction.idempotency_key: payout
        for payout in PayoutInstruction.objects.filter(
            transaction__idempotency_key__in=keys
        ).select_related("transaction")
    }
    disqualified_at = disqualified_since(user_id)
    return [
        {
            "kind": reward.kind,
            "reference": reward.reference,
            "amount": reward.amount,
            "earned_at": reward.earned_at,
            "status": reward_status(
                reward, issued=reward.idempotency_key in issued, disqualified_at=disqualified_at
            ),
            "issued_at": issued[reward.idempotency_key].created_at
            if reward.idempotency_key in issued
            else None,
            "expires_at": issued[reward.idempotency_key].expires_at
            if reward.idempotency_key in issued
            else None,
        }
        for reward in rewards
    ]


def first_losing_orders(
    campaign: Campaign, participant_ids: list[int]
) -> dict[str, list[rules.LosingOrder]]:
    """Each participant's first losing futures orders in scope (RULES.md section 1,
    "Coverage scope"): stablecoin futures excluded, first close at or after
    registration and before the end, in close order, at most the limit."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT user_id, order_id, loss FROM (
                SELECT o.user_id, o.order_id, -o.realized_pnl AS loss,
                    row_number() OVER (PARTITION BY o.user_id
                                       ORDER BY o.first_close_at, o.first_close_event_id) AS rank
                FROM campaigns_participant p
                JOIN ledger_closedorder o ON o.user_id = p.user_id
                WHERE p.id = ANY(%s) AND o.realized_pnl < 0
                  AND o.market IN ('usdt_m', 'usdc_m', 'coin_m') AND NOT (%s::jsonb ? o.symbol)
                  AND o.first_close_at >= p.registered_at AND o.first_close_at < %s
            ) ranked
            WHERE rank <= %s
            ORDER BY user_id, rank
            """,
            [
                participant_ids,
                json.dumps(list(campaign.excluded_symbols)),
                campaign.ends_at,
                campaign.losing_order_limit,
            ],
        )
        orders: dict[str, list[rules.LosingOrder]] = {}
        for user_id, order_id, loss in cursor.fetchall():
            orders.setdefault(user_id, []).append(rules.LosingOrder(order_id, loss))
        return orders


def draw_for(
    campaign: Campaign, user_id: str, percent: Decimal, orders: list[rules.LosingOrder]
) -> rules.DrawResult:
    """The coverage draw of one card holder, from the campaign's seed and rules."""
    return rules.draw_orders(
        seed=campaign.seed,
        slug=campaign.slug,
        user_id=user_id,
        percent=percent,
        first_losing_orders=orders,
        cap=campaign.cap_per_order,
    )


def participant_losing_orders(
    campaign: Campaign, participant: Participant
) -> list[rules.LosingOrder]:
    return first_losing_orders(campaign, [participant.pk]).get(participant.user_id, [])


@dataclass
class Progress:
    participant: Participant
    valid_volume: Decimal
    volume_target: Decimal
    coverage_spins: int
    daily_spins_available: int
    daily_days_earned: int
    daily_spins_used: int
    card_percent: Decimal | None
    losing_orders: int
    rewards: list[dict[str, Any]] = field(default_factory=list)
    draw: CoverageDraw | None = None


def progress(campaign: Campaign, participant: Participant, now: dt.datetime) -> Progress:
    allowance = SpinAllowance.objects.filter(campaign=campaign, user_id=participant.user_id).first()
    used = DailySpin.objects.filter(campaign=campaign, user_id=participant.user_id).count()
    running = now < campaign.ends_at
    earned = allowance.daily_earned if allowance else 0
    coverage = int(
        running
        and allowance is not None
        and allowance.coverage_granted_at is not None
        and participant.card_percent is None
    )
    live_volume = DailyVolume.objects.filter(
        campaign=campaign, user_id=participant.user_id
    ).aggregate(s=Sum("volume"))["s"] or Decimal(0)
    return Progress(
        participant=participant,
        valid_volume=live_volume,
        volume_target=campaign.volume_target,
        coverage_spins=coverage,
        daily_spins_available=max(earned - used, 0) if running else 0,
        daily_days_earned=earned,
        daily_spins_used=used,
        card_percent=participant.card_percent,
        losing_orders=len(participant_losing_orders(campaign, participant)),
        rewards=rewards_with_status(campaign, participant.user_id),
        draw=CoverageDraw.objects.filter(campaign=campaign, user_id=participant.user_id).first(),
    )


@dataclass(frozen=True)
class Budget:
    funded: Decimal
    available: Decimal
    issued: Decimal
    prizes_committed: Decimal
    rebates_drawn: Decimal


def budget(campaign: Campaign) -> Budget:
    account = funding_account(campaign)
    available = account.balance if account else Decimal(0)
    issued = PayoutInstruction.objects.filter(
        transaction__idempotency_key__startswith=f"campaign:{campaign.slug}:"
    ).aggregate(s=Sum("amount"))["s"] or Decimal(0)
    rebates = Reward.objects.filter(campaign=campaign, kind="coverage_rebate").aggregate(
        s=Sum("amount")
    )["s"] or Decimal(0)
    return Budget(
        funded=available + issued,
        available=available,
        issued=issued,
        prizes_committed=campaign.prizes_committed,
        rebates_drawn=rebates,
    )
