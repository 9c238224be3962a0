"""Consumption by arrival time and next-day payout, with numbers worked out by hand."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.db.models import Sum

from jobs.runner import JobFailed, run_job
from ledger.ingestion import ingest
from ledger.models import Event, PayoutInstruction
from tests import events
from tests.digests import without_digests
from tests.vouchers.conftest import T0, close, grant, make_program
from vouchers.jobs import consume_vouchers, expire_vouchers, pay_voucher_compensation
from vouchers.models import Consumption, Voucher
from vouchers.services import VoucherRefusal

Clock = Callable[[dt.datetime], dt.datetime]
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)
DAY = dt.date(2026, 11, 20)


def _scenario(clock: Clock) -> tuple[int, int]:
    clock(T0)
    v1 = grant("u_1", "fifty", "g1")
    clock(T0 + H)
    v2 = grant("u_1", "thirty", "g2")
    clock(T0 + 5 * H)
    close("u_1", "o1", at=T0 - M, loss="20")  # before v1 arrived
    close("u_1", "o2", at=T0 + 30 * M, loss="1")  # exactly 1: too small
    close("u_1", "o3", at=T0 + 40 * M, loss="1.01")  # v1: 1.01
    close("u_1", "o4", at=T0 + 50 * M, loss="100", origin="copy")  # copy trade
    close("u_1", "o5", at=T0 + 2 * H, loss="70")  # v1 first (earliest arrival): min(70, 48.99)
    close("u_1", "o6", at=T0 + 3 * H, loss="12", promo_funding=["bonus"])  # bonus-funded
    close("u_1", "o7", at=T0 + 4 * H, loss="12")  # v1 used up: v2, 12
    close("u_sub", "o8", at=T0 + 4 * H, loss="12")  # a sub account holds no voucher anyway
    return v1, v2


def test_each_order_consumes_the_earliest_usable_voucher(program: Any, clock: Clock) -> None:
    v1, v2 = _scenario(clock)
    result = consume_vouchers(at=T0 + 5 * H)
    assert (result["orders_matched"], result["compensation"]) == (3, "62")
    assert sorted(Consumption.objects.values_list("order_id", "voucher_id", "amount")) == [
        ("o3", v1, Decimal("1.01")),
        ("o5", v1, Decimal("48.99")),
        ("o7", v2, Decimal("12")),
    ]
    assert Voucher.objects.get(pk=v1).remaining == 0
    assert Voucher.objects.get(pk=v2).remaining == Decimal("18")
    # Nothing new: nothing matched again.
    assert consume_vouchers(at=T0 + 6 * H)["orders_matched"] == 0


def test_compensation_is_paid_on_the_next_utc_day_exactly_once(program: Any, clock: Clock) -> None:
    _scenario(clock)
    consume_vouchers(at=T0 + 5 * H)
    clock(dt.datetime(2026, 11, 20, 23, 59, 59, tzinfo=dt.UTC))
    with pytest.raises(VoucherRefusal, match="paid on 2026-11-21, not before"):
        pay_voucher_compensation(day=DAY)
    clock(dt.datetime(2026, 11, 21, 0, 30, tzinfo=dt.UTC))
    assert without_digests(pay_voucher_compensation(day=DAY)) == {"users_paid": 1, "amount": "62"}
    payout = PayoutInstruction.objects.get()
    assert (payout.user_id, payout.account_kind, payout.amount, payout.idempotency_key) == (
        "u_1",
        "spot",
        Decimal("62"),
        "voucher:welcome:u_1:2026-11-20:spot:USDT",
    )
    assert payout.created_at == dt.datetime(2026, 11, 21, 0, 30, tzinfo=dt.UTC)
    for _ in range(3):
        assert pay_voucher_compensation(day=DAY) == {"users_paid": 0, "amount": "0"}
        consume_vouchers(at=dt.datetime(2026, 11, 21, 1, tzinfo=dt.UTC))
    assert PayoutInstruction.objects.count() == 1
    assert set(Consumption.objects.values_list("payout_key", flat=True)) == {
        "voucher:welcome:u_1:2026-11-20"
    }


def test_a_late_order_is_matched_when_processed_and_paid_the_next_day(
    program: Any, clock: Clock
) -> None:
    _, v2 = _scenario(clock)
    consume_vouchers(at=T0 + 5 * H)
    clock(dt.datetime(2026, 11, 21, 0, 30, tzinfo=dt.UTC))
    pay_voucher_compensation(day=DAY)
    # Closed on the 20th, delivered on the 21st after the 20th was paid.
    close("u_1", "late", at=T0 + 10 * H, loss="5")
    assert consume_vouchers(at=dt.datetime(2026, 11, 21, 1, tzinfo=dt.UTC))["orders_matched"] == 1
    assert Consumption.objects.get(order_id="late").voucher_id == v2
    assert pay_voucher_compensation(day=DAY) == {"users_paid": 0, "amount": "0"}
    clock(dt.datetime(2026, 11, 22, 0, 30, tzinfo=dt.UTC))
    assert without_digests(pay_voucher_compensation(day=dt.date(2026, 11, 21))) == {
        "users_paid": 1,
        "amount": "5",
    }
    assert Consumption.objects.get(order_id="late").payout_key == "voucher:welcome:u_1:2026-11-21"


def test_threshold_and_expiry(program: Any, clock: Clock) -> None:
    clock(T0)
    big = grant("u_2", "big-only", "g-big")
    clock(T0 + 8 * 24 * H)
    close("u_2", "small", at=T0 + H, loss="40", notional="4999.99")  # below the 5000 minimum
    close("u_2", "large", at=T0 + 2 * H, loss="40", notional="5000")
    close("u_2", "too-late", at=T0 + 7 * 24 * H, loss="40", notional="9000")  # at expiry
    consume_vouchers(at=T0 + 8 * 24 * H)
    assert list(Consumption.objects.values_list("order_id", "amount")) == [("large", Decimal("40"))]
    assert expire_vouchers(at=T0 + 8 * 24 * H) == {"vouchers_expired": 1}
    assert Voucher.objects.get(pk=big).expired_at == T0 + 7 * 24 * H
    assert expire_vouchers(at=T0 + 9 * 24 * H) == {"vouchers_expired": 0}


def test_void_vouchers_voids_and_cancels_unpaid_compensation(program: Any, clock: Clock) -> None:
    clock(T0)
    voucher = grant("u_2", "fifty", "g-risk")
    close("u_2", "r1", at=T0 + H, loss="10")
    consume_vouchers(at=T0 + 2 * H)
    ingest(
        [events.risk("u_2", measures=["void_vouchers"], occurred_at="2026-11-20T13:00:00Z")],
        source="test",
    )
    assert consume_vouchers(at=T0 + 3 * H)["users_voided"] == 1
    assert Voucher.objects.get(pk=voucher).voided_at == T0 + 3 * H
    assert Consumption.objects.get(order_id="r1").cancelled_at == T0 + 3 * H
    voided = Event.objects.get(type="voucher.voided")
    assert (voided.user_id, voided.data["cancelled_amount"]) == ("u_2", "10")
    clock(dt.datetime(2026, 11, 21, 1, tzinfo=dt.UTC))
    assert pay_voucher_compensation(day=DAY) == {"users_paid": 0, "amount": "0"}
    close("u_2", "r2", at=T0 + 4 * H, loss="10")
    assert consume_vouchers(at=T0 + 20 * H)["orders_matched"] == 0


def test_a_payout_the_funding_cannot_cover_pays_nothing(db: None, clock: Clock) -> None:
    ingest([events.registered("u_1", occurred_at="2026-01-01T00:00:00Z")], source="test")
    program = make_program(funding="10")
    clock(T0)
    grant("u_1", "fifty", "g1")
    close("u_1", "o1", at=T0 + H, loss="25")
    consume_vouchers(at=T0 + 2 * H)
    clock(dt.datetime(2026, 11, 21, 1, tzinfo=dt.UTC))
    with pytest.raises(VoucherRefusal, match="nothing was paid"):
        pay_voucher_compensation(day=DAY)
    program.refresh_from_db()
    assert "exceeds its funding of 10" in program.budget_alert
    assert PayoutInstruction.objects.count() == 0
    assert Consumption.objects.get().paid_at is None


def test_the_job_runner_refuses_an_early_day_and_records_it(program: Any, clock: Clock) -> None:
    clock(dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC))
    with pytest.raises(JobFailed):
        run_job("pay_voucher_compensation", day=DAY)


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_never_consume_a_voucher_twice(clock: Clock) -> None:
    from tests.vouchers.conftest import iso

    ingest(
        [events.registered(f"u_{n}", occurred_at="2026-01-01T00:00:00Z") for n in range(40)],
        source="test",
    )
    make_program()
    clock(T0)
    from vouchers import services

    services.grant_vouchers(
        [
            services.Grant(f"g{n}-{k}", f"u_{n}", "welcome", "thirty")
            for n in range(40)
            for k in range(2)
        ],
        source="test",
    )
    ingest(
        [
            events.fill(
                f"u_{n}",
                order_id=f"o{n}-{k}",
                realized_pnl="-25",
                occurred_at=iso(T0 + (k + 1) * M),
            )
            for n in range(40)
            for k in range(4)
        ],
        source="test",
    )
    barrier = threading.Barrier(2)
    results: list[dict[str, Any]] = []

    def run(minutes: int) -> None:
        try:
            barrier.wait()
            results.append(
                run_job("consume_vouchers", at=T0 + dt.timedelta(minutes=minutes)).counts
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(m,)) for m in (10, 11)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    consume_vouchers(at=T0 + 12 * M)  # whatever the race left
    # Each user: two 30 USDT vouchers, four orders losing 25 -> 25, 5 (from the first),
    # 25, 5 (from the second): 60 per user, each voucher exactly used up.
    per_voucher = Consumption.objects.values("voucher_id").annotate(total=Sum("amount"))
    assert {row["total"] for row in per_voucher} == {Decimal(30)}
    assert Consumption.objects.count() == 160
    assert Consumption.objects.aggregate(s=Sum("amount"))["s"] == Decimal(2400)
    assert not Voucher.objects.filter(remaining__gt=0).exists()
