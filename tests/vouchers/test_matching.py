"""Matches follow an order's fills until its day is paid, whenever the job runs;
a paid match is final; every change is a release and a new row, with an event.
Numbers worked out by hand."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import IntegrityError, connection, transaction
from django.test import Client
from rest_framework.test import APIClient

from ledger.ingestion import ingest
from ledger.models import Event, PayoutInstruction
from tests import events
from tests.digests import without_digests
from tests.ledger.conftest import user_jwt
from tests.vouchers.conftest import T0, grant, iso
from vouchers import matching, selectors, services
from vouchers.jobs import consume_vouchers, pay_voucher_compensation
from vouchers.models import Consumption, ConsumptionCursor, PaidDay, Voucher, VoucherProgram

Clock = Callable[[dt.datetime], dt.datetime]
M = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)
DAY = dt.date(2026, 11, 20)
NEXT = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)  # the start of DAY + 1


def fill(user: str, order: str, *, at: dt.datetime, pnl: str, **kw: Any) -> None:
    """One closing fill of ``order`` with this realized PnL."""
    ingest(
        [events.fill(user, order_id=order, realized_pnl=pnl, occurred_at=iso(at), **kw)],
        source="test",
    )


def hundred(program: VoucherProgram, user: str = "u_1", key: str = "g-100") -> int:
    services.save_template(
        program=program, code="hundred", face_value=Decimal(100), validity_days=7
    )
    return grant(user, "hundred", key)


def active() -> dict[str, tuple[int, Decimal]]:
    return {
        c.order_id: (c.voucher_id, c.amount)
        for c in Consumption.objects.filter(released_at__isnull=True)
    }


def remaining(voucher_id: int) -> Decimal:
    return Voucher.objects.get(pk=voucher_id).remaining


def changes(user: str = "u_1") -> list[dict[str, Any]]:
    return [
        e.data
        for e in Event.objects.filter(type="voucher.matches_changed", user_id=user).order_by(
            "position"
        )
    ]


def amounts(matches: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["order_id"], m["amount"]) for m in matches]


def _user(user: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {user_jwt(user)}")
    return client


def pay_day(program: VoucherProgram, day: dt.date, clock: Clock) -> None:
    """The payout of ``day`` at 00:30 the day after, its day marked paid first
    (as the payout does in its transaction)."""
    now = clock(clock_start(day + dt.timedelta(days=1)) + 30 * M)
    with transaction.atomic():
        matching.mark_day_paid(program, day, now)
    pay_voucher_compensation(day=day)


def clock_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


# --- the two findings ------------------------------------------------------------------


def test_an_order_that_stops_losing_gives_its_voucher_back(
    program: VoucherProgram, clock: Clock
) -> None:
    voucher = hundred(program)
    fill("u_1", "o1", at=T0 + H, pnl="-30")
    assert consume_vouchers(at=T0 + H + M)["orders_matched"] == 1
    assert (active(), remaining(voucher)) == ({"o1": (voucher, Decimal(30))}, Decimal(70))
    # The closing fill that follows wins 40: the order made +10, not a losing order.
    fill("u_1", "o1", at=T0 + H + 5 * M, pnl="40")
    result = consume_vouchers(at=T0 + H + 6 * M)
    assert (result["orders_matched"], result["matches_released"]) == (0, 1)
    assert result["released_compensation"] == "30"
    assert active() == {}
    assert remaining(voucher) == Decimal(100)
    # The match is kept as history, released, owing nothing.
    gone = Consumption.objects.get()
    assert (gone.amount, gone.released_at, gone.cancelled_at, gone.paid_at) == (
        Decimal(30),
        T0 + H + 6 * M,
        T0 + H + 6 * M,
        None,
    )
    assert selectors.payout_status(gone) == "released"
    assert selectors.program_budget(program).owed == 0
    # The change is an event (a first match is recorded by its row alone).
    assert [(amounts(c["released"]), amounts(c["matched"])) for c in changes()] == [
        ([("o1", "30")], [])
    ]
    clock(NEXT + 30 * M)
    pay_voucher_compensation(day=DAY)
    assert PayoutInstruction.objects.count() == 0


def test_a_loss_that_deepens_is_compensated_in_full(program: VoucherProgram, clock: Clock) -> None:
    voucher = hundred(program)
    fill("u_1", "o1", at=T0 + H, pnl="-30")
    consume_vouchers(at=T0 + H + M)
    fill("u_1", "o1", at=T0 + H + 5 * M, pnl="-15")
    result = consume_vouchers(at=T0 + H + 6 * M)
    assert (result["orders_matched"], result["compensation"], result["matches_released"]) == (
        1,
        "45",
        1,
    )
    assert active() == {"o1": (voucher, Decimal(45))}
    assert remaining(voucher) == Decimal(55)
    current = Consumption.objects.get(released_at__isnull=True)
    assert (current.loss, current.closed_at, current.matched_at) == (
        Decimal(45),
        T0 + H,
        T0 + H + 6 * M,
    )
    assert Consumption.objects.filter(released_at=T0 + H + 6 * M, amount=30).count() == 1
    assert [(amounts(c["released"]), amounts(c["matched"])) for c in changes()][-1] == (
        [("o1", "30")],
        [("o1", "45")],
    )
    clock(NEXT + 30 * M)
    assert without_digests(pay_voucher_compensation(day=DAY)) == {"users_paid": 1, "amount": "45"}
    assert PayoutInstruction.objects.get().amount == Decimal(45)


def test_the_result_does_not_depend_on_when_the_job_ran(
    program: VoucherProgram, clock: Clock
) -> None:
    """Two orders, two vouchers: run after every fill or only at the end, the
    same matches. o1 closes first; its loss grows past the 30 voucher."""
    clock(T0)
    thirty = grant("u_1", "thirty", "g30")
    clock(T0 + M)
    fifty = grant("u_1", "fifty", "g50")
    fill("u_1", "o1", at=T0 + H, pnl="-20")  # thirty: 20
    consume_vouchers(at=T0 + H + M)
    fill("u_1", "o2", at=T0 + 2 * H, pnl="-25")  # thirty: 10 left, then... 10
    consume_vouchers(at=T0 + 2 * H + M)
    assert active() == {"o1": (thirty, Decimal(20)), "o2": (thirty, Decimal(10))}
    fill("u_1", "o1", at=T0 + 3 * H, pnl="-20")  # o1 now loses 40: thirty gives 30
    consume_vouchers(at=T0 + 3 * H + M)
    # o1 takes all of thirty; o2 (later) moves to fifty for its full 25.
    assert active() == {"o1": (thirty, Decimal(30)), "o2": (fifty, Decimal(25))}
    assert (remaining(thirty), remaining(fifty)) == (Decimal(0), Decimal(25))
    last = changes()[-1]
    assert sorted(amounts(last["released"])) == [("o1", "20"), ("o2", "10")]
    assert sorted(amounts(last["matched"])) == [("o1", "30"), ("o2", "25")]
    # An unchanged order's match is left alone: a fill of another user changes nothing here.
    fill("u_2", "x", at=T0 + 4 * H, pnl="-3")
    consume_vouchers(at=T0 + 4 * H + M)
    assert Consumption.objects.filter(user_id="u_1").count() == 4


# --- paid days --------------------------------------------------------------------------


def test_a_paid_match_is_final_and_the_explanation_says_so(
    program: VoucherProgram, clock: Clock
) -> None:
    voucher = hundred(program)
    fill("u_1", "o1", at=T0 + H, pnl="-30")
    consume_vouchers(at=T0 + H + M)
    pay_day(program, DAY, clock)
    # Fills of the paid order after its payout: it now made +10, then +60.
    fill("u_1", "o1", at=NEXT + 40 * M, pnl="40")
    consume_vouchers(at=NEXT + 41 * M)
    fill("u_1", "o1", at=NEXT + 50 * M, pnl="50")
    consume_vouchers(at=NEXT + 51 * M)
    paid = Consumption.objects.get()
    assert (paid.amount, paid.loss, paid.released_at) == (Decimal(30), Decimal(30), None)
    assert paid.paid_at == NEXT + 30 * M
    assert remaining(voucher) == Decimal(70)
    body = _user("u_1").get("/api/v1/vouchers/orders/o1").json()
    assert (body["consumed"], body["payout"], body["compensation"], body["final"]) == (
        True,
        "paid",
        "30",
        True,
    )
    assert "final" in body["note"] and "later fills" in body["note"]
    assert body["released"] == []


def test_late_orders_of_a_paid_day_are_matched_with_the_vouchers_as_they_stand(
    program: VoucherProgram, clock: Clock
) -> None:
    voucher = hundred(program)
    fill("u_1", "o1", at=T0 + H, pnl="-30")  # 30
    fill("u_1", "o2", at=T0 + 2 * H, pnl="5")  # not a loss (yet)
    fill("u_1", "tiny", at=T0 + 3 * H, pnl="-0.5")  # too small
    consume_vouchers(at=T0 + 3 * H + M)
    pay_day(program, DAY, clock)
    mark = PaidDay.objects.get()
    assert (mark.day, mark.paid_at) == (DAY, NEXT + 30 * M)
    assert mark.upto_position == ConsumptionCursor.objects.get().position
    assert matching.paid_through() == DAY
    # o2 loses after all (+5 - 25 = -20), after its day was paid: a late order.
    fill("u_1", "o2", at=NEXT + 40 * M, pnl="-25")
    # o3 closed on the paid day but reaches us only now: a late order too.
    fill("u_1", "o3", at=T0 + 5 * H, pnl="-10")
    result = consume_vouchers(at=NEXT + 41 * M)
    assert (result["orders_matched"], result["compensation"]) == (2, "30")
    assert active() == {
        "o1": (voucher, Decimal(30)),
        "o2": (voucher, Decimal(20)),
        "o3": (voucher, Decimal(10)),
    }
    assert remaining(voucher) == Decimal(40)
    # An order of the paid day seen before the payout and unchanged since stays as it was.
    tiny = _user("u_1").get("/api/v1/vouchers/orders/tiny").json()
    assert (tiny["reasons"], tiny["final"]) == (["loss_too_small"], True)
    # The late matches are paid with the next day's payout, under its key.
    pay_day(program, DAY + dt.timedelta(days=1), clock)
    assert sorted(
        Consumption.objects.filter(paid_at__isnull=False).values_list("order_id", "payout_key")
    ) == [
        ("o1", "voucher:welcome:u_1:2026-11-20"),
        ("o2", "voucher:welcome:u_1:2026-11-21"),
        ("o3", "voucher:welcome:u_1:2026-11-21"),
    ]
    latest = PayoutInstruction.objects.order_by("created_at").last()
    assert latest is not None and latest.amount == Decimal(30)


def test_a_late_order_comes_before_open_orders_of_later_days(
    program: VoucherProgram, clock: Clock
) -> None:
    """50 voucher: o1 (day D) 40, paid. o5 (D+1) takes the last 10. o6 closed on
    D before o5, delivered late: in close-time order it takes 8 and o5 keeps 2."""
    clock(T0)
    voucher = grant("u_1", "fifty", "g50")
    fill("u_1", "o1", at=T0 + H, pnl="-40")
    consume_vouchers(at=T0 + H + M)
    pay_day(program, DAY, clock)
    fill("u_1", "o5", at=NEXT + H, pnl="-10")
    consume_vouchers(at=NEXT + H + M)
    assert active()["o5"] == (voucher, Decimal(10))
    fill("u_1", "o6", at=T0 + 12 * H, pnl="-8")  # 22:00 on D
    consume_vouchers(at=NEXT + 2 * H)
    assert active() == {
        "o1": (voucher, Decimal(40)),
        "o5": (voucher, Decimal(2)),
        "o6": (voucher, Decimal(8)),
    }
    assert remaining(voucher) == 0


def test_a_paid_day_keeps_an_unmatched_order_unmatched(
    program: VoucherProgram, clock: Clock
) -> None:
    """Day D marked paid while o1's match was left unpaid (its program's payout
    refused, say): o1's match still follows its fills, but o2, unmatched when D
    was paid and unchanged since, stays unmatched, and is told why."""
    clock(T0)
    voucher = grant("u_1", "fifty", "g50")
    fill("u_1", "o1", at=T0 + H, pnl="-50")
    fill("u_1", "o2", at=T0 + 2 * H, pnl="-20")  # nothing left for it
    consume_vouchers(at=T0 + 2 * H + M)
    assert active() == {"o1": (voucher, Decimal(50))}
    clock(NEXT + 30 * M)
    with transaction.atomic():
        matching.mark_day_paid(program, DAY, NEXT + 30 * M)
    fill("u_1", "o1", at=NEXT + 40 * M, pnl="60")  # o1 made +10 in the end
    consume_vouchers(at=NEXT + 41 * M)
    assert active() == {}
    assert remaining(voucher) == Decimal(50)
    body = _user("u_1").get("/api/v1/vouchers/orders/o2").json()
    assert (body["consumed"], body["final"], body["reasons"]) == (False, True, ["day_paid"])
    assert body["vouchers"] == [{"voucher_id": voucher, "reason": "usable now"}]
    o1 = _user("u_1").get("/api/v1/vouchers/orders/o1").json()
    assert (o1["consumed"], o1["reasons"], o1["final"]) == (False, ["not_a_loss"], False)
    assert [(r["voucher_id"], r["compensation"]) for r in o1["released"]] == [(voucher, "50")]


def test_the_first_mark_of_a_day_stays(program: VoucherProgram) -> None:
    with transaction.atomic():
        matching.mark_day_paid(program, DAY, NEXT)
        matching.mark_day_paid(program, DAY, NEXT + H)  # the first mark stays
    assert list(PaidDay.objects.values_list("day", "paid_at")) == [(DAY, NEXT)]


def test_a_released_match_can_never_be_recorded_paid(program: VoucherProgram, clock: Clock) -> None:
    hundred(program)
    fill("u_1", "o1", at=T0 + H, pnl="-30")
    consume_vouchers(at=T0 + H + M)
    fill("u_1", "o1", at=T0 + 2 * H, pnl="-5")
    consume_vouchers(at=T0 + 2 * H + M)
    released = Consumption.objects.get(released_at__isnull=False)
    # What a payout that read the match before its release would try last.
    with pytest.raises(IntegrityError), transaction.atomic():
        Consumption.objects.filter(pk=released.pk).update(paid_at=NEXT)
    # One current match per order, whatever writes it.
    current = Consumption.objects.get(released_at__isnull=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        Consumption.objects.create(
            voucher_id=current.voucher_id,
            user_id="u_1",
            order_id="o1",
            closed_at=current.closed_at,
            loss=current.loss,
            amount=Decimal(1),
            matched_at=NEXT,
        )


@pytest.mark.django_db(transaction=True)
def test_a_run_while_a_payout_marks_its_day_is_skipped(clock: Clock) -> None:
    from tests.vouchers.conftest import make_program

    program = make_program()
    marked = threading.Event()
    done = threading.Event()

    def payout() -> None:
        try:
            with transaction.atomic():
                matching.mark_day_paid(program, DAY, NEXT)
                marked.set()
                done.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=payout)
    thread.start()
    try:
        assert marked.wait(10)
        assert "skipped" in consume_vouchers(at=NEXT + M)
    finally:
        done.set()
        thread.join()
    assert "skipped" not in consume_vouchers(at=NEXT + 2 * M)


# --- what users and ops see ----------------------------------------------------------------


def test_the_coupon_center_shows_the_matching_as_it_now_stands(
    program: VoucherProgram, clock: Clock
) -> None:
    clock(T0)
    voucher = grant("u_1", "fifty", "g50")
    fill("u_1", "o1", at=T0 + H, pnl="-50")
    consume_vouchers(at=T0 + H + M)
    client = _user("u_1")
    assert client.get("/api/v1/vouchers").json()["results"] == []
    history = client.get("/api/v1/vouchers", {"status": "history"}).json()["results"]
    assert [(v["id"], v["remaining"], v["status"]) for v in history] == [(voucher, "0", "used")]
    fill("u_1", "o1", at=T0 + H + 10 * M, pnl="38")  # o1 lost 12 in the end
    consume_vouchers(at=T0 + H + 11 * M)
    listed = client.get("/api/v1/vouchers").json()["results"]
    assert [(v["id"], v["remaining"], v["status"]) for v in listed] == [(voucher, "38", "active")]
    detail = client.get(f"/api/v1/vouchers/{voucher}").json()
    assert [
        (o["order_id"], o["loss"], o["compensation"], o["payout"]) for o in detail["orders"]
    ] == [("o1", "12", "12", "pending")]
    why = client.get("/api/v1/vouchers/orders/o1").json()
    assert (why["compensation"], why["loss"], why["final"]) == ("12", "12", False)
    assert [r["compensation"] for r in why["released"]] == ["50"]


def test_ops_see_released_matches_apart(program: VoucherProgram, clock: Clock) -> None:
    hundred(program)
    fill("u_1", "o-kept", at=T0 + H, pnl="-10")
    fill("u_1", "o-moved", at=T0 + 2 * H, pnl="-30")
    consume_vouchers(at=T0 + 2 * H + M)
    fill("u_1", "o-moved", at=T0 + 3 * H, pnl="-15")
    consume_vouchers(at=T0 + 3 * H + M)
    user = User.objects.create_user("ops-3", password="a-long-password-1", is_staff=True)
    user.groups.add(Group.objects.get(name="operator"))
    client = Client()
    client.force_login(user)
    released = client.get("/admin/vouchers/consumption/", {"state": "released"})
    assert released.status_code == 200
    assert b"o-moved" in released.content and b"o-kept" not in released.content
    current = client.get("/admin/vouchers/consumption/", {"state": "current"})
    assert b"o-moved" in current.content and b"o-kept" in current.content
