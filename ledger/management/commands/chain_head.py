"""python manage.py chain_head [--day D | --at T]"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config import clock
from ledger.chain import head


class Command(BaseCommand):
    help = (
        "Print the event log's chain head as one line to keep outside the database:"
        " HASH@POSITION, the link and when it was recorded. --day D: the head at the end of"
        " UTC day D; --at T: the last link recorded before instant T. Check it later with"
        " verify_log --expect HASH@POSITION."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        when = parser.add_mutually_exclusive_group()
        when.add_argument("--day", type=dt.date.fromisoformat, help="a UTC day, YYYY-MM-DD")
        when.add_argument("--at", type=clock.parse_instant, help="an RFC 3339 instant")

    def handle(self, *args: Any, **options: Any) -> None:
        before = options["at"]
        if options["day"] is not None:
            before = clock.start_of_day(options["day"] + dt.timedelta(days=1))
        found = head(before=before)
        if found is None:
            when = f" before {before.isoformat()}" if before else ""
            raise CommandError(f"no link was recorded{when}: the log has no chain head")
        day = options["day"]
        self.stdout.write(f"{day} {found.line()}" if day else found.line())
