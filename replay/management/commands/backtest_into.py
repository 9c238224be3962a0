"""python manage.py backtest_into SOURCE_URL DRAFT --from DAY --to DAY --seed S [--step M] [--live NAME] --json FILE"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from replay import backtest
from replay.forecasts import Refused, Window


class Command(BaseCommand):
    help = (
        "Backtest the draft DRAFT in this database (new and migrated) over the window,"
        " reading the database at SOURCE_URL read-only; write the report as JSON."
        " `manage.py backtest` makes the database and runs this."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", help="postgresql:// URL of the live database (only read)")
        parser.add_argument("draft", type=Path, help="the draft program file (apply_config format)")
        parser.add_argument("--from", dest="first", type=dt.date.fromisoformat, required=True)
        parser.add_argument("--to", dest="last", type=dt.date.fromisoformat, required=True)
        parser.add_argument("--seed", required=True)
        parser.add_argument("--step", default="60")
        parser.add_argument("--live")
        parser.add_argument("--json", type=Path, required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM ledger_event")
            if cursor.fetchone()[0]:
                raise CommandError("this database's log is not empty: a backtest needs a new one")

        def progress(at: dt.datetime, counts: backtest.Counts) -> None:
            sys.stderr.write(
                f"\rbacktest at {at:%Y-%m-%d %H:%M}: facts {counts.facts:,},"
                f" job runs {counts.job_runs:,}   "
            )
            sys.stderr.flush()

        try:
            report = backtest.run(
                options["source"],
                backtest.load_draft(options["draft"].read_text()),
                Window(options["first"], options["last"]),
                seed=backtest.parse_seed(options["seed"]),
                step=backtest.parse_step(options["step"]),
                live=options["live"],
                progress=progress,
            )
        except Refused as refusal:
            raise CommandError(str(refusal)) from None
        sys.stderr.write("\n")
        options["json"].write_text(json.dumps(report, indent=2))
