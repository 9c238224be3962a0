"""python manage.py drive_jobs (the demo's time-lapse scheduler)"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from config import clock
from config.shutdown import stop_on_signals
from jobs.registry import Daily, JobSpec, all_jobs
from jobs.runner import JobFailed, run_job

logger = logging.getLogger(__name__)


def daily_fires(spec: JobSpec, after: dt.datetime, upto: dt.datetime) -> list[dt.datetime]:
    """The instants in (after, upto] at which a daily job is scheduled."""
    assert isinstance(spec.schedule, Daily)
    fires: list[dt.datetime] = []
    day = after.date()
    while True:
        at = dt.datetime.combine(
            day, dt.time(spec.schedule.hour, spec.schedule.minute), tzinfo=dt.UTC
        )
        if at > upto:
            return fires
        if at > after:
            fires.append(at)
        day += dt.timedelta(days=1)


class Command(BaseCommand):
    help = (
        "Run the scheduled jobs on the project's clock instead of Beat's: under a"
        " time-lapse (TIME_LAPSE) a day passes in a minute or two, and every daily job"
        " fires at its hour of every simulated day."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--min-real-seconds",
            type=float,
            default=2.0,
            help="an interval job runs at most this often in real time",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stop = stop_on_signals()
        checked = clock.now()
        last_run: dict[str, tuple[dt.datetime, float]] = {}
        while not stop.is_set():
            now = clock.now()
            for spec in all_jobs():
                if isinstance(spec.schedule, Daily):
                    for at in daily_fires(spec, checked, now):
                        self._run(spec, at)
                    continue
                previous = last_run.get(spec.name)
                real = time.monotonic()
                if previous is None or (
                    now - previous[0] >= spec.schedule
                    and real - previous[1] >= options["min_real_seconds"]
                ):
                    last_run[spec.name] = (now, real)
                    self._run(spec, now)
            checked = now
            stop.wait(0.5)

    def _run(self, spec: JobSpec, at: dt.datetime) -> None:
        key = spec.scheduled_key(at)
        try:
            run = run_job(spec.name, trigger="time-lapse", **key)
        except JobFailed as failure:
            self.stderr.write(f"{spec.name} {key}: failed: {failure}")
            return
        # Daily jobs always; interval jobs only when they decided something.
        if (
            isinstance(spec.schedule, Daily)
            or run.status != "succeeded"
            or _did_something(run.counts)
        ):
            self.stdout.write(f"{at:%Y-%m-%d %H:%M} {spec.name}: {run.status} {run.counts or ''}")


def _did_something(counts: dict[str, Any] | None) -> bool:
    return any(value not in (0, "0", "{}", None, "") for value in (counts or {}).values())
