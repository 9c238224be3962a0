"""Scheduled jobs of the referral program (RULES.md section 3)."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

from config import clock
from jobs.registry import Daily, job
from ledger.bookkeeping import UserCredit, open_funding_account, post_user_credits
from ledger.event_store import DomainEvent, append_domain_events
from ledger.models import Account
from ledger.money import format_amount, round_payout
from referrals import rules
from referrals.models import ProgramTerms, Settlement
from referrals.services import ReferralRefusal

logger = logging.getLogger(__name__)

POOL_PROGRAM = "referrals"
INVALIDATE = "invalidate_referral"
# The daily run also settles fills that arrived late for this many earlier days.
LATE_DAYS = 2
PAY_CHUNK = 5_000


def _start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def terms_for(program: str, at: dt.datetime) -> dict[str, Any]:
    """The program's terms in force at ``at`` (ops' effective-dated rows, else the defaults)."""
    row = (
        ProgramTerms.objects.filter(program=program, effective_from__lte=at)
        .order_by("-effective_from")
        .first()
    )
    if row is None:
        return rules.DEFAULT_TERMS[program]
    return {
        "validity_days": row.validity_days,
        "tiers": row.tiers,
        "partner_rate": str(row.partner_rate) if row.partner_rate is not None else None,
    }


def _rate_sql(program: str, terms: dict[str, Any], params: dict[str, Any]) -> str:
    """A CASE expression over ``mx`` and ``partner`` giving the program's rate."""
    tiers = sorted(rules.parse_tiers(terms["tiers"]), key=lambda t: t.min_mx, reverse=True)
    parts = []
    if terms.get("partner_rate") is not None:
        params[f"{program}_partner"] = Decimal(str(terms["partner_rate"]))
        parts.append(f"WHEN partner THEN %({program}_partner)s")
    for n, tier in enumerate(tiers):
        params[f"{program}_min{n}"] = tier.min_mx
        params[f"{program}_rate{n}"] = tier.rate
        parts.append(f"WHEN mx >= %({program}_min{n})s THEN %({program}_rate{n})s")
    return "CASE " + " ".join(parts) + " ELSE 0 END"


@job(
    "settle_referrals",
    key="day",
    schedule=Daily(hour=0, minute=15),
    description="Settle the referral commissions of day D's referee fills (RULES.md 3).",
)
def settle_referrals(*, day: dt.date) -> dict[str, Any]:
    """RULES.md section 3, "Commission" and "Daily settlement": for every fill of
    day D by a referee with a valid relation (not a market maker, not margin,
    fee > 0, within the relation's validity), commission = fee x the referrer's
    rate for the fill's program, in the fee's asset. The rate comes from the
    referrer's MX holding as of the end of D (and the community-partner flag
    then). Fills after an ``invalidate_referral`` measure on either side are
    recorded as invalid rebate.

    Each run covers the log positions appended since the day's previous run,
    so rerunning a day settles only fills that arrived late, never one twice.
    The scheduled run also reruns the ``LATE_DAYS`` days before."""
    if clock.now() < _start(day + dt.timedelta(days=1)):
        raise ReferralRefusal("too_early", f"{day} is settled once it is over")
    result = _settle_day(day)
    for back in range(1, LATE_DAYS + 1):
        earlier = day - dt.timedelta(days=back)
        if Settlement.objects.filter(day=earlier).exists():
            late = _settle_day(earlier)
            result[f"late_{earlier.isoformat()}"] = late["commissions"]
    return result


def _settle_day(day: dt.date) -> dict[str, Any]:
    start, end = _start(day), _start(day + dt.timedelta(days=1))
    with transaction.atomic(), connection.cursor() as cursor:
        # One settlement of a day at a time.
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"settle_referrals:{day}"]
        )
        previous = Settlement.objects.filter(day=day).order_by("-run").first()
        after = previous.upto_position if previous else 0
        run = previous.run + 1 if previous else 1
        cursor.execute("SELECT coalesce(max(position), 0) FROM ledger_event")
        head = int(cursor.fetchone()[0])
        if head <= after:
            return {"day": day.isoformat(), "run": None, "commissions": 0}
        params: dict[str, Any] = {
            "day": day,
            "run": run,
            "start": start,
            "end": end,
            "after": after,
            "head": head,
            "measure": INVALIDATE,
        }
        rates = {p: _rate_sql(p, terms_for(p, end), params) for p in ("futures", "spot")}
        validity = {p: terms_for(p, end)["validity_days"] for p in ("futures", "spot")}
        params["futures_days"] = validity["futures"]
        params["spot_days"] = validity["spot"]
        cursor.execute(
            f"""
            WITH fills AS (
                SELECT e.user_id AS referee_id, e.occurred_at,
                    CASE WHEN e.data->>'market' = 'spot' THEN 'spot' ELSE 'futures' END AS program,
                    e.data->>'fee_asset' AS asset, (e.data->>'fee')::numeric AS fee
                FROM ledger_event e
                WHERE e.type = 'trade.filled' AND e.occurred_at >= %(start)s AND e.occurred_at < %(end)s
                  AND e.position > %(after)s AND e.position <= %(head)s
                  AND e.data->>'market' IN ('spot', 'usdt_m', 'usdc_m', 'coin_m')
                  AND (e.data->>'fee')::numeric > 0
            ),
            invalidated AS (
                SELECT user_id, min(occurred_at) AS first_at FROM ledger_riskmeasure
                WHERE measure = %(measure)s GROUP BY user_id
            ),
            related AS (
                SELECT f.*, r.referrer_id, least(ir.first_at, ie.first_at) AS invalid_at
                FROM fills f
                JOIN referrals_relation r ON r.referee_id = f.referee_id AND r.refusal = ''
                JOIN ledger_exchangeuser u ON u.user_id = f.referee_id AND u.account_type <> 'market_maker'
                LEFT JOIN invalidated ir ON ir.user_id = r.referrer_id
                LEFT JOIN invalidated ie ON ie.user_id = r.referee_id
                WHERE f.occurred_at >= r.registered_at
                  AND ((CASE f.program WHEN 'futures' THEN %(futures_days)s::int
                                       ELSE %(spot_days)s::int END) IS NULL
                       OR f.occurred_at < r.registered_at + make_interval(days =>
                            CASE f.program WHEN 'futures' THEN %(futures_days)s::int
                                           ELSE %(spot_days)s::int END))
            ),
            referrers AS (
                SELECT DISTINCT referrer_id FROM related
            ),
            standing AS (
                SELECT x.referrer_id,
                    coalesce((SELECT h.amount FROM ledger_holdingstate h
                              WHERE h.user_id = x.referrer_id AND h.asset = 'MX' AND h.occurred_at < %(end)s
                              ORDER BY h.occurred_at DESC, h.event_id DESC LIMIT 1), 0) AS mx,
                    EXISTS (SELECT 1 FROM referrals_communitypartner c
                            WHERE c.user_id = x.referrer_id AND c.since < %(end)s
                              AND (c.until IS NULL OR c.until >= %(end)s)) AS partner
                FROM referrers x
            ),
            rated AS (
                SELECT s.referrer_id, {rates["futures"]} AS futures_rate, {rates["spot"]} AS spot_rate
                FROM standing s
            )
            INSERT INTO referrals_commission (day, run, program, referrer_id, referee_id, asset, fills,
                fees, rate, amount, status, invalid_at, payout_key, settled_as)
            SELECT %(day)s, %(run)s, rel.program, rel.referrer_id, rel.referee_id, rel.asset, count(*),
                sum(rel.fee), rate.r, sum(rel.fee) * rate.r,
                CASE WHEN rel.invalid_at IS NOT NULL AND rel.occurred_at >= rel.invalid_at
                     THEN 'invalid' ELSE 'settled' END,
                CASE WHEN rel.invalid_at IS NOT NULL AND rel.occurred_at >= rel.invalid_at
                     THEN rel.invalid_at END,
                '',
                CASE WHEN rel.invalid_at IS NOT NULL AND rel.occurred_at >= rel.invalid_at
                     THEN 'invalid' ELSE 'settled' END
            FROM related rel
            JOIN rated ON rated.referrer_id = rel.referrer_id,
            LATERAL (SELECT CASE rel.program WHEN 'futures' THEN rated.futures_rate
                                             ELSE rated.spot_rate END AS r) rate
            WHERE rate.r > 0
            GROUP BY rel.program, rel.referrer_id, rel.referee_id, rel.asset, rate.r, 11, 12
            """,  # noqa: S608 - the CASE fragments carry only named parameters
            params,
        )
        count = cursor.rowcount
        Settlement.objects.create(
            day=day, run=run, upto_position=head, settled_at=clock.now(), commissions=count
        )
    return {"day": day.isoformat(), "run": run, "commissions": count}


@job(
    "distribute_referral_commissions",
    key="day",
    schedule=Daily(hour=1, minute=0),
    description="Pay settled referral commissions of day D to spot accounts on D+1 (RULES.md 3).",
)
def distribute_referral_commissions(*, day: dt.date) -> dict[str, Any]:
    """RULES.md section 3: settled commissions are distributed on D+1 to the
    referrer's spot account, from the referral pool's funding account in each
    asset: one credit per referrer and asset (key
    ``referral:<referrer>:<asset>:<D>``), covering every settled, unpaid
    commission of day D or before. A commission whose relation was invalidated
    (``invalidate_referral`` on either side) before it was paid becomes an
    invalid rebate and is not paid; paid ones stay paid. Amounts are rounded
    down to 8 decimals once, per credit; what rounds to nothing waits for the
    next day. All or nothing per asset against the pool's funding."""
    now = clock.now()
    if now < _start(day + dt.timedelta(days=1)):
        raise ReferralRefusal(
            "too_early", f"commissions of {day} are paid from {day + dt.timedelta(days=1)}"
        )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE referrals_commission c SET status = 'invalid', invalid_at = m.first_at
            FROM (SELECT user_id, min(occurred_at) AS first_at FROM ledger_riskmeasure
                  WHERE measure = %s AND occurred_at <= %s GROUP BY user_id) m
            WHERE c.status = 'settled' AND c.day <= %s AND m.user_id IN (c.referrer_id, c.referee_id)
            """,
            [INVALIDATE, now, day],
        )
        invalidated = cursor.rowcount
        cursor.execute(
            """
            SELECT c.asset, c.referrer_id, sum(c.amount), array_agg(c.id)
            FROM referrals_commission c
            WHERE c.status = 'settled' AND c.day <= %s
              AND NOT EXISTS (SELECT 1 FROM ledger_ledgertransaction t WHERE t.idempotency_key =
                              'referral:' || c.referrer_id || ':' || c.asset || ':' || %s)
            GROUP BY c.asset, c.referrer_id ORDER BY c.asset, c.referrer_id
            """,
            [day, day.isoformat()],
        )
        rows = cursor.fetchall()
    by_asset: dict[str, list[tuple[str, Decimal, list[int]]]] = {}
    for asset, referrer, amount, ids in rows:
        payable = round_payout(amount)
        if payable > 0:
            by_asset.setdefault(asset, []).append((referrer, payable, ids))
    paid_users = 0
    totals: dict[str, Decimal] = {}
    for asset, credits in by_asset.items():
        paid_users += _pay_asset(asset, credits, day, now)
        totals[asset] = sum((c[1] for c in credits), Decimal(0))
    return {
        "referrers_paid": paid_users,
        "invalidated": invalidated,
        **{f"amount_{asset}": format_amount(total) for asset, total in sorted(totals.items())},
    }


def _pay_asset(
    asset: str, credits: list[tuple[str, Decimal, list[int]]], day: dt.date, now: dt.datetime
) -> int:
    pool = open_funding_account(program=POOL_PROGRAM, asset=asset)
    total = sum((c[1] for c in credits), Decimal(0))
    with transaction.atomic():
        locked = Account.objects.select_for_update().get(pk=pool.pk)
        if total > locked.balance:
            message = (
                f"referral pool {asset}: {total} needed for {day} but it holds {locked.balance};"
                " nothing was paid in this asset"
            )
            logger.error("referral payout refused: %s", message)
            raise ReferralRefusal("budget_exhausted", message)
        for start in range(0, len(credits), PAY_CHUNK):
            post_user_credits(
                [
                    UserCredit(
                        idempotency_key=f"referral:{referrer}:{asset}:{day.isoformat()}",
                        kind="referral.commission",
                        funding_account=locked,
                        user_id=referrer,
                        amount=amount,
                        user_kind="spot",
                        cause={"day": day.isoformat(), "asset": asset, "commissions": len(ids)},
                    )
                    for referrer, amount, ids in credits[start : start + PAY_CHUNK]
                ]
            )
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE referrals_commission SET status = 'paid', paid_at = %s,"
                " payout_key = 'referral:' || referrer_id || ':' || asset || ':' || %s"
                " WHERE id = ANY(%s)",
                [now, day.isoformat(), [i for credit in credits for i in credit[2]]],
            )
        append_domain_events(
            [
                DomainEvent(
                    event_id=f"referral.commissions_paid:{asset}:{day.isoformat()}",
                    type="referral.commissions_paid",
                    occurred_at=now,
                    data={
                        "day": day.isoformat(),
                        "asset": asset,
                        "referrers": len(credits),
                        "amount": format_amount(total),
                    },
                )
            ]
        )
    return len(credits)
