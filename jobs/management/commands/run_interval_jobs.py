"""python manage.py run_interval_jobs [--after SECONDS]

``./bin/serve`` runs it once at start. Beat fires an interval job first one
interval after it starts (five minutes for spins, an hour for voucher expiry),
so without it a new service shows no run of most jobs for a long while.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from config import clock
from config.shutdown import stop_on_signals
from jobs.registry import Daily, all_jobs
from jobs.runner import JobFailed, JobRefused, run_job


class Command(BaseCommand):
    help = "Run every interval job once, as of the current instant (after waiting --after seconds)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--after",
            type=float,
            default=0.0,
            help="wait this many seconds first (the demo's users trade meanwhile)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stop = stop_on_signals()
        if stop.wait(options["after"]):
            return
        for spec in all_jobs():
            if isinstance(spec.schedule, Daily) or stop.is_set():
                continue
            at = clock.now()
            try:
                run = run_job(spec.name, trigger="start", **spec.scheduled_key(at))
            except JobRefused as refusal:
                self.stderr.write(f"start: {spec.name}: refused: {refusal.reason}")
                continue
            except JobFailed as failure:
                # Recorded in the admin like any failed run; the other jobs still run.
                self.stderr.write(f"start: {spec.name}: failed (run #{failure.run.pk})")
                continue
            self.stdout.write(f"start: {spec.name}: {run.status} {run.counts or ''}")
