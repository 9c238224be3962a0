"""Whenever consume_vouchers runs between the fills, the final matches are
those of RULES.md section 2 applied to the final fills alone.

The model below is written from the rules, independently of
``vouchers.rules``: an order is the sum of its closing fills; it is eligible
if it lost more than 1 USDT and no fill was promotion-funded; a user's
eligible orders, in close-time order, each take the earliest-arrived voucher
(ties: lowest id) that arrived strictly before the order's close, expires
strictly after it, whose minimum closing amount the order reaches and which
has money left, for min(loss, what is left)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.ingestion import ingest
from ledger.models import Event
from tests import events
from tests.vouchers.conftest import T0, grant, iso
from vouchers.jobs import consume_vouchers
from vouchers.models import Consumption, Voucher, VoucherProgram

Clock = Callable[[dt.datetime], dt.datetime]
USERS = ("u_1", "u_2")
ORDERS = ("a", "b", "c")
PNLS = ("-30", "-15", "40", "-0.6", "-1", "-25.5", "5", "-100", "0.4", "-7.25")
# Template: (face value, minimum closing amount); as in tests/vouchers/conftest.py.
TEMPLATES: dict[str, tuple[Decimal, Decimal | None]] = {
    "fifty": (Decimal(50), None),
    "thirty": (Decimal(30), None),
    "big-only": (Decimal(100), Decimal(5000)),
}
ARRIVALS = (T0, T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=2))
VALIDITY = dt.timedelta(days=7)
NOTIONAL = Decimal(1000)  # every fill's (tests.events.fill's default)


def close_time(order: str, slot: int) -> dt.datetime:
    """Slots every hour from 10:30, each order a few minutes apart: no two
    orders close at the same instant, some close before a voucher arrives."""
    return T0 + dt.timedelta(minutes=30 + 60 * slot + 7 * ORDERS.index(order))


steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("fill"),
            st.sampled_from(USERS),
            st.sampled_from(ORDERS),
            st.integers(0, 3),
            st.sampled_from(PNLS),
            st.sampled_from([False] * 7 + [True]),  # now and then a bonus-funded fill
        ),
        st.just(("run",)),
    ),
    min_size=1,
    max_size=16,
)
grants = st.lists(
    st.tuples(st.sampled_from(USERS), st.sampled_from(sorted(TEMPLATES)), st.integers(0, 2)),
    min_size=1,
    max_size=4,
)


def model(
    vouchers: list[tuple[int, str, dt.datetime, str]],
    fills: list[tuple[str, str, dt.datetime, str, bool]],
) -> tuple[dict[tuple[str, str], tuple[int, Decimal]], dict[int, Decimal]]:
    orders: dict[tuple[str, str], dict[str, Any]] = {}
    for user, order, at, pnl, promo in fills:
        o = orders.setdefault(
            (user, order), {"pnl": Decimal(0), "notional": Decimal(0), "at": at, "promo": False}
        )
        o["pnl"] += Decimal(pnl)
        o["notional"] += NOTIONAL
        o["at"] = min(o["at"], at)
        o["promo"] = o["promo"] or promo
    left = {voucher_id: TEMPLATES[template][0] for voucher_id, _, _, template in vouchers}
    matches: dict[tuple[str, str], tuple[int, Decimal]] = {}
    for user in USERS:
        mine = sorted((o["at"], order, o) for (u, order), o in orders.items() if u == user)
        held = sorted((arrived, vid, t) for vid, u, arrived, t in vouchers if u == user)
        for at, order, o in mine:
            loss = -o["pnl"]
            if loss <= 1 or o["promo"]:
                continue
            for arrived, voucher_id, template in held:
                minimum = TEMPLATES[template][1]
                if (
                    arrived < at < arrived + VALIDITY
                    and (minimum is None or o["notional"] >= minimum)
                    and left[voucher_id] > 0
                ):
                    amount = min(loss, left[voucher_id])
                    left[voucher_id] -= amount
                    matches[(user, order)] = (voucher_id, amount)
                    break
    return matches, left


@pytest.mark.django_db
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(granted=grants, script=steps)
def test_runs_at_any_points_end_where_the_rules_applied_to_the_final_fills_end(
    program: VoucherProgram, clock: Clock, granted: list[tuple[str, str, int]], script: list[Any]
) -> None:
    with transaction.atomic():
        vouchers = []
        for n, (user, template, slot) in enumerate(granted):
            clock(ARRIVALS[slot])
            vouchers.append((grant(user, template, f"prop-{n}"), user, ARRIVALS[slot], template))
        now = clock(T0 + dt.timedelta(hours=8))
        fills = []
        for step in script:
            now += dt.timedelta(minutes=1)
            if step[0] == "run":
                consume_vouchers(at=now)
                continue
            _, user, order, slot, pnl, promo = step
            at = close_time(order, slot)
            fills.append((user, order, at, pnl, promo))
            ingest(
                [
                    events.fill(
                        user,
                        order_id=order,
                        realized_pnl=pnl,
                        occurred_at=iso(at),
                        promo_funding=["bonus"] if promo else [],
                    )
                ],
                source="test",
            )
        consume_vouchers(at=now + dt.timedelta(minutes=1))

        expected, left = model(vouchers, fills)
        current = Consumption.objects.filter(released_at__isnull=True)
        assert {(c.user_id, c.order_id): (c.voucher_id, c.amount) for c in current} == expected
        assert dict(Voucher.objects.values_list("id", "remaining")) == left
        # Released matches owe nothing and were never paid.
        for c in Consumption.objects.filter(released_at__isnull=False):
            assert (c.cancelled_at, c.paid_at) == (c.released_at, None)
        # Every release is told by exactly one event, with the matches that
        # replaced it in the same run.
        told = []
        for event in Event.objects.filter(type="voucher.matches_changed"):
            told += [gone["consumption_id"] for gone in event.data["released"]]
            for new in event.data["matched"]:
                row = Consumption.objects.get(pk=new["consumption_id"])
                assert (row.user_id, row.order_id, row.matched_at) == (
                    event.user_id,
                    new["order_id"],
                    event.occurred_at,
                )
        released = Consumption.objects.filter(released_at__isnull=False)
        assert sorted(told) == sorted(c.pk for c in released)
        transaction.set_rollback(True)
