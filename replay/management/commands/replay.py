"""python manage.py replay [--into NAME] [--keep] [--report FILE]"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from replay import scratch


class Command(BaseCommand):
    help = (
        "Rebuild this database's whole state from its log alone in a new database"
        " (<name>_replay), run every job again at the instants its runs used, and"
        " compare: every transaction, posting, payout instruction and decision."
        " Exit 0 when identical, 1 when not. Never writes to this database."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--into", help="the scratch database's name (default <name>_replay)")
        parser.add_argument(
            "--keep", action="store_true", help="keep the scratch database to look into"
        )
        parser.add_argument("--report", help="also write the report as JSON to this file")

    def handle(self, *args: Any, **options: Any) -> None:
        source = scratch.current_database()
        into = options["into"] or f"{source}_replay"
        self.stderr.write(f"replay: making {into}")
        scratch.create(into)
        extra = ["--report", options["report"]] if options["report"] else []
        try:
            code = scratch.manage(into, "replay_into", scratch.url_of(source), *extra)
        finally:
            if not options["keep"]:
                scratch.drop(into)
        if code:
            raise SystemExit(code)
