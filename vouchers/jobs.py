"""Scheduled jobs of the loss-coverage vouchers (RULES.md section 2)."""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

from config import clock
from jobs.registry import Daily, job
from ledger.bookkeeping import open_funding_account
from ledger.event_store import DomainEvent, append_domain_events
from ledger.money import format_amount
from ledger.payables import Payer, Payment, PaymentResult, pay_items, register_payer
from ledger.sql import binary_cursor
from vouchers import rules
from vouchers.models import ConsumptionCursor, VoucherProgram
from vouchers.services import VOID_MEASURE, VoucherRefusal, void_for_risk

logger = logging.getLogger(__name__)

USER_CHUNK = 2_000
# One consumer of vouchers at a time, whatever instant each run was asked for.
CONSUMPTION_LOCK = 0x5E7E_0002
CURSOR = "consumption"


@job(
    "consume_vouchers",
    key="instant",
    schedule=dt.timedelta(minutes=1),
    description="Match new losing orders to vouchers, earliest arrival first (RULES.md 2).",
)
def consume_vouchers(*, at: dt.datetime) -> dict[str, Any]:
    """RULES.md section 2, "Eligible order" and "Consumption by arrival time":
    every losing order folded since the last run (``ClosedOrder.last_position``)
    whose user holds a usable voucher is checked with ``vouchers.rules``; a
    user's eligible orders, in close-time order, each consume the
    earliest-arrived usable voucher for min(loss, remaining). A match is final;
    a late order is matched against the vouchers as they stand when it is
    processed (still only vouchers that arrived before its close).

    First applies ``void_vouchers`` risk measures. One run at a time: a second
    concurrent run returns at once."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [CONSUMPTION_LOCK])
        if not cursor.fetchone()[0]:
            return {"skipped": "another consume_vouchers run is in progress"}
    try:
        voided = void_for_risk(at)
        return {**_consume(at), **voided}
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [CONSUMPTION_LOCK])


def _consume(at: dt.datetime) -> dict[str, Any]:
    cursor_row, _ = ConsumptionCursor.objects.get_or_create(
        name=CURSOR, defaults={"updated_at": at}
    )
    since = cursor_row.position
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(max(last_position), %s) FROM ledger_closedorder WHERE last_position > %s",
            [since, since],
        )
        head = int(cursor.fetchone()[0])
        if head == since:
            return {"orders_matched": 0, "compensation": "0"}
        # Users with a new losing order who hold a voucher with money left.
        cursor.execute(
            """
            SELECT DISTINCT o.user_id FROM ledger_closedorder o
            WHERE o.last_position > %s AND o.last_position <= %s AND o.realized_pnl < 0
              AND EXISTS (SELECT 1 FROM vouchers_voucher v WHERE v.user_id = o.user_id
                          AND v.remaining > 0 AND v.voided_at IS NULL)
            ORDER BY o.user_id
            """,
            [since, head],
        )
        users = [row[0] for row in cursor.fetchall()]
    matched = 0
    total = Decimal(0)
    for start in range(0, len(users), USER_CHUNK):
        count, amount = _consume_users(users[start : start + USER_CHUNK], since, head, at)
        matched += count
        total += amount
    ConsumptionCursor.objects.filter(name=CURSOR).update(position=head, updated_at=at)
    return {"orders_matched": matched, "compensation": format_amount(total), "users": len(users)}


def _consume_users(users: list[str], since: int, head: int, at: dt.datetime) -> tuple[int, Decimal]:
    # Binary parameters and results: thousands of keys, timestamps and amounts
    # per chunk cost more to quote and parse as text than the queries themselves.
    with transaction.atomic(), binary_cursor() as cursor:
        cursor.execute(
            """
            SELECT o.user_id, o.order_id, o.first_close_at, o.realized_pnl, o.closing_notional,
                o.market, o.origin, o.promo_funding, u.account_type
            FROM ledger_closedorder o LEFT JOIN ledger_exchangeuser u ON u.user_id = o.user_id
            WHERE o.user_id = ANY(%b::text[]) AND o.last_position > %b AND o.last_position <= %b
              AND o.realized_pnl < 0
              AND NOT EXISTS (SELECT 1 FROM vouchers_consumption c
                              WHERE c.user_id = o.user_id AND c.order_id = o.order_id)
            """,
            [users, since, head],
            binary=True,
        )
        orders: dict[str, list[rules.LosingOrder]] = defaultdict(list)
        for (
            user_id,
            order_id,
            closed_at,
            pnl,
            notional,
            market,
            origin,
            promo,
            account_type,
        ) in cursor:
            order = rules.LosingOrder(
                order_id, closed_at, pnl, notional, market, origin, tuple(promo or ())
            )
            if not rules.order_reasons(order, account_type=account_type, vouchers_voided=False):
                orders[user_id].append(order)
        if not orders:
            return 0, Decimal(0)
        # Row locks on the vouchers used: a concurrent grant or void waits.
        cursor.execute(
            """
            SELECT id, user_id, arrived_at, expires_at, remaining, min_closing_amount
            FROM vouchers_voucher
            WHERE user_id = ANY(%b::text[]) AND remaining > 0 AND voided_at IS NULL
            ORDER BY id FOR UPDATE
            """,
            [list(orders)],
            binary=True,
        )
        vouchers: dict[str, list[rules.VoucherState]] = defaultdict(list)
        for voucher_id, user_id, arrived, expires, remaining, minimum in cursor:
            vouchers[user_id].append(
                rules.VoucherState(voucher_id, arrived, expires, remaining, minimum)
            )
        rows = []
        new_remaining: dict[int, Decimal] = {}
        for user_id, user_orders in orders.items():
            matches, remaining = rules.match_orders(user_orders, vouchers.get(user_id, []))
            new_remaining.update(remaining)
            rows += [
                (
                    m.voucher_id,
                    user_id,
                    m.order.order_id,
                    m.order.closed_at,
                    m.order.loss,
                    m.amount,
                    at,
                    "",
                )
                for m in matches
            ]
        if not rows:
            return 0, Decimal(0)
        with cursor.copy(
            "COPY vouchers_consumption (voucher_id, user_id, order_id, closed_at, loss, amount,"
            " matched_at, payout_key) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)
        ids = sorted(new_remaining)
        cursor.execute(
            """
            UPDATE vouchers_voucher v SET remaining = r.remaining
            FROM unnest(%b::bigint[], %b::numeric[]) AS r(id, remaining) WHERE v.id = r.id
            """,
            [ids, [new_remaining[i] for i in ids]],
        )
        return len(rows), sum((row[5] for row in rows), Decimal(0))


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
    for program in VoucherProgram.objects.order_by("pk"):
        result = _pay_program(program, day, next_day, now)
        if result.refused:
            VoucherProgram.objects.filter(pk=program.pk).update(
                budget_alert=result.refused[:2000], budget_alert_at=now
            )
            refusals.append(result.refused)
        paid += len(result.credits)
        total += result.amount
    if refusals:
        raise VoucherRefusal("budget_exhausted", "; ".join(refusals))
    return {"users_paid": paid, "amount": format_amount(total)}


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
                    f"voucher program {program.slug}: compensation of {format_amount(needed)}"
                    f" {program.asset} for {day} exceeds its funding of"
                    f" {format_amount(available)}; nothing was paid"
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
