"""The one Celery task of scheduled work: Beat fires it with a job name.

A run whose database or Redis goes away is retried, not lost: when the run
raises an error that means a dependency did not answer
(``monitoring.outages.outage_of``), the task is sent again with a delay
doubling from 2 s to 5 minutes (with jitter), up to ``MAX_RETRIES`` times
(about half an hour in all), each retry logged and counted
(``rewards_job_retries_total``). A retry runs the same business key as the
first attempt (yesterday stays yesterday after midnight). Jobs are idempotent,
so a rerun after a run that died half-way pays nothing twice; the run it left
``running`` is found ``abandoned`` by the next run once its database session
has ended (``jobs.runner``). A retry that finds the key's lock still held (a
session of the lost run the server has not ended yet) is retried too. After
the last retry, or when the retry itself cannot be sent, the run is given up
with an error naming the command that reruns it.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, NoReturn

from celery import Task, shared_task
from celery.exceptions import Reject

from config import clock
from jobs.models import JobRunStatus
from jobs.registry import get_job
from jobs.runner import run_job
from monitoring import outages

logger = logging.getLogger(__name__)

RETRY_BACKOFF = outages.Backoff(first=2.0, cap=300.0)
MAX_RETRIES = 10


@shared_task(
    bind=True,
    name="jobs.run_scheduled_job",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
)
def run_scheduled_job(
    self: Task, name: str, key: dict[str, str] | None = None
) -> dict[str, object]:
    """Run ``name`` for the key that is due now (yesterday for day jobs), or for
    ``key`` (a retry's: ``{"day": "2026-11-23"}`` or ``{"at": ISO 8601}``).

    Late acknowledgement: a worker that dies mid-run leaves the message to be
    redelivered, and the job's idempotency keys make the second run pay nothing
    twice.
    """
    spec = get_job(name)
    when = _key_from_text(key) if key else spec.scheduled_key(clock.now())
    outages.flush()  # counts an earlier outage left in this process
    try:
        run = run_job(name, **when, trigger="beat")
    except Exception as exc:
        dependency = outages.outage_of(exc)
        if dependency is None and outages.database_connection_broken():
            dependency = outages.DATABASE
        if dependency is None:
            raise
        _retry(self, name, when, dependency, exc)
    if run.status == JobRunStatus.SKIPPED and self.request.retries:
        _retry(self, name, when, "lock", None)
    return {"run": run.pk, "status": run.status, **run.counts}


def _retry(
    task: Task, name: str, when: dict[str, Any], cause: str, exc: Exception | None
) -> NoReturn:
    """Send the run again later, or give it up; raises either way."""
    key = _key_to_text(when)
    shown = next(iter(key.values()))
    rerun = f"manage.py run_job {name} --{next(iter(key))} {shown}"
    if cause == "lock":
        reason = "the key's lock is still held (by the session of a run that was lost?)"
    else:
        outages.count(outages.job_component(name), cause)
        outages.discard_database_connection()
        reason = f"{cause} did not answer ({outages.describe(exc) if exc else ''})"
    attempt = task.request.retries + 1
    if attempt > MAX_RETRIES:
        logger.error(
            "job %s [%s] given up after %d retries: %s; rerun it with: %s",
            name,
            shown,
            MAX_RETRIES,
            reason,
            rerun,
        )
        if exc is not None:
            raise exc
        raise RuntimeError(f"job {name} [{shown}] given up: {reason}")
    delay = RETRY_BACKOFF.delay(attempt)
    logger.warning(
        "job %s [%s]: %s; retry %d of %d in %.0f s",
        name,
        shown,
        reason,
        attempt,
        MAX_RETRIES,
        delay,
    )
    try:
        raise task.retry(args=(name,), kwargs={"key": key}, exc=exc, countdown=delay)
    except Reject:
        logger.error(
            "job %s [%s]: its retry could not be sent (the broker did not answer either);"
            " rerun it with: %s",
            name,
            shown,
            rerun,
        )
        raise


def _key_to_text(when: dict[str, Any]) -> dict[str, str]:
    return {field: value.isoformat() for field, value in when.items()}


def _key_from_text(key: dict[str, str]) -> dict[str, Any]:
    if "day" in key:
        return {"day": dt.date.fromisoformat(key["day"])}
    return {"at": dt.datetime.fromisoformat(key["at"])}
