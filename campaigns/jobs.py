"""Scheduled jobs of the campaigns (RULES.md section 1). Each takes the instant
it decides for (``run_job NAME --at T``) and is idempotent: rerunning it, or
running it after a crash, records and pays nothing twice."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

from campaigns import selectors
from campaigns.models import Campaign, RewardKind
from campaigns.services import BudgetExhausted, record_budget_alert
from jobs.exceptions import job_exceptions
from jobs.registry import job
from ledger.bookkeeping import open_funding_account
from ledger.digests import digest_counts
from ledger.event_store import DomainEvent, append_domain_events
from ledger.money import for_people, format_amount
from ledger.payables import Payer, Payment, PaymentResult, pay_items, register_payer

DRAW_CHUNK = 2_000
ISSUE_CHUNK = 5_000


@job(
    "refresh_spins",
    key="instant",
    schedule=dt.timedelta(minutes=5),
    description="Grant coverage and daily spins from new valid volume (RULES.md 1).",
)
def refresh_spins(*, at: dt.datetime) -> dict[str, int]:
    """RULES.md section 1, "Coverage spin" and "Daily sure-win pool": a participant
    whose valid volume reaches the target has one coverage spin; each campaign day
    with at least the daily minimum of valid volume earns one daily spin.

    Incremental: only participants whose daily volume changed since the last
    refresh (``DailyVolume.last_position`` past the campaign's checkpoint) are
    recomputed, in one statement per campaign."""
    refreshed = 0
    campaigns = Campaign.objects.filter(
        registration_opens_at__lte=at, spins_voided_at__isnull=True
    ).order_by("pk")
    for campaign in campaigns:
        with transaction.atomic():
            locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT coalesce(max(last_position), %s) FROM campaigns_dailyvolume"
                    " WHERE campaign_id = %s AND last_position > %s",
                    [locked.spins_position, locked.pk, locked.spins_position],
                )
                head = int(cursor.fetchone()[0])
                if head == locked.spins_position:
                    continue
                cursor.execute(
                    """
                    WITH changed AS (
                        SELECT DISTINCT user_id FROM campaigns_dailyvolume
                        WHERE campaign_id = %(campaign)s
                          AND last_position > %(since)s AND last_position <= %(head)s
                    ),
                    totals AS (
                        SELECT v.user_id, sum(v.volume) AS total,
                            count(*) FILTER (WHERE v.volume >= %(daily_min)s
                                AND v.day >= %(first_day)s AND v.day <= %(last_day)s) AS days
                        FROM campaigns_dailyvolume v JOIN changed USING (user_id)
                        WHERE v.campaign_id = %(campaign)s
                        GROUP BY v.user_id
                    )
                    INSERT INTO campaigns_spinallowance AS a
                        (campaign_id, user_id, valid_volume, coverage_granted_at, daily_earned,
                         refreshed_at)
                    SELECT %(campaign)s, user_id, total,
                        CASE WHEN total >= %(target)s THEN %(at)s::timestamptz END, days, %(at)s
                    FROM totals
                    ON CONFLICT (campaign_id, user_id) DO UPDATE SET
                        valid_volume = EXCLUDED.valid_volume,
                        coverage_granted_at = coalesce(a.coverage_granted_at,
                                                       EXCLUDED.coverage_granted_at),
                        daily_earned = greatest(a.daily_earned, EXCLUDED.daily_earned),
                        refreshed_at = EXCLUDED.refreshed_at
                    """,
                    {
                        "campaign": locked.pk,
                        "since": locked.spins_position,
                        "head": head,
                        "daily_min": locked.daily_min_volume,
                        "first_day": locked.starts_at.date(),
                        "last_day": (locked.ends_at - dt.timedelta(microseconds=1)).date(),
                        "target": locked.volume_target,
                        "at": at,
                    },
                )
                refreshed += cursor.rowcount
            Campaign.objects.filter(pk=locked.pk).update(spins_position=head)
    return {"participants_refreshed": refreshed}


@job(
    "void_unused_spins",
    key="instant",
    schedule=dt.timedelta(minutes=10),
    description="Record the spins left unused when a campaign ends as void (RULES.md 1).",
)
def void_unused_spins(*, at: dt.datetime) -> dict[str, int]:
    """RULES.md section 1: "A spin not used by campaign end is void"; "unused daily
    spins are void at campaign end". Runs once a campaign's end plus its lateness
    window has passed (late volume may still have granted spins); each void is a
    ``campaign.spins_voided`` event. Spinning itself is refused from the end on."""
    voided = 0
    for campaign in _due(at, spins_voided_at__isnull=True):
        refresh_spins(at=at)  # the last grants, from volume that arrived late
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT a.user_id,
                    (a.coverage_granted_at IS NOT NULL AND p.card_percent IS NULL)::int,
                    a.daily_earned - coalesce(s.used, 0)
                FROM campaigns_spinallowance a
                JOIN campaigns_participant p
                    ON p.campaign_id = a.campaign_id AND p.user_id = a.user_id
                LEFT JOIN (SELECT user_id, count(*) AS used FROM campaigns_dailyspin
                           WHERE campaign_id = %(campaign)s GROUP BY user_id) s
                    ON s.user_id = a.user_id
                WHERE a.campaign_id = %(campaign)s
                  AND ((a.coverage_granted_at IS NOT NULL AND p.card_percent IS NULL)
                       OR a.daily_earned > coalesce(s.used, 0))
                ORDER BY a.user_id
                """,
                {"campaign": campaign.pk},
            )
            rows = cursor.fetchall()
        events = [
            DomainEvent(
                event_id=f"campaign.spins_voided:{campaign.slug}:{user_id}",
                type="campaign.spins_voided",
                occurred_at=at,
                user_id=user_id,
                data={"campaign": campaign.slug, "coverage_spins": coverage, "daily_spins": daily},
            )
            for user_id, coverage, daily in rows
        ]
        with transaction.atomic():
            for start in range(0, len(events), ISSUE_CHUNK):
                append_domain_events(events[start : start + ISSUE_CHUNK])
            Campaign.objects.filter(pk=campaign.pk).update(spins_voided_at=at)
        voided += len(events)
    return {"participants_with_void_spins": voided}


@job(
    "draw_coverage",
    key="instant",
    schedule=dt.timedelta(minutes=10),
    description="Draw each card holder's covered losing orders once the campaign is over (RULES.md 1).",
)
def draw_coverage(*, at: dt.datetime) -> dict[str, int]:
    """RULES.md section 1, "Coverage scope" and "Coverage draw": once the end plus
    the lateness window has passed, for every participant with a card, take
    their first (limit) losing futures orders since registration, cover
    round_half_up(card% x n) of them chosen from the campaign's seed (the
    algorithm is in ``campaigns.rules``), each rebated its loss up to the cap.
    One ``campaign.coverage_drawn`` event per participant; then the seed is
    revealed (``drawn_at``)."""
    drawn = covered = 0
    for campaign in _due(at, drawn_at__isnull=True):
        last_id = 0
        while True:
            with connection.cursor() as cursor:
                cursor.execute(
                    """
                    SELECT id, user_id, card_percent, registered_at FROM campaigns_participant
                    WHERE campaign_id = %s AND card_percent IS NOT NULL AND id > %s
                    ORDER BY id LIMIT %s
                    """,
                    [campaign.pk, last_id, DRAW_CHUNK],
                )
                participants = cursor.fetchall()
                if not participants:
                    break
                last_id = participants[-1][0]
                orders = selectors.first_losing_orders(campaign, [p[0] for p in participants])
            events = []
            for _, user_id, percent, _registered in participants:
                result = selectors.draw_for(campaign, user_id, percent, orders.get(user_id, []))
                covered += result.covered
                events.append(
                    DomainEvent(
                        event_id=f"campaign.coverage_drawn:{campaign.slug}:{user_id}",
                        type="campaign.coverage_drawn",
                        occurred_at=at,
                        user_id=user_id,
                        data={
                            "campaign": campaign.slug,
                            "percent": str(percent.normalize()),
                            "losing_orders": result.losing_orders,
                            "covered": result.covered,
                            "candidates_digest": result.candidates_digest,
                            "chosen": [
                                {
                                    "order_id": o.order_id,
                                    "loss": format_amount(o.loss),
                                    "rebate": format_amount(r),
                                }
                                for o, r in result.chosen
                            ],
                        },
                    )
                )
            append_domain_events(events)
            drawn += len(events)
        Campaign.objects.filter(pk=campaign.pk).update(drawn_at=at)
    return {"participants_drawn": drawn, "orders_covered": covered}


@job(
    "issue_campaign_bonuses",
    key="instant",
    schedule=dt.timedelta(hours=1),
    description="Pay drawn rebates and daily prizes as 14-day Futures bonuses (RULES.md 1).",
)
def issue_campaign_bonuses(*, at: dt.datetime) -> dict[str, Any]:
    """RULES.md section 1, "Rewards" and "Budget": after the draw, every reward not
    yet issued and not void (the user was disqualified) is credited to the
    user's Futures bonus account from the campaign's funding account, valid
    ``bonus_validity_days`` (14) from issuance. Each reward is a payable item
    paid at most once (``ledger.payables``), whatever runs beside this one. All
    or nothing per campaign: if the funding cannot cover every pending reward,
    nothing of that campaign is paid and it is flagged for ops; the other
    campaigns are issued, and the job then fails naming the refusals."""
    issued = 0
    total = Decimal(0)
    refusals = []
    results = []
    with job_exceptions("issue_campaign_bonuses") as exceptions:
        for campaign in Campaign.objects.filter(
            drawn_at__isnull=False, drawn_at__lte=at, bonuses_issued_at__isnull=True
        ).order_by("pk"):
            result = _issue(campaign, at)
            results.append(result)
            if result.refused:
                record_budget_alert(campaign.pk, result.refused)
                refusals.append(result.refused)
            issued += len(result.credits)
            total += result.amount
        if refusals:
            raise BudgetExhausted(0, "; ".join(refusals))
        return {
            "rewards_issued": issued,
            "amount": format_amount(total),
            **digest_counts(results),
            **exceptions.counts(),
        }


REWARDS = {
    kind: register_payer(
        Payer(
            name=f"campaign.{kind}",
            table="campaigns_reward",
            credit_kind=f"campaign.{kind}",
            description=f"a campaign reward of kind {kind} (RULES.md 1)",
        )
    )
    for kind in RewardKind.values
}

# Each reward is paid by a credit of its own, under the reward's own key.
_PENDING = """
    SELECT 'campaign.' || r.kind, r.id, r.user_id, r.amount, r.idempotency_key
    FROM campaigns_reward r
    WHERE r.campaign_id = %(campaign)s
      AND NOT EXISTS (SELECT 1 FROM ledger_riskmeasure m
                      WHERE m.user_id = r.user_id AND m.measure = 'disqualify_campaigns')
"""


def _issue(campaign: Campaign, at: dt.datetime) -> PaymentResult:
    expires_at = at + dt.timedelta(days=campaign.bonus_validity_days)
    funding = open_funding_account(program=campaign.funding_program, asset=campaign.asset)
    with transaction.atomic():
        result = pay_items(
            Payment(
                payers=tuple(REWARDS.values()),
                funding=funding,
                items_sql=_PENDING,
                params={"campaign": campaign.pk},
                refusal=lambda needed, available: (
                    f"campaign {campaign.slug}: pending rewards need"
                    f" {for_people(needed, campaign.asset)} but the funding account holds"
                    f" {for_people(available, campaign.asset)}; nothing was issued"
                ),
                cause={"campaign": campaign.slug},
                user_kind="futures_bonus",
                expires_at=expires_at,
                # RULES.md 1, "Budget": all or nothing, never a partial issuance
                # (and no reward can be an outlier: rebates are capped, prizes
                # come from a table).
                hold_back_outliers=False,
            )
        )
        if result.refused:
            return result
        # Rewards of disqualified users are void: recorded, per user, never paid.
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT r.user_id, count(*), sum(r.amount) FROM campaigns_reward r
                WHERE r.campaign_id = %(campaign)s AND EXISTS (
                    SELECT 1 FROM ledger_riskmeasure m
                    WHERE m.user_id = r.user_id AND m.measure = 'disqualify_campaigns')
                  AND NOT EXISTS (SELECT 1 FROM ledger_paiditem p
                                  WHERE p.payer = 'campaign.' || r.kind AND p.item_id = r.id)
                GROUP BY r.user_id ORDER BY r.user_id
                """,
                {"campaign": campaign.pk},
            )
            voided = cursor.fetchall()
        void_count = sum(row[1] for row in voided)
        void_amount = sum((row[2] for row in voided), Decimal(0))
        void_events = [
            DomainEvent(
                event_id=f"campaign.rewards_voided:{campaign.slug}:{user_id}",
                type="campaign.rewards_voided",
                occurred_at=at,
                user_id=user_id,
                data={
                    "campaign": campaign.slug,
                    "rewards": rewards,
                    "amount": format_amount(total),
                    "reason": "disqualify_campaigns",
                },
            )
            for user_id, rewards, total in voided
        ]
        for start in range(0, len(void_events), ISSUE_CHUNK):
            append_domain_events(void_events[start : start + ISSUE_CHUNK])
        append_domain_events(
            [
                DomainEvent(
                    event_id=f"campaign.bonuses_issued:{campaign.slug}",
                    type="campaign.bonuses_issued",
                    occurred_at=at,
                    data={
                        "campaign": campaign.slug,
                        "rewards": len(result.credits),
                        "amount": format_amount(result.amount),
                        "expires_at": expires_at.isoformat(),
                        "void_rewards": void_count,
                        "void_amount": format_amount(void_amount),
                        "late": at
                        > campaign.ends_at + dt.timedelta(days=campaign.issuance_deadline_days),
                    },
                )
            ]
        )
        # Rewards held back (a user's own exception) keep the issuance open:
        # the next run offers them again.
        if not result.exceptions:
            Campaign.objects.filter(pk=campaign.pk).update(bonuses_issued_at=at)
    return result


def _due(at: dt.datetime, **unfinished: Any) -> list[Campaign]:
    """Campaigns whose end plus lateness window has passed and whose step is not done."""
    return [
        campaign
        for campaign in Campaign.objects.filter(ends_at__lte=at, **unfinished).order_by("pk")
        if campaign.ends_at + campaign.lateness <= at
    ]
