from __future__ import annotations

import datetime as dt
import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config import clock
from jobs.models import JobRunStatus
from jobs.registry import Daily, all_jobs, get_job
from jobs.runner import JobFailed, JobRefused, run_job

# Exit statuses: 1 a failure (its traceback is printed), 3 a refusal by the
# rules (its reason alone: a day not over yet, an empty pool).
EXIT_REFUSED = 3


class Command(BaseCommand):
    help = (
        "Run a scheduled job for an explicit business day (--day) or instant (--at). "
        "Reruns are safe: every credit has an idempotency key. --list shows the jobs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?")
        parser.add_argument("--day", type=dt.date.fromisoformat, help="YYYY-MM-DD")
        parser.add_argument(
            "--at", type=clock.parse_instant, help="RFC 3339, e.g. 2026-11-24T08:00:00Z"
        )
        parser.add_argument("--list", action="store_true", help="List the jobs and their schedules")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"]:
            for spec in all_jobs():
                when = (
                    f"daily {spec.schedule.hour:02d}:{spec.schedule.minute:02d} UTC"
                    if isinstance(spec.schedule, Daily)
                    else f"every {int(spec.schedule.total_seconds())}s"
                )
                self.stdout.write(f"{spec.name:32} --{spec.key:8} {when:20} {spec.description}")
            return
        if not options["name"]:
            raise CommandError("give a job name, or --list")
        try:
            spec = get_job(options["name"])
        except KeyError as error:
            raise CommandError(str(error.args[0])) from None
        if spec.key == "day" and options["day"] is None:
            raise CommandError(f"{spec.name} decides a business day: give --day YYYY-MM-DD")
        if spec.key == "instant" and options["at"] is None:
            raise CommandError(f"{spec.name} runs as of an instant: give --at TIMESTAMP")
        key = options["day"] or options["at"]
        try:
            with _elapsed_ticker(f"{spec.name} [{key}]"):
                run = run_job(spec.name, day=options["day"], at=options["at"], trigger="command")
        except ValueError as error:
            raise CommandError(str(error)) from None
        except JobRefused as refusal:
            # The rules said no: the reason alone, and a status scripts can tell apart.
            raise CommandError(
                f"{spec.name} [{refusal.run.key}] {refusal.reason} (run #{refusal.run.pk})",
                returncode=EXIT_REFUSED,
            ) from None
        except JobFailed as failure:
            self.stderr.write(failure.run.error)
            raise CommandError(
                f"{spec.name} [{failure.run.key}] failed (run #{failure.run.pk})"
            ) from None
        self.stdout.write(
            json.dumps(
                {"run": run.pk, "job": run.job, "key": run.key, "status": run.status, **run.counts}
            )
        )
        if run.status == JobRunStatus.SKIPPED:
            raise CommandError(f"{spec.name} [{run.key}] is already running elsewhere; skipped")
        if run.status == JobRunStatus.PARTIAL:
            # Done for everyone else: not a failure, but ops must look.
            self.stderr.write(
                f"{spec.name} [{run.key}] left out {run.counts.get('exceptions')} user(s) or"
                f" asset(s) for their data (run #{run.pk}): see admin > Job exceptions"
            )


@contextmanager
def _elapsed_ticker(label: str, every: float | None = None) -> Iterator[None]:
    """Show that a long run is alive: on a terminal a line updated every second,
    in a log a line every 15 seconds. Jobs report their counts when they end."""
    interactive = sys.stderr.isatty()
    every = every or (1.0 if interactive else 15.0)
    done = threading.Event()
    began = time.monotonic()

    def tick() -> None:
        while not done.wait(every):
            elapsed = time.monotonic() - began
            if interactive:
                sys.stderr.write(f"\r{label}: running {elapsed:.0f} s")
            else:
                sys.stderr.write(f"{label}: still running after {elapsed:.0f} s\n")
            sys.stderr.flush()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
        if interactive:
            sys.stderr.write("\n")
