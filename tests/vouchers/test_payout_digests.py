"""Every payout records a digest of what it paid (ledger.digests), with its
credits: shown in the admin and the job's counts, and recomputed from the
postings. Voucher compensation is the payout under test; the mechanism is
``pay_items``, shared by every program."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from django.db import DatabaseError, connection, transaction

from jobs.runner import run_job
from ledger.digests import recompute
from ledger.models import LogLink, PayoutDigest
from tests.ledger.test_admin import _staff
from tests.vouchers.conftest import close, grant
from vouchers.jobs import consume_vouchers, pay_voucher_compensation
from vouchers.models import VoucherProgram

D = dt.date(2026, 11, 20)
PAID_AT = dt.datetime(2026, 11, 21, 0, 30, tzinfo=dt.UTC)
FUNDING = "funding:vouchers:welcome:USDT"
Clock = Callable[[dt.datetime], dt.datetime]

# The credits of D, one line each, sorted by key: u_1 (12 + 7.5) before u_2 (30).
LINES = (
    '["voucher:welcome:u_1:2026-11-20","u_1","spot","USDT","19.5"]\n'
    '["voucher:welcome:u_2:2026-11-20","u_2","spot","USDT","30"]\n'
)
DIGEST = hashlib.sha256(LINES.encode()).hexdigest()


@pytest.fixture
def matched(program: VoucherProgram, clock: Clock) -> VoucherProgram:
    """Losses of D matched to vouchers: u_2 30, u_1 12 and 7.5 (three items)."""
    grant("u_1", "fifty", "g1")
    grant("u_2", "thirty", "g2")
    noon = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
    close("u_2", "o1", at=noon, loss="45")
    close("u_1", "o2", at=noon, loss="12")
    close("u_1", "o3", at=noon + dt.timedelta(hours=1), loss="7.5")
    clock(noon + dt.timedelta(hours=2))
    consume_vouchers(at=noon + dt.timedelta(hours=2))
    clock(PAID_AT)
    return program


def _without_digests(counts: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in counts.items() if not key.startswith("digest")}


def test_a_payout_records_the_digest_of_its_credits_sorted_by_key(matched: VoucherProgram) -> None:
    counts = pay_voucher_compensation(day=D)
    record = PayoutDigest.objects.get()
    assert counts == {"users_paid": 2, "amount": "49.5", f"digest #{record.pk}": DIGEST}
    assert (
        record.funding_account,
        record.payers,
        record.asset,
        record.credits,
        record.items,
        record.total,
        record.digest,
        record.recorded_at,
        record.cause,
    ) == (
        FUNDING,
        "voucher.consumption",
        "USDT",
        2,
        3,
        Decimal("49.5"),
        DIGEST,
        PAID_AT,
        {"program": "welcome", "day": "2026-11-20"},
    )
    assert recompute(record) == DIGEST


def test_a_rerun_that_pays_nothing_records_no_digest(matched: VoucherProgram) -> None:
    pay_voucher_compensation(day=D)
    assert pay_voucher_compensation(day=D) == {"users_paid": 0, "amount": "0"}
    assert PayoutDigest.objects.count() == 1


def test_the_job_run_shows_the_digest(matched: VoucherProgram) -> None:
    run = run_job("pay_voucher_compensation", day=D)
    record = PayoutDigest.objects.get()
    assert run.counts == {
        "users_paid": 2,
        "amount": "49.5",
        f"digest #{record.pk}": DIGEST,
    }
    assert _without_digests(run_job("pay_voucher_compensation", day=D).counts) == {
        "users_paid": 0,
        "amount": "0",
    }


def test_digests_are_append_only(matched: VoucherProgram) -> None:
    pay_voucher_compensation(day=D)
    with (
        pytest.raises(DatabaseError, match=r"append-only|permission denied"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE ledger_payoutdigest SET digest = 'x'")
    with (
        pytest.raises(DatabaseError, match=r"append-only|permission denied"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM ledger_payoutdigest")


@pytest.mark.django_db(transaction=True)
def test_a_credit_changed_afterwards_no_longer_gives_the_recorded_digest(
    matched: VoucherProgram, connect_as: Callable[[str], psycopg.Connection[Any]]
) -> None:
    pay_voucher_compensation(day=D)
    record = PayoutDigest.objects.get()
    assert recompute(record) == DIGEST
    # The owner moves u_2's credit to someone else's account, around every trigger.
    owner = connect_as("owner")
    owner.execute("ALTER TABLE ledger_account DISABLE TRIGGER USER")
    owner.execute("UPDATE ledger_account SET user_id = 'u_9' WHERE user_id = 'u_2'")
    owner.execute("ALTER TABLE ledger_account ENABLE TRIGGER USER")
    owner.commit()
    forged = '["voucher:welcome:u_2:2026-11-20","u_9","spot","USDT","30"]\n'
    assert (
        recompute(record)
        == hashlib.sha256((LINES.split("\n")[0] + "\n" + forged).encode()).hexdigest()
    )
    assert recompute(record) != record.digest


def test_ops_see_the_digests_and_the_log_chain_in_the_admin(matched: VoucherProgram) -> None:
    pay_voucher_compensation(day=D)
    client = _staff("viewer")
    page = client.get("/admin/ledger/payoutdigest/")
    assert page.status_code == 200
    assert DIGEST.encode() in page.content and FUNDING.encode() in page.content
    record = PayoutDigest.objects.get()
    assert client.get(f"/admin/ledger/payoutdigest/{record.pk}/change/").status_code == 200
    head = LogLink.objects.order_by("link").last()
    assert head is not None
    chain = client.get("/admin/ledger/loglink/")
    assert chain.status_code == 200 and head.chain_hash.encode() in chain.content
    assert client.get(f"/admin/ledger/loglink/{head.link}/change/").status_code == 200
