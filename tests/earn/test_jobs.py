"""Earn snapshots, accrual and distribution, with numbers worked out by hand."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction

from earn.jobs import accrue_earn_interest, distribute_earn_interest, earn_snapshot
from earn.models import DailyInterest, EarnTerms, Snapshot, SnapshotRun
from earn.selectors import snapshot_from_history
from earn.services import EarnRefusal, set_active
from ledger.bookkeeping import fund_account, open_funding_account
from ledger.ingestion import ingest
from ledger.models import PayoutInstruction
from tests import events
from tests.digests import without_digests
from tests.earn.conftest import MIXED_POSITIONS, Clock, btc_long

D = dt.date(2026, 11, 20)


def _activate(user: str, at: str, clock: Clock, active: bool = True) -> None:
    clock(at)
    set_active(user, active)


def _state(user: str, available: str, at: str, value: str | None = "100000", **kw: Any) -> None:
    items = [btc_long(value)] if value else []
    ingest(
        [
            events.wallet(user, available=available, occurred_at=at, **kw),
            events.positions(user, items=items, occurred_at=at),
        ],
        source="test",
    )


def _snapshots(day: dt.date, clock: Clock) -> None:
    # Each instant is taken once its 5-minute lateness window is over.
    for hour in (0, 8, 16):
        clock(f"{day.isoformat()}T{hour:02d}:05:00Z")
        earn_snapshot(at=dt.datetime.combine(day, dt.time(hour, 5), tzinfo=dt.UTC))


def _interest(user: str, day: dt.date = D) -> Decimal:
    return DailyInterest.objects.get(user_id=user, day=day, asset="USDT").interest


def test_a_day_from_snapshots_to_spot_credit(pool: None, clock: Clock) -> None:
    _activate("u_1", "2026-11-19T12:00:00Z", clock)
    _state("u_1", "25000", "2026-11-19T12:00:00Z")  # V 100,000, P 25,000
    _activate("u_2", "2026-11-19T12:00:00Z", clock)
    _state("u_2", "26000", "2026-11-19T12:00:00Z", value="80000", bonus="1000")  # P 25,000
    _snapshots(D, clock)
    clock("2026-11-21T00:20:00Z")
    accrued = accrue_earn_interest(day=D)
    # u_1: 25,000 x 15% / 365 = 10.27397260; u_2: 25,000 x 3% / 365 = 2.05479452;
    # their USDC rows earn 0.
    assert accrued == {
        "day": "2026-11-20",
        "rows": 4,
        "interest_USDC": "0",
        "interest_USDT": "12.32876712",
    }
    assert (_interest("u_1"), _interest("u_2")) == (Decimal("10.2739726"), Decimal("2.05479452"))
    assert accrue_earn_interest(day=D)["already_accrued"] is True
    clock("2026-11-21T00:40:00Z")
    paid = distribute_earn_interest(day=D)
    # The two days before had nobody active: made up with nothing to pay.
    assert without_digests(paid) == {
        "day": "2026-11-20",
        "credits": 2,
        "amount_USDT": "12.32876712",
        "late_2026-11-19": 0,
        "late_2026-11-18": 0,
    }
    assert sorted(
        PayoutInstruction.objects.values_list("user_id", "asset", "amount", "account_kind")
    ) == [
        ("u_1", "USDT", Decimal("10.2739726"), "spot"),
        ("u_2", "USDT", Decimal("2.05479452"), "spot"),
    ]
    # However often the jobs run, the day is paid once.
    assert distribute_earn_interest(day=D)["credits"] == 0
    assert accrue_earn_interest(day=D)["rows"] == 0
    assert PayoutInstruction.objects.count() == 2


def test_a_transfer_out_between_snapshots_lowers_the_days_principal(
    pool: None, clock: Clock
) -> None:
    _activate("u_1", "2026-11-19T12:00:00Z", clock)
    _state("u_1", "85000", "2026-11-19T12:00:00Z")
    _state("u_1", "40000", "2026-11-20T10:00:00Z")  # 45,000 out after the 08:00 snapshot
    _state("u_1", "85000", "2026-11-20T20:00:00Z")  # and back after the last one
    _snapshots(D, clock)
    clock("2026-11-21T00:20:00Z")
    accrue_earn_interest(day=D)
    # P = 40,000; V = 100,000: (25,000 x 15% + 15,000 x 3%) / 365 = 4,200 / 365 = 11.506849315...
    assert _interest("u_1") == Decimal("11.50684931")


def test_activation_after_the_first_snapshot_earns_nothing_that_day(
    pool: None, clock: Clock
) -> None:
    _state("u_1", "25000", "2026-11-19T12:00:00Z")
    _activate("u_1", "2026-11-20T05:00:00Z", clock)
    _snapshots(D, clock)
    _snapshots(D + dt.timedelta(days=1), clock)
    clock("2026-11-22T00:20:00Z")
    accrue_earn_interest(day=D)
    accrue_earn_interest(day=D + dt.timedelta(days=1))
    row = DailyInterest.objects.get(user_id="u_1", day=D, asset="USDT")
    assert (row.snapshots, row.principal, row.interest) == (2, Decimal(0), Decimal(0))
    assert _interest("u_1", D + dt.timedelta(days=1)) == Decimal("10.2739726")


def test_deactivation_stops_interest_from_the_next_snapshot(pool: None, clock: Clock) -> None:
    _activate("u_1", "2026-11-19T12:00:00Z", clock)
    _state("u_1", "25000", "2026-11-19T12:00:00Z")
    _activate("u_1", "2026-11-20T09:00:00Z", clock, active=False)
    _snapshots(D, clock)
    clock("2026-11-21T00:20:00Z")
    accrue_earn_interest(day=D)
    assert list(
        Snapshot.objects.filter(user_id="u_1", asset="USDT").values_list("at", flat=True)
    ) == [
        dt.datetime(2026, 11, 20, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 20, 8, tzinfo=dt.UTC),
    ]
    assert _interest("u_1") == Decimal(0)


def test_positions_net_per_underlying_across_usdt_m_and_usdc_m_coin_m_ignored(
    pool: None, clock: Clock
) -> None:
    _activate("u_1", "2026-11-19T12:00:00Z", clock)
    ingest(
        [
            events.wallet("u_1", available="1000", occurred_at="2026-11-19T12:00:00Z"),
            events.positions(
                "u_1",
                items=MIXED_POSITIONS,  # value 74,000 (see conftest)
                occurred_at="2026-11-19T12:00:00Z",
            ),
        ],
        source="test",
    )
    clock("2026-11-20T00:05:00Z")
    earn_snapshot(at=dt.datetime(2026, 11, 20, 0, 5, tzinfo=dt.UTC))
    row = Snapshot.objects.get(user_id="u_1", asset="USDT")
    assert (row.principal, row.position_value) == (Decimal(1000), Decimal(74000))


def test_snapshots_computed_late_from_history_equal_snapshots_taken_on_time(
    pool: None, clock: Clock
) -> None:
    _activate("u_1", "2026-11-19T12:00:00Z", clock)
    _activate("u_2", "2026-11-20T03:00:00Z", clock)
    moments = [
        ("2026-11-19T12:00:00Z", "u_1", "30000", "100000"),
        ("2026-11-20T00:00:00Z", "u_2", "5000", "150000"),  # at the instant: counts
        ("2026-11-20T07:59:59Z", "u_1", "20000", "90000"),
        ("2026-11-20T08:00:01Z", "u_1", "1", "1"),  # just after: not in the 08:00 one
        ("2026-11-20T12:00:00Z", "u_2", "7000", None),
    ]
    instants = [dt.datetime(2026, 11, 20, h, tzinfo=dt.UTC) for h in (0, 8, 16)]
    history = list(moments)
    # Undone below (a savepoint): snapshots are derived, and the application
    # role may not delete them; the log is then written again, all at once.
    with transaction.atomic():
        for at in instants:
            # Events stream in up to each instant; the snapshot is taken right then.
            while moments and dt.datetime.fromisoformat(moments[0][0]) <= at:
                when, user, available, value = moments.pop(0)
                _state(user, available, when, value=value)
            taken = at + dt.timedelta(minutes=5)
            clock(taken.isoformat())
            earn_snapshot(at=taken)
        on_time = sorted(
            Snapshot.objects.values_list("at", "user_id", "asset", "principal", "position_value")
        )
        transaction.set_rollback(True)
    h0, h8, h16 = instants
    assert [row for row in on_time if row[2] == "USDT"] == [
        (h0, "u_1", "USDT", Decimal(30000), Decimal(100000)),
        (h8, "u_1", "USDT", Decimal(20000), Decimal(90000)),
        (h8, "u_2", "USDT", Decimal(5000), Decimal(150000)),
        (h16, "u_1", "USDT", Decimal(1), Decimal(1)),
        (h16, "u_2", "USDT", Decimal(7000), Decimal(0)),
    ]
    # Nothing was taken on time now: the accrual takes every snapshot late.
    assert not SnapshotRun.objects.exists()
    for when, user, available, value in history:
        _state(user, available, when, value=value)
    clock("2026-11-25T00:00:00Z")
    accrue_earn_interest(day=D)
    late = sorted(
        Snapshot.objects.values_list("at", "user_id", "asset", "principal", "position_value")
    )
    assert late == on_time
    # And the SQL of the job agrees with the rules applied to one user at a time.
    for at, user, asset, principal, value in late:
        assert snapshot_from_history(user, at, ("USDT", "USDC"))[asset] == (principal, value)


def test_a_tier_change_mid_month_applies_from_its_effective_day_only(
    pool: None, clock: Clock
) -> None:
    EarnTerms.objects.create(
        effective_from=D + dt.timedelta(days=1),
        position_threshold=Decimal("100000"),
        boosted_principal=Decimal("25000"),
        boosted_apr=Decimal("0.20"),
        base_apr=Decimal("0.03"),
    )
    _activate("u_1", "2026-11-19T12:00:00Z", clock)
    _state("u_1", "25000", "2026-11-19T12:00:00Z")
    _snapshots(D, clock)
    _snapshots(D + dt.timedelta(days=1), clock)
    clock("2026-11-22T00:20:00Z")
    accrue_earn_interest(day=D)
    accrue_earn_interest(day=D + dt.timedelta(days=1))
    assert _interest("u_1") == Decimal("10.2739726")  # 15%
    # 25,000 x 20% / 365 = 5,000 / 365 = 13.698630136...
    assert _interest("u_1", D + dt.timedelta(days=1)) == Decimal("13.69863013")


def test_refusals_too_early_and_an_underfunded_pool(db: None, clock: Clock) -> None:
    clock("2026-11-20T23:59:59Z")
    with pytest.raises(EarnRefusal, match="once the day is over"):
        accrue_earn_interest(day=D)
    with pytest.raises(EarnRefusal, match="paid from 2026-11-21"):
        distribute_earn_interest(day=D)
    _activate("u_1", "2026-11-19T12:00:00Z", clock)
    _state("u_1", "25000", "2026-11-19T12:00:00Z")
    _snapshots(D, clock)
    clock("2026-11-21T00:40:00Z")
    accrue_earn_interest(day=D)
    with pytest.raises(
        EarnRefusal,
        match=r"Earn pool USDT: 10\.2739726 USDT needed for 2026-11-20 but it holds 0 USDT;",
    ) as refused:
        distribute_earn_interest(day=D)
    assert refused.value.code == "budget_exhausted"
    assert not PayoutInstruction.objects.exists()


def test_a_missed_accrual_and_an_unpaid_day_are_made_up_by_the_next_run(
    db: None, clock: Clock
) -> None:
    _activate("u_1", "2026-11-19T12:00:00Z", clock)
    _state("u_1", "25000", "2026-11-19T12:00:00Z")
    _snapshots(D, clock)
    _snapshots(D + dt.timedelta(days=1), clock)
    # D's accrual never ran and its distribution finds the pool empty: nothing paid.
    clock("2026-11-21T00:40:00Z")
    with pytest.raises(EarnRefusal, match="Earn pool USDT"):
        distribute_earn_interest(day=D)
    # The accrual stands; only the payment was refused.
    assert list(DailyInterest.objects.filter(interest__gt=0).values_list("day", "interest")) == [
        (D, Decimal("10.2739726"))
    ]
    assert not PayoutInstruction.objects.exists()
    fund_account(
        account=open_funding_account(program="earn", asset="USDT"),
        amount=Decimal(100),
        idempotency_key="earn-pool-late",
        by="finance",
    )
    # The next day's run accrues and pays D+1, and makes D up.
    clock("2026-11-22T00:40:00Z")
    result = distribute_earn_interest(day=D + dt.timedelta(days=1))
    assert (result["credits"], result["late_2026-11-20"]) == (1, 1)
    # 25,000 x 15% / 365 = 10.2739726 for each day
    assert sorted(PayoutInstruction.objects.values_list("idempotency_key", "amount")) == [
        ("earn:u_1:USDT:2026-11-20:spot:USDT", Decimal("10.2739726")),
        ("earn:u_1:USDT:2026-11-21:spot:USDT", Decimal("10.2739726")),
    ]


def test_an_empty_pool_in_one_asset_does_not_stop_the_other(db: None, clock: Clock) -> None:
    # Only the USDT pool is funded. u_1 earns in USDT, u_2 in USDC, both with
    # V 80,000 and P 25,000: 25,000 x 3% / 365 = 2.05479452 each.
    fund_account(
        account=open_funding_account(program="earn", asset="USDT"),
        amount=Decimal(100),
        idempotency_key="earn-pool-usdt",
        by="finance",
    )
    _activate("u_1", "2026-11-19T12:00:00Z", clock)
    _state("u_1", "25000", "2026-11-19T12:00:00Z", value="80000")
    _activate("u_2", "2026-11-19T12:00:00Z", clock)
    _state("u_2", "25000", "2026-11-19T12:00:00Z", value="80000", asset="USDC")
    _snapshots(D, clock)
    clock("2026-11-21T00:40:00Z")
    with pytest.raises(
        EarnRefusal, match=r"Earn pool USDC: 2\.05479452 USDC needed for 2026-11-20"
    ):
        distribute_earn_interest(day=D)
    assert list(PayoutInstruction.objects.values_list("user_id", "asset", "amount")) == [
        ("u_1", "USDT", Decimal("2.05479452"))
    ]
    # Once the USDC pool is funded, a rerun of the day pays USDC alone.
    fund_account(
        account=open_funding_account(program="earn", asset="USDC"),
        amount=Decimal(100),
        idempotency_key="earn-pool-usdc",
        by="finance",
    )
    assert distribute_earn_interest(day=D)["credits"] == 1
    assert sorted(PayoutInstruction.objects.values_list("user_id", "asset", "amount")) == [
        ("u_1", "USDT", Decimal("2.05479452")),
        ("u_2", "USDC", Decimal("2.05479452")),
    ]
    assert distribute_earn_interest(day=D)["already_paid"] is True
