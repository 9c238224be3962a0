"""Per-user exceptions: a job leaves out the users whose data it cannot
decide, records them, and does its work for everyone else."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from jobs.exceptions import isolate_users, job_exceptions, record_exception
from jobs.models import JobException, JobRun
from jobs.registry import Daily, job
from jobs.runner import JobFailed, run_job
from monitoring.metrics import database_metrics
from support import selectors

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 11, 20)
USERS = [f"u_{n:02d}" for n in range(1, 11)]
BAD = {"u_03", "u_07"}
calls: list[list[str]] = []


@pytest.fixture(autouse=True)
def _written() -> None:
    calls.clear()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS test_written (user_id text)")
        cursor.execute("DELETE FROM test_written")


def _write(users: Sequence[str]) -> int:
    """Writes every user of the chunk, then fails on the bad ones (1/0 is a
    DataError): a failing chunk must leave nothing behind."""
    calls.append(list(users))
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO test_written SELECT unnest(%s::text[])", [list(users)])
        cursor.execute(
            "SELECT sum(1 / CASE WHEN u = ANY(%s) THEN 0 ELSE 1 END) FROM unnest(%s::text[]) u",
            [sorted(BAD), list(users)],
        )
    return len(users)


def _written_users() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT user_id FROM test_written ORDER BY user_id")
        return [user_id for (user_id,) in cursor.fetchall()]


@job("test_per_user", key="day", schedule=Daily(hour=3), description="test: users in chunks")
def per_user(*, day: dt.date) -> dict[str, Any]:
    with job_exceptions("test_per_user") as exceptions:
        written = sum(isolate_users(USERS, _write, chunk_size=4, what=f"test of {day}"))
        return {"written": written, **exceptions.counts()}


@job("test_asset_refused", key="day", schedule=Daily(hour=3), description="test: one asset out")
def asset_refused(*, day: dt.date) -> dict[str, Any]:
    record_exception(scope="asset USDC", reason="the USDC pool is frozen", detail="ops ticket 12")
    return {"paid_USDT": "10"}


@job("test_fails_late", key="day", schedule=Daily(hour=3), description="test: fails after one")
def fails_late(*, day: dt.date) -> None:
    record_exception(user_id="u_09", scope="user", reason="a wallet state from the future")
    raise RuntimeError("the pool account is locked")


def test_a_run_with_exceptions_is_partial_and_names_each_user_left_out() -> None:
    run = run_job("test_per_user", day=DAY)
    assert run.status == "partial"
    assert run.counts == {"written": 8, "exceptions": 2}
    # Everyone else written exactly once; nothing of a failed chunk left behind.
    assert _written_users() == sorted(set(USERS) - BAD)
    # Chunks of 4: [1-4] fails, halves [1-2] ok, [3-4] fails, [3] out, [4] ok; [5-8]
    # likewise; [9-10] ok.
    assert calls == [
        ["u_01", "u_02", "u_03", "u_04"],
        ["u_01", "u_02"],
        ["u_03", "u_04"],
        ["u_03"],
        ["u_04"],
        ["u_05", "u_06", "u_07", "u_08"],
        ["u_05", "u_06"],
        ["u_07", "u_08"],
        ["u_07"],
        ["u_08"],
        ["u_09", "u_10"],
    ]
    left_out = list(JobException.objects.order_by("user_id"))
    assert [(e.run, e.job, e.user_id, e.scope, e.detail) for e in left_out] == [
        (run, "test_per_user", "u_03", "user", "test of 2026-11-20"),
        (run, "test_per_user", "u_07", "user", "test of 2026-11-20"),
    ]
    assert all("division by zero" in e.reason for e in left_out)


def test_run_job_prints_a_partial_run_and_says_where_to_look() -> None:
    out, err = StringIO(), StringIO()
    call_command("run_job", "test_per_user", "--day", "2026-11-20", stdout=out, stderr=err)
    printed = json.loads(out.getvalue())
    assert (printed["status"], printed["written"], printed["exceptions"]) == ("partial", 8, 2)
    assert f"left out 2 user(s) or asset(s) for their data (run #{printed['run']})" in (
        err.getvalue()
    )


def test_called_directly_the_exceptions_are_returned_and_recorded_without_a_run() -> None:
    assert per_user(day=DAY) == {"written": 8, "exceptions": 2}
    assert list(JobException.objects.values_list("run", "job", "user_id").order_by("user_id")) == [
        (None, "test_per_user", "u_03"),
        (None, "test_per_user", "u_07"),
    ]
    assert not JobRun.objects.exists()


def test_an_asset_left_out_makes_the_run_partial() -> None:
    run = run_job("test_asset_refused", day=DAY)
    assert (run.status, run.counts) == ("partial", {"paid_USDT": "10", "exceptions": 1})
    exception = JobException.objects.get()
    assert (exception.user_id, exception.scope, exception.reason, exception.detail) == (
        "",
        "asset USDC",
        "the USDC pool is frozen",
        "ops ticket 12",
    )


def test_a_failed_run_keeps_the_exceptions_it_recorded_before_failing() -> None:
    with pytest.raises(JobFailed):
        run_job("test_fails_late", day=DAY)
    run = JobRun.objects.get(job="test_fails_late")
    assert (run.status, run.counts) == ("failed", {"exceptions": 1})
    assert "the pool account is locked" in run.error
    assert JobException.objects.get().run == run


def test_an_error_that_is_not_a_users_data_fails_the_job() -> None:
    def broken(users: Sequence[str]) -> int:
        raise RuntimeError("the ledger is out of balance")

    with job_exceptions("test_per_user"), pytest.raises(RuntimeError, match="out of balance"):
        isolate_users(USERS, broken)
    assert not JobException.objects.exists()


def test_exceptions_recorded_in_a_chunk_that_is_rolled_back_are_recorded_once() -> None:
    def noting(users: Sequence[str]) -> int:
        for user in users:
            if user == "u_02":
                record_exception(user_id=user, scope="asset USDT", reason="no USDT wallet")
        return _write(users)

    with job_exceptions("test_per_user") as exceptions:
        assert sum(isolate_users(USERS[:4], noting, chunk_size=4)) == 3
        assert exceptions.count == 2
    assert sorted(JobException.objects.values_list("user_id", "scope")) == [
        ("u_02", "asset USDT"),
        ("u_03", "user"),
    ]


def test_ops_see_partial_and_abandoned_runs_in_metrics_dashboard_and_admin() -> None:
    run = run_job("test_per_user", day=DAY)
    now = timezone.now()
    samples = {
        (metric.name, sample.labels.get("job"), sample.labels.get("status")): sample.value
        for metric in database_metrics()
        for sample in metric.samples
    }
    assert samples[("rewards_job_runs", "test_per_user", "partial")] == 1
    assert samples[("rewards_job_last_status", "test_per_user", "partial")] == 1
    assert ("rewards_job_last_success_timestamp_seconds", "test_per_user", None) in samples
    assert samples[("rewards_job_exceptions", "test_per_user", None)] == 2
    assert samples[("rewards_job_exceptions", "publish_payouts", None)] == 0

    health = {job.name: job for job in selectors.job_health(now)}["test_per_user"]
    assert (health.state, health.exceptions, health.abandoned) == ("partial", 2, 0)
    assert health.last_success_at == run.started_at

    viewer = User.objects.create_user("viewer-1", password="a-long-password-1", is_staff=True)
    viewer.groups.add(Group.objects.get(name="viewer"))
    client = Client()
    client.force_login(viewer)
    runs = client.get("/admin/jobs/jobrun/?status__exact=partial")
    assert runs.status_code == 200 and f"?run__exact={run.pk}".encode() in runs.content
    page = client.get(f"/admin/jobs/jobrun/{run.pk}/change/")
    assert page.status_code == 200 and b"u_03" in page.content and b"u_07" in page.content
    listed = client.get(f"/admin/jobs/jobexception/?run__exact={run.pk}")
    assert listed.status_code == 200 and b"division by zero" in listed.content
    dashboard = client.get("/admin/support/dashboard/")
    assert dashboard.status_code == 200
    assert b"/admin/jobs/jobexception/?job__exact=test_per_user" in dashboard.content
