"""Replay rebuilds every program's decisions from the log alone, identically.

The world is tests/support/world.py (registrations, spins, a draw, bonuses,
vouchers, referrals, Earn, quarantine) followed by what it lacks: a
quarantined input replayed by ops, an order arriving late for the vouchers,
an invalidated referral, Earn deactivated, a partner flag, terms changed, and
a payout refused for its budget, then funded and run again.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from earn.services import save_terms, set_active
from jobs.models import JobRun
from jobs.runner import JobFailed, run_job
from ledger.bookkeeping import fund_account, open_funding_account
from ledger.event_store import DomainEvent, append_domain_event
from ledger.ingestion import ingest, replay_quarantined
from ledger.models import QuarantinedInput
from referrals.services import set_partner
from tests import events
from tests.support import world
from vouchers import services as voucher_services

pytestmark = pytest.mark.django_db(transaction=True)


def epilogue(clock: world.Clock) -> None:
    clock("2026-11-21T03:10:00Z")
    bad = QuarantinedInput.objects.filter(raw__contains='"user_id": "u_1"').first() or (
        QuarantinedInput.objects.filter(raw__contains="u_1").first()
    )
    assert bad is not None
    fixed = json.loads(bad.raw)
    fixed["data"]["notional"] = "100"
    replay_quarantined(bad, raw=json.dumps(fixed), by="ops")
    set_partner("r_1", partner=True, by="ops", note="community lead")
    save_terms(
        effective_from=dt.date(2026, 12, 1),
        assets=["USDT", "USDC"],
        position_threshold=Decimal(50000),
        boosted_principal=Decimal(20000),
        boosted_apr=Decimal("0.12"),
        base_apr=Decimal("0.03"),
        snapshot_times=["00:00", "08:00", "16:00"],
    )
    # A small second voucher program: its compensation is refused, then paid.
    program = voucher_services.save_program(slug="tiny", title="Tiny vouchers")
    voucher_services.save_template(
        program=program, code="ten", face_value=Decimal(10), validity_days=7
    )
    world.fund("vouchers:tiny", "USDT", "1")
    voucher_services.grant_vouchers(
        [voucher_services.Grant("g-e1", "e_1", "tiny", "ten")], source="test"
    )
    clock("2026-11-21T10:00:00Z")
    ingest(
        [
            events.fill(
                "e_1", order_id="t1", realized_pnl="-8", occurred_at="2026-11-21T09:00:00Z"
            ),
            events.fill(
                "u_1", order_id="w2", realized_pnl="-9", occurred_at="2026-11-21T09:30:00Z"
            ),
            events.risk(
                "e_1", measures=["invalidate_referral"], occurred_at="2026-11-21T09:45:00Z"
            ),
        ],
        source="test",
    )
    run_job("consume_vouchers", at=clock("2026-11-21T10:05:00Z"))
    # Late: closed before the last consumption run, arrived after it.
    clock("2026-11-21T11:00:00Z")
    ingest(
        [
            events.fill(
                "u_1", order_id="late", realized_pnl="-4", occurred_at="2026-11-21T10:00:00Z"
            )
        ],
        source="test",
    )
    clock("2026-11-21T12:00:00Z")
    set_active("u_1", False)
    run_job("consume_vouchers", at=clock("2026-11-21T12:05:00Z"))
    for hour in (0, 8, 16):
        run_job("earn_snapshot", at=clock(f"2026-11-21T{hour:02d}:05:00Z"))
    day = dt.date(2026, 11, 21)
    clock("2026-11-22T00:15:00Z")
    run_job("settle_referrals", day=day)
    run_job("accrue_earn_interest", day=day)
    with pytest.raises(JobFailed):
        run_job("pay_voucher_compensation", day=day)
    fund_account(
        account=open_funding_account(program="vouchers:tiny", asset="USDT"),
        amount=Decimal(100),
        idempotency_key="tiny-extra",
        by="finance",
    )
    clock("2026-11-22T00:45:00Z")
    run_job("pay_voucher_compensation", day=day)
    run_job("distribute_earn_interest", day=day)
    run_job("distribute_referral_commissions", day=day)


def test_replay_of_every_program_is_identical(
    clock: world.Clock, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    world.build(clock)
    epilogue(clock)
    report = tmp_path / "replay.json"
    call_command("replay", "--report", str(report))
    out = capfd.readouterr().out
    assert "IDENTICAL" in out, out
    result = json.loads(report.read_text())
    assert result["identical"] is True
    tables = {t["table"]: t for t in result["tables"]}
    # Everything the scenario made is there to compare, not an empty match.
    assert tables["ledger: payout instructions"]["rows"] >= 9
    # v1 (the world's), then u_1's replayed "bad" close, t1, w2 and the late one.
    assert tables["vouchers: consumptions"]["rows"] == 5
    assert tables["referrals: partners"]["rows"] == 1
    # One digest per payment that paid: bonuses, then per day vouchers
    # (welcome; tiny once funded), Earn and referrals.
    assert tables["ledger: payout digests"]["rows"] >= 6
    assert result["actions_refused"] == []


def _replay(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> tuple[str, dict[str, Any]]:
    report = tmp_path / "replay.json"
    with pytest.raises(SystemExit) as stopped:
        call_command("replay", "--report", str(report))
    assert stopped.value.code == 1
    return capfd.readouterr().out, json.loads(report.read_text())


def test_an_amount_changed_behind_the_ledger_is_named(
    clock: world.Clock,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    connect_as: Callable[[str], psycopg.Connection[Any]],
) -> None:
    world.build(clock)
    owner = connect_as("owner")
    with owner.transaction():
        # As the owner, who could: what an intruder with its keys could do.
        owner.execute("UPDATE campaigns_reward SET amount = 200 WHERE kind = 'coverage_rebate'")
    out, result = _replay(capfd, tmp_path)
    tables = {t["table"]: t for t in result["tables"]}
    assert tables["campaigns: rewards"]["different"] == 1
    [line] = tables["campaigns: rewards"]["first_differences"]
    assert "amount: 200.000000000000000000 -> 20.000000000000000000" in line
    assert "DIFFERENT" in out


def test_a_setting_written_around_the_log_is_named(
    clock: world.Clock, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    world.build(clock)
    with connection.cursor() as cursor:
        # No save(), so no config.saved event: replay cannot know of it.
        cursor.execute("UPDATE campaigns_campaign SET title = 'Renamed quietly'")
    _, result = _replay(capfd, tmp_path)
    tables = {t["table"]: t for t in result["tables"]}
    [line] = tables["settings: campaigns.campaign"]["first_differences"]
    assert "Renamed quietly" in line


def test_an_event_type_no_app_declares_stops_the_replay(
    clock: world.Clock, capfd: pytest.CaptureFixture[str]
) -> None:
    append_domain_event(
        DomainEvent(
            event_id="promo.mystery:1",
            type="promo.mystery",
            occurred_at=clock("2026-11-01T00:00:00Z"),
            data={},
        )
    )
    with pytest.raises(SystemExit) as stopped:
        call_command("replay")
    assert stopped.value.code != 0
    assert "promo.mystery" in capfd.readouterr().err


def test_a_run_of_a_job_the_code_no_longer_has_stops_the_replay(
    clock: world.Clock, capfd: pytest.CaptureFixture[str]
) -> None:
    at = clock("2026-11-01T00:00:00Z")
    JobRun.objects.create(
        job="retired_job", key="2026-10-31", trigger="beat", status="succeeded", started_at=at
    )
    with pytest.raises(SystemExit) as stopped:
        call_command("replay")
    assert stopped.value.code != 0
    assert "job run" in capfd.readouterr().err
