"""The ops dashboard's health half, as of now: jobs (also under a
time-lapse), the payout queue, ingestion, the quarantine and the log."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings

from campaigns.models import Campaign
from config.clock import time_lapse
from jobs.models import JobRun
from jobs.registry import JobSpec, all_jobs
from jobs.runner import JobFailed, run_job
from ledger.models import PayoutInstruction
from ledger.payouts import acknowledge_payout
from support import health
from tests.digests import without_digests
from tests.support import world

NOW = world.instant(world.END)


def _at(text: str) -> dt.datetime:
    return world.instant(text)


def test_the_health_of_every_job(winter: Campaign, clock: world.Clock) -> None:
    with pytest.raises(JobFailed):
        run_job("pay_voucher_compensation", day=dt.date(2026, 11, 21))  # the day is not over
    jobs = {job.name: job for job in health.job_health(NOW)}
    paying = jobs["pay_voucher_compensation"]
    assert paying.last is not None
    assert paying.state == "failed" and "paid on 2026-11-22" in paying.last.error
    assert paying.last_success_at == _at("2026-11-21T00:30:00Z") and not paying.late
    issue = jobs["issue_campaign_bonuses"]
    assert issue.last is not None
    assert (issue.state, without_digests(issue.last.counts)) == (
        "succeeded",
        {"rewards_issued": 2, "amount": "27"},
    )
    # Every 5 minutes, last success on 11-05: late. Never run: not late, just never run.
    assert jobs["refresh_spins"].late
    assert (jobs["publish_payouts"].state, jobs["publish_payouts"].late) == ("never run", False)
    snapshot = jobs["earn_snapshot"].last
    assert snapshot is not None and snapshot.key == "2026-11-20T16:05:00+00:00"


@pytest.fixture
def stream(settings: Any) -> Iterator[tuple[redis.Redis, str]]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    settings.EVENT_STREAM = f"test.support.{uuid.uuid4().hex}"
    yield client, settings.EVENT_STREAM
    client.delete(settings.EVENT_STREAM)


def _entry_id(at: dt.datetime) -> str:
    return f"{int(at.timestamp() * 1000)}-0"


def test_the_ingestion_lag_is_the_age_of_the_oldest_unprocessed_entry(
    stream: tuple[redis.Redis, str],
) -> None:
    client, name = stream
    assert health.stream_lag(client, NOW).problem == "the stream does not exist yet"
    for seconds in (90, 30):
        client.xadd(name, {"event": "{}"}, id=_entry_id(NOW - dt.timedelta(seconds=seconds)))
    waiting = health.stream_lag(client, NOW)
    assert waiting.problem.startswith("the consumer group does not exist")
    assert (waiting.undelivered, waiting.lag_seconds) == (2, 90.0)

    group = settings.EVENT_CONSUMER_GROUP
    client.xgroup_create(name, group, id="0")
    client.xreadgroup(group, "c1", {name: ">"}, count=1)
    pending = health.stream_lag(client, NOW)
    assert (pending.pending, pending.undelivered, pending.consumers) == (1, 1, 1)
    assert pending.lag_seconds == 90.0  # delivered, not acknowledged: still unprocessed
    client.xack(name, group, _entry_id(NOW - dt.timedelta(seconds=90)))
    assert health.stream_lag(client, NOW).lag_seconds == 30.0
    client.xreadgroup(group, "c1", {name: ">"}, count=1)
    client.xack(name, group, _entry_id(NOW - dt.timedelta(seconds=30)))
    done = health.stream_lag(client, NOW)
    assert (done.lag_seconds, done.oldest_id, done.length) == (None, None, 2)


def test_an_unreachable_redis_is_reported_not_raised() -> None:
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    assert health.stream_lag(client, NOW).problem.startswith("Redis did not answer")


def test_quarantine_and_log_health(winter: Campaign) -> None:
    quarantine = health.quarantine_health()
    assert (quarantine.open, quarantine.by_reason) == (3, [("invalid", 2), ("unprocessable", 1)])
    assert quarantine.oldest_open_at == _at("2026-11-21T02:00:00Z")
    log = health.log_health()
    assert log.head > 0 and {p.behind for p in log.projections} == {0}


def test_the_payout_queue_counts_what_the_wallet_has_not_acknowledged(winter: Campaign) -> None:
    # Six credits, none acknowledged: u_1's rebate (20) and prize (7) issued on
    # 11-16 at 09:30, their voucher compensation (12) at 11-21 00:30, Earn
    # interest (10.2739726) at 00:40, and both referral commissions (0.05 to
    # u_1 and to r_1) at 01:00. Nothing relayed: publish_payouts never ran.
    queue = health.payout_queue(NOW)
    assert (queue.unacknowledged, queue.unpublished) == (6, 6)
    assert queue.oldest_at == _at("2026-11-16T09:30:00Z")
    # 11-16 09:30 to 11-21 03:00: 4 days 17.5 hours.
    assert queue.oldest_age_seconds == 4 * 86400 + 17.5 * 3600
    for payout in PayoutInstruction.objects.filter(kind__startswith="campaign."):
        acknowledge_payout(payout_id=payout.pk, by="wallet")
    queue = health.payout_queue(NOW)
    assert (queue.unacknowledged, queue.unpublished) == (4, 6)
    # The voucher compensation, paid at 00:30: 2.5 hours.
    assert (queue.oldest_at, queue.oldest_age_seconds) == (_at("2026-11-21T00:30:00Z"), 9000.0)
    for payout in PayoutInstruction.objects.filter(acked_at__isnull=True):
        acknowledge_payout(payout_id=payout.pk, by="wallet")
    assert health.payout_queue(NOW) == health.PayoutQueue(0, 6, None, None, None)


# A time-lapse 2000 times as fast that began at LAPSE_START (its real origin
# does not matter here: every reading below passes its instant explicitly).
LAPSE_START = _at("2026-11-21T00:00:00Z")
SECOND = dt.timedelta(seconds=1)


def _run(job: str, started: dt.datetime, lapsed_seconds: float) -> JobRun:
    return JobRun.objects.create(
        job=job,
        key=started.isoformat(),
        trigger="time-lapse",
        status="succeeded",
        started_at=started,
        finished_at=started + lapsed_seconds * SECOND,
        counts={"published": 3},
    )


def all_specs() -> dict[str, JobSpec]:
    return {spec.name: spec for spec in all_jobs()}


def _late(now: dt.datetime) -> dict[str, bool]:
    return {job.name: job.late for job in health.job_health(now)}


@pytest.mark.django_db
def test_under_a_time_lapse_durations_are_real_and_lateness_allows_its_scheduler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FROZEN_NOW", raising=False)
    monkeypatch.setenv("TIME_LAPSE", time_lapse(LAPSE_START, 1_000_000.0, 2000))
    # Before the time-lapse began: timed on the real clock, shown as recorded.
    _run("publish_payouts", LAPSE_START - 100 * SECOND, 0.5)
    # Under it: 400 lapsed seconds at 2000x are 0.2 real seconds.
    last = _run("publish_payouts", LAPSE_START + 1000 * SECOND, 400)
    _run("pay_voucher_compensation", LAPSE_START + 1000 * SECOND, 3000)

    # Its scheduler starts an interval job at most every 2 real seconds, 4,000
    # lapsed ones: a 10-second job last seen 4,000 s ago is healthy. Its
    # schedule alone (10 s + a 10-minute grace) would call it late.
    now = last.started_at + 4000 * SECOND
    jobs = {job.name: job for job in health.job_health(now)}
    publish = jobs["publish_payouts"]
    assert (publish.last, publish.duration, publish.late) == (last, 0.2, False)
    assert jobs["pay_voucher_compensation"].duration == 1.5
    assert health.allowed_gap(all_specs()["publish_payouts"]) == 60000 * SECOND
    # More than 30 real seconds without a success (60,000 lapsed ones) is late.
    assert not _late(last.started_at + 60000 * SECOND)["publish_payouts"]
    late = _late(last.started_at + 60001 * SECOND)
    assert late["publish_payouts"] is True
    # A daily job keeps its own schedule (one day plus a 2-hour grace: 26 h),
    # longer than those 30 real seconds.
    daily = all_specs()["pay_voucher_compensation"]
    assert health.allowed_gap(daily) == dt.timedelta(hours=26)
    assert late["pay_voucher_compensation"] is False
    assert _late(last.started_at + dt.timedelta(hours=26, seconds=1))["pay_voucher_compensation"]
    # Without a time-lapse the schedule alone decides, as before.
    monkeypatch.delenv("TIME_LAPSE")
    assert health.allowed_gap(all_specs()["publish_payouts"]) == 610 * SECOND
    assert {j.name: j.duration for j in health.job_health(now)}["publish_payouts"] == 400.0
