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

A run whose process was killed (SIGKILL, a lost machine) never records its
end: the next run of any job finds it and records it ``abandoned``
(:func:`sweep_abandoned`). A run that left some users out for their data
(``jobs.exceptions``) ends ``partial`` with ``exceptions: N`` in its counts.
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

from access.errors import DomainError
from config import clock
from jobs.exceptions import ExceptionRecorder, run_recorder
from jobs.models import JobRun, JobRunStatus
from jobs.registry import JobSpec, get_job
from monitoring.logs import job_context

logger = logging.getLogger(__name__)


class JobFailed(RuntimeError):
    def __init__(self, run: JobRun) -> None:
        super().__init__(f"job {run.job} [{run.key}] failed: {run.error.splitlines()[-1:]}")
        self.run = run


class JobRefused(JobFailed):
    """The rules refused the run (a day not over yet, an empty pool): a reason
    for ops, not a bug, so it is recorded and shown without a traceback."""

    def __init__(self, run: JobRun, reason: str) -> None:
        super().__init__(run)
        self.reason = reason


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
    backend_pid, backend_start, log_position = _session()
    run = JobRun.objects.create(
        job=name,
        key=key,
        trigger=trigger,
        status=JobRunStatus.RUNNING,
        started_at=clock.now(),
        host=f"{socket.gethostname()}:{os.getpid()}",
        backend_pid=backend_pid,
        backend_start=backend_start,
        log_position=log_position,
    )
    with job_context(f"{run.pk}:{name}:{key}"):
        sweep_abandoned(run)
        return _run_locked(spec, run, day=day, at=at)


def _session() -> tuple[int, dt.datetime, int]:
    """This connection's backend pid and start (the session that will hold the
    lock), and the log's last committed position (what the run can see)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, backend_start, (SELECT coalesce(max(position), 0) FROM ledger_event)"
            " FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        )
        row = cursor.fetchone()
    assert row is not None, "a session always sees itself in pg_stat_activity"
    return int(row[0]), row[1], int(row[2])


# How a run is known to be abandoned. Its runner held the session advisory lock
# job:<job>:<key> on its own database connection, and PostgreSQL ends that
# session when the runner's process dies (the kernel closes its socket; a lost
# host is found by TCP keepalive, see docs/operations.md). So the run was
# abandoned exactly when the session recorded on it, (backend_pid,
# backend_start), is no longer in pg_stat_activity. This is preferred over
# probing the run's lock with pg_try_advisory_lock:
# - a run records itself before it takes its lock, so a probe in between would
#   call a live run abandoned; the session exists from before the record;
# - a dead run whose key another runner holds now would look alive to a probe;
# - a probe takes the lock itself, and could make a starting run skip;
# - one statement over pg_stat_activity (a view of shared memory) checks every
#   running run of every job, from any host: every runner uses this database.
# backend_start tells a pid the operating system reused apart. A session of
# another database role may hide its backend_start (NULL without
# pg_read_all_stats): such a run is taken as alive, never wrongly abandoned.
# Runs recorded before backend_pid existed fall back to the lock probe.
_ABANDONED_SQL = """
SELECT r.id, r.job, r.key, r.host, r.backend_pid
FROM jobs_jobrun r
WHERE r.status = 'running' AND r.id <> %s
    AND (r.backend_pid IS NULL OR NOT EXISTS (
        SELECT 1 FROM pg_stat_activity a
        WHERE a.pid = r.backend_pid
            AND (a.backend_start = r.backend_start OR a.backend_start IS NULL)))
ORDER BY r.id
"""


def sweep_abandoned(by: JobRun) -> list[int]:
    """Record as ``abandoned`` every running run (of any job) whose runner is
    gone; returns their ids. ``by`` is the run doing the sweep."""
    now = clock.now()
    with connection.cursor() as cursor:
        cursor.execute(_ABANDONED_SQL, [by.pk])
        candidates = cursor.fetchall()
    abandoned = []
    for run_id, job, key, host, backend_pid in candidates:
        if backend_pid is None:
            if not _lock_is_free(f"job:{job}:{key}"):
                continue
            gone = "its lock is free"
        else:
            gone = f"its database session (pid {backend_pid}) has ended"
        error = (
            f"abandoned: the runner {host or 'unknown'} is gone ({gone});"
            f" detected by run #{by.pk} at {now.isoformat()}"
        )
        # Only a run still running: it may have finished since the query.
        if JobRun.objects.filter(pk=run_id, status=JobRunStatus.RUNNING).update(
            status=JobRunStatus.ABANDONED, finished_at=now, error=error
        ):
            abandoned.append(run_id)
            logger.warning("job %s [%s] run #%s %s", job, key, run_id, error)
    return abandoned


def _lock_is_free(lock_name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [lock_name])
        row = cursor.fetchone()
        if not (row and row[0]):
            return False
        cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [lock_name])
    return True


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
        with run_recorder(run.job, run) as recorder:
            kwargs: dict[str, Any] = {"day": day} if spec.key == "day" else {"at": at}
            try:
                # Everything the run writes is stamped with its start instant.
                with clock.pinned(run.started_at):
                    counts = dict(spec.func(**kwargs) or {})
            except DomainError as refusal:
                reason = f"refused ({getattr(refusal, 'code', DomainError.code)}): {refusal}"
                exceptions = _save_exceptions(recorder)
                _finish(run, JobRunStatus.FAILED, counts=exceptions, error=reason)
                logger.warning("job %s [%s] %s", run.job, run.key, reason)
                raise JobRefused(run, reason) from None
            except Exception:
                error = traceback.format_exc()
                exceptions = _save_exceptions(recorder)
                _finish(run, JobRunStatus.FAILED, counts=exceptions, error=error)
                logger.exception("job %s [%s] failed", run.job, run.key)
                raise JobFailed(run) from None
            exceptions = _save_exceptions(recorder)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [lock_name])
    # Counted by the runner over the whole run, nested job calls included.
    counts.pop("exceptions", None)
    status = JobRunStatus.PARTIAL if exceptions else JobRunStatus.SUCCEEDED
    _finish(run, status, counts={**counts, **exceptions})
    outcome = "succeeded with exceptions" if exceptions else "succeeded"
    logger.info("job %s [%s] %s in %.3f s: %s", run.job, run.key, outcome, run.duration, run.counts)
    return run


def _save_exceptions(recorder: ExceptionRecorder) -> dict[str, int]:
    """Write the run's exceptions; ``{"exceptions": N}`` when there are any."""
    try:
        count = recorder.save()
    except Exception:
        # Never let the record of exceptions hide the run's own outcome.
        logger.exception("job %s: its exceptions could not be recorded", recorder.job)
        count = len(recorder.items)
    return {"exceptions": count} if count else {}


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
