"""Each payable item is paid at most once, whatever asks to pay it (ledger.payables)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction

from jobs.models import JobException
from ledger.bookkeeping import (
    Leg,
    fund_account,
    open_funding_account,
    post_transaction,
    user_account,
)
from ledger.models import PaidItem, PayoutInstruction
from ledger.verification import verify_ledger
from tests.digests import without_digests
from tests.vouchers.conftest import close, grant
from vouchers import services
from vouchers.jobs import consume_vouchers, pay_voucher_compensation
from vouchers.models import Consumption, VoucherProgram

D = dt.date(2026, 11, 20)
Clock = Callable[[dt.datetime], dt.datetime]


@pytest.fixture
def matched(program: VoucherProgram, clock: Clock) -> VoucherProgram:
    """u_1 holds a 50 voucher; orders closed on D (loss 12) and D+1 (loss 7)."""
    grant("u_1", "fifty", "g1")
    close("u_1", "o1", at=dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC), loss="12")
    close("u_1", "o2", at=dt.datetime(2026, 11, 21, 12, tzinfo=dt.UTC), loss="7")
    clock(dt.datetime(2026, 11, 21, 13, tzinfo=dt.UTC))
    consume_vouchers(at=dt.datetime(2026, 11, 21, 13, tzinfo=dt.UTC))
    assert sorted(Consumption.objects.values_list("order_id", "amount")) == [
        ("o1", Decimal(12)),
        ("o2", Decimal(7)),
    ]
    return program


def test_a_later_day_pays_what_an_earlier_one_left_and_the_earlier_one_then_pays_nothing(
    matched: VoucherProgram, clock: Clock
) -> None:
    clock(dt.datetime(2026, 11, 22, 0, 30, tzinfo=dt.UTC))
    # The run for D+1 comes first (a catch-up out of order): it pays D's match too.
    assert without_digests(pay_voucher_compensation(day=D + dt.timedelta(days=1))) == {
        "users_paid": 1,
        "amount": "19",
    }
    assert pay_voucher_compensation(day=D) == {"users_paid": 0, "amount": "0"}
    assert list(PayoutInstruction.objects.values_list("user_id", "amount")) == [
        ("u_1", Decimal(19))
    ]
    assert PaidItem.objects.filter(payer="voucher.consumption").count() == 2
    assert verify_ledger() == []


def test_the_database_refuses_to_pay_an_item_twice(matched: VoucherProgram, clock: Clock) -> None:
    clock(dt.datetime(2026, 11, 22, 0, 30, tzinfo=dt.UTC))
    pay_voucher_compensation(day=D + dt.timedelta(days=1))
    paid = PaidItem.objects.get(item_id=Consumption.objects.get(order_id="o1").pk)
    with pytest.raises(IntegrityError, match="paiditem_once"), transaction.atomic():
        PaidItem.objects.create(
            payer=paid.payer,
            item_id=paid.item_id,
            amount=paid.amount,
            transaction_id=paid.transaction_id,
            user_id=paid.user_id,
            paid_at=paid.paid_at,
        )
    with pytest.raises(Exception, match=r"append-only|permission denied"), transaction.atomic():
        PaidItem.objects.filter(pk=paid.pk).delete()


def test_verify_ledger_names_a_double_payment_made_by_hand(
    matched: VoucherProgram, clock: Clock
) -> None:
    clock(dt.datetime(2026, 11, 22, 0, 30, tzinfo=dt.UTC))
    pay_voucher_compensation(day=D + dt.timedelta(days=1))
    assert verify_ledger() == []
    # Someone pays u_1's compensation again, by hand, around the jobs.
    funding = open_funding_account(program="vouchers:welcome", asset="USDT")
    again = post_transaction(
        idempotency_key="voucher:welcome:u_1:by-hand",
        kind="voucher.compensation",
        legs=[
            Leg(funding, Decimal(-19)),
            Leg(user_account(user_id="u_1", kind="spot", asset="USDT"), Decimal(19)),
        ],
        cause={"by": "hand"},
    )
    breaches = {b.check: b.rows for b in verify_ledger()}
    assert breaches == {
        "credit_pays_items": [
            (again.transaction.pk, "voucher.compensation", "voucher:welcome:u_1:by-hand")
        ]
    }
    with pytest.raises(CommandError, match="1 ledger invariant"):
        call_command("verify_ledger")


def test_verify_ledger_names_a_credit_that_does_not_match_its_items(
    matched: VoucherProgram, clock: Clock
) -> None:
    clock(dt.datetime(2026, 11, 22, 0, 30, tzinfo=dt.UTC))
    pay_voucher_compensation(day=D + dt.timedelta(days=1))
    tx = PaidItem.objects.first()
    assert tx is not None
    # An item recorded against the credit without being paid by it: 19 credited, 19 + 5 owed.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ledger_paiditem (payer, item_id, amount, transaction_id, user_id, paid_at)"
            " VALUES ('voucher.consumption', 999999, 5, %s, 'u_1', now())",
            [tx.transaction_id],
        )
    breaches = {b.check: b.rows for b in verify_ledger()}
    assert breaches == {
        "credit_equals_its_items": [(tx.transaction_id, Decimal(24), Decimal(19))],
        "paid_item_exists": [("voucher.consumption", 999999)],
    }


@pytest.mark.django_db(transaction=True)
def test_the_database_refuses_an_item_paid_by_an_earlier_credit(
    matched: VoucherProgram, clock: Clock
) -> None:
    clock(dt.datetime(2026, 11, 22, 0, 30, tzinfo=dt.UTC))
    pay_voucher_compensation(day=D + dt.timedelta(days=1))  # committed
    paid = PaidItem.objects.first()
    assert paid is not None
    with (
        pytest.raises(Exception, match="not created in this database transaction"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT INTO ledger_paiditem (payer, item_id, amount, transaction_id, user_id, paid_at)"
            " VALUES ('voucher.consumption', 999999, 5, %s, 'u_1', now())",
            [paid.transaction_id],
        )
    assert verify_ledger() == []


def test_an_unfunded_program_does_not_stop_another(matched: VoucherProgram, clock: Clock) -> None:
    # A second program with no money: its user's 30 is refused, u_1's 19 is paid.
    empty = services.save_program(slug="autumn", title="Autumn vouchers")
    services.save_template(program=empty, code="thirty", face_value=Decimal(30), validity_days=7)
    services.grant_vouchers([services.Grant("g2", "u_2", "autumn", "thirty")], source="test")
    close("u_2", "o3", at=dt.datetime(2026, 11, 21, 14, tzinfo=dt.UTC), loss="40")
    consume_vouchers(at=dt.datetime(2026, 11, 21, 15, tzinfo=dt.UTC))
    clock(dt.datetime(2026, 11, 22, 0, 30, tzinfo=dt.UTC))
    with pytest.raises(
        services.VoucherRefusal, match=r"voucher program autumn: compensation of 30 "
    ):
        pay_voucher_compensation(day=D + dt.timedelta(days=1))
    assert list(PayoutInstruction.objects.values_list("user_id", "amount")) == [
        ("u_1", Decimal(19))
    ]
    empty.refresh_from_db()
    assert "nothing was paid" in empty.budget_alert
    # The refusal is also the asset's job exception, for ops.
    assert list(JobException.objects.values_list("job", "scope", "user_id", "reason")) == [
        ("pay_voucher_compensation", "asset USDT", "", empty.budget_alert)
    ]
    assert verify_ledger() == []


def test_one_claim_larger_than_the_whole_pool_is_held_back_and_the_others_are_paid(
    program: VoucherProgram, clock: Clock
) -> None:
    # The "autumn" pool holds 60. u_1's order lost 12 (a 30 voucher pays 12);
    # u_2's lost 150 against a 100 voucher: 100 alone exceeds the pool.
    autumn = services.save_program(slug="autumn", title="Autumn vouchers")
    services.save_template(program=autumn, code="thirty", face_value=Decimal(30), validity_days=7)
    services.save_template(program=autumn, code="big", face_value=Decimal(100), validity_days=7)
    fund_account(
        account=open_funding_account(program=autumn.funding_program, asset="USDT"),
        amount=Decimal(60),
        idempotency_key="autumn-budget",
        by="finance",
    )
    services.grant_vouchers(
        [
            services.Grant("a1", "u_1", "autumn", "thirty"),
            services.Grant("a2", "u_2", "autumn", "big"),
        ],
        source="test",
    )
    close("u_1", "o1", at=dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC), loss="12")
    close("u_2", "o2", at=dt.datetime(2026, 11, 20, 13, tzinfo=dt.UTC), loss="150")
    consume_vouchers(at=dt.datetime(2026, 11, 20, 14, tzinfo=dt.UTC))
    clock(dt.datetime(2026, 11, 21, 0, 30, tzinfo=dt.UTC))
    assert without_digests(pay_voucher_compensation(day=D)) == {
        "users_paid": 1,
        "amount": "12",
        "exceptions": 1,
    }
    assert list(PayoutInstruction.objects.values_list("user_id", "amount")) == [
        ("u_1", Decimal(12))
    ]
    held = JobException.objects.get()
    assert (held.job, held.user_id, held.scope) == ("pay_voucher_compensation", "u_2", "asset USDT")
    assert held.reason == (
        "a credit of 100 USDT alone exceeds all that funding:vouchers:autumn:USDT holds (60);"
        " not paid, the items stay owed"
    )
    # u_2's match stays owed: once the pool can cover it, the next run pays it.
    fund_account(
        account=open_funding_account(program=autumn.funding_program, asset="USDT"),
        amount=Decimal(100),
        idempotency_key="autumn-budget-2",
        by="finance",
    )
    clock(dt.datetime(2026, 11, 22, 0, 30, tzinfo=dt.UTC))
    assert without_digests(pay_voucher_compensation(day=D + dt.timedelta(days=1))) == {
        "users_paid": 1,
        "amount": "100",
    }
    assert verify_ledger() == []
