"""The one Celery task of scheduled work: Beat fires it with a job name."""

from __future__ import annotations

from celery import shared_task

from config import clock
from jobs.registry import get_job
from jobs.runner import run_job


@shared_task(name="jobs.run_scheduled_job", acks_late=True, reject_on_worker_lost=True)
def run_scheduled_job(name: str) -> dict[str, object]:
    """Run ``name`` for the key that is due now (yesterday for day jobs).

    Late acknowledgement: a worker that dies mid-run leaves the message to be
    redelivered, and the job's idempotency keys make the second run pay nothing
    twice.
    """
    spec = get_job(name)
    run = run_job(name, **spec.scheduled_key(clock.now()), trigger="beat")
    return {"run": run.pk, "status": run.status, **run.counts}
