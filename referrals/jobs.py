"""Scheduled jobs of the referral program (RULES.md section 3)."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

from config import clock
from jobs.registry import Daily, job
from ledger.bookkeeping import (
    InsufficientFunds,
    UserCredit,
    open_funding_account,
    post_user_credits,
    reserve_funding,
)
from ledger.event_store import DomainEvent, append_domain_events
from ledger.money import format_amount
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
    day D or before that no earlier distribution covered (late fills settled
    after their day's distribution go with the next one). A commission whose
    relation was invalidated (``invalidate_referral`` on either side) before
    it was paid becomes an invalid rebate and is not paid; paid ones stay paid.

    Each referrer's sum is rounded down to 8 decimals once; the remainder is
    carried to that referrer's next payout in the asset. A day is distributed
    once: a rerun, or a run for a day before the last distributed one, pays
    nothing. All or nothing against the pool's funding."""
    now = clock.now()
    if now < clock.start_of_day(day + dt.timedelta(days=1)):
        raise ReferralRefusal(
            "too_early", f"commissions of {day} are paid from {day + dt.timedelta(days=1)}"
        )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [REFERRALS_LOCK])
        last = Distribution.objects.order_by("-day").first()
        if last is not None and last.day >= day:
            return {"referrers_paid": 0, "invalidated": 0, "distributed_through": str(last.day)}
        cursor.execute("SELECT coalesce(max(id), 0) FROM referrals_commission")
        params: dict[str, Any] = {
            "day": day,
            "upto": int(cursor.fetchone()[0]),
            # Rows the previous distribution covered are paid or invalid already.
            "prev_day": last.day if last else dt.date.min,
            "prev_upto": last.upto_commission_id if last else 0,
            "now": now,
            "measure": INVALIDATE,
        }
        uncovered = """
            c.status = 'settled' AND c.day <= %(day)s AND c.id <= %(upto)s
            AND (c.id > %(prev_upto)s OR c.day > %(prev_day)s)
        """
        cursor.execute(
            f"""
            WITH m AS (SELECT user_id, min(occurred_at) AS first_at FROM ledger_riskmeasure
                       WHERE measure = %(measure)s AND occurred_at <= %(now)s GROUP BY user_id)
            UPDATE referrals_commission c SET status = 'invalid',
                invalid_at = (SELECT min(first_at) FROM m
                              WHERE m.user_id IN (c.referrer_id, c.referee_id))
            WHERE {uncovered}
              AND (c.referrer_id IN (SELECT user_id FROM m) OR c.referee_id IN (SELECT user_id FROM m))
            """,  # noqa: S608 - constant fragments
            params,
        )
        invalidated = cursor.rowcount
        # A million and more rows grouped in memory rather than sorted on disk.
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute(
            f"""
            WITH due AS (
                SELECT c.referrer_id, c.asset, sum(c.amount) AS commissions
                FROM referrals_commission c WHERE {uncovered}
                GROUP BY c.referrer_id, c.asset
            )
            SELECT due.asset, due.referrer_id, due.commissions, coalesce(prev.carried_out, 0)
            FROM due LEFT JOIN LATERAL (
                SELECT p.carried_out FROM referrals_commissionpayout p
                WHERE p.referrer_id = due.referrer_id AND p.asset = due.asset
                ORDER BY p.day DESC LIMIT 1
            ) prev ON true
            ORDER BY due.asset, due.referrer_id
            """,  # noqa: S608 - constant fragments
            params,
        )
        payouts = [
            rules.commission_payout(referrer, asset, commissions, carried_in)
            for asset, referrer, commissions, carried_in in cursor.fetchall()
        ]
        by_asset: dict[str, list[rules.CommissionPayout]] = {}
        for payout in payouts:
            if payout.amount > 0:
                by_asset.setdefault(payout.asset, []).append(payout)
        totals = {
            asset: _pay_asset(asset, credits, day) for asset, credits in sorted(by_asset.items())
        }
        # The log's append lock last, once every row lock of this run is held:
        # taken between two assets it deadlocked with another payout job
        # creating the same user accounts.
        append_domain_events(
            [
                _paid_event(day, asset, len(by_asset[asset]), total)
                for asset, total in sorted(totals.items())
            ]
        )
        Distribution.objects.create(
            day=day,
            upto_commission_id=params["upto"],
            distributed_at=now,
            referrers=len(payouts),
            invalidated=invalidated,
        )
        _record_payouts(payouts, day, params["upto"])
    return {
        "referrers_paid": sum(len(credits) for credits in by_asset.values()),
        "invalidated": invalidated,
        **{f"amount_{asset}": format_amount(total) for asset, total in totals.items()},
    }


def credit_key(referrer: str, asset: str, day: dt.date) -> str:
    """The idempotency key of a referrer's credit in one asset for day D."""
    return f"referral:{referrer}:{asset}:{day.isoformat()}"


def _record_payouts(payouts: list[rules.CommissionPayout], day: dt.date, upto: int) -> None:
    with (
        connection.cursor() as cursor,
        cursor.copy(
            "COPY referrals_commissionpayout (day, referrer_id, asset, upto_commission_id,"
            " commissions, carried_in, amount, carried_out, payout_key) FROM STDIN"
        ) as copy,
    ):
        for p in payouts:
            copy.write_row(
                (
                    day,
                    p.referrer_id,
                    p.asset,
                    upto,
                    p.commissions,
                    p.carried_in,
                    p.amount,
                    p.carried_out,
                    credit_key(p.referrer_id, p.asset, day) if p.amount > 0 else "",
                )
            )


def _pay_asset(asset: str, credits: list[rules.CommissionPayout], day: dt.date) -> Decimal:
    """Credit one asset's commissions from the pool; all or nothing against its funding."""
    pool = open_funding_account(program=POOL_PROGRAM, asset=asset)
    total = sum((credit.amount for credit in credits), Decimal(0))
    try:
        locked = reserve_funding(pool, total)
    except InsufficientFunds as short:
        message = (
            f"referral pool {asset}: {format_amount(total)} needed for {day} but it holds"
            f" {format_amount(short.available)};"
            " nothing was paid"
        )
        logger.error("referral payout refused: %s", message)
        raise ReferralRefusal("budget_exhausted", message) from None
    post_user_credits(
        UserCredit(
            idempotency_key=credit_key(credit.referrer_id, asset, day),
            kind="referral.commission",
            funding_account=locked,
            user_id=credit.referrer_id,
            amount=credit.amount,
            user_kind="spot",
            cause={"day": day.isoformat(), "asset": asset},
        )
        for credit in credits
    )
    return total


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
