"""Abandoned runs: a runner killed mid-run is found by the next run of any job,
recorded with when and why, and its key runs again."""

from __future__ import annotations

import datetime as dt
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from jobs.models import JobRun
from jobs.registry import Daily, job
from jobs.runner import run_job

BASE_DIR = Path(__file__).resolve().parents[2]
HANG = "REWARDS_TEST_JOB_HANGS"
AT = dt.datetime(2026, 11, 24, 8, tzinfo=dt.UTC)
DAY = dt.date(2026, 11, 20)


@job("test_hangs", key="instant", schedule=dt.timedelta(minutes=5), description="test: hangs")
def hangs(*, at: dt.datetime) -> dict[str, int]:
    """Hangs in the child process the tests kill; returns at once elsewhere."""
    if os.environ.get(HANG):
        print("entered", flush=True)
        time.sleep(300)
    return {"done": 1}


@job("test_quick", key="day", schedule=Daily(hour=2), description="test: returns at once")
def quick(*, day: dt.date) -> dict[str, int]:
    return {"ok": 1}


# The child: a runner of its own (another process, another database session).
CHILD = """
import datetime as dt, sys
import django
django.setup()
import tests.jobs.test_run_health
from jobs.runner import run_job
run_job("test_hangs", at=dt.datetime.fromisoformat(sys.argv[1]))
"""


def _child_env() -> dict[str, str]:
    # The test database, named in the URL the child's settings read.
    url = urlparse(settings.DATABASE_URL)._replace(path="/" + connection.settings_dict["NAME"])
    return {
        **os.environ,
        "DATABASE_URL": url.geturl(),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        HANG: "1",
    }


def _read_line(child: subprocess.Popen[str], timeout: float) -> str:
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], timeout)
    if not ready:
        return ""
    return child.stdout.readline().strip()


def _wait_until_session_ends(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
            if cursor.fetchone() is None:
                return
            time.sleep(0.05)
    raise AssertionError(f"database session {pid} still open after {timeout} s")


@pytest.mark.django_db(transaction=True)
def test_a_killed_runner_is_found_abandoned_by_the_next_run_and_its_key_runs_again() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, AT.isoformat()],
        cwd=BASE_DIR,
        env=_child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _read_line(child, timeout=60)
        if line != "entered":
            child.kill()
            raise AssertionError(f"the child did not start the job: {child.communicate()[1]}")
        hung = JobRun.objects.get(job="test_hangs")
        assert hung.status == "running" and hung.host.endswith(f":{child.pid}")
        assert hung.backend_pid is not None and hung.backend_start is not None
        # Alive: another job's run leaves it alone, and its key is still held.
        run_job("test_quick", day=DAY)
        hung.refresh_from_db()
        assert hung.status == "running"
        assert run_job("test_hangs", at=AT).status == "skipped"
    finally:
        child.kill()  # SIGKILL: the runner records nothing
        child.communicate(timeout=30)
    _wait_until_session_ends(hung.backend_pid)

    detector = run_job("test_quick", day=DAY + dt.timedelta(days=1))
    hung.refresh_from_db()
    assert hung.status == "abandoned"
    assert hung.finished_at is not None and detector.finished_at is not None
    assert detector.started_at <= hung.finished_at <= detector.finished_at
    assert hung.error.startswith(
        f"abandoned: the runner {hung.host} is gone (its database session (pid"
        f" {hung.backend_pid}) has ended); detected by run #{detector.pk} at "
    )
    # The lock died with the session: the key runs again, here at once.
    rerun = run_job("test_hangs", at=AT)
    assert (rerun.status, rerun.counts) == ("succeeded", {"done": 1})
    assert sorted(JobRun.objects.filter(job="test_hangs").values_list("status", flat=True)) == [
        "abandoned",
        "skipped",
        "succeeded",
    ]


@pytest.mark.django_db
def test_a_run_whose_pid_now_belongs_to_another_session_is_abandoned() -> None:
    """PostgreSQL reuses pids: the session's start tells the runner's apart."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        row = cursor.fetchone()
    assert row is not None
    pid = row[0]
    started = dt.datetime(2026, 11, 24, 8, tzinfo=dt.UTC)
    stale = JobRun.objects.create(
        job="test_hangs",
        key=AT.isoformat(),
        trigger="beat",
        status="running",
        started_at=started,
        host="worker-7:4242",
        backend_pid=pid,
        backend_start=started - dt.timedelta(days=3),
    )
    detector = run_job("test_quick", day=DAY)
    stale.refresh_from_db()
    assert stale.status == "abandoned"
    assert f"the runner worker-7:4242 is gone (its database session (pid {pid})" in stale.error
    assert f"detected by run #{detector.pk}" in stale.error


@pytest.mark.django_db
def test_a_run_recorded_without_its_session_is_abandoned_only_once_its_lock_is_free() -> None:
    """Runs recorded before the session was kept: their lock says whether the runner lives."""
    held = JobRun.objects.create(
        job="test_hangs",
        key=AT.isoformat(),
        trigger="beat",
        status="running",
        started_at=AT,
        host="worker-1:100",
    )
    lock = f"job:test_hangs:{AT.isoformat()}"
    db = connection.settings_dict
    with psycopg.connect(
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"],
        host=db["HOST"],
        port=db["PORT"],
        autocommit=True,
    ) as other:
        other.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [lock])
        run_job("test_quick", day=DAY)
        held.refresh_from_db()
        assert held.status == "running"
    # The other session ended, and its lock with it.
    detector = run_job("test_quick", day=DAY + dt.timedelta(days=1))
    held.refresh_from_db()
    assert held.status == "abandoned"
    assert held.error.startswith(
        f"abandoned: the runner worker-1:100 is gone (its lock is free); detected by run"
        f" #{detector.pk}"
    )
