"""Scheduled jobs of the referral program (RULES.md section 3)."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

from config import clock
from jobs.exceptions import job_exceptions
from jobs.registry import Daily, job
from ledger.bookkeeping import open_funding_account
from ledger.digests import digest_counts
from ledger.event_store import DomainEvent, append_domain_events
from ledger.money import for_people, format_amount
from ledger.payables import Payer, Payment, PaymentResult, pay_items, register_payer
from referrals import rules
from referrals.models import Distribution, ProgramTerms, Settlement
from referrals.services import ReferralRefusal

logger = logging.getLogger(__name__)

POOL_PROGRAM = "referrals"
INVALIDATE = "invalidate_referral"
# The daily run also settles fills that arrived late for this many earlier days.
LATE_DAYS = 2
# Settlement and distribution never overlap: a commission settled while a
# distribution runs would otherwise be marked paid without being summed.
REFERRALS_LOCK = 0x5E7E_0003
# A settlement that writes this many rows refreshes the table's statistics.
ANALYZE_FROM = 10_000


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
    The scheduled run also reruns the ``LATE_DAYS`` days before, which settles
    late fills, and in full a day whose own run failed or never happened."""
    if clock.now() < clock.start_of_day(day + dt.timedelta(days=1)):
        raise ReferralRefusal("too_early", f"{day} is settled once it is over")
    result = _settle_day(day)
    for back in range(1, LATE_DAYS + 1):
        # Settled or not: a day whose run failed or never happened is settled
        # here in full, one that was is read again from where it stopped.
        earlier = day - dt.timedelta(days=back)
        late = _settle_day(earlier)
        result[f"late_{earlier.isoformat()}"] = late["commissions"]
    return result


def settlement_statement(
    day: dt.date, run: int, after: int, head: int
) -> tuple[list[str], dict[str, Any]]:
    """The one INSERT ... SELECT that settles the fills of ``day`` with log
    positions in ``(after, head]`` (see :func:`settle_referrals`)."""
    start, end = clock.start_of_day(day), clock.start_of_day(day + dt.timedelta(days=1))
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
    # Two statements: one row per relation with its windows and rates, then
    # one pass over the day's fills joined to it. (The JSON filters on fills
    # defeat the planner's estimates; a small, analysed table keeps the join a
    # hash join.)
    windows = f"""
    CREATE TEMP TABLE referral_windows ON COMMIT DROP AS
    WITH invalidated AS (
        SELECT user_id, min(occurred_at) AS first_at FROM ledger_riskmeasure
        WHERE measure = %(measure)s GROUP BY user_id
    ),
    standing AS MATERIALIZED (
        SELECT x.referrer_id,
            coalesce((SELECT h.amount FROM ledger_holdingstate h
                      WHERE h.user_id = x.referrer_id AND h.asset = 'MX' AND h.occurred_at < %(end)s
                      ORDER BY h.occurred_at DESC, h.event_id DESC LIMIT 1), 0) AS mx,
            EXISTS (SELECT 1 FROM referrals_communitypartner c
                    WHERE c.user_id = x.referrer_id AND c.since < %(end)s
                      AND (c.until IS NULL OR c.until >= %(end)s)) AS partner
        FROM (SELECT DISTINCT referrer_id FROM referrals_relation WHERE refusal = '') x
    ),
    rated AS MATERIALIZED (
        -- One rate per referrer and program, computed once (not per relation).
        SELECT referrer_id, {rates["futures"]} AS futures_rate, {rates["spot"]} AS spot_rate
        FROM standing
    )
    SELECT r.referee_id, r.referrer_id, r.registered_at AS starts,
        r.registered_at + make_interval(days => %(futures_days)s::int) AS futures_until,
        r.registered_at + make_interval(days => %(spot_days)s::int) AS spot_until,
        least(ir.first_at, ie.first_at) AS invalid_at,
        s.futures_rate, s.spot_rate
    FROM referrals_relation r
    JOIN ledger_exchangeuser u ON u.user_id = r.referee_id AND u.account_type <> 'market_maker'
    JOIN rated s ON s.referrer_id = r.referrer_id
    LEFT JOIN invalidated ir ON ir.user_id = r.referrer_id
    LEFT JOIN invalidated ie ON ie.user_id = r.referee_id
    WHERE r.refusal = ''
    """  # noqa: S608 - the CASE fragments carry only named parameters
    settle = """
    INSERT INTO referrals_commission (day, run, program, referrer_id, referee_id, asset, fills,
        fees, rate, amount, status, invalid_at, settled_as)
    SELECT %(day)s, %(run)s, f.program, max(w.referrer_id), f.referee_id, f.asset, count(*), sum(f.fee),
        f.rate, sum(f.fee) * f.rate, f.status, max(f.invalid_at), f.status
    FROM (
        SELECT e.user_id AS referee_id,
            CASE WHEN e.data->>'market' = 'spot' THEN 'spot' ELSE 'futures' END AS program,
            e.data->>'fee_asset' AS asset, (e.data->>'fee')::numeric AS fee, e.occurred_at
        FROM ledger_event e
        WHERE e.type = 'trade.filled' AND e.occurred_at >= %(start)s AND e.occurred_at < %(end)s
          AND e.position > %(after)s AND e.position <= %(head)s
          AND e.data->>'market' IN ('spot', 'usdt_m', 'usdc_m', 'coin_m')
          AND (e.data->>'fee')::numeric > 0
    ) raw
    JOIN referral_windows w ON w.referee_id = raw.referee_id,
    LATERAL (
        SELECT raw.referee_id, raw.program, raw.asset, raw.fee,
            CASE raw.program WHEN 'futures' THEN w.futures_rate ELSE w.spot_rate END AS rate,
            CASE WHEN raw.occurred_at >= w.invalid_at THEN 'invalid' ELSE 'settled' END AS status,
            CASE WHEN raw.occurred_at >= w.invalid_at THEN w.invalid_at END AS invalid_at
    ) f
    WHERE raw.occurred_at >= w.starts
      AND raw.occurred_at < coalesce(CASE raw.program WHEN 'futures' THEN w.futures_until
                                                      ELSE w.spot_until END, 'infinity')
      AND f.rate > 0
    GROUP BY f.referee_id, f.program, f.asset, f.rate, f.status  -- one referrer per referee
    """
    return [
        "DROP TABLE IF EXISTS referral_windows",
        windows,
        "ANALYZE referral_windows",
        settle,
    ], params


def _settle_day(day: dt.date) -> dict[str, Any]:
    with transaction.atomic(), connection.cursor() as cursor:
        # One settlement of a day at a time.
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [REFERRALS_LOCK])
        previous = Settlement.objects.filter(day=day).order_by("-run").first()
        after = previous.upto_position if previous else 0
        run = previous.run + 1 if previous else 1
        cursor.execute("SELECT coalesce(max(position), 0) FROM ledger_event")
        head = int(cursor.fetchone()[0])
        if head <= after:
            return {"day": day.isoformat(), "run": None, "commissions": 0}
        count = 0
        if _fills_between(cursor, day, after, head):
            # (Building the relation windows costs seconds: not for a day with no new fill.)
            statements, params = settlement_statement(day, run, after, head)
            for statement in statements:
                cursor.execute(statement, params if "%(" in statement else None)
            count = cursor.rowcount
        if previous is not None and count == 0:
            # A rerun that found no late fill records nothing (the range is
            # simply read again next time).
            return {"day": day.isoformat(), "run": None, "commissions": 0}
        Settlement.objects.create(
            day=day, run=run, upto_position=head, settled_at=clock.now(), commissions=count
        )
        if count >= ANALYZE_FROM:
            # The distribution reads these rows next, maybe before autovacuum
            # has looked: with the old statistics it would sort 2 million rows
            # to group them instead of hashing.
            cursor.execute("ANALYZE referrals_commission")
    return {"day": day.isoformat(), "run": run, "commissions": count}


def _fills_between(cursor: Any, day: dt.date, after: int, head: int) -> bool:
    """Whether any fill of ``day`` was appended at a log position in (after, head]."""
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM ledger_event WHERE type = 'trade.filled'"
        " AND occurred_at >= %s AND occurred_at < %s AND position > %s AND position <= %s)",
        [
            clock.start_of_day(day),
            clock.start_of_day(day + dt.timedelta(days=1)),
            after,
            head,
        ],
    )
    return bool(cursor.fetchone()[0])


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
    ``referral:<referrer>:<asset>:<D>``), covering every settled commission of
    day D or before not paid yet (late fills settled after their day's
    distribution, an asset refused before, go with the next one). Each
    commission is a payable item paid at most once (``ledger.payables``). A
    commission whose relation was invalidated (``invalidate_referral`` on
    either side) before it was paid becomes an invalid rebate and is not paid;
    paid ones stay paid.

    Each referrer's sum is rounded down to 8 decimals once; the remainder is
    carried to that referrer's next payout in the asset (a payable item of its
    own). A day is distributed once: a rerun, or a run for a day before the
    last distributed one, pays nothing. All or nothing per asset against the
    pool's funding: a refused asset pays nothing and the others are paid."""
    now = clock.now()
    if now < clock.start_of_day(day + dt.timedelta(days=1)):
        raise ReferralRefusal(
            "too_early", f"commissions of {day} are paid from {day + dt.timedelta(days=1)}"
        )
    with job_exceptions("distribute_referral_commissions") as exceptions:
        return {**_distribute(day, now), **exceptions.counts()}


def _distribute(day: dt.date, now: dt.datetime) -> dict[str, Any]:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [REFERRALS_LOCK])
        last = Distribution.objects.order_by("-day").first()
        if last is not None and last.day >= day:
            return {"referrers_paid": 0, "invalidated": 0, "distributed_through": str(last.day)}
        cursor.execute("SELECT coalesce(max(id), 0) FROM referrals_commission")
        params: dict[str, Any] = {
            "day": day,
            "upto": int(cursor.fetchone()[0]),
            # Every settled commission below it was paid or invalidated.
            "unpaid_from": last.unpaid_from if last else 0,
            "now": now,
            "measure": INVALIDATE,
        }
        cursor.execute(
            f"""
            WITH m AS (SELECT user_id, min(occurred_at) AS first_at FROM ledger_riskmeasure
                       WHERE measure = %(measure)s AND occurred_at <= %(now)s GROUP BY user_id)
            UPDATE referrals_commission c SET status = 'invalid',
                invalid_at = (SELECT min(first_at) FROM m
                              WHERE m.user_id IN (c.referrer_id, c.referee_id))
            WHERE {_OWED}
              AND NOT EXISTS (SELECT 1 FROM ledger_paiditem p
                              WHERE p.payer = 'referral.commission' AND p.item_id = c.id)
              AND (c.referrer_id IN (SELECT user_id FROM m) OR c.referee_id IN (SELECT user_id FROM m))
            """,  # noqa: S608 - constant fragments
            params,
        )
        invalidated = cursor.rowcount
        # A million and more rows grouped in memory rather than sorted on disk.
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute(
            f"SELECT DISTINCT c.asset FROM referrals_commission c WHERE {_OWED}"  # noqa: S608
            " UNION SELECT asset FROM referrals_commissionpayout WHERE carried_out > 0"
            " ORDER BY 1",
            params,
        )
        assets = [row[0] for row in cursor.fetchall()]
        results = {asset: _pay_asset(asset, day, params) for asset in assets}
        # The log's append lock last, once every row lock of this run is held:
        # taken between two assets it deadlocked with another payout job
        # creating the same user accounts.
        append_domain_events(
            [
                _paid_event(day, asset, len(result.credits), result.amount)
                for asset, result in results.items()
                if result.credits
            ]
        )
        cursor.execute(
            "SELECT min(c.id) FROM referrals_commission c WHERE c.id >= %(unpaid_from)s"
            " AND c.status = 'settled' AND NOT EXISTS (SELECT 1 FROM ledger_paiditem p"
            "   WHERE p.payer = 'referral.commission' AND p.item_id = c.id)",
            params,
        )
        lowest_unpaid = cursor.fetchone()[0]
        refusals = [result.refused for result in results.values() if result.refused]
        held_back = any(result.exceptions for result in results.values())
        # The day counts as distributed once every asset is: a rerun after the
        # pool is funded pays what was refused (and nothing twice).
        if not refusals and not held_back:
            Distribution.objects.create(
                day=day,
                upto_commission_id=params["upto"],
                unpaid_from=lowest_unpaid if lowest_unpaid is not None else params["upto"] + 1,
                distributed_at=now,
                referrers=sum(len(result.credits) for result in results.values()),
                invalidated=invalidated,
            )
    if refusals:
        # Every other asset was paid and committed; the run fails so ops see it.
        raise ReferralRefusal("budget_exhausted", "; ".join(refusals))
    return {
        "referrers_paid": sum(len(result.credits) for result in results.values()),
        "invalidated": invalidated,
        **{
            f"amount_{asset}": format_amount(result.amount)
            for asset, result in results.items()
            if result.credits
        },
        **digest_counts(results.values()),
    }


COMMISSIONS = register_payer(
    Payer(
        name="referral.commission",
        table="referrals_commission",
        credit_kind="referral.commission",
        description="a referee's fill's commission to its referrer (RULES.md 3)",
    )
)
CARRIES = register_payer(
    Payer(
        name="referral.carry",
        table="referrals_commissionpayout",
        credit_kind="referral.commission",
        description="what rounding a referrer's payout down left, carried to the next (RULES.md 0, 3)",
    )
)

# Settled commissions a distribution of day D may pay (less the paid ones).
_OWED = """
    c.status = 'settled' AND c.day <= %(day)s AND c.id <= %(upto)s AND c.id >= %(unpaid_from)s
"""

_ITEMS = f"""
    SELECT 'referral.commission', c.id, c.referrer_id, c.amount,
        'referral:' || c.referrer_id || ':' || %(asset)s || ':' || %(day)s
    FROM referrals_commission c WHERE {_OWED} AND c.asset = %(asset)s
    UNION ALL
    SELECT 'referral.carry', p.id, p.referrer_id, p.carried_out,
        'referral:' || p.referrer_id || ':' || %(asset)s || ':' || %(day)s
    FROM referrals_commissionpayout p WHERE p.asset = %(asset)s AND p.carried_out > 0
"""  # noqa: S608 - constant fragments


def credit_key(referrer: str, asset: str, day: dt.date) -> str:
    """The idempotency key of a referrer's credit in one asset for day D."""
    return f"referral:{referrer}:{asset}:{day.isoformat()}"


def _pay_asset(asset: str, day: dt.date, params: dict[str, Any]) -> PaymentResult:
    """Credit one asset's commissions from the pool; all or nothing against its
    funding. Each credit records its payout (commissions, carried in, amount,
    carried out): the carried-out remainder is the next payout's carry item."""
    result = pay_items(
        Payment(
            payers=(COMMISSIONS, CARRIES),
            funding=open_funding_account(program=POOL_PROGRAM, asset=asset),
            items_sql=_ITEMS,
            params={**params, "asset": asset, "day": day.isoformat()},
            refusal=lambda needed, available: (
                f"referral pool {asset}: {for_people(needed, asset)} needed for {day} but it"
                f" holds {for_people(available, asset)}; nothing was paid"
            ),
            cause={"day": day.isoformat(), "asset": asset},
        )
    )
    with (
        connection.cursor() as cursor,
        cursor.copy(
            "COPY referrals_commissionpayout (day, referrer_id, asset, upto_commission_id,"
            " commissions, carried_in, amount, carried_out, payout_key) FROM STDIN"
        ) as copy,
    ):
        for credit in result.credits:
            copy.write_row(
                (
                    day,
                    credit.user_id,
                    asset,
                    params["upto"],
                    credit.owed_by_payer.get(COMMISSIONS.name, Decimal(0)),
                    credit.owed_by_payer.get(CARRIES.name, Decimal(0)),
                    credit.amount,
                    credit.owed - credit.amount,
                    credit.key,
                )
            )
    return result


def _paid_event(day: dt.date, asset: str, referrers: int, total: Decimal) -> DomainEvent:
    return DomainEvent(
        event_id=f"referral.commissions_paid:{asset}:{day.isoformat()}",
        type="referral.commissions_paid",
        occurred_at=clock.now(),
        data={
            "day": day.isoformat(),
            "asset": asset,
            "referrers": referrers,
            "amount": format_amount(total),
        },
    )
