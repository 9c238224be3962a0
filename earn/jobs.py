"""Scheduled jobs of Futures Earn (RULES.md section 4)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal, localcontext
from functools import partial
from typing import Any

from django.db import connection, transaction

from config import clock
from earn import rules
from earn.models import Accrual, DailyInterest, EarnDistribution, SnapshotRun
from earn.selectors import terms_for
from earn.services import EarnRefusal
from jobs.exceptions import isolate_users, job_exceptions, record_exception
from jobs.registry import Daily, job
from ledger.bookkeeping import open_funding_account
from ledger.digests import digest_counts, digests_in
from ledger.event_store import DomainEvent, append_domain_events
from ledger.money import EXACT, fits_amount, for_people, format_amount
from ledger.payables import Payer, Payment, PaymentResult, pay_items, register_payer
from ledger.sql import binary_cursor

logger = logging.getLogger(__name__)

POOL_PROGRAM = "earn"
# Snapshots and accruals never overlap: an accrual reads a day's snapshots whole.
EARN_LOCK = 0x5E7E_0004
# The daily distribution also makes up this many earlier days left unpaid.
LATE_DAYS = 2
# An instant is taken this long after it: the exchange's wallet and position
# reports of that instant reach us within a few minutes.
SNAPSHOT_LATENESS = dt.timedelta(minutes=5)
# Users per statement of a snapshot or an accrual; a chunk the database refuses
# is split down to the users at fault (jobs.exceptions.isolate_users).
CHUNK_USERS = 5_000

# The users active at an instant: those whose latest change at or before it is
# an activation.
ACTIVE_SQL = """
SELECT user_id FROM (
    SELECT DISTINCT ON (user_id) user_id, active
    FROM earn_activation WHERE occurred_at <= %(at)s
    ORDER BY user_id, occurred_at DESC, event_id DESC
) latest
WHERE active
ORDER BY user_id
"""

# One chunk of active users. Products and sums are exact (unbounded NUMERIC
# columns): quantity x avg_entry_price of contract-valid amounts has up to 40
# integer digits.
SNAPSHOT_SQL = """
INSERT INTO earn_snapshot (at, user_id, asset, principal, position_value)
WITH valued AS (
    SELECT a.user_id, coalesce((
        SELECT sum(abs(u.net)) FROM (
            SELECT sum(CASE WHEN x->>'side' = 'short' THEN -1 ELSE 1 END
                       * abs((x->>'quantity')::numeric) * (x->>'avg_entry_price')::numeric) AS net
            FROM jsonb_array_elements(p.positions) x
            WHERE x->>'market' IN ('usdt_m', 'usdc_m')
            GROUP BY split_part(x->>'symbol', '_', 1)
        ) u
    ), 0) AS position_value
    FROM unnest(%(users)b::text[]) AS a(user_id)
    LEFT JOIN LATERAL (
        SELECT s.positions FROM ledger_futurespositionsstate s
        WHERE s.user_id = a.user_id AND s.occurred_at <= %(at)s
        ORDER BY s.occurred_at DESC, s.event_id DESC LIMIT 1
    ) p ON true
)
SELECT %(at)s, v.user_id, asset.code,
    greatest(coalesce(w.available + w.locked_in_orders + w.margin_used - w.bonus, 0), 0),
    v.position_value
FROM valued v
CROSS JOIN unnest(%(assets)b::text[]) AS asset(code)
LEFT JOIN LATERAL (
    SELECT s.available, s.locked_in_orders, s.margin_used, s.bonus
    FROM ledger_futureswalletstate s
    WHERE s.user_id = v.user_id AND s.asset = asset.code AND s.occurred_at <= %(at)s
    ORDER BY s.occurred_at DESC, s.event_id DESC LIMIT 1
) w ON true
"""


@job(
    "earn_snapshot",
    key="instant",
    schedule=dt.timedelta(minutes=10),
    description="Take the Earn snapshots due by T, each as of its own instant (RULES.md 4).",
)
def earn_snapshot(*, at: dt.datetime) -> dict[str, Any]:
    """RULES.md section 4, "Snapshots": at each of the day's three instants
    (``snapshot_times`` of the terms in force, default 00:00, 08:00, 16:00
    UTC), for every user active at that instant and each supported asset:
    principal = available + locked_in_orders + margin_used - bonus (never
    below 0), and the account's position value = the sum over underlyings of
    |sum of signed quantity x avg_entry_price| over USDT-M and USDC-M
    positions, from the latest wallet and position state at or before the
    instant, whenever the job runs.

    Takes every instant of T's day at or before T - ``SNAPSHOT_LATENESS`` not
    taken yet (so a late or missed run catches up, and events that reach us a
    few minutes after their instant still count); an instant is taken once,
    and never before the clock has passed it. A user whose data the database
    refuses is left out of the instant and recorded as a job exception;
    everyone else is snapshotted."""
    with job_exceptions("earn_snapshot") as exceptions:
        # Never ahead of the clock, and only once late events have had their window.
        cutoff = min(at, clock.now()) - SNAPSHOT_LATENESS
        terms = terms_for(cutoff.date())
        due = [i for i in rules.snapshot_instants(cutoff.date(), terms) if i <= cutoff]
        taken = {instant.isoformat(): take_snapshot(instant, terms) for instant in due}
        return {
            "snapshots": {k: v for k, v in taken.items() if v is not None},
            **exceptions.counts(),
        }


def take_snapshot(instant: dt.datetime, terms: rules.Terms) -> int | None:
    """Take one snapshot instant; ``None`` when it was taken already. Users are
    snapshotted in chunks, each in a savepoint: a user whose data fails the
    statement is recorded as a job exception, not a failure of the instant."""
    with (
        job_exceptions("earn_snapshot"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [EARN_LOCK])
        if SnapshotRun.objects.filter(at=instant).exists():
            return None
        cursor.execute(ACTIVE_SQL, {"at": instant})
        active = [user_id for (user_id,) in cursor.fetchall()]
        taken = isolate_users(
            active,
            lambda users: _snapshot_users(instant, terms, users),
            chunk_size=CHUNK_USERS,
            what=f"Earn snapshot {instant.isoformat()}",
        )
        users = sum(taken)
        SnapshotRun.objects.create(at=instant, taken_at=clock.now(), users=users)
    logger.info("earn snapshot %s: %d users", instant.isoformat(), users)
    return users


def _snapshot_users(instant: dt.datetime, terms: rules.Terms, users: Sequence[str]) -> int:
    with binary_cursor() as cursor:
        cursor.execute(
            SNAPSHOT_SQL, {"at": instant, "users": list(users), "assets": list(terms.assets)}
        )
        rows = cursor.rowcount
    return rows // len(terms.assets) if terms.assets else 0


@job(
    "accrue_earn_interest",
    key="day",
    schedule=Daily(hour=0, minute=20),
    description="Accrue day D's Earn interest from its three snapshots (RULES.md 4).",
)
def accrue_earn_interest(*, day: dt.date) -> dict[str, Any]:
    """RULES.md section 4, "Daily interest": per user and asset, P = the lowest
    of D's three principal snapshots (an instant at which the user was not
    active counts as 0), V = the mean of D's three position values; with
    V >= the threshold the first ``boosted_principal`` of P earns the boosted
    APR and the rest the base APR, else all of P the base APR; interest =
    sum of portion x APR / 365, rounded down to 8 decimals once. The terms are
    those in force on D (effective-dated by day).

    Takes any of D's snapshots still missing first (from history, as of their
    instants). A day is accrued once: a rerun changes nothing. P, V and the
    portions are kept exactly, whatever their size; a user's interest the
    ledger could not hold (beyond NUMERIC(38, 18)), or whose data the database
    refuses, is left out and recorded as a job exception: everyone else
    accrues."""
    if clock.now() < clock.start_of_day(day + dt.timedelta(days=1)):
        raise EarnRefusal("too_early", f"Earn interest of {day} is accrued once the day is over")
    terms = terms_for(day)
    instants = rules.snapshot_instants(day, terms)
    with job_exceptions("accrue_earn_interest") as exceptions:
        for instant in instants:
            take_snapshot(instant, terms)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [EARN_LOCK])
            if Accrual.objects.filter(day=day).exists():
                return {
                    "day": day.isoformat(),
                    "rows": 0,
                    "already_accrued": True,
                    **exceptions.counts(),
                }
            totals: dict[str, Decimal] = {}
            count = 0
            with binary_cursor() as read:
                read.execute(
                    """
                    SELECT user_id, asset, count(*), min(principal), sum(position_value)
                    FROM earn_snapshot WHERE at = ANY(%s)
                    GROUP BY user_id, asset ORDER BY user_id, asset
                    """,
                    [instants],
                )
                for batch in _user_batches(read, CHUNK_USERS):
                    for rows, sums in isolate_users(
                        list(batch),
                        partial(_accrue_users, day, terms, batch),
                        chunk_size=CHUNK_USERS,
                        what=f"Earn interest of {day.isoformat()}",
                    ):
                        count += rows
                        with localcontext(EXACT):
                            for asset, amount in sums.items():
                                totals[asset] = totals.get(asset, Decimal(0)) + amount
            Accrual.objects.create(
                day=day,
                terms_from=terms.effective_from,
                accrued_at=clock.now(),
                rows=count,
                totals={asset: format_amount(total) for asset, total in sorted(totals.items())},
            )
        return {
            "day": day.isoformat(),
            "rows": count,
            **{f"interest_{a}": format_amount(t) for a, t in sorted(totals.items())},
            **exceptions.counts(),
        }


# (asset, snapshots while active, lowest principal, sum of position values)
SnapshotSums = tuple[str, int, Decimal, Decimal]


def _user_batches(
    rows: Iterable[tuple[str, str, int, Decimal, Decimal]], size: int
) -> Iterator[dict[str, list[SnapshotSums]]]:
    """The read's rows (ordered by user) as batches of ``size`` users."""
    batch: dict[str, list[SnapshotSums]] = {}
    for user_id, asset, snapshots, lowest, value_sum in rows:
        if user_id not in batch and len(batch) >= size:
            yield batch
            batch = {}
        batch.setdefault(user_id, []).append((asset, snapshots, lowest, value_sum))
    if batch:
        yield batch


def _accrue_users(
    day: dt.date,
    terms: rules.Terms,
    batch: dict[str, list[SnapshotSums]],
    users: Sequence[str],
) -> tuple[int, dict[str, Decimal]]:
    """Write the daily interest rows of ``users``; returns (rows, interest per asset)."""
    count = len(terms.snapshot_times)
    sums: dict[str, Decimal] = {}
    rows = 0
    with (
        connection.cursor() as write,
        write.copy(
            "COPY earn_dailyinterest (day, user_id, asset, snapshots, principal,"
            " position_value, boosted_portion, boosted_apr, base_portion, base_apr,"
            " interest) FROM STDIN"
        ) as copy,
        localcontext(EXACT),
    ):
        for user_id in users:
            for asset, snapshots, lowest, value_sum in batch[user_id]:
                # A missing snapshot is an instant the user was not active: 0.
                p = lowest if snapshots == count else Decimal(0)
                result = rules.interest_of(p, value_sum, terms)
                if not fits_amount(result.interest):
                    record_exception(
                        user_id=user_id,
                        scope=f"asset {asset}",
                        reason="interest beyond what the ledger holds (NUMERIC(38, 18)):"
                        " not accrued, not paid",
                        # Every digit: what ops need to trace an amount this large.
                        detail=f"Earn interest of {day.isoformat()}: P {format_amount(p)},"
                        f" V {format_amount(result.position_value)},"
                        f" interest {format_amount(result.interest)}",
                    )
                    continue
                copy.write_row(
                    (
                        day,
                        user_id,
                        asset,
                        snapshots,
                        result.principal,
                        result.position_value,
                        result.boosted_portion,
                        result.boosted_apr,
                        result.base_portion,
                        result.base_apr,
                        result.interest,
                    )
                )
                sums[asset] = sums.get(asset, Decimal(0)) + result.interest
                rows += 1
    return rows, sums


@job(
    "distribute_earn_interest",
    key="day",
    schedule=Daily(hour=0, minute=40),
    description="Credit day D's Earn interest to spot accounts on D+1 (RULES.md 4).",
)
def distribute_earn_interest(*, day: dt.date) -> dict[str, Any]:
    """RULES.md section 4, "Distribution": day D's accrued interest is
    credited on D+1 to each user's spot account from the Earn pool's funding
    account in the asset, one credit per user and asset (key
    ``earn:<user>:<asset>:<D>``), with a payout instruction. Interest of 0 is
    not credited. Each day's interest row is a payable item paid at most once
    (``ledger.payables``), however often and for whichever days this runs; all
    or nothing per asset against the pool's funding, the other assets paid. A day not accrued yet is accrued first, and the
    scheduled run also pays the ``LATE_DAYS`` days before if they are unpaid,
    so a run that failed (an underfunded pool) or never happened is made up."""
    if clock.now() < clock.start_of_day(day + dt.timedelta(days=1)):
        raise EarnRefusal(
            "too_early", f"Earn interest of {day} is paid from {day + dt.timedelta(days=1)}"
        )
    with job_exceptions("distribute_earn_interest") as exceptions:
        result = _distribute_day(day)
        refusals = [result.pop("refused")] if "refused" in result else []
        for back in range(1, LATE_DAYS + 1):
            earlier = _distribute_day(day - dt.timedelta(days=back))
            if not earlier.get("already_paid"):
                result[f"late_{earlier['day']}"] = earlier["credits"]
                result.update(digests_in(earlier))
            if "refused" in earlier:
                refusals.append(earlier["refused"])
        if refusals:
            # Every other asset and day was paid and committed; the run fails
            # so ops see the refusal (also a job exception of the asset).
            raise EarnRefusal("budget_exhausted", "; ".join(refusals))
        return {**result, **exceptions.counts()}


INTEREST = register_payer(
    Payer(
        name="earn.interest",
        table="earn_dailyinterest",
        credit_kind="earn.interest",
        description="a user's Earn interest of one day in one asset (RULES.md 4)",
    )
)

# Day D's interest rows: one credit each, under the user's key of the day.
_INTEREST = """
    SELECT 'earn.interest', i.id, i.user_id, i.interest,
        'earn:' || i.user_id || ':' || i.asset || ':' || %(day)s
    FROM earn_dailyinterest i WHERE i.day = %(day)s AND i.asset = %(asset)s AND i.interest > 0
"""


def _distribute_day(day: dt.date) -> dict[str, Any]:
    """Pay day D's unpaid interest, each asset alone; the day counts as
    distributed once no asset was refused."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [EARN_LOCK + 1])
        if EarnDistribution.objects.filter(day=day).exists():
            return {"day": day.isoformat(), "credits": 0, "already_paid": True}
        if not Accrual.objects.filter(day=day).exists():
            # The accrual failed or has not run yet: do it now (it waits for
            # one in progress, and accrues nothing twice).
            accrue_earn_interest(day=day)
        assets = sorted(
            DailyInterest.objects.filter(day=day, interest__gt=0)
            .values_list("asset", flat=True)
            .distinct()
        )
        results = {asset: _pay_asset(asset, day) for asset in assets}
        paid = {asset: result for asset, result in results.items() if result.credits}
        # The log's append lock last, once every row lock of this run is held:
        # taken between two assets it could deadlock with another payout job
        # creating the same user accounts.
        append_domain_events(
            [
                DomainEvent(
                    event_id=f"earn.interest_paid:{asset}:{day.isoformat()}:{clock.now().isoformat()}",
                    type="earn.interest_paid",
                    occurred_at=clock.now(),
                    data={
                        "day": day.isoformat(),
                        "asset": asset,
                        "amount": format_amount(result.amount),
                    },
                )
                for asset, result in paid.items()
            ]
        )
        refusals = [result.refused for result in results.values() if result.refused]
        held_back = any(result.exceptions for result in results.values())
        if not refusals and not held_back:
            EarnDistribution.objects.create(
                day=day,
                distributed_at=clock.now(),
                credits=sum(len(result.credits) for result in results.values()),
                totals={asset: format_amount(result.amount) for asset, result in paid.items()},
            )
    return {
        "day": day.isoformat(),
        "credits": sum(len(result.credits) for result in results.values()),
        **{f"amount_{a}": format_amount(result.amount) for a, result in paid.items()},
        **digest_counts(results.values()),
        **({"refused": "; ".join(refusals)} if refusals else {}),
    }


def _pay_asset(asset: str, day: dt.date) -> PaymentResult:
    return pay_items(
        Payment(
            payers=(INTEREST,),
            funding=open_funding_account(program=POOL_PROGRAM, asset=asset),
            items_sql=_INTEREST,
            params={"day": day.isoformat(), "asset": asset},
            refusal=lambda needed, available: (
                f"Earn pool {asset}: {for_people(needed, asset)} needed for {day} but it holds"
                f" {for_people(available, asset)}; nothing was paid"
            ),
            cause={"day": day.isoformat(), "asset": asset},
        )
    )
