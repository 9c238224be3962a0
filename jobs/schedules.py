"""Beat schedules, declared in code (``jobs.registry``), loaded into
django-celery-beat's database scheduler so ops see and pause them in the admin.

Syncing sets each job's timing and task; it never touches ``enabled``, so a job
ops paused stays paused across deploys. A schedule whose job no longer exists
is disabled, not deleted, and says so in its description.
"""

from __future__ import annotations

import datetime as dt
import json

from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from jobs.registry import Daily, JobSpec, all_jobs

TASK = "jobs.run_scheduled_job"
PREFIX = "job:"


def _timing(spec: JobSpec) -> dict[str, object]:
    if isinstance(spec.schedule, Daily):
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=str(spec.schedule.minute),
            hour=str(spec.schedule.hour),
            day_of_week="*",
            day_of_month="*",
            month_of_year="*",
            timezone="UTC",
        )
        return {"crontab": crontab, "interval": None}
    seconds = int(spec.schedule / dt.timedelta(seconds=1))
    interval, _ = IntervalSchedule.objects.get_or_create(
        every=seconds, period=IntervalSchedule.SECONDS
    )
    return {"interval": interval, "crontab": None}


@transaction.atomic
def sync_beat_schedules() -> dict[str, int]:
    created = updated = retired = 0
    names = set()
    for spec in all_jobs():
        name = PREFIX + spec.name
        names.add(name)
        fields = {
            "task": TASK,
            "args": json.dumps([spec.name]),
            "description": spec.description,
            **_timing(spec),
        }
        task = PeriodicTask.objects.filter(name=name).first()
        if task is None:
            PeriodicTask.objects.create(name=name, enabled=True, **fields)
            created += 1
            continue
        if any(getattr(task, field) != value for field, value in fields.items()):
            for field, value in fields.items():
                setattr(task, field, value)
            task.save()
            updated += 1
    for task in PeriodicTask.objects.filter(name__startswith=PREFIX, enabled=True).exclude(
        name__in=names
    ):
        task.enabled = False
        task.description = "retired: no job of this name is declared any more"
        task.save()
        retired += 1
    return {"created": created, "updated": updated, "retired": retired}
