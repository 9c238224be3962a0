"""Scheduled jobs: explicit keys, run records, one run per key at a time, Beat schedules."""

from __future__ import annotations

import datetime as dt
import json
import threading
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django_celery_beat.models import PeriodicTask

from jobs.models import JobRun
from jobs.registry import Daily, get_job, job
from jobs.runner import JobFailed, run_job
from jobs.schedules import sync_beat_schedules
from jobs.tasks import run_scheduled_job

calls_seen: list[tuple[str, object]] = []
RELEASE = threading.Event()
ENTERED = threading.Event()


@job("test_tally_day", key="day", schedule=Daily(hour=0, minute=10), description="test: a day job")
def tally_day(*, day: dt.date) -> dict[str, object]:
    calls_seen.append(("day", day))
    return {"users": 3, "paid": "12.5"}


@job("test_fail", key="day", schedule=Daily(hour=1), description="test: always fails")
def always_fails(*, day: dt.date) -> None:
    raise RuntimeError(f"the ledger for {day} is out of balance")


@job("test_slow", key="instant", schedule=dt.timedelta(minutes=5), description="test: blocks")
def slow(*, at: dt.datetime) -> dict[str, int]:
    ENTERED.set()
    assert RELEASE.wait(timeout=30)
    return {"done": 1}


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls_seen.clear()
    RELEASE.clear()
    ENTERED.clear()


@pytest.mark.django_db
def test_run_job_for_a_day_records_the_run() -> None:
    out = StringIO()
    call_command("run_job", "test_tally_day", "--day", "2026-11-20", stdout=out)
    assert calls_seen == [("day", dt.date(2026, 11, 20))]
    printed = json.loads(out.getvalue())
    assert printed["status"] == "succeeded" and printed["users"] == 3 and printed["paid"] == "12.5"
    run = JobRun.objects.get(pk=printed["run"])
    assert (run.job, run.key, run.trigger, run.status) == (
        "test_tally_day",
        "2026-11-20",
        "command",
        "succeeded",
    )
    assert run.finished_at is not None and run.finished_at >= run.started_at


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["test_tally_day"], "give --day"),
        (["test_tally_day", "--at", "2026-11-20T00:00:00Z"], "give --day"),
        (["test_slow", "--day", "2026-11-20"], "give --at"),
        (["no_such_job", "--day", "2026-11-20"], "no job named 'no_such_job'"),
        ([], "give a job name"),
    ],
)
def test_run_job_refuses_a_missing_or_wrong_key(argv: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("run_job", *argv, stdout=StringIO())
    assert calls_seen == []


@pytest.mark.django_db
def test_a_failure_is_recorded_with_its_error() -> None:
    err = StringIO()
    with pytest.raises(CommandError, match="failed"):
        call_command("run_job", "test_fail", "--day", "2026-11-20", stdout=StringIO(), stderr=err)
    run = JobRun.objects.get(job="test_fail")
    assert run.status == "failed"
    assert "the ledger for 2026-11-20 is out of balance" in run.error
    assert "out of balance" in err.getvalue()


@pytest.mark.django_db
def test_list_shows_every_job() -> None:
    out = StringIO()
    call_command("run_job", "--list", stdout=out)
    lines = out.getvalue().splitlines()
    assert any(line.startswith("publish_payouts") and "every 10s" in line for line in lines)
    assert any(line.startswith("test_tally_day") and "daily 00:10 UTC" in line for line in lines)


@pytest.mark.django_db(transaction=True)
def test_one_run_per_job_and_key_at_a_time() -> None:
    """Two runners racing for the same instant: one runs, the other records a skip.
    Another instant is a different key and runs alongside."""
    at = dt.datetime(2026, 11, 24, 8, tzinfo=dt.UTC)
    results: dict[str, Any] = {}

    def runner(label: str, instant: dt.datetime) -> None:
        try:
            results[label] = run_job("test_slow", at=instant).status
        finally:
            connection.close()

    thread = threading.Thread(target=runner, args=("first", at))
    thread.start()
    assert ENTERED.wait(timeout=30)
    second = run_job("test_slow", at=at)
    assert second.status == "skipped"
    other_key = threading.Thread(target=runner, args=("other", at + dt.timedelta(hours=8)))
    other_key.start()
    RELEASE.set()
    thread.join(timeout=30)
    other_key.join(timeout=30)
    assert results == {"first": "succeeded", "other": "succeeded"}
    assert sorted(JobRun.objects.values_list("status", flat=True)) == [
        "skipped",
        "succeeded",
        "succeeded",
    ]
    # The lock was released: the same key can run again afterwards.
    assert run_job("test_slow", at=at).status == "succeeded"


@pytest.mark.django_db
def test_the_beat_task_runs_yesterday_for_day_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROZEN_NOW", "2026-11-24T00:10:00Z")
    assert run_scheduled_job.acks_late is True
    result = run_scheduled_job.apply(args=("test_tally_day",)).get()
    assert calls_seen == [("day", dt.date(2026, 11, 23))]
    assert result["status"] == "succeeded"
    run = JobRun.objects.get(job="test_tally_day")
    assert (run.pk, run.key, run.trigger) == (result["run"], "2026-11-23", "beat")


def test_the_scheduled_key_of_an_instant_job_is_the_instant() -> None:
    at = dt.datetime(2026, 11, 24, 16, tzinfo=dt.UTC)
    assert get_job("test_slow").scheduled_key(at) == {"at": at}
    assert get_job("test_tally_day").scheduled_key(at) == {"day": dt.date(2026, 11, 23)}


@pytest.mark.django_db
def test_schedules_are_loaded_from_code_and_a_pause_survives_a_resync() -> None:
    task = PeriodicTask.objects.get(name="job:publish_payouts")  # synced by migrate
    assert task.task == "jobs.run_scheduled_job"
    assert json.loads(task.args) == ["publish_payouts"]
    assert task.interval is not None and task.interval.every == 10
    daily = PeriodicTask.objects.get(name="job:test_tally_day")
    assert daily.crontab is not None
    assert (daily.crontab.hour, daily.crontab.minute) == ("0", "10")

    task.enabled = False
    task.save()
    PeriodicTask.objects.create(
        name="job:retired_job",
        task="jobs.run_scheduled_job",
        interval=task.interval,
        args='["retired_job"]',
    )
    counts = sync_beat_schedules()
    assert counts == {"created": 0, "updated": 0, "retired": 1}
    assert PeriodicTask.objects.get(name="job:publish_payouts").enabled is False
    assert PeriodicTask.objects.get(name="job:retired_job").enabled is False


@pytest.mark.django_db
def test_job_failed_carries_the_run() -> None:
    with pytest.raises(JobFailed) as failure:
        run_job("test_fail", day=dt.date(2026, 11, 1))
    assert failure.value.run.status == "failed"


def test_a_long_run_job_shows_it_is_alive(capsys: pytest.CaptureFixture[str]) -> None:
    import time

    from jobs.management.commands.run_job import _elapsed_ticker

    with _elapsed_ticker("settle_referrals [2026-11-20]", every=0.05):
        time.sleep(0.18)
    err = capsys.readouterr().err
    assert "settle_referrals [2026-11-20]: still running after 0 s" in err
    assert err.count("still running") >= 2
