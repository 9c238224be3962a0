"""Scheduled jobs of the loss-coverage vouchers (RULES.md section 2)."""

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
from vouchers import matching
from vouchers.models import VoucherProgram
from vouchers.services import VOID_MEASURE, VoucherRefusal, void_for_risk

logger = logging.getLogger(__name__)


@job(
    "consume_vouchers",
    key="instant",
    schedule=dt.timedelta(minutes=1),
    description="Match losing orders to vouchers, earliest arrival first (RULES.md 2).",
)
def consume_vouchers(*, at: dt.datetime) -> dict[str, Any]:
    """RULES.md section 2, "Eligible order" and "Consumption by arrival time":
    every user whose closed orders changed since the last run
    (``ClosedOrder.last_position``) and who holds a voucher that can serve or
    give back is matched again (``vouchers.matching``): until a day is paid,
    its matches follow all the user's fills known, whenever this job runs; a
    paid match is final; a late order is matched with the vouchers as they
    stand, only those that arrived before its close. A changed match is
    released and replaced, never edited, with a ``voucher.matches_changed``
    event.

    First applies ``void_vouchers`` risk measures. One run at a time: a second
    concurrent run, or one during a payout marking its day paid, returns at once."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [matching.CONSUMPTION_LOCK])
        if not cursor.fetchone()[0]:
            return {"skipped": "another consume_vouchers run or a payout is in progress"}
    try:
        voided = void_for_risk(at)
        return {**matching.rematch_changed(at), **voided}
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [matching.CONSUMPTION_LOCK])


CONSUMPTIONS = register_payer(
    Payer(
        name="voucher.consumption",
        table="vouchers_consumption",
        credit_kind="voucher.compensation",
        description="a losing order's use of a voucher (RULES.md 2)",
    )
)


@job(
    "pay_voucher_compensation",
    key="day",
    schedule=Daily(hour=0, minute=30),
    description="Credit day D's voucher compensation to spot accounts on day D+1 (RULES.md 2).",
)
def pay_voucher_compensation(*, day: dt.date) -> dict[str, Any]:
    """RULES.md section 2, "Payout": compensation for orders closed on day D is
    credited on day D+1, from the program's funding account to the user's spot
    account, one credit per user and program (key
    ``voucher:<program>:<user>:<D>``). Each consumption is a payable item paid
    at most once (``ledger.payables``): matches of earlier days still unpaid
    (late orders, a refused day) are paid with day D's, and a run for another
    day at the same time pays nothing twice. Refuses to run before D+1 has
    begun. All or nothing per program: a funding account that cannot cover the
    day pays nothing of that program and flags it for ops; the other programs
    are paid."""
    next_day = clock.start_of_day(day + dt.timedelta(days=1))
    now = clock.now()
    if now < next_day:
        raise VoucherRefusal(
            "too_early", f"compensation for {day} is paid on {next_day.date()}, not before"
        )
    paid = 0
    total = Decimal(0)
    refusals = []
    results = []
    with job_exceptions("pay_voucher_compensation") as exceptions:
        for program in VoucherProgram.objects.order_by("pk"):
            result = _pay_program(program, day, next_day, now)
            results.append(result)
            if result.refused:
                VoucherProgram.objects.filter(pk=program.pk).update(
                    budget_alert=result.refused[:2000], budget_alert_at=now
                )
                refusals.append(result.refused)
            paid += len(result.credits)
            total += result.amount
        if refusals:
            raise VoucherRefusal("budget_exhausted", "; ".join(refusals))
        return {
            "users_paid": paid,
            "amount": format_amount(total),
            **digest_counts(results),
            **exceptions.counts(),
        }


# The program's unpaid matches of orders closed before the end of day D,
# less those of users under the risk measure (their matches are cancelled).
_UNPAID = """
    SELECT 'voucher.consumption', c.id, c.user_id, c.amount,
        'voucher:' || %(slug)s || ':' || c.user_id || ':' || %(day)s
    FROM vouchers_consumption c JOIN vouchers_voucher v ON v.id = c.voucher_id
    WHERE v.program_id = %(program)s AND c.paid_at IS NULL AND c.cancelled_at IS NULL
      AND c.closed_at < %(next_day)s
      AND NOT EXISTS (SELECT 1 FROM ledger_riskmeasure m
                      WHERE m.user_id = c.user_id AND m.measure = %(measure)s)
"""


def _pay_program(
    program: VoucherProgram, day: dt.date, next_day: dt.datetime, now: dt.datetime
) -> PaymentResult:
    funding = open_funding_account(program=program.funding_program, asset=program.asset)
    with transaction.atomic():
        # First: closes the day's matching, and keeps consume_vouchers (and its
        # risk voiding) out until this commits, so the matches read below are
        # the ones a run left, never ones it is changing.
        matching.mark_day_paid(program, day, now)
        result = pay_items(
            Payment(
                payers=(CONSUMPTIONS,),
                funding=funding,
                items_sql=_UNPAID,
                params={
                    "program": program.pk,
                    "next_day": next_day,
                    "measure": VOID_MEASURE,
                    "slug": program.slug,
                    "day": day.isoformat(),
                },
                refusal=lambda needed, available: (
                    f"voucher program {program.slug}: compensation of"
                    f" {for_people(needed, program.asset)} for {day} exceeds its funding of"
                    f" {for_people(available, program.asset)}; nothing was paid"
                ),
                cause={"program": program.slug, "day": day.isoformat()},
            )
        )
        if not result.credits:
            return result
        # The consumptions' own record of the payment (the coupon center and
        # the explanation read it); the paid items are the truth.
        with connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE vouchers_consumption c SET paid_at = p.paid_at, payout_key = t.idempotency_key
                FROM ledger_paiditem p JOIN ledger_ledgertransaction t ON t.id = p.transaction_id
                WHERE c.paid_at IS NULL AND p.payer = %s AND p.item_id = c.id
                """,
                [CONSUMPTIONS.name],
            )
        append_domain_events(
            [
                DomainEvent(
                    event_id=f"voucher.compensation_paid:{program.slug}:{day.isoformat()}:{now.isoformat()}",
                    type="voucher.compensation_paid",
                    occurred_at=now,
                    data={
                        "program": program.slug,
                        "day": day.isoformat(),
                        "users": len(result.credits),
                        "amount": format_amount(result.amount),
                    },
                )
            ]
        )
    return result


@job(
    "expire_vouchers",
    key="instant",
    schedule=dt.timedelta(hours=1),
    description="Record vouchers that expired with money left (RULES.md 2).",
)
def expire_vouchers(*, at: dt.datetime) -> dict[str, int]:
    """RULES.md section 2: an expired voucher serves nothing (the matching rule
    already refuses it) and moves to the coupon center's history. This records
    when each one expired with money left; one ``voucher.expired`` event per run."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE vouchers_voucher SET expired_at = expires_at WHERE expires_at <= %s"
            " AND expired_at IS NULL AND voided_at IS NULL AND remaining > 0",
            [at],
        )
        expired = cursor.rowcount
        if expired:
            append_domain_events(
                [
                    DomainEvent(
                        event_id=f"voucher.expired:{at.isoformat()}",
                        type="voucher.expired",
                        occurred_at=at,
                        data={"vouchers": expired},
                    )
                ]
            )
    return {"vouchers_expired": expired}
