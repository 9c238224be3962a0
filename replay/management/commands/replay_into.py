"""python manage.py replay_into SOURCE_URL [--report FILE]"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from replay.rebuild import ReplayCounts, replay_log
from replay.registry import Unreplayable
from replay.report import compare_databases


class Command(BaseCommand):
    help = (
        "Rebuild the state of the database at SOURCE_URL from its log alone, in this"
        " database (empty and migrated), then compare the two and print the report."
        " `manage.py replay` makes the database and runs this."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "source", help="postgresql:// URL of the database whose log is replayed"
        )
        parser.add_argument("--report", type=Path, help="also write the report as JSON here")

    def handle(self, *args: Any, **options: Any) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM ledger_event")
            if cursor.fetchone()[0]:
                raise CommandError("this database's log is not empty: replay needs a new one")
            # A scratch database is made again rather than recovered: its
            # commits need not wait for the disk.
            cursor.execute("SET synchronous_commit TO off")
        started = time.monotonic()
        last = 0.0

        def progress(counts: ReplayCounts) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last < 0.5:
                return
            last = now
            sys.stderr.write(
                f"\r{_bar(counts)} facts {counts.facts:,}, actions {counts.actions:,},"
                f" records {counts.records:,}, job runs {counts.runs:,}   "
            )
            sys.stderr.flush()

        try:
            counts = replay_log(options["source"], progress=progress)
        except Unreplayable as problem:
            raise CommandError(str(problem)) from None
        sys.stderr.write("\n")
        replayed_in = time.monotonic() - started
        report = compare_databases(options["source"], counts, replayed_in=replayed_in)
        self.stdout.write(report.text())
        if options["report"]:
            options["report"].write_text(json.dumps(report.as_dict(), indent=2, default=str))
        if not report.identical:
            raise SystemExit(1)


def _bar(counts: ReplayCounts, width: int = 30) -> str:
    done = counts.facts + counts.actions + counts.records
    share = min(done / counts.head, 1.0) if counts.head else 1.0
    filled = int(share * width)
    return "[" + "#" * filled + "." * (width - filled) + f"] {share:5.1%}"
