"""One user's huge (contract-valid) amounts never stop anyone's Earn interest:
carried exactly, or left out as a recorded exception, with numbers worked out
by hand. Distribution is not exercised here: it stops at the accrual."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from earn import rules
from earn.jobs import accrue_earn_interest, earn_snapshot
from earn.models import DailyInterest, Snapshot, SnapshotRun
from earn.services import set_active
from jobs.models import JobException
from jobs.runner import run_job
from ledger.ingestion import ingest
from ledger.models import FuturesPositionsState
from tests import events
from tests.earn.conftest import Clock, btc_long

pytestmark = pytest.mark.django_db

D = dt.date(2026, 11, 20)
SET_UP = "2026-11-19T12:00:00Z"
# The contract's largest amounts: 20 integer digits (and 18 decimals).
MAX_INTEGER = "99999999999999999999"
MAX_AMOUNT = "99999999999999999999.999999999999999999"
# available + locked_in_orders + margin_used, each MAX_AMOUNT, bonus 0:
# 3 x 99,999,999,999,999,999,999.999999999999999999 (21 integer digits).
HUGE_P = Decimal("299999999999999999999.999999999999999997")
# quantity x avg_entry_price = (10^20 - 1)^2 = 10^40 - 2 x 10^20 + 1 (40 digits).
HUGE_V = Decimal("9999999999999999999800000000000000000001")


def _huge_user(user: str, clock: Clock) -> None:
    clock(SET_UP)
    set_active(user, True)
    position = {
        "symbol": "BTC_USDT",
        "market": "usdt_m",
        "side": "long",
        "quantity": MAX_INTEGER,
        "avg_entry_price": MAX_INTEGER,
    }
    report = ingest(
        [
            events.wallet(
                user,
                available=MAX_AMOUNT,
                locked_in_orders=MAX_AMOUNT,
                margin_used=MAX_AMOUNT,
                occurred_at=SET_UP,
            ),
            events.positions(user, items=[position], occurred_at=SET_UP),
        ],
        source="test",
    )
    assert report.summary()["accepted"] == 2


def _ordinary_user(user: str, available: str, value: str, clock: Clock) -> None:
    clock(SET_UP)
    set_active(user, True)
    ingest(
        [
            events.wallet(user, available=available, occurred_at=SET_UP),
            events.positions(user, items=[btc_long(value)], occurred_at=SET_UP),
        ],
        source="test",
    )


def _snapshots(clock: Clock) -> list[dict[str, object]]:
    counts = []
    for hour in (0, 8, 16):
        clock(f"{D.isoformat()}T{hour:02d}:05:00Z")
        counts.append(earn_snapshot(at=dt.datetime.combine(D, dt.time(hour, 5), tzinfo=dt.UTC)))
    return counts


def _row(user: str, asset: str = "USDT") -> DailyInterest:
    return DailyInterest.objects.get(user_id=user, day=D, asset=asset)


def test_the_rules_multiply_and_add_contract_amounts_exactly() -> None:
    position = {"symbol": "BTC_USDT", "market": "usdt_m", "side": "long"}
    huge = {**position, "quantity": MAX_INTEGER, "avg_entry_price": MAX_INTEGER}
    # Python's default context would give 1.000000000000000000000000000E+40.
    assert rules.position_value([huge]) == HUGE_V
    amount = Decimal(MAX_AMOUNT)
    assert rules.principal(amount, amount, amount, Decimal(0)) == HUGE_P
    result = rules.daily_interest([HUGE_P] * 3, [HUGE_V] * 3, rules.DEFAULT_TERMS)
    assert (result.position_value, result.base_portion) == (
        HUGE_V,
        Decimal("299999999999999974999.999999999999999997"),
    )
    assert result.interest == Decimal("24657534246575350.6849315")


def test_a_huge_user_is_snapshotted_and_accrued_exactly_beside_an_ordinary_one(
    clock: Clock,
) -> None:
    _huge_user("u_huge", clock)
    _ordinary_user("u_1", "25000", "80000", clock)  # P 25,000, V 80,000
    assert all("exceptions" not in counts for counts in _snapshots(clock))
    assert list(SnapshotRun.objects.values_list("users", flat=True)) == [2, 2, 2]
    huge = Snapshot.objects.filter(user_id="u_huge")
    assert set(huge.filter(asset="USDT").values_list("principal", "position_value")) == {
        (HUGE_P, HUGE_V)
    }
    # No USDC wallet: principal 0; the position value is the account's.
    assert set(huge.filter(asset="USDC").values_list("principal", "position_value")) == {
        (Decimal(0), HUGE_V)
    }

    clock("2026-11-21T00:20:00Z")
    accrued = accrue_earn_interest(day=D)
    # u_huge: V >= 100,000: 25,000 at 15% and the rest at 3%:
    #   (25,000 x 0.15 + 299,999,999,999,999,974,999.999999999999999997 x 0.03) / 365
    #   = 9,000,000,000,000,002,999.99999999999999999991 / 365
    #   = 24,657,534,246,575,350.684931506849... -> 24657534246575350.68493150
    # u_1: V 80,000 < 100,000: 25,000 x 3% / 365 = 2.05479452 (RULES.md 4).
    assert accrued == {
        "day": "2026-11-20",
        "rows": 4,
        "interest_USDC": "0",
        "interest_USDT": "24657534246575352.73972602",
    }
    row = _row("u_huge")
    assert (row.principal, row.position_value, row.boosted_portion, row.base_portion) == (
        HUGE_P,
        HUGE_V,
        Decimal(25000),
        Decimal("299999999999999974999.999999999999999997"),
    )
    assert row.interest == Decimal("24657534246575350.6849315")
    assert _row("u_1").interest == Decimal("2.05479452")
    assert not JobException.objects.exists()


def test_an_interest_beyond_the_ledger_is_a_recorded_exception_and_the_rest_accrue(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With NUMERIC(38, 18) no contract-valid account reaches it under terms the
    # database can store (at most 3 x 10^20 x 99.999999 / 365 < 8.3 x 10^19), so
    # the ledger's bound is lowered here to 10^16, below u_huge's interest.
    monkeypatch.setattr("ledger.money.AMOUNT_LIMIT", Decimal(10) ** 16)
    _huge_user("u_huge", clock)
    _ordinary_user("u_2", "25000", "100000", clock)
    _snapshots(clock)
    clock("2026-11-21T00:20:00Z")
    run = run_job("accrue_earn_interest", day=D)
    # u_huge: 24,657,534,246,575,350.68493150 (17 integer digits): not accrued.
    # u_2: V 100,000, P 25,000: 25,000 x 15% / 365 = 10.27397260.
    assert run.status == "partial"
    assert run.counts == {
        "day": "2026-11-20",
        "rows": 3,
        "interest_USDC": "0",
        "interest_USDT": "10.2739726",
        "exceptions": 1,
    }
    assert _row("u_2").interest == Decimal("10.2739726")
    assert not DailyInterest.objects.filter(user_id="u_huge", asset="USDT").exists()
    assert _row("u_huge", "USDC").interest == Decimal(0)
    exception = JobException.objects.get()
    assert (exception.run, exception.job, exception.user_id, exception.scope) == (
        run,
        "accrue_earn_interest",
        "u_huge",
        "asset USDT",
    )
    assert "NUMERIC(38, 18)" in exception.reason
    assert exception.detail == (
        "Earn interest of 2026-11-20: P 299999999999999999999.999999999999999997,"
        " V 9999999999999999999800000000000000000001,"
        " interest 24657534246575350.6849315"
    )


def test_a_user_whose_data_the_database_refuses_is_left_out_of_the_snapshot_alone(
    clock: Clock,
) -> None:
    _ordinary_user("u_1", "25000", "80000", clock)
    _ordinary_user("u_2", "25000", "100000", clock)
    _ordinary_user("u_bad", "1000", "1000", clock)
    # A read-model row no validated event could produce (say, written by an
    # earlier release): its quantity is not a number.
    FuturesPositionsState.objects.create(
        user_id="u_bad",
        occurred_at=dt.datetime(2026, 11, 19, 13, tzinfo=dt.UTC),
        event_id="corrupt-1",
        positions=[{**btc_long("1000"), "quantity": "lots"}],
    )
    counts = _snapshots(clock)
    # Called directly: the exceptions are counted in what the job returns and
    # recorded without a run.
    assert counts[0] == {"snapshots": {"2026-11-20T00:00:00+00:00": 2}, "exceptions": 1}
    assert list(SnapshotRun.objects.values_list("users", flat=True)) == [2, 2, 2]
    assert not Snapshot.objects.filter(user_id="u_bad").exists()
    left_out = JobException.objects.order_by("id")
    assert [(e.run, e.job, e.user_id, e.scope) for e in left_out] == [
        (None, "earn_snapshot", "u_bad", "user")
    ] * 3
    assert 'invalid input syntax for type numeric: "lots"' in left_out[0].reason
    assert left_out[0].detail == "Earn snapshot 2026-11-20T00:00:00+00:00"

    clock("2026-11-21T00:20:00Z")
    assert accrue_earn_interest(day=D)["interest_USDT"] == "12.32876712"
    assert (_row("u_1").interest, _row("u_2").interest) == (
        Decimal("2.05479452"),
        Decimal("10.2739726"),
    )
