"""Matching losing orders to vouchers (RULES.md section 2, "Consumption by
arrival time" and its decision on fills that arrive over time).

Until day D is paid, a user's matches of day D follow every fill known: each
run of ``consume_vouchers`` recomputes, for every user whose closed orders
changed, the user's *open* matching from scratch with
``vouchers.rules.match_orders``, so the result never depends on when the job
happened to run. What stays fixed:

- **frozen matches**: paid ones (``paid_at``) and those cancelled by a risk
  measure. Their orders are never matched again; their amounts are taken off
  their vouchers' face values before anything else is matched.
- **closed days**: once a payout has paid day D (:func:`mark_day_paid`), the
  orders of D and of every day before it that the matching had already seen
  keep what they had: a paid match stays paid, an order without a match stays
  without one.

The *open* orders of a user, matched again in close-time order against their
vouchers' face value less the frozen amounts:

1. every order without a frozen match closed on a day not yet paid;
2. every order without a frozen match whose unpaid match is waiting for its
   payout (a late order's match, or one of a program whose payout was refused);
3. every *late* order: closed on a paid day, without a frozen match, whose
   closed-order record changed after that day was paid (a new order, or a new
   fill of one that had no match). It is matched with the vouchers as they
   stand (face value less frozen amounts), in close-time order with the other
   open orders, still only with vouchers that arrived before its close; its
   match is paid with the next payout.

A match that changes (voucher, amount, loss or close time) is never edited:
the old row is released (``released_at``; ``cancelled_at`` too, so no payout
ever owes it) and a new row is inserted. Each run appends one
``voucher.matches_changed`` event per user for whom it released a match,
with the released and the new matches; a first match alone is recorded by
its row, as it always was.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Min

from config import clock
from ledger.event_store import DomainEvent, append_domain_events
from ledger.money import EXACT, format_amount
from ledger.sql import binary_cursor
from vouchers import rules
from vouchers.models import ConsumptionCursor, PaidDay, VoucherProgram
from vouchers.services import VOID_MEASURE

USER_CHUNK = 2_000
# One writer of matches at a time: consume_vouchers holds it for a whole run
# (a session lock); a payout from mark_day_paid to the end of its transaction.
CONSUMPTION_LOCK = 0x5E7E_0002
CURSOR = "consumption"
CHANGED = "voucher.matches_changed"


class MatchingConflict(RuntimeError):
    """A match this run meant to release was paid or cancelled meanwhile (a
    payout that did not call mark_day_paid): the chunk is rolled back, the run
    fails without moving its cursor, and the next run matches again."""


def mark_day_paid(program: VoucherProgram, day: dt.date, at: dt.datetime) -> None:
    """Record that a payout of ``program`` is paying day ``day``: from its
    commit on, the matching of ``day`` and every day before it is closed
    (see the module's docstring). Idempotent; the first mark of a day stays.

    Call it inside the payout's transaction, as its first statement, before
    anything owed is read: it waits for a ``consume_vouchers`` run in progress
    to finish and keeps new runs out until the payout commits, so the payout
    reads matches no run is changing, and the mark records exactly how far the
    matching had read (``upto_position``)."""
    if not connection.in_atomic_block:
        raise RuntimeError("mark_day_paid belongs inside the payout's transaction")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CONSUMPTION_LOCK])
        cursor.execute(
            """
            INSERT INTO vouchers_paidday (program_id, day, paid_at, upto_position)
            VALUES (%s, %s, %s, coalesce(
                (SELECT position FROM vouchers_consumptioncursor WHERE name = %s), 0))
            ON CONFLICT (program_id, day) DO NOTHING
            """,
            [program.pk, day, at, CURSOR],
        )


def paid_through() -> dt.date | None:
    """The last day a payout has paid (every day up to it is closed), or None."""
    latest = PaidDay.objects.order_by("-day").values_list("day", flat=True).first()
    return latest


def day_closed_for(closed_at: dt.datetime, last_position: int) -> bool:
    """True when an order closed at ``closed_at`` whose record last changed at
    ``last_position`` belongs to a paid day and has not changed since: its
    matching (or its lack of one) is final."""
    day = closed_at.astimezone(dt.UTC).date()
    watermark = PaidDay.objects.filter(day__gte=day).aggregate(w=Min("upto_position"))["w"]
    return watermark is not None and last_position <= watermark


@dataclass
class _Tally:
    matched: int = 0
    compensation: Decimal = Decimal(0)
    released: int = 0
    released_amount: Decimal = Decimal(0)
    users_changed: int = 0

    def add(self, other: _Tally) -> None:
        self.matched += other.matched
        self.compensation += other.compensation
        self.released += other.released
        self.released_amount += other.released_amount
        self.users_changed += other.users_changed


def rematch_changed(at: dt.datetime) -> dict[str, Any]:
    """Match again every user whose closed orders changed since the last run
    (``ClosedOrder.last_position`` after the cursor) and who holds a voucher
    that can still serve or give back: chunks of ``USER_CHUNK`` users, each its
    own transaction. The caller holds ``CONSUMPTION_LOCK``."""
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
        # Users with a changed order who hold a voucher with money left, or
        # an open match (which may give money back).
        # (A union of two semi-joins: one OR of the two would be planned row
        # by row over every changed order.)
        cursor.execute(
            """
            WITH changed AS (
                SELECT DISTINCT user_id FROM ledger_closedorder
                WHERE last_position > %s AND last_position <= %s
            )
            SELECT user_id FROM changed u
            WHERE EXISTS (SELECT 1 FROM vouchers_voucher v WHERE v.user_id = u.user_id
                          AND v.remaining > 0 AND v.voided_at IS NULL)
            UNION
            SELECT user_id FROM changed u
            WHERE EXISTS (SELECT 1 FROM vouchers_consumption c WHERE c.user_id = u.user_id
                          AND c.paid_at IS NULL AND c.cancelled_at IS NULL)
            ORDER BY user_id
            """,
            [since, head],
        )
        users = [row[0] for row in cursor.fetchall()]
    last_paid = paid_through()
    # Orders closed from here on belong to days no payout has paid yet.
    open_from = (
        clock.start_of_day(last_paid + dt.timedelta(days=1))
        if last_paid is not None
        else dt.datetime.min.replace(tzinfo=dt.UTC)
    )
    tally = _Tally()
    for start in range(0, len(users), USER_CHUNK):
        chunk = _rematch_users(users[start : start + USER_CHUNK], open_from, at)
        with decimal.localcontext(EXACT):
            tally.add(chunk)
    ConsumptionCursor.objects.filter(name=CURSOR).update(position=head, updated_at=at)
    return {
        "orders_matched": tally.matched,
        "compensation": format_amount(tally.compensation),
        "matches_released": tally.released,
        "released_compensation": format_amount(tally.released_amount),
        "users": len(users),
        "users_changed": tally.users_changed,
    }


@dataclass(frozen=True)
class _Active:
    """An open match as stored: unpaid, not cancelled, not released."""

    consumption_id: int
    voucher_id: int
    closed_at: dt.datetime
    loss: Decimal
    amount: Decimal

    def same_as(self, match: rules.Match) -> bool:
        return (
            self.voucher_id == match.voucher_id
            and self.amount == match.amount
            and self.loss == match.order.loss
            and self.closed_at == match.order.closed_at
        )


@dataclass
class _User:
    vouchers: list[rules.VoucherState] = field(default_factory=list)
    stored: dict[int, Decimal] = field(default_factory=dict)  # voucher id -> its remaining now
    active: dict[str, _Active] = field(default_factory=dict)  # order id -> its open match
    orders: list[rules.LosingOrder] = field(default_factory=list)


@dataclass
class _Change:
    user_id: str
    released: list[tuple[str, _Active]]  # (order id, the match given up)
    new: list[rules.Match]


def _rematch_users(users: list[str], open_from: dt.datetime, at: dt.datetime) -> _Tally:
    # Binary parameters and results: thousands of keys, timestamps and amounts
    # per chunk cost more to quote and parse as text than the queries themselves.
    # Amounts in the exact context: 38-digit amounts exceed the default 28.
    with transaction.atomic(), binary_cursor() as cursor, decimal.localcontext(EXACT):
        # The users' open matches (a released match is cancelled too).
        cursor.execute(
            """
            SELECT c.id, c.user_id, c.voucher_id, c.order_id, c.closed_at, c.loss, c.amount
            FROM vouchers_consumption c
            WHERE c.user_id = ANY(%b::text[]) AND c.paid_at IS NULL AND c.cancelled_at IS NULL
            """,
            [users],
            binary=True,
        )
        state: dict[str, _User] = defaultdict(_User)
        open_amounts: dict[int, Decimal] = defaultdict(Decimal)
        for consumption_id, user_id, voucher_id, order_id, closed_at, loss, amount in cursor:
            state[user_id].active[order_id] = _Active(
                consumption_id, voucher_id, closed_at, loss, amount
            )
            open_amounts[voucher_id] += amount
        # Row locks on the vouchers that can still serve or give back (money
        # left, or an open match), ids in order: a concurrent grant or void
        # waits. (A payout changes matches, not vouchers: it and this run are
        # kept apart by CONSUMPTION_LOCK, see mark_day_paid.)
        cursor.execute(
            """
            SELECT v.id, v.user_id, v.arrived_at, v.expires_at, v.remaining, v.min_closing_amount
            FROM vouchers_voucher v
            WHERE v.user_id = ANY(%b::text[]) AND v.voided_at IS NULL
              AND (v.remaining > 0 OR v.id = ANY(%b::bigint[]))
            ORDER BY v.id FOR UPDATE
            """,
            [users, sorted(open_amounts)],
            binary=True,
        )
        vouchers = cursor.fetchall()
        if not vouchers and not open_amounts:
            return _Tally()
        # What each voucher can give the open orders: its face value less its
        # frozen matches, i.e. what is left plus what its open matches hold.
        for voucher_id, user_id, arrived, expires, left, minimum in vouchers:
            user = state[user_id]
            user.stored[voucher_id] = left
            user.vouchers.append(
                rules.VoucherState(
                    voucher_id, arrived, expires, left + open_amounts[voucher_id], minimum
                )
            )
        holders = sorted(u for u in state if state[u].vouchers)
        cursor.execute(
            "SELECT DISTINCT user_id FROM ledger_riskmeasure WHERE user_id = ANY(%b::text[])"
            " AND measure = %b",
            [holders, VOID_MEASURE],
            binary=True,
        )
        voided = {row[0] for row in cursor.fetchall()}
        # The open losing orders inside each holder's voucher windows (no
        # voucher serves an order closed outside all of them): per holder, a
        # range of the (user, close time) index, whatever the table's size.
        cursor.execute(
            """
            SELECT o.user_id, o.order_id, o.first_close_at, o.realized_pnl, o.closing_notional,
                o.market, o.origin, o.promo_funding, u.account_type
            FROM unnest(%b::text[], %b::timestamptz[], %b::timestamptz[]) AS w(user_id, lo, hi)
            CROSS JOIN LATERAL (
                SELECT * FROM ledger_closedorder o
                WHERE o.user_id = w.user_id AND o.first_close_at > w.lo
                  AND o.first_close_at < w.hi AND o.realized_pnl < 0
                OFFSET 0  -- planned per holder, not folded into one scan of the table
            ) o
            LEFT JOIN ledger_exchangeuser u ON u.user_id = o.user_id
            LEFT JOIN LATERAL (
                SELECT c.id, c.paid_at, c.cancelled_at FROM vouchers_consumption c
                WHERE c.user_id = o.user_id AND c.order_id = o.order_id
                  AND c.released_at IS NULL
            ) c ON true
            -- not frozen: a paid or cancelled match is final
            WHERE c.paid_at IS NULL AND c.cancelled_at IS NULL
              AND (o.first_close_at >= %b  -- a day no payout has paid yet
                   OR c.id IS NOT NULL  -- an open match waiting for its payout
                   -- a late order: changed after its day was paid
                   OR o.last_position > (
                       SELECT min(p.upto_position) FROM vouchers_paidday p
                       WHERE p.day >= (o.first_close_at AT TIME ZONE 'UTC')::date))
            """,
            [
                holders,
                [min(v.arrived_at for v in state[u].vouchers) for u in holders],
                [max(v.expires_at for v in state[u].vouchers) for u in holders],
                open_from,
            ],
            binary=True,
        )
        for user_id, order_id, closed_at, pnl, notional, market, origin, promo, kind in cursor:
            order = rules.LosingOrder(
                order_id, closed_at, pnl, notional, market, origin, tuple(promo or ())
            )
            if not rules.order_reasons(order, account_type=kind, vouchers_voided=user_id in voided):
                state[user_id].orders.append(order)

        changes: list[_Change] = []
        remaining: dict[int, Decimal] = {}
        for user_id in sorted(state):
            user = state[user_id]
            matches, after = rules.match_orders(user.orders, user.vouchers)
            kept = {
                m.order.order_id
                for m in matches
                if m.order.order_id in user.active and user.active[m.order.order_id].same_as(m)
            }
            change = _Change(
                user_id,
                [(o, old) for o, old in sorted(user.active.items()) if o not in kept],
                [m for m in matches if m.order.order_id not in kept],
            )
            if change.released or change.new:
                changes.append(change)
            for voucher in user.vouchers:
                left = after.get(voucher.voucher_id, voucher.remaining)
                if left != user.stored[voucher.voucher_id]:
                    remaining[voucher.voucher_id] = left
        if not changes:
            return _Tally()
        ids = _write(cursor, changes, remaining, at)
        # The log's append lock last, once every row lock of this chunk is held.
        append_domain_events(_events(changes, ids, at))
        return _Tally(
            matched=sum(len(c.new) for c in changes),
            compensation=sum((m.amount for c in changes for m in c.new), Decimal(0)),
            released=sum(len(c.released) for c in changes),
            released_amount=sum((old.amount for c in changes for _, old in c.released), Decimal(0)),
            users_changed=len(changes),
        )


def _write(
    cursor: Any, changes: list[_Change], remaining: dict[int, Decimal], at: dt.datetime
) -> dict[tuple[str, str], int]:
    """Release the replaced matches, insert the new ones, set the vouchers'
    remaining amounts. Returns the ids of the new rows a change event names,
    by (user, order)."""
    released = [old.consumption_id for c in changes for _, old in c.released]
    if released:
        cursor.execute(
            """
            UPDATE vouchers_consumption SET released_at = %b, cancelled_at = %b
            WHERE id = ANY(%b::bigint[])
              AND released_at IS NULL AND paid_at IS NULL AND cancelled_at IS NULL
            """,
            [at, at, released],
        )
        if cursor.rowcount != len(released):
            raise MatchingConflict(
                f"{len(released) - cursor.rowcount} matches were paid or cancelled while"
                " being matched again; nothing of this chunk was changed"
            )
    ids: dict[tuple[str, str], int] = {}
    # Rows a change event names get their ids first (a few); first matches
    # alone (most rows) take theirs from the column's default.
    named = [(c.user_id, m) for c in changes if c.released for m in c.new]
    if named:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence('vouchers_consumption', 'id'))"
            " FROM generate_series(1, %b)",
            [len(named)],
        )
        drawn = [row[0] for row in cursor.fetchall()]
        ids = {(user_id, m.order.order_id): i for i, (user_id, m) in zip(drawn, named, strict=True)}
    for with_ids, rows in (
        (True, named),
        (False, [(c.user_id, m) for c in changes if not c.released for m in c.new]),
    ):
        if not rows:
            continue
        columns = "voucher_id, user_id, order_id, closed_at, loss, amount, matched_at, payout_key"
        with cursor.copy(
            f"COPY vouchers_consumption ({'id, ' if with_ids else ''}{columns}) FROM STDIN"
        ) as copy:
            for user_id, m in rows:
                row = (
                    m.voucher_id,
                    user_id,
                    m.order.order_id,
                    m.order.closed_at,
                    m.order.loss,
                    m.amount,
                    at,
                    "",
                )
                copy.write_row((ids[(user_id, m.order.order_id)], *row) if with_ids else row)
    if remaining:
        voucher_ids = sorted(remaining)
        cursor.execute(
            """
            UPDATE vouchers_voucher v SET remaining = r.remaining
            FROM unnest(%b::bigint[], %b::numeric[]) AS r(id, remaining) WHERE v.id = r.id
            """,
            [voucher_ids, [remaining[i] for i in voucher_ids]],
        )
    return ids


def _match_body(
    consumption_id: int,
    order_id: str,
    voucher_id: int,
    closed_at: dt.datetime,
    loss: Decimal,
    amount: Decimal,
) -> dict[str, Any]:
    return {
        "consumption_id": consumption_id,
        "order_id": order_id,
        "voucher_id": voucher_id,
        "closed_at": closed_at.isoformat(),
        "loss": format_amount(loss),
        "amount": format_amount(amount),
    }


def _events(
    changes: list[_Change], ids: dict[tuple[str, str], int], at: dt.datetime
) -> list[DomainEvent]:
    """One event per user whose matches changed: what was released and what
    replaced it (with any first matches of the same run). A user's first
    matches alone are recorded by their rows, as they always were."""
    events = []
    for change in changes:
        if not change.released:
            continue
        released = [
            _match_body(
                old.consumption_id, order_id, old.voucher_id, old.closed_at, old.loss, old.amount
            )
            for order_id, old in change.released
        ]
        matched = [
            _match_body(
                ids[(change.user_id, m.order.order_id)],
                m.order.order_id,
                m.voucher_id,
                m.order.closed_at,
                m.order.loss,
                m.amount,
            )
            for m in change.new
        ]
        # A row is released once: the change is named by the first it releases.
        first = min(r["consumption_id"] for r in released)
        events.append(
            DomainEvent(
                event_id=f"{CHANGED}:{change.user_id}:{first}",
                type=CHANGED,
                occurred_at=at,
                user_id=change.user_id,
                data={"released": released, "matched": matched},
            )
        )
    return events
