"""Running a job for one business key, once at a time, with a record.

Two Beats, two workers or an ops rerun racing Beat must never run the same job
for the same key at once: a PostgreSQL advisory lock per (job, key) decides,
and the loser records a ``skipped`` run instead of waiting. Jobs themselves
are idempotent (every credit has an idempotency key), so running a key again
after it finished pays nothing twice; the lock only keeps runs from
overlapping.

Every log line written during a run, by the job or anything it calls, carries
the run's ``job_id`` (``JobRun`` id, job name and key), so one run's lines can be
pulled from the logs of all workers at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import traceback
from typing import Any

from django.db import connection
from django.utils.timezone import is_aware

from config import clock
from jobs.models import JobRun, JobRunStatus
from jobs.registry import JobSpec, get_job
from monitoring.logs import job_context

logger = logging.getLogger(__name__)


class JobFailed(RuntimeError):
    def __init__(self, run: JobRun) -> None:
        super().__init__(f"job {run.job} [{run.key}] failed: {run.error.splitlines()[-1:]}")
        self.run = run


def business_key(spec: JobSpec, *, day: dt.date | None, at: dt.datetime | None) -> str:
    if spec.key == "day":
        if day is None or at is not None:
            raise ValueError(f"job {spec.name} decides a business day: give day (--day YYYY-MM-DD)")
        return day.isoformat()
    if at is None or day is not None:
        raise ValueError(f"job {spec.name} runs as of an instant: give at (--at TIMESTAMP)")
    if not is_aware(at):
        raise ValueError("the instant must be timezone-aware")
    return at.astimezone(dt.UTC).isoformat()


def run_job(
    name: str,
    *,
    day: dt.date | None = None,
    at: dt.datetime | None = None,
    trigger: str = "command",
) -> JobRun:
    """Run job ``name`` for ``day`` or ``at`` and return its run record.

    Raises :class:`JobFailed` (after recording the failure) if the job raised.
    """
    spec = get_job(name)
    key = business_key(spec, day=day, at=at)
    run = JobRun.objects.create(
        job=name,
        key=key,
        trigger=trigger,
        status=JobRunStatus.RUNNING,
        started_at=clock.now(),
        host=f"{socket.gethostname()}:{os.getpid()}",
    )
    with job_context(f"{run.pk}:{name}:{key}"):
        return _run_locked(spec, run, day=day, at=at)


def _run_locked(
    spec: JobSpec, run: JobRun, *, day: dt.date | None, at: dt.datetime | None
) -> JobRun:
    lock_name = f"job:{run.job}:{run.key}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [lock_name])
        row = cursor.fetchone()
    locked = bool(row and row[0])
    if not locked:
        _finish(run, JobRunStatus.SKIPPED, error="another run of this job and key held the lock")
        logger.warning("job %s [%s] skipped: another run holds the lock", run.job, run.key)
        return run
    logger.info("job %s [%s] started (%s)", run.job, run.key, run.trigger)
    try:
        kwargs: dict[str, Any] = {"day": day} if spec.key == "day" else {"at": at}
        counts = spec.func(**kwargs) or {}
    except Exception:
        _finish(run, JobRunStatus.FAILED, error=traceback.format_exc())
        logger.exception("job %s [%s] failed", run.job, run.key)
        raise JobFailed(run) from None
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [lock_name])
    _finish(run, JobRunStatus.SUCCEEDED, counts=counts)
    logger.info("job %s [%s] succeeded in %.3f s: %s", run.job, run.key, run.duration, run.counts)
    return run


def _finish(
    run: JobRun, status: str, *, counts: dict[str, Any] | None = None, error: str = ""
) -> None:
    run.status = status
    run.finished_at = clock.now()
    run.counts = _jsonable(counts or {})
    run.error = error
    run.save(update_fields=["status", "finished_at", "counts", "error"])


def _jsonable(counts: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value if isinstance(value, int | float | str | bool | None) else str(value)
        for key, value in counts.items()
    }
